"""import_dir(): fill the cache from a folder, as on an air-gapped machine."""

from __future__ import annotations

import shutil

import pytest
from tests.weights_server import (  # noqa: F401 (server is a fixture)
    add_metric,
    cache_files,
    make_zip,
    random_bytes,
    server,
    sha256,
)

from lookalike.embed.weights import checksums
from lookalike.embed.config import WeightFile
from lookalike.embed.weights import cached_path, is_present, resolve, verify
from lookalike.embed.weights.importer import import_dir
from lookalike.errors import UsageError
from lookalike.paths import weights_dir


def names(rows):
    return sorted(r["name"] for r in rows)


def test_import_by_name_from_a_nested_folder(tmp_path):
    data = random_bytes(5000)
    wf = WeightFile(name="net.pth", url="http://127.0.0.1:9/net.pth", sha256=sha256(data))
    add_metric("m", [wf, WeightFile(name="other.pth", url="http://127.0.0.1:9/other.pth")])
    (tmp_path / "usb" / "deep").mkdir(parents=True)
    (tmp_path / "usb" / "deep" / "net.pth").write_bytes(data)
    report = import_dir(tmp_path / "usb", ["m"])
    assert names(report.imported) == ["net.pth"] and names(report.missing) == ["other.pth"]
    assert report.imported[0]["metrics"] == ["m"]
    assert cached_path(wf).read_bytes() == data
    assert [r.status for r in verify(["m"])] == ["ok", "missing"]
    again = import_dir(tmp_path / "usb", ["m"])
    assert names(again.present) == ["net.pth"] and again.imported == []


def test_import_by_sha256_when_the_name_differs(tmp_path):
    data = random_bytes(5000)
    wf = WeightFile(name=f"vgg16-{sha256(data)[:8]}.pth", sha256=sha256(data)[:8])
    add_metric("m", [wf])
    (tmp_path / "a.pth").write_bytes(random_bytes(5000))
    (tmp_path / "renamed.pth").write_bytes(data)
    report = import_dir(tmp_path, ["m"])
    assert [r["source"] for r in report.imported] == [str(tmp_path / "renamed.pth")]
    assert cached_path(wf).read_bytes() == data


def test_corrupt_file_is_rejected_and_not_placed(tmp_path):
    data = random_bytes(5000)
    wf = WeightFile(name="net.pth", sha256=sha256(data))
    add_metric("m", [wf])
    (tmp_path / "net.pth").write_bytes(data[:-1] + b"\0")
    report = import_dir(tmp_path, ["m"])
    assert names(report.rejected) == ["net.pth"] and names(report.missing) == ["net.pth"]
    assert not cached_path(wf).exists()
    assert [f for f in cache_files(weights_dir()) if not f.endswith(".lock")] == []


def test_file_without_checksum_is_pinned_on_import(tmp_path):
    wf = WeightFile(name="dino.pth", url="http://127.0.0.1:9/dino.pth")
    add_metric("m", [wf])
    data = random_bytes(1000)
    (tmp_path / "dino.pth").write_bytes(data)
    assert names(import_dir(tmp_path).imported) == ["dino.pth"]
    assert checksums.entry("dino.pth")["sha256"] == sha256(data)
    assert checksums.entry("dino.pth")["trust"] == "pinned"


def test_import_an_archive_zip_unpacks_it(tmp_path):
    members = {"models/a.bin": random_bytes(3000), "models/b.json": b"{}"}
    archive = make_zip(members)
    wf = WeightFile(name="ckpt.zip", sha256=sha256(archive), unpack=True)
    add_metric("m", [wf])
    (tmp_path / "ckpt.zip").write_bytes(archive)
    assert names(import_dir(tmp_path).imported) == ["ckpt.zip"]
    folder = cached_path(wf)
    assert {n: (folder / n).read_bytes() for n in members} == members
    assert [r.status for r in verify(["m"])] == ["ok"]


def copy_connected_cache(server, tmp_path, monkeypatch, wfs):  # noqa: F811
    """Fetch on a 'connected machine' (one home), copy its cache, switch to a fresh home."""
    add_metric("m", wfs)
    for wf in wfs:
        resolve(wf, "m")
    shutil.copytree(weights_dir(), tmp_path / "copied")
    monkeypatch.setenv("LOOKALIKE_HOME", str(tmp_path / "airgapped"))
    add_metric("m", wfs)
    return tmp_path / "copied"


def test_import_a_copied_cache_uses_its_records(server, tmp_path, monkeypatch):  # noqa: F811
    members = {"models/lora/adapter_model.bin": random_bytes(3000), "models/lora/cfg.json": b"{}"}
    server.files["ckpt.zip"] = make_zip(members)
    server.files["dino.pth"] = random_bytes(4000)
    wfs = [WeightFile(name="ckpt.zip", url=server.url("ckpt.zip"), unpack=True),
           WeightFile(name="dino.pth", url=server.url("dino.pth"))]
    copied = copy_connected_cache(server, tmp_path, monkeypatch, wfs)
    assert not any(is_present(wf) for wf in wfs)
    report = import_dir(copied)
    assert names(report.imported) == ["ckpt.zip", "dino.pth"] and report.rejected == []
    assert [e["trust"] for e in map(checksums.entry, ["ckpt.zip", "dino.pth"])] == ["recorded", "pinned"]
    assert checksums.entry("dino.pth")["sha256"] == sha256(server.files["dino.pth"])
    assert [r.status for r in verify(["m"])] == ["ok", "ok"]
    assert (cached_path(wfs[0]) / "models/lora/cfg.json").read_bytes() == b"{}"


def test_tampered_copy_of_an_extracted_folder_is_rejected(server, tmp_path, monkeypatch):  # noqa: F811
    server.files["ckpt.zip"] = make_zip({"models/a.bin": random_bytes(3000)})
    server.files["dino.pth"] = random_bytes(4000)
    wfs = [WeightFile(name="ckpt.zip", url=server.url("ckpt.zip"), unpack=True),
           WeightFile(name="dino.pth", url=server.url("dino.pth"))]
    copied = copy_connected_cache(server, tmp_path, monkeypatch, wfs)
    (copied / "ckpt" / "models" / "a.bin").write_bytes(b"evil")
    (copied / "dino.pth").write_bytes(b"evil")
    report = import_dir(copied)
    assert names(report.rejected) == ["ckpt.zip", "dino.pth"] and report.imported == []
    assert not any(is_present(wf) for wf in wfs)
    assert [p.name for p in weights_dir().iterdir() if p.is_dir()] == [".partial"]


def test_import_needs_a_folder(tmp_path):
    with pytest.raises(UsageError):
        import_dir(tmp_path / "nope")
