"""Near-duplicate grouping: union-find, candidate links, calibrated thresholds on real photos."""

from __future__ import annotations

import numpy as np
import pytest

from lookalike.embed.images import load_image
from lookalike.search import dupes
from lookalike.search.augment import apply
from lookalike.search.rerank import brute_force


def test_union_find_merges_transitively() -> None:
    uf = dupes.UnionFind(6)
    uf.union(0, 1)
    uf.union(1, 2)
    uf.union(4, 5)
    labels = uf.labels()
    assert labels[0] == labels[1] == labels[2]
    assert labels[4] == labels[5]
    assert len({labels[0], labels[3], labels[4]}) == 3


def test_candidate_links_threshold_and_padding() -> None:
    ids = np.array([[1, 2], [0, 2], [1, -1], [2, 0]])
    dists = np.array([[0.1, 0.5], [0.1, 0.2], [0.2, 0.0], [0.9, 0.9]])

    def groups(t: float, min_size: int = 2) -> list[list[int]]:
        return dupes.components(len(ids), dupes.candidate_pairs(ids, dists, t), min_size)

    assert groups(0.05) == []
    assert groups(0.15) == [[0, 1]]
    assert groups(0.2) == [[0, 1, 2]]  # -1 padding ignored
    assert groups(1.0) == [[0, 1, 2, 3]]
    assert groups(0.2, min_size=1) == [[0, 1, 2], [3]]
    assert dupes.candidate_pairs(ids, dists, 0.15) == [(0, 1, 0.1)]  # each pair once, i < j
    with pytest.raises(ValueError):
        dupes.candidate_pairs(ids, dists[:, :1], 0.1)


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
    dist, nbr = brute_force(vectors, vectors, len(vectors), "cosine")  # rows are ids; self links dropped

    def groups(threshold: float) -> list[list[int]]:  # what `dupes --no-verify` does
        return dupes.complete_linkage(vectors, dupes.candidate_pairs(nbr, dist, threshold), threshold, "cosine")

    assert sorted(groups(dupes.calibrate("effnet-lite0"))) == [[3 * i, 3 * i + 1, 3 * i + 2] for i in range(8)]
    assert groups(0.0) == []
    assert groups(2.0) == [list(range(24))]
