"""Tuned metrics as bundles: the CLI, the registry, resume, export/import, removal, tampering."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lookalike.embed.factory import create_metric

from lookalike.embed.registry import get_config, list_metrics
from lookalike.errors import UsageError, WeightsCorruptError
from lookalike.tune import bundles
from lookalike.tune.trainer import runs_dir, tune
from tests.tune_data import write_rule_nights


def _class_folders(root: Path, photos: list[Path], n: int = 8) -> Path:
    """Three classes: the photos, their grey versions, their mirrored corner crops."""
    from tests.tune_data import recolour, reframe

    import random

    rng = random.Random(0)
    for i, p in enumerate(photos[:n]):
        with Image.open(p) as im:
            im = im.convert("RGB").resize((48, 48))
        for cls, out in (("photo", im), ("grey", recolour(im, rng)), ("crop", reframe(im, rng))):
            (root / cls).mkdir(parents=True, exist_ok=True)
            out.save(root / cls / f"{i:02d}.png")
    return root


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory, photos: list[Path]) -> Path:
    return _class_folders(tmp_path_factory.mktemp("classes") / "data", photos)


def test_cli_tunes_registers_lists_uses_and_removes_a_metric(folders: Path, cli, tmp_path: Path) -> None:
    proc = cli("tune", "tiny-vit", "--data", str(folders), "--method", "mlp", "--name", "tv-mine",
               "--epochs", "3", "--json", "-q")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["metric"] == "tv-mine" and out["method"] == "mlp" and out["base"] == "tiny-vit"
    assert [r["epoch"] for r in out["report"]] == [0, 1, 2, 3]
    vals = {r["epoch"]: r["val_2afc"] for r in out["report"] if r["epoch"] >= 1}
    assert out["best_epoch"] == max(vals, key=lambda e: (vals[e], -e))  # first epoch with the best val
    assert out["data"]["layout"] == "folders" and out["data"]["triplets"]["test"] > 0
    folder = Path(out["path"])
    assert (folder / "metric.json").is_file() and (folder / "head.safetensors").is_file()
    listed = {m["name"]: m for m in json.loads(cli("metrics", "--all", "--json").stdout)}
    assert listed["tv-mine"]["dim"] == 32
    # the tuned metric is a metric: `lookalike eval` scores it like any other
    proc = cli("eval", "2afc", "--data", str(write_rule_nights(tmp_path / "n", sorted(folders.glob("photo/*"))[:6])),
               "-m", "tv-mine", "-m", "tiny-vit", "--json", "--bootstrap", "10", "-q")
    assert proc.returncode == 0, proc.stderr
    assert [m["metric"] for m in json.loads(proc.stdout)["metrics"]] == ["tv-mine", "tiny-vit"]
    assert cli("metrics", "remove", "tv-mine", "-q").returncode == 0
    assert "tv-mine" not in {m["name"] for m in json.loads(cli("metrics", "--all", "--json").stdout)}
    proc = cli("metrics", "remove", "effnet-lite0")
    assert proc.returncode == 2 and "built-in" in proc.stderr and "Traceback" not in proc.stderr


def test_the_tuned_metric_is_base_then_head_and_tampering_is_refused(folders: Path, photos: list[Path]) -> None:
    result = tune("tiny-vit", folders, "mlp", "tv-head", epochs=2, progress=False)
    assert result is not None and "tv-head" in list_metrics(include_test=True)
    images = photos[:5]
    tuned, base = create_metric("tv-head", device="cpu"), create_metric("tiny-vit", device="cpu")
    from lookalike.embed.backbones.tuned import load_head

    head = load_head(str(result.path / "head.safetensors"), 32, 512)
    import torch

    expected = torch.nn.functional.normalize(head(torch.from_numpy(base.embed(images))), dim=1).numpy()
    np.testing.assert_allclose(tuned.embed(images), expected, atol=1e-5)
    assert not np.allclose(tuned.embed(images), base.embed(images), atol=1e-3)
    with open(result.path / "head.safetensors", "r+b") as fh:  # flip bytes at the end of the file
        fh.seek(-4, 2)
        fh.write(b"\x00\x01\x02\x03")
    with pytest.raises(WeightsCorruptError):
        create_metric("tv-head", device="cpu")


def test_export_then_import_on_another_machine_gives_the_same_vectors(folders: Path, photos: list[Path],
                                                                      tmp_path: Path, monkeypatch) -> None:
    tune("tiny-vit", folders, "mlp", "tv-ship", epochs=2, progress=False)
    before = create_metric("tv-ship", device="cpu").embed(photos[:4])
    archive = bundles.export("tv-ship", tmp_path)
    monkeypatch.setenv("LOOKALIKE_HOME", str(tmp_path / "other-home"))
    with pytest.raises(UsageError):
        get_config("tv-ship")
    config = bundles.import_bundle(archive)
    assert config.name == "tv-ship"
    np.testing.assert_array_equal(create_metric("tv-ship", device="cpu").embed(photos[:4]), before)
    # a bundle whose weights do not match its digests is refused before it is registered
    bad = tmp_path / "bad"
    shutil.copytree(bundles.bundle_dir("tv-ship"), bad)
    (bad / "head.safetensors").write_bytes(b"not the weights")
    bundles.remove("tv-ship")
    with pytest.raises(WeightsCorruptError):
        bundles.import_bundle(bad)
    assert "tv-ship" not in list_metrics(include_test=True)


def test_a_stopped_run_resumes_to_the_same_result(folders: Path) -> None:
    full = tune("tiny-vit", folders, "mlp", "tv-full", epochs=4, progress=False)
    assert tune("tiny-vit", folders, "mlp", "tv-part", epochs=4, progress=False, stop_after=2) is None
    assert (runs_dir() / "tv-part" / "checkpoint.pt").is_file()
    assert "tv-part" not in list_metrics(include_test=True)
    with pytest.raises(UsageError, match="another base metric, data or hyperparameters"):
        tune("tiny-vit", folders, "mlp", "tv-part", epochs=5, progress=False, resume=True)
    part = tune("tiny-vit", folders, "mlp", "tv-part", epochs=4, progress=False, resume=True)
    assert part is not None and not (runs_dir() / "tv-part").exists()
    strip = lambda rep: [{k: v for k, v in r.items() if k not in ("seconds", "time_to_best_s")} for r in rep]  # noqa: E731
    assert strip(part.record["report"]) == strip(full.record["report"])
    assert part.record["best_epoch"] == full.record["best_epoch"]


def test_bad_requests_are_one_line_errors(folders: Path, cli) -> None:
    proc = cli("tune", "effnet-lite0", "--data", str(folders), "--method", "lora", "--name", "x")
    assert proc.returncode == 2 and "qkv" in proc.stderr and "Traceback" not in proc.stderr
    proc = cli("tune", "tiny-vit", "--data", str(folders), "--method", "mlp", "--name", "../evil")
    assert proc.returncode == 2 and "metric name" in proc.stderr and "Traceback" not in proc.stderr
    with pytest.raises(UsageError, match="LPIPS"):
        tune("tiny-vit", folders, "lpips-linear", "x", progress=False)
    with pytest.raises(UsageError, match="built-in"):
        tune("tiny-vit", folders, "mlp", "tiny-vit-b", progress=False)
    with pytest.raises(UsageError, match="no such data folder"):
        tune("tiny-vit", folders / "nowhere", "mlp", "x", progress=False)
    with pytest.raises(UsageError, match="unknown tuning method"):
        tune("tiny-vit", folders, "sgd", "x", progress=False)
