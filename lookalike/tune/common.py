"""What the tuning methods share: the learner interface, DreamSim's hinge loss, image arrays."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from lookalike.judgments.datasets import Triplet


class Learner(Protocol):
    """One tuning method on one base metric and one data set."""

    def parameters(self) -> list[torch.Tensor]: ...

    def batch_distances(self, triplets: Sequence[Triplet]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(d(ref, left), d(ref, right))`` with gradients, in training mode."""

    def distances(self, triplets: Sequence[Triplet]) -> tuple[np.ndarray, np.ndarray]:
        """The same without gradients, in evaluation mode."""

    def after_step(self) -> None: ...

    def state(self) -> dict[str, torch.Tensor]: ...

    def load_state(self, state: dict[str, torch.Tensor]) -> None: ...

    def write(self, folder: Path) -> dict[str, Any]:
        """Write the weights into a bundle folder; returns the config ``options`` to add
        (including ``dim`` when it changes)."""


def hinge_loss(d0: torch.Tensor, d1: torch.Tensor, target: torch.Tensor, margin: float) -> torch.Tensor:
    """DreamSim's ``HingeLoss`` on ``d0 - d1`` (target rounded to {0, 1}, 1 = the right image is
    closer), summed then divided by the batch size as its training step does."""
    y = 2 * torch.round(target) - 1
    return torch.clamp(margin - (d0 - d1) * y, min=0).sum() / max(1, len(target))


def distance(a: torch.Tensor, b: torch.Tensor, kind: str) -> torch.Tensor:
    """Row-wise ``1 - cos`` or squared L2, as the metric defines its distance (with gradients); an
    unknown kind raises (see :func:`lookalike.embed.distance.paired`)."""
    from lookalike.embed.distance import paired

    return paired(a, b, kind)


def unique_images(triplets: Sequence[Triplet]) -> tuple[list[str], np.ndarray]:
    """The images of ``triplets`` (first-seen order) and ``(n, 3)`` indices of ref/left/right."""
    index: dict[str, int] = {}
    rows = []
    for t in triplets:
        rows.append([index.setdefault(p, len(index)) for p in (t.ref, t.left, t.right)])
    return list(index), np.asarray(rows, dtype=np.int64).reshape(-1, 3)


def targets(triplets: Sequence[Triplet]) -> np.ndarray:
    return np.array([t.target for t in triplets], dtype=np.float64)


def prepared_arrays(paths: Sequence[str], preprocess: Any, progress: bool = True) -> dict[str, np.ndarray]:
    """Each image decoded and prepared once (``S x S x 3`` uint8), for methods that run the network."""
    from lookalike.embed.images import load_image
    from lookalike.embed.preprocess import prepare
    from lookalike.progress import progress_bar

    out = {}
    with progress_bar(len(paths), "decode images", enabled=progress) as bar:
        for p in paths:
            out[p] = prepare(load_image(p), preprocess)
            bar.update(1)
    return out
