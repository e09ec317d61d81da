"""A library folder: its records (the database) and its FAISS indexes kept in step with them.

What :class:`lookalike.Library` reads and the indexer writes; callers use :class:`lookalike.Library`.

A library is a folder (default ``./.lookalike``, or ``$LOOKALIKE_LIBRARY``) holding:

- ``library.json``: format version and the database URL when it is not the default;
- ``library.db``: the SQLite database (unless a PostgreSQL URL was given at creation);
- ``indexes/<metric>.faiss``: one FAISS ``IndexIDMap2`` per metric, saved atomically;
- ``lock``: the writer lock (:mod:`lookalike.indexer.lock`).

The database is the source of truth: it holds every file's row, one row per distinct content
(sha256) whose ``id`` is the FAISS vector id in every index, and the full-precision float32 vector
of every (metric, content). The FAISS files are a cache of those vectors for fast search: when a
file lags behind the database (a writer was killed before saving it), :meth:`LibraryFolder.vector_index`
brings the in-memory index up to date from the database, so readers always search exactly the
committed vectors (:func:`lookalike.library.reconcile.reconcile` says how a file disagrees). Example::

    from lookalike.library.folder import LibraryFolder

    with LibraryFolder.open(".lookalike") as lib:
        index = lib.vector_index("effnet-lite0")
        dist, ids = index.search(lib.vectors("effnet-lite0", [some_id]), k=10)
        paths = lib.paths_for(ids[0][ids[0] >= 0].tolist())
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from lookalike.atomic import atomic_write_bytes
from lookalike.errors import UsageError
from lookalike.library.reconcile import DIMENSION, DUPLICATES, MISSING, UNREADABLE, reconcile
from lookalike.library.vectors import VectorIndex, index_filename
from lookalike.store.records import CHUNK, LibraryRecords, RecordsWriter, Metric
from lookalike.store.db import Store, open_store, sqlite_url

__all__ = ["LibraryFolder", "LibraryNotFoundError", "SyncReport", "VectorIndex", "default_library_path"]

log = logging.getLogger(__name__)

LIBRARY_ENV = "LOOKALIKE_LIBRARY"
DEFAULT_LIBRARY = ".lookalike"
CONFIG_NAME = "library.json"
DB_NAME = "library.db"
FORMAT = 1
#: Vectors an index type that needs training (IVF, PQ) is trained on, at most.
TRAIN_SAMPLE = 100_000


class LibraryNotFoundError(UsageError):
    """No library at the given folder (and ``create`` was not asked)."""


def default_library_path() -> Path:
    return Path(os.environ.get(LIBRARY_ENV) or DEFAULT_LIBRARY)


@dataclass
class SyncReport:
    """What reconciling a FAISS file with the database did."""

    metric: str
    added: int = 0
    removed: int = 0
    rebuilt: str = ""  # why the index was rebuilt from the database ("" if it was not)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed or self.rebuilt)


class LibraryFolder:
    """An open library. Build with :meth:`LibraryFolder.open`; use as a context manager or ``close()``.

    This is the store layer; applications use the service :class:`lookalike.Library` built over it.
    All ids are ``contents.id`` values: the FAISS ids of every metric's index. Several paths with
    identical bytes share one id (:meth:`paths_for` gives one of them, :meth:`all_paths_for` all).
    Safe to share between threads: the index cache is locked; :meth:`refresh` drops cached
    indexes when another process has committed since they were loaded.
    """

    def __init__(self, path: Path, store: Store, writable: bool = False) -> None:
        self.path = path
        self.store = store
        self.records = LibraryRecords(store)
        self.writable = writable
        self._indexes: dict[str, VectorIndex] = {}
        self._lock = threading.RLock()
        self._generation: int | None = None

    # -- opening ----------------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | os.PathLike[str] | None = None, db_url: str | None = None,
             create: bool = False, writable: bool = False) -> LibraryFolder:
        """Open the library folder ``path`` (default: ``$LOOKALIKE_LIBRARY`` or ``./.lookalike``).

        ``db_url``: a SQLAlchemy URL (``postgresql+psycopg://user@host/db``) to use instead of the
        folder's SQLite file; it is remembered in ``library.json``, so later opens need not repeat
        it once a connection to it has worked. ``create``: make the library when it does not exist
        (else :class:`LibraryNotFoundError`). ``writable`` is for writers (indexer, doctor); writers
        upgrade an older schema, readers never write anything (an older schema raises
        :class:`~lookalike.store.db.LibraryNeedsUpgradeError`).
        """
        folder = Path(path) if path is not None else default_library_path()
        folder = folder.expanduser().absolute()
        config_path = folder / CONFIG_NAME
        if folder.exists() and not folder.is_dir():
            raise UsageError(f"{folder} is a file, not a library folder (--library names a folder)")
        if config_path.is_file():
            try:
                config = json.loads(config_path.read_text())
            except (OSError, ValueError) as exc:
                raise UsageError(f"cannot read {config_path}: {exc}") from None
            if not isinstance(config, dict):
                raise UsageError(f"{config_path} is not a lookalike library file")
        elif create:
            config = {"format": FORMAT, "db_url": None}
        else:
            raise LibraryNotFoundError(
                f"no lookalike library at {folder} (create one with `lookalike index DIR --library "
                f"{folder}`, or set {LIBRARY_ENV})")
        new_url = bool(db_url and db_url != config.get("db_url"))
        if new_url and config.get("db_url"):
            log.warning("library %s now uses database %s (was %s)", folder, db_url, config["db_url"])
        url = (db_url if new_url else config.get("db_url")) or sqlite_url(folder / DB_NAME)
        made = not folder.exists()
        if create or writable:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "indexes").mkdir(exist_ok=True)
        # Readers never write; a URL is remembered only once a connection to it has worked.
        try:
            store = open_store(url, immediate=writable, reader=not (create or writable))
        except BaseException:
            if made:  # leave no half-made library behind (e.g. a --db typo on the first run)
                for p in (folder / "indexes", folder):
                    try:
                        p.rmdir()
                    except OSError:
                        break
            raise
        if (create or writable) and (new_url or not config_path.is_file()):
            config["db_url"] = db_url if new_url else config.get("db_url")
            try:
                atomic_write_bytes(config_path, (json.dumps(config, indent=2) + "\n").encode())
            except BaseException:
                store.close()
                raise
        return cls(folder, store, writable=writable)

    @property
    def db_url(self) -> str:
        return self.store.url

    def close(self) -> None:
        with self._lock:
            self._indexes.clear()
        self.store.close()

    # -- generations: noticing other processes' writes ------------------------------------------------

    def write(self) -> AbstractContextManager[RecordsWriter]:
        """A writer transaction that bumps the library's generation (readers then reload)."""
        return self.records.write()

    def generation(self) -> int:
        """The number of writer commits so far (one cheap query)."""
        return self.records.generation()

    def refresh(self) -> bool:
        """Drop the cached indexes if a writer committed since they were loaded; True if it had."""
        gen = self.generation()
        with self._lock:
            seen, self._generation = self._generation, gen
            if seen is None or seen == gen:
                return False
            self._indexes.clear()
            return True

    def __enter__(self) -> LibraryFolder:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LibraryFolder({str(self.path)!r}, {self.store!r})"

    # -- metrics and vectors ------------------------------------------------------------------------

    def metrics(self) -> list[str]:
        """Names of the metrics this library has an index for."""
        return self.records.metric_names()

    def metric_row(self, metric: str) -> Metric:
        row = self.records.metric(metric)
        if row is None:
            have = ", ".join(self.metrics()) or "none"
            raise UsageError(f"library {self.path} has no {metric!r} index (it has: {have}); "
                             f"add one with `lookalike index --metric {metric}`")
        return row

    def provenance(self, metric: str) -> dict[str, Any]:
        """What produced ``metric``'s vectors (see :meth:`lookalike.embed.metric.Metric.provenance`).

        ``["config"]`` is in :meth:`MetricConfig.to_dict` form (tuples, not JSON lists), so it compares
        equal to ``create_metric(metric).config.to_dict()`` when the metric is unchanged.
        """
        prov = dict(self.metric_row(metric).provenance)
        if isinstance(prov.get("config"), dict):
            from lookalike.embed.config import MetricConfig

            try:
                prov["config"] = MetricConfig.from_dict(prov["config"]).to_dict()
            except (TypeError, ValueError):  # a config from another version: leave it as stored
                pass
        return prov

    def index_path(self, metric: str) -> Path:
        return self.path / "indexes" / index_filename(metric)

    def vector_index(self, metric: str) -> VectorIndex:
        """The searchable index of ``metric``, exactly matching the committed database vectors.

        Loaded once and cached; call :meth:`refresh` to see later writes of other processes.
        """
        with self._lock:
            if self._generation is None:
                self._generation = self.generation()
            if metric not in self._indexes:
                index, report = self.load_index(metric)
                if report.changed:
                    log.debug("index %s caught up with the database: %s", metric, report)
                self._indexes[metric] = index
            return self._indexes[metric]

    def vectors(self, metric: str, ids: Iterable[int]) -> np.ndarray:
        """Full-precision vectors of ``ids`` (in that order), ``(len(ids), dim)`` float32.

        Raises ``KeyError`` naming the ids that have no vector under ``metric``.
        """
        row = self.metric_row(metric)
        wanted = [int(i) for i in ids]
        found = self._fetch_vectors(row, sorted(set(wanted)))
        missing = [i for i in wanted if i not in found]
        if missing:
            raise KeyError(f"no {metric} vector for id(s) {missing[:10]}")
        if not wanted:
            return np.zeros((0, row.dim), np.float32)
        return np.stack([found[i] for i in wanted])

    def ids(self, metric: str) -> np.ndarray:
        """Sorted ids that have a committed vector under ``metric``."""
        return self.records.vector_ids(self.metric_row(metric).id)

    # -- paths ----------------------------------------------------------------------------------------

    def paths_for(self, ids: Iterable[int]) -> dict[int, str]:
        """One path per id (the first in sort order when identical files sit at several paths).

        Ids that are unknown (or ``-1`` padding) are left out of the result.
        """
        return {i: paths[0] for i, paths in self.all_paths_for(ids).items()}

    def all_paths_for(self, ids: Iterable[int]) -> dict[int, list[str]]:
        """Every indexed path of each id, sorted."""
        return self.records.paths_of(ids)

    def ids_under(self, folder: str | os.PathLike[str]) -> list[int]:
        """Sorted content ids of the readable files under ``folder``."""
        return self.records.content_ids(under=os.fspath(folder))

    def sha256_of(self, ids: Iterable[int]) -> dict[int, str]:
        """The sha256 of each known content id."""
        return self.records.sha256_of(ids)

    def id_for_path(self, path: str | os.PathLike[str]) -> int | None:
        """The id of an indexed file (``None`` when not indexed or when it failed to load)."""
        return self.records.content_of_path(os.path.abspath(path))

    # -- reconciling FAISS files with the database -------------------------------------------------------

    def load_index(self, metric: str) -> tuple[VectorIndex, SyncReport]:
        """Load ``metric``'s FAISS file and make it agree with the database (in memory only).

        Ids in the file but not in the database are removed; committed vectors missing from the
        file are added. An unreadable or mismatched file is rebuilt from the database vectors.
        """
        row = self.metric_row(metric)
        report = SyncReport(metric)
        db_ids = self.ids(metric)
        found = reconcile(self.index_path(metric), metric, row.dim, row.distance, db_ids)
        index = None if found.problem else found.index
        report.rebuilt = {MISSING: "index file missing",
                          UNREADABLE: f"unreadable index file ({found.detail})",
                          DIMENSION: f"file has {found.file_dim} dimensions, metric has {row.dim}",
                          DUPLICATES: "duplicate ids in index file"}.get(found.problem, "")
        if index is not None:
            try:
                report.removed = index.remove(found.extra)
            except RuntimeError:  # index type without removal (HNSW): rebuild
                report.rebuilt = "index type cannot remove vectors"
                index = None
            if index is not None and len(found.missing):
                missing = found.missing
                vecs = self._fetch_vectors(row, missing.tolist())
                index.add(missing, np.stack([vecs[int(i)] for i in missing]))
                report.added = len(missing)
        if index is None:
            index = self.build_index(row, row.factory or "Flat", db_ids)
        return index, report

    def build_index(self, row: Metric, factory: str, ids: np.ndarray | None = None) -> VectorIndex:
        """A new index of every committed vector of ``row``'s metric, streamed from the database
        in chunks (never all in memory at once; index types that need training see a sample)."""
        ids = np.sort(self.ids(row.name) if ids is None else np.asarray(ids, np.int64))
        if len(ids) == 0 and factory != "Flat":
            factory = "Flat"  # nothing to train on yet
        (log.info if len(ids) else log.debug)("building %s index of %d %s vectors", factory, len(ids),
                                              row.name)
        try:
            index = VectorIndex.empty(row.name, row.dim, row.distance, factory)
            if not index.trained:
                sample = ids[np.linspace(0, len(ids) - 1, min(len(ids), TRAIN_SAMPLE)).astype(int)]
                index.train(self.vectors(row.name, np.unique(sample).tolist()))
        except RuntimeError as exc:  # e.g. fewer training vectors than IVF lists
            if factory == "Flat":
                raise
            log.warning("cannot build a %s index of %d %s vectors (%s); using Flat", factory, len(ids),
                        row.name, str(exc).splitlines()[-1])
            index = VectorIndex.empty(row.name, row.dim, row.distance, "Flat")
        for part, vecs in self.iter_vectors(row.name, ids):
            index.add(part, vecs)
        return index

    def iter_vectors(self, metric: str, ids: np.ndarray | None = None,
                     chunk: int = CHUNK) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(ids, vectors)`` chunks of ``metric``'s committed vectors (default: all, by id)."""
        ids = self.ids(metric) if ids is None else np.asarray(ids, np.int64)
        for start in range(0, len(ids), chunk):
            part = ids[start:start + chunk]
            yield part, self.vectors(metric, part.tolist())

    def _fetch_vectors(self, row: Metric, ids: Sequence[int]) -> dict[int, np.ndarray]:
        return self.records.vectors(row, ids)
