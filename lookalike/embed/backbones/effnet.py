"""EfficientNet-Lite0 with its real ImageNet weights, shipped inside a PyPI wheel: works offline.

``trainable=True`` fine-tunes every weight, but its BatchNorm layers keep their ImageNet running
statistics (they stay in eval mode even when the network is put in training mode): similarity
tuning runs on batches of a few images, whose statistics would wreck them. Drop-connect (the
network's stochastic depth, rate 0.2) is active in training mode, as EfficientNet was trained.
The ImageNet classifier, which the features never use, stays frozen.
"""

from __future__ import annotations

import torch
from torch import nn

from lookalike.embed.backbones.common import (
    Normalize,
    freeze_batch_norm_stats,
    load_state_dict_file,
    set_trainable,
)
from lookalike.embed.config import MetricConfig
from lookalike.embed.options import EffnetOptions, typed_options
from lookalike.embed.weights import resolve


class PooledFeatures(nn.Module):
    """Normalise, run the convolutional trunk, global-average-pool: ``(N, 1280)``."""

    def __init__(self, net: nn.Module, mean: list[float], std: list[float]) -> None:
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.net = net

    def train(self, mode: bool = True) -> PooledFeatures:
        """Training mode everywhere except BatchNorm, whose running statistics stay frozen."""
        super().train(mode)
        freeze_batch_norm_stats(self)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.extract_features(self.normalize(x)).mean(dim=(2, 3))


def build(config: MetricConfig, trainable: bool = False) -> nn.Module:
    """EfficientNet-Lite's pooled features (``trainable``: see the module docstring)."""
    from efficientnet_lite_pytorch import EfficientNet

    opts: EffnetOptions = typed_options(config)
    net = EfficientNet.from_name(opts.model)
    state = load_state_dict_file(str(resolve(config.weights[0], config.name)))
    missing, unexpected = net.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise RuntimeError(f"{config.name}: weights do not fit: missing {missing}, unexpected {unexpected}")
    features = set_trainable(PooledFeatures(net, opts.mean, opts.std), trainable)
    classifier = getattr(net, "_fc", None)  # ImageNet's classifier: the features never use it
    if classifier is not None:
        classifier.requires_grad_(False)
    return features
