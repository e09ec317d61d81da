"""What the app's pages call: one :class:`lookalike.Library` and one study service over it per
process, thumbnails, duplicate reviews, the admin check. No Streamlit here except :func:`services`
(cached), so the functions are plain Python the tests can call.

Configuration comes from the environment ``lookalike ui`` sets for the Streamlit process:
``LOOKALIKE_UI_LIBRARY`` (library folder), ``LOOKALIKE_UI_DB`` (database URL, optional),
``LOOKALIKE_UI_ADMIN_TOKEN`` (without it every admin page refuses) and ``LOOKALIKE_UI_URL``
(the address participants reach, for links).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lookalike.errors import LookalikeError, UsageError

if TYPE_CHECKING:
    from lookalike.library.service import Library
    from lookalike.studies.service import StudyService

log = logging.getLogger(__name__)

LIBRARY_ENV, DB_ENV, TOKEN_ENV, URL_ENV = ("LOOKALIKE_UI_LIBRARY", "LOOKALIKE_UI_DB",
                                           "LOOKALIKE_UI_ADMIN_TOKEN", "LOOKALIKE_UI_URL")
THUMB_SIDE = 256
REVIEWS_FILE = "ui-reviews.json"
WEIGHTS_REMEDY = "import its weights with `lookalike weights import` (see `lookalike weights --help`)"


@dataclass
class Services:
    """The process's shared handles: one library and the study service over it."""

    library: Library
    study: StudyService
    admin_token: str | None
    base_url: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def open(cls, library: str | os.PathLike[str] | None, db_url: str | None = None,
             admin_token: str | None = None, base_url: str | None = None) -> Services:
        from lookalike.studies.service import StudyService

        study = StudyService.open(library, db_url=db_url, admin_token=admin_token)
        return cls(study.library, study, admin_token or None, base_url)

    def close(self) -> None:
        self.study.close()  # it owns the library

    @property
    def path(self) -> Path:
        return self.library.path

    def is_admin(self, token: str | None) -> bool:
        from lookalike.studies.blinding import same_token

        return bool(self.admin_token and token and same_token(self.admin_token, token))

    # -- library --------------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        return self.library.status()

    def image_ids(self) -> list[int]:
        """Ids of every indexed image (in any metric), sorted: what the browser pages through."""
        ids: set[int] = set()
        for m in self.library.metrics():
            ids |= {int(i) for i in self.library.ids(m)}
        return sorted(ids)

    def paths(self, ids: list[int]) -> dict[int, str]:
        """The first indexed path of each id."""
        return {i: p[0] for i, p in self.library.paths_for(ids).items() if p}

    def thumbnail(self, image_id: int, side: int = THUMB_SIDE) -> bytes:
        """A JPEG of at most ``side`` pixels for ``image_id``, made once
        (:meth:`lookalike.Library.thumbnail`, cached in the library folder)."""
        return self.library.thumbnail(int(image_id), side)

    def has_thumbnail(self, image_id: int, side: int = THUMB_SIDE) -> bool:
        """Whether :meth:`thumbnail` is made already (:meth:`lookalike.Library.has_thumbnail`)."""
        return self.library.has_thumbnail(int(image_id), side)

    def search_one(self, query: Any, metric: str, k: int, exclude_self: bool = True) -> Any:
        """The :class:`QueryResult` of one query under one metric (one search at a time)."""
        with self.lock:
            res = self.library.search([query], k=k, metrics=[metric], exclude_self=exclude_self)[0]
        if metric in res.errors:
            raise UsageError(f"the query could not be read: {res.errors[metric]}")
        return res.by_metric[metric]

    def rerank_one(self, query: Any, metrics: list[str], rerank: str, k: int,
                   candidates: int = 50) -> Any:
        """The ``rerank`` column: the union of each metric's top ``candidates`` re-ranked by the
        pairwise metric ``rerank`` (:meth:`lookalike.Library.search` with ``rerank=``)."""
        with self.lock:
            res = self.library.search([query], k=k, metrics=metrics, exclude_self=True, rerank=rerank,
                                      candidates=candidates)[0]
        if rerank in res.errors:
            raise UsageError(f"re-ranking failed: {res.errors[rerank]}")
        return res.by_metric[rerank]

    def duplicates(self, metric: str) -> list[Any]:
        with self.lock:
            return self.library.duplicates(metric)

    def pair_distances(self, a: int, b: int) -> dict[str, float]:
        """The distance of two library images under every indexed metric (stored vectors)."""
        from lookalike.embed.distance import pairwise

        out = {}
        for m in self.library.metrics():
            try:
                v = self.library.vectors(m, [a, b])
            except (LookalikeError, KeyError):
                continue
            out[m] = max(float(pairwise(v[:1], v[1:], self.library.distance_kind(m))[0, 0]), 0.0)  # type: ignore[arg-type]
        return out

    # -- duplicate reviews (in the library's database) -------------------------------------------------

    @functools.cached_property
    def _reviews(self) -> Reviews:
        return Reviews(self.library)  # made once: the old file is looked for once per process

    def reviews(self) -> Reviews:
        return self._reviews

    def participant_link(self, public_id: str, base: str | None = None) -> str:
        root = (base or self.base_url or "").rstrip("/")
        return f"{root}/participate?study={public_id}"


