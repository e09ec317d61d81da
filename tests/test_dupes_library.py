"""`dupes` and `search` on a real library holding identical files, copies and hard look-alikes
(issue 10 items 4-6): identical files are listed first, look-alike photos are never grouped as the
same photo, copies are, and a metric missing some images' vectors does not crash anything."""

from __future__ import annotations

import csv
import json
import shutil

import pytest

from lookalike.embed.images import load_image
from lookalike.search.augment import apply
from lookalike.library.service import Library
from tests.conftest import run_cli

#: Distinct photos effnet-lite0 puts within the calibrated "same photo" distance of each other.
LOOKALIKES = ["hammer1.webp", "hammer2.webp", "hammer6.webp", "hammer8.webp", "hammer9.webp",
              "usCapitol.webp", "victoriaMemorial.webp", "numbers.webp", "alphabets.webp",
              "windmill4.webp", "windmill11.webp"]


def _name(path: str) -> str:
    return path.rsplit("/", 1)[1]


@pytest.fixture(scope="module")
def library(photos, tmp_path_factory):
    """The look-alikes above, a crop and a thumbnail of hammer2, a re-encoded usCapitol, and a
    byte-identical copy of windmill4 in a second folder; indexed under effnet-lite0."""
    with open(photos[0].parent / "MANIFEST.csv", newline="") as fh:
        by_original: dict[str, str] = {}
        for row in csv.DictReader(fh):
            by_original.setdefault(row["original"], row["file"])
    pics = tmp_path_factory.mktemp("pics")
    for orig in LOOKALIKES:
        shutil.copy(photos[0].parent / by_original[orig], pics / orig.replace(".webp", ".jpg"))
    hammer = load_image(pics / "hammer2.jpg")
    apply("edit:crop80", hammer, [0]).save(pics / "hammer2-crop.jpg", quality=90)
    apply("edit:thumbnail", hammer, [1]).save(pics / "hammer2-thumb.jpg", quality=90)
    apply("reencode:half", load_image(pics / "usCapitol.jpg"), [2]).save(pics / "capitol-small.jpg")
    other = tmp_path_factory.mktemp("other")
    shutil.copy(pics / "windmill4.jpg", other / "windmill4-backup.jpg")
    lib = tmp_path_factory.mktemp("lib")
    home = str(lib.parent / "home")
    run_cli("index", str(pics), str(other), "--library", str(lib), "-m", "effnet-lite0", "-q", check=True,
            env={"LOOKALIKE_HOME": home})
    return lib, pics, other, home


def test_dupes_groups_copies_not_lookalikes(library):
    lib_path, pics, other, _ = library
    with Library.open(lib_path) as lib:
        groups = lib.duplicates("effnet-lite0")
    names = [sorted(_name(m[1]) for m in g.members) for g in groups]  # (id, path, ...) on every version
    assert names == [["windmill4-backup.jpg", "windmill4.jpg"],
                     ["hammer2-crop.jpg", "hammer2-thumb.jpg", "hammer2.jpg"],
                     ["capitol-small.jpg", "usCapitol.jpg"]]
    identical, hammer, capitol = groups
    assert identical.kind == "identical" and identical.members[1].meaning == "identical file"
    assert len({m.image_id for m in identical.members}) == 1
    assert hammer.kind == "verified" and _name(hammer.members[0].path) == "hammer2.jpg"
    for m in hammer.members[1:] + capitol.members[1:]:
        assert m.meaning.startswith("same photo (verified: ") and m.evidence["inliers"] >= 20


def test_unverified_grouping_never_chains_and_says_so(library):
    from lookalike.embed.distance import pairwise
    from lookalike.search.dupes import calibrate

    lib_path, *_ = library
    with Library.open(lib_path) as lib:
        groups = lib.duplicates("effnet-lite0", verify=False)
        for g in groups:
            if g.kind == "identical":
                continue
            assert g.kind == "unverified"
            assert {m.meaning for m in g.members[1:]} <= {"similar (unverified)", "identical file"}
            ids = sorted({m.image_id for m in g.members})
            vecs = lib.vectors("effnet-lite0", ids)
            assert pairwise(vecs, vecs, "cosine").max() <= calibrate("effnet-lite0") + 1e-6  # complete linkage


def test_search_lists_identical_files_first_and_verifies_same_photo_hits(library):
    lib_path, pics, other, _ = library
    with Library.open(lib_path) as lib:
        [windmill] = lib.search([str(pics / "windmill4.jpg")], k=2, metrics=["effnet-lite0"])
        [alone] = lib.search([str(pics / "windmill4.jpg")], k=2, metrics=["effnet-lite0"], exclude_self=True)
        [hammer] = lib.search([str(pics / "hammer2.jpg")], k=5, metrics=["effnet-lite0"], exclude_self=True)
    hits = windmill.hits["effnet-lite0"]
    assert [_name(h.path) for h in hits[:2]] == ["windmill4-backup.jpg", "windmill4.jpg"]
    assert {h.label for h in hits[:2]} == {"identical file"} and hits[0].image_id == hits[1].image_id
    assert len({h.image_id for h in hits}) == 2  # k counts images, every path listed
    assert _name(alone.hits["effnet-lite0"][0].path) == "windmill4-backup.jpg"  # the copy stays
    by_name = {_name(h.path): h.label for h in hammer.hits["effnet-lite0"]}
    assert by_name["hammer2-crop.jpg"].startswith("same photo (verified: ")
    assert by_name["hammer2-thumb.jpg"].startswith("same photo (verified: ")
    for name, label in by_name.items():  # other hammers: never a "same photo" claim
        if not name.startswith("hammer2"):
            assert not (label or "").startswith("same photo"), (name, label)


