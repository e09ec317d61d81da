"""Near-duplicate grouping: union-find, exact kNN graph, calibrated thresholds on real photos."""

from __future__ import annotations

import numpy as np
import pytest

from lookalike.embed.distance import pairwise
from lookalike.embed.images import load_image
from lookalike.search import dupes
from lookalike.search.augment import apply


def test_union_find_merges_transitively() -> None:
    uf = dupes.UnionFind(6)
    uf.union(0, 1)
    uf.union(1, 2)
    uf.union(4, 5)
    labels = uf.labels()
    assert labels[0] == labels[1] == labels[2]
    assert labels[4] == labels[5]
    assert len({labels[0], labels[3], labels[4]}) == 3


def test_knn_graph_matches_brute_force() -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((50, 8)).astype(np.float32)
    for kind in ("cosine", "sqeuclidean"):
        ids, dists = dupes.knn_graph(x, 5, kind, chunk=7)
        d = pairwise(x, x, kind)
        np.fill_diagonal(d, np.inf)
        assert (ids == np.argsort(d, axis=1, kind="stable")[:, :5]).all()
        assert np.allclose(dists, np.sort(d, axis=1)[:, :5], atol=1e-5)
        assert not (ids == np.arange(50)[:, None]).any()


def test_knn_graph_small_inputs() -> None:
    ids, _ = dupes.knn_graph(np.ones((1, 4), np.float32), 3)
    assert ids.shape == (1, 0)
    ids, _ = dupes.knn_graph(np.eye(3, dtype=np.float32), 10)
    assert ids.shape == (3, 2)


def test_groups_from_graph_threshold_and_padding() -> None:
    ids = np.array([[1, 2], [0, 2], [1, -1], [2, 0]])
    dists = np.array([[0.1, 0.5], [0.1, 0.2], [0.2, 0.0], [0.9, 0.9]])
    assert dupes.groups_from_graph(ids, dists, 0.05) == []
    assert dupes.groups_from_graph(ids, dists, 0.15) == [[0, 1]]
    assert dupes.groups_from_graph(ids, dists, 0.2) == [[0, 1, 2]]  # -1 padding ignored
    assert dupes.groups_from_graph(ids, dists, 1.0) == [[0, 1, 2, 3]]
    assert dupes.groups_from_graph(ids, dists, 0.2, min_size=1) == [[0, 1, 2], [3]]
    with pytest.raises(ValueError):
        dupes.groups_from_graph(ids, dists[:, :1], 0.1)


def test_calibration_is_stored_for_effnet_and_bands_are_ordered() -> None:
    cal = dupes.calibration("effnet-lite0")
    assert cal.distance == "cosine"
    assert list(cal.bands) == sorted(cal.bands)
    assert 0 < cal.threshold <= cal.bands[1]
    assert dupes.calibrate("effnet-lite0") == cal.threshold
    with pytest.raises(dupes.NotCalibratedError):
        dupes.calibrate("no-such-metric")


def test_meaning_is_monotonic_in_distance() -> None:
    cal = dupes.calibration("effnet-lite0")
    order = [*dupes.LABELS, dupes.DIFFERENT]
    grid = np.linspace(0.0, 2.0, 401)
    ranks = [order.index(dupes.meaning(float(d), "effnet-lite0")) for d in grid]
    assert ranks == sorted(ranks)
    assert dupes.meaning(0.0, "effnet-lite0") == dupes.LABELS[0]
    assert dupes.meaning(2.0, "effnet-lite0") == dupes.DIFFERENT
    assert dupes.meaning(cal.bands[1], "effnet-lite0") in dupes.LABELS[:2]


def test_bands_from_samples_are_non_decreasing() -> None:
    bands = dupes.bands_from_samples(np.array([0.05]), np.array([0.02]), np.array([0.3]), np.linspace(0.1, 1, 100))
    values = list(bands.values())
    assert list(bands) == list(dupes.LABELS)
    assert values == sorted(values) and values[0] == values[1] == pytest.approx(0.05)


@pytest.mark.slow
def test_real_photos_group_with_their_edits(photos) -> None:
    """8 real photos, each with a re-encoded and an edited copy: the calibrated threshold finds
    exactly the 8 groups of 3 (and a zero threshold none)."""
    from lookalike.embed.factory import create_metric

    metric = create_metric("effnet-lite0", device="cpu")
    chosen = photos[::30][:8]
    images = []
    for i, path in enumerate(chosen):
        img = load_image(path)
        images += [img, apply("reencode:half", img, [0, i]), apply("edit:crop90", img, [1, i])]
    vectors = metric.embed(images)
    threshold = dupes.calibrate("effnet-lite0")
    groups = dupes.near_duplicate_groups(vectors, threshold, "cosine", k=5)
    assert sorted(groups) == [[3 * i, 3 * i + 1, 3 * i + 2] for i in range(8)]
    assert dupes.near_duplicate_groups(vectors, 0.0, "cosine") == []
    assert dupes.near_duplicate_groups(vectors, 2.0, "cosine", k=23) == [list(range(24))]
