"""Indexing real photos through the Python API, and the LibraryFolder API the search layer uses."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from lookalike.embed.factory import create_metric
from lookalike.errors import UsageError
from lookalike.indexer.doctor import diagnose, repair
from lookalike.library.folder import LibraryFolder, LibraryNotFoundError
from lookalike.indexer.run import IndexOptions, IndexReport, index_library
from tests.dbfixtures import copy_photos, db_url  # noqa: F401


def run_index(folder: Path, roots: list[Path] | None, db_url: str | None = None,  # noqa: F811
              metrics: tuple[str, ...] = ("tiny-vit",), **kw) -> IndexReport:
    with LibraryFolder.open(folder, db_url=db_url, create=True, writable=True) as lib:
        opts = IndexOptions(metrics=metrics, workers=kw.pop("workers", 0), progress=False, **kw)
        return index_library(lib, [str(r) for r in roots] if roots else None, opts)


@pytest.fixture
def pics(photos, tmp_path) -> list[Path]:
    return copy_photos(photos, tmp_path / "pics", 24)


def test_index_then_library_api(pics, tmp_path, db_url):  # noqa: F811
    lib_dir = tmp_path / "lib"
    report = run_index(lib_dir, [pics[0].parent], db_url, workers=1, commit_every=5)
    assert (report.listed, report.read, report.embedded, report.failed) == (24, 24, {"tiny-vit": 24}, 0)
    with LibraryFolder.open(lib_dir) as lib:  # the URL was remembered
        assert lib.metrics() == ["tiny-vit"]
        index = lib.vector_index("tiny-vit")
        assert (index.metric, index.dim, index.distance, index.ntotal, index.exact) == (
            "tiny-vit", 32, "cosine", 24, True)
        ids = [lib.id_for_path(p) for p in pics]
        assert None not in ids and len(set(ids)) == 24
        assert lib.paths_for(ids) == {i: str(p) for i, p in zip(ids, pics)}
        stored = lib.vectors("tiny-vit", ids)
        fresh = create_metric("tiny-vit").embed_paths(pics, workers=0, progress=False).vectors
        np.testing.assert_allclose(stored, fresh, atol=1e-5)
        dist, got = index.search(stored[:3], 4)
        assert list(got[:, 0]) == ids[:3] and np.allclose(dist[:, 0], 0, atol=1e-5)
        assert lib.provenance("tiny-vit")["config"] == create_metric("tiny-vit").config.to_dict()
        assert lib.id_for_path(tmp_path / "nope.jpg") is None
        with pytest.raises(KeyError):
            lib.vectors("tiny-vit", [ids[0], 10**9])
        with pytest.raises(UsageError):
            lib.vector_index("no-such-metric")
    with pytest.raises(LibraryNotFoundError):
        LibraryFolder.open(tmp_path / "elsewhere")


def test_unchanged_files_are_not_read(pics, tmp_path, db_url):  # noqa: F811
    """Proof: overwrite every file with junk of the same size and mtime; re-indexing must not notice."""
    lib_dir = tmp_path / "lib"
    run_index(lib_dir, [pics[0].parent], db_url)
    with LibraryFolder.open(lib_dir) as lib:
        before = lib.vectors("tiny-vit", lib.ids("tiny-vit"))
    for p in pics:
        st = p.stat()
        p.write_bytes(os.urandom(st.st_size))
        os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
    report = run_index(lib_dir, [pics[0].parent], db_url)
    assert (report.unchanged, report.read, report.failed, report.embedded) == (24, 0, 0, {})
    with LibraryFolder.open(lib_dir) as lib:
        np.testing.assert_array_equal(lib.vectors("tiny-vit", lib.ids("tiny-vit")), before)
    os.utime(pics[0], ns=(1, 1))  # now it does look changed: read, found junk, failed
    report = run_index(lib_dir, None, db_url)  # no roots: the remembered ones
    assert (report.read, report.failed) == (1, 1) and report.failures[0]["reason"] == "not an image"


def test_changed_deleted_duplicate_and_touched_files(pics, tmp_path, db_url):  # noqa: F811
    lib_dir, root = tmp_path / "lib", pics[0].parent
    run_index(lib_dir, [root], db_url)
    with LibraryFolder.open(lib_dir) as lib:
        old_id = lib.id_for_path(pics[0])
        other_id = lib.id_for_path(pics[1])
    shutil.copyfile(pics[1], pics[0])  # changed: now the same bytes as pics[1]
    pics[2].unlink()  # deleted
    shutil.copyfile(pics[3], root / "copy-of-3.jpg")  # duplicate content at a new path
    st = pics[4].stat()
    os.utime(pics[4], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # touched, same bytes
    report = run_index(lib_dir, [root], db_url)
    assert report.deleted == 1 and report.read == 3 and report.embedded == {}
    assert report.reused == 3  # all three contents were already embedded: nothing re-embedded
    with LibraryFolder.open(lib_dir) as lib:
        index = lib.vector_index("tiny-vit")
        assert index.ntotal == 22  # 24 - old content of pics[0] - deleted pics[2]
        assert lib.id_for_path(pics[0]) == other_id and old_id not in set(index.ids())
        assert lib.id_for_path(pics[2]) is None
        dup = lib.id_for_path(root / "copy-of-3.jpg")
        assert dup == lib.id_for_path(pics[3])
        assert lib.all_paths_for([dup]) == {dup: sorted([str(root / "copy-of-3.jpg"), str(pics[3])])}
        assert sorted(index.ids()) == sorted(lib.ids("tiny-vit"))
        assert diagnose(lib) == []


def test_two_metrics_and_adding_a_metric_later(pics, tmp_path, db_url):  # noqa: F811
    lib_dir, root = tmp_path / "lib", pics[0].parent
    run_index(lib_dir, [root], db_url, metrics=("tiny-vit",))
    report = run_index(lib_dir, [root], db_url, metrics=("tiny-vit", "tiny-vit-b"))
    assert report.read == 24 and report.embedded == {"tiny-vit-b": 24}  # tiny-vit not recomputed
    with LibraryFolder.open(lib_dir) as lib:
        assert lib.metrics() == ["tiny-vit", "tiny-vit-b"]
        b = lib.vector_index("tiny-vit-b")
        assert (b.dim, b.ntotal) == (48, 24)
        fresh = create_metric("tiny-vit-b").embed_paths(pics[:3], workers=0, progress=False).vectors
        ids = [lib.id_for_path(p) for p in pics[:3]]
        np.testing.assert_allclose(lib.vectors("tiny-vit-b", ids), fresh, atol=1e-5)
    assert run_index(lib_dir, [root], db_url, metrics=("tiny-vit", "tiny-vit-b")).read == 0


def test_changed_metric_config_needs_rebuild(pics, tmp_path, db_url, monkeypatch):  # noqa: F811
    lib_dir, root = tmp_path / "lib", pics[0].parent
    run_index(lib_dir, [root], db_url)
    from lookalike.embed import registry

    real = registry.get_config("tiny-vit")
    changed = type(real).from_dict({**real.to_dict(), "options": {**real.options, "seed": 5}})
    monkeypatch.setattr("lookalike.embed.registry.get_config", lambda name: changed)
    with pytest.raises(UsageError, match="--rebuild"):
        run_index(lib_dir, [root], db_url)
    report = run_index(lib_dir, [root], db_url, rebuild=True)
    assert report.embedded == {"tiny-vit": 24}
    with LibraryFolder.open(lib_dir) as lib:
        assert lib.provenance("tiny-vit")["config"]["options"]["seed"] == 5


def test_index_factory_override_is_remembered(pics, tmp_path, db_url):  # noqa: F811
    lib_dir, root = tmp_path / "lib", pics[0].parent
    run_index(lib_dir, [root], db_url, factory="IVF2,Flat")
    with LibraryFolder.open(lib_dir) as lib:
        index = lib.vector_index("tiny-vit")
        assert not index.exact and index.factory == "IVF2,Flat" and index.ntotal == 24
    shutil.copyfile(pics[0], root / "new.jpg")
    run_index(lib_dir, [root], db_url)
    with LibraryFolder.open(lib_dir) as lib:
        assert lib.vector_index("tiny-vit").factory == "IVF2,Flat"
    run_index(lib_dir, [root], db_url, factory="auto")
    with LibraryFolder.open(lib_dir) as lib:
        assert lib.vector_index("tiny-vit").exact


def test_readers_catch_up_with_a_stale_index_file(pics, tmp_path, db_url):  # noqa: F811
    lib_dir, root = tmp_path / "lib", pics[0].parent
    run_index(lib_dir, [root], db_url)
    with LibraryFolder.open(lib_dir) as lib:
        saved = lib.index_path("tiny-vit").read_bytes()
    shutil.copyfile(pics[0], root / "dup.jpg")
    Path(root / "extra.png").write_bytes(b"")  # fails; no vector
    pics[5].unlink()
    run_index(lib_dir, [root], db_url)
    with LibraryFolder.open(lib_dir) as lib:
        lib.index_path("tiny-vit").write_bytes(saved)  # as if the last save had not happened
        index = lib.vector_index("tiny-vit")
        assert sorted(index.ids()) == sorted(lib.ids("tiny-vit")) and index.ntotal == 23
        assert {f.kind for f in diagnose(lib)} == {"index-extra"}


def test_doctor_repairs_damage(pics, tmp_path, db_url):  # noqa: F811
    lib_dir, root = tmp_path / "lib", pics[0].parent
    run_index(lib_dir, [root], db_url)
    from sqlalchemy import delete

    from lookalike.store.models import Content, Image, Vector

    with LibraryFolder.open(lib_dir, writable=True) as lib:
        victim = lib.id_for_path(pics[0])
        with lib.store.transaction() as s:
            s.execute(delete(Vector).where(Vector.content_id == victim))  # lost vector
            s.add(Content(sha256="f" * 64, size=1))  # orphan content
            s.execute(delete(Image).where(Image.path == str(pics[1])))  # orphans pics[1]'s content
        pics[2].unlink()  # vanished file
        lib.index_path("tiny-vit").write_bytes(b"garbage")  # unreadable index
        kinds = {f.kind for f in diagnose(lib)}
        assert kinds == {"unembedded", "orphan-contents", "missing-files", "index-unreadable"}
        done = repair(lib, workers=0)
        assert done and diagnose(lib) == []
        assert lib.vector_index("tiny-vit").ntotal == 22  # pics[1] comes back on the next index run
        assert lib.id_for_path(pics[0]) is not None
        from lookalike.indexer.run import known_roots

        assert known_roots(lib) == [str(root)]  # re-embedding single files added no roots


def test_listing_problems_are_recorded_and_cleared(pics, tmp_path, db_url):  # noqa: F811
    lib_dir, root = tmp_path / "lib", pics[0].parent
    os.symlink(root, root / "loop")
    report = run_index(lib_dir, [root], db_url)
    assert report.skipped == 1 and report.failures[0]["reason"] == "symlink loop"
    (root / "loop").unlink()
    report = run_index(lib_dir, [root], db_url)
    assert report.skipped == 0 and report.deleted == 1
    from lookalike.library.status import library_status

    with LibraryFolder.open(lib_dir) as lib:
        st = library_status(lib)
    assert st["files"] == {"total": 24, "ok": 24, "failed": 0, "skipped": 0}


def test_removals_from_a_graph_index_rebuild_it_once_at_save(pics, tmp_path, db_url, monkeypatch):  # noqa: F811
    """HNSW cannot remove ids: deleted and changed files mark the index stale; one rebuild at save."""
    lib_dir, root = tmp_path / "lib", pics[0].parent
    run_index(lib_dir, [root], db_url, factory="HNSW8,Flat")
    for p in pics[:3]:
        p.unlink()
    for p, other in zip(pics[3:6], pics[6:9]):  # changed files: their old contents become orphans
        data = other.read_bytes()
        p.write_bytes(data + b"\0" * (p.stat().st_size % 7 + 1))
    builds: list[str] = []
    original = LibraryFolder.build_index

    def counting(self, row, factory, ids=None):
        builds.append(factory)
        return original(self, row, factory, ids)

    monkeypatch.setattr(LibraryFolder, "build_index", counting)
    report = run_index(lib_dir, [root], db_url, commit_every=1)
    assert report.deleted == 3 and report.read == 3
    assert builds == ["HNSW8,Flat"]
    with LibraryFolder.open(lib_dir) as lib:
        index = lib.vector_index("tiny-vit")
        assert index.factory == "HNSW8,Flat"
        assert sorted(index.ids()) == sorted(lib.ids("tiny-vit")) and index.ntotal == 21
