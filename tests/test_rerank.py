"""Exact re-ranking of candidate ids against brute force, on real LPIPS vectors of real photos."""

from __future__ import annotations

import numpy as np
import pytest

from lookalike.embed.distance import pairwise
from lookalike.search.rerank import array_fetcher, brute_force, rerank


@pytest.fixture(scope="module")
def vectors(photos) -> np.ndarray:
    from lookalike.embed.factory import create_metric

    metric = create_metric("lpips-alex-random", device="cpu")
    return metric.embed_paths(photos[:80], workers=0, progress=False).vectors


def test_one_kernel_per_kind_the_reranker_and_the_metric_agree(vectors) -> None:
    """Re-ranking, ``dupes`` and ``distance`` share :func:`lookalike.embed.distance.pairwise`: float64,
    squared L2 summed as direct differences (exact to the last bits of a float64 definition)."""
    q, v = vectors[:5], vectors[5:]
    direct = np.array([[((x.astype(np.float64) - y) ** 2).sum() for y in v] for x in q])
    assert np.allclose(pairwise(q, v, "sqeuclidean"), direct, rtol=1e-12, atol=0)
    for kind in ("sqeuclidean", "cosine"):
        d, i = rerank(q, np.tile(np.arange(len(v)), (len(q), 1)), array_fetcher(v), len(v), kind=kind)
        assert np.allclose(d, np.take_along_axis(pairwise(q, v, kind), i, 1), rtol=1e-12, atol=1e-15)
    with pytest.raises(ValueError, match="manhattan"):
        pairwise(q, v, "manhattan")


def test_rerank_returns_the_true_top_k_among_candidates(vectors) -> None:
    rng = np.random.default_rng(0)
    queries, library = vectors[:10], vectors[10:]
    k = 5
    true_d, true_i = brute_force(queries, library, k)
    # candidates: the true top-k hidden among random ids, plus FAISS padding and repeats
    cand = np.concatenate([rng.integers(0, len(library), (10, 20)), true_i, true_i[:, :2],
                           np.full((10, 3), -1)], axis=1)
    cand = np.take_along_axis(cand, rng.permutation(cand.shape[1])[None].repeat(10, 0), axis=1)
    seen: list[np.ndarray] = []

    def fetch(ids: np.ndarray) -> np.ndarray:
        seen.append(ids)
        return library[ids]

    d, i = rerank(queries, cand, fetch, k, chunk=4)
    assert (i == true_i).all()
    assert np.allclose(d, true_d, rtol=1e-12)
    assert len(seen) == 3 and all((np.diff(s) > 0).all() for s in seen)  # sorted, unique, per chunk
    assert (np.diff(d, axis=1) >= 0).all()


def test_rerank_pads_when_candidates_run_short(vectors) -> None:
    cand = np.array([[3, -1, 3, 7], [-1, -1, -1, -1]])
    d, i = rerank(vectors[:2], cand, array_fetcher(vectors), k=4)
    assert set(i[0, :2]) == {3, 7} and (i[0, 2:] == -1).all() and np.isinf(d[0, 2:]).all()
    assert (i[1] == -1).all()


def test_rerank_ranks_duplicates_first_and_refuses_mismatches(vectors) -> None:
    d, i = brute_force(vectors[:4], vectors, 1)
    assert (i[:, 0] == np.arange(4)).all() and np.allclose(d, 0)
    with pytest.raises(ValueError):
        rerank(vectors[:2], np.zeros((3, 2), dtype=np.int64), array_fetcher(vectors), 1)
    with pytest.raises(ValueError):
        rerank(vectors[:1], np.array([[0, 1]]), lambda ids: vectors[:1], 1)

