"""LPIPS as an exact embedding: one vector per image whose squared L2 distance *is* LPIPS (v0.1).

At a fixed input size, LPIPS between images ``x`` and ``y`` is

    sum_l  1/(H_l W_l)  sum_{h,w}  sum_c  w_{l,c} (f_l(x)[c,h,w] - f_l(y)[c,h,w])^2

where ``f_l`` are the trunk's activations unit-normalised over channels and ``w_{l,c} >= 0`` the
learned linear head. Scaling each normalised feature by ``sqrt(w_{l,c} / (H_l W_l))`` and
concatenating the layers gives a vector ``v(x)`` with ``|v(x) - v(y)|^2 = LPIPS(x, y)`` exactly, so
any exact L2 index (FAISS ``IndexFlatL2``) answers exact LPIPS nearest-neighbour queries.
Channels whose head weight is 0 contribute nothing and are dropped after normalising.

The module takes ``(N, 3, S, S)`` floats in [0, 1] (lpips itself takes [-1, 1]; we convert).

``build(config, trainable=True)`` trains as ``lpips/trainer.py`` of richzhang/PerceptualSimilarity
does by default (``pnet_tune=False``): the linear heads are parameters that require grad, the
trunk stays frozen; ``tune_trunk=True`` (lpips' ``pnet_tune``) trains the trunk too. The kept
channels are the same as for inference (a channel whose shipped weight is 0 stays dropped), so the
vector keeps the config's ``dim``; clamp the heads at 0 after each step as the reference does
(:meth:`LpipsEmbedding.clamp_heads`). :mod:`lookalike.tune.clpips` trains the heads of every
channel, zero-weight ones included, on cached channel differences instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import torch
from torch import nn

from lookalike.embed.backbones.common import load_state_dict_file
from lookalike.embed.config import MetricConfig
from lookalike.embed.options import LpipsOptions, typed_options
from lookalike.embed.weights import resolve
from lookalike.errors import UsageError

#: Per trunk: the ``features`` indices *after* which LPIPS taps an activation (lpips' slice ends).
TAPS: dict[str, tuple[int, ...]] = {
    "alex": (1, 4, 7, 9, 11),
    "vgg": (3, 8, 15, 22, 29),
    "squeeze": (1, 4, 7, 9, 10, 11, 12),
}

#: lpips' input scaling (v0.1), applied to inputs in [-1, 1].
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
#: lpips' ``normalize_tensor`` epsilon.
EPS = 1e-10
#: Smallest head weight a trainable head is evaluated at (keeps ``sqrt``'s gradient finite at 0).
MIN_TRAINABLE_WEIGHT = 1e-12


def make_trunk(net: str) -> nn.Sequential:
    """The torchvision ``features`` stack of ``net`` (alex, vgg, squeeze), randomly initialised."""
    from torchvision import models

    if net == "alex":
        return models.alexnet(weights=None).features
    if net == "vgg":
        from torchvision.models.vgg import cfgs, make_layers

        return make_layers(cfgs["D"])
    if net == "squeeze":
        return models.squeezenet1_1(weights=None).features
    raise ValueError(f"unknown LPIPS trunk {net!r} (alex, vgg or squeeze)")


def trunk_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The ``features.*`` entries of a torchvision checkpoint, renamed for the bare trunk."""
    out = {k.removeprefix("features."): v for k, v in state.items() if k.startswith("features.")}
    if not out:
        raise ValueError("checkpoint has no 'features.*' weights (not a torchvision classifier?)")
    return out


def head_weights(state: dict[str, torch.Tensor], layers: int) -> list[torch.Tensor]:
    """The linear-head weights ``lin{l}.model.1.weight`` of an lpips checkpoint, flat per layer."""
    heads = []
    for i in range(layers):
        w = state[f"lin{i}.model.1.weight"].detach().float().flatten()
        if (w < 0).any():
            raise ValueError(f"LPIPS head layer {i} has negative weights: not a squared distance")
        heads.append(w)
    return heads


