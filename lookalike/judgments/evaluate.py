"""The evaluation service behind ``lookalike eval``: data set + metrics -> scores with intervals.

Every image is hashed once (sha256 of its bytes); an embedding metric's vectors come from the
feature cache (:mod:`lookalike.judgments.cache`) and only missing ones are computed, so a second
metric on the same data or a re-run is cheap. A metric whose ``kind`` is ``"pairwise"`` (no
embedding) gives ``distance_pairs(a_paths, b_paths) -> distances`` and its distances are cached per
pair of image hashes the same way. Metrics are named (built lazily, only when something is missing
from the cache) or passed as objects.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from lookalike.embed.distance import paired
from lookalike.errors import UsageError
from lookalike.judgments import scores as S
from lookalike.files import sha256_file
from lookalike.judgments.cache import FeatureCache, VectorStore, fingerprint_record
from lookalike.judgments.datasets import (JudgmentDataError, Judgments, Pair, Ranked, Skip, Triplet, read,
                                          record_images)
from lookalike.progress import progress_bar

log = logging.getLogger(__name__)

TASKS = ("2afc", "jnd", "rank")
SCORE_NAMES = {"2afc": ("2afc",), "jnd": ("jnd_map",), "rank": ("spearman", "icc")}


@dataclass
class Score:
    """One score of one metric on one slice of the data, with its bootstrap interval."""

    name: str
    value: float
    low: float
    high: float
    n: int
    split: str = ""
    category: str = ""


@dataclass
class MetricResult:
    metric: str
    kind: str
    scores: list[Score]
    breakdown: list[Score] = field(default_factory=list)
    cache_hits: int = 0
    computed: int = 0
    seconds: float = 0.0


@dataclass
class Report:
    task: str
    data: dict[str, Any]
    results: list[MetricResult]
    bootstrap: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "data": self.data, "bootstrap": self.bootstrap,
                "metrics": [_result_dict(r) for r in self.results]}


def _num(x: float) -> float | None:
    """JSON has no NaN: undefined scores (e.g. a constant ranking) become null."""
    return None if x != x else x


def _result_dict(r: MetricResult) -> dict[str, Any]:
    def one(s: Score) -> dict[str, Any]:
        d = asdict(s)
        return {"score": d.pop("name"), "value": _num(d.pop("value")),
                "ci95": [_num(d.pop("low")), _num(d.pop("high"))], **d}

    return {"metric": r.metric, "kind": r.kind, "scores": [one(s) for s in r.scores],
            "breakdown": [one(s) for s in r.breakdown],
            "cache": {"hits": r.cache_hits, "computed": r.computed}, "seconds": round(r.seconds, 3)}


# -- metrics ---------------------------------------------------------------------------------------


class _Handle:
    """A metric by name (built on first need) or a ready object, with its cache fingerprint."""

    def __init__(self, spec: str | Any, device: str | None) -> None:
        self.device = device
        if isinstance(spec, str):
            from lookalike.embed.registry import get_config

            self.name = spec
            self.config = get_config(spec)  # unknown names fail here, before any work
            self._obj: Any = None
            self.record = fingerprint_record(self.config)
            self.kind: str = self.config.kind
            self.distance_kind = self.config.distance
        else:
            self.name = str(getattr(spec, "name", type(spec).__name__))
            self._obj = spec
            self.config = getattr(spec, "config", None)
            self.record = fingerprint_record(spec)
            self.kind = str(getattr(spec, "kind", None) or "embedding")
            self.distance_kind = str(getattr(spec, "distance_kind", "cosine"))

    def get(self) -> Any:
        if self._obj is None:
            from lookalike.embed.factory import create_metric

            self._obj = create_metric(self.name, device=self.device)
            self.kind = str(getattr(self._obj, "kind", None) or self.kind)
            self.distance_kind = str(getattr(self._obj, "distance_kind", self.distance_kind))
        return self._obj


class _Distances:
    """Distances of pairs of images under one metric, through the cache."""

    def __init__(self, cache: FeatureCache | None, hashes: dict[str, str], batch_size: int,
                 progress: bool) -> None:
        self.cache = cache
        self.hashes = hashes
        self.batch_size = batch_size
        self.progress = progress
        self.failures: dict[str, str] = {}

    def _store(self, handle: _Handle, namespace: str) -> VectorStore | None:
        if self.cache is None:
            return None
        if handle.record is None:
            log.warning("%s: no provenance to key a cache on; computing without the cache", handle.name)
            return None
        return self.cache.store(handle.record, namespace)

    def compute(self, handle: _Handle, a: Sequence[str], b: Sequence[str]) -> tuple[np.ndarray, int, int]:
        """(distances with NaN where an image failed, cache hits, computed)."""
        if handle.kind == "pairwise":
            return self._pairwise(handle, a, b)
        return self._embedding(handle, a, b)

    def _embedding(self, handle: _Handle, a: Sequence[str], b: Sequence[str]) -> tuple[np.ndarray, int, int]:
        by_hash: dict[str, str] = {}
        for p in (*a, *b):
            by_hash.setdefault(self.hashes[p], p)
        store = self._store(handle, "vectors")
        vectors = store.get(list(by_hash)) if store else {}
        hits = len(vectors)
        missing = [h for h in by_hash if h not in vectors]
        if missing:
            metric = handle.get()
            if handle.kind == "pairwise":  # the registry built a pairwise metric after all
                return self._pairwise(handle, a, b)
            result = metric.embed_paths([by_hash[h] for h in missing], batch_size=self.batch_size,
                                        progress=self.progress)
            for path, reason in result.failures:
                self.failures[path] = reason
            new_keys = [self.hashes[p] for p in result.paths]
            vectors.update(zip(new_keys, result.vectors, strict=True))
            if store is not None:
                store.put(new_keys, result.vectors)
        dim = next(iter(vectors.values())).shape[0] if vectors else 1
        nan = np.full(dim, np.nan, np.float32)
        va = np.stack([vectors.get(self.hashes[p], nan) for p in a])
        vb = np.stack([vectors.get(self.hashes[p], nan) for p in b])
        return paired(va, vb, handle.distance_kind), hits, len(missing)

    def _pairwise(self, handle: _Handle, a: Sequence[str], b: Sequence[str]) -> tuple[np.ndarray, int, int]:
        keys = [f"{self.hashes[x]}:{self.hashes[y]}" for x, y in zip(a, b, strict=True)]
        unique: dict[str, tuple[str, str]] = {}
        for k, x, y in zip(keys, a, b, strict=True):
            unique.setdefault(k, (x, y))
        store = self._store(handle, "pair-distances")
        found = {k: float(v[0]) for k, v in (store.get(list(unique)) if store else {}).items()}
        hits = len(found)
        missing = [k for k in unique if k not in found]
        if missing:
            metric = handle.get()
            step = max(1, self.batch_size)
            new: list[float] = []
            with progress_bar(len(missing), f"distances {handle.name}", unit="pair",
                              enabled=self.progress) as bar:
                for i in range(0, len(missing), step):
                    chunk = missing[i:i + step]
                    d = np.asarray(metric.distance_pairs([unique[k][0] for k in chunk],
                                                         [unique[k][1] for k in chunk]), np.float64).ravel()
                    if len(d) != len(chunk):
                        raise UsageError(f"{handle.name}: distance_pairs returned {len(d)} distances "
                                         f"for {len(chunk)} pairs")
                    new.extend(d.tolist())
                    bar.update(len(chunk))
            found.update(zip(missing, new, strict=True))
            if store is not None:
                store.put(missing, np.asarray(new, np.float32)[:, None])
        return np.array([found[k] for k in keys], np.float64), hits, len(missing)


# -- scoring ---------------------------------------------------------------------------------------


def _slices(records: Sequence[Triplet | Pair | Ranked]) -> list[tuple[str, str, np.ndarray]]:
    """(split, category, mask) for every split and category present, when there is more than one."""
    splits = np.array([r.split for r in records])
    cats = np.array([r.category for r in records])
    out = []
    if len(set(splits)) > 1:
        out += [(s, "", splits == s) for s in sorted(set(splits))]
    if len(set(cats)) > 1:
        out += [("", c, cats == c) for c in sorted(set(cats) - {""})]
    return out


def _score_2afc(records: list[Triplet], d: np.ndarray, n_boot: int, level: float,
                seed: int) -> tuple[list[Score], list[Score]]:
    d0, d1 = d[:, 0], d[:, 1]
    t = np.array([r.target for r in records])
    groups = np.array([r.group or r.id for r in records])
    s = S.twoafc_scores(d0, d1, t)

    def one(mask: np.ndarray, split: str = "", cat: str = "") -> Score:
        lo, hi = S.bootstrap_mean_ci(s[mask], groups[mask], n_boot, level, seed)
        return Score("2afc", float(s[mask].mean()), lo, hi, int(mask.sum()), split, cat)

    every = np.ones(len(s), bool)
    return [one(every)], [one(m, sp, c) for sp, c, m in _slices(records)]


def _safe_jnd(d: np.ndarray, same: np.ndarray) -> float:
    try:
        return S.jnd_map(d, same)
    except ValueError:
        return float("nan")


def _score_jnd(records: list[Pair], d: np.ndarray, n_boot: int, level: float,
               seed: int) -> tuple[list[Score], list[Score]]:
    same = np.array([r.same for r in records])

    def one(mask: np.ndarray, split: str = "", cat: str = "") -> Score:
        dm, sm = d[mask], same[mask]
        lo, hi = S.bootstrap_ci(lambda idx, _draws: _safe_jnd(dm[idx], sm[idx]), len(dm), None, n_boot, level, seed)
        return Score("jnd_map", _safe_jnd(dm, sm), lo, hi, int(mask.sum()), split, cat)

    every = np.ones(len(d), bool)
    return [one(every)], [one(m, sp, c) for sp, c, m in _slices(records)]


def _score_rank(items: list[Ranked], human: np.ndarray, d: np.ndarray, n_boot: int, level: float,
                seed: int) -> tuple[list[Score], list[Score]]:
    targets = np.array([r.target for r in items])

    def one(mask: np.ndarray, split: str = "", cat: str = "") -> list[Score]:
        t, h, dm = targets[mask], human[mask], d[mask]
        point = S.rank_agreement(t, h, dm)
        out = []
        for name in ("spearman", "icc"):
            lo, hi = S.bootstrap_ci(lambda idx, draws, name=name: S.rank_agreement(draws, h[idx], dm[idx])[name],
                                    len(t), t, n_boot, level, seed)
            out.append(Score(name, point[name], lo, hi, len(set(t)), split, cat))
        return out

    every = np.ones(len(d), bool)
    return one(every), [s for sp, c, m in _slices(items) for s in one(m, sp, c)]


def _aggregate_ranks(records: list[Ranked]) -> tuple[list[Ranked], np.ndarray]:
    """One item per (target, candidate): the mean human rank over raters."""
    groups: dict[tuple[str, str], list[Ranked]] = {}
    for r in records:
        groups.setdefault((r.target, r.candidate), []).append(r)
    items = [rs[0] for rs in groups.values()]
    return items, np.array([np.mean([r.rank for r in rs]) for rs in groups.values()])


# -- the service -----------------------------------------------------------------------------------


def _pairs(task: str, records: Sequence[Triplet | Pair | Ranked]) -> tuple[list[str], list[str], int]:
    """Flattened (a, b) image pairs the task needs, and how many per record."""
    if task == "2afc":
        a = [p for r in records for p in (r.ref, r.ref)]  # type: ignore[union-attr]
        b = [p for r in records for p in (r.left, r.right)]  # type: ignore[union-attr]
        return a, b, 2
    if task == "jnd":
        return [r.a for r in records], [r.b for r in records], 1  # type: ignore[union-attr]
    return [r.target for r in records], [r.candidate for r in records], 1  # type: ignore[union-attr]


def evaluate(task: str, data: str | Judgments, metrics: Sequence[str | Any], *, split: str | None = None,
             layout: str | None = None, min_votes: int | None = None, strict: bool = True,
             device: str | None = None, cache: FeatureCache | None | bool = True, batch_size: int = 32,
             n_boot: int = 1000, level: float = 0.95, seed: int = 0, progress: bool = True) -> Report:
    """Score ``metrics`` on the judgments in ``data`` (a folder, or records already read)."""
    if task not in TASKS:
        raise UsageError(f"unknown task {task!r} (one of {', '.join(TASKS)})")
    if not metrics:
        raise UsageError("give at least one metric")
    if n_boot < 1:
        raise UsageError("the bootstrap needs at least one replicate")
    handles = [_Handle(m, device) for m in metrics]
    judgments = data if isinstance(data, Judgments) else read(data, task, layout, split, min_votes, strict)
    records = list(judgments.records)
    if task == "rank":
        records, human = _aggregate_ranks(records)  # type: ignore[arg-type]
    a, b, per = _pairs(task, records)
    paths = list(dict.fromkeys([*a, *b]))
    hashes = {}
    with progress_bar(len(paths), "hash images", enabled=progress) as bar:
        for p in paths:
            hashes[p] = sha256_file(p)
            bar.update(1)
    store = FeatureCache() if cache is True else (cache or None)
    engine = _Distances(store, hashes, batch_size, progress)
    raw: list[tuple[_Handle, np.ndarray, int, int, float]] = []
    for h in handles:
        start = time.perf_counter()
        d, hits, computed = engine.compute(h, a, b)
        raw.append((h, d.reshape(len(records), per), hits, computed, time.perf_counter() - start))
        log.info("%s: %d cached, %d computed", h.name, hits, computed)
    keep = _drop_failed(records, engine.failures, judgments, strict)
    records = [r for r, k in zip(records, keep, strict=True) if k]
    if not records:
        raise JudgmentDataError(f"{judgments.root}: no judgments left once unreadable images were dropped")
    results = []
    for h, d, hits, computed, secs in raw:
        d = d[keep]
        if task == "2afc":
            main, breakdown = _score_2afc(records, d, n_boot, level, seed)  # type: ignore[arg-type]
        elif task == "jnd":
            main, breakdown = _score_jnd(records, d[:, 0], n_boot, level, seed)  # type: ignore[arg-type]
        else:
            main, breakdown = _score_rank(records, human[keep], d[:, 0], n_boot, level, seed)  # type: ignore[arg-type]
        results.append(MetricResult(h.name, h.kind, main, breakdown, hits, computed, secs))
    unit = {"2afc": "reference image", "jnd": "pair", "rank": "target image"}[task]
    summary = judgments.summary()
    summary["scored"] = len(records)
    return Report(task, summary, results, {"replicates": n_boot, "level": level, "seed": seed, "unit": unit})


def _drop_failed(records: Sequence[Triplet | Pair | Ranked], failures: dict[str, str], judgments: Judgments,
                 strict: bool) -> np.ndarray:
    keep = np.ones(len(records), bool)
    if not failures:
        return keep
    for i, r in enumerate(records):
        bad = [p for p in record_images(r) if p in failures]
        if not bad:
            continue
        if strict:
            raise JudgmentDataError(f"{r.source}: image cannot be read: {failures[bad[0]]}")
        keep[i] = False
        judgments.skipped.append(Skip(r.source, f"unreadable image: {failures[bad[0]]}"))
    return keep

