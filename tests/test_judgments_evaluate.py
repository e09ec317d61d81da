"""The evaluation service: scores equal the formulas on directly computed distances, the cache
serves re-runs and further metrics, and pairwise (non-embedding) metrics go through it too."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lookalike.embed.distance import paired
from lookalike.embed.images import load_image
from lookalike.embed.factory import create_metric
from lookalike.judgments import evaluate as ev
from lookalike.judgments import scores as S
from lookalike.judgments.cache import FeatureCache
from lookalike.judgments.datasets import JudgmentDataError, read
from tests.judgment_data import write_bapps_jnd, write_nights, write_rankings

pytestmark = pytest.mark.filterwarnings("ignore:.*(pretrained|weight enum).*:UserWarning")

ROWS = [{"votes": 6 + i % 3, "left_vote": (i * 7) % 3, "right_vote": (i * 5) % 3 + 1,
         "split": ("train", "val", "test")[i % 3], "is_imagenet": i % 2 == 0} for i in range(9)]


class LpipsPairs:
    """A pairwise metric (no embedding): the lpips package's LPIPS with its shipped linear heads on
    a seeded random AlexNet trunk, at 64x64."""

    kind = "pairwise"
    name = "lpips-pairs"

    def __init__(self) -> None:
        import lpips

        torch.manual_seed(0)
        self.net = lpips.LPIPS(net="alex", pretrained=True, pnet_rand=True, verbose=False).eval()
        self.calls = 0

    def provenance(self) -> dict[str, object]:
        return {"metric": self.name, "trunk": "alex", "seed": 0}

    def _tensor(self, path: str) -> torch.Tensor:
        im = load_image(path).resize((64, 64))
        x = torch.from_numpy(np.asarray(im, np.float32) / 127.5 - 1.0).permute(2, 0, 1)
        return x[None]

    def distance_pairs(self, a: list[str], b: list[str]) -> np.ndarray:
        self.calls += 1
        with torch.inference_mode():
            x = torch.cat([self._tensor(p) for p in a])
            y = torch.cat([self._tensor(p) for p in b])
            return self.net(x, y).reshape(-1).double().numpy()


@pytest.fixture
def nights(tmp_path: Path, photos: list[Path]) -> Path:
    return write_nights(tmp_path / "nights", photos, ROWS, size=48)


def _direct(metric_name: str, pairs_a: list[str], pairs_b: list[str]) -> np.ndarray:
    m = create_metric(metric_name, device="cpu")
    va, vb = m.embed(pairs_a), m.embed(pairs_b)
    return paired(va, vb, m.distance_kind)


def test_2afc_equals_formula_and_cache_serves_rerun(nights: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    cache = FeatureCache(tmp_path / "features")
    cold = ev.evaluate("2afc", nights, ["tiny-vit", "tiny-vit-b"], cache=cache, n_boot=200, progress=False)
    recs = read(nights, "2afc").records
    t = np.array([r.target for r in recs])
    for result in cold.results:
        d0 = _direct(result.metric, [r.ref for r in recs], [r.left for r in recs])
        d1 = _direct(result.metric, [r.ref for r in recs], [r.right for r in recs])
        top = result.scores[0]
        assert top.value == pytest.approx(S.twoafc(d0, d1, t), abs=1e-12)
        assert top.low <= top.value <= top.high and top.n == 9
        assert result.computed == 27 and result.cache_hits == 0
        splits = {s.split: s for s in result.breakdown if s.split}
        assert set(splits) == {"train", "val", "test"}
        test = np.array([r.split == "test" for r in recs])
        assert splits["test"].value == pytest.approx(S.twoafc(d0[test], d1[test], t[test]))
        assert {s.category for s in result.breakdown if s.category} == {"imagenet", "no_imagenet"}

    def no_building(*args, **kwargs):
        raise AssertionError("a warm re-run must not build the metric")

    monkeypatch.setattr("lookalike.embed.factory.create_metric", no_building)
    warm = ev.evaluate("2afc", nights, ["tiny-vit", "tiny-vit-b"], cache=cache, n_boot=200, progress=False)
    for c, w in zip(cold.results, warm.results, strict=True):
        assert w.cache_hits == 27 and w.computed == 0
        assert w.scores[0].value == c.scores[0].value and w.scores[0].low == c.scores[0].low


def test_pairwise_metric_through_the_same_interface(nights: Path, tmp_path: Path) -> None:
    metric = LpipsPairs()
    cache = FeatureCache(tmp_path / "features")
    report = ev.evaluate("2afc", nights, [metric], cache=cache, n_boot=100, progress=False, batch_size=8)
    recs = read(nights, "2afc").records
    d0 = metric.distance_pairs([r.ref for r in recs], [r.left for r in recs])
    d1 = metric.distance_pairs([r.ref for r in recs], [r.right for r in recs])
    assert np.std(np.r_[d0, d1]) > 0
    result = report.results[0]
    assert result.kind == "pairwise" and result.computed == 18
    assert result.scores[0].value == pytest.approx(S.twoafc(d0, d1, [r.target for r in recs]))
    calls = metric.calls
    again = ev.evaluate("2afc", nights, [metric], cache=cache, n_boot=100, progress=False)
    assert metric.calls == calls and again.results[0].cache_hits == 18
    assert again.results[0].scores[0].value == result.scores[0].value


def test_jnd_and_rank_equal_the_formulas(tmp_path: Path, photos: list[Path]) -> None:
    jnd = write_bapps_jnd(tmp_path / "jnd", photos, {("val", "cnn"): [1.0, 0.0, 0.5, 0.0, 1.0, 0.25]})
    report = ev.evaluate("jnd", jnd, ["tiny-vit"], cache=False, n_boot=100, progress=False)
    pairs = read(jnd, "jnd").records
    d = _direct("tiny-vit", [p.a for p in pairs], [p.b for p in pairs])
    assert report.results[0].scores[0].value == pytest.approx(S.jnd_map(d, [p.same for p in pairs]))

    rank = write_rankings(tmp_path / "rank", photos[20:], n_targets=4, n_candidates=4, raters=("a", "b"))
    report = ev.evaluate("rank", rank, ["tiny-vit"], cache=False, n_boot=100, progress=False)
    items = read(rank, "rank").records
    by_pair: dict[tuple[str, str], list[float]] = {}
    for r in items:
        by_pair.setdefault((r.target, r.candidate), []).append(r.rank)
    keys = list(by_pair)
    d = _direct("tiny-vit", [k[0] for k in keys], [k[1] for k in keys])
    want = S.rank_agreement([k[0] for k in keys], [np.mean(by_pair[k]) for k in keys], d)
    got = {s.name: s for s in report.results[0].scores}
    assert got["spearman"].value == pytest.approx(want["spearman"])
    assert got["icc"].value == pytest.approx(want["icc"])
    assert got["spearman"].n == 4


def test_unreadable_image_is_an_error_or_a_counted_skip(nights: Path) -> None:
    bad = nights / "distort" / "000" / "004_1.png"
    bad.write_bytes(bad.read_bytes()[:60])  # truncated PNG
    with pytest.raises(JudgmentDataError, match=r"data\.csv:6: image cannot be read"):
        ev.evaluate("2afc", nights, ["tiny-vit"], cache=False, n_boot=10, progress=False)
    report = ev.evaluate("2afc", nights, ["tiny-vit"], cache=False, n_boot=10, progress=False, strict=False)
    assert report.data["scored"] == 8 and report.data["skipped"] == 1
    assert report.results[0].scores[0].n == 8


def test_unknown_metric_fails_before_any_work(nights: Path) -> None:
    from lookalike.errors import UnknownMetricError

    with pytest.raises(UnknownMetricError):
        ev.evaluate("2afc", nights, ["tiny-vit", "no-such-metric"], progress=False)
