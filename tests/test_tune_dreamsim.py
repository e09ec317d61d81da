"""LoRA tuning on the DreamSim code path (random weights in the official layout): a full epoch on
the CPU, and the saved adapter loads with plain peft onto the base network with equal vectors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lookalike.embed.backbones import fake_weights
from lookalike.embed.factory import create_metric
from lookalike.embed.registry import get_config
from lookalike.paths import weights_dir
from lookalike.tune.trainer import tune
from tests.tune_data import write_rule_nights

BASE = "dreamsim-clip-vitb32"  # single branch, ViT-B/32: the cheapest DreamSim variant


@pytest.mark.slow  # a ViT-B forward and backward pass on the CPU
def test_lora_on_dreamsim_trains_an_epoch_and_plain_peft_loads_the_adapter(photos: list[Path], tmp_path: Path) -> None:
    from peft import PeftModel

    fake_weights.write_metric_weights(get_config(BASE), weights_dir(), seed=0)
    data = write_rule_nights(tmp_path / "nights", photos[:10], per_ref=1)  # 7 train, 1 val, 2 test triplets
    result = tune(BASE, data, "lora", "dreamsim-mine", epochs=1, batch_size=4, progress=False)
    assert result is not None
    rec = result.record
    assert [r["epoch"] for r in rec["report"]] == [0, 1] and rec["report"][1]["train_loss"] > 0
    hp = rec["hyperparameters"]  # the released single-branch recipe
    assert (hp["lora_r"], hp["lora_alpha"], hp["lora_dropout"], hp["lr"], hp["betas"], hp["margin"]) == \
        (16, 32.0, 0.2, 3e-4, [0.5, 0.999], 0.05)
    adapter = result.path / "adapter"
    cfg = json.loads((adapter / "adapter_config.json").read_text())
    assert cfg["target_modules"] == ["qkv"] and cfg["r"] == 16 and cfg["lora_alpha"] == 32
    assert (adapter / "adapter_model.safetensors").is_file()

    base = create_metric(BASE, device="cpu")
    tuned = create_metric("dreamsim-mine", device="cpu")
    from lookalike.embed.images import load_image
    from lookalike.embed.preprocess import prepare, to_tensor

    x = to_tensor(np.stack([prepare(load_image(p), base.config.preprocess) for p in photos[:4]]))
    plain = PeftModel.from_pretrained(base.module, str(adapter)).eval()
    with torch.no_grad():
        ours = torch.nn.functional.normalize(tuned.module(x), dim=1)
        theirs = torch.nn.functional.normalize(plain(x), dim=1)
    assert torch.max(torch.abs(ours - theirs)) <= 1e-5
    np.testing.assert_allclose(tuned.embed(photos[:4]), theirs.numpy(), atol=1e-5)
    # the adapter changed something: its B matrices are no longer zero after an epoch
    from safetensors.torch import load_file

    state = load_file(str(adapter / "adapter_model.safetensors"))
    assert any("lora_B" in k and v.abs().max() > 0 for k, v in state.items())
