"""The planning stage: what to read again, what to skip unread, what was deleted."""

from __future__ import annotations

from lookalike.indexer.listing import FileEntry, ListingProblem
from lookalike.indexer.plan import KnownFile, make_plan, under


def k(path: str, size: int = 10, mtime: int = 1, status: str = "ok", cid: int | None = 1,
      sha: str | None = "s1") -> KnownFile:
    return KnownFile(path, size, mtime, status, cid, sha)


def test_plan_decisions():
    known = {
        "/r/same.jpg": k("/r/same.jpg", cid=1),
        "/r/failed.jpg": k("/r/failed.jpg", status="failed", cid=None, sha=None),
        "/r/touched.jpg": k("/r/touched.jpg", mtime=1, cid=2, sha="s2"),
        "/r/lacking.jpg": k("/r/lacking.jpg", cid=3),  # content lacks a metric's vector
        "/r/gone.jpg": k("/r/gone.jpg"),
        "/r/blind/x.jpg": k("/r/blind/x.jpg"),  # under a folder that cannot be listed now
        "/other/keep.jpg": k("/other/keep.jpg"),  # not under this run's roots
    }
    listing = [FileEntry("/r/same.jpg", 10, 1), FileEntry("/r/failed.jpg", 10, 1),
               FileEntry("/r/touched.jpg", 10, 2), FileEntry("/r/lacking.jpg", 10, 1),
               FileEntry("/r/new.jpg", 5, 5), ListingProblem("/r/blind", "unreadable folder")]
    plan = make_plan(listing, known, ["/r"], complete={1, 2})
    assert plan.unchanged == 2
    assert [e.path for e in plan.todo] == ["/r/touched.jpg", "/r/lacking.jpg", "/r/new.jpg"]
    assert plan.expect == {"/r/touched.jpg": "s2"}
    assert plan.deleted == ["/r/gone.jpg"]
    assert [p.path for p in plan.problems] == ["/r/blind"]


def test_failed_file_that_changed_is_retried():
    known = {"/r/a.jpg": k("/r/a.jpg", status="failed", cid=None)}
    plan = make_plan([FileEntry("/r/a.jpg", 11, 1)], known, ["/r"], complete=set())
    assert [e.path for e in plan.todo] == ["/r/a.jpg"] and plan.expect == {}


def test_under():
    assert under("/a/b/c.jpg", ["/a/b"]) and under("/a/b", ["/a/b/"])
    assert not under("/a/bc/d.jpg", ["/a/b"])
