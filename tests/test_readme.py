"""The README's *Using it* examples run as written: its Python block(s) literally, and its offline
shell lines; every ``lookalike`` command line anywhere in the README is one the CLI accepts.

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


def command_lines() -> list[str]:
    """Every ``lookalike ...`` line of the README's code blocks (continuations joined, comments cut)."""
    text = README.read_text(encoding="utf-8")
    out = []
    for block in re.findall(r"^```[a-z]*\n(.*?)^```", text, re.M | re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("  #")[0].split(" # ")[0].strip()
            if line.startswith("lookalike "):
                out.append(line)
    return out


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


def test_every_readme_command_line_is_one_the_cli_accepts():
    """Flags and names cannot drift from the parser: each line parses (lines that need weights or
    data this machine lacks are parsed, not run; their errors are tested with their commands)."""
    from lookalike.cli import build_parser

    lines = command_lines()
    assert len(lines) > 30 and any(line.startswith("lookalike study create") for line in lines)
    from lookalike.embed.registry import list_metrics

    known = set(list_metrics())
    parser = build_parser()
    for line in lines:
        try:
            args = parser.parse_args(shlex.split(line)[1:])
        except SystemExit as exc:
            pytest.fail(f"the README's `{line}` does not parse (exit {exc.code})")
        assert args.command == shlex.split(line)[1], line
        named: list[str] = []
        for attr in ("metric", "metrics", "base"):
            value = getattr(args, attr, None) or []
            named += [value] if isinstance(value, str) else list(value)
        for name in named:
            assert name in known, f"the README's `{line}` names an unregistered metric {name!r}"
