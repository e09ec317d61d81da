"""The analysis functions on simulated answers with a known truth, and against the reference
packages (choix for Bradley-Terry, krippendorff for alpha)."""

from __future__ import annotations

import numpy as np
import pytest

from lookalike.studies.analysis import (
    Answers,
    ExclusionRule,
    analyse,
    bootstrap_sums,
    bradley_terry,
    exclusions,
    holm,
    krippendorff_alpha_nominal,
    pairwise_data,
    share_table,
    simulate_choices,
    win_features,
)

TRUE_W = np.array([3.0, 2.0, 1.0, 1.0])


def simulated_study(rng: np.random.Generator, w: np.ndarray = TRUE_W, people: int = 40, trials: int = 20,
                    sentinels: int = 5, careless: float = 0.15) -> tuple[Answers, np.ndarray]:
    """Participants choosing among one candidate per metric by the Bradley-Terry (Luce) model,
    careless ones at random, each also answering sentinels whose right answer is slot 0."""
    m = len(w)
    part, choice, lazy = simulate_choices(w, people, trials, rng, careless)
    sp = np.repeat(np.arange(people), sentinels)
    sc = np.where(lazy[sp], rng.integers(0, m, len(sp)), 0)
    n_main, n = len(part), len(part) + len(sp)
    slot_of = np.tile(np.arange(m), (n, 1))
    slot_of[n_main:] = -1
    ans = Answers([f"m{i}" for i in range(m)], [f"p{i}" for i in range(people)], np.r_[part, sp],
                  np.r_[rng.integers(0, 60, n_main), np.zeros(len(sp), int)],
                  np.r_[np.zeros(n_main, bool), np.ones(len(sp), bool)], np.r_[rng.integers(1, 11, n_main),
                                                                              -np.ones(len(sp), int)],
                  slot_of, np.r_[choice, sc], np.r_[-np.ones(n_main, int), np.zeros(len(sp), int)],
                  rng.lognormal(7, 0.5, n), np.zeros(n, bool))
    return ans, lazy


def test_share_intervals_cover_the_true_share_in_95_percent_of_1000_simulated_studies():
    rng = np.random.default_rng(2026)
    truth = TRUE_W / TRUE_W.sum()
    covered = np.zeros((1000, len(TRUE_W)), bool)
    for k in range(1000):
        ans, lazy = simulated_study(rng)
        excluded = exclusions(ans, ExclusionRule())
        keep = ~np.isin(ans.participant, list(excluded)) & ~ans.sentinel
        table, _ = share_table(ans.subset(keep), 1000, rng)
        covered[k] = [table[m]["low"] <= truth[i] <= table[m]["high"] for i, m in enumerate(ans.metrics)]
    coverage = covered.mean(axis=0)
    assert np.all((coverage >= 0.93) & (coverage <= 0.97)), coverage


def test_careless_participants_are_excluded_with_their_reasons_and_the_rest_kept():
    rng = np.random.default_rng(5)
    ans, lazy = simulated_study(rng, careless=0.25)
    res = analyse(ans, ExclusionRule(), replicates=200)
    excluded = {e["participant"] for e in res["participants"]["excluded"]}
    caught = {f"p{i}" for i in np.nonzero(lazy)[0]}
    assert excluded == caught and len(caught) >= 5  # with 4 options a random clicker fails a sentinel
    assert all("sentinels" in r for e in res["participants"]["excluded"] for r in e["reasons"])
    assert res["participants"]["included"] == 40 - len(caught)
    assert res["sentinels"]["failed"] > 0 and res["answers"]["analysed"] == (40 - len(caught)) * 20
    shares = [res["shares"][m]["share"] for m in ans.metrics]
    assert shares[0] > shares[1] > max(shares[2:])  # the strongest metric wins
    assert set(res["per_rank"]) == {str(r) for r in range(1, 11)}


def test_too_fast_answers_are_flagged_into_an_exclusion():
    rng = np.random.default_rng(1)
    ans, _ = simulated_study(rng, careless=0.0)
    ans.too_fast[ans.participant == 3] = True
    reasons = exclusions(ans, ExclusionRule(min_response_ms=300, max_fast_share=0.5))
    assert list(reasons) == [3] and "faster than 300 ms" in reasons[3][0]


