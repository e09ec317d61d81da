"""Writer and mapper stages on their own: batches, de-duplication, orphans."""

from __future__ import annotations

import numpy as np
import pytest

from lookalike.embed.pipeline import Prepared
from lookalike.embed.registry import get_config
from lookalike.errors import NotAnImageError, UsageError
from lookalike.library.folder import LibraryFolder
from lookalike.indexer.listing import FileEntry
from lookalike.indexer.run import (EmbedJob, Embedder, InProcess, IndexOptions, embed_batch, index_library,
                                   plan_batch)
from lookalike.indexer.writer import FileResult, LibraryWriter
from tests.dbfixtures import db_url  # noqa: F401


@pytest.fixture
def writer(tmp_path, db_url):  # noqa: F811
    lib = LibraryFolder.open(tmp_path / "lib", db_url=db_url, create=True, writable=True)
    yield LibraryWriter(lib, [get_config("tiny-vit")])
    lib.close()


def vec(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=32).astype(np.float32)


def test_flush_writes_rows_vectors_and_index(writer):
    writer.add(FileResult("/p/a.jpg", 3, 1, sha256="a" * 64, info={"width": 4, "height": 2},
                          vectors={"tiny-vit": vec(1)}))
    writer.add(FileResult("/p/a2.jpg", 3, 1, sha256="a" * 64))  # same content, nothing to embed
    writer.add(FileResult("/p/bad.jpg", 5, 1, status="failed", sha256="b" * 64, error="not an image"))
    assert writer.missing_metrics(["a" * 64, "c" * 64]) == {"a" * 64: set(), "c" * 64: {"tiny-vit"}}
    assert writer.flush() == 3 and writer.pending == 0
    lib = writer.library
    cid = lib.id_for_path("/p/a.jpg")
    assert cid is not None and lib.id_for_path("/p/a2.jpg") == cid and lib.id_for_path("/p/bad.jpg") is None
    np.testing.assert_array_equal(lib.vectors("tiny-vit", [cid])[0], vec(1))
    assert list(writer.indexes["tiny-vit"].ids()) == [cid]
    assert writer.missing_metrics(["a" * 64]) == {"a" * 64: set()}
    # a.jpg changes content; a2 still holds the old content; then a2 goes: the old content is orphaned
    writer.add(FileResult("/p/a.jpg", 3, 2, sha256="d" * 64, vectors={"tiny-vit": vec(2)}))
    writer.flush()
    assert writer.indexes["tiny-vit"].ntotal == 2
    assert writer.delete_paths(["/p/a2.jpg"]) == 1
    assert list(writer.indexes["tiny-vit"].ids()) == [lib.id_for_path("/p/a.jpg")] != [cid]
    assert sorted(writer.indexes["tiny-vit"].ids()) == sorted(lib.ids("tiny-vit"))
    writer.save()
    assert lib.index_path("tiny-vit").is_file() and lib.metric_row("tiny-vit").vector_count == 1


def test_invalid_factory_is_a_usage_error(writer):
    with pytest.raises(UsageError, match="factory"):
        LibraryWriter(writer.library, [get_config("tiny-vit")], factory="NoSuchIndex")


class CountingEmbedder(Embedder):
    def __init__(self) -> None:
        super().__init__([get_config("tiny-vit")])
        self.rows = 0

    def embed(self, name: str, arrays: np.ndarray) -> np.ndarray:
        self.rows += len(arrays)
        return np.stack([np.full(32, float(a.mean()), np.float32) for a in arrays])


def test_mapper_embeds_each_content_once(writer):
    key = get_config("tiny-vit").preprocess.key
    arr = {key: np.zeros((32, 32, 3), np.uint8)}
    chunk = [Prepared("/p/1.jpg", arr, sha256="1" * 64), Prepared("/p/2.jpg", arr, sha256="1" * 64),
             Prepared("/p/3.jpg", {key: np.ones((32, 32, 3), np.uint8)}, sha256="3" * 64),
             Prepared("/p/4.jpg", error=NotAnImageError("/p/4.jpg"), sha256="4" * 64),
             Prepared("/p/5.jpg", sha256="5" * 64, unchanged=True)]
    entries = {p.path: FileEntry(p.path, 1, 1) for p in chunk}
    emb = CountingEmbedder()
    results = embed_batch(plan_batch(chunk, entries, writer), emb)
    assert emb.rows == 2  # two distinct decoded contents
    assert [sorted(r.vectors) for r in results] == [["tiny-vit"], ["tiny-vit"], ["tiny-vit"], [], []]
    assert [r.status for r in results] == ["ok", "ok", "ok", "failed", "ok"]
    assert results[3].error == "not an image"
    for r in results[:3]:
        writer.add(r)
    assert embed_batch(plan_batch(chunk[:1], entries, writer), emb)[0].vectors == {}  # pending counts as known
    assert emb.rows == 2


def test_the_mapper_is_pure_needs_come_from_the_plan():
    key = get_config("tiny-vit").preprocess.key
    chunk = [Prepared("/p/1.jpg", {key: np.zeros((32, 32, 3), np.uint8)}, sha256="1" * 64),
             Prepared("/p/2.jpg", {key: np.ones((32, 32, 3), np.uint8)}, sha256="2" * 64)]
    entries = {p.path: FileEntry(p.path, 1, 1) for p in chunk}
    emb = CountingEmbedder()
    results = embed_batch(EmbedJob(chunk, entries, {"1" * 64: {"tiny-vit"}, "2" * 64: set()}), emb)
    assert [sorted(r.vectors) for r in results] == [["tiny-vit"], []] and emb.rows == 1


class CountingDistributor(InProcess):
    def __init__(self) -> None:
        self.batches = 0

    def map(self, mapper, jobs):
        for job in jobs:
            self.batches += 1
            yield mapper(job)


def test_a_distributor_runs_the_mapper_of_an_indexing_run(photos, tmp_path):
    import shutil

    pics = tmp_path / "pics"
    pics.mkdir()
    for p in photos[:5]:
        shutil.copy(p, pics / p.name)
    dist = CountingDistributor()
    with LibraryFolder.open(tmp_path / "lib", create=True, writable=True) as lib:
        report = index_library(lib, [pics], IndexOptions(metrics=["tiny-vit"], batch_size=2, workers=0,
                                                         progress=False), distributor=dist)
    assert dist.batches == 3 and report.embedded == {"tiny-vit": 5}
