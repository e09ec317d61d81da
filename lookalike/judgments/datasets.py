"""Readers of human-judgment data sets, each returning typed records.

Layouts (``DIR`` is what ``lookalike eval --data`` gets):

* **NIGHTS** (and lookalike's own 2AFC study exports): ``DIR/data.csv`` with columns ``id, votes,
  left_vote, right_vote, ref_path, left_path, right_path, split`` (and optionally ``prompt,
  is_imagenet``), image paths relative to ``DIR`` (``ref/000/000.png``, ``distort/000/000_0.png``).
  The target is ``left_vote / (left_vote + right_vote)`` (counts or shares both work), read as
  NIGHTS's reference code reads it: DreamSim's loader takes column 2 (``left_vote``) as the target
  and its training, validation and ``evaluation/score.py`` treat 1 as "the right image (``_1``) is
  closer". So ``left_vote`` counts the votes *against* the left image; lookalike's study export
  writes it that way, so the reference code and this reader both read it right.
  ``min_votes=6`` is the reference's ``votes >= 6`` filter. Splits ``train``, ``val``, ``test``,
  plus ``test_imagenet`` / ``test_no_imagenet`` (the test halves by ``is_imagenet``).
* **BAPPS 2AFC**: ``<split>/<subset>/{ref,p0,p1,judge}/NAME.*`` with ``judge/NAME.npy`` the share of
  people who preferred ``p1``. ``DIR`` may be the ``2afc`` root, one split or one subset folder.
* **BAPPS JND**: ``<split>/<subset>/{p0,p1,same}/NAME.*`` with ``same/NAME.npy`` the share of
  people who said the two images were the same.
* **Rankings** (CLPIPS-style): ``DIR/rankings.csv`` with columns ``target, candidate, rank`` and
  optionally ``rater, split, category``; paths relative to ``DIR``; ``rank`` 1 = most similar to the
  target (ties allowed); one row per (rater, target, candidate); every (rater, target) ranks at
  least two candidates.

Malformed rows and missing images raise :class:`JudgmentDataError` naming the file and row; with
``strict=False`` such rows are skipped instead, and every skip is counted (:attr:`Skip`).
"""

from __future__ import annotations

import csv
import math
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from lookalike.errors import LookalikeError, UsageError
from lookalike.files import is_image_name

NIGHTS_COLUMNS = ("id", "votes", "left_vote", "right_vote", "ref_path", "left_path", "right_path", "split")
NIGHTS_SPLITS = ("train", "val", "test", "test_imagenet", "test_no_imagenet")
RANK_COLUMNS = ("target", "candidate", "rank")
RANKINGS_FILE = "rankings.csv"


class JudgmentDataError(LookalikeError):
    """A judgment data set is malformed: the message names the file and row."""


@dataclass(frozen=True)
class Triplet:
    """A 2AFC judgment: which of ``left`` / ``right`` looks more like ``ref``.

    ``target`` is the share of people who judged ``right`` closer; ``group`` clusters triplets that
    share a reference image (bootstrap unit); ``source`` is ``file:row`` for messages."""

    ref: str
    left: str
    right: str
    target: float
    id: str
    split: str = ""
    category: str = ""
    group: str = ""
    source: str = ""


@dataclass(frozen=True)
class Pair:
    """A JND judgment: ``same`` is the share of people who saw no difference between a and b."""

    a: str
    b: str
    same: float
    id: str
    split: str = ""
    category: str = ""
    source: str = ""


@dataclass(frozen=True)
class Ranked:
    """One candidate's human rank for one target (1 = most similar) by one rater."""

    target: str
    candidate: str
    rank: float
    rater: str = ""
    split: str = ""
    category: str = ""
    source: str = ""


@dataclass(frozen=True)
class Skip:
    """A row left out: where, and why."""

    source: str
    reason: str

    @property
    def kind(self) -> str:
        """The reason without its particulars, for counting (e.g. ``"missing image"``)."""
        for prefix in SKIP_KINDS:
            if self.reason.startswith(prefix):
                return prefix
        return self.reason.split(" (")[0]


SKIP_KINDS = ("malformed row", "malformed judgment", "missing image", "unreadable image", "empty")


@dataclass
class Judgments:
    """What a reader found: the records, the layout name, and what was left out and why."""

    layout: str
    root: str
    records: list[Triplet] | list[Pair] | list[Ranked]
    skipped: list[Skip] = field(default_factory=list)
    filtered: dict[str, int] = field(default_factory=dict)

    @property
    def image_paths(self) -> list[str]:
        """Every image the records use, first-seen order, no repeats."""
        seen: dict[str, None] = {}
        for r in self.records:
            for p in record_images(r):
                seen.setdefault(p, None)
        return list(seen)

    def summary(self) -> dict[str, object]:
        return {"layout": self.layout, "root": self.root, "records": len(self.records),
                "skipped": len(self.skipped), "skip_reasons": dict(Counter(s.kind for s in self.skipped)),
                "filtered": dict(self.filtered)}