class LpipsEmbedding(nn.Module):
    """Images in [0, 1] -> concatenated, weighted, unit-normalised trunk features (the LPIPS vector).

    ``trainable_heads``: the kept head weights ``weight{i}`` are parameters (requiring grad) rather
    than buffers; the state dict's keys are the same either way."""

    def __init__(self, trunk: nn.Sequential, taps: Sequence[int], heads: Sequence[torch.Tensor],
                 trainable_heads: bool = False) -> None:
        super().__init__()
        if len(taps) != len(heads):
            raise ValueError(f"{len(taps)} taps but {len(heads)} head layers")
        self.trunk = trunk
        self.taps = tuple(taps)
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1))
        for i, w in enumerate(heads):
            keep = torch.nonzero(w > 0).flatten()
            self.register_buffer(f"keep{i}", keep)
            if trainable_heads:
                self.register_parameter(f"weight{i}", nn.Parameter(w[keep].detach().clone()))
            else:
                self.register_buffer(f"weight{i}", w[keep].clone())

    def head_weights(self) -> list[torch.Tensor]:
        """The kept channels' head weights, one tensor per tapped layer."""
        return [getattr(self, f"weight{i}") for i in range(len(self.taps))]

    def clamp_heads(self) -> None:
        """Clamp trainable head weights at 0 (lpips' ``clamp_weights``, after every optimiser step)."""
        with torch.no_grad():
            for w in self.head_weights():
                w.clamp_(min=0)

    def layer_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The channel-normalised activations at each tap, ``(N, C_l, H_l, W_l)`` (lpips' feats)."""
        h = ((2 * x - 1) - self.shift) / self.scale
        out = []
        stops = set(self.taps)
        for i, layer in enumerate(self.trunk):
            h = layer(h)
            if i in stops:
                norm = torch.sqrt(torch.sum(h ** 2, dim=1, keepdim=True))
                out.append(h / (norm + EPS))
            if i == self.taps[-1]:
                break
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = []
        for i, f in enumerate(self.layer_features(x)):
            keep, w = getattr(self, f"keep{i}"), getattr(self, f"weight{i}")
            if w.requires_grad:  # training: sqrt's gradient at 0 would be infinite
                w = w.clamp(min=MIN_TRAINABLE_WEIGHT)
            area = f.shape[2] * f.shape[3]
            scaled = f.index_select(1, keep) * torch.sqrt(w / area).view(1, -1, 1, 1)
            parts.append(scaled.flatten(1))
        return torch.cat(parts, dim=1)


def layer_shapes(trunk: nn.Sequential, taps: Sequence[int], size: int) -> list[tuple[int, int, int]]:
    """``(C, H, W)`` at each tap for a ``size`` x ``size`` input; ``trunk`` on the meta device."""
    h = torch.empty(1, 3, size, size, device="meta")
    shapes: list[tuple[int, int, int]] = []
    try:
        for i, layer in enumerate(trunk):
            h = layer(h)
            if i in taps:
                shapes.append((int(h.shape[1]), int(h.shape[2]), int(h.shape[3])))
            if i == taps[-1]:
                break
    except RuntimeError as exc:
        raise ValueError(f"input size {size} is too small for this trunk: {exc}") from None
    return shapes


def embedding_dim(net: str, heads: Sequence[torch.Tensor], size: int) -> int:
    """Length of the LPIPS vector of trunk ``net`` at working size ``size`` with these heads."""
    with torch.device("meta"):
        trunk = make_trunk(net)
    shapes = layer_shapes(trunk, TAPS[net], size)
    return sum(int((w > 0).sum()) * h * wd for w, (_, h, wd) in zip(heads, shapes))


def load_heads(config: MetricConfig) -> list[torch.Tensor]:
    """The linear heads of an LPIPS config (its first weight file)."""
    net = typed_options(config).net
    state = load_state_dict_file(str(resolve(config.weights[0], config.name)))
    return head_weights(state, len(TAPS[net]))


def with_size(config: MetricConfig, size: int, name: str | None = None) -> MetricConfig:
    """A copy of an LPIPS config working at ``size`` x ``size``, with its ``dim`` recomputed."""
    pre = replace(config.preprocess, size=size)
    dim = embedding_dim(typed_options(config).net, load_heads(config), size)
    return replace(config, name=name or config.name, preprocess=pre, dim=dim)


def trainable_embedding(trunk: nn.Sequential, taps: Sequence[int], heads: Sequence[torch.Tensor],
                        trainable: bool, tune_trunk: bool = False) -> LpipsEmbedding:
    """An :class:`LpipsEmbedding` for inference (frozen, eval) or training (heads train; the trunk
    only with ``tune_trunk``)."""
    if tune_trunk and not trainable:
        raise UsageError("tune_trunk=True needs trainable=True")
    net = LpipsEmbedding(trunk, taps, heads, trainable_heads=trainable)
    if not trainable:
        return net.eval().requires_grad_(False)
    net.trunk.requires_grad_(tune_trunk)
    return net.train()


def build(config: MetricConfig, trainable: bool = False, tune_trunk: bool = False) -> nn.Module:
    """The LPIPS embedding of ``config``: options ``net`` (alex/vgg/squeeze); the trunk is loaded
    from the second weight file, or seeded-random when ``options["random_trunk_seed"]`` is set
    (tests only: parity with the lpips package on identical weights). ``trainable``: the linear
    heads train, the trunk too only with ``tune_trunk`` (see the module docstring)."""
    opts: LpipsOptions = typed_options(config)
    net = opts.net
    heads = load_heads(config)
    seed = opts.random_trunk_seed
    if seed is not None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            trunk = make_trunk(net)
    else:
        trunk = make_trunk(net)
        state = trunk_state(load_state_dict_file(str(resolve(config.weights[1], config.name))))
        trunk.load_state_dict(state)
    dim = embedding_dim(net, heads, config.preprocess.size)
    if dim != config.dim:
        raise ValueError(f"{config.name}: at size {config.preprocess.size} the LPIPS vector has "
                         f"{dim} dims, but the config says {config.dim}; fix 'dim' "
                         "(lookalike.embed.backbones.lpips.with_size does it)")
    return trainable_embedding(trunk, TAPS[net], heads, trainable, tune_trunk)
