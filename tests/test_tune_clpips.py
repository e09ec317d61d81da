"""CLPIPS: tuning only LPIPS's linear weights on rankings labelled by a hidden rule raises the
held-out Spearman, computed as `lookalike eval rank` computes it; weights stay non-negative and the
tuned metric's vectors give exactly the tuned LPIPS."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lookalike.embed.factory import create_metric
from lookalike.judgments.evaluate import evaluate
from lookalike.tune.trainer import tune
from tests.tune_data import write_rule_rankings


@pytest.fixture(scope="module")
def rankings(tmp_path_factory: pytest.TempPathFactory, photos: list[Path], seed: int) -> Path:
    return write_rule_rankings(tmp_path_factory.mktemp("rank") / "data", photos[:60], seed=seed)


@pytest.mark.learning
def test_clpips_raises_held_out_spearman(rankings: Path, seed: int) -> None:
    result = tune("lpips-alex-random", rankings, "lpips-linear", "lpips-mine", lr=3e-2, epochs=40, progress=False,
                  seed=seed)
    assert result is not None
    s = result.record["scores"]
    assert s["base"]["test_spearman"] < -0.5  # the base metric follows the noise, people the blur
    assert s["tuned"]["test_spearman"] > s["base"]["test_spearman"] + 0.5
    assert s["tuned"]["val_spearman"] > s["base"]["val_spearman"] + 0.5
    # the tuned metric is an LPIPS metric whose vectors give its distances; eval rank agrees with the report
    from safetensors.torch import load_file

    heads = load_file(str(result.path / "lpips_heads.safetensors"))
    assert len(heads) == 5 and all(float(w.min()) >= 0 for w in heads.values())
    data = result.record["data"]
    assert data["layout"] == "rankings"
    from lookalike.tune.datasets import load

    td = load(rankings, seed=seed)
    test_ranked = td.ranked["test"]
    from lookalike.judgments.datasets import Judgments

    report = evaluate("rank", Judgments("rankings", str(rankings), test_ranked), ["lpips-mine", "lpips-alex-random"],
                      n_boot=10, progress=False).to_dict()
    got = {m["metric"]: {x["score"]: x["value"] for x in m["scores"]} for m in report["metrics"]}
    assert got["lpips-mine"]["spearman"] == pytest.approx(s["tuned"]["test_spearman"], abs=1e-6)
    assert got["lpips-alex-random"]["spearman"] == pytest.approx(s["base"]["test_spearman"], abs=1e-6)
    assert got["lpips-mine"]["icc"] == pytest.approx(s["tuned"]["test_icc"], abs=1e-6)
    metric = create_metric("lpips-mine", device="cpu")
    assert metric.distance_kind == "sqeuclidean" and metric.dim == result.config.dim
    v = metric.embed([rankings / "targets/000.png", rankings / "candidates/000_1.png"])
    assert np.isfinite(v).all()
