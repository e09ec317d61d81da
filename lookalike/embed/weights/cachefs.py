"""File-system steps of the weights cache: staging folder, fsync, atomic placement, locks.

Every file reaches its final place in the cache by ``os.replace`` from a fully written, fsynced and
verified staging copy, so the final path never holds a half-written or unverified file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from lookalike.atomic import fsync_path
from lookalike.errors import WeightsCorruptError
from lookalike.paths import weights_dir

STAGING = ".partial"


def staging_dir() -> Path:
    """``<cache>/.partial``: downloads and copies in progress (created on demand)."""
    path = weights_dir() / STAGING
    path.mkdir(parents=True, exist_ok=True)
    return path


def staging_path(name: str, suffix: str = ".part") -> Path:
    """Where ``name`` (possibly ``a/b.pth``) is staged: one flat file name under ``.partial``."""
    return staging_dir() / (name.replace("/", "--").replace("\\", "--") + suffix)


def place(staged: Path, final: Path) -> None:
    """Move a verified staging file or folder to its final path atomically (same file system)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    fsync_path(staged)
    if staged.is_dir() and final.exists():
        shutil.rmtree(final) if final.is_dir() else final.unlink()
    os.replace(staged, final)
    fsync_path(final.parent)


def remove(path: Path) -> None:
    """Delete a file or folder if it exists."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def temp_dir_beside(final: Path) -> Path:
    """A fresh hidden folder beside ``final`` to build it in, for one atomic rename.

    Leftovers of crashed earlier attempts for the same ``final`` are deleted first; the caller
    holds the :func:`file_lock` of that file, so none of them belongs to a running process.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    for stale in final.parent.glob(f".{final.name}.*.tmp"):
        remove(stale)
    return Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))


def open_regular(path: Path) -> BinaryIO:
    """Open ``path`` for reading only if it is a regular file itself: a symbolic link, FIFO, device
    or socket raises :class:`WeightsCorruptError` (checked on the open descriptor, so a file swapped
    for a link or FIFO after listing is refused too, and a FIFO never blocks)."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP or path.is_symlink():
            raise WeightsCorruptError(f"{path}: a symbolic link; refusing it (import the file itself)") from None
        raise
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise WeightsCorruptError(f"{path}: {file_kind(mode)}, not a regular file; refusing it")
    if hasattr(os, "set_blocking"):
        os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def file_kind(mode: int) -> str:
    """What an ``st_mode`` is, in words (for refusals)."""
    for test, word in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a folder")):
        if test(mode):
            return word
    return "not a regular file"


def copy_to_staging(src: Path, staged: Path) -> None:
    """Copy a regular file (see :func:`open_regular`) into the staging area and fsync it."""
    staged.parent.mkdir(parents=True, exist_ok=True)
    with open_regular(src) as fin, open(staged, "wb") as fout:
        shutil.copyfileobj(fin, fout, 1 << 20)
        fout.flush()
        os.fsync(fout.fileno())


@contextlib.contextmanager
def file_lock(name: str) -> Iterator[None]:
    """An exclusive inter-process lock named ``name`` (:mod:`filelock`: ``flock`` on POSIX, a
    Windows lock elsewhere), waited for; released by the kernel if the holder dies."""
    from filelock import FileLock

    with FileLock(staging_path(name, ".lock"), thread_local=False):
        yield
