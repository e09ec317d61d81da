"""Near-duplicate groups and what a distance means, as plain functions over arrays.

* :func:`duplicate_groups`: what ``dupes`` (``Library.duplicates``) returns, from the ids, vectors
  and neighbours the library fetched once: identical files, then near-duplicates;
* :func:`candidate_pairs` + :func:`components`: the default. Loose embedding candidates; only pairs
  that pass a check (:class:`lookalike.search.verify.PairVerifier`) become links;
* :func:`complete_linkage`: groups whose every pair is within the threshold (no chaining), for
  grouping without verification;
* :func:`calibrate` / :func:`calibration` / :func:`meaning`: per-metric thresholds and bands, read
  from ``thresholds.json`` beside this file, which ``benchmarks/calibrate_dupes.py`` writes from
  known edits of the real photos (see that file and the JSON's ``method`` entry).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from lookalike.embed.distance import pairwise
from lookalike.errors import UsageError

if TYPE_CHECKING:
    from lookalike.search.verify import Verification

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


class Member(NamedTuple):
    """One path of a duplicate group: its distance to the group's reference (the first member)
    and what is known about it (``meaning``: ``None`` for the reference; ``evidence``: details)."""

    image_id: int
    path: str
    distance: float
    meaning: str | None
    evidence: dict[str, Any] | None = None


@dataclass
class DuplicateGroup:
    """Copies of one photo. ``kind``: ``identical`` (byte-identical files only), ``verified``
    (linked by verified pairs) or ``unverified`` (embedding distance only).

    ``members`` start with the reference (distance 0, meaning ``None``); every path of
    byte-identical files is listed, labelled "identical file".
    """

    metric: str
    members: list[Member]
    kind: str = "verified"

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "kind": self.kind, "size": len(self.members),
                "images": len({m.image_id for m in self.members}),
                "members": [{"image_id": m.image_id, "path": m.path, "distance": m.distance,
                             "meaning": m.meaning, "evidence": m.evidence} for m in self.members]}




def duplicate_groups(metric: str, ids: np.ndarray, vectors: np.ndarray | None, distances: np.ndarray | None,
                     neighbours: np.ndarray | None, kind: str, threshold: float,
                     all_paths: dict[int, list[str]], verify: bool = True) -> list[DuplicateGroup]:
    """Groups of copies: identical files first, then near-duplicates (see
    :meth:`lookalike.Library.duplicates`).

    ``ids``: the sorted ids with a vector, ``vectors`` theirs (same order); ``distances`` /
    ``neighbours``: each row's nearest neighbours (ids, ``-1`` padding); ``all_paths``: every path
    of every content id. With ``verify``, neighbours within ``threshold`` are candidates and a pair is
    linked when local features confirm it (:class:`~lookalike.search.verify.PairVerifier`);
    without it, groups are complete-linkage clusters within ``threshold``.
    """
    near: list[DuplicateGroup] = []
    if len(ids) >= 2 and vectors is not None and distances is not None and neighbours is not None:
        pos = np.clip(np.searchsorted(ids, neighbours), 0, len(ids) - 1)  # ids are sorted: id -> row
        rows = np.where((neighbours >= 0) & (ids[pos] == neighbours), pos, -1)
        rows[rows == np.arange(len(ids))[:, None]] = -1  # an image is not its own duplicate
        pairs = candidate_pairs(rows, distances, threshold)
        if verify:
            from lookalike.search.verify import PairVerifier, Verification

            verifier = PairVerifier({int(r): all_paths.get(int(ids[r]), [""])[0] for p in pairs for r in p[:2]})

            def check(a: int, b: int) -> Verification:  # one answer per unordered pair
                return verifier.verify(min(a, b), max(a, b)) or Verification(False, 0, 0)

            results = verifier.check([(a, b) for a, b, _ in pairs])
            edges = [(a, b, r.inliers) for (a, b, _), r in zip(pairs, results, strict=True) if r and r.same]
            near = [_verified_group(metric, g, ids, vectors, kind, edges, check, all_paths)
                    for g in components(len(ids), edges)]
        else:
            near = [_unverified_group(metric, g, ids, vectors, kind, all_paths)
                    for g in complete_linkage(vectors, pairs, threshold, kind)]
    grouped = {m.image_id for g in near for m in g.members}
    identical = [_identical_group(metric, i, p) for i, p in all_paths.items() if len(p) > 1 and i not in grouped]
    identical.sort(key=lambda g: (-len(g.members), g.members[0].path))
    near.sort(key=lambda g: (-len(g.members), g.members[0].path))
    return identical + near


def _expand(metric: str, image_id: int, paths: list[str], distance: float, meaning: str | None,
            evidence: dict[str, Any] | None, ref_id: int) -> list[Member]:
    """One member per path of an image; extra paths are identical files (of the first one)."""
    first = Member(image_id, paths[0], distance, meaning, evidence)
    if image_id == ref_id and meaning is None:
        rest = [Member(image_id, p, 0.0, IDENTICAL, {"identical_to": paths[0]}) for p in paths[1:]]
    else:
        rest = [Member(image_id, p, distance, IDENTICAL, {"identical_to": paths[0]}) for p in paths[1:]]
    return [first, *rest]


def _identical_group(metric: str, image_id: int, paths: list[str]) -> DuplicateGroup:
    return DuplicateGroup(metric, _expand(metric, image_id, paths, 0.0, None, None, image_id), "identical")


def _verified_group(metric: str, group: list[int], ids: np.ndarray, vectors: np.ndarray, kind: str,
                    edges: list[tuple[int, int, int]], check: Callable[[int, int], Verification],
                    all_paths: dict[int, list[str]]) -> DuplicateGroup:
    """Members of a connected component of verified links; the reference is the member with the
    most links. Each member's label is its own verified link to the reference, or else its
    strongest verified link inside the group ("same photo as #id ...")."""
    inside = set(group)
    links: dict[int, list[tuple[int, int]]] = {r: [] for r in group}
    for a, b, n in edges:
        if a in inside:
            links[a].append((b, n))
            links[b].append((a, n))
    ref = max(group, key=lambda r: (len(links[r]), sum(n for _, n in links[r]), -r))
    d = np.maximum(pairwise(vectors[[ref]], vectors[group], kind)[0], 0.0)  # type: ignore[arg-type]
    dist = dict(zip(group, d.tolist(), strict=True))
    ref_id = int(ids[ref])
    members = _expand(metric, ref_id, all_paths.get(ref_id, [""]), 0.0, None, None, ref_id)
    for r in sorted((r for r in group if r != ref), key=lambda r: (dist[r], r)):
        same = check(ref, r)
        if same.same:
            meaning, evidence = verified_label(same.inliers), {"verified_with": ref_id, **same.to_dict()}
        else:
            other, n = max(links[r], key=lambda t: t[1])
            via = check(other, r)
            meaning = f"same photo as #{int(ids[other])} (verified: {n} matching features)"
            evidence = {"verified_with": int(ids[other]), **via.to_dict()}
        image_id = int(ids[r])
        members += _expand(metric, image_id, all_paths.get(image_id, [""]), float(dist[r]), meaning,
                           evidence, ref_id)
    return DuplicateGroup(metric, members, "verified")


def _unverified_group(metric: str, group: list[int], ids: np.ndarray, vectors: np.ndarray, kind: str,
                      all_paths: dict[int, list[str]]) -> DuplicateGroup:
    d = np.maximum(pairwise(vectors[group[:1]], vectors[group], kind)[0], 0.0)  # type: ignore[arg-type]
    ref_id = int(ids[group[0]])
    members = _expand(metric, ref_id, all_paths.get(ref_id, [""]), 0.0, None, None, ref_id)
    for r, x in sorted(zip(group[1:], d[1:].tolist()), key=lambda t: (t[1], t[0])):
        image_id = int(ids[r])
        members += _expand(metric, image_id, all_paths.get(image_id, [""]), float(x), UNVERIFIED,
                           {"distance": float(x)}, ref_id)
    return DuplicateGroup(metric, members, "unverified")


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
