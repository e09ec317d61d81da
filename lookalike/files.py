"""Finding image files under folders."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from lookalike.errors import UsageError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif",
                            ".heic", ".heif", ".avif"})


def is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES


def expand_inputs(inputs: Iterable[str | os.PathLike[str]]) -> list[str]:
    """Files as given, folders walked recursively for image names; sorted, de-duplicated."""
    out: list[str] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            for root, dirs, files in os.walk(path, followlinks=False):
                dirs.sort()
                out.extend(os.path.join(root, f) for f in sorted(files) if is_image_name(f))
        elif path.exists():
            out.append(str(path))
        else:
            raise UsageError(f"no such file or folder: {item}")
    return list(dict.fromkeys(out))
