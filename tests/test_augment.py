"""Known edits of a photo: deterministic, RGB, and doing what their names say."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from lookalike.embed.images import load_image
from lookalike.search import augment


@pytest.fixture(scope="module")
def photo(photos) -> Image.Image:
    return load_image(photos[0])


@pytest.mark.parametrize("name", [*augment.TRANSFORMS, *(f"reencode:{k}" for k in augment.REENCODE),
                                  *(f"edit:{k}" for k in augment.EDITS)])
def test_transform_is_deterministic_rgb_and_changes_pixels(photo: Image.Image, name: str) -> None:
    a = augment.apply(name, photo, [3, 4])
    b = augment.apply(name, photo, [3, 4])
    assert a.mode == "RGB"
    assert np.array_equal(np.asarray(a), np.asarray(b))
    if a.size == photo.size:
        assert not np.array_equal(np.asarray(a), np.asarray(photo))


def test_unknown_transform_is_refused(photo: Image.Image) -> None:
    with pytest.raises(KeyError, match="unknown transformation"):
        augment.apply("sepia", photo, 0)


def test_crop_fraction_size_and_position() -> None:
    img = Image.fromarray(np.arange(100 * 50 * 3, dtype=np.uint32).reshape(50, 100, 3).astype(np.uint8))
    out = augment.crop_fraction(img, 0.5, 1.0, 0.0)
    assert out.size == (50, 25)
    assert np.array_equal(np.asarray(out), np.asarray(img)[0:25, 50:100])


def test_rotate_crop_leaves_no_empty_corners() -> None:
    white = Image.new("RGB", (300, 200), (255, 255, 255))
    out = np.asarray(augment.rotate_crop(white, 15.0))
    assert out.shape[0] < 200 and out.shape[1] < 300
    assert out.min() >= 250  # no black fill from the rotation reached the crop


def test_flip_mirrors_and_downscale_shrinks(photo: Image.Image) -> None:
    flipped = augment.apply("flip", photo, 0)
    assert np.array_equal(np.asarray(flipped)[:, ::-1], np.asarray(photo))
    small = augment.downscale(photo, 0.25)
    assert small.size == (round(photo.width * 0.25), round(photo.height * 0.25))


def test_reframe_gives_two_different_overlapping_framings(photo: Image.Image) -> None:
    a, b = augment.reframe(photo, np.random.default_rng(0))
    assert a.size == b.size
    assert not np.array_equal(np.asarray(a), np.asarray(b))
