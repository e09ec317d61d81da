"""The listing stage: os.scandir walk with symlink loops and unreadable folders reported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from lookalike.indexer import listing
from lookalike.indexer.listing import FileEntry, ListingProblem, walk
from tests.conftest import ROOT, unprivileged


def _tree(root: Path) -> None:
    (root / "b" / "c").mkdir(parents=True)
    for rel in ("z.jpg", "a.PNG", "notes.txt", "b/x.webp", "b/c/y.heic"):
        (root / rel).write_bytes(b"x" * len(rel))


def test_walk_lists_image_files_with_size_and_mtime(tmp_path):
    _tree(tmp_path)
    got = list(walk([tmp_path]))
    assert all(isinstance(e, FileEntry) for e in got)
    assert [Path(e.path).relative_to(tmp_path).as_posix() for e in got] == [
        "a.PNG", "z.jpg", "b/x.webp", "b/c/y.heic"]
    e = got[1]
    st = os.stat(e.path)
    assert (e.size, e.mtime_ns) == (st.st_size, st.st_mtime_ns) and os.path.isabs(e.path)


def test_symlink_loop_is_reported_not_fatal(tmp_path):
    _tree(tmp_path)
    os.symlink(tmp_path, tmp_path / "b" / "loop")
    os.symlink("self", tmp_path / "self")  # a link to itself
    os.symlink(tmp_path / "missing.jpg", tmp_path / "gone.jpg")
    got = list(walk([tmp_path]))
    problems = {Path(p.path).name: p.reason for p in got if isinstance(p, ListingProblem)}
    assert problems == {"loop": listing.SYMLINK_LOOP, "self": listing.SYMLINK_LOOP,
                        "gone.jpg": listing.BROKEN_LINK}
    assert len([e for e in got if isinstance(e, FileEntry)]) == 4


def test_folder_linked_twice_is_listed_once(tmp_path):
    _tree(tmp_path)
    os.symlink(tmp_path / "b", tmp_path / "again")
    got = list(walk([tmp_path]))
    files = [e for e in got if isinstance(e, FileEntry)]
    assert len(files) == 4
    assert [p.reason for p in got if isinstance(p, ListingProblem)] == [listing.DUPLICATE_FOLDER]


def test_unreadable_folder_is_reported_and_walk_goes_on(tmp_path, monkeypatch):
    """Root reads everything, so the permission error is injected into os.scandir."""
    _tree(tmp_path)
    real = os.scandir

    def scandir(path):  # type: ignore[no-untyped-def]
        if str(path).endswith(os.sep + "b"):
            raise PermissionError(13, "Permission denied")
        return real(path)

    monkeypatch.setattr(listing.os, "scandir", scandir)
    got = list(walk([tmp_path]))
    assert [(Path(p.path).name, p.reason) for p in got if isinstance(p, ListingProblem)] == [
        ("b", listing.UNREADABLE_FOLDER)]
    assert sorted(Path(e.path).name for e in got if isinstance(e, FileEntry)) == ["a.PNG", "z.jpg"]


def test_unreadable_folder_by_permissions(tmp_path):
    _tree(tmp_path)
    (tmp_path / "b").chmod(0)
    code = ("import json, sys; from lookalike.indexer.listing import walk, ListingProblem; "
            "print(json.dumps([p.reason for p in walk([sys.argv[1]]) if isinstance(p, ListingProblem)]))")
    try:  # in a subprocess without root's capabilities, so the permissions bite as for a user
        proc = subprocess.run(unprivileged([sys.executable, "-c", code, str(tmp_path)]), capture_output=True,
                              text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True)
    finally:
        (tmp_path / "b").chmod(0o755)
    assert json.loads(proc.stdout) == [listing.UNREADABLE_FOLDER]


def test_roots_may_be_files_and_repeat(tmp_path):
    _tree(tmp_path)
    got = list(walk([tmp_path / "z.jpg", tmp_path, tmp_path / "nope"]))
    assert [Path(e.path).name for e in got if isinstance(e, FileEntry)] == [
        "z.jpg", "a.PNG", "x.webp", "y.heic"]
    assert [p.reason for p in got if isinstance(p, ListingProblem)] == [listing.UNREADABLE_FILE]