def record_images(r: Triplet | Pair | Ranked) -> tuple[str, ...]:
    if isinstance(r, Triplet):
        return (r.ref, r.left, r.right)
    if isinstance(r, Pair):
        return (r.a, r.b)
    return (r.target, r.candidate)


class _Collector:
    """Raise at the first bad row (strict) or count it as skipped."""

    def __init__(self, strict: bool) -> None:
        self.strict = strict
        self.skipped: list[Skip] = []

    def bad(self, source: str, reason: str) -> None:
        if self.strict:
            raise JudgmentDataError(f"{source}: {reason}")
        self.skipped.append(Skip(source, reason))


def _image(root: Path, rel: str, what: str) -> str:
    rel = (rel or "").strip()
    if not rel:
        raise ValueError(f"empty {what}")
    path = root / rel
    if not path.is_file():
        raise ValueError(f"missing image {what}={rel!r} ({path} not found)")
    return str(path)


def _number(value: str | None, what: str) -> float:
    try:
        x = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{what} is not a number: {value!r}") from None
    if not math.isfinite(x):
        raise ValueError(f"{what} is not finite: {value!r}")
    return x


def _bool(value: str | None) -> bool | None:
    v = (value or "").strip().lower()
    if v in ("true", "1", "yes", "t"):
        return True
    if v in ("false", "0", "no", "f"):
        return False
    if v == "":
        return None
    raise ValueError(f"is_imagenet is not a boolean: {value!r}")


