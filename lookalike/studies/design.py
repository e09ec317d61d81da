"""Trials made from a library's search at study creation, then frozen.

Retrieval trials: the reference and, for one neighbour rank, each metric's neighbour at that
rank; identical images from several metrics are one candidate credited to each. 2AFC trials: the
reference and two metrics' neighbours at one rank (every pair of metrics), or given triplets.
Sentinels: the reference itself among images unrelated to it (none of its neighbours). Practice
trials are ordinary trials from other queries, shown first and never analysed.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from lookalike.studies.config import StudyConfig, StudyConfigError

if TYPE_CHECKING:
    from lookalike.library.service import Library

log = logging.getLogger(__name__)

MAIN, PRACTICE, SENTINEL = "main", "practice", "sentinel"


@dataclass
class Candidate:
    content_id: int
    metrics: list[str]
    sha256: str = ""


@dataclass
class TrialSpec:
    """One frozen trial before it is stored. For sentinels ``correct_slot`` is the reference's slot."""

    role: str
    reference: int
    candidates: list[Candidate]
    rank: int | None = None
    correct_slot: int | None = None
    reference_sha256: str = ""
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class Design:
    trials: list[TrialSpec]
    skipped: dict[str, int]  # why candidate trials were not made, and how many

    def count(self, role: str) -> int:
        return sum(t.role == role for t in self.trials)


def eligible_ids(library: Library, metrics: Sequence[str]) -> np.ndarray:
    """Content ids with a vector under every metric (sorted)."""
    ids: np.ndarray | None = None
    for m in metrics:
        got = library.ids(m)
        ids = got if ids is None else np.intersect1d(ids, got)
    return np.zeros(0, np.int64) if ids is None else ids


def folder_ids(library: Library, folder: str | os.PathLike[str]) -> list[int]:
    """Content ids of the readable files under ``folder``."""
    return list(library.ids_under(folder))


def sha_of(library: Library, ids: Sequence[int]) -> dict[int, str]:
    """The sha256 of each known content id."""
    return dict(library.sha256(ids))


def _neighbours(search: Library, queries: list[int], metrics: Sequence[str], k: int) -> dict[str, dict[int, list[int]]]:
    """``{metric: {query: [neighbour ids, nearest first]}}`` (the query itself left out)."""
    out: dict[str, dict[int, list[int]]] = {m: {} for m in metrics}
    if not queries:
        return out
    for res in search.search(queries, k=k, metrics=list(metrics), exclude_self=True):
        for m in metrics:
            out[m][int(res.image_id)] = [h.image_id for h in res.hits.get(m, ())]
    return out


def _merge(items: list[tuple[str, int]]) -> list[Candidate]:
    """(metric, content id) pairs -> one candidate per distinct image, credited to its metrics."""
    by_id: dict[int, Candidate] = {}
    for metric, cid in items:
        by_id.setdefault(cid, Candidate(cid, [])).metrics.append(metric)
    return list(by_id.values())


def _query_pool(config: StudyConfig, library: Library, eligible: np.ndarray,
                rng: np.random.Generator) -> tuple[list[int], list[int]]:
    """(queries, spare ids for practice) as content ids."""
    ok = set(eligible.tolist())
    if config.queries == "ids":
        missing = [i for i in config.query_ids if i not in ok]
        if missing:
            raise StudyConfigError(f"query id(s) {missing[:10]} have no vector under every metric "
                                   f"({', '.join(config.metrics)})")
        queries = list(dict.fromkeys(int(i) for i in config.query_ids))
    elif config.queries == "folder":
        queries = [i for i in folder_ids(library, config.query_folder or "") if i in ok]
        if not queries:
            raise StudyConfigError(f"no image under {config.query_folder} is indexed under every metric")
    else:
        if len(eligible) < 2:
            raise StudyConfigError("the library has fewer than two images indexed under every metric")
        n = min(config.query_count, len(eligible))
        queries = [int(i) for i in rng.choice(eligible, size=n, replace=False)]
    used = set(queries)
    spare = [int(i) for i in rng.permutation(eligible) if int(i) not in used]
    return queries, spare


