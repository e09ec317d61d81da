"""EfficientNet-Lite0 with its real ImageNet weights, shipped inside a PyPI wheel: works offline."""

from __future__ import annotations

import torch
from torch import nn

from lookalike.embed.backbones.common import Normalize, load_state_dict_file
from lookalike.embed.config import MetricConfig
from lookalike.embed.options import EffnetOptions, typed_options
from lookalike.embed.weights import resolve


class PooledFeatures(nn.Module):
    """Normalise, run the convolutional trunk, global-average-pool: ``(N, 1280)``."""

    def __init__(self, net: nn.Module, mean: list[float], std: list[float]) -> None:
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.extract_features(self.normalize(x)).mean(dim=(2, 3))


def build(config: MetricConfig) -> nn.Module:
    from efficientnet_lite_pytorch import EfficientNet

    opts: EffnetOptions = typed_options(config)
    net = EfficientNet.from_name(opts.model)
    state = load_state_dict_file(str(resolve(config.weights[0], config.name)))
    missing, unexpected = net.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise RuntimeError(f"{config.name}: weights do not fit: missing {missing}, unexpected {unexpected}")
    return PooledFeatures(net, opts.mean, opts.std)
