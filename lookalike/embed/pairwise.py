"""Pairwise metrics: a distance between two images that is not a distance between two vectors.

A pairwise metric (``kind = "pairwise"``; DiffSim is one) turns each image into *features* once and
compares two images' features with its own function. Protocol, used by ``lookalike distance``,
``lookalike eval`` and ``lookalike search --rerank``:

* ``distance_pairs(a, b)``: distances of ``a[i]`` vs ``b[i]`` (image paths, PIL images or HxWx3
  uint8 arrays), lower = more alike, as a float64 array;
* ``features(images)``: the per-image features, from the on-disk cache when present.

The cache lives under ``$LOOKALIKE_HOME/cache/pairwise/<metric>-<fingerprint>/``, one safetensors file
per image named by the sha256 of the image's content (a file's bytes; an in-memory image's pixels).
The fingerprint hashes the metric's config and the features' dtype, so changing any setting (layer,
timestep, prompt, weights...) or precision starts a new cache. Features are stored exactly as
computed, so results with and without the cache are identical. A config's ``kind`` (its ``options["kind"]``)
says ``"pairwise"``; its ``builder`` returns a scorer with ``extract(uint8 batch) -> [features]``,
``distance(fa, fb) -> float``, ``feature_dtype`` and ``opts.batch_size``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from lookalike.embed.config import MetricConfig
from lookalike.errors import UsageError
from lookalike.files import sha256_file
from lookalike.paths import home

log = logging.getLogger(__name__)

ImageLike = str | os.PathLike[str] | Image.Image | np.ndarray
CACHE_FORMAT = 1
_MEMO = 8  # features kept in memory while pairs are scored (each can be megabytes)


def image_key(item: ImageLike) -> str:
    """sha256 of an image's content: a file's bytes, or an in-memory image's mode, size and pixels."""
    h = hashlib.sha256()
    if isinstance(item, (Image.Image, np.ndarray)):
        arr = np.asarray(item.convert("RGB") if isinstance(item, Image.Image) else item)
        h.update(f"pixels:{arr.dtype}:{arr.shape}:".encode())
        h.update(np.ascontiguousarray(arr).tobytes())
        return h.hexdigest()
    return sha256_file(item)


def cache_root() -> Path:
    return home() / "cache" / "pairwise"


