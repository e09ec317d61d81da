"""Stable identity: a file moved or renamed within the library's roots keeps its row, its id and
its vectors, and nothing is re-embedded (counted by the index report's ``embedded``)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

import lookalike
from tests.conftest import run_cli

METRIC = "tiny-vit"


def index(lib, home, *roots) -> dict:
    proc = run_cli("index", *map(str, roots), "--library", str(lib), "-m", METRIC, "-q", "--json",
                   check=True, env={"LOOKALIKE_HOME": str(home)})
    return json.loads(proc.stdout)


def snapshot(lib_path) -> dict[str, tuple[int, int, bytes]]:
    """path -> (file row id, content id, vector bytes)."""
    with lookalike.Library.open(lib_path) as lib:
        items = lib.images(limit=1000, status="ok").items
        vecs = lib.vectors(METRIC, [i.image_id for i in items])
    return {i.path: (i.file_id, i.image_id, v.tobytes()) for i, v in zip(items, vecs)}


@pytest.fixture
def two_roots(photos, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    for p in photos[:5]:
        shutil.copy(p, a / p.name)
    for p in photos[5:8]:
        shutil.copy(p, b / p.name)
    lib, home = tmp_path / "lib", tmp_path / "home"
    first = index(lib, home, a, b)
    assert first["embedded"] == {METRIC: 8}
    return lib, home, a, b


def test_move_into_a_subfolder_rename_and_move_across_roots_keep_ids_and_vectors(two_roots):
    lib, home, a, b = two_roots
    before = snapshot(lib)
    names = sorted(p.name for p in a.iterdir())
    (a / "sub").mkdir()
    moves = {a / names[0]: a / "sub" / names[0],        # into a subfolder
             a / names[1]: a / f"renamed-{names[1]}",   # renamed in place
             a / names[2]: b / names[2]}                # across roots
    for old, new in moves.items():
        old.rename(new)
    report = index(lib, home)  # the remembered roots
    assert report["embedded"] == {} and report["moved"] == 3 and report["deleted"] == 0
    after = snapshot(lib)
    assert len(after) == len(before) == 8
    for old, new in moves.items():
        assert after[str(new)] == before[str(old)]  # same row, same content id, same vector
    untouched = set(before) - {str(p) for p in moves}
    assert all(after[p] == before[p] for p in untouched)
    with lookalike.Library.open(lib) as opened:  # the index serves the moved image under its new path
        moved = before[str(a / names[0])][1]
        [res] = opened.search(moved, k=1, metrics=[METRIC])
        assert [h.path for h in res.hits[METRIC]] == [str(a / "sub" / names[0])]


def test_a_deleted_file_is_still_removed_and_a_changed_one_re_embedded(two_roots, photos):
    lib, home, a, b = two_roots
    before = snapshot(lib)
    gone, changed = sorted(a.iterdir())[:2]
    gone.unlink()
    shutil.copy(photos[20], changed)  # new bytes at a known path
    report = index(lib, home)
    assert report["moved"] == 0 and report["deleted"] == 1 and report["embedded"] == {METRIC: 1}
    after = snapshot(lib)
    assert str(gone) not in after and len(after) == 7
    assert after[str(changed)][1] != before[str(changed)][1]
    assert not np.array_equal(np.frombuffer(after[str(changed)][2], np.float32),
                              np.frombuffer(before[str(changed)][2], np.float32))