def test_bradley_terry_equals_choix_on_the_same_comparisons():
    import choix

    rng = np.random.default_rng(3)
    ans, _ = simulated_study(rng, w=np.array([4.0, 2.5, 1.0, 0.6, 1.5]), careless=0.0)
    main = ans.subset(~ans.sentinel)
    # merge some candidates (two metrics returned one image) and hide a metric in some trials
    main.slot_of[::7, 1] = main.slot_of[::7, 0]
    main.slot_of[::5, 4] = -1
    main.slot[::5] = np.where(main.slot[::5] == 4, 0, main.slot[::5])
    m = len(main.metrics)
    ours = bradley_terry(win_features(main).sum(axis=0).reshape(m, m))
    ref = choix.ilsr_pairwise(m, pairwise_data(main), alpha=0.0, tol=1e-12, max_iter=10000)
    ref = ref - ref.mean()
    assert np.max(np.abs(ours - ref)) <= 1e-6
    assert np.argmax(ours) == 0


def test_krippendorff_alpha_equals_the_package():
    import krippendorff

    rng = np.random.default_rng(4)
    raters, units = 12, 30
    truth = rng.integers(0, 4, units)
    data = np.where(rng.random((raters, units)) < 0.6, truth, rng.integers(0, 4, (raters, units))).astype(float)
    data[rng.random((raters, units)) < 0.4] = np.nan  # not every rater answers every trial
    r, u = np.nonzero(~np.isnan(data))
    ours = krippendorff_alpha_nominal(u, data[r, u].astype(int))
    ref = krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")
    assert ours == pytest.approx(ref, abs=1e-12) and 0.2 < ours < 0.9


def test_two_stage_bootstrap_keeps_totals_and_is_wider():
    rng = np.random.default_rng(0)
    feats = rng.integers(0, 2, (300, 2)).astype(float)
    part = np.repeat(np.arange(30), 10)
    one = bootstrap_sums(feats, part, 4000, rng)
    two = bootstrap_sums(feats, part, 4000, rng, within=True)
    assert one.mean(axis=0) == pytest.approx(feats.sum(axis=0), rel=0.02)
    assert two.mean(axis=0) == pytest.approx(feats.sum(axis=0), rel=0.02)
    assert two[:, 0].std() > 1.2 * one[:, 0].std()


def test_holm_adjustment():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])


def test_an_image_several_metrics_returned_is_credited_to_each_and_reported():
    from lookalike.studies.service import answers_table

    def row(participant: str, trial: int, chosen: int) -> dict:
        return {"participant": participant, "trial_id": trial, "role": "main", "rank": 1, "choice_slot": chosen,
                "correct_slot": None, "response_ms": 900.0, "too_fast": False,
                "shown": [{"slot": 0, "metrics": ["a", "b"]}, {"slot": 1, "metrics": ["c"]}]}

    rows = [row(f"p{i}", t, (i + t) % 3 == 0) for i in range(6) for t in range(4)]
    table = answers_table(rows, ["a", "b", "c"])
    res = analyse(table, ExclusionRule(), replicates=100)
    s = {m: res["shares"][m]["share"] for m in "abc"}
    assert s["a"] == s["b"] and s["a"] + s["c"] == pytest.approx(1.0)
    assert s["a"] + s["b"] + s["c"] > 1.0
    assert res["merged"]["answers"] == 24 and "credited to each" in res["merged"]["note"]
    assert res["bradley_terry"]["a"]["log_strength"] == pytest.approx(res["bradley_terry"]["b"]["log_strength"])


def test_one_participant_gives_no_interval() -> None:
    from lookalike.studies.analysis import percentile_interval

    samples = np.random.default_rng(0).random((200, 3))
    lo, hi = percentile_interval(samples, estimate=samples.mean(axis=0), clusters=1)
    assert np.isnan(lo).all() and np.isnan(hi).all()
    lo, hi = percentile_interval(samples, estimate=samples.mean(axis=0), clusters=5)
    assert (lo < hi).all()
