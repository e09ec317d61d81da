"""Widgets several pages draw: thumbnail grids and a trial as participants see it."""

from __future__ import annotations

from typing import Any

import streamlit as st

from lookalike.ui import kit
from lookalike.ui.services import Services

IMAGE_SIDE = 640
LETTERS = "ABCDEFGHI"
TRIAL_CSS = """<style>
[class*="st-key-cand_"] img { cursor: pointer; border-radius: 6px; }
[class*="st-key-pick_"] button { font-size: 1.2rem; font-weight: 700; }
[class*="st-key-reference"] img { border: 3px solid #4c72b0; border-radius: 6px; max-height: 42vh; object-fit: contain; }
@media (max-width: 640px) {  /* phones: candidates stay two to a row instead of stacking */
  [class*="st-key-row_"] [data-testid="stHorizontalBlock"] { flex-wrap: nowrap !important; gap: 0.5rem; }
  [class*="st-key-row_"] [data-testid="stColumn"] { min-width: 0 !important; width: auto !important; flex: 1 1 0 !important; }
}
</style>"""


def thumbs(svc: Services, ids: list[int]) -> dict[int, bytes]:
    """Thumbnails of ``ids`` (JPEG bytes, made once, on disk); a progress bar while new ones are made."""
    todo = [i for i in ids if not svc.has_thumbnail(i)]
    bar = st.progress(0.0, text=f"Making {len(todo)} thumbnails...") if len(todo) > 4 else None
    out = {}
    for n, i in enumerate(ids):
        try:
            out[i] = svc.thumbnail(i)
        except Exception as exc:  # noqa: BLE001 - one unreadable photo does not break the grid
            kit.log.warning("no thumbnail for %s: %s", i, exc)
        if bar is not None:
            bar.progress((n + 1) / len(ids), text=f"Thumbnails {n + 1}/{len(ids)}")
    if bar is not None:
        bar.empty()
    return out


@st.cache_data(max_entries=1024, show_spinner=False)
def trial_image(public_id: str, token: str) -> bytes:
    return kit.services().study.image_bytes(public_id, token, max_side=IMAGE_SIDE)


def show_trial(trial: dict[str, Any], on_pick: Any = None, key: str = "") -> None:
    """One trial as a participant sees it (also the organiser's preview, with ``on_pick=None``)."""
    public_id = trial["study"]
    options = trial["options"]
    st.html(TRIAL_CSS)
    with st.container(key=f"reference{key}"):
        st.markdown("**Reference**")
        st.image(trial_image(public_id, trial["reference"]), width="stretch")
    st.markdown(f"**{trial['prompt']}**")
    per_row = 2 if len(options) <= 4 else 3
    for start in range(0, len(options), per_row):
        with st.container(key=f"row_{start}{key}"):
            cols = st.columns(per_row)
        for col, opt in zip(cols, options[start:start + per_row]):
            letter = opt["letter"]
            with col, st.container(key=f"cand_{letter}{key}", border=True):
                st.image(trial_image(public_id, opt["image"]), width="stretch")
                if on_pick is None:
                    st.markdown(f"**{letter}**")
                else:
                    st.button(f"{letter}", key=f"pick_{letter}{key}", width="stretch", on_click=on_pick,
                              args=(letter,), help=f"or press {letter} / {LETTERS.index(letter) + 1}")
