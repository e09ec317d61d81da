"""Reader stage 1: walk folders with ``os.scandir``, yielding image files and listing problems.

Directory symlinks are followed (a library may link in other folders) but every directory is
visited once: a symlink loop, an unreadable folder or a broken link is yielded as a
:class:`ListingProblem` and the walk goes on. Nothing here opens a file: only ``stat`` is used.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from lookalike.files import PATH_TOO_LONG, is_image_name, too_long


@dataclass(frozen=True)
class FileEntry:
    """An image file found by the walk: absolute path, size and mtime in nanoseconds."""

    path: str
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class ListingProblem:
    """Something under a root that could not be listed; ``reason`` is a short code."""

    path: str
    reason: str
    detail: str = ""


SYMLINK_LOOP = "symlink loop"
UNREADABLE_FOLDER = "unreadable folder"
BROKEN_LINK = "broken link"
UNREADABLE_FILE = "unreadable file"
DUPLICATE_FOLDER = "folder linked twice"
NOT_REGULAR = "not a regular file"


def walk(roots: Iterable[str | os.PathLike[str]]) -> Iterator[FileEntry | ListingProblem]:
    """Image files under ``roots`` (folders or single files), sorted per folder, each once."""
    seen_dirs: set[tuple[int, int]] = set()
    seen_files: set[str] = set()
    for root in roots:
        top = os.path.abspath(root)
        try:
            st = os.stat(top)
        except OSError as exc:
            yield ListingProblem(top, BROKEN_LINK if os.path.islink(top) else UNREADABLE_FILE,
                                 exc.strerror or str(exc))
            continue
        if stat.S_ISDIR(st.st_mode):
            yield from _walk_dir(top, st, seen_dirs, seen_files)
        elif not stat.S_ISREG(st.st_mode):  # a FIFO or device given by name: never opened
            yield ListingProblem(top, NOT_REGULAR, "FIFO" if stat.S_ISFIFO(st.st_mode) else "device")
        elif top not in seen_files:
            seen_files.add(top)
            yield FileEntry(top, st.st_size, st.st_mtime_ns)


def _walk_dir(top: str, top_stat: os.stat_result, seen_dirs: set[tuple[int, int]],
              seen_files: set[str]) -> Iterator[FileEntry | ListingProblem]:
    stack: list[tuple[str, tuple[int, int], frozenset[tuple[int, int]]]] = [
        (top, (top_stat.st_dev, top_stat.st_ino), frozenset())]
    while stack:
        folder, key, ancestors = stack.pop()
        if key in ancestors:
            yield ListingProblem(folder, SYMLINK_LOOP, "links back to a folder above it")
            continue
        if key in seen_dirs:
            yield ListingProblem(folder, DUPLICATE_FOLDER, "folder already listed through another path")
            continue
        seen_dirs.add(key)
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            yield ListingProblem(folder, UNREADABLE_FOLDER, exc.strerror or str(exc))
            continue
        subdirs = []
        for entry in entries:
            try:
                is_dir = entry.is_dir(follow_symlinks=True)
                if is_dir:
                    st = entry.stat(follow_symlinks=True)
                    subdirs.append((entry.path, (st.st_dev, st.st_ino), ancestors | {key}))
                    continue
                if not is_image_name(entry.name) or entry.path in seen_files:
                    continue
                st = entry.stat(follow_symlinks=True)
            except OSError as exc:
                if exc.errno == errno.ENAMETOOLONG or too_long(entry.path):
                    yield ListingProblem(entry.path, PATH_TOO_LONG, f"over {len(os.fsencode(entry.path))} "
                                         "bytes; no system call accepts it")
                elif entry.is_symlink():
                    reason = SYMLINK_LOOP if exc.errno == 40 else BROKEN_LINK  # 40: ELOOP
                    if is_image_name(entry.name) or reason == SYMLINK_LOOP:
                        yield ListingProblem(entry.path, reason, exc.strerror or str(exc))
                elif is_image_name(entry.name):
                    yield ListingProblem(entry.path, UNREADABLE_FILE, exc.strerror or str(exc))
                continue
            if not stat.S_ISREG(st.st_mode):
                continue
            seen_files.add(entry.path)
            yield FileEntry(entry.path, st.st_size, st.st_mtime_ns)
        stack.extend(reversed(subdirs))  # depth-first, in name order
