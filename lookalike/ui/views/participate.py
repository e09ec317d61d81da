"""Participate: consent, instructions, practice, one trial per screen, the completion code.

The link is ``/participate?study=PUBLIC_ID`` (plus e.g. ``PROLIFIC_PID``); after joining, the page
adds ``&p=TOKEN`` so the same link resumes. Nothing here names a metric, a file or a path: images
are JPEG bytes behind opaque tokens, buttons and containers are keyed by letter only.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from lookalike.studies.service import URL_PARAMS, StudyError, UnknownParticipantError
from lookalike.ui import kit
from lookalike.ui.widgets import show_trial


# keys 1-9 and A-I press the candidate's button; a click on a candidate's picture does too
KEYS_JS = """<script>
if (!window.__lookalikeKeys) {
  window.__lookalikeKeys = true;
  const press = (letter) => {
    const b = document.querySelector('.st-key-pick_' + letter + ' button');
    if (b) { b.click(); return true; } return false;
  };
  document.addEventListener('keydown', (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const t = e.target; if (t && (t.tagName === 'INPUT' || t.tagName === 'TEXTAREA')) return;
    let k = e.key.toUpperCase();
    if (k >= '1' && k <= '9') k = 'ABCDEFGHI'[Number(k) - 1];
    if ('ABCDEFGHI'.includes(k) && k.length === 1 && press(k)) e.preventDefault();
  });
  document.addEventListener('click', (e) => {
    const img = e.target.closest && e.target.closest('img');
    const box = img && img.closest('[class*="st-key-cand_"]');
    if (!box) return;
    const m = box.className.match(/st-key-cand_([A-I])/);
    if (m) press(m[1]);
  });
}
</script>"""




def _params() -> dict[str, str]:
    q = st.query_params
    return {k: q[k] for k in (*URL_PARAMS, "participant") if q.get(k)}


def main() -> None:
    public_id = st.query_params.get("study")
    if not public_id:
        st.title("Photo study")
        st.info("This page needs a study link (it ends in `?study=...`). Ask the person who invited you.")
        return
    svc = kit.services().study
    info = svc.public_info(public_id)
    me = st.query_params.get("p")
    if me:
        try:
            progress = svc.progress(public_id, me)
        except UnknownParticipantError:
            st.error("This link's participant is not part of this study. Open the study link you were "
                     "given without the `&p=...` part to start.")
            return
    else:
        progress = None
    if progress is None:
        st.title("Photo study")
        if not info["open"]:
            st.warning("This study is closed. Thank you for your interest.")
            return
        st.subheader("Consent")
        st.write(info["consent"])
        st.subheader("Instructions")
        st.write(info["instructions"])
        st.caption(f"{info['total']} screens" + (f", the first {info['practice']} for practice"
                                                 if info["practice"] else "") +
                   ". Answer by clicking a picture or its letter, or by pressing the letter or number key.")
        agreed = st.checkbox("I have read the above and agree to take part", key="consent")
        if st.button("Start", type="primary", disabled=not agreed, key="start"):
            joined = svc.join(public_id, params=_params())
            st.query_params["p"] = joined["participant"]
            st.rerun()
        return
    key = f"trial:{public_id}:{me}"
    trial = st.session_state.get(key)
    if trial is None:  # served once per screen: a rerun must not restart its response time
        trial = st.session_state[key] = svc.next_trial(public_id, me)
    if trial.get("finished") or "options" not in trial:
        st.session_state.pop(key, None)
        st.title("Thank you!")
        st.progress(1.0, text=f"{trial['answered']} of {trial['total']} answered")
        if trial.get("finished"):
            st.success("You have finished the study.")
            code = trial.get("completion_code")
            if code:
                st.markdown("Your completion code:")
                st.code(code, language=None)
        return
    total = max(int(trial["total"]), 1)
    label = f"Screen {trial['index'] + 1} of {total}"
    st.progress(trial["index"] / total, text=label + (" · practice" if trial["practice"] else ""))
    if trial["practice"]:
        st.info("Practice screen: this answer is not counted.")
    if st.session_state.get("answer_error"):
        st.error(st.session_state.pop("answer_error"))

    def pick(letter: str) -> None:
        try:
            svc.record_answer(public_id, me, int(trial["index"]), letter)
        except Exception as exc:  # noqa: BLE001 - shown on the page, not as a traceback
            st.session_state["answer_error"] = f"Your answer was not saved: {exc}"
        st.session_state.pop(key, None)

    show_trial(trial, pick)
    st.html(KEYS_JS, unsafe_allow_javascript=True)


with kit.guard("The study page"):
    try:
        main()
    except StudyError as exc:
        st.error(str(exc))
