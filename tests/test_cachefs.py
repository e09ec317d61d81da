"""Cache file-system steps: staging names, atomic JSON, atomic placement."""

from __future__ import annotations

import json

from lookalike.atomic import atomic_write_json
from lookalike.embed.weights.cachefs import place, staging_path, temp_dir_beside
from lookalike.paths import weights_dir


def test_staging_names_are_flat_and_inside_the_cache():
    path = staging_path("dino/vitb16.pth")
    assert path.parent == weights_dir() / ".partial" and path.name == "dino--vitb16.pth.part"


def test_atomic_write_json_replaces_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "sub" / "r.json"
    atomic_write_json(target, {"a": 1})
    atomic_write_json(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 2}
    assert [p.name for p in target.parent.iterdir()] == ["r.json"]


def test_place_moves_files_and_folders(tmp_path):
    (tmp_path / "f.part").write_bytes(b"data")
    place(tmp_path / "f.part", tmp_path / "deep" / "f.pth")
    assert (tmp_path / "deep" / "f.pth").read_bytes() == b"data" and not (tmp_path / "f.part").exists()
    tmp = temp_dir_beside(tmp_path / "out")
    assert tmp.parent == tmp_path and tmp.name.startswith(".out.")
    (tmp / "x").write_text("x")
    place(tmp, tmp_path / "out")
    assert (tmp_path / "out" / "x").read_text() == "x" and not tmp.exists()
