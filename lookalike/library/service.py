"""Query by example: ``Library.open(path).search(images, k=10, metrics=[...])``.

Queries may be image files, folders, PIL images, HxWx3 uint8 arrays, or images already in the
library (by id, or by their indexed path). Queries are embedded in batches, once per metric; images
already in the library reuse their stored vectors. Approximate indexes are re-ranked exactly.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from lookalike.errors import UsageError
from lookalike.search.dupes import DuplicateGroup
from lookalike.search.hits import Hit, QueryResult, SearchResult

if TYPE_CHECKING:
    from lookalike.library.folder import LibraryFolder
    from lookalike.search.verify import PairVerifier

log = logging.getLogger(__name__)

Query = str | os.PathLike[str] | int | Image.Image | np.ndarray

#: Candidates fetched per wanted neighbour before exact re-ranking on approximate indexes.
RERANK_FACTOR = 4
#: Candidates per embedding metric that ``search(rerank=...)`` re-ranks with a pairwise metric.
RERANK_CANDIDATES = 100


@dataclass
class _Query:
    label: str
    source: Any
    image_id: int | None = None
    path: str | None = None


@dataclass(frozen=True)
class ImageInfo:
    """One indexed file: ``image_id`` is its content id (the id search results and vectors use;
    byte-identical files share it, ``None`` when the file failed to load), ``file_id`` its row."""

    image_id: int | None
    file_id: int
    path: str
    status: str
    size: int | None = None
    width: int | None = None
    height: int | None = None
    format: str | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


@dataclass(frozen=True)
class ImagePage:
    """A page of :meth:`Library.images`: ``total`` files match, ``items`` start at ``offset``."""

    items: tuple[ImageInfo, ...]
    total: int
    offset: int
    limit: int


def _info(r: Any) -> ImageInfo:
    """An :class:`ImageInfo` of a file row of the store."""
    return ImageInfo(r.content_id, r.id, r.path, r.status, r.size, r.width, r.height, r.format, r.error)


class Library:
    """A photo library (the folder ``lookalike index`` writes): the one service the CLI, the UI and
    studies use. Open with :meth:`open`; use as a context manager or call :meth:`close`.

    Ids are content ids (:attr:`ImageInfo.image_id`). One open library may be shared by the threads
    of a server process: caches are locked, and every read first checks the database's generation
    counter (one cheap query), reloading indexes after another process's writer committed. Opening
    never writes to the library's database (a writer is :class:`LibraryFolder` with
    ``writable=True``, used by the indexer).
    """

    def __init__(self, store: LibraryFolder, device: str | None = None) -> None:
        self._lib = store
        self._device = device
        self._metrics: dict[str, Any] = {}
        self._lock = threading.RLock()

    @classmethod
    def open(cls, path: str | os.PathLike[str] | None = None, db_url: str | None = None,
             device: str | None = None) -> Library:
        """Open the library folder ``path`` (default ``$LOOKALIKE_LIBRARY`` or ``./.lookalike``)
        read-only; ``db_url`` as in :meth:`LibraryFolder.open`; ``device`` for embedding queries."""
        from lookalike.library.folder import LibraryFolder

        return cls(LibraryFolder.open(path, db_url=db_url), device=device)

    def close(self) -> None:
        self._lib.close()

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"lookalike.Library({str(self.path)!r})"

    @property
    def path(self) -> Path:
        return Path(self._lib.path)

    def refresh(self) -> bool:
        """Reload what other processes changed since the last read; True when something had."""
        changed = self._lib.refresh()
        if changed:
            with self._lock:
                self._metrics.clear()  # a re-embedded metric may have a new config
        return changed

    def metrics(self) -> list[str]:
        """Metrics this library has an index for."""
        return list(self._lib.metrics())

    def status(self) -> dict[str, Any]:
        """A JSON-able summary: files, contents, metrics and their coverage, roots, problems
        (what ``lookalike status --json`` prints)."""
        from lookalike.library.status import library_status

        return library_status(self._lib)

    # -- images -----------------------------------------------------------------------------------

    def images(self, offset: int = 0, limit: int = 100, status: str | None = None) -> ImagePage:
        """Indexed files in path order, ``limit`` from ``offset``; ``status``: ``ok``, ``failed`` or
        ``skipped`` only."""
        if offset < 0 or limit < 0:
            raise UsageError("offset and limit must not be negative")
        total, rows = self._lib.records.files(offset, limit, status)
        items = tuple(_info(r) for r in rows)
        return ImagePage(items, int(total), offset, limit)

    def image(self, image_id: int) -> ImageInfo:
        """The first (in path order) file with content id ``image_id``."""
        r = self._lib.records.first_file(int(image_id))
        if r is None:
            raise UsageError(f"no image with id {image_id} in the library")
        return _info(r)

    def id_for_path(self, path: str | os.PathLike[str]) -> int | None:
        """The id of an indexed file (``None`` when not indexed or when it failed to load)."""
        return self._lib.id_for_path(path)

    def ids(self, metric: str) -> np.ndarray:
        """Sorted ids that have a stored vector under ``metric``."""
        self.refresh()
        return self._lib.ids(metric)

    def ids_under(self, folder: str | os.PathLike[str]) -> list[int]:
        """Sorted ids of the readable files under ``folder`` (at any depth)."""
        return self._lib.ids_under(folder)

    def sha256(self, ids: Iterable[int]) -> dict[int, str]:
        """The sha256 of each known id's bytes (its identity across moves and re-indexing)."""
        return self._lib.sha256_of(ids)

    def distance_kind(self, metric: str) -> str:
        """How ``metric``'s vectors are compared: ``cosine`` or ``sqeuclidean``
        (see :func:`lookalike.embed.distance.pairwise`)."""
        return str(self._lib.metric_row(metric).distance)

    @property
    def database(self) -> Any:
        """The library's database (:class:`lookalike.store.Store`), for services that keep tables
        of their own in it (:class:`lookalike.studies.service.StudyService`)."""
        return self._lib.store

    def paths_for(self, ids: Iterable[int]) -> dict[int, list[str]]:
        """Every indexed path of each known id, sorted (byte-identical files share an id)."""
        return self._lib.all_paths_for(ids)

    def vectors(self, metric: str, ids: Iterable[int]) -> np.ndarray:
        """Stored full-precision vectors of ``ids`` under ``metric``, ``(len(ids), dim)`` float32
        (``KeyError`` names ids without one)."""
        self.refresh()
        return self._lib.vectors(metric, ids)

    def has_thumbnail(self, image_id: int, size: int = 256) -> bool:
        """Whether :meth:`thumbnail` has been made and cached already (serving it reads no photo)."""
        from lookalike.library.thumbnails import thumbnail_file

        return thumbnail_file(self.path, image_id, size).is_file()

    def thumbnail(self, image_id: int, size: int = 256) -> bytes:
        """A JPEG of the image, its longest side ``size`` pixels (never enlarged), made once and
        cached under ``thumbnails/SIZE/`` in the library folder (when the folder is writable).

        Made from the first copy of the image that can still be read (byte-identical files share
        the id); :class:`UsageError` when none can."""
        from lookalike.library.thumbnails import thumbnail

        return thumbnail(self.path, image_id, size, lambda: self.paths_for([int(image_id)]).get(int(image_id)))

    # -- queries ---------------------------------------------------------------------------------

    def _resolve(self, queries: Iterable[Query]) -> list[_Query]:
        from lookalike.files import expand_inputs

        out: list[_Query] = []
        for q in queries:
            if isinstance(q, (int, np.integer)) and not isinstance(q, bool):
                paths = self._lib.paths_for([int(q)])
                if int(q) not in paths:
                    raise UsageError(f"no image with id {q} in the library")
                out.append(_Query(paths[int(q)], paths[int(q)], int(q), paths[int(q)]))
            elif isinstance(q, Image.Image):
                out.append(_Query(f"<image {len(out)}>", q))
            elif isinstance(q, np.ndarray):
                out.append(_Query(f"<array {len(out)}>", q))
            else:
                for path in expand_inputs([q]):
                    image_id = self._lib.id_for_path(path)
                    out.append(_Query(path, path, image_id, path))
        if not out:
            raise UsageError("no query images")
        return out

    def _metric(self, name: str) -> Any:
        with self._lock:
            return self._metric_locked(name)

    def _metric_locked(self, name: str) -> Any:
        if name not in self._metrics:
            from lookalike.embed.factory import create_metric

            from lookalike.embed.provenance import check_same_metric

            metric = create_metric(name, device=self._device)
            check_same_metric(self._lib.provenance(name), metric.config)
            self._metrics[name] = metric
        return self._metrics[name]

    def _query_vectors(self, metric_name: str, queries: list[_Query],
                       batch_size: int) -> tuple[np.ndarray, list[str]]:
        """Vectors of every query under one metric: stored vectors for library images that have
        one, the others (new files, images not yet embedded under this metric) are embedded."""
        dim = self._lib.vector_index(metric_name).dim
        vecs = np.zeros((len(queries), dim), np.float32)
        errors = [""] * len(queries)
        have = set(self._lib.ids(metric_name).tolist()) if any(q.image_id is not None for q in queries) else set()
        stored = [i for i, q in enumerate(queries) if q.image_id in have]
        if stored:
            got = self._lib.vectors(metric_name, [queries[i].image_id for i in stored])
            for row, i in enumerate(stored):
                vecs[i] = got[row]
        todo = [i for i, q in enumerate(queries) if q.image_id not in have]
        if todo:
            metric = self._metric(metric_name)
            files = [i for i in todo if isinstance(queries[i].source, str)]
            if files:
                result = metric.embed_paths([queries[i].source for i in files], batch_size=batch_size,
                                            progress=len(files) > batch_size)
                done = dict(zip(result.paths, result.vectors, strict=True))
                failed = dict(result.failures)
                for i in files:
                    if queries[i].source in done:
                        vecs[i] = done[queries[i].source]
                    else:
                        errors[i] = failed.get(queries[i].source, "could not be read")
            memory = [i for i in todo if not isinstance(queries[i].source, str)]
            if memory:
                vecs[memory] = metric.embed([queries[i].source for i in memory], batch_size=batch_size)
        return vecs, errors

    def _neighbours(self, metric_name: str, vecs: np.ndarray, k: int,
                    fetch: Callable[[np.ndarray], np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Exact top ``k``; approximate indexes are re-ranked with stored vectors (``fetch``: ids ->
        vectors, default: read them from the library)."""
        from lookalike.search.rerank import rerank

        index = self._lib.vector_index(metric_name)
        if index.exact:
            return index.search(vecs, k)
        _, cand = index.search(vecs, max(k * RERANK_FACTOR, k + 32))
        fetch = fetch or (lambda ids: self._lib.vectors(metric_name, ids))
        return rerank(vecs, cand, fetch, k, kind=index.distance)

    def not_embedded(self, metric: str) -> int:
        """How many of the library's images have no vector under ``metric`` yet (the next
        ``lookalike index`` embeds them)."""
        self.refresh()
        return len(set(self._content_ids()) - set(self._lib.ids(metric).tolist()))

    def _content_ids(self) -> list[int]:
        return self._lib.records.content_ids()

    def _content_of_file(self, path: str) -> int | None:
        """The content id of a file's bytes when the library holds identical ones."""
        from lookalike.files import sha256_file

        try:
            sha = sha256_file(path)
        except OSError:
            return None
        return self._lib.records.content_of_sha256(sha)

    def duplicates(self, metric: str, threshold: float | None = None, k: int = 10,
                   verify: bool = True) -> list[DuplicateGroup]:
        """Groups of copies: identical files first, then near-duplicates found under ``metric``.

        With ``verify`` (the default) embedding neighbours within ``threshold`` (default: the
        metric's loose candidate threshold) are only candidates; a pair is linked when local
        features confirm it is the same photo (:mod:`lookalike.search.verify`). Without it, groups
        are complete-linkage clusters within ``threshold`` (default: the calibrated threshold),
        labelled "similar (unverified)".
        """
        from lookalike.search.dupes import calibration, duplicate_groups

        self.refresh()
        if metric not in self.metrics():
            raise UsageError(f"the library has no index for {metric!r} (indexed: {', '.join(self.metrics())})")
        if k < 1:
            raise UsageError(f"-k must be at least 1, got {k}")
        if threshold is None:
            cal = calibration(metric)
            threshold = cal.candidate if verify else cal.threshold
        index = self._lib.vector_index(metric)
        ids = np.sort(index.ids())
        all_paths = self._lib.all_paths_for(self._content_ids())
        vectors = dist = nbr = None
        if len(ids) >= 2:
            vectors = self._lib.vectors(metric, ids)  # every vector, in id order: re-ranking reuses them
            dist, nbr = self._neighbours(metric, vectors, min(k + 1, len(ids)),
                                         fetch=lambda want: vectors[np.searchsorted(ids, want)])
        return duplicate_groups(metric, ids, vectors, dist, nbr, index.distance, threshold, all_paths, verify)

    def search(self, queries: Query | Sequence[Query], k: int = 10, metrics: Sequence[str] | None = None,
               exclude_self: bool = False, batch_size: int = 32, verify: bool = True, rerank: str | None = None,
               candidates: int = RERANK_CANDIDATES) -> list[SearchResult]:
        """Nearest neighbours of each query under each metric (default: every indexed metric).

        ``k`` counts images; every path of byte-identical files is listed (hits with equal ids),
        those identical to the query labelled "identical file". Hits within the metric's candidate
        distance are checked with local features (``verify``): verified copies say so, and a
        "same photo" or "same scene" band is never printed unverified (``similar (unverified)`` /
        ``look-alike``).
        ``exclude_self`` drops the query's own path only (its identical copies stay).
        Images not yet embedded under a metric are counted in ``extra["not_embedded"]``.
        ``rerank``: a pairwise metric (e.g. ``diffsim-sd15``) that re-ranks the union of each metric's
        top ``candidates`` into a column of its own (see :mod:`lookalike.search.pairwise_rerank`).
        """
        if isinstance(queries, (str, os.PathLike, int, Image.Image, np.ndarray)):
            queries = [queries]  # type: ignore[list-item]
        if k < 1:
            raise UsageError(f"-k must be at least 1, got {k}")
        self.refresh()
        resolved = self._resolve(queries)  # type: ignore[arg-type]
        metric_names = list(metrics or self.metrics())
        if not metric_names:
            raise UsageError("the library has no index yet; run `lookalike index DIR` first")
        missing = [m for m in metric_names if m not in self.metrics()]
        if missing:
            raise UsageError(f"the library has no index for {', '.join(missing)}; indexed: "
                             f"{', '.join(self.metrics()) or 'none'} (add one with `lookalike index --metric`)")
        from lookalike.search.dupes import calibration_or_none

        results = [SearchResult(q.label, q.image_id) for q in resolved]
        content = [q.image_id if q.image_id is not None else
                   (self._content_of_file(q.path) if q.path else None) for q in resolved]
        extra = 1 if exclude_self else 0
        k_out, k = k, max(k, candidates) if rerank else k
        verifier = None
        if verify:
            from lookalike.search.verify import PairVerifier

            verifier = PairVerifier({("query", qi): q.source for qi, q in enumerate(resolved)},
                                    unreadable=logging.DEBUG)
        for name in metric_names:
            start = time.perf_counter()
            cal = calibration_or_none(name)
            not_embedded = self.not_embedded(name)
            if not_embedded:
                log.warning("%d image(s) of the library are not yet embedded under %s (run `lookalike index`)",
                            not_embedded, name)
            vecs, errors = self._query_vectors(name, resolved, batch_size)
            size = len(self._lib.vector_index(name).ids())
            dist, ids = self._neighbours(name, vecs, min(k + extra, size)) if size else (
                np.zeros((len(resolved), 0), np.float32), np.zeros((len(resolved), 0), np.int64))
            paths = self._lib.all_paths_for(sorted({int(i) for i in ids.ravel() if i >= 0}))
            kind = self._lib.vector_index(name).distance
            seconds = (time.perf_counter() - start) / len(resolved)
            for qi, (q, res) in enumerate(zip(resolved, results, strict=True)):
                if errors[qi]:
                    res.errors[name] = errors[qi]
                    continue
                hits: list[Hit] = []
                images = 0
                for d, i in zip(dist[qi], ids[qi], strict=True):
                    if i < 0 or images >= k:
                        continue
                    listed = [p for p in paths.get(int(i), [""])
                              if not (exclude_self and _is_self_path(q, p))]
                    if not listed:
                        continue
                    if not (exclude_self and len(listed) < len(paths.get(int(i), []))):
                        images += 1  # the query's own identical copies do not take a place
                    label = self._hit_label(qi, int(i), float(d), listed[0], content, cal, verifier)
                    for p in listed:
                        hits.append(Hit(int(i), p, float(d), len(hits) + 1, name, label))
                extra_info = {"not_embedded": not_embedded} if not_embedded else {}
                res.by_metric[name] = QueryResult(q.label, name, tuple(hits), kind, seconds, extra_info)
        if rerank:
            from lookalike.search.pairwise_rerank import add_rerank_column

            add_rerank_column(results, [q.path if q.source is None else q.source for q in resolved],
                              rerank, k_out, candidates, self._device, built=self._metrics)
        return results

    @staticmethod
    def _hit_label(qi: int, image_id: int, distance: float, path: str, content: list[int | None],
                   cal: Any, verifier: PairVerifier | None) -> str | None:
        """What a hit is: identical bytes, a verified copy, or the calibrated meaning of its distance."""
        from lookalike.search.dupes import IDENTICAL, NOT_SAME, UNVERIFIED, verified_label

        if content[qi] is not None and image_id == content[qi]:
            return IDENTICAL
        if cal is None:
            return None
        meaning = cal.meaning(distance)
        claims = meaning.startswith(("same photo", "same scene"))  # a claim is printed only when verified
        if distance > cal.candidate and not claims:
            return meaning
        check = verifier.verify(("query", qi), path) if verifier is not None else None
        if check is None:
            return UNVERIFIED if claims else meaning
        if check.same:
            return verified_label(check.inliers)
        return NOT_SAME if claims else meaning


def _is_self_path(q: _Query, path: str) -> bool:
    """Is ``path`` the query's own file?"""
    return q.path is not None and bool(path) and os.path.realpath(path) == os.path.realpath(q.path)
