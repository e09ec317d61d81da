"""Library: counts per metric, failed files and why, near-duplicate groups to review.

A reviewer marks a pair "not the same photo" (this page keeps it apart from then on, splitting its
group; ``lookalike dupes`` does not read reviews; it is exported as a judgment for tuning) or picks the copy to keep. Nothing is deleted from disk.
"""

from __future__ import annotations

import json
from pathlib import Path

import streamlit as st

from lookalike.ui import kit
from lookalike.ui.services import group_key, metric_problem, split_groups
from lookalike.ui.widgets import thumbs

GROUPS_PER_PAGE = 10


def _counts(svc: kit.Services) -> None:
    st_ = svc.status()
    f = st_["files"]
    c = st.columns(5)
    c[0].metric("Files", f["total"])
    c[1].metric("Indexed", f["ok"])
    c[2].metric("Failed", f["failed"])
    c[3].metric("Skipped", f["skipped"])
    c[4].metric("Distinct photos", st_["contents"])
    st.subheader("Metrics")
    st.table([{"metric": m["name"], "vectors": m["vectors"], "dimensions": m["dim"],
                   "distance": m["distance"], "index": m["factory"] or "—",
                   "saved in index": m["saved_index_vectors"]} for m in st_["metrics"]], hide_index=True)
    if st_["problems"]:
        st.subheader("Files not indexed, and why")
        st.dataframe([{"file": p["path"], "status": p["status"], "reason": p["reason"], "detail": p["detail"]}
                      for p in st_["problems"]], hide_index=True)
    else:
        st.caption("Every file was read.")


def _short(v: object) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _review(svc: kit.Services, metric: str) -> None:
    reviews = svc.reviews()
    with st.spinner(f"Finding near-duplicates under {metric}..."):
        cache = st.session_state.setdefault("dupes_cache", {})
        if metric not in cache:
            cache[metric] = svc.duplicates(metric)
        groups = cache[metric]
    not_same = reviews.not_same_pairs()
    keep = reviews.load()["keep"]
    shown = [g for g in (split_groups(g.members, not_same) for g in groups) if g]
    st.write(f"{len(shown)} near-duplicate group{'' if len(shown) == 1 else 's'} under **{metric}** "
             f"({len(groups) - len(shown)} dissolved by your reviews).")
    if not shown:
        return
    pages = (len(shown) + GROUPS_PER_PAGE - 1) // GROUPS_PER_PAGE
    page = st.number_input(f"Page (of {pages})", 1, pages, 1, key="dupes_page") if pages > 1 else 1
    for gi, members in enumerate(shown[(page - 1) * GROUPS_PER_PAGE: page * GROUPS_PER_PAGE]):
        ids = [m[0] for m in members]
        gkey = group_key(metric, ids)
        tiles = thumbs(svc, ids)
        with st.container(border=True, key=f"group_{gi}"):
            kept = next((Path(m[1]).name for m in members if m[0] == keep.get(gkey)), None)
            st.markdown(f"**Group of {len(members)}**" + (f" · keeping {kept}" if kept else ""))
            cols = st.columns(min(len(members), 5))
            ref = members[0]
            for n, member in enumerate(members):
                image_id, path, dist, meaning = member[:4]
                with cols[n % len(cols)]:
                    if image_id in tiles:
                        st.image(tiles[image_id], width="stretch")
                    st.caption(Path(path).name)
                    if n == 0:
                        st.markdown("*reference of the group*")
                    else:
                        st.markdown(f"{dist:.4f} from the reference: **{meaning or 'no calibration'}**")
                        evidence = svc.pair_distances(ref[0], image_id)
                        st.caption("Evidence, distance to the reference: " +
                                   " · ".join(f"{m} {d:.4f}" for m, d in evidence.items()))
                        extra = member[4] if len(member) > 4 else None  # the search's own evidence
                        if extra:
                            st.caption(" · ".join(f"{k.replace('_', ' ')}: {_short(v)}" for k, v in extra.items()))
                        if st.button("Not the same photo", key=f"ns_{gi}_{n}_{image_id}"):
                            reviews.mark_not_same(ref[0], image_id, metric, dist, (ref[1], path))
                            st.rerun()
                    label = "Kept" if keep.get(gkey) == image_id else "Keep this copy"
                    if st.button(label, key=f"keep_{gi}_{n}_{image_id}", disabled=keep.get(gkey) == image_id):
                        reviews.keep(gkey, image_id)
                        st.rerun()


def main() -> None:
    svc = kit.require_admin()
    st.title("Library")
    st.caption(f"{svc.path}")
    _counts(svc)
    st.subheader("Near-duplicates")
    metrics = svc.library.metrics()
    if not metrics:
        return
    metric = st.selectbox("Metric", metrics, key="dupes_metric")
    try:
        _review(svc, metric)
    except Exception as exc:  # noqa: BLE001 - e.g. an uncalibrated metric: a message, not a traceback
        st.error(metric_problem(exc))
    data = svc.reviews().load()
    if data["not_same"] or data["keep"]:
        st.download_button("Reviews as judgments (JSON)", json.dumps(data, indent=1), "duplicate-reviews.json",
                           mime="application/json", key="dl_reviews")
        pairs, copies = len(data["not_same"]), len(data["keep"])
        st.caption(f"{pairs} pair{'' if pairs == 1 else 's'} marked not the same photo, {copies} "
                   f"cop{'y' if copies == 1 else 'ies'} chosen; kept in the library's database. "
                   "Nothing is deleted from disk.")


with kit.guard("Library"):
    main()
