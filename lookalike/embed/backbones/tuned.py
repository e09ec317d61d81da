"""Tuned metrics (``lookalike tune``): the builder a bundle's config names.

Metric configs may only name ``lookalike.embed.backbones.<module>:build`` (the builder allow-list);
this module is that name for tuned metrics and hands over to :func:`lookalike.tune.apply.build`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

    from lookalike.embed.config import MetricConfig


def build(config: MetricConfig, trainable: bool = False) -> nn.Module:
    """The tuned network of ``config``: its base metric with the bundle's adapter, head or weights
    (``trainable`` is passed on: see :func:`lookalike.tune.apply.build`)."""
    from lookalike.tune.apply import build as build_tuned

    return build_tuned(config, trainable)
