"""LoRA as DreamSim trains it: peft ``LoraConfig`` on every attention ``qkv`` layer of the base
network (every branch of an ensemble), everything else frozen, hinge loss on ``d0 - d1``.

The adapter is saved with peft's ``save_pretrained`` from the base network's module names, so
``PeftModel.from_pretrained(<base network>, folder)`` loads it with plain peft; the tuned metric
merges it into the qkv weights at build time (as the released DreamSim adapters are), and
``build_network(<tuned metric>, trainable=True)`` gives it back unmerged, to train further.
The base network is :func:`lookalike.embed.factory.build_network`'s frozen one (a released
adapter already merged); peft freezes it again and only the fresh LoRA matrices train.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lookalike.embed.config import MetricConfig
from lookalike.errors import UsageError
from lookalike.judgments.datasets import Triplet
from lookalike.tune.common import distance, unique_images

ADAPTER_DIR = "adapter"
TARGET = "qkv"


def qkv_layers(net: nn.Module) -> list[str]:
    return [n for n, m in net.named_modules() if n.split(".")[-1] == TARGET and isinstance(m, nn.Linear)]


def with_lora(net: nn.Module, r: int, alpha: float, dropout: float) -> nn.Module:
    """``net`` wrapped by peft with a fresh LoRA on every ``qkv`` layer (only LoRA trainable)."""
    from peft import LoraConfig, get_peft_model

    if not qkv_layers(net):
        raise UsageError("LoRA tuning needs a ViT base metric (attention 'qkv' layers); "
                         "use --method mlp for other metrics")
    config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, bias="none", target_modules=[TARGET])
    return get_peft_model(net, config)


@contextlib.contextmanager
def checkpointed_blocks(net: nn.Module, enabled: bool = True) -> Iterator[int]:
    """Run every transformer block (a child of a ``blocks`` container) under activation
    checkpointing: memory for one block's activations instead of all, for one more forward pass.
    Module names (hence adapter keys) are untouched."""
    from torch.utils.checkpoint import checkpoint

    blocks = [b for n, m in net.named_modules() if n.split(".")[-1] == "blocks" for b in m.children()]
    if not enabled:
        yield 0
        return
    for b in blocks:
        b.forward = functools.partial(checkpoint, b.forward, use_reentrant=False)  # type: ignore[method-assign]
    try:
        yield len(blocks)
    finally:
        for b in blocks:
            del b.forward


class LoraLearner:
    """Runs the base network with LoRA on the prepared images of each batch."""

    def __init__(self, base: MetricConfig, net: nn.Module, arrays: dict[str, np.ndarray], r: int,
                 alpha: float, dropout: float, device: torch.device, seed: int,
                 grad_checkpointing: bool = True, eval_batch: int = 32) -> None:
        self.base = base
        self.arrays = arrays
        self.device = device
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.model = with_lora(net, r, alpha, dropout).to(device)
        self.grad_checkpointing = grad_checkpointing
        self.eval_batch = eval_batch

    def _x(self, paths: Sequence[str]) -> torch.Tensor:
        from lookalike.embed.preprocess import to_tensor

        return to_tensor(np.stack([self.arrays[p] for p in paths])).to(self.device)

    def parameters(self) -> list[torch.Tensor]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def batch_distances(self, triplets: Sequence[Triplet]) -> tuple[torch.Tensor, torch.Tensor]:
        self.model.train()
        paths, idx = unique_images(triplets)
        with checkpointed_blocks(self.model, self.grad_checkpointing):
            e = self.model(self._x(paths)).float()
        i = torch.from_numpy(idx).to(self.device)
        kind = self.base.distance
        return distance(e[i[:, 0]], e[i[:, 1]], kind), distance(e[i[:, 0]], e[i[:, 2]], kind)

    def distances(self, triplets: Sequence[Triplet]) -> tuple[np.ndarray, np.ndarray]:
        self.model.eval()
        paths, idx = unique_images(triplets)
        out = []
        with torch.no_grad():
            for s in range(0, len(paths), self.eval_batch):
                out.append(self.model(self._x(paths[s:s + self.eval_batch])).float())
        e = torch.cat(out)
        i = torch.from_numpy(idx).to(self.device)
        kind = self.base.distance
        d0, d1 = distance(e[i[:, 0]], e[i[:, 1]], kind), distance(e[i[:, 0]], e[i[:, 2]], kind)
        return d0.double().cpu().numpy(), d1.double().cpu().numpy()

    def after_step(self) -> None:
        return None

    def state(self) -> dict[str, torch.Tensor]:
        from peft import get_peft_model_state_dict

        return {k: v.detach().cpu().clone() for k, v in get_peft_model_state_dict(self.model).items()}

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(self.model, state)

    def write(self, folder: Path) -> dict[str, Any]:
        self.model.save_pretrained(str(folder / ADAPTER_DIR), safe_serialization=True)
        return {"adapter": ADAPTER_DIR}
