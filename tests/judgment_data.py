"""Builders of judgment data sets in the published layouts, from the real photos (small PNGs)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

NIGHTS_HEADER = ["id", "votes", "left_vote", "right_vote", "ref_path", "left_path", "right_path", "split",
                 "prompt", "is_imagenet"]


def save_png(photo: Path, dest: Path, size: int = 64) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(photo) as im:
        im.convert("RGB").resize((size, size), Image.BICUBIC).save(dest)
    return dest


def write_nights(root: Path, photos: Sequence[Path], rows: Sequence[dict], size: int = 64) -> Path:
    """NIGHTS as published: ref/000/NNN.png, distort/000/NNN_0.png and NNN_1.png, data.csv.

    ``rows`` give per triplet ``votes, left_vote, right_vote, split, is_imagenet`` (and optionally
    ``prompt``); triplet ``i`` uses photos ``3i, 3i+1, 3i+2``."""
    lines = []
    for i, row in enumerate(rows):
        d, n = f"{i // 1000:03d}", f"{i % 1000:03d}"
        ref, left, right = f"ref/{d}/{n}.png", f"distort/{d}/{n}_0.png", f"distort/{d}/{n}_1.png"
        for rel, photo in zip((ref, left, right), photos[3 * i:3 * i + 3], strict=True):
            save_png(photo, root / rel, size)
        lines.append([row.get("id", i), row["votes"], row["left_vote"], row["right_vote"], ref, left, right,
                      row["split"], row.get("prompt", "An image of a thing"), row.get("is_imagenet", False)])
    write_csv(root / "data.csv", NIGHTS_HEADER, lines)
    return root


def write_csv(path: Path, header: Sequence[str], lines: Sequence[Sequence[object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(lines)


def _write_bapps(root: Path, photos: Sequence[Path], layout: dict[tuple[str, str], Sequence[float]],
                 images: tuple[str, ...], judge: str, size: int) -> Path:
    k = 0
    for (split, subset), shares in layout.items():
        base = root / split / subset
        for j, share in enumerate(shares):
            name = f"{j:06d}"
            for folder in images:
                save_png(photos[k], base / folder / f"{name}.png", size)
                k += 1
            (base / judge).mkdir(parents=True, exist_ok=True)
            np.save(base / judge / f"{name}.npy", np.array([share], dtype=np.float32))
    return root


def write_bapps_2afc(root: Path, photos: Sequence[Path], layout: dict[tuple[str, str], Sequence[float]],
                     size: int = 64) -> Path:
    """BAPPS 2AFC: <split>/<subset>/{ref,p0,p1}/NNNNNN.png and judge/NNNNNN.npy (share preferring p1)."""
    return _write_bapps(root, photos, layout, ("ref", "p0", "p1"), "judge", size)


def write_bapps_jnd(root: Path, photos: Sequence[Path], layout: dict[tuple[str, str], Sequence[float]],
                    size: int = 64) -> Path:
    """BAPPS JND: <split>/<subset>/{p0,p1}/NNNNNN.png and same/NNNNNN.npy (share saying "same")."""
    return _write_bapps(root, photos, layout, ("p0", "p1"), "same", size)


def write_rankings(root: Path, photos: Sequence[Path], n_targets: int, n_candidates: int,
                   raters: Sequence[str] = ("",), seed: int = 0, size: int = 64) -> Path:
    """rankings.csv with random human ranks of ``n_candidates`` per target (per rater)."""
    rng = np.random.default_rng(seed)
    lines = []
    k = 0
    for t in range(n_targets):
        target = f"targets/{t:03d}.png"
        save_png(photos[k], root / target, size)
        k += 1
        cands = []
        for c in range(n_candidates):
            cands.append(f"candidates/{t:03d}_{c}.png")
            save_png(photos[k], root / cands[-1], size)
            k += 1
        for rater in raters:
            for c, rank in zip(cands, rng.permutation(n_candidates) + 1, strict=True):
                lines.append([target, c, int(rank), rater])
    write_csv(root / "rankings.csv", ["target", "candidate", "rank", "rater"], lines)
    return root
