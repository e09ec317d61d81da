"""Training data for tuning: 2AFC triplets split into train / val / test.

Sources (``DIR`` is what ``lookalike tune --data`` gets):

* the layouts ``lookalike eval`` reads: NIGHTS and lookalike study exports (``data.csv``), BAPPS 2AFC
  (read as 2AFC triplets, their ``target`` used as it is: the share judging the right image closer),
  and rankings (``rankings.csv``): every two candidates of one target with different mean ranks
  become a triplet (the better-ranked one is "closer": a ranked pair for the margin ranking loss);
* a folder of class subfolders: triplets (reference, another image of its class, an image of
  another class), the same-class image on a random side.

Splits: rows labelled ``train`` / ``val`` / ``test`` keep their label; anything else (BAPPS's
``val`` folders are read as their split name, rankings and folders have none) is split at random by
reference image (``val_frac``, ``test_frac``), so no reference image is in two splits.
"""

from __future__ import annotations

import hashlib
import os
import random
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from lookalike.errors import UsageError
from lookalike.files import is_image_name
from lookalike.judgments.datasets import (JudgmentDataError, Ranked, Triplet, detect_layout, read,
                                          RANKINGS_FILE)

SPLITS = ("train", "val", "test")


@dataclass
class TuneData:
    """Triplets by split, where they came from, and (rankings) the ranked items of each split."""

    layout: str
    root: str
    train: list[Triplet]
    val: list[Triplet]
    test: list[Triplet]
    ranked: dict[str, list[Ranked]] = field(default_factory=dict)

    def split(self, name: str) -> list[Triplet]:
        return {"train": self.train, "val": self.val, "test": self.test}[name]

    @property
    def image_paths(self) -> list[str]:
        seen: dict[str, None] = {}
        for t in (*self.train, *self.val, *self.test):
            for p in (t.ref, t.left, t.right):
                seen.setdefault(p, None)
        for items in self.ranked.values():
            for r in items:
                seen.setdefault(r.target, None)
                seen.setdefault(r.candidate, None)
        return list(seen)

    def digest(self) -> str:
        """sha256 over every triplet (image contents, target, split): the data's identity."""
        from lookalike.files import sha256_file

        hashes = {p: sha256_file(p) for p in self.image_paths}
        h = hashlib.sha256()
        for name in SPLITS:
            for t in self.split(name):
                h.update(f"{name}|{hashes[t.ref]}|{hashes[t.left]}|{hashes[t.right]}|{t.target:.6f}\n".encode())
        return h.hexdigest()

    def summary(self) -> dict[str, object]:
        return {"layout": self.layout, "root": self.root,
                "triplets": {s: len(self.split(s)) for s in SPLITS}}


def _assign(groups: list[str], val_frac: float, test_frac: float, seed: int) -> dict[str, str]:
    """A split for each group, at random but reproducibly; val and test get at least one group
    each when there are three or more groups."""
    order = sorted(set(groups))
    random.Random(seed).shuffle(order)
    n = len(order)
    n_test = max(1 if n >= 3 and test_frac > 0 else 0, round(n * test_frac))
    n_val = max(1 if n >= 3 and val_frac > 0 else 0, round(n * val_frac))
    out = {}
    for i, g in enumerate(order):
        out[g] = "test" if i < n_test else ("val" if i < n_test + n_val else "train")
    return out


def _split_triplets(triplets: list[Triplet], val_frac: float, test_frac: float,
                    seed: int) -> dict[str, list[Triplet]]:
    labelled = [t for t in triplets if t.split in SPLITS]
    out: dict[str, list[Triplet]] = {s: [t for t in labelled if t.split == s] for s in SPLITS}
    rest = [t for t in triplets if t.split not in SPLITS]
    if rest or not out["val"]:
        pool = rest if rest else out["train"]
        if not rest:
            out["train"] = []
        where = _assign([t.group or t.ref for t in pool], val_frac, test_frac if rest else 0.0, seed)
        for t in pool:
            out[where[t.group or t.ref]].append(t)
    if not out["train"]:
        raise JudgmentDataError("no training triplets: give more data or smaller --val-frac/--test-frac")
    return out


def ranked_triplets(items: list[Ranked]) -> list[Triplet]:
    """Every pair of candidates of one target with different mean ranks, as a triplet whose
    ``target`` is 1 when the right one is ranked closer (better-ranked on the right half the time)."""
    ranks: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    meta: dict[str, Ranked] = {}
    for r in items:
        ranks[r.target][r.candidate].append(r.rank)
        meta.setdefault(r.target, r)
    out = []
    for target, cands in ranks.items():
        names = sorted(cands)
        mean = {c: sum(v) / len(v) for c, v in cands.items()}
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                if mean[a] == mean[b]:
                    continue
                close, far = (a, b) if mean[a] < mean[b] else (b, a)
                flip = (len(out) % 2) == 1
                left, right = (far, close) if flip else (close, far)
                out.append(Triplet(target, left, right, 1.0 if flip else 0.0, f"{target}|{a}|{b}",
                                   meta[target].split, meta[target].category, group=target,
                                   source=meta[target].source))
    return out


