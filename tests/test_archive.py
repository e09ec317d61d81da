"""Safe zip extraction: every unsafe member is refused before anything is written."""

from __future__ import annotations

import collections
import shutil
import stat
import zipfile

import pytest
from tests.weights_server import make_zip, random_bytes, sha256

from lookalike.embed.weights.archive import extract_zip, member_parts, tree_digests
from lookalike.errors import LookalikeError, WeightsCorruptError


@pytest.mark.parametrize("name", ["../x", "a/../../x", "a/b/../../../x", "..\\x", "/etc/x", "\\x",
                                  "C:/x", "c:x"])
def test_unsafe_member_names_are_refused(name):
    with pytest.raises(WeightsCorruptError):
        member_parts(name)


@pytest.mark.parametrize("name,parts", [("models/a.pth", ["models", "a.pth"]),
                                        ("./models//a.pth", ["models", "a.pth"]),
                                        ("models\\sub\\a.pth", ["models", "sub", "a.pth"]),
                                        ("a..b/c..", ["a..b", "c.."])])
def test_safe_member_names_keep_their_layout(name, parts):
    assert member_parts(name) == parts


def test_extract_returns_the_digest_of_every_file(tmp_path):
    members = {"models/a.bin": random_bytes(3000), "models/sub/b.json": b"{}", "top.txt": b"t"}
    (tmp_path / "a.zip").write_bytes(make_zip(members))
    (tmp_path / "out").mkdir()
    tree = extract_zip(tmp_path / "a.zip", tmp_path / "out")
    assert tree == {name: sha256(data) for name, data in members.items()}
    assert tree_digests(tmp_path / "out") == tree


def test_unsafe_member_aborts_before_writing_anything(tmp_path):
    (tmp_path / "a.zip").write_bytes(make_zip({"models/a.bin": b"a", "../evil": b"e"}))
    (tmp_path / "out").mkdir()
    with pytest.raises(WeightsCorruptError, match="escapes"):
        extract_zip(tmp_path / "a.zip", tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == [] and not (tmp_path / "evil").exists()


def test_symlink_member_is_refused(tmp_path):
    info = zipfile.ZipInfo("models/link")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    with zipfile.ZipFile(tmp_path / "a.zip", "w") as zf:
        zf.writestr(info, "/etc/passwd")
    (tmp_path / "out").mkdir()
    with pytest.raises(WeightsCorruptError, match="symbolic link"):
        extract_zip(tmp_path / "a.zip", tmp_path / "out")


def test_duplicate_member_is_refused(tmp_path):
    with zipfile.ZipFile(tmp_path / "a.zip", "w") as zf, pytest.warns(UserWarning):
        zf.writestr("a.bin", b"1")
        zf.writestr("a.bin", b"2")
    (tmp_path / "out").mkdir()
    with pytest.raises(WeightsCorruptError, match="twice"):
        extract_zip(tmp_path / "a.zip", tmp_path / "out")


def test_truncated_archive_is_corrupt(tmp_path):
    data = make_zip({"a.bin": random_bytes(5000)})
    (tmp_path / "a.zip").write_bytes(data[: len(data) // 2])
    (tmp_path / "out").mkdir()
    with pytest.raises(WeightsCorruptError, match="zip"):
        extract_zip(tmp_path / "a.zip", tmp_path / "out")


def test_archive_larger_than_the_free_space_is_refused(tmp_path, monkeypatch):
    (tmp_path / "a.zip").write_bytes(make_zip({"a.bin": bytes(100_000)}))
    (tmp_path / "out").mkdir()
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9, 1000))
    with pytest.raises(LookalikeError, match="only 1000 are free"):
        extract_zip(tmp_path / "a.zip", tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []
