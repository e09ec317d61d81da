"""sha256 digests and prefixes, and the atomic checksum record."""

from __future__ import annotations

import hashlib

import pytest

from lookalike.embed.weights import checksums
from lookalike.errors import WeightsCorruptError
from lookalike.files import sha256_file
from lookalike.paths import weights_dir


def test_sha256_file_matches_hashlib(tmp_path):
    data = bytes(range(256)) * 9000
    (tmp_path / "f").write_bytes(data)
    assert sha256_file(tmp_path / "f") == hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("length", [8, 12, 64])
def test_prefixes_and_full_digests_match(length):
    digest = hashlib.sha256(b"x").hexdigest()
    assert checksums.digest_matches(digest[:length].upper(), digest)
    other = hashlib.sha256(b"y").hexdigest()
    assert not checksums.digest_matches(digest[:length], other)
    with pytest.raises(WeightsCorruptError, match="does not match"):
        checksums.check(digest[:length], other, "f.pth")


@pytest.mark.parametrize("bad", ["", "1234567", "xyz12345", "a" * 65])
def test_malformed_expected_digests_are_refused(bad):
    with pytest.raises(ValueError):
        checksums.digest_matches(bad, hashlib.sha256(b"x").hexdigest())


def test_record_round_trip_is_atomic():
    assert checksums.read_record() == {}
    checksums.update("a.pth", {"sha256": "ab" * 32, "size": 3})
    checksums.update("b.zip", {"sha256": "cd" * 32, "files": {"models/x": "ef" * 32}})
    assert checksums.entry("a.pth") == {"sha256": "ab" * 32, "size": 3}
    assert set(checksums.read_record()) == {"a.pth", "b.zip"}
    checksums.update("a.pth", None)
    assert set(checksums.read_record()) == {"b.zip"}
    assert sorted(p.name for p in weights_dir().iterdir() if p.is_file()) == ["checksums.json"]


def test_unreadable_record_is_ignored():
    weights_dir().mkdir(parents=True)
    checksums.record_path().write_text("{not json")
    assert checksums.read_record() == {}
