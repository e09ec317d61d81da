"""Near-duplicate groups and what a distance means, as plain numpy functions.

* :func:`knn_graph`: exact k nearest neighbours of every vector (chunked, numpy), or bring your own
  from an index search (ids, distances; ``-1`` ids are padding).
* :func:`groups_from_graph` / :func:`near_duplicate_groups`: union-find clusters of the pairs closer
  than a threshold (single linkage: A~B and B~C put A, B, C in one group). Precise only at tiny
  thresholds: the number of false links grows with the square of the library size.
* :func:`candidate_pairs` + :func:`components`: what ``dupes`` does by default. Loose embedding
  candidates; only pairs that pass a check (``lookalike.search.verify``) become links.
* :func:`complete_linkage`: groups whose every pair is within the threshold (no chaining), for
  grouping without verification.
* :func:`calibrate` / :func:`calibration` / :func:`meaning`: per-metric thresholds and bands, read
  from ``thresholds.json`` beside this file, which ``benchmarks/calibrate_dupes.py`` writes from
  known edits of the real photos (see that file and the JSON's ``method`` entry).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np

from lookalike.embed.distance import pairwise
from lookalike.errors import UsageError

#: Band labels, nearest first; "different" is everything beyond the last band.
LABELS = ("same photo, re-encoded", "same photo, edited/cropped", "same scene", "similar")
DIFFERENT = "different"
#: One-word forms of the labels for tables.
SHORT = dict(zip((*LABELS, DIFFERENT), ("re-encoded", "edited", "same scene", "similar", "different"),
                 strict=True))
#: Evidence labels of ``dupes`` members and verified search hits.
IDENTICAL = "identical file"
UNVERIFIED = "similar (unverified)"
NOT_SAME = "look-alike, not the same photo"
SHORT.update({IDENTICAL: "identical", UNVERIFIED: "unverified", NOT_SAME: "look-alike"})


def verified_label(inliers: int) -> str:
    """The label of a pair that passed geometric verification with ``inliers`` agreeing features."""
    return f"same photo (verified: {inliers} matching features)"


def short_label(label: str | None) -> str:
    """A one-word form of a label for tables (``""`` for none)."""
    if label and label.startswith("same photo (verified"):
        return "verified"
    return SHORT.get(label or "", "")


class NotCalibratedError(UsageError):
    """No near-duplicate calibration exists for this metric."""


class UnionFind:
    """Disjoint sets over ``0..n-1`` with path halving and union by size."""

    def __init__(self, n: int) -> None:
        self.parent = np.arange(n)
        self.size = np.ones(n, dtype=np.int64)

    def find(self, i: int) -> int:
        parent = self.parent
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return int(i)

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        if self.size[ra] < self.size[rb]:
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.size[ra] += self.size[rb]

    def labels(self) -> np.ndarray:
        """A root id per element (equal labels = same set)."""
        return np.array([self.find(i) for i in range(len(self.parent))], dtype=np.int64)


def knn_graph(vectors: np.ndarray, k: int, distance: str = "cosine",
              chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Exact ``k`` nearest other vectors of each row: ``(ids, distances)``, both ``(n, k')`` with
    ``k' = min(k, n - 1)``, nearest first. Memory is ``chunk x n`` distances at a time."""
    x = np.asarray(vectors, dtype=np.float32)
    n = len(x)
    kk = min(k, n - 1)
    ids = np.empty((n, max(kk, 0)), np.int64)
    dists = np.empty((n, max(kk, 0)), np.float32)
    if kk <= 0:
        return ids, dists
    for start in range(0, n, chunk):
        d = pairwise(x[start:start + chunk], x, distance).astype(np.float32)  # type: ignore[arg-type]
        rows = np.arange(len(d))
        d[rows, start + rows] = np.inf  # never your own neighbour
        part = np.argpartition(d, kk - 1, axis=1)[:, :kk]
        pd = np.take_along_axis(d, part, 1)
        order = np.lexsort((part, pd), axis=1)
        ids[start:start + len(d)] = np.take_along_axis(part, order, 1)
        dists[start:start + len(d)] = np.take_along_axis(pd, order, 1)
    return ids, dists


def groups_from_graph(ids: np.ndarray, distances: np.ndarray, threshold: float,
                      min_size: int = 2) -> list[list[int]]:
    """Union-find groups of the pairs ``(i, ids[i, j])`` with ``distances[i, j] <= threshold``.

    Groups are sorted lists of row numbers, largest group first (ties: smallest first id);
    groups smaller than ``min_size`` (singletons by default) are left out.
    """
    ids, distances = np.asarray(ids), np.asarray(distances)
    if ids.shape != distances.shape or ids.ndim != 2:
        raise ValueError(f"ids {ids.shape} and distances {distances.shape} must be the same (n, k)")
    uf = UnionFind(len(ids))
    rows, cols = np.nonzero((distances <= threshold) & (ids >= 0))
    for i, j in zip(rows.tolist(), cols.tolist()):
        other = int(ids[i, j])
        if other != i:
            uf.union(i, other)
    members: dict[int, list[int]] = {}
    for i, root in enumerate(uf.labels().tolist()):
        members.setdefault(root, []).append(i)
    groups = [g for g in members.values() if len(g) >= min_size]
    return sorted(groups, key=lambda g: (-len(g), g[0]))


