"""The MLP head DreamSim trains on frozen features: one hidden layer, residual on the embedding."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lookalike.embed.backbones.tuned import ResidualHead
from lookalike.embed.config import MetricConfig
from lookalike.judgments.datasets import Triplet

HEAD_FILE = "head.safetensors"


def save_head(head: ResidualHead, path: str) -> None:
    from safetensors.torch import save_file

    save_file({k: v.detach().cpu().contiguous() for k, v in head.state_dict().items()}, path)


class MlpLearner:
    """Trains a :class:`ResidualHead` on the base metric's cached vectors (the backbone never runs
    during training)."""

    def __init__(self, base: MetricConfig, paths: Sequence[str], vectors: np.ndarray, hidden: int,
                 device: torch.device, seed: int) -> None:
        self.base = base
        self.index = {p: i for i, p in enumerate(paths)}
        self.x = torch.from_numpy(np.asarray(vectors, np.float32)).to(device)
        self.hidden = hidden
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.head = ResidualHead(self.x.shape[1], hidden).to(device)

    def parameters(self) -> list[torch.Tensor]:
        return list(self.head.parameters())

    def _d(self, triplets: Sequence[Triplet]) -> tuple[torch.Tensor, torch.Tensor]:
        from lookalike.tune.common import distance

        idx = torch.tensor([[self.index[p] for p in (t.ref, t.left, t.right)] for t in triplets],
                           device=self.x.device)
        e = self.head(self.x[idx.flatten()]).view(len(idx), 3, -1)
        kind = self.base.distance
        return distance(e[:, 0], e[:, 1], kind), distance(e[:, 0], e[:, 2], kind)

    def batch_distances(self, triplets: Sequence[Triplet]) -> tuple[torch.Tensor, torch.Tensor]:
        self.head.train()
        return self._d(triplets)

    def distances(self, triplets: Sequence[Triplet]) -> tuple[np.ndarray, np.ndarray]:
        self.head.eval()
        with torch.no_grad():
            d0, d1 = self._d(triplets)
        return d0.double().cpu().numpy(), d1.double().cpu().numpy()

    def after_step(self) -> None:
        return None

    def state(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu().clone() for k, v in self.head.state_dict().items()}

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        self.head.load_state_dict(state)

    def write(self, folder: Path) -> dict[str, Any]:
        save_head(self.head, str(folder / HEAD_FILE))
        return {"head": {"file": HEAD_FILE, "dim": int(self.x.shape[1]), "hidden": self.hidden,
                         "normalize_input": self.base.distance == "cosine"}}
