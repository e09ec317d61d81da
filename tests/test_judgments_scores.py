"""Scores against hand-computed values and the reference implementations (lpips, sklearn,
pingouin, scipy)."""

from __future__ import annotations

import numpy as np
import pytest

from lookalike.judgments import scores as S

pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword")


def test_twoafc_hand_computed_with_ties_and_soft_labels() -> None:
    d0 = [0.1, 0.5, 0.3, 0.2, 0.4, 0.0]
    d1 = [0.2, 0.4, 0.3, 0.2, 0.1, 1.0]
    t = [0.0, 1.0, 0.7, 0.25, 0.6, 0.7]
    # left closer & nobody chose right: 1; right closer & all chose right: 1; two ties: 0.5 each;
    # right closer with 60% for right: 0.6; left closer with 70% for right: 0.3
    np.testing.assert_allclose(S.twoafc_scores(d0, d1, t), [1.0, 1.0, 0.5, 0.5, 0.6, 0.3])
    assert S.twoafc(d0, d1, t) == pytest.approx(3.9 / 6)


def test_twoafc_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        S.twoafc([0.1], [0.2], [1.5])
    with pytest.raises(ValueError):
        S.twoafc([0.1, 0.2], [0.2], [1.0])
    with pytest.raises(ValueError):
        S.twoafc([], [], [])


def test_jnd_map_hand_computed() -> None:
    # sorted by distance: same = 1, 0, 1, 0, 0 -> precision at the hits 1 and 2/3
    assert S.jnd_map([0.1, 0.2, 0.3, 0.4, 0.5], [1, 0, 1, 0, 0]) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    # 1, 0, 0, 1, 1: precision at the hits 1, 1/2, 3/5; VOC's envelope lifts the second to 3/5
    assert S.jnd_map([1, 2, 3, 4, 5], [1, 0, 0, 1, 1]) == pytest.approx((1 + 0.6 + 0.6) / 3)
    # soft "same" fractions: TP = .5, 1.5, 1.5; FP = .5, .5, 1.5 -> envelope .75 over all recall
    assert S.jnd_map([0.1, 0.2, 0.3], [0.5, 1.0, 0.0]) == pytest.approx(0.75)
    # input order does not matter, only distances
    assert S.jnd_map([0.3, 0.1, 0.2], [0.0, 0.5, 1.0]) == pytest.approx(0.75)


def test_jnd_map_equals_bapps_reference() -> None:
    """lpips' own voc_ap on the precision/recall of score_jnd_dataset gives the same number."""
    lpips = pytest.importorskip("lpips")
    rng = np.random.default_rng(3)
    for _ in range(20):
        n = int(rng.integers(5, 60))
        ds, sames = rng.random(n), rng.random(n) * (rng.random(n) < 0.7)
        if sames.sum() == 0:
            continue
        order = np.argsort(ds)
        ss = sames[order]
        tps, fps = np.cumsum(ss), np.cumsum(1 - ss)
        fns = ss.sum() - tps
        ref = lpips.voc_ap(tps / (tps + fns), tps / (tps + fps))
        assert S.jnd_map(ds, sames) == pytest.approx(ref, abs=1e-12)


def test_jnd_map_vs_sklearn_average_precision() -> None:
    """With hard labels and distinct distances, sklearn's AP (score = -distance) is the
    non-interpolated area: equal when precision never rises after a hit, below otherwise."""
    from sklearn.metrics import average_precision_score

    d = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    monotone = np.array([1, 1, 0, 1, 0, 0])
    assert S.jnd_map(d, monotone) == pytest.approx(average_precision_score(monotone, -d))
    rising = np.array([1, 0, 0, 1, 1, 0])
    assert S.jnd_map(d, rising) > average_precision_score(rising, -d) + 0.01
    rng = np.random.default_rng(0)
    for _ in range(50):
        y = (rng.random(30) < 0.4).astype(float)
        if y.sum() == 0:
            continue
        x = rng.random(30)
        assert S.jnd_map(x, y) >= average_precision_score(y, -x) - 1e-12


def test_jnd_map_undefined_without_positives() -> None:
    with pytest.raises(ValueError):
        S.jnd_map([0.1, 0.2], [0.0, 0.0])


