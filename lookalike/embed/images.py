"""The one image loader every metric uses.

``load_image(path)`` returns an 8-bit RGB ``PIL.Image`` with EXIF orientation applied, the first
frame of animated images, transparency composited on white, and 16-bit / CMYK / palette images
converted correctly. Anything that cannot be read raises a typed :class:`ImageLoadError`.

Files are read with :func:`read_file`: opened ``O_NONBLOCK`` and checked with ``fstat`` before a
byte is read, so a FIFO, socket or device (given by name, or swapped in after a folder was listed)
is refused at once instead of blocking forever; reading gives up after :data:`READ_BUDGET_S`.
"""

from __future__ import annotations

import io
import os
import stat
import time
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from lookalike.errors import (
    DecompressionBombError,
    EmptyFileError,
    ImageLoadError,
    NotAnImageError,
    TruncatedImageError,
    UnsupportedImageError,
)

#: Largest image (in pixels) we agree to decode, checked from the header before decoding: PIL's
#: own default (``PIL.Image.MAX_IMAGE_PIXELS``, 89,478,485 pixels, about 9459 x 9459; 0.27 GB of
#: RGB). PIL refuses larger images by itself, so ``max_pixels`` can lower the limit, not raise it.
MAX_PIXELS = 89_478_485
#: Seconds one file may take to read (checked between reads of :data:`READ_CHUNK` bytes).
READ_BUDGET_S = 60.0
READ_CHUNK = 1 << 20


class NotRegularFileError(ImageLoadError):
    reason = "not a regular file"


class AccessDeniedError(ImageLoadError):
    """The file may not be read (permissions). The indexer retries such files on every run."""

    reason = "permission denied"


class ReadTimeoutError(ImageLoadError):
    reason = "read timed out"


def read_file(path: str | os.PathLike[str], budget_s: float = READ_BUDGET_S) -> bytes:
    """The bytes of the regular file ``path``; never blocks on a FIFO or device (typed errors)."""
    name = os.fspath(path)
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except PermissionError as exc:
        raise AccessDeniedError(name, exc.strerror or str(exc)) from exc
    except OSError as exc:
        raise ImageLoadError(name, exc.strerror or str(exc)) from exc
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = ("FIFO" if stat.S_ISFIFO(mode) else "folder" if stat.S_ISDIR(mode)
                    else "socket" if stat.S_ISSOCK(mode) else "device")
            raise NotRegularFileError(name, kind)
        start, parts = time.monotonic(), []
        while chunk := os.read(fd, READ_CHUNK):
            parts.append(chunk)
            if time.monotonic() - start > budget_s:
                raise ReadTimeoutError(name, f"still reading after {budget_s:g} s")
        return b"".join(parts)
    except PermissionError as exc:
        raise AccessDeniedError(name, exc.strerror or str(exc)) from exc
    except OSError as exc:
        raise ImageLoadError(name, exc.strerror or str(exc)) from exc
    finally:
        os.close(fd)

_HEIF_READY: bool | None = None


def _register_heif() -> bool:
    """Teach PIL to open HEIC/HEIF/AVIF when pillow-heif is installed (once per process)."""
    global _HEIF_READY
    if _HEIF_READY is None:
        try:
            import pillow_heif

            pillow_heif.register_heif_opener()
            _HEIF_READY = True
        except ImportError:
            _HEIF_READY = False
    return _HEIF_READY


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB; transparency is composited on white."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        arr = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(arr).convert("RGB")
    if img.mode == "P":
        img = img.convert("RGBA") if "transparency" in img.info else img.convert("RGB")
    if img.mode in ("LA", "La", "PA"):
        img = img.convert("RGBA")
    if img.mode == "RGBa":
        img = img.convert("RGBA")
    if img.mode == "RGBA":
        white = Image.new("RGB", img.size, (255, 255, 255))
        white.paste(img, mask=img.getchannel("A"))
        return white
    return img.convert("RGB")  # L, 1, CMYK (PIL handles Adobe inversion), YCbCr, LAB, HSV


def load_image(source: str | os.PathLike[str] | bytes, max_pixels: int = MAX_PIXELS,
               draft: int | None = None) -> Image.Image:
    """Decode ``source`` (a path or raw bytes) into an upright 8-bit RGB image.

    ``draft``: for JPEGs, let the decoder downscale by a power of two while keeping both sides at
    least this large (a large speed-up for thumbnails-sized network inputs).
    """
    _register_heif()
    name = "<bytes>" if isinstance(source, bytes) else os.fspath(source)
    data = source if isinstance(source, bytes) else read_file(source)
    if not data:
        raise EmptyFileError(name)
    fp = io.BytesIO(data)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(fp)
            w, h = img.size
            if w * h > max_pixels:
                raise DecompressionBombError(name, f"{w}x{h} pixels > limit {max_pixels}")
            if getattr(img, "is_animated", False):
                img.seek(0)
            if draft and img.format == "JPEG":
                img.draft("RGB", (draft, draft))
            img.load()
            img = ImageOps.exif_transpose(img)
            return to_rgb(img)
    except ImageLoadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DecompressionBombError(name, str(exc)) from exc
    except UnidentifiedImageError as exc:
        raise NotAnImageError(name) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:  # PIL signals corruption this way
        msg = str(exc)
        if "truncated" in msg or "broken" in msg or isinstance(exc, (SyntaxError, EOFError)):
            raise TruncatedImageError(name, msg) from exc
        if "decoder" in msg or "not supported" in msg or "unknown" in msg.lower():
            raise UnsupportedImageError(name, msg) from exc
        raise TruncatedImageError(name, msg) from exc
    except Exception as exc:  # any other decoder failure is still this file's problem, not ours
        raise ImageLoadError(name, f"{type(exc).__name__}: {exc}") from exc


def image_info(path: str | os.PathLike[str]) -> dict[str, object]:
    """Header-only facts (no pixel decode): width, height (upright), format, EXIF datetime/orientation."""
    _register_heif()
    try:
        with Image.open(path) as img:
            exif = img.getexif()
            orientation = int(exif.get(0x0112, 1) or 1)
            w, h = img.size
            if orientation in (5, 6, 7, 8):
                w, h = h, w
            when = exif.get(0x0132)
            try:
                when = exif.get_ifd(0x8769).get(0x9003, when)
            except Exception:  # noqa: BLE001 - a broken EXIF block must not fail indexing
                pass
            return {"width": w, "height": h, "format": img.format, "orientation": orientation,
                    "exif_datetime": str(when).strip("\x00 ") if when else None}
    except Exception:  # noqa: BLE001 - info is best effort; load_image reports the real error
        return {}
