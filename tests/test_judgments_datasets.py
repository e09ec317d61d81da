"""Readers on fixtures in the exact published layouts, built from the real photos."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from lookalike.errors import UsageError
from lookalike.judgments.datasets import (JudgmentDataError, Pair, Ranked, Triplet, detect_layout, read,
                                          read_bapps_2afc, read_bapps_jnd, read_nights, read_rankings)
from tests.judgment_data import (NIGHTS_HEADER, write_bapps_2afc, write_bapps_jnd, write_csv, write_nights,
                                 write_rankings)

ROWS = [
    {"votes": 6, "left_vote": 1, "right_vote": 0, "split": "train", "is_imagenet": True},
    {"votes": 7, "left_vote": 0, "right_vote": 1, "split": "val", "is_imagenet": False},
    {"votes": 5, "left_vote": 0, "right_vote": 1, "split": "test", "is_imagenet": True},
    {"votes": 9, "left_vote": 1, "right_vote": 0, "split": "test", "is_imagenet": True},
    {"votes": 10, "left_vote": 0, "right_vote": 1, "split": "test", "is_imagenet": False},
    {"votes": 3, "left_vote": 1, "right_vote": 2, "split": "test", "is_imagenet": False},  # soft: 1/3 of votes say the right image is closer
]


@pytest.fixture
def nights(tmp_path: Path, photos: list[Path]) -> Path:
    return write_nights(tmp_path / "nights", photos, ROWS)


def test_nights_reads_the_published_layout(nights: Path) -> None:
    assert sorted(p.name for p in nights.iterdir()) == ["data.csv", "distort", "ref"]
    assert (nights / "ref" / "000" / "000.png").is_file() and (nights / "distort" / "000" / "000_1.png").is_file()
    data = read_nights(nights)
    assert data.layout == "nights" and len(data.records) == 6 and not data.skipped
    first = data.records[0]
    assert isinstance(first, Triplet)
    assert first.ref == str(nights / "ref/000/000.png") and first.right == str(nights / "distort/000/000_1.png")
    assert [r.target for r in data.records] == pytest.approx([1, 0, 0, 1, 0, 1 / 3])
    assert [r.category for r in data.records][:2] == ["imagenet", "no_imagenet"]
    assert first.group == first.ref and first.source.endswith("data.csv:2")
    assert detect_layout(nights, "2afc") == "nights"


def test_nights_splits_halves_and_vote_filter(nights: Path) -> None:
    assert [r.split for r in read_nights(nights, split="test").records] == ["test"] * 4
    assert len(read_nights(nights, split="test_imagenet").records) == 2
    assert len(read_nights(nights, split="test_no_imagenet").records) == 2
    kept = read_nights(nights, split="test", min_votes=6)
    assert len(kept.records) == 2 and kept.filtered == {"votes < 6": 2, "other split": 2}
    with pytest.raises(UsageError):
        read_nights(nights, split="testing")


def _rewrite(nights: Path, edit) -> None:
    import csv

    with open(nights / "data.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    edit(rows)
    write_csv(nights / "data.csv", rows[0], rows[1:])


def test_nights_malformed_row_names_file_and_row(nights: Path) -> None:
    _rewrite(nights, lambda rows: rows[3].__setitem__(2, "lots"))
    with pytest.raises(JudgmentDataError, match=r"data\.csv:4: malformed row: left_vote is not a number"):
        read_nights(nights)
    data = read_nights(nights, strict=False)
    assert len(data.records) == 5 and len(data.skipped) == 1
    assert data.skipped[0].source.endswith("data.csv:4")
    assert data.summary()["skip_reasons"] == {"malformed row": 1}


def test_nights_missing_image_and_missing_column(nights: Path) -> None:
    (nights / "distort" / "000" / "001_1.png").unlink()
    with pytest.raises(JudgmentDataError, match=r"data\.csv:3: missing image right_path='distort/000/001_1.png'"):
        read_nights(nights)
    assert len(read_nights(nights, strict=False).skipped) == 1
    _rewrite(nights, lambda rows: [r.pop(3) for r in rows])  # drop right_vote
    with pytest.raises(JudgmentDataError, match=r"data\.csv:1: missing column\(s\) right_vote"):
        read_nights(nights)


def test_nights_votes_must_be_sane(nights: Path) -> None:
    _rewrite(nights, lambda rows: rows[1].__setitem__(2, "-1"))
    with pytest.raises(JudgmentDataError, match=r"data\.csv:2: .*must be >= 0"):
        read_nights(nights)


def test_study_export_layout_reads_without_conversion(tmp_path: Path, photos: list[Path]) -> None:
    """A 2AFC study export: NIGHTS columns, flat ref/ and distort/ folders, vote counts from several
    participants, no prompt column, splits assigned by reference image."""
    root = tmp_path / "export"
    lines = []
    for i in range(4):
        for k, name in enumerate((f"ref/q{i}.png", f"distort/q{i}_a.png", f"distort/q{i}_b.png")):
            from tests.judgment_data import save_png

            save_png(photos[3 * i + k], root / name)
        lines.append([f"t{i}", 3, i % 3, 3 - i % 3, f"ref/q{i}.png", f"distort/q{i}_a.png",
                      f"distort/q{i}_b.png", "test" if i < 2 else "train", "", ""])
    write_csv(root / "data.csv", NIGHTS_HEADER, lines)
    data = read(root, "2afc")
    assert data.layout == "nights" and [r.id for r in data.records] == ["t0", "t1", "t2", "t3"]
    assert [r.target for r in data.records] == pytest.approx([0, 1 / 3, 2 / 3, 0])
    assert {r.category for r in data.records} == {""}


@pytest.fixture
def bapps(tmp_path: Path, photos: list[Path]) -> Path:
    return write_bapps_2afc(tmp_path / "2afc", photos, {("val", "traditional"): [0.0, 1.0, 0.6],
                                                         ("val", "cnn"): [0.2, 0.5],
                                                         ("train", "mix"): [1.0]})


def test_bapps_2afc_reads_the_published_layout(bapps: Path) -> None:
    assert sorted(p.name for p in (bapps / "val" / "cnn").iterdir()) == ["judge", "p0", "p1", "ref"]
    data = read_bapps_2afc(bapps)
    assert data.layout == "bapps-2afc" and len(data.records) == 6
    cats = {(r.split, r.category) for r in data.records}
    assert cats == {("val", "traditional"), ("val", "cnn"), ("train", "mix")}
    trad = [r for r in data.records if r.category == "traditional"]
    assert [r.target for r in trad] == pytest.approx([0.0, 1.0, 0.6])
    assert trad[0].left.endswith("traditional/p0/000000.png") and trad[0].right.endswith("p1/000000.png")
    assert len(read_bapps_2afc(bapps, split="val").records) == 5
    # a split folder or one subset folder reads as well
    assert len(read_bapps_2afc(bapps / "val").records) == 5
    assert len(read_bapps_2afc(bapps / "val" / "cnn").records) == 2
    assert detect_layout(bapps, "2afc") == "bapps-2afc"


def test_bapps_2afc_errors(bapps: Path) -> None:
    (bapps / "val" / "cnn" / "p1" / "000001.png").unlink()
    with pytest.raises(JudgmentDataError, match=r"cnn/judge/000001\.npy: missing image p1/000001"):
        read_bapps_2afc(bapps)
    data = read_bapps_2afc(bapps, strict=False)
    assert len(data.records) == 5 and len(data.skipped) == 1
    np.save(bapps / "val" / "traditional" / "judge" / "000002.npy", np.array([1.7]))
    with pytest.raises(JudgmentDataError, match=r"traditional/judge/000002\.npy: malformed judgment.*outside"):
        read_bapps_2afc(bapps / "val" / "traditional")
    (bapps / "val" / "traditional" / "judge" / "000001.npy").write_bytes(b"not numpy")
    with pytest.raises(JudgmentDataError, match=r"000001\.npy: malformed judgment: not a readable"):
        read_bapps_2afc(bapps / "val" / "traditional")
    assert len(read_bapps_2afc(bapps, strict=False).skipped) == 3


def test_bapps_jnd_reads_the_published_layout(tmp_path: Path, photos: list[Path]) -> None:
    root = write_bapps_jnd(tmp_path / "jnd", photos, {("val", "traditional"): [0.0, 1.0, 0.5],
                                                      ("val", "cnn"): [0.25]})
    data = read(root, "jnd")
    assert data.layout == "bapps-jnd" and len(data.records) == 4
    assert isinstance(data.records[0], Pair)
    assert sorted(r.same for r in data.records) == pytest.approx([0.0, 0.25, 0.5, 1.0])
    shutil.rmtree(root / "val" / "cnn" / "p0")
    assert len(read_bapps_jnd(root).records) == 3  # a subset without p0/ is not a JND folder
    with pytest.raises(JudgmentDataError, match="no BAPPS JND folders"):
        read_bapps_jnd(tmp_path / "nothing-here")


def test_rankings_layout_and_errors(tmp_path: Path, photos: list[Path]) -> None:
    root = write_rankings(tmp_path / "rank", photos, n_targets=3, n_candidates=4, raters=("ann", "bob"))
    data = read_rankings(root)
    assert data.layout == "rankings" and len(data.records) == 24
    assert isinstance(data.records[0], Ranked) and data.records[0].rater == "ann"
    import csv

    with open(root / "rankings.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    rows[5][2] = "first"
    rows.append(rows[1])  # a duplicate
    write_csv(root / "rankings.csv", rows[0], rows[1:])
    with pytest.raises(JudgmentDataError, match=r"rankings\.csv:6: malformed row: rank is not a number"):
        read_rankings(root)
    data = read_rankings(root, strict=False)
    reasons = sorted(s.reason.split(" (")[0] for s in data.skipped)
    assert reasons == ["candidate ranked twice for this target and rater", "malformed row: rank is not a number: 'first'"]


def test_read_errors_for_wrong_folders(tmp_path: Path, nights: Path) -> None:
    with pytest.raises(UsageError):
        read(tmp_path / "missing", "2afc")
    (tmp_path / "empty").mkdir()
    with pytest.raises(JudgmentDataError, match="neither a NIGHTS folder"):
        read(tmp_path / "empty", "2afc")
    with pytest.raises(JudgmentDataError, match="no usable judgments for split 'val'"):
        read(nights, "2afc", split="val", min_votes=8)
    with pytest.raises(UsageError, match="does not hold jnd"):
        read(nights, "jnd", layout="nights")
