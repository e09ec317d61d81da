"""``lookalike.store.records``: the library tables' queries, on SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from lookalike.store import open_store
from lookalike.store.records import FAILED, OK, LibraryRecords, decode_vectors, encode_vector
from tests.dbfixtures import db_url, store_url  # noqa: F401


@dataclass
class Rec:
    path: str
    sha256: str | None
    status: str = OK
    size: int | None = 10
    mtime_ns: int | None = 1
    info: dict[str, Any] | None = field(default_factory=lambda: {"width": 4, "height": 3, "format": "JPEG"})
    error: str | None = None
    detail: str | None = None


@pytest.fixture
def records(db_url, tmp_path):  # noqa: F811
    store = open_store(store_url(db_url, tmp_path))
    yield LibraryRecords(store)
    store.close()


def add(rec: LibraryRecords, recs: list[Rec], vectors: dict[str, np.ndarray] | None = None,
        moving: dict[str, list[str]] | None = None) -> Any:
    with rec.write() as w:
        metric = w.metric("m") or w.add_metric("m", 3, "cosine", {"config": {}}, None)
        written = w.write_files(recs, {} if moving is None else moving)
        if vectors:
            w.add_vectors(metric.id, {written.content_of[p]: v for p, v in vectors.items()})
        w.drop_orphans(written.orphans)
        return written


def test_files_contents_and_vectors_round_trip(records):
    gen = records.generation()
    v = np.array([[1, 2, 3], [4, 5, 6]], np.float32)
    written = add(records, [Rec("/p/a.jpg", "aa"), Rec("/p/b.jpg", "bb"), Rec("/p/copy.jpg", "aa"),
                            Rec("/p/bad.jpg", None, FAILED, error="decode", info=None)],
                  {"/p/a.jpg": v[0], "/p/b.jpg": v[1]})
    assert records.generation() == gen + 1  # one writer commit
    a, b = written.content_of["/p/a.jpg"], written.content_of["/p/b.jpg"]
    assert written.content_of["/p/copy.jpg"] == a and "/p/bad.jpg" not in written.content_of
    m = records.metric("m")
    assert records.metric_names() == ["m"] and m.dim == 3
    assert records.vector_ids(m.id).tolist() == sorted([a, b])
    got = records.vectors(m, [b, a, 10**6])
    np.testing.assert_array_equal(got[a], v[0])
    np.testing.assert_array_equal(got[b], v[1])
    assert 10**6 not in got
    assert records.paths_of([a, b, -1]) == {a: ["/p/a.jpg", "/p/copy.jpg"], b: ["/p/b.jpg"]}
    assert records.content_of_path("/p/copy.jpg") == a and records.content_of_path("/p/bad.jpg") is None
    assert records.content_of_sha256("bb") == b and records.sha256_of([a, b]) == {a: "aa", b: "bb"}
    assert records.content_ids() == sorted([a, b]) and records.content_ids(under="/p/") == sorted([a, b])
    assert records.content_ids(under="/elsewhere") == []
    assert records.status_counts() == {OK: 3, FAILED: 1} and records.content_count() == 2
    assert records.problems() == [("/p/bad.jpg", FAILED, "decode", None)]
    total, rows = records.files(offset=1, limit=2)
    assert total == 4 and [r.path for r in rows] == ["/p/b.jpg", "/p/bad.jpg"]
    assert records.first_file(a).path == "/p/a.jpg"
    assert records.unembedded(m.id) == [] and records.unembedded_count(m.id) == 0
    assert records.malformed_vectors(m) == [] and records.vector_counts() == {m.id: 2}
    assert records.integrity() == ["ok"]


def test_a_moved_file_keeps_its_row_and_content(records):
    first = add(records, [Rec("/p/a.jpg", "aa")], {"/p/a.jpg": np.ones(3, np.float32)})
    row = records.files()[1][0]
    moving = {"aa": ["/p/a.jpg"]}
    moved = add(records, [Rec("/p/sub/a.jpg", "aa")], moving=moving)
    assert moved.moved == 1 and moving == {}
    (after,) = records.files()[1]
    assert (after.id, after.path, after.content_id) == (row.id, "/p/sub/a.jpg", first.content_of["/p/a.jpg"])
    assert records.vector_ids(records.metric("m").id).tolist() == [after.content_id]


def test_orphans_lose_their_vectors_and_rows(records):
    written = add(records, [Rec("/p/a.jpg", "aa"), Rec("/p/b.jpg", "bb")],
                  {"/p/a.jpg": np.ones(3, np.float32), "/p/b.jpg": np.zeros(3, np.float32)})
    with records.write() as w:
        dropped = w.drop_orphans(w.delete_files(["/p/a.jpg"]))
    a, b = written.content_of["/p/a.jpg"], written.content_of["/p/b.jpg"]
    assert dropped == [a] and records.sha256_of([a, b]) == {b: "bb"}
    assert records.vector_ids(records.metric("m").id).tolist() == [b]
    assert records.orphan_contents() == [] and records.listed_paths() == ["/p/b.jpg"]


def test_an_empty_metric_is_forgotten_and_roots_are_remembered(records):
    with records.write() as w:
        mid = w.add_metric("empty", 3, "cosine", {}, None).id
        w.touch_roots(["/p", "/q"])
    with records.write() as w:
        assert w.forget_metric_if_empty(mid)
        w.touch_roots(["/p"], forget=["/q"])
    assert records.metric("empty") is None and records.roots() == ["/p"]
    assert [r for r, _ in records.roots_indexed()] == ["/p"]


def test_vectors_encode_as_little_endian_float32_and_wrong_sizes_are_refused():
    v = np.arange(4, dtype=np.float64)
    blob = encode_vector(v)
    assert blob == np.arange(4, dtype="<f4").tobytes()
    np.testing.assert_array_equal(decode_vectors([blob, blob], 4), np.stack([v, v]).astype(np.float32))
    with pytest.raises(ValueError, match="not 3-dimensional"):
        decode_vectors([blob], 3)
