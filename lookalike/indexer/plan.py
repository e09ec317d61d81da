"""Planning stage: compare a folder listing with the database and decide what to (re)read.

A file whose (path, size, mtime_ns) is unchanged since it was indexed is skipped without being
opened, as is a file that failed with the same size and mtime. Everything else is read: new files,
changed files (with their previous sha256, so that a touched but identical file is only hashed,
not decoded), and files whose content lacks a vector for a requested metric (also outside the
roots: :attr:`Plan.lacking`, so that every metric covers every indexed file). Known files under the
roots that the listing no longer finds have been deleted (unless they sit under a folder that
could not be listed this time).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from lookalike.indexer.listing import FileEntry, ListingProblem
from lookalike.store.models import FAILED, OK


@dataclass(frozen=True)
class KnownFile:
    """What the database says about a path."""

    path: str
    size: int | None
    mtime_ns: int | None
    status: str
    content_id: int | None
    sha256: str | None


@dataclass
class Plan:
    todo: list[FileEntry] = field(default_factory=list)
    expect: dict[str, str] = field(default_factory=dict)  # path -> previous sha256 (complete content)
    unchanged: int = 0
    deleted: list[str] = field(default_factory=list)
    lacking: list[str] = field(default_factory=list)  # readable files outside the roots lacking a metric
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


def make_plan(listing: Iterable[FileEntry | ListingProblem], known: Mapping[str, KnownFile],
              roots: Iterable[str], complete: set[int]) -> Plan:
    """Decide what to read. ``complete``: content ids that have a vector for every requested metric."""
    plan = Plan()
    seen: set[str] = set()
    for item in listing:
        if isinstance(item, ListingProblem):
            plan.problems.append(item)
            seen.add(item.path)
            continue
        seen.add(item.path)
        old = known.get(item.path)
        same = old is not None and old.size == item.size and old.mtime_ns == item.mtime_ns
        if same and old is not None and (old.status == FAILED or
                                          (old.status == OK and old.content_id in complete)):
            plan.unchanged += 1
            continue
        plan.todo.append(item)
        if (old is not None and not same and old.status == OK and old.sha256
                and old.content_id in complete):
            plan.expect[item.path] = old.sha256
    roots = [os.path.abspath(r) for r in roots]
    blind = [p.path for p in plan.problems]  # folders we could not look into this time
    plan.deleted = sorted(p for p in known if p not in seen and under(p, roots) and not under(p, blind))
    plan.lacking = sorted(p for p, k in known.items() if p not in seen and not under(p, roots)
                          and k.status == OK and k.content_id not in complete)
    return plan
