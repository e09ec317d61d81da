"""The image loader: every awkward file decodes correctly, every broken one raises a typed error."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from lookalike.embed.images import image_info, load_image, to_rgb
from lookalike.errors import (
    DecompressionBombError,
    EmptyFileError,
    ImageLoadError,
    NotAnImageError,
    TruncatedImageError,
)
from tests.corpus import bad_files, odd_files

EXPECTED_ERRORS = {
    "zero-byte": EmptyFileError,
    "truncated": TruncatedImageError,
    "text": NotAnImageError,
    "bomb": DecompressionBombError,
}


@pytest.mark.parametrize("kind", sorted(EXPECTED_ERRORS))
def test_bad_file_raises_typed_error(kind, tmp_path, photos):
    path = bad_files(tmp_path, photos[0])[kind]
    with pytest.raises(EXPECTED_ERRORS[kind]) as info:
        load_image(path)
    assert isinstance(info.value, ImageLoadError)
    assert str(path) in str(info.value)
    assert info.value.reason


def test_bomb_is_refused_before_decoding(tmp_path):
    from tests.corpus import png_header_only

    path = png_header_only(tmp_path / "big.png", 30000, 30000)
    with pytest.raises(DecompressionBombError, match="pixels"):
        load_image(path)
    # a smaller limit applies to ordinary images too
    small = tmp_path / "small.png"
    Image.new("RGB", (100, 100)).save(small)
    with pytest.raises(DecompressionBombError):
        load_image(small, max_pixels=5000)


@pytest.mark.parametrize("kind", ["cmyk", "16-bit", "palette-transparent", "rgba", "la", "animated-gif",
                                  "exif-rotated"])
def test_odd_file_decodes_to_correct_rgb(kind, tmp_path, photos):
    path, expected = odd_files(tmp_path, photos[3])[kind]
    img = load_image(path)
    assert img.mode == "RGB"
    got = np.asarray(img).astype(np.int16)
    assert got.shape == expected.shape
    tolerance = 12 if path.suffix == ".jpg" else 1  # JPEG re-encoding noise
    assert np.abs(got - expected).mean() <= tolerance


def test_exif_orientation_applied_to_size(tmp_path, photos):
    path, expected = odd_files(tmp_path, photos[0])["exif-rotated"]
    assert load_image(path).size == (expected.shape[1], expected.shape[0])
    info = image_info(path)
    assert info["orientation"] == 6 and (info["width"], info["height"]) == (96, 64)


def test_bytes_source_and_draft(photos):
    data = photos[0].read_bytes()
    full = load_image(data)
    small = load_image(photos[0], draft=64)
    assert full.size == Image.open(photos[0]).size
    assert min(small.size) >= 64 and small.size[0] <= full.size[0]
    with pytest.raises(EmptyFileError):
        load_image(b"")


def test_missing_file_is_a_load_error(tmp_path):
    with pytest.raises(ImageLoadError, match="No such file"):
        load_image(tmp_path / "nope.jpg")


@pytest.mark.parametrize("mode", ["1", "L", "I", "F", "YCbCr", "HSV", "LAB", "RGBa"])
def test_to_rgb_handles_every_mode(mode):
    img = Image.new("RGB", (8, 8), (10, 200, 30))
    if mode in ("I", "F"):
        img = img.convert("L").convert(mode)
    elif mode == "RGBa":
        img = img.convert("RGBA").convert("RGBa")
    else:
        img = img.convert(mode)
    out = to_rgb(img)
    assert out.mode == "RGB" and out.size == (8, 8)
