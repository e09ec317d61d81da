"""The builder of tuned metrics: build the base network, then apply the bundle's weights.

A tuned config's ``options``: ``base`` (the base metric's full config), ``method`` (``lora``,
``mlp`` or ``lpips-linear``), ``files`` (``{relative path: sha256}`` inside the bundle), plus per
method ``adapter`` (the peft folder), ``head`` (``{"file", "hidden", "normalize_input"}``) or
``lpips_heads`` (the safetensors file of LPIPS linear weights, lpips' key names).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from lookalike.embed.config import MetricConfig
from lookalike.embed.options import TunedOptions, typed_options
from lookalike.errors import UsageError


def base_config(config: MetricConfig) -> MetricConfig:
    return MetricConfig.from_dict(typed_options(config).base)


def build_base(config: MetricConfig, trainable: bool = False) -> nn.Module:
    """The base metric's network (``trainable``: left in train mode with gradients on)."""
    from lookalike.embed.metric import import_builder

    net = import_builder(config.builder)(config)
    return net.train().requires_grad_(True) if trainable else net.eval()


def lpips_heads_from_file(path: Path, layers: int) -> list[torch.Tensor]:
    from lookalike.embed.backbones.common import load_state_dict_file
    from lookalike.embed.backbones.lpips import head_weights

    return head_weights(load_state_dict_file(str(path)), layers)


def apply(config: MetricConfig, net: nn.Module, folder: Path) -> nn.Module:
    """``net`` (the base network) with the bundle's tuned weights applied."""
    from lookalike.tune.bundles import inside

    o: TunedOptions = typed_options(config)
    method = o.method
    if method == "lora" and o.adapter:
        from lookalike.embed.backbones.dreamsim import apply_lora

        return apply_lora(net, inside(folder, o.adapter))
    if method == "mlp" and o.head:
        from lookalike.tune.heads import HeadOnTop, load_head

        h = o.head
        head = load_head(str(inside(folder, h["file"])), int(h["dim"]), int(h["hidden"]))
        return HeadOnTop(net, head, bool(h["normalize_input"]))
    if method == "lpips-linear" and o.lpips_heads:
        from lookalike.embed.backbones.lpips import LpipsEmbedding

        if not isinstance(net, LpipsEmbedding):
            raise UsageError(f"{config.name}: lpips-linear needs an LPIPS base metric")
        heads = lpips_heads_from_file(inside(folder, o.lpips_heads), len(net.taps))
        return LpipsEmbedding(net.trunk, net.taps, heads).requires_grad_(False)
    raise UsageError(f"{config.name}: tuning method {method!r} without its weights file")


def build(config: MetricConfig) -> nn.Module:
    """Builder of a tuned metric registered as a bundle ``$LOOKALIKE_HOME/metrics/<name>/`` (its
    weight files are read from that folder only; reached through
    :mod:`lookalike.embed.backbones.tuned`, the name the builder allow-list admits)."""
    from lookalike.tune.bundles import bundle_dir, verify

    folder = bundle_dir(config.name)
    verify(folder, config)
    return apply(config, build_base(base_config(config)), folder).eval()
