"""``lookalike distance``: LPIPS equals the lpips package's value; cosine metrics give 1 - cos."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_lpips_distance_equals_the_reference_package(cli, photos) -> None:
    lpips = pytest.importorskip("lpips")
    from lookalike.embed.images import load_image
    from lookalike.embed.preprocess import prepare, to_tensor
    from lookalike.embed.factory import create_metric

    a, b = str(photos[3]), str(photos[7])
    proc = cli("distance", a, b, "--metric", "lpips-alex-random", "--json", check=True)
    out = json.loads(proc.stdout)
    assert out["a"] == a and out["b"] == b
    (row,) = out["distances"]
    assert row["metric"] == "lpips-alex-random" and row["distance_kind"] == "sqeuclidean"

    metric = create_metric("lpips-alex-random", device="cpu")
    ref = lpips.LPIPS(pretrained=True, net="alex", pnet_rand=True, verbose=False).eval()
    ours = metric.module.trunk.state_dict()
    ref.net.load_state_dict({k: ours[re.sub(r"^slice\d+\.", "", k)] for k in ref.net.state_dict()})
    x = to_tensor(np.stack([prepare(load_image(p), metric.config.preprocess) for p in (a, b)]))
    with torch.inference_mode():
        want = float(ref(x[:1], x[1:], normalize=True))
    assert row["distance"] == pytest.approx(want, rel=1e-5)


def test_several_metrics_and_cosine(cli, photos) -> None:
    from lookalike.embed.factory import create_metric

    a, b = str(photos[0]), str(photos[1])
    proc = cli("distance", a, b, "-m", "tiny-vit", "-m", "lpips-squeeze-random", "-m", "tiny-vit",
               "--json", check=True)
    rows = json.loads(proc.stdout)["distances"]
    assert [r["metric"] for r in rows] == ["tiny-vit", "lpips-squeeze-random"]
    va, vb = create_metric("tiny-vit", device="cpu").embed([a, b])
    cos = float(va @ vb / np.linalg.norm(va) / np.linalg.norm(vb))
    assert rows[0]["distance_kind"] == "cosine"
    assert rows[0]["distance"] == pytest.approx(1 - cos, abs=1e-6)
    assert rows[1]["distance"] > 0

    text = cli("distance", a, b, "-m", "tiny-vit", "-m", "lpips-squeeze-random", check=True).stdout
    lines = text.strip().splitlines()
    assert len(lines) == 2 and lines[0].split()[0] == "tiny-vit"
    assert float(lines[1].split()[1]) == pytest.approx(rows[1]["distance"], rel=1e-5)


def test_an_image_is_at_distance_zero_from_itself(cli, photos) -> None:
    proc = cli("distance", str(photos[5]), str(photos[5]), "-m", "lpips-alex-random", "--json", check=True)
    assert json.loads(proc.stdout)["distances"][0]["distance"] == 0.0


def test_errors_have_the_documented_exit_codes(cli, photos, tmp_path) -> None:
    a = str(photos[0])
    unknown = cli("distance", a, a, "-m", "lpips-alexx")
    assert unknown.returncode == 2 and "lpips-alex" in unknown.stderr
    missing = cli("distance", a, a, "-m", "lpips-alex")
    assert missing.returncode == 2 and "alexnet-owt-7be5be79.pth" in missing.stderr
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    broken = cli("distance", a, str(bad), "-m", "tiny-vit")
    assert broken.returncode == 1 and "bad.jpg" in broken.stderr
    assert cli("distance", "--help").returncode == 0
