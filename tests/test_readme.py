"""The README's *Using it* examples run as written: its Python block(s) literally, and its offline
shell lines.

They run in a fresh folder holding ``a.jpg``, ``b.jpg`` and ``query.jpg`` (copies of real photos)
and a library at ``./.lookalike`` made by ``lookalike index .`` first, as a reader would have.
(Later sections' examples need datasets or downloaded weights; their own tests cover them.)
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tests.conftest import ROOT, run_cli

README = ROOT / "README.md"
#: Shell lines of the README that need no network and no weights beyond the bundled ones.
OFFLINE = ("lookalike metrics", "lookalike status", "lookalike search query.jpg --json",
           "lookalike dupes --metric effnet-lite0", "lookalike doctor --repair")


def fenced(language: str, section: str = "Using it") -> list[str]:
    """The fenced code blocks of ``language`` in the README's ``## section``, in order."""
    text = README.read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(section)}\n(.*?)(?=^## )", text, re.M | re.S)
    assert match, f"the README has no '## {section}' section"
    return re.findall(rf"^```{language}\n(.*?)^```", match.group(1), re.M | re.S)


@pytest.fixture(scope="module")
def reader_folder(photos, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("reader")
    for name, photo in zip(("a.jpg", "b.jpg", "query.jpg"), photos[:3]):
        shutil.copyfile(photo, folder / name)
    run_cli("index", ".", "-q", cwd=folder, check=True)
    return folder


def test_readme_python_blocks_run_literally(reader_folder):
    blocks = fenced("python")
    assert blocks, "the README has no Python example"
    for code in blocks:
        proc = subprocess.run([sys.executable, "-c", code], cwd=reader_folder, capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
        assert proc.returncode == 0, proc.stderr
    hits = [line.split() for line in proc.stdout.splitlines()]
    assert [h[0] for h in hits] == ["1", "2", "3"]  # three photos, ranked
    assert hits[0][1] == str(reader_folder / "query.jpg") and float(hits[0][2]) == pytest.approx(0, abs=1e-5)
    assert {Path(h[1]).name for h in hits} == {"a.jpg", "b.jpg", "query.jpg"}


def test_readme_offline_shell_lines_run_as_written(reader_folder):
    lines = [line.split("#")[0].strip() for block in fenced("sh") for line in block.splitlines()]
    runnable = list(dict.fromkeys(line for line in lines if line in OFFLINE))
    assert sorted(runnable) == sorted(OFFLINE), "the README's offline examples changed; update OFFLINE"
    for line in runnable:
        proc = run_cli(*shlex.split(line)[1:], cwd=reader_folder, timeout=300)
        assert proc.returncode == 0, (line, proc.stderr)
        assert "Traceback" not in proc.stderr
        if "--json" in line:
            assert json.loads(proc.stdout)
