"""Finding image files under folders, and how file paths are stored and shown.

File names are bytes on POSIX; Python keeps bytes that are not UTF-8 as "surrogate escapes"
(``os.fsdecode``). Such a path cannot go into a database text column as it is, so
:func:`path_to_text` stores it losslessly as ``fsbytes:`` followed by the percent-encoded bytes of
``os.fsencode(path)`` (``fsbytes:/photos/caf%E9.jpg``); every valid UTF-8 path is stored unchanged.
:func:`text_to_path` reverses it exactly. :func:`display_path` shows undecodable bytes as
``\\xNN`` (``/photos/caf\\xe9.jpg``) for people.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterable
from typing import BinaryIO
from pathlib import Path
from urllib.parse import quote, unquote_to_bytes

from lookalike.errors import UsageError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif",
                            ".heic", ".heif", ".avif"})


#: Prefix of a stored path that holds percent-encoded bytes (see the module docstring).
ESCAPED_PREFIX = "fsbytes:"


def path_to_text(path: str) -> str:
    """A database-safe, reversible text form of ``path`` (itself when it is valid UTF-8)."""
    try:
        path.encode("utf-8")
        if not path.startswith(ESCAPED_PREFIX):
            return path
    except UnicodeEncodeError:
        pass
    return ESCAPED_PREFIX + quote(os.fsencode(path), safe="/")


def text_to_path(text: str) -> str:
    """The path :func:`path_to_text` stored as ``text``."""
    if text.startswith(ESCAPED_PREFIX):
        return os.fsdecode(unquote_to_bytes(text[len(ESCAPED_PREFIX):]))
    return text


def display_path(path: str) -> str:
    """``path`` printable anywhere: bytes that are not UTF-8 as ``\\xNN`` escapes."""
    try:
        raw = path.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # lone surrogates that are not escaped bytes
        return path.encode("utf-8", "backslashreplace").decode("utf-8")
    return raw.decode("utf-8", "backslashreplace")


def is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES


#: Longest path the kernel accepts (Linux PATH_MAX, counting the final NUL byte).
PATH_MAX = 4096
PATH_TOO_LONG = "path too long"


def too_long(path: str) -> bool:
    """Whether ``path`` is longer than any system call accepts (it cannot be opened by name)."""
    return len(os.fsencode(path)) >= PATH_MAX


def expand_inputs(inputs: Iterable[str | os.PathLike[str]],
                  problems: list[tuple[str, str]] | None = None) -> list[str]:
    """Files as given, folders walked recursively for image names; sorted, de-duplicated.

    What cannot be listed (an unreadable folder, a path over :data:`PATH_MAX` bytes) is appended to
    ``problems`` as ``(path, reason)``, or logged as a warning when ``problems`` is ``None``; it is
    never dropped silently.
    """
    found: list[tuple[str, str]] = []
    out: list[str] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            def failed(exc: OSError) -> None:
                found.append((str(exc.filename or path), exc.strerror or str(exc)))

            for root, dirs, files in os.walk(path, followlinks=False, onerror=failed):
                dirs.sort()
                for name in [*dirs, *files]:
                    if too_long(os.path.join(root, name)):
                        found.append((os.path.join(root, name), PATH_TOO_LONG))
                dirs[:] = [d for d in dirs if not too_long(os.path.join(root, d))]
                out.extend(os.path.join(root, f) for f in sorted(files)
                           if is_image_name(f) and not too_long(os.path.join(root, f)))
        elif path.exists():
            out.append(str(path))
        else:
            raise UsageError(f"no such file or folder: {item}")
    found = list(dict.fromkeys(found))
    if problems is None:
        for where, reason in found:
            log.warning("not listed: %s: %s", display_path(where), reason)
    else:
        problems.extend(found)
    return list(dict.fromkeys(out))


def sha256_stream(fh: BinaryIO) -> str:
    """The hex sha256 of what is left to read in ``fh``, read in 1 MiB chunks."""
    h = hashlib.sha256()
    for chunk in iter(lambda: fh.read(1 << 20), b""):
        h.update(chunk)
    return h.hexdigest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    """The hex sha256 of a file's bytes: a photo's content identity, a weights file's checksum."""
    with open(path, "rb") as fh:
        return sha256_stream(fh)
