"""Agreement between a metric and people, as pure numpy functions.

* :func:`twoafc_scores` / :func:`twoafc`: the 2AFC score of DreamSim's ``evaluation/score.py`` and
  LPIPS's ``score_2afc_dataset``: ``mean((d0<d1)(1-t) + (d1<d0)t + 0.5(d0==d1))`` with ``t`` the
  share of people who judged the second image (right / p1) closer to the reference.
* :func:`jnd_map`: BAPPS's JND score (``score_jnd_dataset``): pairs sorted by increasing distance,
  "same" fractions as soft positives, precision/recall by cumulative sums, area by :func:`voc_ap`.
* :func:`spearman`, :func:`icc`: rank agreement; ICC in McGraw & Wong's forms ``"A,1"`` (two-way,
  absolute agreement, single rater: the default), ``"C,1"`` (consistency) and ``"1,1"`` (one-way),
  the labels ``pingouin.intraclass_corr`` prints.
* :func:`bootstrap_mean_ci`, :func:`bootstrap_ci`: 95% percentile intervals, resampling whole
  clusters (e.g. every triplet of one reference image) when ``groups`` is given.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

ICC_FORMS = ("A,1", "C,1", "1,1")


def _vectors(*arrays: Sequence[float] | np.ndarray) -> list[np.ndarray]:
    out = [np.asarray(a, dtype=np.float64).ravel() for a in arrays]
    if len({len(a) for a in out}) != 1:
        raise ValueError(f"arrays differ in length: {[len(a) for a in out]}")
    return out


def twoafc_scores(d0: Sequence[float] | np.ndarray, d1: Sequence[float] | np.ndarray,
                  target: Sequence[float] | np.ndarray) -> np.ndarray:
    """Per-triplet agreement in [0, 1]; ``target`` = share judging image 1 closer (soft labels)."""
    a, b, t = _vectors(d0, d1, target)
    if ((t < 0) | (t > 1)).any() or not np.isfinite(t).all():
        raise ValueError("2AFC targets must lie in [0, 1]")
    return (a < b) * (1.0 - t) + (b < a) * t + (a == b) * 0.5


def twoafc(d0: Sequence[float] | np.ndarray, d1: Sequence[float] | np.ndarray,
           target: Sequence[float] | np.ndarray) -> float:
    """The 2AFC score: mean of :func:`twoafc_scores`."""
    s = twoafc_scores(d0, d1, target)
    if len(s) == 0:
        raise ValueError("2AFC needs at least one triplet")
    return float(s.mean())


def voc_ap(rec: np.ndarray, prec: np.ndarray) -> float:
    """Area under the interpolated precision-recall curve (PASCAL VOC, as BAPPS uses it)."""
    mrec = np.concatenate(([0.0], np.asarray(rec, np.float64), [1.0]))
    mpre = np.concatenate(([0.0], np.asarray(prec, np.float64), [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]  # precision envelope
    i = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


def jnd_map(distance: Sequence[float] | np.ndarray, same: Sequence[float] | np.ndarray) -> float:
    """BAPPS JND mAP: how well small distances pick the pairs people called "same".

    Ties in ``distance`` keep input order (stable sort; BAPPS's ``np.argsort`` leaves it open)."""
    d, s = _vectors(distance, same)
    if len(d) == 0:
        raise ValueError("JND mAP needs at least one pair")
    if ((s < 0) | (s > 1)).any():
        raise ValueError("JND 'same' fractions must lie in [0, 1]")
    if s.sum() == 0:
        raise ValueError("JND mAP is undefined when nobody judged any pair the same")
    order = np.argsort(d, kind="stable")
    ss = s[order]
    tp = np.cumsum(ss)
    fp = np.cumsum(1.0 - ss)
    fn = ss.sum() - tp
    return voc_ap(tp / (tp + fn), tp / (tp + fp))


def rankdata(x: Sequence[float] | np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties given their average rank (scipy's ``rankdata(method="average")``)."""
    a = np.asarray(x, dtype=np.float64).ravel()
    order = np.argsort(a, kind="stable")
    sorted_a = a[order]
    starts = np.flatnonzero(np.r_[True, sorted_a[1:] != sorted_a[:-1]])
    ends = np.r_[starts[1:], len(a)]
    avg = (starts + ends + 1) / 2.0  # mean of 1-based positions start+1 .. end
    ranks = np.empty(len(a))
    ranks[order] = np.repeat(avg, ends - starts)
    return ranks


def spearman(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> float:
    """Spearman's rho (Pearson correlation of average ranks); NaN if either side is constant."""
    x, y = _vectors(a, b)
    if len(x) < 2:
        raise ValueError("Spearman needs at least two items")
    rx, ry = rankdata(x) - (len(x) + 1) / 2, rankdata(y) - (len(y) + 1) / 2
    denom = np.sqrt((rx * rx).sum() * (ry * ry).sum())
    return float((rx * ry).sum() / denom) if denom > 0 else float("nan")


def icc(ratings: np.ndarray, form: str = "A,1") -> float:
    """Intraclass correlation of an ``(n_subjects, k_raters)`` table (McGraw & Wong 1996).

    ``"A,1"`` = Shrout & Fleiss ICC(2,1), ``"C,1"`` = ICC(3,1), ``"1,1"`` = ICC(1,1)."""
    x = np.asarray(ratings, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2 or x.shape[1] < 2:
        raise ValueError("ICC needs a (subjects >= 2, raters >= 2) table")
    if form not in ICC_FORMS:
        raise ValueError(f"unknown ICC form {form!r} (one of {', '.join(ICC_FORMS)})")
    n, k = x.shape
    grand = x.mean()
    ss_rows = k * ((x.mean(1) - grand) ** 2).sum()
    ss_cols = n * ((x.mean(0) - grand) ** 2).sum()
    ss_total = ((x - grand) ** 2).sum()
    msr = ss_rows / (n - 1)
    if form == "1,1":
        msw = (ss_total - ss_rows) / (n * (k - 1))
        return float((msr - msw) / (msr + (k - 1) * msw))
    msc = ss_cols / (k - 1)
    mse = (ss_total - ss_rows - ss_cols) / ((n - 1) * (k - 1))
    if form == "C,1":
        return float((msr - mse) / (msr + (k - 1) * mse))
    return float((msr - mse) / (msr + (k - 1) * mse + k * (msc - mse) / n))


def _cluster_index(groups: Sequence[object] | np.ndarray | None, n: int) -> tuple[np.ndarray, int]:
    if groups is None:
        return np.arange(n), n
    g = np.asarray(groups)
    if len(g) != n:
        raise ValueError(f"{len(g)} group labels for {n} items")
    _, inverse = np.unique(g, return_inverse=True)
    return inverse.ravel(), int(inverse.max()) + 1 if n else 0


def bootstrap_mean_ci(values: Sequence[float] | np.ndarray, groups: Sequence[object] | np.ndarray | None = None,
                      n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile interval of the mean of ``values``, resampling clusters (``groups``) or items.

    Each replicate draws as many clusters as there are, with replacement, and takes the mean of
    all their items (so clusters weigh by their size, as in the point estimate)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    if len(v) == 0:
        raise ValueError("bootstrap needs at least one value")
    inverse, n_clusters = _cluster_index(groups, len(v))
    sums = np.bincount(inverse, weights=v, minlength=n_clusters)
    counts = np.bincount(inverse, minlength=n_clusters).astype(np.float64)
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    for start in range(0, n_boot, 256):  # chunks keep memory at 256 x clusters
        stop = min(n_boot, start + 256)
        idx = rng.integers(0, n_clusters, size=(stop - start, n_clusters))
        means[start:stop] = sums[idx].sum(1) / counts[idx].sum(1)
    return _percentiles(means, level)


def bootstrap_ci(stat: Callable[[np.ndarray, np.ndarray], float], n_items: int,
                 groups: Sequence[object] | np.ndarray | None = None, n_boot: int = 1000,
                 level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile interval of ``stat(indices, draws)`` over resampled items or clusters.

    ``stat`` receives the item indices of one replicate (clusters expanded to their items) and,
    for each, the number of the draw that picked it (a cluster drawn twice is two clusters). A
    replicate may return NaN when degenerate; those are dropped."""
    inverse, n_clusters = _cluster_index(groups, n_items)
    if n_clusters == 0:
        raise ValueError("bootstrap needs at least one item")
    members = [np.flatnonzero(inverse == c) for c in range(n_clusters)]
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_boot):
        pick = rng.integers(0, n_clusters, size=n_clusters)
        idx = np.concatenate([members[c] for c in pick])
        draws = np.repeat(np.arange(n_clusters), [len(members[c]) for c in pick])
        values.append(stat(idx, draws))
    arr = np.asarray(values, dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    if len(arr) == 0:
        return float("nan"), float("nan")
    return _percentiles(arr, level)


def _percentiles(values: np.ndarray, level: float) -> tuple[float, float]:
    if not 0 < level < 1:
        raise ValueError("level must lie in (0, 1)")
    lo, hi = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def rank_agreement(targets: Sequence[object] | np.ndarray, human_rank: Sequence[float] | np.ndarray,
                   distance: Sequence[float] | np.ndarray, form: str = "A,1") -> dict[str, float]:
    """Spearman and ICC between human ranks and a metric's ranks of the same candidates.

    Items are (target, candidate) rows. Within each target the metric's rank is the average rank
    of its distance (1 = closest) and the human rank is re-ranked the same way, so both sides are
    on one 1..n scale. ``spearman`` is the mean of the per-target rhos (targets where either side
    is constant are left out); ``icc`` treats every row as a subject rated by two raters (people,
    metric) on those within-target ranks."""
    t = np.asarray(targets)
    h, d = _vectors(human_rank, distance)
    if len(t) != len(h):
        raise ValueError("targets, ranks and distances differ in length")
    hr, mr = np.empty(len(h)), np.empty(len(h))
    rhos = []
    for value in np.unique(t):
        idx = np.flatnonzero(t == value)
        if len(idx) < 2:
            continue
        hr[idx], mr[idx] = rankdata(h[idx]), rankdata(d[idx])
        rho = spearman(hr[idx], mr[idx])
        if np.isfinite(rho):
            rhos.append(rho)
    counts = {v: c for v, c in zip(*np.unique(t, return_counts=True), strict=True)}
    keep = np.array([counts[v] >= 2 for v in t], dtype=bool)
    out = {"spearman": float(np.mean(rhos)) if rhos else float("nan"), "icc": float("nan")}
    if keep.sum() >= 2:
        out["icc"] = icc(np.column_stack([hr[keep], mr[keep]]), form)
    return out
