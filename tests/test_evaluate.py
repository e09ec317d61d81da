"""Retrieval metrics against hand-worked examples and brute-force definitions."""

from __future__ import annotations

import numpy as np
import pytest

from lookalike.search.evaluate import (
    average_precision,
    knn_recall,
    mean_average_precision,
    rank_by_distance,
    recall_at_k,
)


def test_recall_at_k_single_relevant() -> None:
    ranked = np.array([[3, 1, 2], [0, 2, 1], [2, 0, 1]])
    truth = [1, 0, 1]
    assert recall_at_k(ranked, truth, 1) == pytest.approx(1 / 3)
    assert recall_at_k(ranked, truth, 2) == pytest.approx(2 / 3)
    assert recall_at_k(ranked, truth, 3) == pytest.approx(1.0)


def test_recall_at_k_with_relevant_sets() -> None:
    ranked = np.array([[5, 6], [7, 8]])
    assert recall_at_k(ranked, [{6, 9}, {1}], 2) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        recall_at_k(ranked, [1], 1)


def test_average_precision_worked_examples() -> None:
    assert average_precision([4, 2, 9], [4]) == pytest.approx(1.0)
    assert average_precision([4, 2, 9], [9]) == pytest.approx(1 / 3)
    # relevant at ranks 1 and 3: (1/1 + 2/3) / 2
    assert average_precision([1, 5, 2, 6], {1, 2}) == pytest.approx((1 + 2 / 3) / 2)
    # one relevant id never retrieved counts as 0
    assert average_precision([1, 5], {1, 2}) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        average_precision([1], [])


def test_map_matches_reciprocal_rank_for_one_relevant() -> None:
    rng = np.random.default_rng(0)
    d = rng.random((20, 15))
    truth = rng.integers(0, 15, 20)
    ranked = rank_by_distance(d)
    rr = [1 / (1 + int(np.nonzero(ranked[q] == truth[q])[0][0])) for q in range(20)]
    assert mean_average_precision(ranked, truth) == pytest.approx(np.mean(rr))


def test_rank_by_distance_sorts_and_truncates() -> None:
    d = np.array([[0.3, 0.1, 0.2], [0.0, 0.5, 0.0]])
    assert rank_by_distance(d).tolist() == [[1, 2, 0], [0, 2, 1]]
    assert rank_by_distance(d, 1).tolist() == [[1], [0]]


def test_knn_recall_counts_overlap_not_order() -> None:
    exact = np.array([[1, 2, 3], [4, 5, 6]])
    found = np.array([[3, 2, 1], [4, 9, 8]])
    assert knn_recall(found, exact, 3) == pytest.approx((1 + 1 / 3) / 2)
    assert knn_recall(found, exact, 1) == pytest.approx(0.5)


def test_knn_recall_ignores_padding() -> None:
    truth = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    assert knn_recall(truth, truth) == 1.0
    assert knn_recall(np.array([[1, 2, 9, 9], [8, -1, -1, -1]]), truth) == pytest.approx((0.5 + 0.25) / 2)
