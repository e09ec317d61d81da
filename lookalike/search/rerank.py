"""Exact re-ranking: the true top-k among given candidates, from full vectors fetched by id.

Plain numpy in, numpy out. A compact or approximate index proposes candidate ids per query; these
functions fetch the full vectors (from memory, a memmap, a database...) and order the candidates by
their exact distance, computed as a direct sum of squared differences in float64 (no
``|a|^2 + |b|^2 - 2ab`` cancellation), ties broken by id.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from lookalike.embed.distance import cosine

#: Given sorted unique int64 ids, return their full vectors as an ``(len(ids), dim)`` array.
Fetch = Callable[[np.ndarray], np.ndarray]


def array_fetcher(vectors: np.ndarray) -> Fetch:
    """A :data:`Fetch` over an in-memory array or ``np.memmap`` (rows are ids)."""
    return lambda ids: np.asarray(vectors[ids])


def exact_distances(queries: np.ndarray, vectors: np.ndarray, kind: str = "sqeuclidean",
                    block: int = 512) -> np.ndarray:
    """``(len(queries), len(vectors))`` exact distances in float64.

    ``sqeuclidean``: sum of squared differences (LPIPS for LPIPS vectors); ``cosine``: ``1 - cos``.
    """
    if kind == "sqeuclidean":
        q = np.asarray(queries, dtype=np.float64)
        out = np.empty((len(q), len(vectors)))
        for s in range(0, len(vectors), block):  # bounded float64 temporaries
            v = np.asarray(vectors[s:s + block], dtype=np.float64)
            for i, row in enumerate(q):
                diff = v - row
                out[i, s:s + block] = np.einsum("ij,ij->i", diff, diff)
        return out
    if kind == "cosine":
        return cosine(np.asarray(queries, dtype=np.float64), np.asarray(vectors, dtype=np.float64))
    raise ValueError(f"unknown distance {kind!r}")


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
            rows_full = full if ids.size == union.size else full[np.searchsorted(union, ids)]
            d = exact_distances(queries[start + r:start + r + 1], rows_full, kind)[0]
            order = np.lexsort((ids, d))[:k]
            out_d[start + r, :len(order)] = d[order]
            out_i[start + r, :len(order)] = ids[order]
    return out_d, out_i


def brute_force(queries: np.ndarray, vectors: np.ndarray, k: int, kind: str = "sqeuclidean",
                chunk: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` over all of ``vectors`` (the reference the compact index is measured against)."""
    queries = np.atleast_2d(queries)
    k_eff = min(k, len(vectors))
    out_d = np.full((len(queries), k), np.inf)
    out_i = np.full((len(queries), k), -1, dtype=np.int64)
    ids = np.arange(len(vectors), dtype=np.int64)
    for s in range(0, len(queries), chunk):
        d = exact_distances(queries[s:s + chunk], vectors, kind)
        for r, row in enumerate(d):
            part = np.argpartition(row, k_eff - 1)[:k_eff] if k_eff < len(row) else ids
            cut = row[part].max()
            tied = ids[row <= cut]  # everything at the boundary, so ties break by id
            order = tied[np.lexsort((tied, row[tied]))][:k_eff]
            out_d[s + r, :k_eff], out_i[s + r, :k_eff] = row[order], order
    return out_d, out_i
