"""The store layer of duplicate reviews: what a reviewer decided about near-duplicate groups.

Two decisions, both keyed by content ids (a review follows the photo through moves and renames,
and goes with it when it leaves the library): a pair is "not the same photo" (:meth:`ReviewStore.
mark_not_same`; the app's review page keeps the pair apart, ``lookalike dupes`` does not read it;
exported as a judgment), and the copy of a group to keep
(:meth:`ReviewStore.keep`). Each write is one short transaction that takes SQLite's write lock up
front, so the sessions of one app server and separate processes never lose each other's decisions.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker

from lookalike.store.db import Store
from lookalike.store.models import Content, DuplicateKeep, DuplicateVerdict

__all__ = ["ReviewStore"]


def _iso(t: dt.datetime | None) -> str | None:
    if t is None:
        return None
    return (t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)).isoformat()


class ReviewStore:
    """Duplicate reviews of one library database (thread-safe: a session per call)."""

    def __init__(self, db: Store) -> None:
        self.db = db
        self._write = sessionmaker(db.engine.execution_options(sqlite_immediate=True), expire_on_commit=False)

    def mark_not_same(self, a: int, b: int, metric: str, distance: float | None = None,
                      paths: Sequence[str] | None = None) -> bool:
        """Record that contents ``a`` and ``b`` are not the same photo; False if it was known already
        (or either content left the library)."""
        lo, hi = sorted((int(a), int(b)))
        if lo == hi:
            raise ValueError("a photo cannot be 'not the same photo' as itself")
        try:
            with self._write() as s, s.begin():
                if s.scalar(select(DuplicateVerdict.id).where(DuplicateVerdict.a_id == lo,
                                                              DuplicateVerdict.b_id == hi)) is not None:
                    return False
                if s.get(Content, lo) is None or s.get(Content, hi) is None:
                    return False
                s.add(DuplicateVerdict(a_id=lo, b_id=hi, metric=metric, distance=distance,
                                       paths=list(paths) if paths else None, label="different"))
        except IntegrityError:  # another process recorded the same pair at the same moment
            return False
        return True

    def keep(self, group_key: str, content_id: int) -> bool:
        """Record ``content_id`` as the copy to keep of the group ``group_key`` (replacing an earlier
        choice); False when the library has no such content (it left since)."""
        for attempt in range(2):
            try:
                with self._write() as s, s.begin():
                    if s.get(Content, int(content_id)) is None:
                        return False
                    row = s.scalar(select(DuplicateKeep).where(DuplicateKeep.group_key == group_key))
                    if row is None:
                        s.add(DuplicateKeep(group_key=group_key, content_id=int(content_id)))
                    else:
                        row.content_id = int(content_id)
                return True
            except IntegrityError:  # a concurrent first choice of the same group: update it instead
                if attempt:
                    raise
        return False

    def not_same_pairs(self) -> set[tuple[int, int]]:
        """Every ``(smaller id, larger id)`` marked not the same photo."""
        with self.db.session() as s:
            return {(int(a), int(b)) for a, b in s.execute(select(DuplicateVerdict.a_id, DuplicateVerdict.b_id))}

    def kept(self) -> dict[str, int]:
        """``{group key: content id to keep}``."""
        with self.db.session() as s:
            return {k: int(c) for k, c in s.execute(select(DuplicateKeep.group_key, DuplicateKeep.content_id))}

    def export(self) -> dict[str, Any]:
        """Every decision as JSON-able data: ``not_same`` (judgments: ``a``, ``b``, ``metric``,
        ``distance``, ``paths``, ``label``, ``at``) and ``keep``."""
        with self.db.session() as s:
            rows = s.scalars(select(DuplicateVerdict).order_by(DuplicateVerdict.id)).all()
            not_same = [{"a": r.a_id, "b": r.b_id, "metric": r.metric, "distance": r.distance,
                         "paths": r.paths, "label": r.label, "at": _iso(r.created_at)} for r in rows]
        return {"not_same": not_same, "keep": self.kept()}
