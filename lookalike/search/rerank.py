"""Exact re-ranking: the true top-k among given candidates, from full vectors fetched by id.

Plain numpy in, numpy out. A compact or approximate index proposes candidate ids per query; these
functions fetch the full vectors (from memory, a memmap, a database...) and order the candidates by
their exact distance, computed as a direct sum of squared differences in float64 (no
``|a|^2 + |b|^2 - 2ab`` cancellation), ties broken by id.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

#: Given sorted unique int64 ids, return their full vectors as an ``(len(ids), dim)`` array.
Fetch = Callable[[np.ndarray], np.ndarray]


def array_fetcher(vectors: np.ndarray) -> Fetch:
    """A :data:`Fetch` over an in-memory array or ``np.memmap`` (rows are ids)."""
    return lambda ids: np.asarray(vectors[ids])


def exact_distances(queries: np.ndarray, vectors: np.ndarray, kind: str = "sqeuclidean") -> np.ndarray:
    """``(len(queries), len(vectors))`` exact distances in float64.

    ``sqeuclidean``: sum of squared differences (LPIPS for LPIPS vectors); ``cosine``: ``1 - cos``.
    """
    q = np.asarray(queries, dtype=np.float64)
    v = np.asarray(vectors, dtype=np.float64)
    if kind == "cosine":
        q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-300)
        v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-300)
        return 1.0 - q @ v.T
    if kind != "sqeuclidean":
        raise ValueError(f"unknown distance {kind!r}")
    out = np.empty((len(q), len(v)))
    for i, row in enumerate(q):
        diff = v - row
        out[i] = np.einsum("ij,ij->i", diff, diff)
    return out


def rerank(queries: np.ndarray, candidates: np.ndarray, fetch: Fetch, k: int,
           kind: str = "sqeuclidean", chunk: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` of each query among its candidate ids.

    ``candidates``: ``(n_queries, c)`` int ids; ``-1`` entries (FAISS padding) and repeats are
    ignored. Returns ``(distances, ids)``, both ``(n_queries, k)``, nearest first; rows with fewer
    than ``k`` valid candidates are padded with ``inf`` / ``-1``. Vectors are fetched once per
    chunk of ``chunk`` queries (the union of their candidates).
    """
    queries = np.atleast_2d(np.asarray(queries))
    candidates = np.atleast_2d(np.asarray(candidates, dtype=np.int64))
    if len(queries) != len(candidates):
        raise ValueError(f"{len(queries)} queries but {len(candidates)} candidate rows")
    out_d = np.full((len(queries), k), np.inf)
    out_i = np.full((len(queries), k), -1, dtype=np.int64)
    for start in range(0, len(queries), chunk):
        rows = candidates[start:start + chunk]
        union = np.unique(rows[rows >= 0])
        if union.size == 0:
            continue
        full = fetch(union)
        if len(full) != len(union):
            raise ValueError(f"fetch returned {len(full)} vectors for {len(union)} ids")
        for r, cand in enumerate(rows):
            ids = np.unique(cand[cand >= 0])
            if ids.size == 0:
                continue
            d = exact_distances(queries[start + r:start + r + 1], full[np.searchsorted(union, ids)],
                                kind)[0]
            order = np.lexsort((ids, d))[:k]
            out_d[start + r, :len(order)] = d[order]
            out_i[start + r, :len(order)] = ids[order]
    return out_d, out_i


def brute_force(queries: np.ndarray, vectors: np.ndarray, k: int,
                kind: str = "sqeuclidean") -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` over all of ``vectors`` (the reference the compact index is measured against)."""
    ids = np.broadcast_to(np.arange(len(vectors), dtype=np.int64), (len(np.atleast_2d(queries)), len(vectors)))
    return rerank(queries, ids, array_fetcher(vectors), k, kind=kind)


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean fraction of each true top-k row found in the matching row of ``found`` (-1 ignored)."""
    hits = [len(set(f[f >= 0]) & set(t[t >= 0])) / max(1, int((t >= 0).sum())) for f, t in zip(found, truth)]
    return float(np.mean(hits)) if hits else 1.0
