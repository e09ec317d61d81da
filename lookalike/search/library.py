"""Query by example: ``Library.open(path).search(images, k=10, metrics=[...])``.

Queries may be image files, folders, PIL images, HxWx3 uint8 arrays, or images already in the
library (by id, or by their indexed path). Queries are embedded in batches, once per metric; images
already in the library reuse their stored vectors. Approximate indexes are re-ranked exactly.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from lookalike.errors import UsageError
from lookalike.search.hits import Hit, QueryResult, SearchResult

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


class Library:
    """A searchable photo library (the folder ``lookalike index`` writes)."""

    def __init__(self, inner: Any, device: str | None = None) -> None:
        self._lib = inner
        self._device = device
        self._metrics: dict[str, Any] = {}

    @classmethod
    def open(cls, path: str | os.PathLike[str] | None = None, db_url: str | None = None,
             device: str | None = None) -> Library:
        from lookalike.indexer.library import Library as IndexedLibrary

        return cls(IndexedLibrary.open(path, db_url=db_url), device=device)

    def close(self) -> None:
        self._lib.close()

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def path(self) -> Path:
        return Path(self._lib.path)

    def metrics(self) -> list[str]:
        """Metrics this library has an index for."""
        return list(self._lib.metrics())

    # -- queries ---------------------------------------------------------------------------------

    def _resolve(self, queries: Iterable[Query]) -> list[_Query]:
        from lookalike.files import expand_inputs

        out: list[_Query] = []
        for q in queries:
            if isinstance(q, (int, np.integer)) and not isinstance(q, bool):
                paths = self._lib.paths_for([int(q)])
                if int(q) not in paths:
                    raise UsageError(f"no image with id {q} in the library")
                out.append(_Query(paths[int(q)], None, int(q), paths[int(q)]))
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
        if name not in self._metrics:
            from lookalike.embed.registry import create_metric

            metric = create_metric(name, device=self._device)
            stored = self._lib.provenance(name).get("config")
            if stored is not None and stored != metric.config.to_dict():
                raise UsageError(f"the library's {name!r} index was built with a different config "
                                 "(weights, preprocessing); re-index it with `lookalike index`")
            self._metrics[name] = metric
        return self._metrics[name]

    def _query_vectors(self, metric_name: str, queries: list[_Query],
                       batch_size: int) -> tuple[np.ndarray, list[str]]:
        """Vectors of every query under one metric; stored vectors for library images."""
        dim = self._lib.vector_index(metric_name).dim
        vecs = np.zeros((len(queries), dim), np.float32)
        errors = [""] * len(queries)
        stored = [i for i, q in enumerate(queries) if q.image_id is not None]
        if stored:
            got = self._lib.vectors(metric_name, [queries[i].image_id for i in stored])
            for row, i in enumerate(stored):
                vecs[i] = got[row]
        todo = [i for i, q in enumerate(queries) if q.image_id is None]
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

    def duplicates(self, metric: str, threshold: float | None = None, k: int = 10) -> list[DuplicateGroup]:
        """Near-duplicate groups under ``metric``; ``threshold=None`` uses the metric's calibration."""
        from lookalike.embed.distance import pairwise
        from lookalike.search.dupes import calibrate, calibration_or_none, groups_from_graph

        if metric not in self.metrics():
            raise UsageError(f"the library has no index for {metric!r} (indexed: {', '.join(self.metrics())})")
        threshold = calibrate(metric) if threshold is None else threshold
        index = self._lib.vector_index(metric)
        ids = np.sort(index.ids())
        if len(ids) < 2:
            return []
        vectors = self._lib.vectors(metric, ids)  # every vector, in id order: re-ranking reuses them
        dist, nbr = self._neighbours(metric, vectors, min(k + 1, len(ids)),
                                     fetch=lambda want: vectors[np.searchsorted(ids, want)])
        pos = np.clip(np.searchsorted(ids, nbr), 0, len(ids) - 1)  # ids are sorted: id -> row
        rows = np.where((nbr >= 0) & (ids[pos] == nbr), pos, -1)
        rows[rows == np.arange(len(ids))[:, None]] = -1  # an image is not its own duplicate
        groups = groups_from_graph(rows, dist, threshold)
        paths = self._lib.paths_for([int(ids[r]) for g in groups for r in g])
        cal = calibration_or_none(metric)
        out = []
        for group in groups:
            d = pairwise(vectors[group[:1]], vectors[group], index.distance)[0]  # type: ignore[arg-type]
            d = np.maximum(d, 0.0)
            out.append(DuplicateGroup(metric, [
                (int(ids[r]), paths.get(int(ids[r]), ""), float(x),
                 cal.meaning(float(x)) if cal and n else None)  # the first member is the reference
                for n, (r, x) in enumerate(zip(group, d, strict=True))]))
        return out

    def search(self, queries: Query | Sequence[Query], k: int = 10, metrics: Sequence[str] | None = None,
               exclude_self: bool = False, batch_size: int = 32, rerank: str | None = None,
               candidates: int = RERANK_CANDIDATES) -> list[SearchResult]:
        """Nearest neighbours of each query under each metric (default: every indexed metric).

        ``rerank``: a pairwise metric (e.g. ``diffsim-sd15``) that re-ranks the union of each metric's
        top ``candidates`` into a column of its own (see :mod:`lookalike.search.pairwise_rerank`).
        """
        if isinstance(queries, (str, os.PathLike, int, Image.Image, np.ndarray)):
            queries = [queries]  # type: ignore[list-item]
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
        extra = 1 if exclude_self else 0
        k_out, k = k, max(k, candidates) if rerank else k
        for name in metric_names:
            start = time.perf_counter()
            cal = calibration_or_none(name)
            vecs, errors = self._query_vectors(name, resolved, batch_size)
            dist, ids = self._neighbours(name, vecs, k + extra)
            paths = self._lib.paths_for(sorted({int(i) for i in ids.ravel() if i >= 0}))
            kind = self._lib.vector_index(name).distance
            seconds = (time.perf_counter() - start) / len(resolved)
            for qi, (q, res) in enumerate(zip(resolved, results, strict=True)):
                if errors[qi]:
                    res.errors[name] = errors[qi]
                    continue
                hits: list[Hit] = []
                for d, i in zip(dist[qi], ids[qi], strict=True):
                    if i < 0 or (exclude_self and _is_self(q, int(i), paths.get(int(i)))):
                        continue
                    hits.append(Hit(int(i), paths.get(int(i), ""), float(d), len(hits) + 1, name,
                                    cal.meaning(float(d)) if cal else None))
                res.by_metric[name] = QueryResult(q.label, name, tuple(hits[:k]), kind, seconds)
        if rerank:
            from lookalike.search.pairwise_rerank import add_rerank_column

            add_rerank_column(results, [q.path if q.source is None else q.source for q in resolved],
                              rerank, k_out, candidates, self._device, built=self._metrics)
        return results


@dataclass
class DuplicateGroup:
    """Images within a near-duplicate threshold of each other (linked pairwise, single linkage).

    ``members`` are ``(image_id, path, distance to the first member, what that distance means)``;
    the first member is the reference (distance 0, meaning ``None``).
    """

    metric: str
    members: list[tuple[int, str, float, str | None]]

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "size": len(self.members),
                "members": [{"image_id": i, "path": p, "distance": d, "meaning": m}
                            for i, p, d, m in self.members]}


def _is_self(q: _Query, image_id: int, path: str | None) -> bool:
    if q.image_id is not None:
        return image_id == q.image_id
    return q.path is not None and path is not None and os.path.realpath(path) == os.path.realpath(q.path)
