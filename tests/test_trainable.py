"""Builders take ``trainable``: frozen networks embed exactly as ``create_metric`` does, trainable ones
put gradients where each family tunes (and nowhere else), through :func:`lookalike.build_network`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import lookalike
from lookalike.embed.backbones import fake_weights
from lookalike.embed.backbones import lpips as lpips_backbone
from lookalike.embed.images import load_image
from lookalike.embed.preprocess import prepare, to_tensor
from lookalike.embed.factory import create_metric
from lookalike.embed.registry import get_config
from lookalike.errors import UsageError
from lookalike.paths import weights_dir

build_network = lookalike.build_network


def _inputs(name: str, photos: list[Path], n: int = 2) -> torch.Tensor:
    pre = get_config(name).preprocess
    return to_tensor(np.stack([prepare(load_image(p), pre) for p in photos[:n]]))


def _vectors(net: torch.nn.Module, x: torch.Tensor, distance: str) -> np.ndarray:
    with torch.no_grad():
        y = net(x).float()
    if distance == "cosine":
        y = torch.nn.functional.normalize(y, dim=1)
    return y.numpy()


def _loss(net: torch.nn.Module, x: torch.Tensor, name: str) -> torch.Tensor:
    """The metric's distance between the two images' vectors, as tuning losses are built."""
    y = net(x).float()
    if get_config(name).distance == "cosine":
        return 1 - torch.nn.functional.cosine_similarity(y[:1], y[1:]).sum()
    return ((y[0] - y[1]) ** 2).sum()


def _check_frozen(name: str, net: torch.nn.Module, photos: list[Path]) -> None:
    assert not net.training and not any(m.training for m in net.modules())
    assert not any(p.requires_grad for p in net.parameters())
    metric = create_metric(name, device="cpu")
    x = _inputs(name, photos)
    np.testing.assert_array_equal(_vectors(net, x, metric.distance_kind), metric.embed(photos[:2]))


def _grads(net: torch.nn.Module) -> dict[str, bool]:
    """Parameter name -> whether a non-zero gradient reached it."""
    return {n: p.grad is not None and bool(p.grad.abs().sum() > 0) for n, p in net.named_parameters()}


def test_tiny_vit_frozen_embeds_as_create_metric_and_trainable_trains_every_weight(photos: list[Path]) -> None:
    _check_frozen("tiny-vit", build_network("tiny-vit"), photos)
    net = build_network("tiny-vit", trainable=True, device="cpu")
    assert net.training and all(p.requires_grad for p in net.parameters())
    assert all(p.device.type == "cpu" for p in net.parameters())
    _loss(net, _inputs("tiny-vit", photos), "tiny-vit").backward()
    grads = _grads(net)
    assert grads and all(grads.values()), [n for n, g in grads.items() if not g]


def test_effnet_trains_its_weights_with_batchnorm_statistics_frozen(photos: list[Path]) -> None:
    _check_frozen("effnet-lite0", build_network("effnet-lite0", device="cpu"), photos)
    net = build_network("effnet-lite0", trainable=True, device="cpu")
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert net.training and bns and not any(bn.training for bn in bns)
    net.train()  # a training loop's own train() keeps them frozen too
    assert not any(bn.training for bn in bns)
    stats = [(bn.running_mean.clone(), bn.running_var.clone(), int(bn.num_batches_tracked)) for bn in bns]
    _loss(net, _inputs("effnet-lite0", photos), "effnet-lite0").backward()
    for bn, (mean, var, seen) in zip(bns, stats, strict=True):
        assert torch.equal(bn.running_mean, mean) and torch.equal(bn.running_var, var)
        assert int(bn.num_batches_tracked) == seen
    grads = _grads(net)
    trains = {n for n, p in net.named_parameters() if p.requires_grad}
    assert {n for n in grads if n.startswith("net._fc.")} and not {n for n in trains if n.startswith("net._fc.")}
    assert trains and all(grads[n] for n in trains), [n for n in trains if not grads[n]]
    assert any(grads[n] for n in trains if "_bn" in n)  # BatchNorm's affine weights still train
    assert not any(grads[n] for n in grads if n not in trains)


def test_lpips_trains_its_linear_heads_and_the_trunk_only_when_asked(photos: list[Path]) -> None:
    name = "lpips-alex-random"  # the shipped v0.1 heads on a seeded random trunk
    _check_frozen(name, build_network(name, device="cpu"), photos)
    config = get_config(name)
    x = _inputs(name, photos)
    net = build_network(name, trainable=True, device="cpu")
    heads = {n for n, _ in net.named_parameters() if n.startswith("weight")}
    assert net.training and len(heads) == 5
    assert {n for n, p in net.named_parameters() if p.requires_grad} == heads
    assert net(x).shape == (2, config.dim)
    _loss(net, x, name).backward()
    grads = _grads(net)
    assert all(grads[n] for n in heads) and not any(grads[n] for n in grads if n not in heads)
    # same vectors as the frozen network: only the bookkeeping differs
    frozen = build_network(name, device="cpu")
    np.testing.assert_allclose(_vectors(net.eval(), x, config.distance), _vectors(frozen, x, config.distance),
                               rtol=1e-6, atol=1e-9)
    # lpips' pnet_tune: the trunk trains too
    deep = lpips_backbone.build(config, trainable=True, tune_trunk=True)
    assert all(p.requires_grad for p in deep.parameters())
    _loss(deep, x, name).backward()
    assert all(_grads(deep).values())
    with pytest.raises(UsageError):
        lpips_backbone.build(config, tune_trunk=True)


@pytest.mark.slow  # writes ~0.7 GB of random ViT-B/32 weights, runs two ViT-B/32 forward and backward passes
def test_dreamsim_keeps_its_lora_unmerged_and_trains_only_lora(photos: list[Path]) -> None:
    from peft import PeftModel

    name, baseline = "dreamsim-clip-vitb32", "clip-vitb32"  # LoRA-tuned; its untuned baseline
    for n in (name, baseline):
        fake_weights.write_metric_weights(get_config(n), weights_dir(), seed=0)
    x = _inputs(name, photos)
    frozen = build_network(name, device="cpu")
    _check_frozen(name, frozen, photos)
    net = build_network(name, trainable=True, device="cpu")
    assert isinstance(net, PeftModel) and net.training
    trains = {n for n, p in net.named_parameters() if p.requires_grad}
    assert trains and all("lora_A" in n or "lora_B" in n for n in trains)
    assert len(trains) == 2 * 12  # A and B on the qkv of every block
    # unmerged (eval mode: no LoRA dropout) equals merged
    want = _vectors(frozen, x, "cosine")
    got = _vectors(net.eval(), x, "cosine")
    assert np.abs(got - want).max() <= 1e-5
    net.train()
    _loss(net, x, name).backward()
    grads = _grads(net)
    assert all(grads[n] for n in trains) and not any(grads[n] for n in grads if n not in trains)

    base = build_network(baseline, trainable=True, device="cpu")  # no adapter: full fine-tuning
    assert base.training and all(p.requires_grad for p in base.parameters())
    _check_frozen(baseline, build_network(baseline, device="cpu"), photos)


def test_tuned_bundles_pass_trainable_on(photos: list[Path], tmp_path: Path) -> None:
    from lookalike.tune.trainer import tune
    from tests.tune_data import write_rule_nights

    data = write_rule_nights(tmp_path / "nights", photos[:6], per_ref=1)
    for method in ("lora", "mlp"):  # one epoch each on tiny-vit, registered in this test's home
        assert tune("tiny-vit", data, method, f"tiny-{method}", epochs=1, batch_size=4, progress=False)
    x = _inputs("tiny-vit", photos)

    _check_frozen("tiny-lora", build_network("tiny-lora", device="cpu"), photos)
    net = build_network("tiny-lora", trainable=True, device="cpu")
    trains = {n for n, p in net.named_parameters() if p.requires_grad}
    assert net.training and trains and all("lora_A" in n or "lora_B" in n for n in trains)
    _loss(net, x, "tiny-lora").backward()
    grads = _grads(net)
    assert all(grads[n] for n in trains) and not any(grads[n] for n in grads if n not in trains)

    _check_frozen("tiny-mlp", build_network("tiny-mlp", device="cpu"), photos)
    net = build_network("tiny-mlp", trainable=True, device="cpu")
    assert net.training and all(p.requires_grad for p in net.parameters())  # the head on a trainable tiny-vit
    _loss(net, x, "tiny-mlp").backward()
    grads = _grads(net)
    assert any(n.startswith("head.") for n in grads) and all(grads.values())

    assert tune("lpips-alex-random", data, "lpips-linear", "lpips-lin", epochs=1, batch_size=4, progress=False)
    _check_frozen("lpips-lin", build_network("lpips-lin", device="cpu"), photos)
    net = build_network("lpips-lin", trainable=True, device="cpu")
    heads = {n for n, p in net.named_parameters() if p.requires_grad}
    assert net.training and len(heads) == 5 and all(n.startswith("weight") for n in heads)
    _loss(net, _inputs("lpips-alex-random", photos), "lpips-lin").backward()
    grads = _grads(net)
    assert all(grads[n] for n in heads) and not any(grads[n] for n in grads if n not in heads)


def test_diffsim_refuses_to_be_trainable_and_has_no_embedding_network() -> None:
    with pytest.raises(UsageError, match="no trainable network"):
        build_network("tiny-diffsim", trainable=True)
    with pytest.raises(UsageError, match="pairwise"):
        build_network("tiny-diffsim")


def test_import_lookalike_stays_light_and_exports_build_network() -> None:
    from lookalike.embed.factory import build_network as public

    code = "import sys, lookalike; print('build_network' in lookalike.__all__, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.split() == ["True", "False"]
    assert lookalike.build_network is public
