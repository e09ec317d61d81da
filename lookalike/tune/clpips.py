"""CLPIPS: tune only LPIPS's linear layer weights; the trunk stays frozen.

LPIPS is linear in its head weights: ``LPIPS(x, y) = sum_{l,c} w_{l,c} D_{l,c}(x, y)`` with
``D_{l,c} = mean_{h,w} (f_l(x) - f_l(y))^2_c`` over the channel-normalised trunk activations. So each
pair of images is reduced once to its vector ``D`` (cached per pair of image contents), and
training is a margin ranking loss on ``w . D``; after every step ``w`` is clamped at 0, keeping
LPIPS a squared distance (and the LPIPS embedding exact).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lookalike.embed.config import MetricConfig
from lookalike.errors import UsageError
from lookalike.files import sha256_file
from lookalike.judgments.cache import FeatureCache, fingerprint_record
from lookalike.judgments.datasets import Ranked, Triplet

HEADS_FILE = "lpips_heads.safetensors"
NAMESPACE = "lpips-channel-diffs"


def is_lpips(config: MetricConfig) -> bool:
    return config.builder == "lookalike.embed.backbones.lpips:build"


def channel_diffs(net: torch.nn.Module, xa: torch.Tensor, xb: torch.Tensor) -> torch.Tensor:
    """``(N, sum C_l)``: per channel, the spatial mean of the squared feature difference."""
    with torch.no_grad():
        fa, fb = net.layer_features(xa), net.layer_features(xb)  # type: ignore[operator]
        return torch.cat([((a - b) ** 2).mean(dim=(2, 3)) for a, b in zip(fa, fb, strict=True)], dim=1)


class PairDiffs:
    """``D`` for pairs of image paths, through the feature cache."""

    def __init__(self, base: MetricConfig, net: torch.nn.Module, arrays: dict[str, np.ndarray],
                 device: torch.device, cache: FeatureCache | None = None, batch: int = 32,
                 progress: bool = True) -> None:
        self.net, self.arrays, self.device, self.batch, self.progress = net, arrays, device, batch, progress
        record = fingerprint_record(base)
        self.store = (cache or FeatureCache()).store(record, NAMESPACE) if record is not None else None
        self.hashes = {p: sha256_file(p) for p in arrays}

    def get(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        from lookalike.embed.preprocess import to_tensor
        from lookalike.progress import progress_bar

        keys = [f"{self.hashes[a]}:{self.hashes[b]}" for a, b in pairs]
        found = self.store.get(list(dict.fromkeys(keys))) if self.store else {}
        todo = list({k: (a, b) for k, (a, b) in zip(keys, pairs, strict=True) if k not in found}.items())
        with progress_bar(len(todo), "lpips channel diffs", unit="pair",
                          enabled=self.progress and bool(todo)) as bar:
            for s in range(0, len(todo), self.batch):
                chunk = todo[s:s + self.batch]
                xa = to_tensor(np.stack([self.arrays[a] for _, (a, _b) in chunk])).to(self.device)
                xb = to_tensor(np.stack([self.arrays[b] for _, (_a, b) in chunk])).to(self.device)
                d = channel_diffs(self.net, xa, xb).cpu().numpy()
                found.update({k: row for (k, _), row in zip(chunk, d, strict=True)})
                if self.store is not None:
                    self.store.put([k for k, _ in chunk], d)
                bar.update(len(chunk))
        return np.stack([found[k] for k in keys]).astype(np.float32) if keys else np.zeros((0, 0), np.float32)


class LpipsLinearLearner:
    """Trains LPIPS's linear weights ``w >= 0`` on cached channel differences."""

    def __init__(self, base: MetricConfig, diffs: PairDiffs, heads: Sequence[torch.Tensor],
                 device: torch.device) -> None:
        if not is_lpips(base):
            raise UsageError(f"--method lpips-linear needs an LPIPS base metric, not {base.name}")
        self.base, self.diffs, self.device = base, diffs, device
        self.sizes = [len(h) for h in heads]
        self.w = torch.nn.Parameter(torch.cat([h.float() for h in heads]).to(device))
        self._cache: dict[tuple[str, str], torch.Tensor] = {}

    def _pairs(self, pairs: Sequence[tuple[str, str]]) -> torch.Tensor:
        todo = [p for p in dict.fromkeys(pairs) if p not in self._cache]
        if todo:
            for p, row in zip(todo, self.diffs.get(todo), strict=True):
                self._cache[p] = torch.from_numpy(row).to(self.device)
        return torch.stack([self._cache[p] for p in pairs])

    def prefetch(self, triplets: Sequence[Triplet], ranked: Sequence[Ranked] = ()) -> None:
        """Compute every pair's ``D`` up front (one progress bar, then training is matrix products)."""
        pairs = [(t.ref, x) for t in triplets for x in (t.left, t.right)] + [(r.target, r.candidate) for r in ranked]
        if pairs:
            self._pairs(pairs)

    def _d(self, triplets: Sequence[Triplet]) -> tuple[torch.Tensor, torch.Tensor]:
        d0 = self._pairs([(t.ref, t.left) for t in triplets]) @ self.w
        d1 = self._pairs([(t.ref, t.right) for t in triplets]) @ self.w
        return d0, d1

    def parameters(self) -> list[torch.Tensor]:
        return [self.w]

    def batch_distances(self, triplets: Sequence[Triplet]) -> tuple[torch.Tensor, torch.Tensor]:
        return self._d(triplets)

    def distances(self, triplets: Sequence[Triplet]) -> tuple[np.ndarray, np.ndarray]:
        with torch.no_grad():
            d0, d1 = self._d(triplets)
        return d0.double().cpu().numpy(), d1.double().cpu().numpy()

    def pair_distances(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        with torch.no_grad():
            return (self._pairs(pairs) @ self.w).double().cpu().numpy()

    def after_step(self) -> None:
        with torch.no_grad():
            self.w.clamp_(min=0)

    def state(self) -> dict[str, torch.Tensor]:
        return {"w": self.w.detach().cpu().clone()}

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            self.w.copy_(state["w"].to(self.device))

    def heads(self) -> list[torch.Tensor]:
        return list(torch.split(self.w.detach().cpu().clamp(min=0), self.sizes))

    def write(self, folder: Path) -> dict[str, Any]:
        from safetensors.torch import save_file

        from lookalike.embed.backbones.lpips import embedding_dim
        from lookalike.embed.options import typed_options

        heads = self.heads()
        save_file({f"lin{i}.model.1.weight": h.reshape(1, -1, 1, 1).contiguous() for i, h in enumerate(heads)},
                  str(folder / HEADS_FILE))
        dim = embedding_dim(typed_options(self.base).net, heads, self.base.preprocess.size)
        return {"lpips_heads": HEADS_FILE, "dim": dim}


def rank_scores(learner: LpipsLinearLearner, items: Sequence[Ranked]) -> dict[str, float]:
    """Spearman and ICC(A,1) of the current weights on ranked items, as ``lookalike eval rank``
    computes them (mean rank over raters per target and candidate)."""
    from lookalike.judgments.scores import rank_agreement

    by: dict[tuple[str, str], list[float]] = {}
    for r in items:
        by.setdefault((r.target, r.candidate), []).append(r.rank)
    if not by:
        return {"spearman": float("nan"), "icc": float("nan")}
    pairs = list(by)
    human = np.array([np.mean(v) for v in by.values()])
    d = learner.pair_distances(pairs)
    return rank_agreement(np.array([t for t, _ in pairs]), human, d)
