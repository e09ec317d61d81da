"""Indexing under stress (issue 10): interruption, time-budget commits, disk full, unmounted roots,
permission fixes, failed new metrics, progress per image."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

import pytest

from lookalike.indexer.doctor import diagnose, repair
from lookalike.library.folder import LibraryFolder
from lookalike.indexer.run import IndexOptions, index_library
from tests.conftest import ROOT, unprivileged
from tests.dbfixtures import copy_photos

ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def lookalike(*args: str) -> list[str]:
    return [sys.executable, "-m", "lookalike", *args]


def start_indexing(cmd: list[str], timeout: float = 120) -> subprocess.Popen[str]:
    """Start ``cmd`` and return once it has begun embedding (its 'indexing N of M' line)."""
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = threading.Event()
    proc.lines = []  # type: ignore[attr-defined]

    def read() -> None:
        for line in proc.stderr:  # type: ignore[union-attr]
            proc.lines.append(line)  # type: ignore[attr-defined]
            if line.startswith("indexing "):
                seen.set()

    threading.Thread(target=read, daemon=True).start()
    if not seen.wait(timeout):
        proc.kill()
        raise AssertionError(f"never started embedding: {proc.lines}")  # type: ignore[attr-defined]
    return proc


def committed(lib: Path) -> int:
    with LibraryFolder.open(lib) as library:
        return len(library.ids("tiny-vit"))


def index(lib: Path, roots: list[Path] | None, **kw) -> object:
    with LibraryFolder.open(lib, create=True, writable=True) as library:
        return index_library(library, [str(r) for r in roots] if roots else None,
                             IndexOptions(metrics=["tiny-vit"], workers=0, progress=False, **kw))


def test_sigint_and_sigterm_commit_what_is_done(photos, tmp_path):
    lib = tmp_path / "lib"
    base = lookalike("index", str(photos[0].parent), "--library", str(lib), "-m", "tiny-vit",
                     "--workers", "0", "--batch-size", "4", "--commit-every", "100000",
                     "--commit-seconds", "1000")
    done = 0
    for sig in (signal.SIGINT, signal.SIGTERM):
        proc = start_indexing(base)
        time.sleep(1.5)
        proc.send_signal(sig)
        assert proc.wait(timeout=120) == 130, "".join(proc.lines)  # type: ignore[attr-defined]
        now = committed(lib)
        assert done < now < len(photos)  # nothing committed by count or time: the signal did it
        done = now
    # the roots were recorded before the final save: `index` without DIR finishes the job
    proc = subprocess.run(lookalike("index", "--library", str(lib), "--json", "--workers", "0"),
                          env=ENV, capture_output=True, text=True, timeout=300)
    report = json.loads(proc.stdout)
    assert report["unchanged"] == done and committed(lib) == len({p.read_bytes() for p in photos})
    with LibraryFolder.open(lib) as library:
        assert diagnose(library) == []


def test_commits_on_a_time_budget(photos, tmp_path):
    lib = tmp_path / "lib"
    proc = start_indexing(lookalike("index", str(photos[0].parent), "--library", str(lib), "-m",
                                    "tiny-vit", "--workers", "0", "--batch-size", "4",
                                    "--commit-every", "100000", "--commit-seconds", "0.2"))
    seen = 0
    try:
        while proc.poll() is None and not seen:  # commits appear while it runs, far below 100000 files
            seen = committed(lib)
            time.sleep(0.1)
    finally:
        proc.kill()
        proc.wait()
    assert 0 < seen < len(photos)


def test_disk_full_is_one_clear_line(photos, tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=160k", "tmpfs", str(mnt)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here")
    try:
        proc = subprocess.run(lookalike("index", *map(str, photos[:60]), "--library", str(mnt / "lib"),
                                        "-m", "tiny-vit-b", "--workers", "0", "--commit-every", "8",
                                        "-q"), env=ENV, capture_output=True, text=True, timeout=300)
    finally:
        subprocess.run(["umount", str(mnt)], check=False)
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: disk full") and len(proc.stderr.splitlines()) == 1, proc.stderr


def test_missing_or_empty_root_is_unavailable_not_deleted(photos, tmp_path):
    root = tmp_path / "drive"
    copy_photos(photos, root, 3)
    lib = tmp_path / "lib"
    index(lib, [root])
    root.rename(tmp_path / "elsewhere")  # the drive is gone
    report = index(lib, None)
    assert (report.deleted, report.unavailable) == (0, [str(root)])
    root.mkdir()  # an empty mount point
    report = index(lib, None)
    assert (report.deleted, report.unavailable) == (0, [str(root)])
    with LibraryFolder.open(lib, writable=True) as library:
        kinds = {f.kind for f in diagnose(library)}
        assert "root-unavailable" in kinds and "missing-files" not in kinds
        assert not any("forgot" in line for line in repair(library))
        assert len(library.ids("tiny-vit")) == 3
        assert any("forgot 3" in line for line in repair(library, prune=True))
    root.rmdir()
    (tmp_path / "elsewhere").rename(root)
    assert index(lib, None).read == 3  # back: re-read (they were pruned above)
    root.rename(tmp_path / "elsewhere")
    report = index(lib, None, prune=True)
    assert report.deleted == 3 and committed(lib) == 0


def test_permission_failures_are_retried_and_retry_failed(photos, tmp_path):
    folder = tmp_path / "pics"
    locked, bad = copy_photos(photos, folder, 2)
    os.chmod(locked, 0)
    lib = tmp_path / "lib"
    cmd = unprivileged(lookalike("index", str(folder), "--library", str(lib), "-m", "tiny-vit",
                                 "--workers", "0", "--json"))
    first = json.loads(subprocess.run(cmd, env=ENV, capture_output=True, text=True, check=True).stdout)
    assert first["failures"] == [{"path": str(locked), "status": "failed", "reason": "permission denied",
                                  "detail": first["failures"][0]["detail"]}]
    os.chmod(locked, 0o644)  # fixed: size and mtime unchanged
    again = json.loads(subprocess.run(cmd, env=ENV, capture_output=True, text=True, check=True).stdout)
    assert (again["read"], again["failed"], again["unchanged"]) == (1, 0, 1)
    # a file that failed for its content is retried only when asked
    st = bad.stat()
    good = bad.read_bytes()
    bad.write_bytes(b"\0" * st.st_size)
    os.utime(bad, ns=(st.st_atime_ns, st.st_mtime_ns + 1))
    assert index(lib, [folder]).failed == 1
    bad.write_bytes(good)
    os.utime(bad, ns=(st.st_atime_ns, st.st_mtime_ns + 1))  # same size and mtime as the failure
    assert index(lib, [folder]).read == 0
    report = index(lib, [folder], retry_failed=True)
    assert (report.read, report.failed) == (1, 0)


def test_failed_new_metric_leaves_no_empty_metric(cli, photos, tmp_path):
    lib = str(tmp_path / "lib")
    cli("index", *map(str, photos[:2]), "--library", lib, "-m", "tiny-vit", "--workers", "0", check=True)
    proc = cli("index", "--library", lib, "-m", "dreamsim", "--workers", "0",
               env={"LOOKALIKE_OFFLINE": "1", "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    st = json.loads(cli("status", "--library", lib, "--json", check=True).stdout)
    assert [m["name"] for m in st["metrics"]] == ["tiny-vit"]
    assert not (tmp_path / "lib" / "indexes" / "dreamsim.faiss").exists()


def test_progress_moves_per_image_and_says_loading(photos, tmp_path):
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # a real terminal
    proc = subprocess.Popen(lookalike("index", str(photos[0].parent), "--library", str(tmp_path / "lib"),
                                      "-m", "tiny-vit", "--workers", "0", "--batch-size", "256"),
                            env=ENV, stdout=subprocess.DEVNULL, stderr=follower)
    os.close(follower)
    out = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    assert proc.wait(timeout=300) == 0
    os.close(leader)
    text = out.decode(errors="replace")
    assert "loading tiny-vit…" in text
    counts = {int(n) for n in re.findall(r"\| (\d+)/%d \[" % len(photos), text)}
    assert any(0 < n < len(photos) for n in counts), counts  # one batch, yet the bar moved inside it


def test_quiet_index_prints_nothing(cli, photos, tmp_path):
    proc = cli("index", str(photos[0]), "--library", str(tmp_path / "lib"), "-m", "tiny-vit", "-q",
               "--workers", "0")
    assert proc.returncode == 0 and proc.stdout == "" and proc.stderr == ""
