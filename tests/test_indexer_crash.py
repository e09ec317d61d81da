"""kill -9 at random moments while indexing real photos: every later run resumes and completes.

After each kill the database must be consistent on its own (no file row without its vectors, no
orphan content: each batch is one transaction); only the FAISS file may lag behind, which every
opener repairs in memory. The final library must hold every photo exactly once, with the same
vectors as an uninterrupted run.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from lookalike.indexer.doctor import diagnose
from lookalike.library.folder import LibraryFolder
from lookalike.indexer.run import IndexOptions, index_library
from tests.conftest import ROOT
from tests.dbfixtures import db_url  # noqa: F401

KILLS = 12
KILLS_PG = 6  # the PostgreSQL run repeats the same checks with fewer kills, to keep CI short
#: Photos indexed (with ``--commit-every 4``: some 20 commits a kill can fall between).
PHOTOS = 80


def index_cmd(library: Path, photos_dir: Path, db_url: str | None) -> list[str]:  # noqa: F811
    cmd = [sys.executable, "-m", "lookalike", "index", str(photos_dir), "--library", str(library),
           "-m", "tiny-vit", "--commit-every", "4", "--batch-size", "8", "-q"]
    return cmd + (["--db", db_url] if db_url else [])


def vectors_by_path(lib: LibraryFolder) -> dict[str, np.ndarray]:
    ids = lib.ids("tiny-vit")
    vecs = lib.vectors("tiny-vit", ids)
    paths = lib.all_paths_for(ids)
    return {p: v for i, v in zip(ids, vecs) for p in paths[int(i)]}


def test_kill_9_at_random_moments(photos, tmp_path, db_url):  # noqa: F811
    photos_dir = tmp_path / "photos"  # a subset keeps each run short: more kills per minute
    photos_dir.mkdir()
    for p in photos[:PHOTOS]:
        shutil.copyfile(p, photos_dir / p.name)
    photos = sorted(photos_dir.iterdir())
    distinct = len({hashlib.sha256(p.read_bytes()).hexdigest() for p in photos})
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    ref_dir = tmp_path / "reference"
    start = time.monotonic()
    subprocess.run(index_cmd(ref_dir, photos_dir, None), env=env, check=True, timeout=600)
    full = time.monotonic() - start
    with LibraryFolder.open(ref_dir) as lib:
        reference = vectors_by_path(lib)
    assert len(reference) == len(photos)
    rng = random.Random(1234)
    killed = completed = 0
    lib_dir = tmp_path / "lib0"
    kills = KILLS_PG if db_url else KILLS
    while killed < kills:
        proc = subprocess.Popen(index_cmd(lib_dir, photos_dir, db_url), env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            proc.wait(timeout=rng.uniform(0.2, full))
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            killed += 1
            if (lib_dir / "library.json").is_file():
                with LibraryFolder.open(lib_dir) as lib:
                    kinds = {f.kind for f in diagnose(lib)}
                assert kinds <= {"index-behind", "index-missing"}, kinds
            continue
        assert proc.returncode == 0  # this run resumed and completed: check it, then start afresh
        check_complete(lib_dir, reference, distinct, len(photos))
        completed += 1
        lib_dir = tmp_path / f"lib{completed}"
        if db_url:  # a PostgreSQL database holds one library: empty it for the next one
            reset_schema(db_url)
    subprocess.run(index_cmd(lib_dir, photos_dir, db_url), env=env, check=True, timeout=600)
    check_complete(lib_dir, reference, distinct, len(photos))


def check_complete(lib_dir: Path, reference: dict[str, np.ndarray], distinct: int, n: int) -> None:
    with LibraryFolder.open(lib_dir) as lib:
        assert diagnose(lib) == []
        got = vectors_by_path(lib)
        assert sorted(got) == sorted(reference)  # every photo, once
        assert lib.vector_index("tiny-vit").ntotal == distinct
        for path, vec in got.items():
            np.testing.assert_allclose(vec, reference[path], atol=1e-5)
        report = index_library(lib, None, IndexOptions(metrics=["tiny-vit"], progress=False))
        assert report.read == 0 and report.unchanged == n


def reset_schema(url: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.begin() as conn:
        schema = conn.execute(sa.text("SELECT current_schema()")).scalar()
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
