"""The metric factory: a config (or a registered name) in, a ready metric or network out.

* :func:`create_metric`: an embedding metric (:class:`~lookalike.embed.metric.Metric`) or a
  pairwise one (:class:`~lookalike.embed.pairwise.PairwiseMetric`), by the config's ``kind``;
* :func:`embedding_metric` / :func:`pairwise_metric`: the two builders it picks from;
* :func:`build_network`: the torch network of an embedding metric, frozen or trainable;
* :func:`import_builder`: the ``build`` function a config names (lookalike's own backbones only).

Importing this module is cheap: torch is imported only when something is built.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lookalike.embed.config import MetricConfig, UnsafeConfigError, check_builder, check_config
from lookalike.errors import UsageError

if TYPE_CHECKING:
    import torch

    from lookalike.embed.metric import Metric
    from lookalike.embed.pairwise import PairwiseMetric

#: A builder turns a config into a module mapping (N, 3, S, S) floats in [0, 1] to (N, dim):
#: ``build(config, trainable=False)`` (see :mod:`lookalike.embed.backbones`); a pairwise family's
#: ``build(config, device)`` returns its scorer.
Builder = Callable[..., Any]


def _config(name: str | MetricConfig) -> MetricConfig:
    from lookalike.embed.registry import get_config

    return name if isinstance(name, MetricConfig) else get_config(name)


def import_builder(path: str) -> Builder:
    """The ``build`` function named by ``path``, which must pass :func:`check_builder` first:
    nothing outside ``lookalike.embed.backbones`` is ever imported for a config."""
    module, _, attr = check_builder(path).partition(":")
    try:
        func = getattr(importlib.import_module(module), attr, None)
    except ModuleNotFoundError as exc:
        if exc.name != module:  # a dependency of a real backbone is missing: say so
            raise
        func = None
    if not callable(func):
        raise UnsafeConfigError(f"refusing builder {path!r}: lookalike has no such backbone")
    return func


def build_network(config_or_name: str | MetricConfig, trainable: bool = False,
                  device: str | torch.device | None = None) -> torch.nn.Module:
    """The network of an embedding metric (a name or a config): ``(N, 3, S, S)`` floats in [0, 1]
    -> ``(N, dim)``, on ``device`` (``None``: CUDA when present, else the CPU).

    ``trainable=False``: what :func:`lookalike.create_metric` embeds with (eval mode, no parameter
    requires grad). ``trainable=True``: training mode with gradients on what the family tunes:
    all weights of tiny ViTs and untuned ViT baselines; EfficientNet's weights with BatchNorm
    statistics frozen; LPIPS's linear heads (trunk frozen); a DreamSim LoRA adapter, unmerged;
    a tuned bundle's adapter, or its head on a trainable base. Raises :class:`UsageError` for a
    pairwise metric (DiffSim), which has no embedding network.
    """
    import torch

    from lookalike.embed.device import pick_device

    config = check_config(_config(config_or_name))
    builder = import_builder(config.builder)
    if config.kind == "pairwise":
        if trainable:
            builder(config, pick_device(device), trainable=True)  # the family says why it cannot
        raise UsageError(f"{config.name} is a pairwise metric (it scores pairs of images, it has no "
                         "embedding network); use lookalike.create_metric to score with it")
    net = builder(config, trainable=bool(trainable))
    return net.to(pick_device() if device is None else torch.device(device))


def embedding_metric(config: MetricConfig, device: str | None = None, precision: str = "fp32") -> Metric:
    """An embedding metric of ``config`` on ``device``, ``fp32`` or ``int8`` (CPU only)."""
    import torch

    from lookalike.embed.device import pick_device
    from lookalike.embed.metric import Metric

    dev = pick_device(device)
    module = build_network(config, trainable=False, device="cpu")
    if precision == "int8":
        if dev.type != "cpu":
            raise UsageError("int8 dynamic quantisation runs on the CPU only")
        if not config.options.get("int8"):
            raise UsageError(f"{config.name} does not offer int8 (its top-10 neighbours were not "
                             "shown to agree with fp32); use --precision fp32")
        module = torch.ao.quantization.quantize_dynamic(module, {torch.nn.Linear}, dtype=torch.qint8)
    elif precision != "fp32":
        raise UsageError(f"unknown precision {precision!r} (fp32 or int8)")
    return Metric(config, module.to(dev), dev, precision)


def pairwise_metric(config: MetricConfig, device: str | None = None, precision: str = "fp32",
                    cache: bool = True) -> PairwiseMetric:
    """A pairwise metric of ``config`` (features cached on disk unless ``cache=False``)."""
    from lookalike.embed.device import pick_device
    from lookalike.embed.pairwise import PairwiseMetric

    if precision != "fp32":
        raise UsageError(f"{config.name} is a pairwise metric; it offers no {precision!r} mode "
                         "(it runs fp16 on CUDA, fp32 on the CPU)")
    check_config(config)
    dev = pick_device(device)
    return PairwiseMetric(config, import_builder(config.builder)(config, dev), dev, cache)


def create_metric(name: str | MetricConfig, device: str | None = None,
                  precision: str = "fp32") -> Metric | PairwiseMetric:
    """Build a ready-to-use metric. ``device=None`` picks CUDA when present, else the CPU."""
    config = _config(name)
    if config.kind == "pairwise":  # DiffSim & co: see lookalike.embed.pairwise
        return pairwise_metric(config, device=device, precision=precision)
    return embedding_metric(config, device=device, precision=precision)
