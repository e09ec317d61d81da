"""``lookalike index`` / ``status`` / ``doctor`` as a user runs them (subprocesses)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from tests.conftest import ROOT
from tests.dbfixtures import copy_photos, db_url  # noqa: F401


def db_args(db_url: str | None) -> list[str]:  # noqa: F811
    return ["--db", db_url] if db_url else []


def test_index_status_doctor_json(cli, photos, tmp_path, db_url):  # noqa: F811
    pics = copy_photos(photos, tmp_path / "pics", 12)
    (tmp_path / "pics" / "bad.jpg").write_text("not a jpeg")
    lib = str(tmp_path / "lib")
    proc = cli("index", str(tmp_path / "pics"), "--library", lib, "--metric", "tiny-vit", "--metric", "tiny-vit-b",
               "--json", *db_args(db_url), check=True)
    report = json.loads(proc.stdout)
    assert (report["listed"], report["read"], report["failed"]) == (13, 13, 1)
    assert report["embedded"] == {"tiny-vit": 12, "tiny-vit-b": 12}
    assert report["vectors"] == {"tiny-vit": 12, "tiny-vit-b": 12}
    assert report["failures"][0]["reason"] == "not an image"
    st = json.loads(cli("status", "--library", lib, "--json", check=True).stdout)  # URL remembered
    assert st["files"] == {"total": 13, "ok": 12, "failed": 1, "skipped": 0}
    assert {m["name"]: m["vectors"] for m in st["metrics"]} == {"tiny-vit": 12, "tiny-vit-b": 12}
    assert st["reasons"] == {"not an image": 1} and st["problems"][0]["path"].endswith("bad.jpg")
    assert st["metrics"][0]["factory"] == "Flat"
    text = cli("status", "--library", lib, check=True).stdout
    assert "12 ok, 1 failed" in text and "not an image" in text
    doc = cli("doctor", "--library", lib, "--json")
    assert doc.returncode == 0 and json.loads(doc.stdout)["consistent"] is True
    pics[0].unlink()
    doc = cli("doctor", "--library", lib, "--json")
    assert doc.returncode == 1 and json.loads(doc.stdout)["findings"][0]["kind"] == "missing-files"
    doc = cli("doctor", "--library", lib, "--repair", "--json")
    assert doc.returncode == 0 and json.loads(doc.stdout)["repaired"]
    # no DIR, no -m: the library's roots and metrics
    again = json.loads(cli("index", "--library", lib, "--json", check=True).stdout)
    assert again["read"] == 0 and again["metrics"] == ["tiny-vit", "tiny-vit-b"]


def test_library_from_environment_and_errors(cli, tmp_path, photos):
    env = {"LOOKALIKE_LIBRARY": str(tmp_path / "envlib")}
    assert cli("status", env=env).returncode == 2  # no library there yet
    assert cli("index", str(tmp_path / "missing"), env=env).returncode == 2
    assert cli("index", "--library", str(tmp_path / "x"), "-m", "no-such-metric",
               str(photos[0])).returncode == 2
    proc = cli("index", str(photos[0]), "-m", "tiny-vit", "--json", env=env, check=True)
    assert json.loads(proc.stdout)["library"] == str(tmp_path / "envlib")
    assert cli("index", "--help").returncode == 0


def test_two_writers(photos, tmp_path, db_url):  # noqa: F811
    """The second writer fails clearly (exit 1) while the first runs; with --wait it queues."""
    lib = tmp_path / "lib"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    base = [sys.executable, "-m", "lookalike", "index", str(photos[0].parent), "--library", str(lib),
            "-m", "tiny-vit", "--workers", "0", "--commit-every", "2", *db_args(db_url)]
    first = subprocess.Popen(base, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (lib / "lock.pid").is_file() or (lib / "lock.pid").read_text().strip() != str(first.pid):
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        second = subprocess.run(base + ["--json"], env=env, capture_output=True, text=True, timeout=120)
        waited = subprocess.Popen(base + ["--wait", "--json"], env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        assert first.wait(timeout=300) == 0, first.stderr.read() if first.stderr else ""
        out, err = waited.communicate(timeout=300)
    finally:
        first.kill()
    assert second.returncode == 1, second.stderr
    assert f"pid {first.pid}" in second.stderr and "--wait" in second.stderr
    assert waited.returncode == 0, err
    assert json.loads(out)["unchanged"] == len(photos)  # it ran after the first had finished
