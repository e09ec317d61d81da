"""On-disk cache of per-image vectors (and pairwise distances), one store per metric fingerprint.

Layout: ``$LOOKALIKE_HOME/features/<fingerprint[:32]>/`` holds ``meta.json`` (the full record the
fingerprint hashes: the metric's provenance and the state of its weights files), ``index.json``
(``key -> [shard, row]``, keys being the sha256 of an image file's content, or ``"a:b"`` for a
pair of them) and ``shard-*.npy`` files of float32 rows. A write adds one new shard, then replaces
the index atomically under an exclusive lock, so readers never see a half-written store and two
processes filling one store lose nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lookalike.atomic import atomic_write, atomic_write_json
from lookalike.paths import home

log = logging.getLogger(__name__)

INDEX = "index.json"
META = "meta.json"


def features_dir() -> Path:
    return home() / "features"


def _weights_state(config: Any) -> list[dict[str, Any]]:
    """What identifies each weights file now: its catalog or pinned digest, else size and mtime."""
    from lookalike.embed import weights as w
    from lookalike.embed.weights import checksums

    out = []
    for wf in config.weights:
        item: dict[str, Any] = {"name": wf.name}
        rec = checksums.entry(wf.name)
        if wf.sha256:
            item["sha256"] = wf.sha256
        elif rec and (rec.get("sha256") or rec.get("files")):
            item["sha256"], item["files"] = rec.get("sha256"), rec.get("files")
        else:
            path = w.package_path(wf) if wf.package else w.cached_path(wf)
            item["stat"] = _stat_signature(path) if path is not None else None
        out.append(item)
    return out


def _stat_signature(path: Path) -> list[Any] | None:
    if not path.exists():
        return None
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return [[str(p.relative_to(path)) if path.is_dir() else p.name, p.stat().st_size, p.stat().st_mtime_ns]
            for p in files]


def fingerprint_record(metric: Any, precision: str = "fp32") -> dict[str, Any] | None:
    """The JSON-able record that identifies what a metric computes, or ``None`` if unknown.

    ``metric`` is a :class:`~lookalike.embed.config.MetricConfig`, an object with ``.config`` (a
    built metric) or one with a ``provenance()`` method (e.g. a pairwise metric)."""
    from lookalike.embed.config import MetricConfig
    from lookalike.embed.provenance import provenance

    config = metric if isinstance(metric, MetricConfig) else getattr(metric, "config", None)
    kind = getattr(metric, "kind", None) or "embedding"
    if isinstance(config, MetricConfig):
        precision = getattr(metric, "precision", precision) if not isinstance(metric, MetricConfig) else precision
        return {"provenance": provenance(config, precision=precision), "weights": _weights_state(config),
                "kind": kind}
    prov = getattr(metric, "provenance", None)
    if callable(prov):
        return {"provenance": prov(), "kind": kind}
    return None


def fingerprint(record: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    from filelock import FileLock

    with FileLock(folder / ".lock", thread_local=False):
        yield


def _save_npy(path: str, rows: np.ndarray) -> None:
    with open(path, "wb") as fh:
        np.save(fh, rows)


class VectorStore:
    """Rows of one width keyed by strings, for one metric fingerprint."""

    def __init__(self, folder: Path, record: dict[str, Any] | None = None) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        if record is not None and not (folder / META).is_file():
            atomic_write_json(folder / META, record)
        self._shards: dict[str, np.ndarray] = {}

    def _index(self) -> dict[str, list[Any]]:
        try:
            data = json.loads((self.folder / INDEX).read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable feature index %s (%s); vectors will be recomputed",
                        self.folder / INDEX, exc)
            return {}
        return data.get("keys", {}) if isinstance(data, dict) else {}

    def _shard(self, name: str) -> np.ndarray:
        if name not in self._shards:
            self._shards[name] = np.load(self.folder / name, mmap_mode="r")
        return self._shards[name]

    def get(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """The cached rows of those ``keys`` that are present."""
        index = self._index()
        out: dict[str, np.ndarray] = {}
        for key in keys:
            where = index.get(key)
            if where is None:
                continue
            try:
                out[key] = np.array(self._shard(where[0])[int(where[1])], dtype=np.float32)
            except (OSError, ValueError, IndexError) as exc:
                log.warning("feature cache %s: entry for %s unreadable (%s); recomputing", self.folder, key, exc)
        return out

    def put(self, keys: Sequence[str], rows: np.ndarray) -> None:
        """Add rows (``len(keys)`` x width) as one new shard, then publish them in the index."""
        rows = np.ascontiguousarray(rows, dtype=np.float32)
        if len(keys) != len(rows):
            raise ValueError(f"{len(keys)} keys for {len(rows)} rows")
        if not len(keys):
            return
        name = f"shard-{uuid.uuid4().hex[:16]}.npy"
        atomic_write(self.folder / name, lambda tmp: _save_npy(tmp, rows))
        with _locked(self.folder):
            index = self._index()
            for i, key in enumerate(keys):
                index[key] = [name, i]
            atomic_write_json(self.folder / INDEX, {"keys": index})


class FeatureCache:
    """Stores by metric fingerprint under :func:`features_dir` (or ``root``)."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root) if root is not None else features_dir()

    def store(self, record: dict[str, Any], namespace: str = "vectors") -> VectorStore:
        """The store for a fingerprint record (``namespace`` keeps vectors and distances apart)."""
        fp = fingerprint({**record, "namespace": namespace})
        return VectorStore(self.root / fp[:32], {**record, "namespace": namespace})
