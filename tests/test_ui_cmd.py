"""``lookalike ui``: help, a clear error without a library, the streamlit command it runs, a token
made when none is given (and printed in the admin link), the app answering over HTTP."""

from __future__ import annotations

import argparse
import urllib.request
from pathlib import Path

import pytest

from lookalike.cli.ui_cmd import command
from lookalike.ui import browser, services as sv


def _args(**kw) -> argparse.Namespace:
    base = {"library": None, "db": None, "port": 8501, "host": "127.0.0.1", "admin_token": None, "url": None}
    return argparse.Namespace(**{**base, **kw})


def test_help_names_the_options(cli) -> None:
    out = cli("ui", "--help", check=True).stdout
    for opt in ("--library", "--port", "--host", "--admin-token", "--db", "PostgreSQL"):
        assert opt in out


def test_missing_library_is_one_line_and_exit_2(cli, tmp_path: Path) -> None:
    proc = cli("ui", "--library", str(tmp_path / "nothing"))
    assert proc.returncode == 2 and "no lookalike library" in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1


def test_command_makes_a_token_and_passes_library_and_address(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(sv.TOKEN_ENV, raising=False)
    cmd, env, link = command(_args(library=tmp_path / "lib", host="0.0.0.0", port=9000))
    token = env[sv.TOKEN_ENV]
    assert len(token) >= 20 and link == f"http://localhost:9000/compare?token={token}"
    assert token not in " ".join(cmd)  # the token travels in the environment, not on the command line
    assert cmd[1:4] == ["-m", "streamlit", "run"] and cmd[4].endswith("lookalike/ui/app.py")
    assert cmd[cmd.index("--server.address") + 1] == "0.0.0.0" and cmd[cmd.index("--server.port") + 1] == "9000"
    assert env[sv.LIBRARY_ENV] == str((tmp_path / "lib").resolve())
    assert command(_args(library=tmp_path, admin_token="given"))[1][sv.TOKEN_ENV] == "given"
    other = command(_args(library=tmp_path))[1][sv.TOKEN_ENV]
    assert other != token  # a fresh token each start
    _, env, link = command(_args(library=tmp_path, db="postgresql+psycopg://u@h/db", url="https://study.example/"))
    assert env[sv.DB_ENV] == "postgresql+psycopg://u@h/db" and env[sv.URL_ENV] == "https://study.example/"
    assert link.startswith("https://study.example/compare?token=")


@pytest.mark.slow  # starts the real server (about 10 s)
def test_the_server_starts_and_answers(tmp_path: Path, photos: list[Path], cli) -> None:
    lib = tmp_path / "lib"
    cli("index", *map(str, photos[:3]), "--library", str(lib), "-m", "tiny-vit", "-q", check=True)
    with browser.serve(lib, "tok", tmp_path / "log") as server:
        with urllib.request.urlopen(f"{server.url}/_stcore/health", timeout=10) as r:
            assert r.read() == b"ok"
    assert "admin link: http://localhost:" in (tmp_path / "log").read_text()
