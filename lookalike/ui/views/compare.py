"""Compare: one query, its nearest neighbours under each metric side by side."""

from __future__ import annotations

import hashlib
import io
import tempfile
from pathlib import Path
from typing import Any

import streamlit as st

from lookalike.ui import kit
from lookalike.ui.widgets import thumbs
from lookalike.ui.services import (agreement, has_test_metrics, metric_problem, missing_weights, overlap,
                                  pairwise_metrics)

PAGE = 24
PER_ROW = 6
AGREE_CSS = """<style>
[class*="st-key-agree_"] { border: 3px solid #dd8452 !important; background: #fff4ec; }
</style>"""


def _set_query(kind: str, value: Any, label: str) -> None:
    st.session_state["compare_query"] = (kind, value, label)


def _upload_path(data: bytes, name: str) -> Path:
    folder = Path(tempfile.gettempdir()) / "lookalike-ui-uploads"
    folder.mkdir(exist_ok=True)
    path = folder / (hashlib.sha256(data).hexdigest()[:20] + Path(name).suffix.lower())
    if not path.is_file():
        path.write_bytes(data)
    return path


def _small(data: bytes) -> bytes:
    from PIL import Image

    img = Image.open(io.BytesIO(data)).convert("RGB")
    img.thumbnail((256, 256))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=85)
    return buf.getvalue()


