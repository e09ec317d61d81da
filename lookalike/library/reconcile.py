"""How a metric's FAISS file and the database disagree: the one comparison that loading an index
(:meth:`lookalike.library.folder.LibraryFolder.load_index`, which then repairs in memory) and
``lookalike doctor`` (which reports) both make. The database is the source of truth."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lookalike.library.vectors import VectorIndex

#: Kinds of disagreement that make the file unusable as it is (the index is rebuilt from the database).
MISSING, UNREADABLE, DIMENSION, DUPLICATES = "index-missing", "index-unreadable", "index-dimension", "index-duplicates"


@dataclass
class Reconciliation:
    """A FAISS file against the database's ids of one metric.

    ``index``: the loaded file (``None`` when there is none or it cannot be used); ``problem`` /
    ``detail``: why it cannot be used as it is (one of the kinds above; ``""`` when it can);
    ``duplicates``: ids stored more than once; ``extra``: file ids with no database vector;
    ``missing``: database ids the file lacks.
    """

    index: VectorIndex | None
    file_dim: int | None = None
    problem: str = ""
    detail: str = ""
    duplicates: int = 0
    extra: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    missing: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))


def reconcile(path: Path, metric: str, dim: int, distance: str, db_ids: np.ndarray) -> Reconciliation:
    """Compare the FAISS file ``path`` of ``metric`` (``dim``, ``distance``) with ``db_ids``, the
    sorted ids of its committed database vectors. Changes nothing."""
    if not path.is_file():
        return Reconciliation(None, None, MISSING if len(db_ids) else "", f"no index file {path.name}")
    try:
        index = VectorIndex.load(path, metric, distance)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is reported (and rebuilt)
        return Reconciliation(None, None, UNREADABLE, str(exc))
    if index.dim != dim:
        return Reconciliation(None, index.dim, DIMENSION, f"index is {index.dim}-d, metric is {dim}-d")
    ids = index.ids()
    out = Reconciliation(index, index.dim, duplicates=len(ids) - len(np.unique(ids)))
    if out.duplicates:
        out.problem = DUPLICATES
    out.extra = np.setdiff1d(ids, db_ids)
    out.missing = np.setdiff1d(db_ids, ids)
    return out
