"""FIFOs never hang a reader (issue 10.9); the decompression-bomb limit is the one documented (10.14)."""

from __future__ import annotations

import json
import os
import struct
import time
import zlib

import pytest

from lookalike.embed.config import Preprocess
from lookalike.embed.images import (
    MAX_PIXELS,
    NotRegularFileError,
    ReadTimeoutError,
    load_image,
    read_file,
)
from lookalike.embed.pipeline import prepare_files
from lookalike.errors import DecompressionBombError, TruncatedImageError
from tests.conftest import ROOT


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "swapped.jpg"
    os.mkfifo(path)
    return path


def test_a_fifo_is_refused_at_once(fifo, photos, tmp_path):
    start = time.monotonic()
    with pytest.raises(NotRegularFileError, match="FIFO"):
        read_file(fifo)
    with pytest.raises(NotRegularFileError):
        load_image(fifo)
    # a FIFO swapped in after the folder was listed: the pipeline reports it and goes on
    got = list(prepare_files([str(photos[0]), str(fifo)], [Preprocess(size=32)], workers=0, digest=True))
    assert got[0].error is None and got[1].error.reason == "not a regular file"
    got = list(prepare_files([str(fifo)], [Preprocess(size=32)], workers=0))
    assert got[0].error.reason == "not a regular file"
    assert time.monotonic() - start < 10


def test_read_budget(photos):
    assert read_file(photos[0]) == photos[0].read_bytes()
    with pytest.raises(ReadTimeoutError):
        read_file(photos[0], budget_s=0.0)


def test_index_and_embed_given_a_fifo_do_not_hang(cli, fifo, photos, tmp_path):
    lib = str(tmp_path / "lib")
    proc = cli("index", str(fifo), str(photos[0]), "--library", lib, "-m", "tiny-vit", "--json",
               "--workers", "0", timeout=120)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["read"] == 1 and report["failures"][0]["reason"] == "not a regular file"
    proc = cli("embed", str(fifo), "-m", "tiny-vit", "--workers", "0", "--json", timeout=120)
    assert proc.returncode == 1 and "not a regular file" in proc.stdout


def png_header(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def test_bomb_limit_is_the_documented_one():
    side = int(MAX_PIXELS ** 0.5)
    with pytest.raises(DecompressionBombError):
        load_image(png_header(side + 1, side + 1))
    with pytest.raises(TruncatedImageError):  # just under the limit: decoded (and found truncated)
        load_image(png_header(side, side))
    readme = (ROOT / "README.md").read_text()
    assert f"decompression-bomb limit ({MAX_PIXELS:,} pixels" in readme
