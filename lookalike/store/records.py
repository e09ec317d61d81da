"""The queries of a library's own tables: files, contents, metrics, vectors, roots, generation.

This is the one place the indexer and the search service reach the database through (studies have
:mod:`lookalike.store.studies`). :class:`LibraryRecords` reads, each call in a short session of its own;
:meth:`LibraryRecords.write` is a writer transaction (:class:`RecordsWriter`) that bumps the library's
generation counter, so long-lived readers notice the commit with one cheap query. Vectors go in
and come out as numpy arrays (little-endian float32 blobs in the database).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from sqlalchemy import delete, exists, func, select, text, update
from sqlalchemy.orm import Session

from lookalike.store.db import Store, current_revision
from lookalike.store.models import (
    FAILED,
    OK,
    SKIPPED,
    Content,
    Image,
    LibraryState,
    MetricIndex,
    Root,
    Trial,
    TrialImage,
    Vector,
)

log = logging.getLogger(__name__)

__all__ = ["CHUNK", "FAILED", "OK", "SKIPPED", "LibraryRecords", "RecordsWriter", "FileRecord", "Metric", "chunks",
           "decode_vectors", "encode_vector"]

#: Ids per ``IN (...)`` query (well under SQLite's and PostgreSQL's parameter limits).
CHUNK = 5000

#: A metric's row (detached from any session): ``id``, ``name``, ``dim``, ``distance``, ``provenance``,
#: ``factory``, ``factory_override``, ``vector_count``, ``updated_at``.
Metric = MetricIndex


def chunks(items: Sequence[Any], n: int = CHUNK) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), n):
        yield items[i:i + n]


def decode_vectors(blobs: Sequence[bytes], dim: int, metric: str = "") -> np.ndarray:
    """Database blobs (little-endian float32) -> an ``(n, dim)`` array."""
    if not blobs:
        return np.zeros((0, dim), np.float32)
    bad = [i for i, b in enumerate(blobs) if len(b) != 4 * dim]
    if bad:
        raise ValueError(f"{len(bad)} stored {metric} vector(s) are not {dim}-dimensional")
    return np.frombuffer(b"".join(blobs), dtype="<f4").astype(np.float32).reshape(len(blobs), dim)


def encode_vector(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype="<f4").tobytes()


class FileRecord(Protocol):
    """What the writer knows of one file (:class:`lookalike.indexer.writer.FileResult` is one)."""

    path: str
    size: int | None
    mtime_ns: int | None
    status: str
    sha256: str | None
    info: dict[str, Any] | None
    error: str | None
    detail: str | None


def study_content_ids(session: Session, candidates: Iterable[int] | None = None) -> set[int]:
    """Content ids among ``candidates`` (default: all) that a study trial shows: their content rows
    are kept when no file has those bytes any more (a study's images keep their identity)."""
    wanted = None if candidates is None else list(candidates)
    out: set[int] = set()
    for col in (TrialImage.content_id, Trial.reference_id, Trial.left_id, Trial.right_id):
        q = select(col).where(col.is_not(None))
        if wanted is not None:
            for part in chunks(wanted):
                out.update(int(c) for c in session.scalars(q.where(col.in_(list(part))).distinct()))
        else:
            out.update(int(c) for c in session.scalars(q.distinct()))
    return out


def _lacking(metric_id: int) -> Any:
    """Readable files without a vector under the metric (a WHERE clause)."""
    return (Image.status == OK) & ~exists().where(Vector.metric_id == metric_id,
                                                  Vector.content_id == Image.content_id)


class LibraryRecords:
    """Reads of one library database (safe to share between threads: every call has its own session)."""

    def __init__(self, db: Store) -> None:
        self.db = db

    @contextmanager
    def write(self) -> Iterator[RecordsWriter]:
        """A writer transaction (committed on success) that bumps the library's generation."""
        with self.db.transaction() as s:
            yield RecordsWriter(s)
            s.execute(update(LibraryState).where(LibraryState.id == 1)
                      .values(generation=LibraryState.generation + 1))

    def generation(self) -> int:
        """The number of writer commits so far (one cheap query)."""
        with self.db.session() as s:
            return int(s.scalar(select(LibraryState.generation).where(LibraryState.id == 1)) or 0)

    # -- metrics and vectors ----------------------------------------------------------------------

    def metric_names(self) -> list[str]:
        with self.db.session() as s:
            return list(s.scalars(select(MetricIndex.name).order_by(MetricIndex.name)))

    def metric(self, name: str) -> Metric | None:
        with self.db.session() as s:
            return s.scalar(select(MetricIndex).where(MetricIndex.name == name))

    def metrics(self) -> list[Metric]:
        with self.db.session() as s:
            return list(s.scalars(select(MetricIndex).order_by(MetricIndex.name)))

    def vector_ids(self, metric_id: int) -> np.ndarray:
        """Sorted content ids with a committed vector under the metric."""
        with self.db.session() as s:
            got = s.scalars(select(Vector.content_id).where(Vector.metric_id == metric_id)).all()
        return np.sort(np.asarray(got, dtype=np.int64))

    def vectors(self, metric: Metric, ids: Sequence[int]) -> dict[int, np.ndarray]:
        """``{id: vector}`` of the ids that have one under ``metric``."""
        out: dict[int, np.ndarray] = {}
        with self.db.session() as s:
            for part in chunks(list(ids)):
                rows = s.execute(select(Vector.content_id, Vector.data).where(
                    Vector.metric_id == metric.id, Vector.content_id.in_(part))).all()
                if rows:
                    vecs = decode_vectors([r[1] for r in rows], metric.dim, metric.name)
                    out.update({int(r[0]): v for r, v in zip(rows, vecs)})
        return out

    def vector_counts(self) -> dict[int, int]:
        """Committed vectors per metric id."""
        with self.db.session() as s:
            return {int(m): int(n) for m, n in s.execute(select(Vector.metric_id, func.count())
                                                         .group_by(Vector.metric_id))}

    def malformed_vectors(self, metric: Metric) -> list[int]:
        """Content ids whose stored vector is not ``metric.dim`` float32 values."""
        with self.db.session() as s:
            return list(s.scalars(select(Vector.content_id).where(
                Vector.metric_id == metric.id, func.length(Vector.data) != 4 * metric.dim)))

    def unembedded(self, metric_id: int) -> list[str]:
        """Paths of readable files without a vector under the metric, sorted."""
        with self.db.session() as s:
            return list(s.scalars(select(Image.path).where(_lacking(metric_id)).order_by(Image.path)))

    def unembedded_count(self, metric_id: int) -> int:
        with self.db.session() as s:
            return int(s.scalar(select(func.count()).select_from(Image).where(_lacking(metric_id))) or 0)

    # -- files and contents ---------------------------------------------------------------------------

    def paths_of(self, ids: Iterable[int]) -> dict[int, list[str]]:
        """Every readable file's path of each content id (sorted); unknown ids are left out."""
        wanted = sorted({int(i) for i in ids if int(i) >= 0})
        out: dict[int, list[str]] = {}
        with self.db.session() as s:
            for part in chunks(wanted):
                rows = s.execute(select(Image.content_id, Image.path)
                                 .where(Image.content_id.in_(part), Image.status == OK))
                for cid, path in rows:
                    out.setdefault(int(cid), []).append(path)
        return {i: sorted(p) for i, p in sorted(out.items())}

    def content_of_path(self, path: str) -> int | None:
        """The content id of a readable file (``None`` when unknown or failed)."""
        with self.db.session() as s:
            return s.scalar(select(Image.content_id).where(Image.path == path, Image.status == OK))

    def content_of_sha256(self, sha256: str) -> int | None:
        with self.db.session() as s:
            return s.scalar(select(Content.id).where(Content.sha256 == sha256))

    def sha256_of(self, ids: Iterable[int]) -> dict[int, str]:
        out: dict[int, str] = {}
        with self.db.session() as s:
            for part in chunks(sorted({int(i) for i in ids})):
                out.update((int(c), h) for c, h in s.execute(
                    select(Content.id, Content.sha256).where(Content.id.in_(part))))
        return out

    def content_ids(self, under: str | None = None) -> list[int]:
        """Sorted content ids of the readable files (``under``: only files below that folder)."""
        prefix = None if under is None else os.path.abspath(under).rstrip(os.sep) + os.sep
        with self.db.session() as s:
            rows = s.execute(select(Image.path, Image.content_id).where(
                Image.status == OK, Image.content_id.is_not(None)))
            return sorted({int(c) for p, c in rows if prefix is None or p.startswith(prefix)})

    def files(self, offset: int = 0, limit: int = 100, status: str | None = None) -> tuple[int, list[Image]]:
        """``(total, rows)``: files in path order, ``limit`` from ``offset`` (``status``: only those)."""
        where = [] if status is None else [Image.status == status]
        with self.db.session() as s:
            total = s.scalar(select(func.count()).select_from(Image).where(*where)) or 0
            rows = s.scalars(select(Image).where(*where).order_by(Image.path).offset(offset).limit(limit))
            return int(total), list(rows)

    def first_file(self, content_id: int) -> Image | None:
        """The first readable file (in path order) holding ``content_id``."""
        with self.db.session() as s:
            return s.scalars(select(Image).where(Image.content_id == int(content_id), Image.status == OK)
                             .order_by(Image.path).limit(1)).first()

    def known_files(self) -> list[tuple[str, int | None, int | None, str, int | None, str | None, str | None]]:
        """Every file row as ``(path, size, mtime_ns, status, content_id, sha256, error)``: what the
        planner compares with the disk."""
        with self.db.session() as s:
            return [tuple(r) for r in s.execute(select(  # type: ignore[misc]
                Image.path, Image.size, Image.mtime_ns, Image.status, Image.content_id, Image.sha256,
                Image.error))]

    def listed_paths(self) -> list[str]:
        """Paths of every file row except listing problems (``skipped``), sorted."""
        with self.db.session() as s:
            return list(s.scalars(select(Image.path).where(Image.status != SKIPPED).order_by(Image.path)))

    def status_counts(self) -> dict[str, int]:
        with self.db.session() as s:
            return {st: int(n) for st, n in s.execute(select(Image.status, func.count()).group_by(Image.status))}

    def content_count(self) -> int:
        with self.db.session() as s:
            return int(s.scalar(select(func.count()).select_from(Content)) or 0)

    def problems(self) -> list[tuple[str, str, str | None, str | None]]:
        """``(path, status, reason, detail)`` of every file that is not readable, by path."""
        with self.db.session() as s:
            return [tuple(r) for r in s.execute(select(Image.path, Image.status, Image.error, Image.detail)
                                                .where(Image.status != OK).order_by(Image.path))]  # type: ignore[misc]

    def metrics_of_contents(self, sha256s: Sequence[str], metric_ids: Sequence[int]) -> list[tuple[str, int]]:
        """``(sha256, metric id)`` for every committed vector of those contents under those metrics."""
        out: list[tuple[str, int]] = []
        with self.db.session() as s:
            for part in chunks(list(sha256s)):
                out += [(sha, int(mid)) for sha, mid in s.execute(
                    select(Content.sha256, Vector.metric_id).join(Vector, Vector.content_id == Content.id)
                    .where(Content.sha256.in_(part), Vector.metric_id.in_(list(metric_ids))))]
        return out

    def orphan_contents(self) -> list[int]:
        """Contents no file refers to, except those a study shows (kept on purpose), by id."""
        with self.db.session() as s:
            return sorted(RecordsWriter(s).orphan_contents())  # a read: nothing is committed

    # -- roots and the database itself ------------------------------------------------------------------

    def roots(self) -> list[str]:
        with self.db.session() as s:
            return list(s.scalars(select(Root.path).order_by(Root.path)))

    def roots_indexed(self) -> list[tuple[str, dt.datetime | None]]:
        """``(root, when it was last indexed)``, by path."""
        with self.db.session() as s:
            return [(p, t) for p, t in s.execute(select(Root.path, Root.indexed_at).order_by(Root.path))]

    def integrity(self) -> list[str]:
        """SQLite's ``quick_check`` result (``["ok"]`` when sound; always that on PostgreSQL)."""
        if self.db.dialect != "sqlite":
            return ["ok"]
        with self.db.engine.connect() as conn:
            return [str(r[0]) for r in conn.execute(text("PRAGMA quick_check"))]

    def schema(self) -> str | None:
        return current_revision(self.db.engine)

    def display_url(self) -> str:
        return self.db.engine.url.render_as_string(hide_password=True)


@dataclass
class FilesWritten:
    """What :meth:`RecordsWriter.write_files` did: each readable path's content id, the content ids
    that files no longer refer to (candidates for :meth:`RecordsWriter.drop_orphans`), moves taken."""

    content_of: dict[str, int]
    orphans: set[int]
    moved: int


class RecordsWriter:
    """The writes of one transaction (from :meth:`LibraryRecords.write`)."""

    def __init__(self, session: Session) -> None:
        self.s = session

    # -- metrics ------------------------------------------------------------------------------------

    def metric(self, name: str) -> Metric | None:
        return self.s.scalar(select(MetricIndex).where(MetricIndex.name == name))

    def add_metric(self, name: str, dim: int, distance: str, provenance: dict[str, Any],
                   factory_override: str | None) -> Metric:
        row = MetricIndex(name=name, dim=dim, distance=distance, provenance=provenance, factory=None,
                          factory_override=factory_override, vector_count=0)
        self.s.add(row)
        self.s.flush()
        return row

    def detach(self, row: Metric) -> Metric:
        """``row`` with its changes flushed, usable after the transaction."""
        self.s.flush()
        self.s.expunge(row)
        return row

    def clear_vectors(self, metric_id: int) -> None:
        self.s.execute(delete(Vector).where(Vector.metric_id == metric_id))

    def update_metric(self, metric_id: int, **values: Any) -> None:
        self.s.execute(update(MetricIndex).where(MetricIndex.id == metric_id).values(**values))

    def forget_metric_if_empty(self, metric_id: int) -> bool:
        """Delete the metric when it holds no vector; True if it did."""
        if self.s.scalar(select(Vector.content_id).where(Vector.metric_id == metric_id).limit(1)) is not None:
            return False
        self.s.execute(delete(MetricIndex).where(MetricIndex.id == metric_id))
        return True

    def delete_malformed_vectors(self) -> dict[str, int]:
        """Delete stored vectors of the wrong size; how many per metric name (only those with any)."""
        out = {}
        for row in self.s.scalars(select(MetricIndex)).all():
            n = self.s.execute(delete(Vector).where(Vector.metric_id == row.id,
                                                    func.length(Vector.data) != 4 * row.dim)).rowcount
            if n:
                out[row.name] = int(n)
        return out

    # -- files, contents, vectors -------------------------------------------------------------------------

    def write_files(self, batch: Sequence[FileRecord], moving: dict[str, list[str]]) -> FilesWritten:
        """Insert or update the rows of ``batch``'s files (and the contents of readable ones).

        ``moving``: ``{sha256: paths}`` of files that are gone but whose rows are kept for a move; a
        new readable file with those bytes takes over such a row (same row, content id, vectors).
        Taken paths are removed from ``moving``.
        """
        shas = sorted({r.sha256 for r in batch if r.status == OK and r.sha256})
        contents: dict[str, int] = {}
        for part in chunks(shas):
            contents.update((sha, cid) for sha, cid in self.s.execute(
                select(Content.sha256, Content.id).where(Content.sha256.in_(part))))
        new = {r.sha256: Content(sha256=r.sha256, size=r.size or 0) for r in batch
               if r.status == OK and r.sha256 and r.sha256 not in contents}
        if new:
            self.s.add_all(new.values())
            self.s.flush()  # one round trip for the batch's new contents (their ids)
            contents.update((sha, c.id) for sha, c in new.items())
        images = self._files_by_path([r.path for r in batch])
        moved = self._take_moved(batch, images, moving)
        orphans: set[int] = set()
        content_of: dict[str, int] = {}
        now = dt.datetime.now(dt.timezone.utc)
        for r in batch:
            img = images.get(r.path)
            if img is None:
                img = Image(path=r.path)
                self.s.add(img)
                images[r.path] = img
            cid = contents.get(r.sha256) if r.status == OK and r.sha256 else None
            if img.content_id is not None and img.content_id != cid:
                orphans.add(img.content_id)
            info = r.info or {}
            img.size, img.mtime_ns, img.sha256, img.content_id = r.size, r.mtime_ns, r.sha256, cid
            img.status, img.updated_at = r.status, now
            img.error, img.detail = r.error, r.detail
            if r.info is not None or r.status != OK:
                img.width, img.height = info.get("width"), info.get("height")
                img.format, img.orientation = info.get("format"), info.get("orientation")
                img.exif_datetime = info.get("exif_datetime")
            if cid is not None:
                content_of[r.path] = cid
        self.s.flush()
        return FilesWritten(content_of, orphans, moved)

    def _files_by_path(self, paths: list[str]) -> dict[str, Image]:
        out: dict[str, Image] = {}
        for part in chunks(paths):
            out.update({img.path: img for img in self.s.scalars(select(Image).where(Image.path.in_(part)))})
        return out

    def _take_moved(self, batch: Sequence[FileRecord], images: dict[str, Image],
                    moving: dict[str, list[str]]) -> int:
        moved = 0
        for r in batch:
            if r.path in images or r.status != OK or r.sha256 not in moving:
                continue
            olds = moving[r.sha256 or ""]
            while olds and r.path not in images:
                old = self.s.scalar(select(Image).where(Image.path == olds.pop(0)))
                if old is not None and old.sha256 == r.sha256:
                    log.debug("moved: %s -> %s", old.path, r.path)
                    old.path = r.path
                    images[r.path] = old
                    moved += 1
            if not olds:
                moving.pop(r.sha256 or "", None)
        self.s.flush()
        return moved

    def add_vectors(self, metric_id: int, vectors: Mapping[int, np.ndarray]) -> dict[int, np.ndarray]:
        """Store the vectors of contents that have none under the metric yet; returns those added."""
        existing = set()
        for part in chunks(sorted(vectors)):
            existing.update(self.s.scalars(select(Vector.content_id).where(
                Vector.metric_id == metric_id, Vector.content_id.in_(list(part)))))
        fresh = {cid: v for cid, v in vectors.items() if cid not in existing}
        self.s.add_all([Vector(metric_id=metric_id, content_id=cid, data=encode_vector(v))
                        for cid, v in fresh.items()])
        self.s.flush()
        return fresh

    def delete_files(self, paths: Sequence[str]) -> set[int]:
        """Delete the rows of ``paths``; returns the content ids they referred to."""
        orphans: set[int] = set()
        for part in chunks(list(paths)):
            orphans.update(c for c in self.s.scalars(select(Image.content_id).where(
                Image.path.in_(part), Image.content_id.is_not(None))))
            self.s.execute(delete(Image).where(Image.path.in_(part)))
        return orphans

    def orphan_contents(self) -> set[int]:
        """Contents no file refers to, except those a study shows (kept on purpose)."""
        ids = set(self.s.scalars(select(Content.id).where(~exists().where(Image.content_id == Content.id))))
        return ids - study_content_ids(self.s, ids) if ids else ids

    def drop_orphans(self, candidates: Iterable[int]) -> list[int]:
        """Of ``candidates``, the contents no file refers to any more lose their vectors (and their
        row, unless a study shows them: the study keeps its identity); returns the ids that left."""
        dropped: list[int] = []
        for part in chunks(sorted(set(candidates))):
            still = set(self.s.scalars(select(Image.content_id).where(Image.content_id.in_(part))))
            gone = [c for c in part if c not in still]
            if gone:
                kept = study_content_ids(self.s, gone)
                self.s.execute(delete(Vector).where(Vector.content_id.in_(gone)))
                self.s.execute(update(Image).where(Image.content_id.in_(gone)).values(content_id=None))
                self.s.execute(delete(Content).where(Content.id.in_([c for c in gone if c not in kept])))
                dropped += gone
        return dropped

    # -- roots ----------------------------------------------------------------------------------------

    def touch_roots(self, roots: Iterable[str], forget: Iterable[str] = ()) -> None:
        """Record ``roots`` as indexed now; ``forget``: roots to drop."""
        now = dt.datetime.now(dt.timezone.utc)
        forget = set(forget)
        if forget:
            self.s.execute(delete(Root).where(Root.path.in_(sorted(forget))))
        for path in roots:
            if path in forget:
                continue
            root = self.s.scalar(select(Root).where(Root.path == path))
            if root is None:
                self.s.add(Root(path=path, indexed_at=now))
            else:
                root.indexed_at = now
