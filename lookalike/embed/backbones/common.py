"""Small pieces shared by backbones."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def set_trainable(net: nn.Module, trainable: bool) -> nn.Module:
    """``net`` for inference (eval mode, no parameter requires grad) or for training (train mode,
    every parameter requires grad): what a builder's ``trainable`` asks for, when all of it trains."""
    return net.train().requires_grad_(True) if trainable else net.eval().requires_grad_(False)


BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


def freeze_batch_norm_stats(net: nn.Module) -> nn.Module:
    """Put every BatchNorm of ``net`` in eval mode: it normalises with its stored running statistics
    and never updates them (its affine weight and bias still train if they require grad)."""
    for m in net.modules():
        if isinstance(m, BATCH_NORMS):
            m.eval()
    return net


class Normalize(nn.Module):
    """``(x - mean) / std`` per channel, as a module so it moves with ``.to(device)``."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def load_state_dict_file(path: str, map_location: str = "cpu") -> dict[str, torch.Tensor]:
    """Load a checkpoint without unpickling arbitrary objects (safetensors or weights_only).

    A file that is neither (a pickle that names code, a truncated or foreign file) raises
    :class:`WeightsCorruptError`; nothing in it is ever executed.
    """
    import pickle

    from lookalike.embed.weights.formats import SAFETENSORS, sniff
    from lookalike.errors import WeightsCorruptError

    try:
        if str(path).endswith(".safetensors") or sniff(path) == SAFETENSORS:
            from safetensors.torch import load_file

            return load_file(str(path), device=map_location)
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:  # never retried without weights_only
        raise WeightsCorruptError(f"{path}: holds objects other than tensors (a pickle that could run "
                                  "code); refusing to load it. Delete it and fetch or import it again") from exc
    except (RuntimeError, ValueError, EOFError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsCorruptError(f"{path}: not a loadable weights file ({first}); delete it and "
                                  "fetch or import it again") from exc
