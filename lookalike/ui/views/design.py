"""Design a study (admin): the study's choices as a form, a preview, the participant link."""

from __future__ import annotations

import streamlit as st

from lookalike.studies.config import DEFAULT_CONSENT, KINDS, QUERY_MODES, StudyConfig, parse_ranks
from lookalike.ui import kit
from lookalike.ui.widgets import show_trial


def _ids(text: str) -> list[int]:
    from lookalike.errors import UsageError

    try:
        return [int(x) for x in text.replace(",", " ").split()]
    except ValueError as exc:
        raise UsageError(f"image ids are whole numbers separated by commas, got {text!r}") from exc


def _form(svc: kit.Services) -> None:
    metrics = svc.library.metrics()
    with st.form("new_study"):
        st.subheader("New study")
        a, b = st.columns(2)
        name = a.text_input("Name (only you see it)", key="name")
        kind = b.selectbox("Kind", KINDS, key="kind",
                           help="retrieval: pick the best of one neighbour per metric; 2afc: pick one of two")
        chosen = st.multiselect("Metrics to compare", metrics, default=metrics[:2], key="metrics")
        a, b, c = st.columns(3)
        queries = a.selectbox("Queries", QUERY_MODES, key="queries",
                              help="random library images, every image under a folder, or given ids")
        query_count = b.number_input("Random queries", 1, 10000, 20, key="query_count")
        ranks = c.text_input("Neighbour ranks", "1-5", key="ranks", help="e.g. 1-10 or 1,3,5")
        query_folder = st.text_input("Query folder (for 'folder')", key="query_folder")
        query_ids = st.text_input("Query image ids (for 'ids'), comma separated", key="query_ids")
        a, b, c = st.columns(3)
        per = a.number_input("Trials per participant", 1, 10000, 20, key="trials_per_participant")
        practice = b.number_input("Practice trials", 0, 100, 2, key="practice_trials")
        sentinels = c.number_input("Sentinels (attention checks)", 0, 100, 3, key="sentinels")
        a, b, c, d = st.columns(4)
        max_fail = a.number_input("Sentinel failures allowed", 0, 100, 0, key="max_sentinel_failures")
        min_ms = b.number_input("Too fast below (ms)", 0.0, 60000.0, 300.0, key="min_response_ms")
        fast_share = c.number_input("Exclude if share too fast >", 0.0, 1.0, 0.5, key="max_fast_share")
        seed = d.number_input("Seed", 0, 2**31 - 1, 0, key="seed")
        drop_fast = st.checkbox("Leave too-fast answers out of the analysis", True, key="drop_too_fast")
        instructions = st.text_area("Instructions (empty: the default for the kind)", key="instructions")
        consent = st.text_area("Consent text", DEFAULT_CONSENT, key="consent")
        a, b = st.columns(2)
        code = a.text_input("Completion code (empty: made up)", key="completion_code")
        description = b.text_input("Description (only you see it)", key="description")
        submitted = st.form_submit_button("Create study", type="primary")
    if not submitted:
        return
    config = StudyConfig(kind=kind, metrics=list(chosen), queries=queries, query_count=int(query_count),
                         query_folder=query_folder or None, query_ids=_ids(query_ids), ranks=parse_ranks(ranks),
                         trials_per_participant=int(per), practice_trials=int(practice),
                         sentinels=int(sentinels), max_sentinel_failures=int(max_fail),
                         min_response_ms=float(min_ms), max_fast_share=float(fast_share),
                         drop_too_fast=bool(drop_fast), seed=int(seed), instructions=instructions,
                         consent=consent, completion_code=code, description=description)
    with st.spinner("Finding the neighbours and freezing the trials..."):
        info = svc.study.create_study(name.strip(), config, admin_token=svc.admin_token)
    st.session_state["design_study"] = st.session_state["design_pick"] = info["name"]
    st.success(f"Study {info['name']!r} created: {info['trials']['main']} trials, "
               f"{info['trials']['practice']} practice, {info['trials']['sentinel']} sentinels.")


def _study(svc: kit.Services, name: str) -> None:
    info = svc.study.study_info(name, admin_token=svc.admin_token)
    link = svc.participant_link(info["public_id"], svc.base_url or kit.app_root())
    st.subheader(f"{info['name']} ({info['kind']}, {info['status']})")
    c = st.columns(4)
    c[0].metric("Main trials", info["trials"]["main"])
    c[1].metric("Participants", info["participants"])
    c[2].metric("Finished", info["finished"])
    c[3].metric("Answers", info["answers"])
    st.markdown("**Participant link** (share this; add e.g. `&PROLIFIC_PID={{%PROLIFIC_PID%}}` for Prolific):")
    st.code(link, language=None)
    with st.expander("Configuration"):
        st.json(info["config"])
    n = st.number_input("Preview trials", 1, 10, 2, key="preview_n")
    trials = svc.study.preview(name, int(n), admin_token=svc.admin_token)
    for start in range(0, len(trials), 3):
        for i, (col, trial) in enumerate(zip(st.columns(3), trials[start:start + 3]), start):
            with col, st.container(border=True):
                st.caption(f"Preview {i + 1}: as a participant sees it (candidates in stored order)")
                show_trial(trial, None, key=f"_preview{i}")
    if info["status"] == "open" and st.button("Close the study (no new answers)", key="close_study"):
        svc.study.close_study(name, admin_token=svc.admin_token)
        st.rerun()


def main() -> None:
    svc = kit.require_admin()
    st.title("Design a study")
    if len(svc.library.metrics()) < 2:
        st.warning("A study compares two or more metrics; this library has an index for "
                   f"{', '.join(svc.library.metrics()) or 'none'}. Add one with `lookalike index --metric`.")
    with kit.guard("Creating the study"):
        _form(svc)
    studies = svc.study.list_studies(admin_token=svc.admin_token)
    if not studies:
        st.info("No study yet.")
        return
    names = [s["name"] for s in studies][::-1]
    current = st.session_state.get("design_study")
    pick = st.selectbox("Study", names, index=names.index(current) if current in names else 0, key="design_pick")
    _study(svc, pick)


with kit.guard("Design a study"):
    main()