def candidate_pairs(ids: np.ndarray, distances: np.ndarray, threshold: float) -> list[tuple[int, int, float]]:
    """Unique pairs ``(i, j, distance)`` with ``i < j`` of a kNN graph within ``threshold``, nearest
    first (``-1`` ids are padding; self links are dropped)."""
    ids, distances = np.asarray(ids), np.asarray(distances)
    if ids.shape != distances.shape or ids.ndim != 2:
        raise ValueError(f"ids {ids.shape} and distances {distances.shape} must be the same (n, k)")
    best: dict[tuple[int, int], float] = {}
    rows, cols = np.nonzero((distances <= threshold) & (ids >= 0))
    for i, j in zip(rows.tolist(), cols.tolist()):
        other = int(ids[i, j])
        if other == i:
            continue
        key = (min(i, other), max(i, other))
        d = max(float(distances[i, j]), 0.0)
        best[key] = min(d, best.get(key, d))
    return sorted(((a, b, d) for (a, b), d in best.items()), key=lambda t: (t[2], t[0], t[1]))


def components(n: int, edges: Any, min_size: int = 2) -> list[list[int]]:
    """Connected components of ``edges`` (pairs of rows in ``0..n-1``): sorted lists, largest first."""
    uf = UnionFind(n)
    for a, b, *_ in edges:
        uf.union(int(a), int(b))
    members: dict[int, list[int]] = {}
    for i, root in enumerate(uf.labels().tolist()):
        members.setdefault(root, []).append(i)
    return sorted((g for g in members.values() if len(g) >= min_size), key=lambda g: (-len(g), g[0]))


def complete_linkage(vectors: np.ndarray, pairs: list[tuple[int, int, float]], threshold: float,
                     distance: str = "cosine") -> list[list[int]]:
    """Groups of rows of ``vectors`` whose every pair is within ``threshold`` (complete linkage),
    merged nearest candidate pair first: unrelated photos are never chained through one link."""
    group_of = {i: [i] for pair in pairs for i in pair[:2]}
    for a, b, d in pairs:
        if d > threshold or group_of[a] is group_of[b]:
            continue
        ga, gb = group_of[a], group_of[b]
        cross = pairwise(vectors[ga], vectors[gb], distance)  # type: ignore[arg-type]
        if float(np.max(cross)) <= threshold:
            merged = sorted(ga + gb)
            for i in merged:
                group_of[i] = merged
    unique = {id(g): g for g in group_of.values() if len(g) >= 2}
    return sorted(unique.values(), key=lambda g: (-len(g), g[0]))


def near_duplicate_groups(vectors: np.ndarray, threshold: float, distance: str = "cosine",
                          k: int = 10) -> list[list[int]]:
    """Groups of rows of ``vectors`` linked by distances ``<= threshold`` among ``k`` neighbours."""
    ids, dists = knn_graph(vectors, k, distance)
    return groups_from_graph(ids, dists, threshold)


@dataclass(frozen=True)
class Calibration:
    """Calibrated distance bands of one metric: ``bands[i]`` is the upper bound of ``LABELS[i]``."""

    metric: str
    distance: str
    threshold: float
    bands: tuple[float, ...]
    details: dict[str, Any]

    @property
    def candidate(self) -> float:
        """Loose threshold for near-duplicate candidates that verification then decides
        (``candidate`` in thresholds.json; else the "similar" edge)."""
        return float(self.details.get("candidate", self.bands[-1]))

    def meaning(self, distance: float) -> str:
        for label, upper in zip(LABELS, self.bands):
            if distance <= upper:
                return label
        return DIFFERENT


@functools.cache
def _table() -> dict[str, Any]:
    return json.loads(resources.files("lookalike.search").joinpath("thresholds.json").read_text())


def calibrated_metrics() -> list[str]:
    """Metrics with a stored calibration."""
    return sorted(_table()["metrics"])


def calibration(metric: str) -> Calibration:
    """The stored calibration of ``metric``; raises :class:`NotCalibratedError` if there is none."""
    entry = _table()["metrics"].get(metric)
    if entry is None:
        raise NotCalibratedError(
            f"no near-duplicate calibration for metric {metric!r} (calibrated: "
            f"{', '.join(calibrated_metrics()) or 'none'}); pass an explicit threshold or run "
            "benchmarks/calibrate_dupes.py")
    bands = tuple(float(entry["bands"][label]) for label in LABELS)
    return Calibration(metric, entry["distance"], float(entry["threshold"]), bands, entry)


@functools.cache
def calibration_or_none(metric: str) -> Calibration | None:
    """The stored calibration of ``metric``, or ``None`` (looked up once per metric)."""
    return calibration(metric) if metric in _table()["metrics"] else None


def calibrate(metric: str) -> float:
    """Default near-duplicate threshold of ``metric``: the upper edge of "same photo, edited/cropped"."""
    return calibration(metric).threshold


def meaning(distance: float, metric: str) -> str:
    """A human label for a distance under ``metric`` (one of :data:`LABELS` or ``"different"``)."""
    return calibration(metric).meaning(float(distance))


def bands_from_samples(reencode: np.ndarray, edited: np.ndarray, scene: np.ndarray,
                       different: np.ndarray, quantile: float = 0.95,
                       similar_quantile: float = 0.02) -> dict[str, float]:
    """Band edges from distance samples (what ``benchmarks/calibrate_dupes.py`` stores).

    Each "same" band ends at the ``quantile`` of its own pairs' distances; "similar" ends at the
    ``similar_quantile`` of distances between different photos. Edges are made non-decreasing
    (a band may then be empty) so the labels always get weaker as the distance grows.
    """
    raw = [float(np.quantile(reencode, quantile)), float(np.quantile(edited, quantile)),
           float(np.quantile(scene, quantile)), float(np.quantile(different, similar_quantile))]
    edges = np.maximum.accumulate(raw).tolist()
    return dict(zip(LABELS, edges))
