"""Every metric of a library covers every indexed image (issue 10.4, indexer side)."""

from __future__ import annotations

import json

import sqlalchemy as sa

from lookalike.library.folder import LibraryFolder
from tests.dbfixtures import copy_photos


def coverage(cli, lib: str) -> dict[str, tuple[int, int]]:
    st = json.loads(cli("status", "--library", lib, "--json", check=True).stdout)
    return {m["name"]: (m["images_embedded"], m["images_not_embedded"]) for m in st["metrics"]}


def test_adding_a_metric_on_other_folders_covers_all_roots(cli, photos, tmp_path):
    a = copy_photos(photos[:3], tmp_path / "A")
    b = copy_photos(photos[3:5], tmp_path / "B")
    lib = str(tmp_path / "lib")
    cli("index", str(tmp_path / "A"), "--library", lib, "-m", "tiny-vit", "--workers", "0", check=True)
    out = json.loads(cli("index", str(tmp_path / "B"), "--library", lib, "-m", "tiny-vit", "-m",
                         "tiny-vit-b", "--workers", "0", "--json", check=True).stdout)
    assert out["embedded"] == {"tiny-vit": 2, "tiny-vit-b": 5}  # A's 3 images too
    assert coverage(cli, lib) == {"tiny-vit": (5, 0), "tiny-vit-b": (5, 0)}
    with LibraryFolder.open(lib) as library:
        ids = [library.id_for_path(p) for p in a + b]
        assert library.vectors("tiny-vit-b", ids).shape == (5, 48)  # no image lacks a vector
    # a third run naming only the new metric keeps the old one up to date for new files
    c = copy_photos(photos[5:6], tmp_path / "C")
    out = json.loads(cli("index", str(tmp_path / "C"), "--library", lib, "-m", "tiny-vit-b",
                         "--workers", "0", "--json", check=True).stdout)
    assert out["metrics"] == ["tiny-vit", "tiny-vit-b"]
    assert coverage(cli, lib) == {"tiny-vit": (6, 0), "tiny-vit-b": (6, 0)}
    hits = cli("search", str(c[0]), "--library", lib, "-k", "6", "--json", check=True)
    assert {len(m["hits"]) for m in json.loads(hits.stdout)["metrics"].values()} == {6}


def test_status_reports_images_not_embedded_and_index_fills_them(cli, photos, tmp_path):
    copy_photos(photos[:4], tmp_path / "A")
    lib = str(tmp_path / "lib")
    cli("index", str(tmp_path / "A"), "--library", lib, "-m", "tiny-vit", "-m", "tiny-vit-b",
        "--workers", "0", check=True)
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'lib' / 'library.db'}")
    with engine.begin() as conn:  # a library left by an older version: two images lack tiny-vit-b
        conn.execute(sa.text("DELETE FROM vectors WHERE metric_id = (SELECT id FROM metrics WHERE "
                             "name = 'tiny-vit-b') AND content_id IN (SELECT id FROM contents "
                             "ORDER BY id LIMIT 2)"))
    engine.dispose()
    assert coverage(cli, lib)["tiny-vit-b"] == (2, 2)
    text = cli("status", "--library", lib, check=True).stdout
    assert "2 image(s) not yet embedded" in text
    out = json.loads(cli("index", "--library", lib, "--workers", "0", "--json", check=True).stdout)
    assert out["embedded"] == {"tiny-vit-b": 2}
    assert coverage(cli, lib) == {"tiny-vit": (4, 0), "tiny-vit-b": (4, 0)}
