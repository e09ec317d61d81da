"""``lookalike eval 2afc`` of ``dreamsim`` equals the 2AFC that the reference repository's
``evaluation/score.py`` formula gives on the reference ``dreamsim`` package's own distances.

Weights are seeded random ones in the official layout, placed where dreamsim==0.2.1 looks (as in
``test_dreamsim_parity``); four NIGHTS-layout triplets of real photos with distinct soft targets,
so the score pins down which image each side found closer in every triplet."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("dreamsim.model", reason="reference dreamsim==0.2.1 not installed")

from tests.test_dreamsim_parity import prepare_weights, reference_model, reference_preprocess  # noqa: E402
from tests.judgment_data import write_nights  # noqa: E402

ROWS = [{"votes": 10, "left_vote": 9, "right_vote": 1, "split": "test", "is_imagenet": True},
        {"votes": 10, "left_vote": 3, "right_vote": 7, "split": "test", "is_imagenet": False},
        {"votes": 8, "left_vote": 6, "right_vote": 2, "split": "test", "is_imagenet": True},
        {"votes": 5, "left_vote": 2, "right_vote": 3, "split": "test", "is_imagenet": False}]


@pytest.mark.slow
def test_eval_dreamsim_equals_reference_score(tmp_path: Path, photos: list[Path], cli,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image

    home = tmp_path / "home"
    monkeypatch.setenv("LOOKALIKE_HOME", str(home))
    shared = {"home": home, "ref": tmp_path / "ref_cache"}
    prepare_weights("dreamsim", shared)
    data = write_nights(tmp_path / "nights", photos[40:], ROWS, size=96)

    proc = cli("eval", "2afc", "--data", str(data), "--metric", "dreamsim", "--json", "--bootstrap", "50",
               "--device", "cpu", env={"LOOKALIKE_HOME": str(home)})
    assert proc.returncode == 0, proc.stderr
    ours = json.loads(proc.stdout)["metrics"][0]["scores"][0]

    model = reference_model("dreamsim", shared, monkeypatch)

    def batch(kind: str) -> torch.Tensor:
        rels = {"ref": "ref/000/{:03d}.png", "left": "distort/000/{:03d}_0.png", "right": "distort/000/{:03d}_1.png"}
        return reference_preprocess([Image.open(data / rels[kind].format(i)).convert("RGB") for i in range(len(ROWS))])

    with torch.inference_mode():
        ref, left, right = batch("ref"), batch("left"), batch("right")
        d0 = model(ref, left).double().reshape(-1)
        d1 = model(ref, right).double().reshape(-1)
    target = torch.tensor([r["left_vote"] / (r["left_vote"] + r["right_vote"]) for r in ROWS], dtype=torch.float64)
    # evaluation/score.py, score_nights_dataset
    scores = (d0 < d1) * (1.0 - target) + (d1 < d0) * target + (d1 == d0) * 0.5
    reference = float(torch.mean(scores))
    assert float((d0 - d1).abs().min()) > 1e-4, "a near tie would make the comparison fragile"
    assert ours["value"] == pytest.approx(reference, abs=1e-12)
    assert ours["n"] == len(ROWS)
    assert 0.0 < reference < 1.0 and not np.isclose(reference, 0.5)
