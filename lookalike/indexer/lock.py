"""One writer per library: an exclusive ``flock`` on ``<library>/lock``.

The lock is tied to the open file, so the kernel releases it when the writer exits or is killed:
a crashed writer never leaves a stale lock. The holder's pid is written into the file for messages.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from pathlib import Path
from types import TracebackType

from lookalike.errors import LookalikeError

log = logging.getLogger(__name__)


class LibraryBusyError(LookalikeError):
    """Another process is writing this library."""


class WriterLock:
    """``with WriterLock(folder, wait=False):`` holds the library's writer lock."""

    def __init__(self, folder: str | os.PathLike[str], wait: bool = False) -> None:
        self.path = Path(folder) / "lock"
        self.wait = wait
        self._fd: int | None = None

    def holder(self) -> str:
        try:
            return self.path.read_text().strip() or "?"
        except OSError:
            return "?"

    def acquire(self) -> WriterLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not self.wait:
                    os.close(fd)
                    raise LibraryBusyError(
                        f"library {self.path.parent} is being written by another process "
                        f"(pid {self.holder()}); wait for it to finish or pass --wait") from None
                if not told:
                    log.info("waiting for the writer (pid %s) of %s to finish...", self.holder(),
                             self.path.parent)
                    told = True
                time.sleep(0.2)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> WriterLock:
        return self.acquire()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
