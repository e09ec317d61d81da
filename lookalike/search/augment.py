"""Known edits of a photo, for copy-detection benchmarks and near-duplicate calibration.

Each transformation maps an RGB ``PIL.Image`` and a ``numpy`` random generator to a new RGB image;
parameters are drawn from fixed ranges so a seed reproduces the whole query set.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

Transform = Callable[[Image.Image, np.random.Generator], Image.Image]


def jpeg(img: Image.Image, quality: int) -> Image.Image:
    """Re-encode as JPEG at ``quality`` and decode again."""
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def crop_fraction(img: Image.Image, keep: float, fx: float, fy: float) -> Image.Image:
    """Keep a ``keep`` x ``keep`` fraction of the sides, placed at relative offsets ``fx``, ``fy``."""
    w, h = img.size
    cw, ch = max(1, round(w * keep)), max(1, round(h * keep))
    left, top = round((w - cw) * fx), round((h - ch) * fy)
    return img.crop((left, top, left + cw, top + ch))


def downscale(img: Image.Image, factor: float) -> Image.Image:
    w, h = img.size
    return img.resize((max(8, round(w * factor)), max(8, round(h * factor))), Image.Resampling.BILINEAR)


def colour_jitter(img: Image.Image, brightness: float, contrast: float, saturation: float,
                  hue: float) -> Image.Image:
    """Brightness / contrast / saturation factors (1 = unchanged) and a hue shift in turns."""
    out = ImageEnhance.Brightness(img).enhance(brightness)
    out = ImageEnhance.Contrast(out).enhance(contrast)
    out = ImageEnhance.Color(out).enhance(saturation)
    if hue:
        h, s, v = out.convert("HSV").split()
        shift = round(hue * 255)
        h = h.point(lambda x: (x + shift) % 256)
        out = Image.merge("HSV", (h, s, v)).convert("RGB")
    return out


def rotate_crop(img: Image.Image, degrees: float) -> Image.Image:
    """Rotate and crop to the largest centred rectangle without empty corners."""
    w, h = img.size
    rot = img.rotate(degrees, resample=Image.Resampling.BICUBIC, expand=False)
    a = np.deg2rad(abs(degrees))
    # scale of the inscribed axis-aligned rectangle of the same aspect ratio
    s = min(w, h) / (min(w, h) * np.cos(a) + max(w, h) * np.sin(a))
    cw, ch = max(8, int(w * s)), max(8, int(h * s))
    left, top = (w - cw) // 2, (h - ch) // 2
    return rot.crop((left, top, left + cw, top + ch))


def _crop(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    return crop_fraction(img, rng.uniform(0.7, 0.85), rng.uniform(0, 1), rng.uniform(0, 1))


def _downscale(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    return downscale(img, rng.uniform(0.2, 0.4))


def _jpeg(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    return jpeg(img, int(rng.integers(15, 40)))


def _jitter(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    return colour_jitter(img, rng.uniform(0.7, 1.3), rng.uniform(0.7, 1.3), rng.uniform(0.6, 1.4),
                         rng.uniform(-0.05, 0.05))


def _flip(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    return ImageOps.mirror(img)


def _rotate(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    return rotate_crop(img, rng.choice([-1, 1]) * rng.uniform(5, 15))


def _combo(img: Image.Image, rng: np.random.Generator) -> Image.Image:
    out = crop_fraction(img, rng.uniform(0.8, 0.9), rng.uniform(0, 1), rng.uniform(0, 1))
    out = colour_jitter(out, rng.uniform(0.85, 1.15), rng.uniform(0.85, 1.15), rng.uniform(0.8, 1.2), 0.0)
    out = downscale(out, rng.uniform(0.4, 0.6))
    return jpeg(out, int(rng.integers(40, 70)))


#: The copy-detection query transformations (benchmarks/copy_detection.py), in report order.
TRANSFORMS: dict[str, Transform] = {
    "crop": _crop,
    "downscale": _downscale,
    "jpeg": _jpeg,
    "jitter": _jitter,
    "flip": _flip,
    "rotate": _rotate,
    "combo": _combo,
}

#: Edits that keep the photo as it was (the "same photo, re-encoded" band of dupes calibration).
REENCODE: dict[str, Transform] = {
    "jpeg90": lambda img, rng: jpeg(img, 90),
    "jpeg70": lambda img, rng: jpeg(img, 70),
    "scale70": lambda img, rng: jpeg(downscale(img, 0.7), 85),
    "half": lambda img, rng: jpeg(downscale(img, 0.5), 90),
}

#: Edits of the same photo (the "same photo, edited/cropped" band). A quarter-size thumbnail is here,
#: not among re-encodings: many photos are 320-640 px wide, so it leaves 80-160 px of detail.
EDITS: dict[str, Transform] = {
    "crop90": lambda img, rng: crop_fraction(img, 0.9, rng.uniform(0, 1), rng.uniform(0, 1)),
    "crop80": lambda img, rng: crop_fraction(img, 0.8, rng.uniform(0, 1), rng.uniform(0, 1)),
    "jitter": _jitter,
    "rotate5": lambda img, rng: rotate_crop(img, rng.choice([-1, 1]) * 5.0),
    "thumbnail": lambda img, rng: jpeg(downscale(img, 0.25), 85),
    "combo": _combo,
}


def reframe(img: Image.Image, rng: np.random.Generator) -> tuple[Image.Image, Image.Image]:
    """Two different framings of one scene: opposite corners, each keeping 60% of the sides."""
    fx, fy = (0.0, 1.0) if rng.uniform() < 0.5 else (1.0, 0.0)
    return crop_fraction(img, 0.6, fx, fy), crop_fraction(img, 0.6, 1 - fx, 1 - fy)


def apply(name: str, img: Image.Image, seed: int | Sequence[int]) -> Image.Image:
    """Apply the transformation ``name`` (from TRANSFORMS, ``reencode:``REENCODE or ``edit:``EDITS)
    with parameters drawn from ``numpy.random.default_rng(seed)``."""
    table = {**TRANSFORMS, **{f"reencode:{k}": v for k, v in REENCODE.items()},
             **{f"edit:{k}": v for k, v in EDITS.items()}}
    if name not in table:
        raise KeyError(f"unknown transformation {name!r}; known: {sorted(table)}")
    return table[name](img, np.random.default_rng(seed)).convert("RGB")
