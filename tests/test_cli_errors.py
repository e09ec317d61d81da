"""Expected failures are one clear line and the documented exit code; readers never write (issue 10.13)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from lookalike.cli import describe_failure
from tests.conftest import ROOT, unprivileged


def one_line(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


@pytest.fixture(scope="module")
def small_lib(photos, tmp_path_factory) -> Path:
    lib = tmp_path_factory.mktemp("lib") / "lib"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-m", "lookalike", "index", *map(str, photos[:4]), "--library",
                    str(lib), "-m", "tiny-vit", "-q", "--workers", "0"], check=True, env=env)
    return lib


def read_only_tree(top: Path) -> None:
    for dirpath, dirs, files in os.walk(top):
        for f in files:
            os.chmod(os.path.join(dirpath, f), stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
        os.chmod(dirpath, 0o555)


def test_read_only_library_serves_status_and_search(small_lib, photos, tmp_path):
    import shutil

    lib = tmp_path / "ro"
    shutil.copytree(small_lib, lib)
    before = {p: p.stat().st_mtime_ns for p in lib.rglob("*")}
    read_only_tree(lib)
    try:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        for args in (["status", "--json"], ["search", str(photos[0]), "-k", "2", "--json"]):
            cmd = unprivileged([sys.executable, "-m", "lookalike", *args, "--library", str(lib)])
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
            assert proc.returncode == 0, proc.stderr
            json.loads(proc.stdout.splitlines()[0])
        assert {p: p.stat().st_mtime_ns for p in lib.rglob("*")} == before  # nothing written
        assert not list(lib.glob("*-shm")) and not list(lib.glob("*-wal"))
    finally:
        for dirpath, _, _ in os.walk(lib):
            os.chmod(dirpath, 0o755)


def test_old_schema_reader_is_told_to_upgrade(small_lib, tmp_path, cli):
    import shutil

    import sqlalchemy as sa

    lib = tmp_path / "old"
    shutil.copytree(small_lib, lib)
    engine = sa.create_engine(f"sqlite:///{lib / 'library.db'}")
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0001'"))
    engine.dispose()
    proc = cli("status", "--library", str(lib))
    assert proc.returncode == 1 and "library needs upgrade" in one_line(proc)
    assert "lookalike index" in proc.stderr
    with sa.create_engine(f"sqlite:///{lib / 'library.db'}").connect() as conn:  # not migrated
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == "0001"


def test_library_is_a_file(cli, tmp_path):
    f = tmp_path / "file.txt"
    f.write_text("x")
    for args in (["status"], ["index", str(f)]):
        proc = cli(*args, "--library", str(f))
        assert proc.returncode == 2 and "is a file, not a library folder" in one_line(proc)


def test_bad_and_unreachable_db_urls_are_one_line_and_not_remembered(cli, small_lib, photos, tmp_path):
    import shutil

    lib = tmp_path / "lib"
    shutil.copytree(small_lib, lib)
    saved = (lib / "library.json").read_text()
    proc = cli("index", str(photos[0]), "--library", str(lib), "--db", "notaurl", "-m", "tiny-vit")
    assert proc.returncode == 2 and "not a database URL" in one_line(proc)
    proc = cli("index", str(photos[0]), "--library", str(lib), "-m", "tiny-vit",
               "--db", "postgresql+psycopg://nobody:secret@127.0.0.1:9/none")
    line = one_line(proc)
    assert proc.returncode == 1 and "cannot open database" in line and "secret" not in line
    assert (lib / "library.json").read_text() == saved  # the typo did not break the library
    assert cli("status", "--library", str(lib), check=True).returncode == 0
    fresh = tmp_path / "fresh"
    assert cli("index", str(photos[0]), "--library", str(fresh), "--db", "notaurl").returncode == 2
    assert not fresh.exists()  # no half-made library either
    verbose = cli("status", "--library", str(lib), "--db", "notaurl", "-v")
    assert verbose.returncode == 2 and "Traceback" in verbose.stderr


def test_describe_failure():
    import errno

    msg, code = describe_failure(OSError(errno.ENOSPC, "No space left on device", "/x/library.db"))
    assert code == 1 and "disk full" in msg and "/x/library.db" in msg
    msg, code = describe_failure(RuntimeError("boom\nmore"))
    assert code == 1 and msg == "internal error: RuntimeError: boom (run with -v for the traceback)"
    import pickle

    assert describe_failure(pickle.UnpicklingError("bad"))[1] == 1
