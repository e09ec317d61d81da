"""Exact re-ranking: the true top-k among given candidates, from full vectors fetched by id.

Plain numpy in, numpy out. A compact or approximate index proposes candidate ids per query; these
functions fetch the full vectors (from memory, a memmap, a database...) and order the candidates by
their exact distance (:func:`lookalike.embed.distance.pairwise`: float64, squared L2 as a direct sum
of squared differences), ties broken by id.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from lookalike.embed.distance import pairwise

#: Given sorted unique int64 ids, return their full vectors as an ``(len(ids), dim)`` array.
Fetch = Callable[[np.ndarray], np.ndarray]


def array_fetcher(vectors: np.ndarray) -> Fetch:
    """A :data:`Fetch` over an in-memory array or ``np.memmap`` (rows are ids)."""
    return lambda ids: np.asarray(vectors[ids])


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
            d = pairwise(queries[start + r:start + r + 1], rows_full, kind)[0]
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
        d = pairwise(queries[s:s + chunk], vectors, kind)
        for r, row in enumerate(d):
            part = np.argpartition(row, k_eff - 1)[:k_eff] if k_eff < len(row) else ids
            cut = row[part].max()
            tied = ids[row <= cut]  # everything at the boundary, so ties break by id
            order = tied[np.lexsort((tied, row[tied]))][:k_eff]
            out_d[s + r, :k_eff], out_i[s + r, :k_eff] = row[order], order
    return out_d, out_i
