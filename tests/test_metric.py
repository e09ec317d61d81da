"""Metric behaviour on real photos with the real effnet-lite0 weights (and the tiny test metric)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from lookalike.embed.factory import create_metric
from lookalike.errors import UsageError
from tests.corpus import bad_files, odd_files


@pytest.fixture(scope="module")
def effnet():
    return create_metric("effnet-lite0", device="cpu")


@pytest.fixture(scope="module")
def gallery(effnet, photos):
    result = effnet.embed_paths([str(p) for p in photos], workers=1, progress=False)
    assert not result.failures
    return result.vectors


def test_vectors_are_unit_norm_and_deterministic(effnet, photos, gallery):
    assert gallery.shape == (len(photos), 1280) and gallery.dtype == np.float32
    assert np.allclose(np.linalg.norm(gallery, axis=1), 1.0, atol=1e-5)
    again = effnet.embed([photos[5]])
    assert np.allclose(again[0], gallery[5], atol=1e-5)


def test_overlapping_crops_are_closer_than_95_percent_of_other_photos(effnet, photos, gallery):
    rng = np.random.default_rng(0)
    picked = rng.choice(len(photos), size=40, replace=False)
    fractions = []
    for i in picked:
        img = Image.open(photos[i]).convert("RGB")
        w, h = img.size
        left = img.crop((0, 0, int(w * 0.75), h))  # the two crops share half of the photo
        right = img.crop((int(w * 0.25), 0, w, h))
        a, b = effnet.embed([left, right])
        d_pair = 1 - float(a @ b)
        d_others = 1 - np.delete(gallery, i, axis=0) @ a
        fractions.append(float((d_others > d_pair).mean()))
    fractions = np.array(fractions)
    assert np.median(fractions) >= 0.99
    assert (fractions >= 0.95).mean() >= 0.9, fractions


def test_exif_rotated_copy_embeds_like_upright_original(effnet, photos, tmp_path):
    for photo in photos[:5]:
        upright = Image.open(photo).convert("RGB")
        exif = Image.Exif()
        exif[0x0112] = 6
        path = tmp_path / f"rot-{photo.name}"
        upright.transpose(Image.Transpose.ROTATE_90).save(path, exif=exif, quality=95)
        a, b = effnet.embed([upright, path])
        assert float(a @ b) >= 0.98


def test_batch_with_bad_files_embeds_good_ones_and_reports_bad(effnet, photos, tmp_path):
    bad = bad_files(tmp_path / "bad", photos[0])
    odd = odd_files(tmp_path / "odd", photos[1])
    good = [str(p) for p in photos[:6]] + [str(p) for p, _ in odd.values()]
    paths = good[:3] + [str(p) for p in bad.values()] + good[3:]
    result = effnet.embed_paths(paths, batch_size=4, workers=1, progress=False)
    assert result.paths == good
    assert {p for p, _ in result.failures} == {str(p) for p in bad.values()}
    reasons = dict(result.failures)
    assert "empty" in reasons[str(bad["zero-byte"])]
    assert "not an image" in reasons[str(bad["text"])]
    # the good files got the same vectors as when embedded alone
    alone = effnet.embed(good[:3])
    assert np.allclose(result.vectors[:3], alone, atol=1e-5)


def test_inputs_pil_array_and_path_agree(photos):
    tiny = create_metric("tiny-vit", device="cpu")
    img = Image.open(photos[2]).convert("RGB")
    v = tiny.embed([img, np.asarray(img), photos[2]])
    assert np.allclose(v[0], v[1]) and np.allclose(v[0], v[2], atol=1e-6)
    with pytest.raises(ValueError):
        tiny.embed([np.zeros((4, 4), np.float32)])


def test_distances_and_provenance(photos):
    tiny = create_metric("tiny-vit", device="cpu")
    v = tiny.embed(photos[:4])
    d = tiny.distances(v, v)
    assert d.shape == (4, 4) and np.allclose(np.diag(d), 0, atol=1e-5) and np.allclose(d, d.T, atol=1e-6)
    prov = tiny.provenance()
    assert prov["metric"] == "tiny-vit" and prov["config"]["dim"] == 32
    assert prov["packages"]["torch"].startswith("2.")


def test_effnet_provenance_pins_weights_checksum(effnet):
    weights = effnet.provenance()["config"]["weights"]
    assert len(weights[0]["sha256"]) == 64


def test_int8_precision_runs_on_cpu(photos):
    fp32 = create_metric("tiny-vit", device="cpu")
    int8 = create_metric("tiny-vit", device="cpu", precision="int8")
    a, b = fp32.embed(photos[:3]), int8.embed(photos[:3])
    assert a.shape == b.shape and np.all(np.sum(a * b, axis=1) > 0.9)
    with pytest.raises(UsageError):
        create_metric("tiny-vit", device="cpu", precision="fp8")
    with pytest.raises(UsageError, match="does not offer int8"):
        create_metric("effnet-lite0", device="cpu", precision="int8")
