"""Decoding in worker processes: order kept, errors reported per file."""

from __future__ import annotations

import numpy as np
import pytest

from lookalike.embed.config import Preprocess
from lookalike.embed.pipeline import batched, prepare_file, prepare_files
from lookalike.embed.preprocess import prepare
from lookalike.embed.images import load_image
from tests.corpus import bad_files


@pytest.mark.parametrize("workers", [0, 2])
def test_prepare_files_keeps_order_and_reports_errors(workers, photos, tmp_path):
    bad = bad_files(tmp_path, photos[0])
    paths = [str(photos[0]), str(bad["text"]), str(photos[1]), str(bad["truncated"]), str(photos[2])]
    pres = [Preprocess(32), Preprocess(48, "shorter-crop", "bilinear")]
    out = list(prepare_files(paths, pres, workers=workers))
    assert [p.path for p in out] == paths
    assert [p.error is None for p in out] == [True, False, True, False, True]
    for p in (out[0], out[2], out[4]):
        assert p.arrays[pres[0].key].shape == (32, 32, 3)
        assert p.arrays[pres[1].key].shape == (48, 48, 3)


def test_draft_decoding_stays_close_to_full_decoding(photos):
    pre = Preprocess(224)
    full = prepare(load_image(photos[4]), pre).astype(np.float32)
    fast = prepare_file(str(photos[4]), [pre]).arrays[pre.key].astype(np.float32)
    assert np.abs(full - fast).mean() < 3.0  # on a 0..255 scale


def test_shorter_side_crop_is_centred():
    from PIL import Image

    img = Image.new("RGB", (300, 100), (0, 0, 0))
    img.paste((255, 255, 255), (100, 0, 200, 100))  # white centre third
    out = prepare(img, Preprocess(50, "shorter-crop", "bilinear"))
    assert out.shape == (50, 50, 3) and out.mean() > 250


def test_batched():
    assert list(batched(range(5), 2)) == [[0, 1], [2, 3], [4]]
    assert list(batched([], 3)) == []
