"""Writer stage: commit file rows and vectors in batches, keep the FAISS indexes in step.

Each :meth:`LibraryWriter.flush` is one database transaction (contents, file rows, vectors,
orphan clean-up); only after it commits are the vectors added to the in-memory FAISS indexes, and
those are saved (atomically) from time to time and at :meth:`LibraryWriter.finish`. A writer killed
at any moment therefore loses at most the uncommitted batch; the next writer's
:meth:`~lookalike.indexer.library.LibraryStore.load_index` adds whatever the saved FAISS file lacks.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import delete, exists, select, update

from lookalike.embed.config import MetricConfig, same_metric
from lookalike.errors import UsageError
from lookalike.indexer.factory import choose_factory
from lookalike.indexer.library import LibraryStore, SyncReport, chunks, encode_vector
from lookalike.indexer.plan import KnownFile
from lookalike.indexer.vectors import VectorIndex
from lookalike.store.models import FAILED, OK, SKIPPED, Content, Image, MetricIndex, Root, Vector

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

    def __init__(self, library: LibraryStore, configs: Sequence[MetricConfig], factory: str | None = None,
                 rebuild: bool = False, save_every_s: float = 60.0) -> None:
        self.library = library
        self.store = library.store
        self.configs = {c.name: c for c in configs}
        self.rows: dict[str, MetricIndex] = {}
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

    def _ensure_metric(self, config: MetricConfig, factory: str | None, rebuild: bool) -> MetricIndex:
        from lookalike.embed.provenance import provenance

        prov = provenance(config)
        override = None if factory in (None, "auto") else factory
        if override:
            try:
                VectorIndex.empty(config.name, config.dim, config.distance, override)
            except RuntimeError as exc:
                raise UsageError(f"invalid FAISS index factory {override!r}: "
                                 f"{str(exc).splitlines()[-1]}") from None
        with self.library.write() as s:
            row = s.scalar(select(MetricIndex).where(MetricIndex.name == config.name))
            if row is None:
                row = MetricIndex(name=config.name, dim=config.dim, distance=config.distance,
                                  provenance=prov, factory=None, factory_override=override, vector_count=0)
                s.add(row)
                self.created.add(config.name)
            else:
                if not same_metric(row.provenance, config):
                    if not rebuild:
                        raise UsageError(
                            f"the library's {config.name} vectors were made by a different config of "
                            f"that metric; re-embed everything with --rebuild")
                    log.warning("rebuilding %s: its config changed", config.name)
                    s.execute(delete(Vector).where(Vector.metric_id == row.id))
                    row.provenance, row.dim, row.distance = prov, config.dim, config.distance
                    self.library.index_path(config.name).unlink(missing_ok=True)
                if factory is not None:
                    row.factory_override = override
            s.flush()
            s.expunge(row)
        return row

    # -- what is already there -------------------------------------------------------------------------

    def known_files(self) -> dict[str, KnownFile]:
        with self.store.session() as s:
            rows = s.execute(select(Image.path, Image.size, Image.mtime_ns, Image.status,
                                    Image.content_id, Image.sha256, Image.error))
            return {r[0]: KnownFile(*r) for r in rows}

    def complete_contents(self) -> set[int]:
        """Content ids that have a committed vector for every metric of this run."""
        sets = [set(map(int, self.indexes[name].ids())) for name in self.rows]
        return set.intersection(*sets) if sets else set()

    def missing_metrics(self, shas: Iterable[str]) -> dict[str, set[str]]:
        """For each sha256, the metrics of this run that still need a vector (committed or pending)."""
        shas = list(dict.fromkeys(shas))
        have: dict[str, set[str]] = {sha: set(self._pending_sha.get(sha, ())) for sha in shas}
        by_id = {row.id: name for name, row in self.rows.items()}
        with self.store.session() as s:
            for part in chunks(shas):
                rows = s.execute(select(Content.sha256, Vector.metric_id)
                                 .join(Vector, Vector.content_id == Content.id)
                                 .where(Content.sha256.in_(part), Vector.metric_id.in_(list(by_id))))
                for sha, mid in rows:
                    have[sha].add(by_id[mid])
        return {sha: set(self.rows) - got for sha, got in have.items()}

    # -- writing -------------------------------------------------------------------------------------

    def add(self, result: FileResult) -> None:
        """Queue one file's result; :meth:`flush` commits the queue."""
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
        added: dict[str, list[tuple[int, np.ndarray]]] = {name: [] for name in self.rows}
        with self.library.write() as s:
            shas = sorted({r.sha256 for r in batch if r.status == OK and r.sha256})
            contents: dict[str, int] = {}
            for part in chunks(shas):
                contents.update((sha, cid) for sha, cid in s.execute(
                    select(Content.sha256, Content.id).where(Content.sha256.in_(part))))
            new = {r.sha256: Content(sha256=r.sha256, size=r.size or 0) for r in batch
                   if r.status == OK and r.sha256 and r.sha256 not in contents}
            if new:
                s.add_all(new.values())
                s.flush()  # one round trip for the batch's new contents (their ids)
                contents.update((sha, c.id) for sha, c in new.items())
            images = self._images_by_path(s, [r.path for r in batch])
            self._take_moved(s, batch, images)
            orphans: set[int] = set()
            now = dt.datetime.now(dt.timezone.utc)
            for r in batch:
                img = images.get(r.path)
                if img is None:
                    img = Image(path=r.path)
                    s.add(img)
                    images[r.path] = img
                cid = contents.get(r.sha256) if r.status == OK and r.sha256 else None
                if img.content_id is not None and img.content_id != cid:
                    orphans.add(img.content_id)
                info = r.info or {}
                img.size, img.mtime_ns, img.sha256, img.content_id = r.size, r.mtime_ns, r.sha256, cid
                img.status, img.updated_at = r.status, now
                img.error, img.detail = safe_text(r.error), safe_text(r.detail)  # may quote paths
                if r.info is not None or r.status != OK:
                    img.width, img.height = info.get("width"), info.get("height")
                    img.format, img.orientation = info.get("format"), info.get("orientation")
                    img.exif_datetime = info.get("exif_datetime")
                if cid is not None:
                    for name, vec in r.vectors.items():
                        added[name].append((cid, vec))
            s.flush()
            new_vectors = []
            for name, items in added.items():
                mid = self.rows[name].id
                unique = dict(items)  # identical content twice in one batch: one vector
                existing = set(s.scalars(select(Vector.content_id).where(
                    Vector.metric_id == mid, Vector.content_id.in_(list(unique)))))
                fresh = {cid: v for cid, v in unique.items() if cid not in existing}
                new_vectors += [Vector(metric_id=mid, content_id=cid, data=encode_vector(v))
                                for cid, v in fresh.items()]
                added[name] = list(fresh.items())
            s.add_all(new_vectors)
            s.flush()
            dropped = self._drop_orphans(s, orphans)
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

    def _take_moved(self, s: Any, batch: Sequence[FileResult], images: dict[str, Image]) -> None:
        takers = [r for r in batch if r.path not in images and r.status == OK and r.sha256 in self._moving]
        if not takers:
            return
        for r in takers:
            olds = self._moving.get(r.sha256 or "", [])
            while olds and r.path not in images:
                old = s.scalar(select(Image).where(Image.path == olds.pop(0)))
                if old is not None and old.sha256 == r.sha256:
                    log.debug("moved: %s -> %s", old.path, r.path)
                    old.path = r.path
                    images[r.path] = old
                    self.moved += 1
            if not olds:
                self._moving.pop(r.sha256 or "", None)
        s.flush()

    def delete_paths(self, paths: Sequence[str]) -> int:
        """Forget files that are gone; contents no file refers to any more leave the indexes."""
        if not paths:
            return 0
        with self.library.write() as s:
            orphans: set[int] = set()
            for part in chunks(list(paths)):
                orphans.update(c for c in s.scalars(select(Image.content_id).where(
                    Image.path.in_(part), Image.content_id.is_not(None))))
                s.execute(delete(Image).where(Image.path.in_(part)))
            dropped = self._drop_orphans(s, orphans)
        self._remove_from_indexes(dropped)
        return len(paths)

    def drop_orphan_contents(self) -> list[int]:
        """Delete every content no file refers to (doctor's repair)."""
        with self.library.write() as s:
            ids = set(s.scalars(select(Content.id).where(~exists().where(Image.content_id == Content.id))))
            from lookalike.studies.refs import study_content_ids

            ids -= study_content_ids(s, ids)  # kept for the studies that show them
            dropped = self._drop_orphans(s, ids)
        self._remove_from_indexes(dropped)
        return dropped

    def forget_empty_new_metrics(self) -> list[str]:
        """Remove the metrics this writer added that still hold no vector (a run that failed, e.g.
        on missing weights, leaves no empty metric behind); returns their names."""
        gone = []
        with self.library.write() as s:
            for name in sorted(self.created):
                mid = self.rows[name].id
                if s.scalar(select(Vector.content_id).where(Vector.metric_id == mid).limit(1)) is None:
                    s.execute(delete(MetricIndex).where(MetricIndex.id == mid))
                    gone.append(name)
        for name in gone:
            self.library.index_path(name).unlink(missing_ok=True)
            self.rows.pop(name, None)
            self.indexes.pop(name, None)
            self._dirty.discard(name)
            self.created.discard(name)
        return gone

    def _images_by_path(self, s: Any, paths: list[str]) -> dict[str, Image]:
        out: dict[str, Image] = {}
        for part in chunks(paths):
            out.update({img.path: img for img in s.scalars(select(Image).where(Image.path.in_(part)))})
        return out

    def _drop_orphans(self, s: Any, candidates: set[int]) -> list[int]:
        dropped: list[int] = []
        for part in chunks(sorted(candidates)):
            still = set(s.scalars(select(Image.content_id).where(Image.content_id.in_(part))))
            gone = [c for c in part if c not in still]
            if gone:
                from lookalike.studies.refs import study_content_ids

                kept = study_content_ids(s, gone)  # a study shows them: keep the content row (identity)
                s.execute(delete(Vector).where(Vector.content_id.in_(gone)))
                s.execute(update(Image).where(Image.content_id.in_(gone)).values(content_id=None))
                s.execute(delete(Content).where(Content.id.in_([c for c in gone if c not in kept])))
                dropped += gone
        return dropped

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
        now = dt.datetime.now(dt.timezone.utc)
        forget = set(forget)
        with self.library.write() as s:
            if forget:
                s.execute(delete(Root).where(Root.path.in_(sorted(forget))))
            for path in roots:
                if path in forget:
                    continue
                root = s.scalar(select(Root).where(Root.path == path))
                if root is None:
                    s.add(Root(path=path, indexed_at=now))
                else:
                    root.indexed_at = now

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
            with self.library.write() as s:
                s.execute(update(MetricIndex).where(MetricIndex.id == row.id).values(**values))
            row.factory = index.factory
            self._dirty.discard(name)
        self._last_save = time.monotonic()
        self._save_cost = self._last_save - start

    def _pinned_provenance(self, name: str) -> dict[str, Any] | None:
        """The metric's provenance with the weight digests pinned since it was recorded (the first
        download of a file without a catalog checksum), or ``None`` when nothing new is known."""
        from lookalike.embed.config import fingerprint

        prov, config = self.rows[name].provenance, self.configs.get(name)
        then = prov.get("weights_sha256") if isinstance(prov, dict) else None
        if config is None or not isinstance(then, dict):
            return None
        now = config.weight_digests()
        if all(then.get(n) == d or d is None for n, d in now.items()):
            return None
        digests = {n: then.get(n) or d for n, d in now.items()}
        return {**prov, "weights_sha256": digests, "fingerprint": fingerprint(prov["config"], digests)}

    def wanted_factory(self, name: str) -> str:
        row, index = self.rows[name], self.indexes[name]
        if row.factory_override:
            return row.factory_override
        return choose_factory(index.ntotal, row.dim) if index.ntotal else "Flat"


__all__ = ["FAILED", "FileResult", "LibraryWriter", "OK", "SKIPPED"]
