"""Retrieval quality as pure numpy functions: recall@k, average precision, kNN overlap.

Rankings are ``(n_queries, k)`` integer arrays of gallery ids, best first (``-1`` pads a short
list). Ground truth is one relevant id per query (``(n_queries,)``) or a set of ids per query.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np


def _relevant_sets(relevant: np.ndarray | Sequence[Iterable[int]] | Sequence[int], n: int) -> list[set[int]]:
    out = []
    for item in relevant:
        out.append({int(i) for i in item} if isinstance(item, (set, frozenset, list, tuple, np.ndarray))
                   else {int(item)})
    if len(out) != n:
        raise ValueError(f"{len(out)} ground-truth entries for {n} queries")
    return out


def recall_at_k(ranked: np.ndarray, relevant: np.ndarray | Sequence[Iterable[int]] | Sequence[int],
                k: int) -> float:
    """Share of queries with at least one relevant id among their first ``k`` results."""
    ranked = np.asarray(ranked)
    if ranked.ndim != 2 or len(ranked) == 0:
        raise ValueError("ranked must be a non-empty (n_queries, n_results) array")
    sets = _relevant_sets(relevant, len(ranked))
    hits = [bool(sets[q].intersection(ranked[q, :k].tolist())) for q in range(len(ranked))]
    return float(np.mean(hits))


def average_precision(ranking: Sequence[int] | np.ndarray, relevant: Iterable[int]) -> float:
    """AP of one ranked list: mean over the relevant ids of precision at each one's rank.

    Relevant ids missing from the list count as precision 0 (the list is a truncated ranking).
    """
    rel = {int(r) for r in relevant}
    if not rel:
        raise ValueError("average precision needs at least one relevant id")
    found, total = 0, 0.0
    for rank, item in enumerate(np.asarray(ranking).tolist(), start=1):
        if item in rel:
            found += 1
            total += found / rank
            if found == len(rel):
                break
    return total / len(rel)


def mean_average_precision(ranked: np.ndarray,
                           relevant: np.ndarray | Sequence[Iterable[int]] | Sequence[int]) -> float:
    """mAP over queries (each ranked list scored by :func:`average_precision`)."""
    ranked = np.asarray(ranked)
    sets = _relevant_sets(relevant, len(ranked))
    return float(np.mean([average_precision(ranked[q], sets[q]) for q in range(len(ranked))]))


def knn_recall(found: np.ndarray, exact: np.ndarray, k: int | None = None) -> float:
    """Approximate-search recall@k: mean share of the exact ``k`` nearest ids that were found.

    ``k`` defaults to the width of ``exact``; ``-1`` entries (FAISS padding) are ignored."""
    found, exact = np.asarray(found), np.asarray(exact)
    k = k or exact.shape[1]
    found, exact = found[:, :k], exact[:, :k]
    if found.shape[0] != exact.shape[0]:
        raise ValueError("found and exact must have the same number of queries")
    shares = [len(set(f[f >= 0].tolist()) & set(e[e >= 0].tolist())) / max(1, int((e >= 0).sum()))
              for f, e in zip(found, exact, strict=True)]
    return float(np.mean(shares)) if shares else 1.0


def rank_by_distance(distances: np.ndarray, k: int | None = None) -> np.ndarray:
    """Gallery ids sorted by increasing distance per query row (ties broken by id)."""
    d = np.asarray(distances)
    order = np.argsort(d, axis=1, kind="stable")
    return order if k is None else order[:, :k]
