"""Writing a study's answers: long-format CSV/JSON, and the NIGHTS layout for 2AFC studies.

NIGHTS (DreamSim's dataset): ``data.csv`` with ``id, votes, left_vote, right_vote, ref_path,
left_path, right_path, split, prompt, is_imagenet``; paths relative to the folder, reference images
under ``ref/`` and the two candidates under ``distort/``. One row per main 2AFC trial answered by
an included participant; ``votes`` counts its answers. ``left_vote`` and ``right_vote`` follow
NIGHTS as its reference code reads it (column ``left_vote`` is the target, 1 = the right image is
closer): ``left_vote`` counts the answers that chose the right image (votes against the left one),
``right_vote`` those that chose the left image. :mod:`lookalike.judgments.datasets` reads it back. Splits (train 80%, val 10%, test 10%) are drawn per reference image, so a reference
never appears in two splits.
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

LONG_COLUMNS = ["study", "kind", "participant", "external_id", "prolific_pid", "study_id", "session_id",
                "trial_id", "role", "seq", "rank", "reference_id", "reference_sha256", "choice",
                "choice_slot", "chosen_content_id", "chosen_metrics", "correct_slot", "shown",
                "shown_at", "answered_at", "response_ms", "too_fast"]
NIGHTS_COLUMNS = ["id", "votes", "left_vote", "right_vote", "ref_path", "left_path", "right_path", "split",
                  "prompt", "is_imagenet"]
SPLITS = (("train", 0.8), ("val", 0.9), ("test", 1.0))


def write_long(rows: list[dict[str, Any]], out: Path, fmt: str = "csv") -> Path:
    """``out/answers.csv`` or ``out/answers.json``: one record per answer."""
    out.mkdir(parents=True, exist_ok=True)
    if fmt == "json":
        path = out / "answers.json"
        path.write_text(json.dumps(rows, indent=1, default=str) + "\n")
        return path
    path = out / "answers.csv"
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, LONG_COLUMNS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({**r, "chosen_metrics": ";".join(r["chosen_metrics"]),
                        "shown": json.dumps(r["shown"])})
    return path


def split_of(reference_sha256: str, seed: int = 0) -> str:
    """train/val/test by a hash of the reference image (stable, independent of answer order)."""
    h = hashlib.sha256(f"{seed}:{reference_sha256}".encode()).digest()
    u = int.from_bytes(h[:8], "big") / 2**64
    return next(name for name, upto in SPLITS if u < upto)


def nights_rows(rows: Iterable[dict[str, Any]], excluded: set[str] = frozenset()) -> list[dict[str, Any]]:
    """Vote counts per main 2AFC trial: reference, left (slot 0) and right (slot 1) content."""
    trials: dict[int, dict[str, Any]] = {}
    for r in rows:
        if r["role"] != "main" or r["participant"] in excluded or r["choice_slot"] is None:
            continue
        by_slot = {item["slot"]: item for item in r["shown"]}
        t = trials.setdefault(r["trial_id"], {
            "trial_id": r["trial_id"], "reference_id": r["reference_id"], "reference_sha256": r["reference_sha256"],
            "left_id": by_slot[0]["content_id"], "right_id": by_slot[1]["content_id"],
            "votes": 0, "left_vote": 0, "right_vote": 0})
        t["votes"] += 1
        t["right_vote" if r["choice_slot"] == 0 else "left_vote"] += 1  # NIGHTS: votes *against* a side
    return [trials[k] for k in sorted(trials)]


def write_nights(rows: list[dict[str, Any]], out: Path, content_path: Callable[[int], Path],
                 excluded: set[str] = frozenset(), seed: int = 0) -> list[Path]:
    """The NIGHTS folder at ``out``: ``data.csv``, ``ref/``, ``distort/``. Returns data.csv."""
    (out / "ref").mkdir(parents=True, exist_ok=True)
    (out / "distort").mkdir(parents=True, exist_ok=True)
    records = []
    for n, t in enumerate(nights_rows(rows, excluded)):
        names = {}
        for key, cid, rel in (("ref_path", t["reference_id"], f"ref/{n:06d}"),
                              ("left_path", t["left_id"], f"distort/{n:06d}_0"),
                              ("right_path", t["right_id"], f"distort/{n:06d}_1")):
            src = content_path(cid)
            names[key] = rel + src.suffix.lower()
            shutil.copyfile(src, out / names[key])
        records.append({"id": n, "votes": t["votes"], "left_vote": t["left_vote"], "right_vote": t["right_vote"],
                        **names, "split": split_of(t["reference_sha256"], seed), "prompt": "",
                        "is_imagenet": False})
    path = out / "data.csv"
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, NIGHTS_COLUMNS)
        w.writeheader()
        w.writerows(records)
    return [path]
