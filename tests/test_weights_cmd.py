"""``lookalike weights list|fetch|import|verify`` in a subprocess, against a local HTTP server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.weights_server import add_metric, make_zip, random_bytes, server, sha256  # noqa: F401

from lookalike.embed.config import WeightFile
from lookalike.paths import weights_dir


@pytest.fixture
def metric(server):  # noqa: F811
    """A user metric 'm' needing one checked file and one zip to unpack, served locally."""
    server.files["net.pth"] = random_bytes(20_000)
    server.files["ckpt.zip"] = make_zip({"models/a.bin": random_bytes(2000)})
    add_metric("m", [WeightFile(name="net.pth", url=server.url("net.pth"),
                                sha256=sha256(server.files["net.pth"])),
                     WeightFile(name="ckpt.zip", url=server.url("ckpt.zip"), unpack=True)])
    return server


@pytest.mark.parametrize("action", [[], ["list"], ["fetch"], ["import"], ["verify"]])
def test_help_everywhere(cli, action):
    proc = cli("weights", *action, "--help")
    assert proc.returncode == 0 and "usage: lookalike weights" in proc.stdout


def test_list_fetch_verify_round_trip(cli, metric):
    before = json.loads(cli("weights", "list", "m", "--json", check=True).stdout)
    assert [(f["name"], f["present"], f["source"]) for f in before[0]["files"]] == [
        ("net.pth", False, metric.url("net.pth")), ("ckpt.zip", False, metric.url("ckpt.zip"))]

    proc = cli("weights", "fetch", "m", "--json", "-q", check=True)
    assert [r["status"] for r in json.loads(proc.stdout)] == ["downloaded", "downloaded"]
    assert (weights_dir() / "net.pth").read_bytes() == metric.files["net.pth"]
    assert (weights_dir() / "ckpt" / "models" / "a.bin").is_file()
    again = json.loads(cli("weights", "fetch", "m", "--json", check=True).stdout)
    assert [r["status"] for r in again] == ["present", "present"]
    assert len(metric.requests) == 2

    after = json.loads(cli("weights", "list", "m", "--json", check=True).stdout)
    assert [(f["present"], f["size"]) for f in after[0]["files"]] == [(True, 20_000), (True, 2000)]
    text = cli("weights", "list", "m", check=True).stdout
    assert "net.pth" in text and "yes" in text

    ok = json.loads(cli("weights", "verify", "m", "--json", check=True).stdout)
    assert [r["status"] for r in ok] == ["ok", "ok"]
    (weights_dir() / "ckpt" / "models" / "a.bin").write_bytes(b"tampered")
    proc = cli("weights", "verify", "m", "--json")
    assert proc.returncode == 1
    assert [r["status"] for r in json.loads(proc.stdout)] == ["ok", "corrupt"]


def test_fetch_offline_exits_2_with_the_remedies(cli, metric):
    proc = cli("weights", "fetch", "m", env={"LOOKALIKE_OFFLINE": "1"})
    assert proc.returncode == 2
    for remedy in ("lookalike weights fetch m", "lookalike weights import DIR",
                   "LOOKALIKE_WEIGHTS_MIRROR", "effnet-lite0"):
        assert remedy in proc.stderr
    assert metric.requests == [] and not (weights_dir() / "net.pth").exists()


def test_fetch_through_a_mirror(cli, metric):
    metric.files["mirror/net.pth"] = metric.files["net.pth"]
    metric.files["mirror/ckpt.zip"] = metric.files["ckpt.zip"]
    proc = cli("weights", "fetch", "m", env={"LOOKALIKE_WEIGHTS_MIRROR": metric.url("mirror")})
    assert proc.returncode == 0, proc.stderr
    assert sorted(r["path"] for r in metric.requests) == ["/mirror/ckpt.zip", "/mirror/net.pth"]


def test_fetch_corrupt_download_exits_1(cli, metric):
    metric.corrupt = True
    proc = cli("weights", "fetch", "m", "--json")
    assert proc.returncode == 1
    assert json.loads(proc.stdout)[0]["status"] == "corrupt"
    assert not (weights_dir() / "net.pth").exists()


def test_fetch_unknown_metric_exits_2(cli):
    proc = cli("weights", "fetch", "no-such-metric")
    assert proc.returncode == 2 and "unknown metric" in proc.stderr


def test_import_then_verify(cli, metric, tmp_path):
    (tmp_path / "usb").mkdir()
    (tmp_path / "usb" / "net.pth").write_bytes(metric.files["net.pth"])
    (tmp_path / "usb" / "ckpt.zip").write_bytes(metric.files["ckpt.zip"])
    proc = cli("weights", "import", str(tmp_path / "usb"), "--json", check=True)
    report = json.loads(proc.stdout)
    assert sorted(r["name"] for r in report["imported"]) == ["ckpt.zip", "net.pth"]
    assert metric.requests == []
    assert cli("weights", "verify").returncode == 0


def test_import_exit_codes(cli, metric, tmp_path):
    (tmp_path / "usb").mkdir()
    (tmp_path / "usb" / "net.pth").write_bytes(b"not the weights")
    proc = cli("weights", "import", str(tmp_path / "usb"), "--json")
    assert proc.returncode == 1 and json.loads(proc.stdout)["rejected"][0]["name"] == "net.pth"
    os.remove(tmp_path / "usb" / "net.pth")
    assert cli("weights", "import", str(tmp_path / "usb")).returncode == 0
    assert cli("weights", "import", str(tmp_path / "usb"), "--metric", "m").returncode == 2
    assert cli("weights", "import", str(tmp_path / "nope")).returncode == 2


def test_concurrent_fetches_download_once(metric):
    """Two processes fetching the same metric at once: one downloads, the other waits for it."""
    metric.delay = 1.0
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    procs = [subprocess.Popen([sys.executable, "-m", "lookalike", "weights", "fetch", "m", "-q"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    assert sorted(r["path"] for r in metric.requests) == ["/ckpt.zip", "/net.pth"]
    assert (weights_dir() / "net.pth").read_bytes() == metric.files["net.pth"]