class PairwiseMetric:
    """A pairwise metric built from its config. Build with :func:`lookalike.create_metric`
    (:func:`lookalike.embed.factory.pairwise_metric`)."""

    kind = "pairwise"

    def __init__(self, config: MetricConfig, scorer: Any, device: Any, cache: bool = True) -> None:
        self.config = config
        self.scorer = scorer
        self.device = device
        self.cache = cache
        self.precision = "fp32"

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def dim(self) -> int:
        return 0

    @property
    def distance_kind(self) -> str:
        return "pairwise"

    def __repr__(self) -> str:
        return f"PairwiseMetric({self.name!r}, device={self.device})"

    @property
    def fingerprint(self) -> str:
        blob = json.dumps({"config": self.config.to_dict(), "dtype": self.scorer.feature_dtype,
                           "format": CACHE_FORMAT}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    @property
    def cache_dir(self) -> Path:
        return cache_root() / f"{self.name}-{self.fingerprint}"

    # -- features --------------------------------------------------------------------------------

    def _path(self, key: str) -> Path:
        return self.cache_dir / key[:2] / f"{key}.safetensors"

    def _read(self, key: str) -> dict[str, Any] | None:
        from safetensors.torch import load_file

        path = self._path(key)
        if not path.is_file():
            return None
        try:
            return load_file(path)
        except Exception as exc:  # a torn or foreign file: recompute it
            log.warning("%s: unreadable cached features %s (%s); recomputing", self.name, path, exc)
            return None

    def _write(self, key: str, feats: dict[str, Any]) -> None:
        from safetensors.torch import save_file

        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        from lookalike.atomic import atomic_write

        atomic_write(path, lambda tmp: save_file(feats, tmp))

    def _compute(self, items: Sequence[ImageLike]) -> list[dict[str, Any]]:
        from lookalike.embed.images import load_image, to_rgb
        from lookalike.embed.preprocess import draft_size, prepare

        arrays = []
        for item in items:
            if isinstance(item, Image.Image):
                img = to_rgb(item)
            elif isinstance(item, np.ndarray):
                if item.dtype != np.uint8 or item.ndim != 3 or item.shape[2] != 3:
                    raise UsageError("arrays must be HxWx3 uint8 RGB")
                img = Image.fromarray(item)
            else:
                img = load_image(item, draft=draft_size([self.config.preprocess]))  # as indexing does
            arrays.append(prepare(img, self.config.preprocess))
        return self.scorer.extract(np.stack(arrays))

    def _ensure(self, todo: dict[str, ImageLike], progress: bool,
                keep: bool = True) -> dict[str, dict[str, Any]]:
        """Compute the features of the keys not cached yet, in batches, and cache them (when
        enabled); returns them by key (all of them with ``keep``, else only those not cached)."""
        from lookalike.embed.pipeline import batched
        from lookalike.progress import progress_bar

        computed: dict[str, dict[str, Any]] = {}
        missing = [k for k in todo if not (self.cache and self._path(k).is_file())]
        if not missing:
            return computed
        with progress_bar(len(missing), f"{self.name} features", enabled=progress) as bar:
            for chunk in batched(missing, self.scorer.opts.batch_size):
                for key, feats in zip(chunk, self._compute([todo[k] for k in chunk]), strict=True):
                    if self.cache:
                        self._write(key, feats)
                    if keep or not self.cache:
                        computed[key] = feats
                bar.update(len(chunk))
        return computed

    def features(self, images: Sequence[ImageLike], progress: bool = False) -> list[dict[str, Any]]:
        """Per-image features (``{"q", "k", "v", "o"}`` tensors for DiffSim), cached on disk."""
        keys = [image_key(x) for x in images]
        fresh = self._ensure(dict(zip(keys, images)), progress)
        out = []
        for key, item in zip(keys, images, strict=True):
            feats = fresh.get(key) or self._read(key)
            if feats is None:
                feats = self._compute([item])[0]
                self._write(key, feats)
            out.append(feats)
        return out

    # -- comparing -------------------------------------------------------------------------------

    def distance_pairs(self, a: Sequence[ImageLike], b: Sequence[ImageLike],
                       progress: bool = False) -> np.ndarray:
        """Distances of ``a[i]`` vs ``b[i]``; each distinct image is run through the network once."""
        if len(a) != len(b):
            raise UsageError(f"distance_pairs needs equal-length sequences, got {len(a)} and {len(b)}")
        ka, kb = [image_key(x) for x in a], [image_key(x) for x in b]
        held = self._ensure({**dict(zip(ka, a)), **dict(zip(kb, b))}, progress, keep=False)
        memo: OrderedDict[str, dict[str, Any]] = OrderedDict()

        def get(key: str, item: ImageLike) -> dict[str, Any]:
            if key in held:
                return held[key]
            if key not in memo:
                memo[key] = self._read(key) or self.features([item])[0]
                if len(memo) > _MEMO:
                    memo.popitem(last=False)
            memo.move_to_end(key)
            return memo[key]

        out = np.empty(len(a), dtype=np.float64)
        for i, (x, y, ia, ib) in enumerate(zip(ka, kb, a, b, strict=True)):
            out[i] = self.scorer.distance(get(x, ia), get(y, ib))
        return out

    # -- what a pairwise metric is not -----------------------------------------------------------

    def _no_vectors(self, *args: object, **kwargs: object) -> Any:
        raise UsageError(f"{self.name} is a pairwise metric: it has no vectors to embed or index; use "
                         f"it in `lookalike distance`, `lookalike eval` or `lookalike search --rerank "
                         f"{self.name}`")

    embed = embed_paths = embed_arrays = distances = _no_vectors

    def provenance(self) -> dict[str, Any]:
        from lookalike.embed.provenance import provenance

        return {**provenance(self.config, precision=self.precision), "kind": self.kind,
                "features": self.fingerprint}
