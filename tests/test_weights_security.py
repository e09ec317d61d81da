"""Weights files as an attacker would hand them over: links, FIFOs, pickles; verify and trust levels."""

from __future__ import annotations

import io
import json
import os
import pickle
import zipfile
from pathlib import Path

import pytest
import torch
from tests.weights_server import add_metric, random_bytes, sha256

from lookalike.embed.backbones.common import load_state_dict_file
from lookalike.embed.config import WeightFile
from lookalike.embed.weights import cached_path, checksums, is_present, trust, verify
from lookalike.embed.weights.cachefs import open_regular
from lookalike.embed.weights.formats import (
    CODE,
    PICKLE,
    SAFETENSORS,
    TORCH_LEGACY,
    TORCH_ZIP,
    sniff,
)
from lookalike.embed.weights.importer import import_dir
from lookalike.errors import WeightsCorruptError
from lookalike.paths import weights_dir

URL = "http://127.0.0.1:9/unreachable"


class RunsCode:
    """Unpickling this calls ``open(marker, "w")``: the payload of a malicious checkpoint."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (open, (self.marker, "w"))


def torch_zip(obj: object) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def torch_zip_with_pickle(payload: bytes) -> bytes:
    """A real torch zip archive whose ``data.pkl`` is replaced by ``payload``."""
    src = zipfile.ZipFile(io.BytesIO(torch_zip({"w": torch.zeros(2)})))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        for info in src.infolist():
            zf.writestr(info, payload if info.filename.endswith("/data.pkl") else src.read(info))
    return out.getvalue()


def legacy_torch(obj: object) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf, _use_new_zipfile_serialization=False)
    return buf.getvalue()


def test_formats_are_told_apart_by_content(tmp_path):
    marker = tmp_path / "ran"
    cases = {
        "st.pth": (random_bytes(500), SAFETENSORS),
        "zip.pth": (torch_zip({"w": torch.zeros(3), "dt": torch.float16}), TORCH_ZIP),
        "legacy.pth": (legacy_torch({"w": torch.zeros(3)}), TORCH_LEGACY),
        "pickle.pth": (pickle.dumps({"w": [0.0] * 3}), PICKLE),
        "evil.pth": (torch_zip_with_pickle(pickle.dumps(RunsCode(marker), protocol=2)), CODE),
        "evil4.pth": (torch_zip_with_pickle(pickle.dumps(RunsCode(marker), protocol=4)), CODE),
    }
    for name, (data, kind) in cases.items():
        (tmp_path / name).write_bytes(data)
        assert sniff(tmp_path / name) == kind, name
    assert not marker.exists()


def test_import_refuses_a_symlink_even_to_a_readable_file(tmp_path, cli):
    add_metric("m", [WeightFile(name="dino.pth", url=URL)])
    (tmp_path / "usb").mkdir()
    (tmp_path / "usb" / "dino.pth").symlink_to("/etc/passwd")
    report = import_dir(tmp_path / "usb", ["m"])
    assert [r["name"] for r in report.rejected] == ["dino.pth"] and "symbolic link" in report.rejected[0]["reason"]
    assert report.imported == [] and checksums.entry("dino.pth") is None
    assert not cached_path(WeightFile(name="dino.pth")).exists()
    proc = cli("weights", "import", str(tmp_path / "usb"), "-m", "m")
    assert proc.returncode == 1 and "symbolic link" in proc.stdout and "Traceback" not in proc.stderr


def test_import_refuses_a_fifo_without_blocking(tmp_path, cli):
    add_metric("m", [WeightFile(name="dino.pth", url=URL)])
    (tmp_path / "usb").mkdir()
    os.mkfifo(tmp_path / "usb" / "dino.pth")
    proc = cli("weights", "import", str(tmp_path / "usb"), "-m", "m", "--json", timeout=60)
    assert proc.returncode == 1, proc.stderr
    (row,) = json.loads(proc.stdout)["rejected"]
    assert "FIFO" in row["reason"] and "Traceback" not in proc.stderr
    with pytest.raises(WeightsCorruptError, match="FIFO"):  # also when swapped in after listing
        open_regular(tmp_path / "usb" / "dino.pth")


def test_import_refuses_a_linked_folder_for_an_archive(tmp_path):
    add_metric("m", [WeightFile(name="ckpt.zip", url=URL, unpack=True)])
    (tmp_path / "real" / "models").mkdir(parents=True)
    (tmp_path / "real" / "models" / "a.bin").write_bytes(random_bytes(300))
    (tmp_path / "usb").mkdir()
    (tmp_path / "usb" / "ckpt").symlink_to(tmp_path / "real")
    report = import_dir(tmp_path / "usb", ["m"])
    assert [r["name"] for r in report.rejected] == ["ckpt.zip"] and report.imported == []
    assert not is_present(WeightFile(name="ckpt.zip", unpack=True))


@pytest.mark.parametrize("kind", ["plain pickle", "pickle naming code", "legacy torch", "random bytes"])
def test_import_refuses_files_that_are_not_safe_weights(tmp_path, kind):
    marker = tmp_path / "ran"
    data = {"plain pickle": pickle.dumps({"w": [1.0, 2.0]}),
            "pickle naming code": torch_zip_with_pickle(pickle.dumps(RunsCode(marker), protocol=2)),
            "legacy torch": legacy_torch({"w": torch.zeros(2)}),
            "random bytes": os.urandom(4096)}[kind]
    add_metric("m", [WeightFile(name="dino.pth", url=URL)])  # no published checksum: first use
    (tmp_path / "usb").mkdir()
    (tmp_path / "usb" / "dino.pth").write_bytes(data)
    report = import_dir(tmp_path / "usb", ["m"])
    assert [r["name"] for r in report.rejected] == ["dino.pth"], report.to_dict()
    assert "refusing it" in report.rejected[0]["reason"]
    assert checksums.entry("dino.pth") is None and not is_present(WeightFile(name="dino.pth"))
    assert [f for f in os.listdir(weights_dir()) if f not in (".partial", "checksums.json")] == []
    assert not marker.exists()


def test_import_accepts_torch_zip_and_safetensors_and_pinned_legacy_files(tmp_path):
    legacy = legacy_torch({"w": torch.zeros(2)})
    files = {"a.pth": torch_zip({"w": torch.ones(2)}), "b.safetensors": random_bytes(400), "c.pth": legacy}
    add_metric("m", [WeightFile(name="a.pth", url=URL), WeightFile(name="b.safetensors", url=URL),
                     WeightFile(name="c.pth", url=URL, sha256=sha256(legacy))])
    (tmp_path / "usb").mkdir()
    for name, data in files.items():
        (tmp_path / "usb" / name).write_bytes(data)
    report = import_dir(tmp_path / "usb", ["m"])
    assert sorted(r["name"] for r in report.imported) == sorted(files) and report.rejected == []
    assert [r.status for r in verify(["m"])] == ["ok", "ok", "ok"]
    assert torch.equal(load_state_dict_file(str(cached_path(WeightFile(name="a.pth"))))["w"], torch.ones(2))


def test_a_malicious_checkpoint_in_the_cache_is_never_run(tmp_path, cli):
    """Placed by hand (not imported): verify flags it, and loading it refuses without running it."""
    marker = tmp_path / "ran"
    add_metric("m", [WeightFile(name="evil.pth", url=URL)])
    weights_dir().mkdir(parents=True)
    path = weights_dir() / "evil.pth"
    path.write_bytes(torch_zip_with_pickle(pickle.dumps(RunsCode(marker), protocol=2)))
    (result,) = verify(["m"])
    assert result.status == "corrupt" and "names code" in result.detail
    with pytest.raises(WeightsCorruptError, match="objects other than tensors"):
        load_state_dict_file(str(path))
    proc = cli("weights", "verify", "m")
    assert proc.returncode == 1 and "corrupt" in proc.stdout
    assert not marker.exists()


def test_verify_reports_unknown_and_unpinned_files_and_exits_1(cli):
    data = random_bytes(600)
    add_metric("m", [WeightFile(name="net.pth", url=URL)])
    weights_dir().mkdir(parents=True)
    (weights_dir() / "net.pth").write_bytes(data)  # copied by hand: nothing vouches for it
    (weights_dir() / "stray.pth").write_bytes(b"x")
    (weights_dir() / "junk").mkdir()
    proc = cli("weights", "verify", "--json")
    assert proc.returncode == 1, proc.stderr
    rows = {r["name"]: r["status"] for r in json.loads(proc.stdout)}
    assert rows["net.pth"] == "unpinned" and rows["stray.pth"] == "unknown" and rows["junk/"] == "unknown"
    assert "checksums.json" not in rows and ".partial/" not in rows
    assert checksums.entry("net.pth") is None  # verify never pins silently
    (weights_dir() / "stray.pth").unlink()
    (weights_dir() / "junk").rmdir()
    assert cli("weights", "verify", "m", "--pin").returncode == 0
    assert checksums.entry("net.pth")["sha256"] == sha256(data)
    assert cli("weights", "verify").returncode == 0


def test_strict_verify_refuses_files_trusted_on_first_use(tmp_path, cli):
    data = random_bytes(600)
    add_metric("m", [WeightFile(name="dino.pth", url=URL)])
    (tmp_path / "usb").mkdir()
    (tmp_path / "usb" / "dino.pth").write_bytes(data)
    assert cli("weights", "import", str(tmp_path / "usb"), "-m", "m").returncode == 0
    assert cli("weights", "verify", "m").returncode == 0
    proc = cli("weights", "verify", "m", "--strict", "--json")
    assert proc.returncode == 1
    assert [r["status"] for r in json.loads(proc.stdout)] == ["tofu"]
    assert cli("weights", "verify", "effnet-lite0", "--strict").returncode == 0  # catalog-pinned


def test_weights_list_says_how_each_file_is_trusted(cli):
    rows = json.loads(cli("weights", "list", "--json", check=True).stdout)
    trusts = {f["name"]: f["trust"] for r in rows for f in r["files"]}
    assert trusts["efficientnet-lite0-57934424.pth"] == "catalog"
    assert trusts["alexnet-owt-7be5be79.pth"] == trusts["dino_vitbase16_pretrain.pth"] == "catalog"
    assert trusts["dreamsim_ensemble_checkpoint.zip"] == "tofu"  # its publisher gives no checksum
    assert "trust" in cli("weights", "list", check=True).stdout.splitlines()[0]
    assert trust(WeightFile(name="x", sha256="a" * 64)) == "catalog"
    assert trust(WeightFile(name="x-7be5be79.pth", sha256="7be5be79")) == "prefix"
    assert trust(WeightFile(name="x")) == "tofu"


def test_every_catalog_file_with_fixed_bytes_and_a_known_hash_is_pinned_in_full():
    """Full sha256 and size for every downloaded file but the DreamSim archives and the Stable
    Diffusion 1.5 files (no published hash known: trust on first use, `weights list` says so)."""
    from lookalike.embed.registry import builtin_configs

    for config in builtin_configs().values():
        for wf in config.weights:
            if wf.package or wf.name.startswith(("dreamsim_", "sd15-")):
                assert wf.package or trust(wf) == "tofu", (config.name, wf.name)
                continue
            assert trust(wf) == "catalog" and wf.size, (config.name, wf.name)
