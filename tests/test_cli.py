"""The command line as users run it (subprocess), for the foundation commands."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from lookalike.cli import COMMANDS
from tests.conftest import ROOT


def test_every_command_has_help(cli):
    import importlib.util

    top = cli("--help")
    assert top.returncode == 0
    names = [n for n in COMMANDS if importlib.util.find_spec(f"lookalike.cli.{n}_cmd") is not None]
    assert "search" in names and "index" in names
    for name in names:
        assert name in top.stdout
        proc = cli(name, "--help")
        assert proc.returncode == 0 and "usage: lookalike " + name in proc.stdout, name


def test_building_the_parser_imports_neither_numpy_nor_torch():
    code = ("import sys; from lookalike.cli import build_parser; build_parser().format_help(); "
            "heavy = sorted(m for m in ('numpy', 'torch', 'PIL', 'sqlalchemy', 'faiss') if m in sys.modules); "
            "print(','.join(heavy))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout.strip() == ""


def test_import_lookalike_is_cheap():
    """``import lookalike`` stays under 0.1 s of its own time (``python -X importtime``)."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", "import lookalike"],
                          capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    own = {}
    for line in proc.stderr.splitlines():  # "import time: self [us] | cumulative | imported package"
        parts = line.split("|")
        if len(parts) == 3 and parts[0].split(":")[-1].strip().isdigit():
            own[parts[2].strip()] = (int(parts[0].split(":")[-1]), int(parts[1]))
    ours = [(name, cum) for name, (_, cum) in own.items() if name == "lookalike"]
    assert ours and ours[0][1] < 100_000, ours  # microseconds: the package and what it imports
    heavy = {"numpy", "torch", "PIL", "sqlalchemy"} & set(own)
    assert not heavy


def test_metrics_json_reports_effnet_offline(cli):
    rows = json.loads(cli("metrics", "--json", check=True).stdout)
    eff = next(r for r in rows if r["name"] == "effnet-lite0")
    assert eff["offline"] and eff["weights_present"] and eff["dim"] == 1280
    assert all(not r["test_only"] for r in rows)


def test_embed_json_and_out(cli, photos, tmp_path):
    proc = cli("embed", str(photos[0]), str(photos[1]), "--metric", "tiny-vit", "--json", check=True)
    lines = [json.loads(x) for x in proc.stdout.splitlines()]
    assert [x["path"] for x in lines] == [str(photos[0]), str(photos[1])]
    assert all(len(x["vector"]) == 32 for x in lines)
    out = tmp_path / "v.npy"
    cli("embed", str(photos[0]), str(photos[1]), "-m", "tiny-vit", "--out", str(out), "-q", check=True)
    vecs = np.load(out)
    assert vecs.shape == (2, 32)
    assert np.allclose(vecs[0], lines[0]["vector"], atol=1e-6)
    from lookalike.cli.embed_cmd import read_paths

    assert read_paths(tmp_path / "v.paths.jsonl") == [str(photos[0]), str(photos[1])]


def test_embed_folder_with_bad_file_reports_it(cli, photos, tmp_path):
    (tmp_path / "broken.jpg").write_text("not a jpeg")
    (tmp_path / "ok.jpg").write_bytes(photos[0].read_bytes())
    proc = cli("embed", str(tmp_path), "-m", "tiny-vit", "--json")
    assert proc.returncode == 1  # some files failed
    rows = [json.loads(x) for x in proc.stdout.splitlines()]
    assert {r["path"].rsplit("/", 1)[1]: ("error" in r) for r in rows} == {"ok.jpg": False, "broken.jpg": True}


@pytest.mark.parametrize("args", [["embed", "x.jpg", "-m", "no-such-metric"], ["embed", "/no/such/file.jpg"],
                                  ["frobnicate"]])
def test_usage_errors_exit_2(cli, args, tmp_path):
    (tmp_path / "x.jpg").write_bytes(b"")
    proc = cli(*args, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip()


def test_all_files_bad_exits_1(cli, tmp_path):
    (tmp_path / "a.jpg").write_text("nope")
    assert cli("embed", str(tmp_path / "a.jpg"), "-m", "tiny-vit").returncode == 1


def test_effnet_embeds_with_the_network_unplugged(cli, photos):
    """The bundled metric needs no network: run in a network namespace with no interfaces up
    (as root, e.g. in CI), else with every offline switch set and proxies pointing nowhere."""
    args = [sys.executable, "-m", "lookalike", "embed", *map(str, photos[:3]), "-m", "effnet-lite0", "--json"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LOOKALIKE_OFFLINE": "1", "HF_HUB_OFFLINE": "1",
           "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9"}
    if os.geteuid() == 0 and shutil.which("unshare"):
        args = ["unshare", "--net", "--", *args]
    proc = subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(x) for x in proc.stdout.splitlines()]
    assert len(rows) == 3 and all(len(r["vector"]) == 1280 for r in rows)
