"""``lookalike.store.reviews``: duplicate reviews in the library database, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import pytest

from lookalike.store import open_store
from lookalike.store.records import OK, LibraryRecords
from lookalike.store.reviews import ReviewStore
from tests.dbfixtures import db_url, store_url  # noqa: F401


@dataclass
class Rec:
    path: str
    sha256: str
    status: str = OK
    size: int | None = 1
    mtime_ns: int | None = 1
    info: dict[str, Any] | None = field(default_factory=dict)
    error: str | None = None
    detail: str | None = None


@pytest.fixture
def db(db_url, tmp_path):  # noqa: F811
    store = open_store(store_url(db_url, tmp_path))
    yield store
    store.close()


def contents(db, *names: str) -> list[int]:
    with LibraryRecords(db).write() as w:
        written = w.write_files([Rec(f"/p/{n}.jpg", n * 8) for n in names], {})
    return [written.content_of[f"/p/{n}.jpg"] for n in names]


def test_not_same_pairs_are_recorded_once_in_either_order(db):
    a, b, c = contents(db, "a", "b", "c")
    reviews = ReviewStore(db)
    assert reviews.mark_not_same(b, a, "effnet-lite0", 0.2, ["/p/b.jpg", "/p/a.jpg"])
    assert not reviews.mark_not_same(a, b, "effnet-lite0", 0.2)  # known already
    assert not reviews.mark_not_same(a, 10**6, "effnet-lite0")  # no such content
    assert reviews.not_same_pairs() == {(min(a, b), max(a, b))}
    (judgment,) = reviews.export()["not_same"]
    assert judgment["label"] == "different" and judgment["paths"] == ["/p/b.jpg", "/p/a.jpg"]
    assert judgment["at"].endswith("+00:00")
    with pytest.raises(ValueError):
        reviews.mark_not_same(c, c, "effnet-lite0")


def test_the_copy_to_keep_is_replaced_and_goes_with_its_content(db):
    a, b = contents(db, "a", "b")
    reviews = ReviewStore(db)
    assert reviews.keep("effnet-lite0:1", a) and reviews.keep("effnet-lite0:1", b)
    assert reviews.kept() == {"effnet-lite0:1": b}
    assert not reviews.keep("effnet-lite0:9", 10**6)
    reviews.mark_not_same(a, b, "effnet-lite0")
    with LibraryRecords(db).write() as w:  # the file holding b leaves the library
        w.drop_orphans(w.delete_files(["/p/b.jpg"]))
    assert reviews.kept() == {} and reviews.not_same_pairs() == set()


def test_concurrent_reviewers_lose_nothing(db):
    ids = contents(db, *"abcdefgh")
    stores = [ReviewStore(db) for _ in range(4)] + [ReviewStore(db)] * 4  # separate and shared
    errors: list[BaseException] = []

    def review(i: int) -> None:
        try:
            stores[i].mark_not_same(ids[0], ids[1], "m")  # everybody marks the same pair
            stores[i].keep(f"m:{i}", ids[i])  # and keeps a copy of a group of their own
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=review, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert ReviewStore(db).not_same_pairs() == {(min(ids[:2]), max(ids[:2]))}
    assert ReviewStore(db).kept() == {f"m:{i}": ids[i] for i in range(8)}
