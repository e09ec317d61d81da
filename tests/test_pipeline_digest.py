"""prepare_file(s) with digest=True: one read per file gives pixels, sha256, size and header facts."""

from __future__ import annotations

import builtins
import hashlib
import os

import numpy as np

from lookalike.embed.config import Preprocess
from lookalike.embed.pipeline import prepare_file, prepare_files

PRE = Preprocess(size=32, resize="squash", interpolation="bilinear")


def test_digest_reads_once_and_matches_plain_decode(photos, monkeypatch):
    opened: list[str] = []
    real_open, real_os_open = builtins.open, os.open

    def counting_open(file, *args, **kwargs):  # type: ignore[no-untyped-def]
        if str(file) == str(photos[0]):
            opened.append(str(file))
        return real_open(file, *args, **kwargs)

    def counting_os_open(file, *args, **kwargs):  # type: ignore[no-untyped-def]
        if str(file) == str(photos[0]):
            opened.append(str(file))
        return real_os_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", counting_open)
    monkeypatch.setattr(os, "open", counting_os_open)
    got = prepare_file(str(photos[0]), [PRE], digest=True)
    monkeypatch.setattr(builtins, "open", real_open)
    monkeypatch.setattr(os, "open", real_os_open)
    assert len(opened) == 1
    data = photos[0].read_bytes()
    assert got.sha256 == hashlib.sha256(data).hexdigest() and got.size == len(data)
    assert got.info and got.info["format"] == "JPEG" and got.info["width"] > 0
    plain = prepare_file(str(photos[0]), [PRE])
    assert got.arrays is not None and plain.arrays is not None
    np.testing.assert_array_equal(got.arrays[PRE.key], plain.arrays[PRE.key])


def test_expected_hash_skips_decoding(photos):
    sha = hashlib.sha256(photos[1].read_bytes()).hexdigest()
    same = prepare_file(str(photos[1]), [PRE], digest=True, expect_sha256=sha)
    assert same.unchanged and same.arrays is None and same.sha256 == sha and same.error is None
    other = prepare_file(str(photos[1]), [PRE], digest=True, expect_sha256="0" * 64)
    assert not other.unchanged and other.arrays is not None


def test_errors_keep_the_path_and_hash(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_text("hello")
    got = prepare_file(str(bad), [PRE], digest=True)
    assert got.error is not None and got.error.reason == "not an image" and got.error.path == str(bad)
    assert got.sha256 == hashlib.sha256(b"hello").hexdigest()
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    assert prepare_file(str(empty), [PRE], digest=True).error.reason == "empty file"  # type: ignore[union-attr]
    missing = prepare_file(str(tmp_path / "gone.jpg"), [PRE], digest=True)
    assert missing.error is not None and missing.sha256 is None


def test_prepare_files_in_workers_passes_expectations(photos):
    paths = [str(p) for p in photos[:6]]
    sha = hashlib.sha256(photos[2].read_bytes()).hexdigest()
    got = list(prepare_files(paths, [PRE], workers=1, digest=True, expect={paths[2]: sha}))
    assert [g.path for g in got] == paths
    assert [g.unchanged for g in got] == [False, False, True, False, False, False]


def test_read_ahead_is_bounded(photos):
    """A slow consumer must not make the workers decode (and hold in memory) everything at once."""
    import time

    pulled = 0

    def paths():  # type: ignore[no-untyped-def]
        nonlocal pulled
        for _ in range(400):
            pulled += 1
            yield str(photos[0])

    it = prepare_files(paths(), [PRE], workers=1, ahead=16)
    next(it)
    time.sleep(1.0)  # the consumer is busy; the workers may only run a little ahead
    assert pulled <= 16 + 8
    assert sum(1 for _ in it) == 399
