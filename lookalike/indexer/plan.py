"""Planning stage: compare a folder listing with the database and decide what to (re)read.

A file whose (path, size, mtime_ns) is unchanged since it was indexed is skipped without being
opened, as is a file that failed with the same size and mtime. Everything else is read: new files,
changed files (with their previous sha256, so that a touched but identical file is only hashed,
not decoded), and files whose content lacks a vector for a requested metric (also outside the
roots: :attr:`Plan.lacking`, so that every metric covers every indexed file). Known files under the
roots that the listing no longer finds have been deleted (unless they sit under a folder that
could not be listed this time).

A new file whose size is that of a deleted one is read with that file's sha256 expected: when the
bytes match (a move or a rename within the roots) it is hashed, not decoded, and the writer
re-points the deleted file's row at it (:meth:`~lookalike.indexer.writer.LibraryWriter.expect_moves`),
so the image keeps its row, its content id and its vectors.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from lookalike.indexer.listing import BROKEN_LINK, UNREADABLE_FILE, FileEntry, ListingProblem
from lookalike.store.records import FAILED, OK


#: Listing problems that mean a root itself is not there.
ROOT_GONE = frozenset({UNREADABLE_FILE, BROKEN_LINK})


@dataclass(frozen=True)
class KnownFile:
    """What the database says about a path."""

    path: str
    size: int | None
    mtime_ns: int | None
    status: str
    content_id: int | None
    sha256: str | None
    error: str | None = None  # the failure reason of a failed file


@dataclass
class Plan:
    todo: list[FileEntry] = field(default_factory=list)
    expect: dict[str, str] = field(default_factory=dict)  # path -> previous sha256 (complete content)
    unchanged: int = 0
    deleted: list[str] = field(default_factory=list)
    lacking: list[str] = field(default_factory=list)  # readable files outside the roots lacking a metric
    unavailable: list[str] = field(default_factory=list)  # roots missing or empty: their files kept
    problems: list[ListingProblem] = field(default_factory=list)

    @property
    def listed(self) -> int:
        return len(self.todo) + self.unchanged


def under(path: str, roots: Iterable[str]) -> bool:
    """Whether ``path`` is one of ``roots`` or inside one of them."""
    for r in roots:
        base = r.rstrip(os.sep)
        if path == (base or os.sep) or path.startswith(base + os.sep):
            return True
    return False


def roots_of(path: str, roots: set[str]) -> list[str]:
    """The members of ``roots`` that are ``path`` or one of its parent folders (depth, not
    ``len(roots)``, bounds the work)."""
    out = []
    while True:
        if path in roots:
            out.append(path)
        parent = os.path.dirname(path)
        if parent == path:
            return out
        path = parent


#: Failure reasons retried on every run even when the file looks unchanged (permissions can be
#: fixed without touching size or mtime).
RETRY_REASONS = frozenset({"permission denied"})


def make_plan(listing: Iterable[FileEntry | ListingProblem], known: Mapping[str, KnownFile],
              roots: Iterable[str], complete: set[int], prune: bool = False,
              retry_failed: bool = False) -> Plan:
    """Decide what to read. ``complete``: content ids that have a vector for every requested metric.

    A root that is missing, or a folder that lists no image file at all while the library knows
    files under it (an unmounted drive's empty mount point), is *unavailable*: its known files are
    kept, not deleted, unless ``prune``. Failed files are read again when ``retry_failed``, or when
    they failed for an access reason (:data:`RETRY_REASONS`).
    """
    plan = Plan()
    roots = [os.path.abspath(r) for r in roots]
    rootset = set(roots)
    seen: set[str] = set()
    found: set[str] = set()  # roots under which the listing found something (files or problems)
    missing: set[str] = set()
    for item in listing:
        if isinstance(item, ListingProblem) and item.path in roots and item.reason in ROOT_GONE:
            missing.add(item.path)  # a root that is not there is not a file to record
            continue
        seen.add(item.path)
        found.update(roots_of(item.path, rootset))
        if isinstance(item, ListingProblem):
            plan.problems.append(item)
            continue
        old = known.get(item.path)
        same = old is not None and old.size == item.size and old.mtime_ns == item.mtime_ns
        retry = old is not None and old.status == FAILED and (retry_failed or old.error in RETRY_REASONS)
        if same and old is not None and ((old.status == FAILED and not retry) or
                                         (old.status == OK and old.content_id in complete)):
            plan.unchanged += 1
            continue
        plan.todo.append(item)
        if (old is not None and not same and old.status == OK and old.sha256
                and old.content_id in complete):
            plan.expect[item.path] = old.sha256
    holding = {r for p in known for r in roots_of(p, rootset)}  # roots the library has files under
    plan.unavailable = [r for r in roots if r in missing or (r not in found and r in holding)]
    blind = [p.path for p in plan.problems]  # folders we could not look into this time
    if not prune:
        blind += plan.unavailable
    plan.deleted = sorted(p for p in known if p not in seen and under(p, roots) and not under(p, blind))
    gone = {}
    for p in plan.deleted:
        k = known[p]
        if k.status == OK and k.sha256 and k.content_id in complete and k.size is not None:
            gone.setdefault(k.size, k.sha256)
    for item in plan.todo:
        if item.path not in known and item.size in gone:
            plan.expect[item.path] = gone[item.size]  # probably moved here: hash before decoding
    plan.lacking = sorted(p for p, k in known.items() if p not in seen and not under(p, roots)
                          and k.status == OK and k.content_id not in complete)
    return plan
