"""The one library service, ``lookalike.Library``: images, thumbnails, status, and readers that
notice other processes' writes (threads searching while another process indexes)."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import threading

import pytest
from PIL import Image

import lookalike
from lookalike.errors import UsageError
from lookalike.library.folder import LibraryFolder
from tests.conftest import ROOT, run_cli

METRIC = "tiny-vit"


def _generation(path) -> int:
    """The library's generation counter (bumped by every writer's commit)."""
    with LibraryFolder.open(path) as folder:
        return folder.generation()


def index(pics, lib, home, *more: str) -> None:
    run_cli("index", str(pics), "--library", str(lib), "-m", METRIC, "-q", *more, check=True,
            env={"LOOKALIKE_HOME": str(home)})


@pytest.fixture
def small(photos, tmp_path):
    pics = tmp_path / "pics"
    pics.mkdir()
    for p in photos[:6]:
        shutil.copy(p, pics / p.name)
    (pics / "broken.jpg").write_bytes(b"not a jpeg")
    lib = tmp_path / "lib"
    index(pics, lib, tmp_path / "home")
    return lib, pics


def test_lookalike_library_is_the_search_service():
    from lookalike.library.service import Library

    assert lookalike.Library is Library


def test_images_pages_with_ids_paths_and_status(small):
    lib_path, pics = small
    with lookalike.Library.open(lib_path) as lib:
        page = lib.images(limit=4)
        assert page.total == 7 and len(page.items) == 4 and page.offset == 0
        rest = lib.images(offset=4, limit=10)
        items = page.items + rest.items
        assert [i.path for i in items] == sorted(str(p) for p in pics.iterdir())
        broken = [i for i in items if i.path.endswith("broken.jpg")]
        assert broken[0].status == "failed" and broken[0].image_id is None and broken[0].error
        ok = lib.images(status="ok")
        assert ok.total == 6 and all(i.image_id is not None and i.width for i in ok.items)
        first = ok.items[0]
        assert lib.id_for_path(first.path) == first.image_id
        assert lib.image(first.image_id).path == first.path
        assert lib.paths_for([first.image_id]) == {first.image_id: [first.path]}
        assert lib.vectors(METRIC, [first.image_id]).shape[0] == 1
        st = lib.status()
        assert st["files"] == {"total": 7, "ok": 6, "failed": 1, "skipped": 0}
        assert [m["name"] for m in st["metrics"]] == [METRIC]
        with pytest.raises(UsageError):
            lib.image(10**9)


def test_a_thumbnail_is_made_from_a_copy_when_the_first_file_is_gone(small):
    lib_path, pics = small
    first = sorted(p for p in pics.iterdir() if p.name != "broken.jpg")[0]
    shutil.copy(first, pics / "zz-copy.jpg")  # byte-identical: the same id, listed second
    index(pics, lib_path, lib_path.parent / "home")
    with lookalike.Library.open(lib_path) as lib:
        image_id = lib.id_for_path(first)
        assert lib.paths_for([image_id])[image_id] == [str(first), str(pics / "zz-copy.jpg")]
        first.unlink()  # gone since indexing
        assert Image.open(io.BytesIO(lib.thumbnail(image_id, 32))).size[0] <= 32


def test_ids_by_metric_and_folder_with_their_sha256(small, tmp_path):
    import hashlib

    lib_path, pics = small
    with lookalike.Library.open(lib_path) as lib:
        ok = lib.images(status="ok").items
        ids = sorted({i.image_id for i in ok})
        assert lib.ids(METRIC).tolist() == ids
        assert lib.ids_under(pics) == ids and lib.ids_under(tmp_path / "elsewhere") == []
        sub = lib.ids_under(str(pics) + "/")  # a trailing slash is the same folder
        assert sub == ids
        digests = lib.sha256([*ids, 10**9])
        assert set(digests) == set(ids)  # unknown ids are left out
        for item in ok:
            with open(item.path, "rb") as f:
                assert digests[item.image_id] == hashlib.sha256(f.read()).hexdigest()
        assert lib.distance_kind(METRIC) in {"cosine", "sqeuclidean"}
        with pytest.raises(UsageError):
            lib.ids("no-such-metric")


def test_thumbnails_are_made_once_and_cached_in_the_library(small):
    lib_path, pics = small
    with lookalike.Library.open(lib_path) as lib:
        item = lib.images(status="ok").items[0]
        data = lib.thumbnail(item.image_id, 64)
        img = Image.open(io.BytesIO(data))
        assert img.format == "JPEG" and max(img.size) == 64
        assert (item.width or 0) / (item.height or 1) == pytest.approx(img.size[0] / img.size[1], abs=0.05)
        assert lib.has_thumbnail(item.image_id, 64) and not lib.has_thumbnail(item.image_id, 65)
        os.rename(item.path, item.path + ".moved")  # served from the cache: the file is not read again
        assert lib.thumbnail(item.image_id, 64) == data
        with pytest.raises(UsageError, match="no readable file"):
            lib.thumbnail(item.image_id, 65)
        with pytest.raises(UsageError):
            lib.thumbnail(item.image_id, 0)
    assert len(list((lib_path / "thumbnails" / "64").iterdir())) == 1


@pytest.mark.slow
def test_threads_searching_while_another_process_indexes_see_the_new_images(photos, tmp_path):
    pics, lib_path, home = tmp_path / "pics", tmp_path / "lib", tmp_path / "home"
    pics.mkdir()
    for p in photos[:4]:
        shutil.copy(p, pics / p.name)
    index(pics, lib_path, home)
    for p in photos[4:40]:
        shutil.copy(p, pics / p.name)
    query = str(photos[0])
    errors: list[BaseException] = []
    seen: list[int] = []
    with lookalike.Library.open(lib_path) as lib:
        gen = _generation(lib_path)
        assert len(lib.search(query, k=50, metrics=[METRIC])[0].hits[METRIC]) == 4
        writer = subprocess.Popen(
            [sys.executable, "-m", "lookalike", "index", str(pics), "--library", str(lib_path), "-m", METRIC,
             "-q", "--commit-every", "8"],
            env={**os.environ, "PYTHONPATH": str(ROOT), "LOOKALIKE_HOME": str(home)},
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

        def searcher() -> None:
            try:
                while writer.poll() is None:
                    seen.append(len(lib.search(query, k=50, metrics=[METRIC])[0].hits[METRIC]))
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=searcher) for _ in range(2)]
        for t in threads:
            t.start()
        _, err = writer.communicate(timeout=300)
        for t in threads:
            t.join(timeout=60)
        assert writer.returncode == 0, err
        assert not errors, errors
        assert seen and all(4 <= n <= 40 for n in seen)  # each search saw one committed state
        assert _generation(lib_path) > gen
        assert len(lib.search(query, k=50, metrics=[METRIC])[0].hits[METRIC]) == 40


def test_index_builds_stream_vectors_from_the_database_in_chunks(photos, tmp_path):
    pics = tmp_path / "pics"
    pics.mkdir()
    for p in photos[:12]:
        shutil.copy(p, pics / p.name)
    flat, ivf = tmp_path / "flat", tmp_path / "ivf"
    index(pics, flat, tmp_path / "home")
    index(pics, ivf, tmp_path / "home", "--index-factory", "IVF2,Flat")
    with LibraryFolder.open(ivf) as folder:  # the folder under lookalike.Library
        chunks = list(folder.iter_vectors(METRIC, chunk=5))
        assert [len(ids) for ids, _ in chunks] == [5, 5, 2]
        assert all(v.shape[0] == len(ids) for ids, v in chunks)
        row = folder.metric_row(METRIC)
        rebuilt = folder.build_index(row, "IVF2,Flat")  # trained on a sample, filled chunk by chunk
        assert rebuilt.factory == "IVF2,Flat" and rebuilt.ntotal == 12
        assert sorted(rebuilt.ids().tolist()) == sorted(folder.ids(METRIC).tolist())
    with lookalike.Library.open(flat) as a, lookalike.Library.open(ivf) as b:
        want = a.search(str(photos[0]), k=12, metrics=[METRIC])[0].hits[METRIC]
        got = b.search(str(photos[0]), k=12, metrics=[METRIC])[0].hits[METRIC]
        assert [h.path for h in got] == [h.path for h in want]  # approximate index, exact re-ranking
