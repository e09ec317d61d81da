"""The builder of tuned metrics (``lookalike tune``): build the base network, then apply the bundle's
weights (the bundle is read through :mod:`lookalike.embed.bundle`).

A tuned config's ``options``: ``base`` (the base metric's full config), ``method`` (``lora``,
``mlp`` or ``lpips-linear``), ``files`` (``{relative path: sha256}`` inside the bundle), plus per
method ``adapter`` (the peft folder), ``head`` (``{"file", "hidden", "normalize_input"}``) or
``lpips_heads`` (the safetensors file of LPIPS linear weights, lpips' key names).

``trainable=True`` continues tuning what the bundle tuned: ``lora``: the bundle's adapter, unmerged,
on the frozen base (its own released adapter merged), only the LoRA matrices requiring grad;
``mlp``: the head, on the base built ``trainable`` (so end to end, by the base family's rules);
``lpips-linear``: the tuned heads, trunk frozen (the LPIPS base's rules).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from lookalike.embed.config import MetricConfig
from lookalike.embed.options import TunedOptions, typed_options
from lookalike.errors import UsageError


class ResidualHead(nn.Module):
    """``x + fc2(relu(fc1(x)))``. ``fc2`` starts at zero, so an untrained head is the identity and
    tuning starts from the base metric exactly."""

    def __init__(self, dim: int, hidden: int = 512) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        nn.init.zeros_(self.fc2.weight)
        nn.init.zeros_(self.fc2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fc2(torch.relu(self.fc1(x)))


class HeadOnTop(nn.Module):
    """A base network followed by a head (inputs unit-normalised first for cosine metrics, as the
    head was trained on the base metric's normalised vectors)."""

    def __init__(self, base: nn.Module, head: ResidualHead, normalize_input: bool) -> None:
        super().__init__()
        self.base = base
        self.head = head
        self.normalize_input = normalize_input

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base(x).float()
        if self.normalize_input:
            y = nn.functional.normalize(y, dim=1)
        return self.head(y)


def load_head(path: str, dim: int, hidden: int) -> ResidualHead:
    """A head from its safetensors file (strict: every key, every shape)."""
    from safetensors.torch import load_file

    head = ResidualHead(dim, hidden)
    head.load_state_dict(load_file(path, device="cpu"), strict=True)
    return head.eval().requires_grad_(False)


def base_config(config: MetricConfig) -> MetricConfig:
    return MetricConfig.from_dict(typed_options(config).base)


def build_base(config: MetricConfig, trainable: bool = False) -> nn.Module:
    """The base metric's network on the CPU, built by its family
    (:func:`lookalike.embed.factory.build_network`)."""
    from lookalike.embed.factory import build_network

    return build_network(config, trainable=trainable, device="cpu")


def lpips_heads_from_file(path: Path, layers: int) -> list[torch.Tensor]:
    from lookalike.embed.backbones.common import load_state_dict_file
    from lookalike.embed.backbones.lpips import head_weights

    return head_weights(load_state_dict_file(str(path)), layers)


def apply(config: MetricConfig, net: nn.Module, folder: Path, trainable: bool = False) -> nn.Module:
    """``net`` (the base network) with the bundle's tuned weights applied (``trainable``: the tuned
    weights require grad and the result is in training mode; the base's own parameters are as
    ``net`` has them, except under a LoRA adapter, which freezes them)."""
    from lookalike.embed.bundle import inside

    o: TunedOptions = typed_options(config)
    method = o.method
    if method == "lora" and o.adapter:
        from lookalike.embed.backbones.dreamsim import apply_lora

        return apply_lora(net, inside(folder, o.adapter), trainable)
    if method == "mlp" and o.head:
        h = o.head
        head = load_head(str(inside(folder, h["file"])), int(h["dim"]), int(h["hidden"]))
        if trainable:
            head.requires_grad_(True)
        tuned = HeadOnTop(net, head, bool(h["normalize_input"]))
        return tuned.train() if trainable else tuned.eval()
    if method == "lpips-linear" and o.lpips_heads:
        from lookalike.embed.backbones.lpips import LpipsEmbedding, trainable_embedding

        if not isinstance(net, LpipsEmbedding):
            raise UsageError(f"{config.name}: lpips-linear needs an LPIPS base metric")
        heads = lpips_heads_from_file(inside(folder, o.lpips_heads), len(net.taps))
        return trainable_embedding(net.trunk, net.taps, heads, trainable)
    raise UsageError(f"{config.name}: tuning method {method!r} without its weights file")


def build(config: MetricConfig, trainable: bool = False) -> nn.Module:
    """Builder of a tuned metric registered as a bundle ``$LOOKALIKE_HOME/metrics/<name>/`` (its
    weight files are read from that folder only).
    ``trainable``: see the module docstring."""
    from lookalike.embed.bundle import bundle_dir, verify

    folder = bundle_dir(config.name)
    verify(folder, config)
    lora = typed_options(config).method == "lora"  # the adapter trains, not the base under it
    net = apply(config, build_base(base_config(config), trainable and not lora), folder, trainable)
    return net.train() if trainable else net.eval()
