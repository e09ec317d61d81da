"""TEST-ONLY tiny ViTs with seeded random weights: they run in milliseconds and mean nothing."""

from __future__ import annotations

import torch
from torch import nn

from lookalike.embed.backbones.common import set_trainable
from lookalike.embed.config import MetricConfig
from lookalike.embed.options import TinyVitOptions, typed_options


def build(config: MetricConfig, trainable: bool = False) -> nn.Module:
    """A seeded random ViT (``trainable``: every parameter trains; it has no dropout or BatchNorm)."""
    import timm.models.vision_transformer as vit

    o: TinyVitOptions = typed_options(config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(o.seed)
        net = vit.VisionTransformer(img_size=config.preprocess.size, patch_size=o.patch,
                                    embed_dim=o.width, depth=o.depth, num_heads=o.heads,
                                    num_classes=0, global_pool="token")
    return set_trainable(net, trainable)
