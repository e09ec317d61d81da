"""FAISS indexes of one metric's vectors, addressed by database ids.

A :class:`VectorIndex` wraps an ``IndexIDMap2`` whose ids are ``contents.id`` in the library
database. Cosine metrics use inner product on L2-normalised vectors; ``sqeuclidean`` metrics (LPIPS)
use L2 (FAISS returns squared L2). :meth:`VectorIndex.search` converts scores back to the metric's
own distances (cosine distance ``1 - cos``; squared L2), smallest first, ids ``-1`` padded.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any

import numpy as np

from lookalike.atomic import atomic_write

log = logging.getLogger(__name__)

#: Vectors added per call when building an index (progress is reported between calls).
BUILD_CHUNK = 50_000


def _faiss() -> Any:
    import faiss

    return faiss


def faiss_metric(distance: str) -> int:
    faiss = _faiss()
    if distance == "cosine":
        return faiss.METRIC_INNER_PRODUCT
    if distance == "sqeuclidean":
        return faiss.METRIC_L2
    raise ValueError(f"unknown distance {distance!r}")


def gpu_available() -> bool:
    """True when this faiss build has GPU support and sees a CUDA device."""
    faiss = _faiss()
    try:
        return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0
    except Exception:  # noqa: BLE001 - a broken CUDA set-up means CPU
        return False


class VectorIndex:
    """One metric's searchable vectors (see the module docstring for the distance conventions).

    Attributes: ``metric`` (name), ``dim``, ``distance`` (``"cosine"`` or ``"sqeuclidean"``),
    ``factory`` (FAISS factory string of the inner index, e.g. ``"Flat"``), ``ntotal``, ``exact``.
    """

    def __init__(self, metric: str, dim: int, distance: str, index: Any, factory: str) -> None:
        self.metric = metric
        self.dim = dim
        self.distance = distance
        self.factory = factory
        self.index = index
        self._gpu_index: Any = None
        self._gpu_res: Any = None

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    def empty(cls, metric: str, dim: int, distance: str, factory: str = "Flat") -> VectorIndex:
        from lookalike.library.index_types import apply_params, build_params

        faiss = _faiss()
        index = faiss.index_factory(dim, f"IDMap2,{factory}", faiss_metric(distance))
        apply_params(index, build_params(factory))
        return cls(metric, dim, distance, index, factory)

    @classmethod
    def build(cls, metric: str, dim: int, distance: str, factory: str, ids: np.ndarray,
              vectors: np.ndarray) -> VectorIndex:
        """A new index holding ``vectors`` under ``ids``, trained on them when the type needs it."""
        from lookalike.progress import progress_bar

        out = cls.empty(metric, dim, distance, factory)
        if not out.index.is_trained:
            if len(vectors) == 0:
                raise ValueError(f"index type {factory!r} needs training vectors")
            out.index.train(out._prepare(vectors))
        # In chunks (add() prepares each), with a progress bar: a million-vector graph takes minutes.
        with progress_bar(len(ids), f"{metric}: build {factory}", unit="vec",
                          enabled=len(ids) > BUILD_CHUNK) as bar:
            for start in range(0, len(ids), BUILD_CHUNK):
                part = slice(start, start + BUILD_CHUNK)
                out.add(ids[part], vectors[part])
                bar.update(len(vectors[part]))
        return out

    def train(self, vectors: np.ndarray) -> None:
        """Train an index type that needs it (IVF, PQ) on a sample of the vectors it will hold."""
        if len(vectors) == 0:
            raise ValueError(f"index type {self.factory!r} needs training vectors")
        self.index.train(self._prepare(np.asarray(vectors, dtype=np.float32)))

    @property
    def trained(self) -> bool:
        return bool(self.index.is_trained)

    @classmethod
    def load(cls, path: str | os.PathLike[str], metric: str, distance: str) -> VectorIndex:
        faiss = _faiss()
        index = faiss.read_index(str(path))
        if not isinstance(index, faiss.IndexIDMap2):
            raise ValueError(f"{path}: not an IDMap2 index")
        out = cls(metric, index.d, distance, index, describe(index.index))
        out._tune()
        return out

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write atomically: readers see the old file or the new one, never a partial one."""
        faiss = _faiss()
        atomic_write(path, lambda tmp: faiss.write_index(self.index, tmp))

    # -- reading --------------------------------------------------------------------------------

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    @property
    def exact(self) -> bool:
        """True when :meth:`search` is exhaustive (a flat index): results are the true top k."""
        return isinstance(_faiss().downcast_index(self.index.index), _faiss().IndexFlat)

    def ids(self) -> np.ndarray:
        """All ids in the index (int64, unordered)."""
        return _faiss().vector_to_array(self.index.id_map).astype(np.int64, copy=False)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest ids of each query row, nearest first.

        Returns ``(distances, ids)``, both ``(len(queries), k)``: float32 distances in the
        metric's own terms (cosine: ``1 - cos``; sqeuclidean: squared L2) and int64 ids, padded with
        ``-1`` (distance ``inf``) when the index holds fewer than ``k`` vectors. Cosine queries are
        normalised here, so raw vectors are fine.
        """
        q = self._prepare(np.atleast_2d(np.asarray(queries, dtype=np.float32)))
        if q.shape[1] != self.dim:
            raise ValueError(f"queries have {q.shape[1]} dimensions, {self.metric} has {self.dim}")
        if k <= 0 or len(q) == 0:
            return np.zeros((len(q), max(k, 0)), np.float32), np.full((len(q), max(k, 0)), -1, np.int64)
        index = self._search_index()
        scores, ids = index.search(q, k)
        ids = ids.astype(np.int64, copy=False)
        dist = (1.0 - scores) if self.distance == "cosine" else scores
        dist = np.maximum(dist, 0.0).astype(np.float32, copy=False)
        dist[ids < 0] = np.inf
        return dist, ids

    # -- writing (library writers only) -----------------------------------------------------------

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids) == 0:
            return
        self.index.add_with_ids(self._prepare(vectors), np.ascontiguousarray(ids, dtype=np.int64))
        self._tune()

    def remove(self, ids: np.ndarray) -> int:
        if len(ids) == 0:
            return 0
        n = int(self.index.remove_ids(np.ascontiguousarray(ids, dtype=np.int64)))
        self._gpu_index = None
        return n

    # -- internals --------------------------------------------------------------------------------

    def _prepare(self, vectors: np.ndarray) -> np.ndarray:
        v = np.ascontiguousarray(vectors, dtype=np.float32)
        if v.ndim != 2 or (len(v) and v.shape[1] != self.dim):
            raise ValueError(f"expected (n, {self.dim}) vectors, got {v.shape}")
        if self.distance == "cosine" and len(v):
            v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
            v = np.ascontiguousarray(v, dtype=np.float32)
        return v

    def _tune(self) -> None:
        """Search parameters for the current size (efSearch / nprobe; see library/index_types.py)."""
        from lookalike.library.index_types import apply_params, search_params

        apply_params(self.index, search_params(self.factory, self.ntotal))
        self._gpu_index = None

    def _search_index(self) -> Any:
        """The CPU index, or a GPU copy of it when faiss has GPU support and a device."""
        if self._gpu_index is not None:
            return self._gpu_index
        if self.ntotal < 10_000 or not gpu_available():
            return self.index
        faiss = _faiss()
        try:
            self._gpu_res = self._gpu_res or faiss.StandardGpuResources()
            self._gpu_index = faiss.index_cpu_to_gpu(self._gpu_res, 0, self.index)
        except Exception as exc:  # noqa: BLE001 - unsupported index type on GPU: stay on the CPU
            log.info("faiss GPU copy of %s failed (%s); searching on the CPU", self.metric, exc)
            self._gpu_index = self.index
        return self._gpu_index

    def __repr__(self) -> str:
        return (f"VectorIndex({self.metric!r}, dim={self.dim}, distance={self.distance}, "
                f"factory={self.factory!r}, ntotal={self.ntotal})")


def describe(index: Any) -> str:
    """A factory string for a (non-IDMap) faiss index, as far as it can be told from its type."""
    faiss = _faiss()
    index = faiss.downcast_index(index)
    if isinstance(index, faiss.IndexFlat):
        return "Flat"
    if isinstance(index, faiss.IndexIVFFlat):
        return f"IVF{index.nlist},Flat"
    if isinstance(index, faiss.IndexHNSWFlat):
        return f"HNSW{index.hnsw.nb_neighbors(0) // 2},Flat"
    return type(index).__name__


def index_filename(metric: str) -> str:
    """A file name for a metric's index (metric names may contain any character)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", metric) + ".faiss"
