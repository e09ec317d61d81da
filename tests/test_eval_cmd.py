"""``lookalike eval``: help, table and JSON output, several metrics in one run, error exits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.judgment_data import write_bapps_jnd, write_nights, write_rankings

ROWS = [{"votes": 6, "left_vote": i % 2, "right_vote": 1 - i % 2, "split": "test", "is_imagenet": i < 3}
        for i in range(6)]


@pytest.fixture
def nights(tmp_path: Path, photos: list[Path]) -> Path:
    return write_nights(tmp_path / "nights", photos, ROWS, size=48)


def test_help_lists_layouts_and_scores(cli) -> None:
    proc = cli("eval", "--help")
    assert proc.returncode == 0
    for word in ("2afc", "jnd", "rank", "NIGHTS", "BAPPS", "rankings.csv", "ICC(A,1)", "--min-votes", "--json"):
        assert word in proc.stdout


def test_two_metrics_json_and_table(cli, nights: Path, tmp_path: Path) -> None:
    env = {"LOOKALIKE_HOME": str(tmp_path / "home")}
    proc = cli("eval", "2afc", "--data", str(nights), "-m", "tiny-vit", "tiny-vit-b", "--json",
               "--bootstrap", "200", env=env)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["task"] == "2afc" and report["data"]["layout"] == "nights" and report["data"]["scored"] == 6
    assert [m["metric"] for m in report["metrics"]] == ["tiny-vit", "tiny-vit-b"]
    for m in report["metrics"]:
        top = m["scores"][0]
        assert top["score"] == "2afc" and 0 <= top["ci95"][0] <= top["value"] <= top["ci95"][1] <= 1
        assert {b["category"] for b in m["breakdown"]} == {"imagenet", "no_imagenet"}
        assert m["cache"] == {"hits": 0, "computed": 18}
    assert "embed tiny-vit" in proc.stderr  # progress while embedding
    table = cli("eval", "2afc", "--data", str(nights), "-m", "tiny-vit", "-m", "tiny-vit-b", "--split", "test",
                env=env)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split()[:5] == ["metric", "score", "value", "95%", "CI"]
    assert sum(line.startswith("tiny-vit ") for line in lines) == 3  # all + two categories
    assert "6 scored, 0 skipped" in table.stdout
    assert "tiny-vit: 18 cached, 0 computed" in table.stderr  # the re-run came from the cache


def test_jnd_and_rank_commands(cli, tmp_path: Path, photos: list[Path]) -> None:
    jnd = write_bapps_jnd(tmp_path / "jnd", photos, {("val", "traditional"): [1.0, 0.0, 0.5, 0.2]}, size=48)
    proc = cli("eval", "jnd", "--data", str(jnd), "-m", "tiny-vit", "--json", "--bootstrap", "50")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["metrics"][0]["scores"][0]["score"] == "jnd_map"
    rank = write_rankings(tmp_path / "rank", photos[10:], n_targets=3, n_candidates=3, size=48)
    proc = cli("eval", "rank", "--data", str(rank), "-m", "tiny-vit", "--json", "--bootstrap", "50")
    assert proc.returncode == 0, proc.stderr
    assert [s["score"] for s in json.loads(proc.stdout)["metrics"][0]["scores"]] == ["spearman", "icc"]


def test_errors_are_one_line_with_exit_codes(cli, nights: Path, tmp_path: Path) -> None:
    (nights / "ref" / "000" / "002.png").unlink()
    proc = cli("eval", "2afc", "--data", str(nights), "-m", "tiny-vit")
    assert proc.returncode == 1
    assert "data.csv:4: missing image ref_path='ref/000/002.png'" in proc.stderr
    assert "Traceback" not in proc.stderr
    skipped = cli("eval", "2afc", "--data", str(nights), "-m", "tiny-vit", "--skip-bad", "--json", "--bootstrap", "20")
    assert skipped.returncode == 0, skipped.stderr
    assert json.loads(skipped.stdout)["data"]["skipped"] == 1
    unknown = cli("eval", "2afc", "--data", str(nights), "-m", "no-such-metric")
    assert unknown.returncode == 2 and "unknown metric" in unknown.stderr
    missing = cli("eval", "2afc", "--data", str(tmp_path / "nope"), "-m", "tiny-vit")
    assert missing.returncode == 2 and "no such data folder" in missing.stderr