def test_cli_dupes_labels_the_evidence(library, cli):
    lib_path, *_ = library
    out = cli("dupes", "--library", str(lib_path), check=True).stdout
    assert "identical file" in out and "same photo (verified: " in out and "3 group(s)" in out
    rows = [json.loads(x) for x in cli("dupes", "--library", str(lib_path), "--json", check=True).stdout.splitlines()]
    assert [r["kind"] for r in rows] == ["identical", "verified", "verified"]
    assert rows[0]["size"] == 2 and rows[0]["images"] == 1
    assert cli("dupes", "--library", str(lib_path), "-k", "0").returncode == 2


@pytest.mark.slow
def test_metric_missing_some_vectors_does_not_crash(library, tmp_path, photos):
    """index A (effnet-lite0), then B with effnet-lite0 and tiny-vit; A's images then lack tiny-vit
    vectors (forced here, as after an interrupted index, whatever `index` embeds over old roots).
    search and dupes work and report the images not yet embedded."""
    import sqlite3

    lib_path, pics, _, home = library
    lib = tmp_path / "lib"
    shutil.copytree(lib_path, lib)
    more = tmp_path / "more"
    more.mkdir()
    for p in photos[-3:]:
        shutil.copy(p, more / p.name)
    run_cli("index", str(more), "--library", str(lib), "-m", "effnet-lite0", "-m", "tiny-vit", "-q",
            check=True, env={"LOOKALIKE_HOME": home})
    with Library.open(lib) as opened:
        keep = [opened.id_for_path(more / p.name) for p in photos[-3:]]
    with sqlite3.connect(lib / "library.db") as db:  # only B's images keep a tiny-vit vector
        db.execute("DELETE FROM vectors WHERE metric_id = (SELECT id FROM metrics WHERE name = 'tiny-vit') "
                   f"AND content_id NOT IN ({','.join(map(str, keep))})")
    with Library.open(lib) as opened:
        first = opened.id_for_path(pics / "hammer1.jpg")
        [by_id, by_path] = opened.search([first, str(pics / "hammer1.jpg")], k=2)
        assert opened.not_embedded("tiny-vit") == 14  # every content of A
        for res in (by_id, by_path):
            assert set(res.hits) == {"effnet-lite0", "tiny-vit"} and not res.errors
            assert res.by_metric["tiny-vit"].extra["not_embedded"] == 14
            assert {h.image_id for h in res.hits["tiny-vit"]} <= set(keep)
        assert opened.duplicates("tiny-vit", threshold=0.5, verify=False) is not None
    proc = run_cli("search", f"#{first}", "--library", str(lib), "-k", "2", env={"LOOKALIKE_HOME": home})
    assert proc.returncode == 0, proc.stderr
    assert "14 image(s)" in proc.stderr and "not yet embedded under tiny-vit" in proc.stderr
    assert "lookalike index" in proc.stderr
    proc = run_cli("dupes", "--library", str(lib), "-m", "tiny-vit", "-t", "0.5", env={"LOOKALIKE_HOME": home})
    assert proc.returncode == 0 and "not yet embedded" in proc.stderr, proc.stderr


def test_missing_opencv_is_a_clear_error(library, tmp_path):
    """Without OpenCV, `dupes` says what to install (exit 2); --no-verify and search still work."""
    from tests.conftest import ROOT

    fake = tmp_path / "nocv"
    (fake / "cv2").mkdir(parents=True)
    (fake / "cv2" / "__init__.py").write_text("raise ImportError('cv2 is not installed (test)')\n")
    lib_path, pics, _, home = library
    env = {"LOOKALIKE_HOME": home, "PYTHONPATH": f"{fake}:{ROOT}"}
    proc = run_cli("dupes", "--library", str(lib_path), env=env)
    assert proc.returncode == 2 and "opencv-python-headless" in proc.stderr and "Traceback" not in proc.stderr
    assert run_cli("dupes", "--library", str(lib_path), "--no-verify", env=env).returncode == 0
    proc = run_cli("search", str(pics / "hammer2.jpg"), "--library", str(lib_path), "-k", "3", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    labels = [h["label"] for h in json.loads(proc.stdout)["metrics"]["effnet-lite0"]["hits"]]
    assert labels[0] == "identical file" and "similar (unverified)" in labels
