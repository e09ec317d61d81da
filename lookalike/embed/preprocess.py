"""Image -> network input. Pure functions, picklable, so worker processes can run them."""

from __future__ import annotations

import numpy as np
from PIL import Image

from lookalike.embed.config import Preprocess

_RESAMPLE = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "lanczos": Image.Resampling.LANCZOS,
}


def prepare(img: Image.Image, pre: Preprocess) -> np.ndarray:
    """Resize an RGB image as ``pre`` says; returns a ``(size, size, 3)`` uint8 array."""
    resample = _RESAMPLE[pre.interpolation]
    s = pre.size
    if pre.resize == "squash":
        out = img.resize((s, s), resample)
    elif pre.resize == "shorter-crop":
        w, h = img.size
        scale = s / min(w, h)
        nw, nh = max(s, round(w * scale)), max(s, round(h * scale))
        out = img.resize((nw, nh), resample)
        left, top = (nw - s) // 2, (nh - s) // 2
        out = out.crop((left, top, left + s, top + s))
    else:
        raise ValueError(f"unknown resize mode {pre.resize!r}")
    return np.asarray(out, dtype=np.uint8)


def draft_size(pres: list[Preprocess] | tuple[Preprocess, ...]) -> int:
    """The smallest JPEG draft side that keeps every input at least 2x oversampled."""
    return 2 * max(p.size for p in pres)


def to_tensor(batch: np.ndarray):  # -> torch.Tensor
    """``(N, S, S, 3)`` uint8 -> ``(N, 3, S, S)`` float32 in [0, 1] (same as torchvision ToTensor)."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2).float().div_(255.0)
