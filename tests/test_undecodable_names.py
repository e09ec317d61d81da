"""File names that are not UTF-8 are stored losslessly and shown escaped (issue 10.8)."""

from __future__ import annotations

import json
import os
import shutil

import sqlalchemy as sa

from lookalike.files import display_path, path_to_text, text_to_path
from lookalike.library.folder import LibraryFolder


def test_text_form_round_trips_any_path():
    for raw in (b"/p/caf\xe9.jpg", b"/p/\xff\xfe/%41.jpg", b"/p/plain.jpg", b"fsbytes:/x", "/p/é.jpg".encode()):
        path = os.fsdecode(raw)
        text = path_to_text(path)
        text.encode("utf-8")  # storable in any text column
        assert text_to_path(text) == path and os.fsencode(text_to_path(text)) == raw
    assert path_to_text("/p/é.jpg") == "/p/é.jpg"  # valid UTF-8 is stored as it is
    assert path_to_text(os.fsdecode(b"/p/caf\xe9.jpg")) == "fsbytes:/p/caf%E9.jpg"
    assert display_path(os.fsdecode(b"/p/caf\xe9.jpg")) == "/p/caf\\xe9.jpg"


def test_index_status_search_with_a_latin1_name(cli, photos, tmp_path):
    folder = tmp_path / "pics"
    folder.mkdir()
    raw = os.fsencode(folder) + b"/caf\xe9.jpg"
    shutil.copyfile(photos[0], raw)
    shutil.copyfile(photos[1], folder / "other.jpg")
    with open(os.fsencode(folder) + b"/bad\xff.jpg", "wb") as fh:
        fh.write(b"not an image")
    name = os.fsdecode(raw)
    lib = str(tmp_path / "lib")
    out = cli("index", str(folder), "--library", lib, "-m", "tiny-vit", "--workers", "0", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert (report["read"], report["failed"]) == (3, 1)
    assert os.fsencode(report["failures"][0]["path"]) == os.fsencode(folder) + b"/bad\xff.jpg"
    with LibraryFolder.open(lib) as library:
        cid = library.id_for_path(name)
        assert cid is not None and library.all_paths_for([cid]) == {cid: [name]}
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'lib' / 'library.db'}")
    with engine.connect() as conn:
        stored = set(conn.execute(sa.text("SELECT path FROM images")).scalars())
    engine.dispose()
    assert path_to_text(name) in stored and f"{folder}/other.jpg" in stored
    status = cli("status", "--library", lib)
    assert status.returncode == 0 and "bad\\xff.jpg" in status.stdout, status.stderr
    hits = cli("search", name, "--library", lib, "-k", "2", "--json")
    assert hits.returncode == 0, hits.stderr
    got = json.loads(hits.stdout)
    assert got["query"] == name and got["metrics"]["tiny-vit"]["hits"][0]["path"] == name
    text = cli("search", name, "--library", lib, "-k", "2")
    assert text.returncode == 0 and "Traceback" not in text.stderr
    again = cli("index", "--library", lib, "--json", check=True)
    assert json.loads(again.stdout)["unchanged"] == 3  # nothing lost or re-read on the next run
