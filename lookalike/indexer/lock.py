"""One writer per library: an exclusive lock (:mod:`filelock`, ``flock`` on POSIX) on ``<library>/lock``.

The lock is tied to the open file, so the kernel releases it when the writer exits or is killed:
a crashed writer never leaves a stale lock. The holder's pid is written beside it (``lock.pid``)
for messages.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from types import TracebackType

from lookalike.errors import LookalikeError

log = logging.getLogger(__name__)

#: Seconds between tries while waiting for another writer (``--wait``).
POLL_S = 0.2


class LibraryBusyError(LookalikeError):
    """Another process is writing this library."""


class WriterLock:
    """``with WriterLock(folder, wait=False):`` holds the library's writer lock."""

    def __init__(self, folder: str | os.PathLike[str], wait: bool = False) -> None:
        from filelock import FileLock

        self.path = Path(folder) / "lock"
        self.pid_path = Path(folder) / "lock.pid"
        self.wait = wait
        self._lock = FileLock(self.path, thread_local=False)

    def holder(self) -> str:
        try:
            return self.pid_path.read_text().strip() or "?"
        except OSError:
            return "?"

    def acquire(self) -> WriterLock:
        from filelock import Timeout

        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            if not self.wait:
                raise LibraryBusyError(
                    f"library {self.path.parent} is being written by another process "
                    f"(pid {self.holder()}); wait for it to finish or pass --wait") from None
            log.info("waiting for the writer (pid %s) of %s to finish...", self.holder(), self.path.parent)
            self._lock.acquire(timeout=-1, poll_interval=POLL_S)
        try:
            self.pid_path.write_text(f"{os.getpid()}\n")
        except OSError as exc:  # only messages use it
            log.debug("cannot record the writer's pid in %s: %s", self.pid_path, exc)
        return self

    def release(self) -> None:
        if self._lock.is_locked:
            self._lock.release(force=True)

    def __enter__(self) -> WriterLock:
        return self.acquire()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
