"""Learning is real: on triplets of the real photos labelled by a hidden rule the base metric does
not follow ("the edit that keeps the colours is closer"; every untuned network here prefers the
grey edit that keeps the framing), held-out 2AFC rises from the base value to >= 0.9."""

from __future__ import annotations

from pathlib import Path

import pytest

from lookalike.embed.config import MetricConfig, Preprocess
from lookalike.judgments.evaluate import evaluate
from lookalike.tune.trainer import tune
from tests.tune_data import write_rule_nights


@pytest.fixture(scope="module")
def rule_data(tmp_path_factory: pytest.TempPathFactory, photos: list[Path]) -> Path:
    """150 references, one triplet each: 105 train, 23 val, 22 test (split by reference)."""
    return write_rule_nights(tmp_path_factory.mktemp("rule") / "nights", photos[:150], per_ref=1)


@pytest.mark.slow  # embeds 450 images with effnet-lite0 once (cached); the head trains in seconds
def test_mlp_head_on_effnet_learns_the_hidden_rule(rule_data: Path) -> None:
    result = tune("effnet-lite0", rule_data, "mlp", "effnet-colour", progress=False)
    assert result is not None
    s = result.record["scores"]
    assert s["base"]["test_2afc"] < 0.5 and s["base"]["val_2afc"] < 0.5
    assert s["tuned"]["test_2afc"] >= 0.9 and s["tuned"]["val_2afc"] >= 0.9
    # test was only reported: the kept epoch is the first with the best validation score
    epochs = [r for r in result.record["report"] if r["epoch"] >= 1]
    best = max(r["val_2afc"] for r in epochs)
    assert result.record["best_epoch"] == next(r["epoch"] for r in epochs if r["val_2afc"] == best)
    # and the registered metric scores the same through `lookalike eval` (feature cache for the base)
    report = evaluate("2afc", rule_data, ["effnet-colour", "effnet-lite0"], split="test", n_boot=10,
                      progress=False).to_dict()
    got = {m["metric"]: m["scores"][0]["value"] for m in report["metrics"]}
    assert got["effnet-colour"] == pytest.approx(s["tuned"]["test_2afc"], abs=1e-9)
    assert got["effnet-lite0"] == pytest.approx(s["base"]["test_2afc"], abs=1e-9)


#: A tiny random-weight ViT like the catalog's ``tiny-vit`` (same builder), 64 wide: at 32 wide a
#: rank-16 LoRA on qkv reached only 0.86 held-out here.
TINY_VIT_64 = MetricConfig(name="tiny-vit-64", builder="lookalike.embed.backbones.tiny:build", dim=64,
                           test_only=True, preprocess=Preprocess(size=32, resize="squash", interpolation="bilinear"),
                           options={"seed": 0, "patch": 8, "width": 64, "depth": 2, "heads": 4})


@pytest.mark.slow  # 20 epochs of LoRA on a 2-block ViT, forward and backward on the CPU
def test_lora_on_a_tiny_random_vit_learns_the_hidden_rule(rule_data: Path) -> None:
    result = tune(TINY_VIT_64, rule_data, "lora", "tiny-colour", epochs=20, lr=3e-3, batch_size=16,
                  lora_alpha=16.0, lora_dropout=0.0, progress=False)
    assert result is not None
    s = result.record["scores"]
    assert s["base"]["test_2afc"] < 0.5 and s["base"]["val_2afc"] < 0.5
    assert s["tuned"]["test_2afc"] >= 0.9 and s["tuned"]["val_2afc"] >= 0.9
    report = evaluate("2afc", rule_data, ["tiny-colour"], split="test", n_boot=10, progress=False).to_dict()
    # the registered metric (adapter merged at build, images decoded by the pipeline) agrees
    assert report["metrics"][0]["scores"][0]["value"] >= 0.9
