"""Writer stage: commit file rows and vectors in batches, keep the FAISS indexes in step.

Each :meth:`LibraryWriter.flush` is one database transaction (contents, file rows, vectors,
orphan clean-up); only after it commits are the vectors added to the in-memory FAISS indexes, and
those are saved (atomically) from time to time and at :meth:`LibraryWriter.finish`. A writer killed
at any moment therefore loses at most the uncommitted batch; the next writer's
:meth:`~lookalike.library.folder.LibraryFolder.load_index` adds whatever the saved FAISS file lacks.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lookalike.embed.config import MetricConfig
from lookalike.embed.provenance import check_same_metric, same_metric
from lookalike.errors import UsageError
from lookalike.library.index_types import choose_factory
from lookalike.library.folder import LibraryFolder, SyncReport
from lookalike.indexer.plan import KnownFile
from lookalike.library.vectors import VectorIndex
from lookalike.store.records import FAILED, OK, SKIPPED, Metric

log = logging.getLogger(__name__)


@dataclass
class FileResult:
    """One file's outcome, ready to be written.

    ``status`` ``ok``: ``sha256`` set, ``vectors[metric]`` holds the vectors computed in this run
    (metrics whose vector the content already has are absent). ``failed``/``skipped``: ``error``
    (reason code) and ``detail``.
    """

    path: str
    size: int | None
    mtime_ns: int | None
    status: str = OK
    sha256: str | None = None
    info: dict[str, Any] | None = None
    vectors: dict[str, np.ndarray] = field(default_factory=dict)
    error: str | None = None
    detail: str | None = None


def safe_text(text: str | None) -> str | None:
    """Text for a database column: undecodable file-name bytes (in messages) as ``\\xNN``."""
    from lookalike.files import display_path

    return None if text is None else display_path(text)


class LibraryWriter:
    """Applies indexing results to a library opened with ``writable=True`` (caller holds the lock)."""

    def __init__(self, library: LibraryFolder, configs: Sequence[MetricConfig], factory: str | None = None,
                 rebuild: bool = False, save_every_s: float = 60.0) -> None:
        self.library = library
        self.records = library.records
        self.configs = {c.name: c for c in configs}
        self.rows: dict[str, Metric] = {}
        self.indexes: dict[str, VectorIndex] = {}
        self.sync_reports: list[SyncReport] = []
        self._dirty: set[str] = set()
        self._stale: set[str] = set()  # indexes that still hold removed ids: rebuilt at save time
        self._pending: list[FileResult] = []
        self._pending_sha: dict[str, set[str]] = {}
        self._save_every_s = save_every_s
        self._last_save = time.monotonic()
        self._save_cost = 0.0
        self.created: set[str] = set()  # metrics this writer added to the library
        self._moving: dict[str, list[str]] = {}  # sha256 -> paths that are gone, rows kept for a move
        self.moved = 0
        for config in configs:
            self.rows[config.name] = self._ensure_metric(config, factory, rebuild)
        for name in self.rows:
            index, report = library.load_index(name)
            self.indexes[name] = index
            self.sync_reports.append(report)
            if report.changed:
                log.info("index %s caught up with the database (%d added, %d removed%s)", name,
                         report.added, report.removed,
                         f"; rebuilt: {report.rebuilt}" if report.rebuilt else "")
                self._dirty.add(name)

    # -- metrics ------------------------------------------------------------------------------------

    def _ensure_metric(self, config: MetricConfig, factory: str | None, rebuild: bool) -> Metric:
        from lookalike.embed.provenance import provenance

        prov = provenance(config)
        override = None if factory in (None, "auto") else factory
        if override:
            try:
                VectorIndex.empty(config.name, config.dim, config.distance, override)
            except RuntimeError as exc:
                raise UsageError(f"invalid FAISS index factory {override!r}: "
                                 f"{str(exc).splitlines()[-1]}") from None
        with self.library.write() as w:
            row = w.metric(config.name)
            if row is None:
                row = w.add_metric(config.name, config.dim, config.distance, prov, override)
                self.created.add(config.name)
            else:
                if not same_metric(row.provenance, config):
                    if not rebuild:
                        check_same_metric(row.provenance, config)
                    log.warning("rebuilding %s: its config changed", config.name)
                    w.clear_vectors(row.id)
                    row.provenance, row.dim, row.distance = prov, config.dim, config.distance
                    self.library.index_path(config.name).unlink(missing_ok=True)
                if factory is not None:
                    row.factory_override = override
            return w.detach(row)

    # -- what is already there -------------------------------------------------------------------------

    def known_files(self) -> dict[str, KnownFile]:
        return {r[0]: KnownFile(*r) for r in self.records.known_files()}

    def complete_contents(self) -> set[int]:
        """Content ids that have a committed vector for every metric of this run."""
        sets = [set(map(int, self.indexes[name].ids())) for name in self.rows]
        return set.intersection(*sets) if sets else set()

    def missing_metrics(self, shas: Iterable[str]) -> dict[str, set[str]]:
        """For each sha256, the metrics of this run that still need a vector (committed or pending)."""
        shas = list(dict.fromkeys(shas))
        have: dict[str, set[str]] = {sha: set(self._pending_sha.get(sha, ())) for sha in shas}
        by_id = {row.id: name for name, row in self.rows.items()}
        for sha, mid in self.records.metrics_of_contents(shas, list(by_id)):
            have[sha].add(by_id[mid])
        return {sha: set(self.rows) - got for sha, got in have.items()}

    # -- writing -------------------------------------------------------------------------------------

    def add(self, result: FileResult) -> None:
        """Queue one file's result; :meth:`flush` commits the queue."""
        result.error, result.detail = safe_text(result.error), safe_text(result.detail)  # may quote paths
        self._pending.append(result)
        if result.sha256 and result.vectors:
            self._pending_sha.setdefault(result.sha256, set()).update(result.vectors)

    @property
    def pending(self) -> int:
        return len(self._pending)

    def flush(self) -> int:
        """Commit every queued result in one transaction, then update the in-memory indexes."""
        batch, self._pending, self._pending_sha = self._pending, [], {}
        if not batch:
            return 0
        added: dict[str, list[tuple[int, np.ndarray]]] = {}
        with self.library.write() as w:
            written = w.write_files(batch, self._moving)
            self.moved += written.moved
            for name, row in self.rows.items():
                wanted = {written.content_of[r.path]: r.vectors[name] for r in batch
                          if name in r.vectors and r.path in written.content_of}
                added[name] = list(w.add_vectors(row.id, wanted).items()) if wanted else []
            dropped = w.drop_orphans(written.orphans)
        for name, items in added.items():
            if items:
                self.indexes[name].add(np.array([c for c, _ in items], np.int64),
                                       np.stack([v for _, v in items]))
                self._dirty.add(name)
        self._remove_from_indexes(dropped)
        self.maybe_save()
        return len(batch)

    def expect_moves(self, gone: Iterable[KnownFile]) -> int:
        """Keep the rows of readable files that are gone until :meth:`finish_moves`: a new file with
        the same bytes takes over such a row (same row, content id and vectors: nothing re-embedded).
        The other gone rows (failed, skipped) are deleted now; returns how many."""
        now = []
        for k in gone:
            if k.status == OK and k.sha256:
                self._moving.setdefault(k.sha256, []).append(k.path)
            else:
                now.append(k.path)
        return self.delete_paths(now)

    def finish_moves(self) -> int:
        """Delete the rows of gone files that no new file took over; returns how many."""
        left = sorted(p for paths in self._moving.values() for p in paths)
        self._moving = {}
        return self.delete_paths(left)

    def delete_paths(self, paths: Sequence[str]) -> int:
        """Forget files that are gone; contents no file refers to any more leave the indexes."""
        if not paths:
            return 0
        with self.library.write() as w:
            dropped = w.drop_orphans(w.delete_files(paths))
        self._remove_from_indexes(dropped)
        return len(paths)

    def drop_orphan_contents(self) -> list[int]:
        """Delete every content no file refers to (doctor's repair)."""
        with self.library.write() as w:
            dropped = w.drop_orphans(w.orphan_contents())  # those a study shows are kept
        self._remove_from_indexes(dropped)
        return dropped

    def forget_empty_new_metrics(self) -> list[str]:
        """Remove the metrics this writer added that still hold no vector (a run that failed, e.g.
        on missing weights, leaves no empty metric behind); returns their names."""
        with self.library.write() as w:
            gone = [name for name in sorted(self.created) if w.forget_metric_if_empty(self.rows[name].id)]
        for name in gone:
            self.library.index_path(name).unlink(missing_ok=True)
            self.rows.pop(name, None)
            self.indexes.pop(name, None)
            self._dirty.discard(name)
            self.created.discard(name)
        return gone

    def _remove_from_indexes(self, ids: list[int]) -> None:
        if not ids:
            return
        arr = np.array(ids, np.int64)
        for name, index in self.indexes.items():
            try:
                if index.remove(arr):
                    self._dirty.add(name)
            except RuntimeError:  # an index type without removal (HNSW): rebuild once, at save time
                self._dirty.add(name)
                self._stale.add(name)

    def touch_roots(self, roots: Iterable[str], forget: Iterable[str] = ()) -> None:
        """Record ``roots`` as indexed now; ``forget``: roots to drop (pruned, missing ones)."""
        with self.library.write() as w:
            w.touch_roots(roots, forget)

    # -- saving FAISS files ----------------------------------------------------------------------------

    def maybe_save(self) -> None:
        """Save dirty indexes when it has been a while (never more than ~10% of the time)."""
        if self._dirty and time.monotonic() - self._last_save > max(self._save_every_s, 10 * self._save_cost):
            self.save(choose=False)

    def save(self, choose: bool = True) -> None:
        """Write dirty indexes atomically; with ``choose``, first switch index type if size asks."""
        start = time.monotonic()
        for name in list(self.rows):
            row, index = self.rows[name], self.indexes[name]
            want = self.wanted_factory(name) if choose else index.factory
            if name in self._stale:
                index = self.indexes[name] = self.library.build_index(row, want)
                self._stale.discard(name)
            elif want != index.factory:
                log.info("%s: %d vectors -> switching index %s -> %s", name, index.ntotal,
                         index.factory, want)
                index = self.indexes[name] = self.library.build_index(row, want)
                self._dirty.add(name)
            if name not in self._dirty and self.library.index_path(name).is_file():
                continue
            index.save(self.library.index_path(name))
            values: dict[str, Any] = {"factory": index.factory, "vector_count": index.ntotal,
                                      "updated_at": dt.datetime.now(dt.timezone.utc)}
            pinned = self._pinned_provenance(name)
            if pinned is not None:
                values["provenance"] = row.provenance = pinned
            with self.library.write() as w:
                w.update_metric(row.id, **values)
            row.factory = index.factory
            self._dirty.discard(name)
        self._last_save = time.monotonic()
        self._save_cost = self._last_save - start

    def _pinned_provenance(self, name: str) -> dict[str, Any] | None:
        """The metric's provenance with the weight digests pinned since it was recorded (the first
        download of a file without a catalog checksum), or ``None`` when nothing new is known."""
        from lookalike.embed.provenance import digest_fingerprint, weight_digests

        prov, config = self.rows[name].provenance, self.configs.get(name)
        then = prov.get("weights_sha256") if isinstance(prov, dict) else None
        if config is None or not isinstance(then, dict):
            return None
        now = weight_digests(config)
        if all(then.get(n) == d or d is None for n, d in now.items()):
            return None
        digests = {n: then.get(n) or d for n, d in now.items()}
        return {**prov, "weights_sha256": digests, "fingerprint": digest_fingerprint(prov["config"], digests)}

    def wanted_factory(self, name: str) -> str:
        row, index = self.rows[name], self.indexes[name]
        if row.factory_override:
            return row.factory_override
        return choose_factory(index.ntotal, row.dim) if index.ntotal else "Flat"


__all__ = ["FAILED", "FileResult", "LibraryWriter", "OK", "SKIPPED"]
