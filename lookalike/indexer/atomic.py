"""Crash-safe file replacement: write a temp file, fsync it, rename over the target, fsync the dir."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

from lookalike.embed.weights.cachefs import fsync_path


def atomic_write(path: str | os.PathLike[str], write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` then atomically move the result to ``path``.

    Readers see either the old file or the complete new one, never a partial write; after a crash
    at most a ``.tmp-*`` file is left behind (removed by the next successful write).
    """
    target = Path(path)
    tmp = target.with_name(f".tmp-{os.getpid()}-{threading.get_ident()}-{target.name}")
    try:
        write(str(tmp))
        fsync_path(tmp)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_path(target.parent)
    for stale in target.parent.glob(f".tmp-*-{target.name}"):  # leftovers of killed writers
        try:
            pid = int(stale.name.split("-")[1])
        except (IndexError, ValueError):
            continue
        if pid != os.getpid() and not _alive(pid):
            stale.unlink(missing_ok=True)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
