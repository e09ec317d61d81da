"""Thumbnails of a library's images, made once and cached in the library folder
(``thumbnails/SIZE/ID.jpg``); :meth:`lookalike.Library.thumbnail` serves them."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from pathlib import Path

from lookalike.errors import UsageError

log = logging.getLogger(__name__)

#: Thumbnail sizes (longest side, pixels) a library caches.
THUMBNAIL_SIZES = range(16, 2049)


def thumbnail_file(folder: Path, image_id: int, size: int) -> Path:
    """Where the library folder ``folder`` caches image ``image_id``'s thumbnail of ``size``."""
    if int(size) not in THUMBNAIL_SIZES:
        raise UsageError(f"thumbnail size must be {THUMBNAIL_SIZES.start}..{THUMBNAIL_SIZES.stop - 1}, got {size}")
    return folder / "thumbnails" / str(int(size)) / f"{int(image_id)}.jpg"


def thumbnail(folder: Path, image_id: int, size: int, paths: Callable[[], list[str] | None]) -> bytes:
    """The cached JPEG, else one made from the first of ``paths()`` (the image's files) that can
    still be read, its longest side ``size`` (never enlarged), and cached when ``folder`` is
    writable; :class:`UsageError` when no file can be read."""
    from lookalike.atomic import atomic_write_bytes
    from lookalike.embed.images import load_image
    from lookalike.errors import ImageLoadError

    cached = thumbnail_file(folder, image_id, size)
    try:
        return cached.read_bytes()
    except OSError:
        pass
    files = paths()
    if not files:
        raise UsageError(f"no image with id {image_id} in the library")
    img, why = None, ""
    for path in files:
        try:
            img = load_image(path, draft=int(size))
            break
        except (ImageLoadError, OSError) as exc:  # moved or changed since indexing: try a copy
            why = str(exc)
    if img is None:
        raise UsageError(f"image {image_id} has no readable file any more ({why}); run `lookalike index`")
    img.thumbnail((int(size), int(size)))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=85)
    data = buf.getvalue()
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(cached, data)
    except OSError as exc:  # a read-only library: serve it uncached
        log.debug("thumbnail %s not cached: %s", cached, exc)
    return data