def design_trials(config: StudyConfig, library: Library) -> Design:
    """Every trial of a new study (main, practice, sentinels) from the searches of ``library``
    (:class:`lookalike.Library`)."""
    rng = np.random.default_rng(config.seed)
    have = set(library.metrics())
    missing = [m for m in config.metrics if m not in have]
    if missing:
        raise StudyConfigError(f"the library has no index for {', '.join(missing)} "
                               f"(indexed: {', '.join(sorted(have)) or 'none'})")
    skipped: dict[str, int] = {}
    trials: list[TrialSpec] = []
    metrics = list(config.metrics)
    if config.triplets:
        eligible = np.array(sorted({int(i) for t in config.triplets for i in t}), np.int64)
        known = set(sha_of(library, eligible.tolist()))
        bad = [i for i in eligible.tolist() if i not in known]
        if bad:
            raise StudyConfigError(f"triplet image id(s) {bad[:10]} are not in the library")
        for n, (ref, left, right) in enumerate(config.triplets):
            trials.append(TrialSpec(MAIN, int(ref), [Candidate(int(left), []), Candidate(int(right), [])],
                                    info={"triplet": n}))
        spare_refs = [int(t[0]) for t in config.triplets]
        eligible = eligible if metrics == [] else eligible_ids(library, metrics)
        if len(eligible) == 0:
            eligible = np.array(sorted({int(i) for t in config.triplets for i in t}), np.int64)
    else:
        eligible = eligible_ids(library, metrics)
        queries, spare = _query_pool(config, library, eligible, rng)
        k = max(config.ranks)
        n_practice = config.practice_trials
        practice_q = (spare or queries)[:3 * n_practice] if n_practice else []  # spares: some may not work
        hits = _neighbours(library, sorted(set(queries) | set(practice_q)), metrics, k)
        for q in queries:
            trials.extend(_trials_for(config, q, hits, config.ranks, MAIN, rng, skipped))
        made = 0
        for i, q in enumerate(practice_q):
            got = _trials_for(config, q, hits, [config.ranks[i % len(config.ranks)]], PRACTICE, rng, {})
            if got and made < n_practice:
                trials.append(got[0])
                made += 1
        spare_refs = spare
    if not any(t.role == MAIN for t in trials):
        raise StudyConfigError("no trial could be made: every metric returned the same images "
                               f"({skipped})")
    if config.triplets and config.practice_trials:
        for t in [t for t in trials if t.role == MAIN][:config.practice_trials]:
            trials.append(TrialSpec(PRACTICE, t.reference, [Candidate(c.content_id, []) for c in t.candidates],
                                    info=dict(t.info)))
    trials.extend(_sentinels(config, library, eligible, spare_refs, rng))
    shas = sha_of(library, [i for t in trials for i in [t.reference] + [c.content_id for c in t.candidates]])
    for t in trials:
        t.reference_sha256 = shas[t.reference]
        for c in t.candidates:
            c.sha256 = shas[c.content_id]
    if skipped:
        log.info("candidate trials not made: %s", ", ".join(f"{v} {k}" for k, v in skipped.items()))
    return Design(trials, skipped)


def _trials_for(config: StudyConfig, q: int, hits: dict[str, dict[int, list[int]]], ranks: Sequence[int],
                role: str, rng: np.random.Generator, skipped: dict[str, int]) -> list[TrialSpec]:
    out = []
    metrics = list(config.metrics)
    for r in ranks:
        at = {m: hits[m].get(q, []) for m in metrics}
        if any(len(at[m]) < r for m in metrics):
            skipped["rank beyond the library"] = skipped.get("rank beyond the library", 0) + 1
            continue
        if config.kind == "retrieval":
            cands = _merge([(m, at[m][r - 1]) for m in metrics])
            cands = [cands[i] for i in rng.permutation(len(cands))]  # a slot says nothing of a metric
            if len(cands) < 2:
                skipped["all metrics returned one image"] = skipped.get("all metrics returned one image", 0) + 1
                continue
            out.append(TrialSpec(role, q, cands, rank=r,
                                 info={"merged": len(cands) < len(metrics)}))
        else:
            for a, b in itertools.combinations(metrics, 2):
                ca, cb = at[a][r - 1], at[b][r - 1]
                if ca == cb:
                    skipped["both metrics returned one image"] = skipped.get("both metrics returned one image", 0) + 1
                    continue
                pair = [Candidate(ca, [a]), Candidate(cb, [b])]
                if rng.random() < 0.5:
                    pair.reverse()
                out.append(TrialSpec(role, q, pair, rank=r))
    return out


def _sentinels(config: StudyConfig, search: Library, eligible: np.ndarray, spare: list[int],
               rng: np.random.Generator) -> list[TrialSpec]:
    """A pool of sentinel trials: twice the per-participant count (at least five), each the
    reference itself among random images that are none of its 10 nearest neighbours."""
    if config.sentinels == 0:
        return []
    n_opts = config.n_options
    if len(eligible) < n_opts + 1:
        raise StudyConfigError(f"a sentinel needs {n_opts + 1} images; the library has {len(eligible)}")
    pool = max(2 * config.sentinels, 5)
    refs = list(spare) + [int(i) for i in rng.permutation(eligible)]
    refs = list(dict.fromkeys(refs))[:pool]
    near: dict[str, dict[int, list[int]]] = {}
    if config.metrics:
        near = _neighbours(search, refs, config.metrics, min(10, len(eligible) - 1))
    out = []
    for ref in refs:
        close = {ref} | {i for m in near for i in near[m].get(ref, [])}
        others = [int(i) for i in eligible if int(i) not in close]
        if len(others) < n_opts - 1:
            others = [int(i) for i in eligible if int(i) != ref]
        decoys = [int(i) for i in rng.choice(others, size=n_opts - 1, replace=False)]
        cands = [Candidate(ref, [])] + [Candidate(d, []) for d in decoys]
        order = rng.permutation(len(cands))
        cands = [cands[i] for i in order]
        out.append(TrialSpec(SENTINEL, ref, cands, correct_slot=int(np.argmax(order == 0))))
    return out
