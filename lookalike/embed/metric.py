"""A ready-to-use metric: a network plus its config. Images in, numpy vectors out."""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image

from lookalike.embed.config import MetricConfig, UnsafeConfigError, check_builder, check_config
from lookalike.embed.device import pick_device
from lookalike.embed.distance import pairwise
from lookalike.embed.images import load_image, to_rgb
from lookalike.embed.pipeline import batched, prepare_files
from lookalike.embed.preprocess import prepare, to_tensor
from lookalike.errors import UsageError
from lookalike.progress import progress_bar

log = logging.getLogger(__name__)

#: A builder turns a config into a module mapping (N, 3, S, S) floats in [0, 1] to (N, dim):
#: ``build(config, trainable=False)`` (see :mod:`lookalike.embed.backbones`).
Builder = Callable[..., torch.nn.Module]


def import_builder(path: str) -> Builder:
    """The ``build`` function named by ``path``, which must pass :func:`check_builder` first:
    nothing outside ``lookalike.embed.backbones`` is ever imported for a config."""
    module, _, attr = check_builder(path).partition(":")
    try:
        func = getattr(importlib.import_module(module), attr, None)
    except ModuleNotFoundError as exc:
        if exc.name != module:  # a dependency of a real backbone is missing: say so
            raise
        func = None
    if not callable(func):
        raise UnsafeConfigError(f"refusing builder {path!r}: lookalike has no such backbone")
    return func


def build_network(config_or_name: str | MetricConfig, trainable: bool = False,
                  device: str | torch.device | None = None) -> torch.nn.Module:
    """The network of an embedding metric (a name or a config): ``(N, 3, S, S)`` floats in [0, 1]
    -> ``(N, dim)``, on ``device`` (``None``: CUDA when present, else the CPU).

    ``trainable=False``: what :func:`lookalike.create_metric` embeds with (eval mode, no parameter
    requires grad). ``trainable=True``: training mode with gradients on what the family tunes:
    all weights of tiny ViTs and untuned ViT baselines; EfficientNet's weights with BatchNorm
    statistics frozen; LPIPS's linear heads (trunk frozen); a DreamSim LoRA adapter, unmerged;
    a tuned bundle's adapter, or its head on a trainable base. Raises :class:`UsageError` for a
    pairwise metric (DiffSim), which has no embedding network.
    """
    from lookalike.embed.registry import get_config

    config = config_or_name if isinstance(config_or_name, MetricConfig) else get_config(config_or_name)
    check_config(config)
    builder = import_builder(config.builder)
    if config.options.get("kind") == "pairwise":
        if trainable:
            builder(config, pick_device(device), trainable=True)  # the family says why it cannot
        raise UsageError(f"{config.name} is a pairwise metric (it scores pairs of images, it has no "
                         "embedding network); use lookalike.create_metric to score with it")
    net = builder(config, trainable=bool(trainable))
    return net.to(pick_device() if device is None else torch.device(device))


@dataclass
class EmbedResult:
    """Vectors for the files that could be read, and the reason for each that could not."""

    vectors: np.ndarray
    paths: list[str]
    failures: list[tuple[str, str]] = field(default_factory=list)


class Metric:
    """An image -> vector function with a known distance. Build with :func:`create_metric`."""

    def __init__(self, config: MetricConfig, module: torch.nn.Module, device: torch.device,
                 precision: str = "fp32") -> None:
        self.config = config
        self.module = module
        self.device = device
        self.precision = precision

    @classmethod
    def from_config(cls, config: MetricConfig, device: str | None = None,
                    precision: str = "fp32") -> Metric:
        dev = pick_device(device)
        module = build_network(config, trainable=False, device="cpu")
        if precision == "int8":
            if dev.type != "cpu":
                raise UsageError("int8 dynamic quantisation runs on the CPU only")
            if not config.options.get("int8"):
                raise UsageError(f"{config.name} does not offer int8 (its top-10 neighbours were not "
                                 "shown to agree with fp32); use --precision fp32")
            module = torch.ao.quantization.quantize_dynamic(module, {torch.nn.Linear}, dtype=torch.qint8)
        elif precision != "fp32":
            raise UsageError(f"unknown precision {precision!r} (fp32 or int8)")
        return cls(config, module.to(dev), dev, precision)

    @property
    def name(self) -> str:
        return self.config.name

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
