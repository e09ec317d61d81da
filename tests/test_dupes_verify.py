"""Geometric verification of "same photo" claims on real photos, and the grouping helpers it feeds."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from lookalike.embed.images import load_image
from lookalike.search import dupes
from lookalike.search.augment import apply
from lookalike.search.verify import MIN_INLIERS, MIN_RATIO, features, verify_features, verify_pair

#: Distinct photos that effnet-lite0 puts closer than many real copies (cosine distance in brackets).
LOOKALIKES = [
    ("hammer2.webp", "hammer9.webp"),  # 0.273
    ("hammer2.webp", "hammer1.webp"),  # 0.281
    ("hammer9.webp", "hammer8.webp"),  # 0.272
    ("usCapitol.webp", "victoriaMemorial.webp"),  # 0.3235
    ("numbers.webp", "alphabets.webp"),  # 1-2-3 vs A-B-C blocks, 0.098
    ("windmill4.webp", "windmill11.webp"),  # 0.305
    ("qutubMinar.webp", "kutubMinar.webp"),  # two photos of one tower
    ("left.jpg", "right.jpg"),  # a stereo pair: one scene, two viewpoints
]


@pytest.fixture(scope="module")
def by_original(photos):
    """Manifest 'original' name -> photo path (the first when a name repeats)."""
    with open(photos[0].parent / "MANIFEST.csv", newline="") as fh:
        out: dict[str, object] = {}
        for row in csv.DictReader(fh):
            out.setdefault(row["original"], photos[0].parent / row["file"])
    return out


@pytest.mark.parametrize(("a", "b"), LOOKALIKES)
def test_distinct_lookalikes_are_not_the_same_photo(by_original, a, b) -> None:
    check = verify_pair(by_original[a], by_original[b])
    assert not check.same, check


@pytest.mark.parametrize("edit", ["reencode:jpeg70", "reencode:half", "edit:crop80", "edit:rotate5",
                                  "edit:jitter", "edit:thumbnail", "edit:combo"])
def test_copies_of_real_photos_are_the_same_photo(photos, edit) -> None:
    chosen = photos[5::40][:5]
    for i, path in enumerate(chosen):
        img = load_image(path)
        check = verify_features(features(path), features(apply(edit, img, [3, i])))
        assert check.same and check.inliers >= MIN_INLIERS and check.ratio >= MIN_RATIO, (path, check)


def test_verification_of_unrelated_and_blank_images(photos) -> None:
    blank = np.full((200, 300, 3), 128, np.uint8)
    check = verify_pair(blank, blank)
    assert not check.same and check.inliers == 0  # no features: no evidence, not "same"
    assert not verify_pair(photos[0], photos[1]).same


def test_candidate_pairs_are_unique_nearest_first() -> None:
    ids = np.array([[1, 2], [0, 2], [1, -1]])
    dists = np.array([[0.1, 0.5], [0.1, 0.2], [0.2, 0.0]])
    assert dupes.candidate_pairs(ids, dists, 0.3) == [(0, 1, 0.1), (1, 2, 0.2)]
    assert dupes.candidate_pairs(ids, dists, 0.05) == []
    with pytest.raises(ValueError):
        dupes.candidate_pairs(ids, dists[:, :1], 0.1)


def test_components_and_complete_linkage_do_not_chain() -> None:
    assert dupes.components(5, [(0, 1, 30), (3, 4, 25)]) == [[0, 1], [3, 4]]
    # a chain 0 - 1 - 2 on a line (squared distances 0.09, 0.09; 0 and 2 are 0.36 apart)
    x = np.array([[0.0], [0.3], [0.6]])
    pairs = [(0, 1, 0.09), (1, 2, 0.09)]
    assert dupes.components(3, pairs) == [[0, 1, 2]]  # single links chain
    assert dupes.complete_linkage(x, pairs, 0.1, "sqeuclidean") == [[0, 1]]  # complete linkage does not
    assert dupes.complete_linkage(x, pairs + [(0, 2, 0.36)], 0.4, "sqeuclidean") == [[0, 1, 2]]
