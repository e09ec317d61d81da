"""The analysis of a study's answers, as numpy-in/numpy-out functions.

Answers are an :class:`Answers` table: one row per answer, with ``slot_of[i, m]`` the slot of
metric ``m``'s candidate in that trial (``-1`` when not shown) and ``slot[i]`` the slot chosen.
A candidate several metrics returned has one slot, so the choice is credited to each of them.

- Preference share of metric ``m``: answers crediting ``m`` / answers showing ``m``, with a
  percentile bootstrap interval that resamples participants (default; arms widened by the
  small-sample factor sqrt(P / (P - 1)) t(P - 1) / z), or participants and then answers within them (``within=True``; conservative:
  it counts the answer-level noise twice, 99% coverage for a nominal 95% in the simulations).
- Bradley-Terry strengths: the chosen candidate's metrics beat every other shown metric; the MLE
  by Hunter's MM algorithm, log-strengths centred to mean zero (as ``choix`` normalises them).
- Pairwise tests: bootstrap differences of shares (Holm-adjusted) and head-to-head binomial tests.
- Krippendorff's alpha (nominal) on trials answered by several participants; response-time summary.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

LEVEL = 0.95


@dataclass
class Answers:
    """One row per answer (practice answers are not in it)."""

    metrics: list[str]
    participants: list[str]
    participant: np.ndarray  # (n,) index into participants
    trial: np.ndarray  # (n,) trial id
    sentinel: np.ndarray  # (n,) bool
    rank: np.ndarray  # (n,) neighbour rank, -1 when none
    slot_of: np.ndarray  # (n, M) int: slot of each metric's candidate, -1 when not shown
    slot: np.ndarray  # (n,) chosen slot
    correct: np.ndarray  # (n,) the right slot of a sentinel, -1 otherwise
    response_ms: np.ndarray  # (n,) float
    too_fast: np.ndarray  # (n,) bool
    merged: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))  # (n,) a candidate was merged

    def __len__(self) -> int:
        return len(self.slot)

    def subset(self, keep: np.ndarray) -> Answers:
        return Answers(self.metrics, self.participants, self.participant[keep], self.trial[keep],
                       self.sentinel[keep], self.rank[keep], self.slot_of[keep], self.slot[keep],
                       self.correct[keep], self.response_ms[keep], self.too_fast[keep],
                       self.merged[keep] if len(self.merged) else self.merged)

    @property
    def chosen(self) -> np.ndarray:
        """(n, M) bool: metric credited with the answer."""
        return (self.slot_of == self.slot[:, None]) & (self.slot_of >= 0)

    @property
    def shown(self) -> np.ndarray:
        return self.slot_of >= 0


# -- exclusions -----------------------------------------------------------------------------------

@dataclass
class ExclusionRule:
    max_sentinel_failures: int = 0
    min_response_ms: float = 300.0
    max_fast_share: float = 0.5


def exclusions(ans: Answers, rule: ExclusionRule) -> dict[int, list[str]]:
    """``{participant index: reasons}`` for every participant the rule excludes."""
    out: dict[int, list[str]] = {}
    for p in np.unique(ans.participant):
        mine = ans.participant == p
        sent = mine & ans.sentinel
        failed = int(np.sum(ans.slot[sent] != ans.correct[sent]))
        reasons = []
        if failed > rule.max_sentinel_failures:
            reasons.append(f"failed {failed} of {int(sent.sum())} sentinels")
        fast = float(np.mean(ans.too_fast[mine])) if mine.any() else 0.0
        if fast > rule.max_fast_share:
            reasons.append(f"{fast:.0%} of answers faster than {rule.min_response_ms:g} ms")
        if reasons:
            out[int(p)] = reasons
    return out


def sentinel_summary(ans: Answers) -> dict[str, Any]:
    s = ans.sentinel
    failed = int(np.sum(ans.slot[s] != ans.correct[s]))
    return {"answered": int(s.sum()), "failed": failed,
            "failure_rate": failed / int(s.sum()) if s.any() else None}


# -- bootstrap ------------------------------------------------------------------------------------

def bootstrap_sums(features: np.ndarray, participant: np.ndarray, replicates: int,
                   rng: np.random.Generator, within: bool = False) -> np.ndarray:
    """``(replicates, D)`` sums of per-answer ``features`` (n, D) over bootstrap resamples.

    Each replicate draws participants with replacement; with ``within`` each drawn participant's
    answers are also drawn with replacement (a two-stage bootstrap). Exact and vectorised: answers
    are grouped into distinct feature rows, and a participant drawn ``c`` times contributes
    ``c`` x their counts (or a multinomial of ``c * n_p`` draws from them with ``within``).
    """
    if len(features) == 0:
        return np.zeros((replicates, features.shape[1]))
    types, inv = np.unique(features, axis=0, return_inverse=True)
    inv = inv.ravel()
    people, pidx = np.unique(participant, return_inverse=True)
    counts = np.zeros((len(people), len(types)))
    np.add.at(counts, (pidx.ravel(), inv), 1.0)
    draws = rng.multinomial(len(people), np.full(len(people), 1.0 / len(people)), size=replicates)
    if not within:
        return (draws @ counts) @ types
    n_p = counts.sum(axis=1)
    out = np.zeros((replicates, len(types)))
    step = max(1, 2_000_000 // max(1, len(people) * len(types)))
    for start in range(0, replicates, step):
        c = draws[start:start + step]
        sub = rng.multinomial((c * n_p).astype(np.int64), counts / n_p[:, None])
        out[start:start + step] = sub.sum(axis=1)
    return out @ types


def percentile_interval(samples: np.ndarray, level: float = LEVEL, estimate: np.ndarray | None = None,
                        clusters: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval of bootstrap ``samples``; with ``estimate`` and ``clusters`` (the number
    P of participants resampled) its arms are widened by sqrt(P / (P - 1)) * t(P - 1) / z: the
    cluster bootstrap's variance is (P - 1) / P of the unbiased one, and with P clusters the
    estimate is t-distributed with P - 1 degrees of freedom, not normal (small-sample correction,
    as a t interval makes it)."""
    from scipy.stats import norm, t

    a = (1 - level) / 2
    lo, hi = np.nanquantile(samples, a, axis=0), np.nanquantile(samples, 1 - a, axis=0)
    if clusters is not None and clusters < 2:  # one participant: resampling them says nothing
        return np.full_like(lo, np.nan), np.full_like(hi, np.nan)
    if estimate is None or not clusters:
        return lo, hi
    c = np.sqrt(clusters / (clusters - 1)) * t.ppf(1 - a, clusters - 1) / norm.ppf(1 - a)
    return estimate - c * (estimate - lo), estimate + c * (hi - estimate)


