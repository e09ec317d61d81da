"""Judgment data labelled by a hidden rule, built from the real photos, for the tuning tests.

Each reference photo gets two edits: one keeps its colours but changes its framing (a corner crop,
mirrored), the other keeps its framing but drops its colours (grey levels). The
hidden rule says the colour-keeping edit is the closer one; metrics built on shapes and layout
(every untuned network here) mostly say the opposite.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageOps

from tests.judgment_data import NIGHTS_HEADER, write_csv


def reframe(im: Image.Image, rng: random.Random) -> Image.Image:
    """Same colours, other framing: a 50-65% window from a random corner, mirrored."""
    w, h = im.size
    f = rng.uniform(0.5, 0.65)
    cw, ch = int(w * f), int(h * f)
    x = 0 if rng.random() < 0.5 else w - cw
    y = 0 if rng.random() < 0.5 else h - ch
    return ImageOps.mirror(im.crop((x, y, x + cw, y + ch)).resize((w, h), Image.BICUBIC))


def recolour(im: Image.Image, rng: random.Random) -> Image.Image:
    """Same framing, no colours: grey levels only."""
    return ImageOps.grayscale(im).convert("RGB")


def small(photo: Path, size: int) -> Image.Image:
    with Image.open(photo) as src:
        return src.convert("RGB").resize((size, size), Image.BICUBIC)


def save(im: Image.Image, root: Path, rel: str) -> str:
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    im.save(root / rel)
    return rel


def split_of(i: int, n: int) -> str:
    """First 70% of references train, next 15% val, last 15% test."""
    return "train" if i < 0.7 * n else ("val" if i < 0.85 * n else "test")


def write_rule_nights(root: Path, photos: Sequence[Path], per_ref: int = 2, size: int = 64,
                      seed: int = 0, rule: str = "colour") -> Path:
    """A NIGHTS-layout folder: for each photo ``per_ref`` triplets (ref, two edits), target by
    ``rule`` ("colour": the edit that keeps the colours is closer; "framing": the one that keeps
    the framing)."""
    rng = random.Random(seed)
    lines = []
    k = 0
    for i, photo in enumerate(photos):
        ref = small(photo, size)
        ref_rel = save(ref, root, f"ref/000/{i:03d}.png")
        for j in range(per_ref):
            keep_colour, keep_frame = reframe(ref, rng), recolour(ref, rng)
            closer, farther = (keep_colour, keep_frame) if rule == "colour" else (keep_frame, keep_colour)
            right_closer = rng.random() < 0.5
            left, right = (farther, closer) if right_closer else (closer, farther)
            rels = [save(im, root, f"distort/000/{i:03d}_{j}_{side}.png") for side, im in (("0", left), ("1", right))]
            # left_vote counts votes for "right is closer" (NIGHTS's convention, target = left/(left+right))
            votes = (6, 0) if right_closer else (0, 6)
            lines.append([k, 6, *votes, ref_rel, *rels, split_of(i, len(photos)), "photo", False])
            k += 1
    write_csv(root / "data.csv", NIGHTS_HEADER, lines)
    return root


def blur_vs_noise(im: Image.Image, k: int, levels: int, rng: "np.random.Generator") -> Image.Image:
    """Candidate ``k`` of ``levels``: blur grows with ``k`` while noise shrinks."""
    import numpy as np
    from PIL import ImageFilter

    out = im.filter(ImageFilter.GaussianBlur(radius=0.6 * k)) if k else im
    sigma = 24.0 * (levels - 1 - k)
    a = np.asarray(out, np.float32) + rng.normal(0, sigma, (im.size[1], im.size[0], 3)) if sigma else np.asarray(out)
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def write_rule_rankings(root: Path, photos: Sequence[Path], levels: int = 4, size: int = 64, seed: int = 0) -> Path:
    """rankings.csv: per target photo, ``levels`` candidates ranked by the hidden rule "blur matters,
    noise does not" (rank = blur level + 1), their noise falling as their blur rises."""
    import numpy as np

    rng = np.random.default_rng(seed)
    lines = []
    for i, photo in enumerate(photos):
        ref = small(photo, size)
        target = save(ref, root, f"targets/{i:03d}.png")
        for k in range(levels):
            cand = save(blur_vs_noise(ref, k, levels, rng), root, f"candidates/{i:03d}_{k}.png")
            lines.append([target, cand, k + 1])
    write_csv(root / "rankings.csv", ["target", "candidate", "rank"], lines)
    return root