def class_folder_triplets(root: Path, per_image: int = 4, val_frac: float = 0.15,
                          test_frac: float = 0.15, seed: int = 0) -> dict[str, list[Triplet]]:
    """Triplets (reference, same-class image, other-class image) from ``root/<class>/*``; images
    are split first, so the three images of a triplet always come from one split."""
    classes = {d.name: sorted(str(p) for p in d.rglob("*") if p.is_file() and is_image_name(p.name))
               for d in sorted(root.iterdir()) if d.is_dir()}
    classes = {k: v for k, v in classes.items() if v}
    if len(classes) < 2:
        raise JudgmentDataError(f"{root}: a class-folder data set needs at least two subfolders of images")
    images = [p for v in classes.values() for p in v]
    where = _assign(images, val_frac, test_frac, seed)
    label = {p: c for c, v in classes.items() for p in v}
    rng = random.Random(seed + 1)
    out: dict[str, list[Triplet]] = {s: [] for s in SPLITS}
    for split in SPLITS:
        by_class = defaultdict(list)
        for p in images:
            if where[p] == split:
                by_class[label[p]].append(p)
        usable = [c for c, v in by_class.items() if len(v) >= 2]
        if not usable or len(by_class) < 2:
            continue
        for c in usable:
            others = [p for k, v in by_class.items() if k != c for p in v]
            for ref in by_class[c]:
                for k in range(per_image):
                    same = rng.choice([p for p in by_class[c] if p != ref])
                    other = rng.choice(others)
                    right_same = rng.random() < 0.5
                    left, right = (other, same) if right_same else (same, other)
                    out[split].append(Triplet(ref, left, right, 1.0 if right_same else 0.0,
                                              f"{Path(ref).name}:{k}", split, c, group=ref,
                                              source=f"{root}/{c}"))
    if not out["train"]:
        raise JudgmentDataError(f"{root}: too few images per class to draw training triplets")
    return out


def detect(root: str | os.PathLike[str]) -> str:
    """``nights``, ``bapps-2afc``, ``rankings`` or ``folders``."""
    root = Path(root)
    if not root.is_dir():
        raise UsageError(f"no such data folder: {root}")
    if (root / RANKINGS_FILE).is_file():
        return "rankings"
    try:
        return detect_layout(root, "2afc")
    except JudgmentDataError:
        pass
    if any(d.is_dir() for d in root.iterdir()):
        return "folders"
    raise JudgmentDataError(f"{root}: not NIGHTS (data.csv), BAPPS 2AFC, rankings ({RANKINGS_FILE}) "
                            "nor a folder of class subfolders")


def load(root: str | os.PathLike[str], layout: str | None = None, val_frac: float = 0.15,
         test_frac: float = 0.15, seed: int = 0, strict: bool = True, min_votes: int | None = None,
         per_image: int = 4) -> TuneData:
    """Read ``root`` and split it (see the module docstring)."""
    if not (0 <= val_frac < 1 and 0 <= test_frac < 1 and val_frac + test_frac < 1):
        raise UsageError("--val-frac and --test-frac must be in [0, 1) and sum to less than 1")
    layout = layout or detect(root)
    ranked: dict[str, list[Ranked]] = {}
    if layout == "folders":
        parts = class_folder_triplets(Path(root), per_image, val_frac, test_frac, seed)
    elif layout == "rankings":
        items = list(read(root, "rank", layout, strict=strict).records)  # type: ignore[arg-type]
        labelled = {r.target for r in items if r.split in SPLITS}
        where = _assign([r.target for r in items if r.target not in labelled], val_frac, test_frac, seed)
        items = [r if r.target in labelled else Ranked(r.target, r.candidate, r.rank, r.rater,
                                                        where[r.target], r.category, r.source)
                 for r in items]
        ranked = {s: [r for r in items if r.split == s] for s in SPLITS}
        parts = {s: ranked_triplets(ranked[s]) for s in SPLITS}
    else:
        data = read(root, "2afc", layout, min_votes=min_votes, strict=strict)
        parts = _split_triplets(list(data.records), val_frac, test_frac, seed)  # type: ignore[arg-type]
    if not parts["train"]:
        raise JudgmentDataError(f"{root}: no training triplets")
    return TuneData(layout, str(root), parts["train"], parts["val"], parts["test"], ranked)