class Reviews:
    """A reviewer's decisions on near-duplicate groups, kept in the library's database
    (:class:`lookalike.store.reviews.ReviewStore`): pairs marked "not the same photo" (the app
    shows them apart; ``lookalike dupes`` does not read reviews and still groups them; exported as
    judgments for tuning) and the copy to keep of a group. Nothing is deleted
    from disk. Decisions an older version kept in ``ui-reviews.json`` are imported once."""

    def __init__(self, library: Library) -> None:
        from lookalike.store.reviews import ReviewStore

        self.store = ReviewStore(library.database)
        self._import_file(library.path / REVIEWS_FILE)

    def _import_file(self, path: Path) -> None:
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return
        except (OSError, json.JSONDecodeError) as exc:
            raise UsageError(f"cannot read the duplicate reviews in {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise UsageError(f"{path} is not a file of duplicate reviews")
        skipped = 0
        for r in data.get("not_same") or []:  # decisions on images that left the library are dropped
            try:
                self.store.mark_not_same(int(r["a"]), int(r["b"]), str(r.get("metric", "")),
                                         None if r.get("distance") is None else float(r["distance"]),
                                         [str(p) for p in r.get("paths") or []] or None)
            except (KeyError, TypeError, ValueError):  # a malformed entry (a library from elsewhere)
                skipped += 1
        for key, image_id in dict(data.get("keep") or {}).items():
            try:
                self.store.keep(str(key), int(image_id))
            except (TypeError, ValueError):
                skipped += 1
        if skipped:
            log.warning("%s: %d malformed duplicate review(s) skipped", path, skipped)
        try:
            path.rename(path.with_name(path.name + ".imported"))
        except OSError as exc:  # a read-only folder: importing again changes nothing
            log.debug("kept %s: %s", path, exc)

    def load(self) -> dict[str, Any]:
        """``{"not_same": [judgments], "keep": {group key: image id}}``."""
        return self.store.export()

    def mark_not_same(self, a: int, b: int, metric: str, distance: float | None = None,
                      paths: tuple[str, str] | None = None) -> None:
        self.store.mark_not_same(a, b, metric, distance, paths)

    def keep(self, group_key: str, image_id: int) -> None:
        self.store.keep(group_key, image_id)

    def not_same_pairs(self) -> set[tuple[int, int]]:
        return self.store.not_same_pairs()


def group_key(metric: str, ids: list[int]) -> str:
    return f"{metric}:{min(ids)}"


def split_groups(members: Sequence[Any], not_same: set[tuple[int, int]]) -> list[Any]:
    """A duplicate group without the members a reviewer marked "not the same photo" as its
    reference (the first member); what is left is a group only if it has two or more members.
    ``members``: tuples starting ``(image_id, path, distance, meaning)``."""
    ref = members[0][0]
    kept = [m for m in members if m[0] == ref or (min(ref, m[0]), max(ref, m[0])) not in not_same]
    return kept if len(kept) >= 2 else []


def pairwise_metrics(include_test: bool = False) -> list[str]:
    """Registered pairwise metrics (e.g. ``diffsim-sd15``), which re-rank search candidates."""
    from lookalike.embed.registry import all_configs

    return [n for n, c in all_configs().items()
            if c.kind == "pairwise" and (include_test or not c.test_only)]


def has_test_metrics(metrics: list[str]) -> bool:
    """Whether any of ``metrics`` is a registered test-only metric (a test or demo library)."""
    from lookalike.embed.registry import all_configs

    configs = all_configs()
    return any(m in configs and configs[m].test_only for m in metrics)


def metric_problem(exc: BaseException) -> str:
    """The on-page message for a failed metric: the remedy when its weights are missing."""
    from lookalike.errors import WeightsMissingError

    if isinstance(exc, WeightsMissingError):
        return f"{exc} — {WEIGHTS_REMEDY}"
    return str(exc) or type(exc).__name__


def agreement(columns: dict[str, list[int]]) -> dict[int, int]:
    """How many metrics' top-k each image is in (only images in two or more)."""
    counts: dict[int, int] = {}
    for ids in columns.values():
        for i in set(ids):
            counts[i] = counts.get(i, 0) + 1
    return {i: n for i, n in counts.items() if n >= 2}


def overlap(columns: dict[str, list[int]]) -> list[dict[str, Any]]:
    """Pairwise overlap of the metrics' top-k lists (shared images, Jaccard)."""
    names = list(columns)
    out = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            sa, sb = set(columns[a]), set(columns[b])
            union = sa | sb
            out.append({"metrics": f"{a} / {b}", "shared": len(sa & sb),
                        "jaccard": round(len(sa & sb) / len(union), 3) if union else 0.0})
    return out


def missing_weights(metrics: list[str]) -> dict[str, list[str]]:
    """The weights files each metric lacks here (metrics the registry does not know are left out)."""
    from lookalike.embed.weights import is_present, needed_files

    out: dict[str, list[str]] = {}
    for m in metrics:
        try:
            files = needed_files([m])
        except LookalikeError:
            continue
        gone = [name for name, need in files.items() if not is_present(need.wf)]
        if gone:
            out[m] = gone
    return out
