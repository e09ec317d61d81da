"""Query by example through the Python API and the CLI, on a small library of real photos."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from lookalike.embed.factory import create_metric
from lookalike.errors import UsageError
from lookalike.library.folder import LibraryFolder
from lookalike.library.service import Library


@pytest.fixture(scope="module")
def library(photos, tmp_path_factory):
    """20 real photos plus a re-encoded copy and a crop of the first, indexed under two test metrics
    and the real effnet-lite0."""
    from tests.conftest import run_cli

    pics = tmp_path_factory.mktemp("pics")
    for p in photos[:20]:
        shutil.copy(p, pics / p.name)
    img = Image.open(photos[0]).convert("RGB")
    img.save(pics / "copy-q60.jpg", quality=60)
    w, h = img.size
    img.crop((0, 0, int(w * 0.85), int(h * 0.85))).save(pics / "crop.jpg", quality=92)
    lib = tmp_path_factory.mktemp("lib")
    run_cli("index", str(pics), "--library", str(lib), "-m", "tiny-vit", "-m", "tiny-vit-b",
            "-m", "effnet-lite0", "-q", check=True, env={"LOOKALIKE_HOME": str(lib.parent / "home")})
    return lib, pics


def brute_force(metric_name, query, gallery_paths):
    metric = create_metric(metric_name, device="cpu")
    q = metric.embed([query])
    g = metric.embed(gallery_paths)
    d = metric.distances(q, g)[0]
    order = np.argsort(d, kind="stable")
    return [gallery_paths[i] for i in order], d[order]


def test_search_matches_brute_force_for_every_metric(library):
    lib_path, pics = library
    gallery = sorted(str(p) for p in pics.iterdir())
    query = str(pics / "crop.jpg")
    with Library.open(lib_path) as lib:
        assert set(lib.metrics()) == {"tiny-vit", "tiny-vit-b", "effnet-lite0"}
        [result] = lib.search([query], k=5, metrics=["tiny-vit", "effnet-lite0"])
    assert set(result.hits) == {"tiny-vit", "effnet-lite0"}
    for name, hits in result.hits.items():
        want_paths, want_d = brute_force(name, query, gallery)
        assert [h.path for h in hits] == want_paths[:5]
        assert np.allclose([h.distance for h in hits], want_d[:5], atol=1e-4)
        assert [h.rank for h in hits] == [1, 2, 3, 4, 5] and all(h.metric == name for h in hits)
    eff = result.hits["effnet-lite0"]
    assert {h.path.rsplit("/", 1)[1] for h in eff[:3]} == {"crop.jpg", "copy-q60.jpg",
                                                            sorted(pics.iterdir())[0].name}
    assert eff[1].label is not None and eff[1].label.startswith("same photo")


def test_queries_by_id_path_pil_and_array_agree(library):
    lib_path, pics = library
    path = str(sorted(pics.iterdir())[3])
    with Library.open(lib_path) as lib:
        image_id = lib.id_for_path(path)
        img = Image.open(path).convert("RGB")
        by_id, by_path, by_pil, by_array = lib.search([image_id, path, img, np.asarray(img)], k=3,
                                                      metrics=["tiny-vit-b"])
    ids = [r.by_metric["tiny-vit-b"].ids() for r in (by_id, by_path, by_pil, by_array)]
    assert ids[0] == ids[1] == ids[2] == ids[3] and ids[0][0] == image_id
    assert by_id.image_id == image_id and by_pil.image_id is None


def test_exclude_self_and_folder_queries(library):
    lib_path, pics = library
    with Library.open(lib_path) as lib:
        results = lib.search([str(pics)], k=4, metrics=["tiny-vit"], exclude_self=True)
        assert len(results) == len(list(pics.iterdir()))
        for r in results:
            hits = r.hits["tiny-vit"]
            assert len(hits) == 4 and r.image_id not in [h.image_id for h in hits]
        with pytest.raises(UsageError, match="no index for"):
            lib.search([str(pics / "crop.jpg")], metrics=["dreamsim"])
        with pytest.raises(UsageError, match="no image with id"):
            lib.search([10**9])


def test_unreadable_query_is_reported_not_fatal(library, tmp_path):
    lib_path, pics = library
    bad = tmp_path / "bad.jpg"
    bad.write_text("nope")
    with Library.open(lib_path) as lib:
        good, broken = lib.search([str(pics / "crop.jpg"), str(bad)], k=2, metrics=["tiny-vit"])
    assert good.hits["tiny-vit"] and not broken.hits and "not an image" in broken.errors["tiny-vit"]


def test_duplicates_groups_the_copies(library):
    lib_path, pics = library
    first = sorted(pics.iterdir())[0].name
    with Library.open(lib_path) as lib:
        groups = lib.duplicates("effnet-lite0")
        assert lib.duplicates("effnet-lite0", threshold=0.0) == []
    names = [{m[1].rsplit("/", 1)[1] for m in g.members} for g in groups]
    assert {first, "copy-q60.jpg", "crop.jpg"} in names
    group = groups[names.index({first, "copy-q60.jpg", "crop.jpg"})]
    assert group.members[0][2] < 1e-5 and all(m[3] for m in group.members[1:])


def test_duplicates_on_an_approximate_index_match_the_exact_ones(library, tmp_path):
    """Same library under an HNSW graph: re-ranked neighbours give the same groups as Flat."""
    from tests.conftest import run_cli

    lib_path, pics = library
    copy = tmp_path / "lib"
    shutil.copytree(lib_path, copy)
    run_cli("index", str(pics), "--library", str(copy), "-m", "effnet-lite0", "--index-factory", "HNSW8,Flat",
            "-q", check=True, env={"LOOKALIKE_HOME": str(lib_path.parent / "home")})
    with Library.open(lib_path) as exact, Library.open(copy) as approx:
        with LibraryFolder.open(copy) as folder:
            assert folder.vector_index("effnet-lite0").factory == "HNSW8,Flat"
        want, got = exact.duplicates("effnet-lite0"), approx.duplicates("effnet-lite0")
    assert want and [[m[:2] for m in g.members] for g in got] == [[m[:2] for m in g.members] for g in want]


def test_cli_search_table_and_json(cli, library):
    lib_path, pics = library
    q = str(pics / "crop.jpg")
    table = cli("search", q, "--library", str(lib_path), "-m", "effnet-lite0", "-m", "tiny-vit", "-k", "3",
                check=True).stdout
    assert "effnet-lite0" in table and "tiny-vit" in table and "copy-q60.jpg" in table
    # every effnet-lite0 distance (calibrated) comes with what it means, down to "different"
    whole = cli("search", q, "--library", str(lib_path), "-m", "effnet-lite0", "-k", "22", check=True).stdout
    cells = [line[6:].rstrip() for line in whole.splitlines() if line[:4].strip().isdigit()]
    assert len(cells) == 22
    labels = ("identical", "verified", "look-alike", "same scene", "similar", "different")
    assert all(cell.endswith(labels) for cell in cells), cells
    assert cells[0].endswith("identical") and cells[-1].endswith("different")  # the query file itself
    assert cells[1].endswith("verified") and cells[2].endswith("verified")  # its copies, checked
    out = cli("search", q, "#1", "--library", str(lib_path), "-k", "2", "--json", "--exclude-self",
              check=True).stdout
    rows = [json.loads(x) for x in out.splitlines()]
    assert len(rows) == 2 and set(rows[0]["metrics"]) == {"tiny-vit", "tiny-vit-b", "effnet-lite0"}
    for row in rows:
        for result in row["metrics"].values():
            assert len(result["hits"]) == 2
            assert all({"path", "distance", "rank"} <= set(h) for h in result["hits"])
    assert cli("search", q, "--library", str(lib_path / "nope")).returncode == 2


def test_cli_dupes(cli, library):
    lib_path, _ = library
    rows = [json.loads(x) for x in cli("dupes", "--library", str(lib_path), "--json", check=True).stdout.splitlines()]
    assert any({m["path"].rsplit("/", 1)[1] for m in r["members"]} >= {"copy-q60.jpg", "crop.jpg"} for r in rows)
    proc = cli("dupes", "--library", str(lib_path), "-m", "tiny-vit")
    assert proc.returncode == 2 and "calibration" in proc.stderr