def test_rankdata_and_spearman_match_scipy() -> None:
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(1)
    for _ in range(20):
        a = rng.integers(0, 5, 12).astype(float)  # many ties
        b = rng.random(12)
        np.testing.assert_allclose(S.rankdata(a), stats.rankdata(a))
        assert S.spearman(a, b) == pytest.approx(stats.spearmanr(a, b).statistic, abs=1e-12)
    assert np.isnan(S.spearman([1, 1, 1], [1, 2, 3]))


@pytest.mark.parametrize("form,label", [("A,1", "ICC(A,1)"), ("C,1", "ICC(C,1)"), ("1,1", "ICC(1,1)")])
@pytest.mark.parametrize("shape", [(8, 2), (12, 3)])
def test_icc_matches_pingouin(form: str, label: str, shape: tuple[int, int]) -> None:
    pd = pytest.importorskip("pandas")
    pg = pytest.importorskip("pingouin")
    rng = np.random.default_rng(shape[0])
    n, k = shape
    x = rng.normal(size=(n, 1)) + 0.6 * rng.normal(size=(n, k)) + np.arange(k) * 0.3
    df = pd.DataFrame({"subject": np.repeat(np.arange(n), k), "rater": np.tile(np.arange(k), n),
                       "rating": x.ravel()})
    table = pg.intraclass_corr(df, targets="subject", raters="rater", ratings="rating").set_index("Type")
    assert S.icc(x, form) == pytest.approx(table.loc[label, "ICC"], abs=1e-10)


def test_rank_agreement_matches_pingouin_and_scipy() -> None:
    pd = pytest.importorskip("pandas")
    pg = pytest.importorskip("pingouin")
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(7)
    targets = np.repeat(np.arange(5), 4)
    human = np.concatenate([rng.permutation(4) + 1 for _ in range(5)]).astype(float)
    dist = human + rng.normal(scale=1.5, size=20)
    out = S.rank_agreement(targets, human, dist)
    metric_rank = np.concatenate([stats.rankdata(dist[targets == t]) for t in range(5)])
    rhos = [stats.spearmanr(human[targets == t], dist[targets == t]).statistic for t in range(5)]
    assert out["spearman"] == pytest.approx(np.mean(rhos))
    df = pd.DataFrame({"item": np.tile(np.arange(20), 2), "rater": np.repeat(["h", "m"], 20),
                       "rank": np.concatenate([human, metric_rank])})
    table = pg.intraclass_corr(df, targets="item", raters="rater", ratings="rank").set_index("Type")
    assert out["icc"] == pytest.approx(table.loc["ICC(A,1)", "ICC"], abs=1e-10)
    perfect = S.rank_agreement(targets, human, human * 0.1)
    assert perfect["spearman"] == pytest.approx(1.0) and perfect["icc"] == pytest.approx(1.0)


def test_bootstrap_mean_ci_is_seeded_and_clusters_matter() -> None:
    rng = np.random.default_rng(0)
    v = rng.random(40)
    a = S.bootstrap_mean_ci(v, n_boot=500, seed=1)
    assert a == S.bootstrap_mean_ci(v, n_boot=500, seed=1)
    assert a[0] < v.mean() < a[1]
    one_cluster = S.bootstrap_mean_ci(v, groups=np.zeros(40), n_boot=200)
    assert one_cluster == pytest.approx((v.mean(), v.mean()))
    # clustered items (10 clusters whose members agree) give a wider interval than independent ones
    clustered = np.repeat(rng.random(10), 4)
    wide = S.bootstrap_mean_ci(clustered, groups=np.repeat(np.arange(10), 4), n_boot=2000)
    narrow = S.bootstrap_mean_ci(clustered, n_boot=2000)
    assert wide[1] - wide[0] > 1.5 * (narrow[1] - narrow[0])


def test_bootstrap_mean_ci_covers_the_true_mean() -> None:
    rng = np.random.default_rng(5)
    hits = 0
    sims = 300
    for i in range(sims):
        x = (rng.random(150) < 0.7).astype(float)
        lo, hi = S.bootstrap_mean_ci(x, n_boot=400, seed=i)
        hits += lo <= 0.7 <= hi
    assert 0.90 <= hits / sims <= 0.98


def test_bootstrap_ci_generic_statistic() -> None:
    rng = np.random.default_rng(2)
    d, same = rng.random(60), (rng.random(60) < 0.5).astype(float)
    point = S.jnd_map(d, same)
    lo, hi = S.bootstrap_ci(lambda idx, _draws: S.jnd_map(d[idx], same[idx]), 60, n_boot=300)
    assert lo <= point <= hi and hi - lo > 0