def _pick_query(svc: kit.Services) -> None:
    how = st.radio("Query", ["Upload a photo", "Paste a path", "Browse the library"], horizontal=True,
                   key="query_source", label_visibility="collapsed")
    if how == "Upload a photo":
        up = st.file_uploader("Photo", type=["jpg", "jpeg", "png", "webp", "heic", "tif", "tiff", "bmp"],
                              key="upload")
        if up is not None:
            data = up.getvalue()
            key = ("upload", str(_upload_path(data, up.name)), up.name)
            if st.session_state.get("compare_query") != key and st.session_state.get("upload_seen") != up.file_id:
                st.session_state["upload_seen"] = up.file_id
                _set_query(*key)
    elif how == "Paste a path":
        path = st.text_input("Path of a photo on this computer", key="query_path")
        if path and st.button("Search", key="path_go"):
            if not Path(path).expanduser().is_file():
                st.error(f"No file at {path}")
            else:
                _set_query("path", str(Path(path).expanduser()), Path(path).name)
    else:
        ids = svc.image_ids()
        pages = max((len(ids) + PAGE - 1) // PAGE, 1)
        page = st.number_input(f"Page (of {pages})", 1, pages, 1, key="browse_page")
        shown = ids[(page - 1) * PAGE: page * PAGE]
        tiles = thumbs(svc, shown)
        paths = svc.paths(shown)
        for start in range(0, len(shown), PER_ROW):
            for col, i in zip(st.columns(PER_ROW), shown[start:start + PER_ROW]):
                if i in tiles:
                    col.image(tiles[i], width="stretch")
                col.button("Use", key=f"use_{i}", on_click=_set_query,
                           args=("id", i, Path(paths.get(i, str(i))).name), width="stretch")


def _search(svc: kit.Services, query: tuple[str, Any, str], metric: str, k: int,
            over: list[str] | None = None) -> Any:
    """One column: ``metric``'s top ``k``, or (``over``) those metrics' candidates re-ranked by it."""
    cache = st.session_state.setdefault("compare_cache", {})
    key = (query, metric, k, tuple(over or ()))
    if key not in cache:
        value = query[1] if query[0] == "id" else str(query[1])
        cache[key] = (svc.rerank_one(value, over, metric, k) if over else
                      svc.search_one(value, metric, k, exclude_self=True))
    return cache[key]


def _column(svc: kit.Services, metric: str, result: Any, agree: dict[int, int], n_metrics: int) -> None:
    hits = list(result.hits)
    tiles = thumbs(svc, [h.image_id for h in hits])
    secs = f", {result.seconds * 1000:.0f} ms" if result.seconds is not None else ""
    calibrated = any(h.label for h in hits)
    st.caption(f"{result.distance_kind} distance{secs}" +
               ("" if calibrated or not hits else " · no calibrated meanings for this metric"))
    per_row = max(1, 4 // n_metrics)
    for start in range(0, len(hits), per_row):
        for col, h in zip(st.columns(per_row), hits[start:start + per_row]):
            n = agree.get(h.image_id, 0)
            key = f"agree_{metric}_{h.rank}" if n else f"hit_{metric}_{h.rank}"
            with col, st.container(border=True, key=key.replace(".", "_")):
                if h.image_id in tiles:
                    st.image(tiles[h.image_id], width="stretch")
                line = f"**#{h.rank}** · {h.distance:.4f}"
                if h.label:
                    line += f" · *{h.label}*"
                if n:
                    line += f" · in {n} of {n_metrics} metrics"
                st.markdown(line)
                st.caption(Path(h.path).name)
                st.button("Make this the query", key=f"q_{metric}_{h.rank}", on_click=_set_query,
                          args=("id", h.image_id, Path(h.path).name), width="stretch")


def main() -> None:
    svc = kit.require_admin()
    st.html(AGREE_CSS)
    st.title("Compare metrics")
    metrics = svc.library.metrics()
    if not metrics:
        st.warning("This library has no index yet: run `lookalike index DIR --library ...` first.")
        return
    missing = missing_weights(metrics)
    for m, files in missing.items():
        st.warning(f"**{m}**: weights missing ({', '.join(files)}). Library photos still search from "
                   f"stored vectors; an uploaded photo needs the weights — import them with "
                   f"`lookalike weights import`.")
    a, b, c = st.columns([3, 1, 1.4])
    chosen = a.multiselect("Metrics", metrics, default=metrics, key="compare_metrics")
    k = b.slider("Neighbours per metric", 1, 30, 8, key="k")
    # a library indexed under test metrics (tests, demos) also offers the test pairwise metrics
    rerank = c.selectbox("Re-rank with (pairwise)", ["none", *pairwise_metrics(has_test_metrics(metrics))],
                         key="rerank",
                         help="a pairwise metric (DiffSim) re-ranks the other columns' top 50 as a "
                              "column of its own; slow on a CPU for photos it has not seen")
    rerank = None if rerank == "none" else rerank
    _pick_query(svc)
    query = st.session_state.get("compare_query")
    if not query or not chosen:
        st.info("Pick a query photo above.")
        return
    kind, value, label = query
    left, right = st.columns([1, 5])
    with left:
        if kind == "id":
            st.image(svc.thumbnail(int(value)), caption=f"Query: {label}", width="stretch")
        else:
            st.image(_small(Path(value).read_bytes()), caption=f"Query: {label}", width="stretch")
    results: dict[str, Any] = {}
    problems: dict[str, str] = {}
    bar = st.progress(0.0, text="Searching...")
    for n, m in enumerate(chosen):
        bar.progress(n / len(chosen), text=f"Searching under {m} ({n + 1}/{len(chosen)})...")
        try:
            results[m] = _search(svc, query, m, int(k))
        except Exception as exc:  # noqa: BLE001 - one metric's failure is shown in its column
            kit.log.info("search under %s failed: %s", m, exc)
            problems[m] = metric_problem(exc)
    if rerank and results:
        bar.progress(1.0, text=f"Re-ranking the candidates with {rerank}...")
        try:
            results[rerank] = _search(svc, query, rerank, int(k), over=list(results))
        except Exception as exc:  # noqa: BLE001 - shown in its column
            kit.log.info("re-ranking with %s failed: %s", rerank, exc)
            problems[rerank] = metric_problem(exc)
        chosen = [*chosen, rerank]
    bar.empty()
    agree = agreement({m: [h.image_id for h in r.hits] for m, r in results.items()})
    with right:
        if len(results) > 1:
            st.caption("Highlighted: photos in the top-k of two or more metrics.")
            st.table(overlap({m: [h.image_id for h in r.hits] for m, r in results.items()}),
                         hide_index=True)
    cols = st.columns(len(chosen))
    for col, m in zip(cols, chosen):
        with col, st.container(key=f"col_{m}".replace(".", "_")):
            st.subheader(m)
            if m in problems:
                st.error(problems[m])
            else:
                _column(svc, m, results[m], agree, len(results))


with kit.guard("Compare"):
    main()
