"""Which library contents studies refer to (the indexer keeps those content rows)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import select

from lookalike.store.models import Trial, TrialImage


def study_content_ids(session: Any, candidates: Collection[int] | None = None) -> set[int]:
    """Content ids among ``candidates`` (default: all) that a study trial shows."""
    out: set[int] = set()
    queries = [select(TrialImage.content_id), select(Trial.reference_id), select(Trial.left_id),
               select(Trial.right_id)]
    for q in queries:
        col = q.selected_columns[0]
        q = q.where(col.is_not(None))
        if candidates is not None:
            q = q.where(col.in_(list(candidates)))
        out.update(int(c) for c in session.scalars(q.distinct()))
    return out