def n_clusters(ans: Answers) -> int:
    return int(len(np.unique(ans.participant)))


def shares(ans: Answers) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(share, chosen, shown) per metric."""
    chosen = ans.chosen.sum(axis=0).astype(float)
    shown = ans.shown.sum(axis=0).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return chosen / shown, chosen, shown


def share_bootstrap(ans: Answers, replicates: int, rng: np.random.Generator,
                    within: bool = False) -> np.ndarray:
    """(replicates, M) bootstrap shares."""
    m = len(ans.metrics)
    feats = np.hstack([ans.chosen, ans.shown]).astype(float)
    sums = bootstrap_sums(feats, ans.participant, replicates, rng, within)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums[:, :m] / sums[:, m:]


def share_table(ans: Answers, replicates: int, rng: np.random.Generator, level: float = LEVEL,
                within: bool = False) -> tuple[dict[str, dict[str, float | None]], np.ndarray]:
    """Per metric: share, interval, counts; and the bootstrap samples (for pairwise tests)."""
    share, chosen, shown = shares(ans)
    boot = share_bootstrap(ans, replicates, rng, within)
    lo, hi = percentile_interval(boot, level, share, None if within else n_clusters(ans))
    lo, hi = np.clip(lo, 0, 1), np.clip(hi, 0, 1)
    table = {m: {"share": _num(share[i]), "low": _num(lo[i]), "high": _num(hi[i]),
                 "chosen": int(chosen[i]), "shown": int(shown[i])} for i, m in enumerate(ans.metrics)}
    return table, boot


# -- Bradley-Terry ----------------------------------------------------------------------------------

def win_features(ans: Answers) -> np.ndarray:
    """(n, M*M): entry (a, b) is 1 when a's candidate was chosen and b's (another slot) was shown."""
    chosen = ans.chosen
    other = ans.shown & ~chosen
    return (chosen[:, :, None] & other[:, None, :]).reshape(len(ans), -1).astype(float)


def pairwise_data(ans: Answers) -> list[tuple[int, int]]:
    """The comparisons as ``(winner, loser)`` metric indices (``choix``'s pairwise data)."""
    w = win_features(ans).reshape(len(ans), len(ans.metrics), len(ans.metrics))
    rows, a, b = np.nonzero(w)
    return list(zip(a.tolist(), b.tolist()))


def bradley_terry(wins: np.ndarray, max_iter: int = 20000, tol: float = 1e-13) -> np.ndarray:
    """Maximum-likelihood Bradley-Terry log-strengths (centred to mean 0) from ``wins[..., a, b]``
    (times a beat b); batched over leading axes. Items that never win get a very low strength."""
    w = np.asarray(wins, float)
    n = w + np.swapaxes(w, -1, -2)
    won = w.sum(axis=-1)
    p = np.ones(w.shape[:-1])
    for _ in range(max_iter):
        denom = (n / (p[..., :, None] + p[..., None, :])).sum(axis=-1)
        with np.errstate(invalid="ignore", divide="ignore"):
            new = np.where(denom > 0, won / denom, p)
        new = np.maximum(new, 1e-300)
        new = new / np.exp(np.mean(np.log(new), axis=-1, keepdims=True))
        done = np.max(np.abs(np.log(new) - np.log(p))) < tol
        p = new
        if done:
            break
    logp = np.log(p)
    return logp - logp.mean(axis=-1, keepdims=True)


def bt_table(ans: Answers, replicates: int, rng: np.random.Generator, level: float = LEVEL,
             within: bool = False) -> dict[str, dict[str, float | None]]:
    m = len(ans.metrics)
    feats = win_features(ans)
    est = bradley_terry(feats.sum(axis=0).reshape(m, m))
    boot = bradley_terry(bootstrap_sums(feats, ans.participant, replicates, rng, within).reshape(-1, m, m),
                         max_iter=2000, tol=1e-9)
    lo, hi = percentile_interval(boot, level, est, None if within else n_clusters(ans))
    strength = np.exp(est) / np.exp(est).sum()
    return {name: {"log_strength": _num(est[i]), "low": _num(lo[i]), "high": _num(hi[i]),
                   "strength": _num(strength[i])} for i, name in enumerate(ans.metrics)}


# -- pairwise tests -------------------------------------------------------------------------------

def holm(p: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values."""
    p_arr = np.asarray(p, float)
    order = np.argsort(p_arr)
    adj = np.empty_like(p_arr)
    running = 0.0
    for k, i in enumerate(order):
        running = max(running, min(1.0, (len(p_arr) - k) * p_arr[i]))
        adj[i] = running
    return adj.tolist()


def pairwise_tests(ans: Answers, boot: np.ndarray, level: float = LEVEL) -> list[dict[str, Any]]:
    """Every pair of metrics: difference of shares with its bootstrap interval and p-value (Holm),
    and the head-to-head record (answers where exactly one of the two was chosen) with a binomial test."""
    from scipy.stats import binomtest

    share, _, _ = shares(ans)
    chosen = ans.chosen
    out = []
    for a, b in itertools.combinations(range(len(ans.metrics)), 2):
        d = boot[:, a] - boot[:, b]
        d = d[np.isfinite(d)]
        lo, hi = percentile_interval(d, level, share[a] - share[b], n_clusters(ans)) if len(d) else (np.nan, np.nan)
        p = min(1.0, 2 * min(np.mean(d <= 0), np.mean(d >= 0))) if len(d) else np.nan
        p = max(p, 1.0 / max(1, len(d)))
        a_wins = int(np.sum(chosen[:, a] & ~chosen[:, b] & ans.shown[:, b]))
        b_wins = int(np.sum(chosen[:, b] & ~chosen[:, a] & ans.shown[:, a]))
        binom = binomtest(a_wins, a_wins + b_wins).pvalue if a_wins + b_wins else None
        out.append({"a": ans.metrics[a], "b": ans.metrics[b], "difference": _num(share[a] - share[b]),
                    "low": _num(lo), "high": _num(hi), "p_bootstrap": _num(p),
                    "a_wins": a_wins, "b_wins": b_wins, "p_binomial": _num(binom)})
    for row, adj in zip(out, holm([r["p_bootstrap"] if r["p_bootstrap"] is not None else 1.0 for r in out])):
        row["p_holm"] = adj
    return out


# -- agreement ---------------------------------------------------------------------------------------

def krippendorff_alpha_nominal(units: np.ndarray, values: np.ndarray) -> float | None:
    """Krippendorff's alpha for nominal data: one (unit, value) pair per rating; units with a single
    rating are not pairable and left out. ``None`` when nothing is pairable or all values agree."""
    u_ids, u = np.unique(units, return_inverse=True)
    v_ids, v = np.unique(values, return_inverse=True)
    cnt = np.zeros((len(u_ids), len(v_ids)))
    np.add.at(cnt, (u.ravel(), v.ravel()), 1.0)
    m_u = cnt.sum(axis=1)
    keep = m_u >= 2
    cnt, m_u = cnt[keep], m_u[keep]
    if len(cnt) == 0:
        return None
    o = np.einsum("uc,uk->ck", cnt / (m_u - 1)[:, None], cnt) - np.diag((cnt / (m_u - 1)[:, None]).sum(axis=0))
    n_c = o.sum(axis=1)
    n = n_c.sum()
    d_o = o.sum() - np.trace(o)
    d_e = (n_c.sum() ** 2 - np.sum(n_c ** 2)) / (n - 1)
    if d_e == 0:
        return None
    return float(1 - d_o / d_e)


def agreement(ans: Answers) -> dict[str, Any]:
    main = ~ans.sentinel
    trials, counts = np.unique(ans.trial[main], return_counts=True)
    multi = set(trials[counts >= 2].tolist())
    keep = main & np.isin(ans.trial, list(multi))
    return {"krippendorff_alpha": krippendorff_alpha_nominal(ans.trial[keep], ans.slot[keep]),
            "level": "nominal (the candidate chosen)", "trials": len(multi), "answers": int(keep.sum())}


def rt_summary(ms: np.ndarray, too_fast: np.ndarray) -> dict[str, Any]:
    ms = ms[np.isfinite(ms)]
    if len(ms) == 0:
        return {"answers": 0}
    q = np.quantile(ms, [0.1, 0.25, 0.5, 0.75, 0.9])
    return {"answers": int(len(ms)), "mean": float(ms.mean()), "p10": float(q[0]), "p25": float(q[1]),
            "median": float(q[2]), "p75": float(q[3]), "p90": float(q[4]), "too_fast": int(too_fast.sum())}


# -- the whole analysis --------------------------------------------------------------------------------

def analyse(ans: Answers, rule: ExclusionRule, replicates: int = 2000, seed: int = 0,
            drop_too_fast: bool = True, within: bool = False, level: float = LEVEL) -> dict[str, Any]:
    """Exclusions, shares overall and per rank, Bradley-Terry, pairwise tests, agreement, RTs."""
    rng = np.random.default_rng(seed)
    excluded = exclusions(ans, rule)
    kept = ~np.isin(ans.participant, list(excluded))
    use = ans.subset(kept)
    main = ~use.sentinel & (~use.too_fast if drop_too_fast else True)
    data = use.subset(main)
    out: dict[str, Any] = {
        "metrics": list(ans.metrics),
        "participants": {"answered": int(len(np.unique(ans.participant))),
                         "included": int(len(np.unique(use.participant))),
                         "excluded": [{"participant": ans.participants[p], "reasons": r}
                                      for p, r in sorted(excluded.items())]},
        "answers": {"total": len(ans), "sentinel": int(ans.sentinel.sum()),
                    "analysed": len(data), "too_fast": int(ans.too_fast.sum()),
                    "too_fast_dropped": int((~use.sentinel & use.too_fast).sum()) if drop_too_fast else 0},
        "sentinels": sentinel_summary(ans),
        "bootstrap": {"replicates": replicates, "level": level,
                      "resamples": "participants, then answers within them" if within else "participants"},
        "response_ms": rt_summary(use.response_ms[~use.sentinel], use.too_fast[~use.sentinel]),
        "agreement": agreement(use.subset(~use.too_fast) if drop_too_fast else use),
    }
    merged = data.merged if len(data.merged) else np.zeros(len(data), bool)
    out["merged"] = {"answers": int(merged.sum()),
                     "note": "when several metrics returned the same image it was shown once and the "
                             "choice credited to each of them, so shares can sum to more than 1"}
    if len(data) == 0 or not ans.metrics:
        out.update(shares={}, per_rank={}, bradley_terry={}, pairwise=[])
        return out
    out["shares"], boot = share_table(data, replicates, rng, level, within)
    out["per_rank"] = {}
    for r in sorted(set(data.rank.tolist()) - {-1}):
        out["per_rank"][str(r)], _ = share_table(data.subset(data.rank == r), replicates, rng, level, within)
    out["bradley_terry"] = bt_table(data, replicates, rng, level, within)
    out["pairwise"] = pairwise_tests(data, boot, level)
    return out


def _num(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if np.isfinite(x) else None


def simulate_choices(strengths: np.ndarray, n_participants: int, n_trials: int, rng: np.random.Generator,
                     careless: float = 0.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Virtual participants choosing among all ``M`` candidates by the Bradley-Terry/Luce model
    (``P(m) = strengths[m] / sum``); a ``careless`` fraction picks uniformly at random.
    Returns (participant, chosen metric, careless flag per participant)."""
    m = len(strengths)
    p = np.asarray(strengths, float) / np.sum(strengths)
    lazy = rng.random(n_participants) < careless
    part = np.repeat(np.arange(n_participants), n_trials)
    u = rng.random(len(part))
    good = np.searchsorted(np.cumsum(p), u, side="right").clip(0, m - 1)
    rand = rng.integers(0, m, len(part))
    return part, np.where(lazy[part], rand, good), lazy


