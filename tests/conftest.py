"""Shared fixtures: the real photos beside the repo, a CLI runner, an isolated LOOKALIKE_HOME."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = Path(os.environ.get("LOOKALIKE_TEST_PHOTOS", ROOT.parent / "shared" / "photos"))


def photo_paths() -> list[Path]:
    if not (PHOTOS / "MANIFEST.csv").is_file():
        pytest.skip(f"real photos not found at {PHOTOS}")
    with open(PHOTOS / "MANIFEST.csv", newline="") as fh:
        return [PHOTOS / row["file"] for row in csv.DictReader(fh)]


@pytest.fixture(scope="session")
def photos() -> list[Path]:
    """The 243 real photographs in ../shared/photos, in manifest order."""
    return photo_paths()


@pytest.fixture(scope="session")
def seed() -> int:
    """The learning tests' seed (data, splits, initialisation, batch order): ``LOOKALIKE_TEST_SEED``,
    0 unless set. ``make test-seeds`` runs the tests marked ``learning`` under seeds 0-4."""
    return int(os.environ.get("LOOKALIKE_TEST_SEED", "0"))


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test touches the user's cache: LOOKALIKE_HOME points at a fresh folder."""
    if "LOOKALIKE_TEST_KEEP_HOME" not in os.environ:
        monkeypatch.setenv("LOOKALIKE_HOME", str(tmp_path_factory.mktemp("home")))


def run_cli(*args: str, check: bool = False, env: dict[str, str] | None = None,
            cwd: str | Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run ``python -m lookalike ARGS`` in a subprocess, as a user would."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "lookalike", *args], capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=timeout, stdin=subprocess.DEVNULL)
    if check and proc.returncode != 0:
        raise AssertionError(f"lookalike {' '.join(args)} -> {proc.returncode}\n{proc.stderr}")
    return proc


def unprivileged(cmd: list[str]) -> list[str]:
    """``cmd`` run without root's power to ignore file permissions (tests run as root in CI)."""
    if os.geteuid() != 0:
        return cmd
    return ["setpriv", "--bounding-set=-all", "--inh-caps=-all", "--", *cmd]


@pytest.fixture
def cli():
    return run_cli
