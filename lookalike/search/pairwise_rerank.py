"""Re-rank embedding candidates with a pairwise metric (``Library.search(..., rerank="diffsim-sd15")``).

Each query's candidates are the union of the top ``candidates`` hits of every embedding metric
searched (ordered by their best rank); the pairwise metric then scores the query against each
candidate — one network pass per image it has not seen before, thanks to its feature cache — and the
``k`` nearest become a column of their own, named after the pairwise metric, beside the embedding
columns (which keep their top ``k``).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from lookalike.errors import ImageLoadError, UsageError
from lookalike.search.hits import Hit, QueryResult, SearchResult

log = logging.getLogger(__name__)


def pairwise_metric(name: str, device: str | None = None) -> Any:
    """Build the pairwise metric ``name``; a clear error when it is an embedding metric."""
    from lookalike.embed.factory import create_metric
    from lookalike.embed.registry import get_config

    if get_config(name).kind != "pairwise":
        raise UsageError(f"--rerank needs a pairwise metric (e.g. diffsim-sd15); {name!r} is an embedding "
                         "metric: search it with --metric instead")
    return create_metric(name, device=device)


def candidate_pool(result: SearchResult, limit: int) -> list[Hit]:
    """The union of each column's first ``limit`` hits, best rank first (first column wins ties)."""
    best: dict[int, tuple[int, int, Hit]] = {}
    for col, hits in enumerate(result.hits.values()):
        for hit in hits[:limit]:
            key = (hit.rank, col, hit)
            if hit.image_id not in best or key[:2] < best[hit.image_id][:2]:
                best[hit.image_id] = key
    return [h for _, _, h in sorted(best.values(), key=lambda t: (t[0], t[1], t[2].image_id))]


def first_images(hits: Sequence[Hit], k: int) -> tuple[Hit, ...]:
    """The hits of the first ``k`` distinct images (identical files list one hit per path)."""
    seen: set[int] = set()
    out = []
    for hit in hits:
        if hit.image_id not in seen:
            if len(seen) == k:
                break
            seen.add(hit.image_id)
        out.append(hit)
    return tuple(out)


def score_candidates(metric: Any, query: Any, paths: Sequence[str]) -> tuple[np.ndarray, list[int]]:
    """Pairwise distances of ``query`` to each path, and the indices of the paths that could be read."""
    try:
        return metric.distance_pairs([query] * len(paths), list(paths), progress=True), list(range(len(paths)))
    except ImageLoadError:
        pass  # one unreadable candidate: score them one by one and leave the bad ones out
    dists, ok = [], []
    for i, path in enumerate(paths):
        try:
            dists.append(float(metric.distance_pairs([query], [path])[0]))
            ok.append(i)
        except ImageLoadError as exc:
            if exc.path != str(path):
                raise  # the query itself is unreadable
            log.warning("re-rank: skipped %s", exc)
    return np.asarray(dists, dtype=np.float64), ok


def add_rerank_column(results: list[SearchResult], sources: Sequence[Any], rerank: str, k: int,
                      candidates: int, device: str | None = None,
                      built: dict[str, Any] | None = None) -> None:
    """Add the ``rerank`` column to every result (in place) and cut the embedding columns to ``k``.

    ``sources[i]`` is what the pairwise metric reads for query ``i`` (a path, PIL image or array);
    ``built`` caches the metric by name between calls (the caller's dict of built metrics).
    """
    if candidates < 1:
        raise UsageError(f"--candidates must be at least 1, got {candidates}")
    built = {} if built is None else built
    if rerank not in built:
        built[rerank] = pairwise_metric(rerank, device)
    metric = built[rerank]
    searched = sorted({m for r in results for m in r.by_metric})
    for res, source in zip(results, sources, strict=True):
        start = time.perf_counter()
        pool = candidate_pool(res, candidates)
        for name, col in list(res.by_metric.items()):
            res.by_metric[name] = dataclasses.replace(col, hits=first_images(col.hits, k))
        if not pool:
            res.errors[rerank] = "no candidates (the query failed under every embedding metric)"
            continue
        try:
            dist, ok = score_candidates(metric, source, [h.path for h in pool])
        except ImageLoadError as exc:
            res.errors[rerank] = str(exc)
            continue
        order = sorted(range(len(ok)), key=lambda j: (dist[j], pool[ok[j]].image_id))[:k]
        hits = tuple(Hit(pool[ok[j]].image_id, pool[ok[j]].path, max(0.0, float(dist[j])), rank, rerank)
                     for rank, j in enumerate(order, start=1))
        res.by_metric[rerank] = QueryResult(res.query, rerank, hits, "pairwise",
                                            time.perf_counter() - start,
                                            {"reranked": searched, "candidates": len(pool)})
