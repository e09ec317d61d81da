"""A ready-to-use metric: a network plus its config. Images in, numpy vectors out."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image

from lookalike.embed.config import MetricConfig, MetricKind
from lookalike.embed.distance import pairwise
from lookalike.embed.images import load_image, to_rgb
from lookalike.embed.pipeline import batched, prepare_files
from lookalike.embed.preprocess import prepare, to_tensor
from lookalike.progress import progress_bar

log = logging.getLogger(__name__)

@dataclass
class EmbedResult:
    """Vectors for the files that could be read, and the reason for each that could not."""

    vectors: np.ndarray
    paths: list[str]
    failures: list[tuple[str, str]] = field(default_factory=list)


class Metric:
    """An image -> vector function with a known distance. Build with :func:`lookalike.create_metric`
    (:mod:`lookalike.embed.factory`)."""

    def __init__(self, config: MetricConfig, module: torch.nn.Module, device: torch.device,
                 precision: str = "fp32") -> None:
        self.config = config
        self.module = module
        self.device = device
        self.precision = precision

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def kind(self) -> MetricKind:
        """``embedding`` (see :attr:`lookalike.embed.config.MetricConfig.kind`)."""
        return self.config.kind

    @property
    def dim(self) -> int:
        return self.config.dim

    @property
    def distance_kind(self) -> str:
        return self.config.distance

    def __repr__(self) -> str:
        return f"Metric({self.name!r}, dim={self.dim}, distance={self.distance_kind}, device={self.device})"

    # -- embedding -----------------------------------------------------------------------------

    def embed_arrays(self, batch: np.ndarray) -> np.ndarray:
        """``(N, S, S, 3)`` uint8 arrays (already prepared) -> ``(N, dim)`` float32 vectors."""
        if len(batch) == 0:
            return np.zeros((0, self.dim), np.float32)
        with torch.inference_mode():
            x = to_tensor(batch).to(self.device, non_blocking=True)
            y = self.module(x).float()
            if self.distance_kind == "cosine":
                y = torch.nn.functional.normalize(y, dim=1)
            return y.cpu().numpy().astype(np.float32, copy=False)

    def embed(self, images: Iterable[Image.Image | np.ndarray | str | os.PathLike[str]],
              batch_size: int = 32) -> np.ndarray:
        """Embed in-memory images (PIL, HxWx3 uint8 arrays) or paths; raises on a bad file."""
        pre = self.config.preprocess
        out = []
        for chunk in batched(images, batch_size):
            arrays = [prepare(_as_pil(im), pre) for im in chunk]
            out.append(self.embed_arrays(np.stack(arrays)))
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)

    def embed_paths(self, paths: Sequence[str | os.PathLike[str]], batch_size: int = 32,
                    workers: int | None = None, progress: bool = True) -> EmbedResult:
        """Embed files, decoding in worker processes; bad files are reported, never fatal.

        Identical contents (same sha256) are embedded once and share their vector.
        """
        pre = self.config.preprocess
        ok_paths: list[str] = []
        failures: list[tuple[str, str]] = []
        vectors: list[np.ndarray] = []
        by_sha: dict[str, np.ndarray] = {}
        with progress_bar(len(paths), f"embed {self.name}", enabled=progress) as bar:
            for chunk in batched(prepare_files(paths, [pre], workers=workers, digest=True,
                                                    gpu=self.device.type == "cuda"), batch_size):
                good = [p for p in chunk if p.arrays is not None]
                for p in chunk:
                    if p.error is not None:
                        failures.append((p.path, str(p.error)))
                        log.warning("skipped %s", p.error)
                new = {p.sha256 or p.path: p.arrays[pre.key] for p in good  # type: ignore[index]
                       if (p.sha256 or p.path) not in by_sha}
                if new:
                    by_sha.update(zip(new, self.embed_arrays(np.stack(list(new.values())))))
                if good:
                    vectors.append(np.stack([by_sha[p.sha256 or p.path] for p in good]))
                    ok_paths.extend(p.path for p in good)
                bar.update(len(chunk))
        vecs = np.concatenate(vectors) if vectors else np.zeros((0, self.dim), np.float32)
        return EmbedResult(vecs, ok_paths, failures)

    # -- comparing -----------------------------------------------------------------------------

    def distances(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Distance matrix between two sets of this metric's vectors."""
        return pairwise(a, b, self.distance_kind)  # type: ignore[arg-type]

    def provenance(self) -> dict[str, Any]:
        """What produced these vectors; every index stores it to refuse mixing incompatible ones."""
        from lookalike.embed.provenance import provenance

        return provenance(self.config, precision=self.precision)


def _as_pil(item: Image.Image | np.ndarray | str | os.PathLike[str]) -> Image.Image:
    if isinstance(item, Image.Image):
        return to_rgb(item)
    if isinstance(item, np.ndarray):
        if item.dtype != np.uint8 or item.ndim != 3 or item.shape[2] != 3:
            raise ValueError("arrays must be HxWx3 uint8 RGB")
        return Image.fromarray(item)
    return load_image(item)
