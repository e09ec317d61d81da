"""One writer per library; atomic file replacement."""

from __future__ import annotations

import os
import threading
import time

import pytest

from lookalike.atomic import atomic_write, atomic_write_bytes
from lookalike.indexer.lock import LibraryBusyError, WriterLock
from tests.conftest import ROOT


def test_second_writer_fails_clearly(tmp_path):
    with WriterLock(tmp_path):
        with pytest.raises(LibraryBusyError, match=f"pid {os.getpid()}.*--wait"):
            WriterLock(tmp_path).acquire()
    with WriterLock(tmp_path):  # released on exit: another writer now fails
        with pytest.raises(LibraryBusyError):
            WriterLock(tmp_path).acquire()
    WriterLock(tmp_path).acquire().release()  # and after that, it is free again


def test_a_killed_writer_leaves_no_stale_lock(tmp_path):
    import subprocess
    import sys

    code = ("import os, sys; from lookalike.indexer.lock import WriterLock; "
            f"WriterLock({str(tmp_path)!r}).acquire(); os.kill(os.getpid(), 9)")  # killed while holding it
    subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(ROOT)})
    with WriterLock(tmp_path):
        pass


def test_wait_blocks_until_released(tmp_path):
    first = WriterLock(tmp_path).acquire()
    order: list[str] = []

    def second() -> None:
        with WriterLock(tmp_path, wait=True):
            order.append("second")

    t = threading.Thread(target=second)
    t.start()
    time.sleep(0.5)
    order.append("first done")
    first.release()
    t.join(10)
    assert order == ["first done", "second"]


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    target = tmp_path / "f.bin"
    atomic_write_bytes(target, b"old")

    def boom(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            fh.write(b"half")
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        atomic_write(target, boom)
    assert target.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]
    (tmp_path / ".tmp-999999999-f.bin").write_bytes(b"left by a killed writer")
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new" and sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]