def _read_csv(path: Path, required: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    """Rows with their 1-based line numbers (header = line 1); raises on missing columns."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            header = [h.strip() for h in (reader.fieldnames or [])]
            missing = [c for c in required if c not in header]
            if missing:
                raise JudgmentDataError(f"{path}:1: missing column(s) {', '.join(missing)} "
                                        f"(header: {', '.join(header) or 'empty'})")
            reader.fieldnames = header
            rows = []
            for row in reader:
                extra = row.pop(None, None)  # type: ignore[call-overload]
                rows.append((reader.line_num, {**row, "__extra__": extra} if extra else row))
            return rows
    except OSError as exc:
        raise JudgmentDataError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    except (csv.Error, UnicodeDecodeError) as exc:
        raise JudgmentDataError(f"{path}: not a readable CSV ({exc})") from exc


# -- NIGHTS ----------------------------------------------------------------------------------------


def read_nights(root: str | os.PathLike[str], split: str | None = None, min_votes: int | None = None,
                strict: bool = True) -> Judgments:
    """NIGHTS ``data.csv`` (or a lookalike 2AFC study export) as :class:`Triplet` records."""
    root = Path(root)
    csv_path = root / "data.csv"
    if not csv_path.is_file():
        raise JudgmentDataError(f"{csv_path}: not found (a NIGHTS folder holds data.csv, ref/, distort/)")
    if split is not None and split not in NIGHTS_SPLITS:
        raise UsageError(f"unknown NIGHTS split {split!r} (one of {', '.join(NIGHTS_SPLITS)})")
    col = _Collector(strict)
    records: list[Triplet] = []
    filtered: Counter[str] = Counter()
    for line, row in _read_csv(csv_path, NIGHTS_COLUMNS):
        source = f"{csv_path}:{line}"
        try:
            if row.get("__extra__"):
                raise ValueError("more fields than the header has")
            votes = _number(row["votes"], "votes")
            lv, rv = _number(row["left_vote"], "left_vote"), _number(row["right_vote"], "right_vote")
            if lv < 0 or rv < 0 or lv + rv <= 0:
                raise ValueError(f"left_vote={lv:g} and right_vote={rv:g} must be >= 0 and not both 0")
            row_split = (row["split"] or "").strip()
            if not row_split:
                raise ValueError("empty split")
            imagenet = _bool(row.get("is_imagenet"))
        except ValueError as exc:
            col.bad(source, f"malformed row: {exc}")
            continue
        if min_votes is not None and votes < min_votes:
            filtered[f"votes < {min_votes}"] += 1
            continue
        if split is not None and not _split_matches(split, row_split, imagenet):
            filtered["other split"] += 1
            continue
        try:
            ref = _image(root, row["ref_path"], "ref_path")
            left = _image(root, row["left_path"], "left_path")
            right = _image(root, row["right_path"], "right_path")
        except ValueError as exc:
            col.bad(source, str(exc))
            continue
        category = "" if imagenet is None else ("imagenet" if imagenet else "no_imagenet")
        records.append(Triplet(ref, left, right, lv / (lv + rv), (row["id"] or "").strip() or str(line),
                               row_split, category, group=ref, source=source))
    return Judgments("nights", str(root), records, col.skipped, dict(filtered))


def _split_matches(wanted: str, split: str, imagenet: bool | None) -> bool:
    if wanted in ("test_imagenet", "test_no_imagenet"):
        if split != "test":
            return False
        if imagenet is None:
            raise JudgmentDataError(f"split {wanted!r} needs the is_imagenet column")
        return imagenet == (wanted == "test_imagenet")
    return split == wanted


# -- BAPPS -----------------------------------------------------------------------------------------


def _subset_dirs(root: Path, parts: tuple[str, ...]) -> list[Path]:
    """Folders holding all of ``parts``: ``root`` itself, its children or its grandchildren
    (a subset folder, a split folder, or the 2afc/jnd root)."""
    def holds(d: Path) -> bool:
        return all((d / p).is_dir() for p in parts)

    def children(d: Path) -> list[Path]:
        return sorted(p for p in d.iterdir() if p.is_dir()) if d.is_dir() else []

    if holds(root):
        return [root]
    found = [d for d in children(root) if holds(d)]
    for child in children(root):
        found += [d for d in children(child) if holds(d)]
    return found


def _images_by_stem(folder: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(folder.iterdir()) if p.is_file() and is_image_name(p.name)}


def _load_share(path: Path, what: str) -> float:
    import numpy as np

    try:
        value = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ValueError(f"not a readable .npy file ({exc})") from None
    if value.size != 1 or not np.issubdtype(value.dtype, np.number):
        raise ValueError(f"expected one number, found shape {value.shape} dtype {value.dtype}")
    x = float(value.reshape(-1)[0])
    if not (0.0 <= x <= 1.0):
        raise ValueError(f"{what} share {x:g} is outside [0, 1]")
    return x


def _bapps(root: Path, judge_dir: str, images: tuple[str, ...], split: str | None, strict: bool,
           layout: str) -> tuple[list[tuple[str, str, dict[str, str], float, str]], list[Skip], dict[str, int]]:
    subsets = _subset_dirs(root, (*images, judge_dir))
    if not subsets:
        raise JudgmentDataError(f"{root}: no BAPPS {layout} folders (<split>/<subset>/"
                                f"{{{','.join((*images, judge_dir))}}}) found")
    col = _Collector(strict)
    out = []
    filtered: Counter[str] = Counter()
    for sub in subsets:
        sub_split = sub.parent.name
        if split is not None and sub_split != split:
            filtered["other split"] += sum(1 for _ in (sub / judge_dir).glob("*.npy"))
            continue
        by_folder = {name: _images_by_stem(sub / name) for name in images}
        judged = set()
        for jpath in sorted((sub / judge_dir).glob("*.npy")):
            stem = jpath.stem
            judged.add(stem)
            try:
                share = _load_share(jpath, judge_dir)
            except ValueError as exc:
                col.bad(str(jpath), f"malformed judgment: {exc}")
                continue
            missing = [name for name in images if stem not in by_folder[name]]
            if missing:
                col.bad(str(jpath), "missing image " + ", ".join(f"{m}/{stem}.*" for m in missing))
                continue
            out.append((sub_split, sub.name, {n: str(by_folder[n][stem]) for n in images}, share, str(jpath)))
        orphans = set().union(*(set(v) for v in by_folder.values())) - judged
        for stem in sorted(orphans):
            col.skipped.append(Skip(str(sub / judge_dir / f"{stem}.npy"), "no judgment file for these images"))
    return out, col.skipped, dict(filtered)


def read_bapps_2afc(root: str | os.PathLike[str], split: str | None = None, strict: bool = True) -> Judgments:
    """BAPPS 2AFC folders as :class:`Triplet` records (target = judge = share preferring p1)."""
    root = Path(root)
    rows, skipped, filtered = _bapps(root, "judge", ("ref", "p0", "p1"), split, strict, "2AFC")
    records = [Triplet(p["ref"], p["p0"], p["p1"], share, f"{cat}/{Path(src).stem}", sp, cat,
                       group=p["ref"], source=src) for sp, cat, p, share, src in rows]
    return Judgments("bapps-2afc", str(root), records, skipped, filtered)


def read_bapps_jnd(root: str | os.PathLike[str], split: str | None = None, strict: bool = True) -> Judgments:
    """BAPPS JND folders as :class:`Pair` records (same = share saying "same")."""
    root = Path(root)
    rows, skipped, filtered = _bapps(root, "same", ("p0", "p1"), split, strict, "JND")
    records = [Pair(p["p0"], p["p1"], share, f"{cat}/{Path(src).stem}", sp, cat, source=src)
               for sp, cat, p, share, src in rows]
    return Judgments("bapps-jnd", str(root), records, skipped, filtered)


# -- rankings --------------------------------------------------------------------------------------


def read_rankings(root: str | os.PathLike[str], split: str | None = None, strict: bool = True) -> Judgments:
    """``rankings.csv`` (see the module docstring) as :class:`Ranked` records."""
    root = Path(root)
    csv_path = root / RANKINGS_FILE if root.is_dir() else root
    base = root if root.is_dir() else root.parent
    if not csv_path.is_file():
        raise JudgmentDataError(f"{csv_path}: not found (rankings need {RANKINGS_FILE}: "
                                "target,candidate,rank[,rater,split,category])")
    col = _Collector(strict)
    records: list[Ranked] = []
    filtered: Counter[str] = Counter()
    seen: dict[tuple[str, str, str], str] = {}
    for line, row in _read_csv(csv_path, RANK_COLUMNS):
        source = f"{csv_path}:{line}"
        try:
            if row.get("__extra__"):
                raise ValueError("more fields than the header has")
            rank = _number(row["rank"], "rank")
            if rank <= 0:
                raise ValueError(f"rank must be positive, got {rank:g}")
        except ValueError as exc:
            col.bad(source, f"malformed row: {exc}")
            continue
        row_split = (row.get("split") or "").strip()
        if split is not None and row_split != split:
            filtered["other split"] += 1
            continue
        try:
            target = _image(base, row["target"], "target")
            cand = _image(base, row["candidate"], "candidate")
        except ValueError as exc:
            col.bad(source, str(exc))
            continue
        rater = (row.get("rater") or "").strip()
        key = (rater, target, cand)
        if key in seen:
            col.bad(source, f"candidate ranked twice for this target and rater (first at {seen[key]})")
            continue
        seen[key] = source
        records.append(Ranked(target, cand, rank, rater, row_split, (row.get("category") or "").strip(), source))
    sizes = Counter((r.rater, r.target) for r in records)
    lonely = [r for r in records if sizes[(r.rater, r.target)] < 2]
    for r in lonely:
        col.bad(r.source, "only one candidate ranked for this target and rater")
    records = [r for r in records if sizes[(r.rater, r.target)] >= 2]
    return Judgments("rankings", str(root), records, col.skipped, dict(filtered))


# -- detection -------------------------------------------------------------------------------------

LAYOUTS = {"2afc": ("nights", "bapps-2afc"), "jnd": ("bapps-jnd",), "rank": ("rankings",)}


def detect_layout(root: str | os.PathLike[str], task: str) -> str:
    """The layout of ``root`` for ``task`` (2afc, jnd, rank), or a :class:`JudgmentDataError`."""
    root = Path(root)
    if not root.exists():
        raise UsageError(f"no such data folder: {root}")
    if task == "2afc":
        if (root / "data.csv").is_file():
            return "nights"
        if _subset_dirs(root, ("ref", "p0", "p1", "judge")):
            return "bapps-2afc"
        raise JudgmentDataError(f"{root}: neither a NIGHTS folder (data.csv) nor BAPPS 2AFC folders "
                                "(<split>/<subset>/{ref,p0,p1,judge})")
    if task == "jnd":
        if _subset_dirs(root, ("p0", "p1", "same")):
            return "bapps-jnd"
        raise JudgmentDataError(f"{root}: no BAPPS JND folders (<split>/<subset>/{{p0,p1,same}})")
    if task == "rank":
        return "rankings"
    raise UsageError(f"unknown task {task!r} (2afc, jnd or rank)")


def read(root: str | os.PathLike[str], task: str, layout: str | None = None, split: str | None = None,
         min_votes: int | None = None, strict: bool = True) -> Judgments:
    """Read ``root`` for ``task`` in ``layout`` (detected when ``None``)."""
    layout = layout or detect_layout(root, task)
    if layout not in LAYOUTS.get(task, ()):
        raise UsageError(f"layout {layout!r} does not hold {task} judgments "
                         f"(use {', '.join(LAYOUTS.get(task, ()))})")
    if min_votes is not None and layout != "nights":
        raise UsageError("--min-votes applies to NIGHTS-layout data only")
    if layout == "nights":
        data = read_nights(root, split, min_votes, strict)
    elif layout == "bapps-2afc":
        data = read_bapps_2afc(root, split, strict)
    elif layout == "bapps-jnd":
        data = read_bapps_jnd(root, split, strict)
    else:
        data = read_rankings(root, split, strict)
    if not data.records:
        detail = f" for split {split!r}" if split else ""
        raise JudgmentDataError(f"{root}: no usable judgments{detail} "
                                f"({len(data.skipped)} skipped, filtered: {data.filtered or 'none'})")
    return data
