"""Typed search results: one :class:`Hit` per neighbour, one :class:`QueryResult` per query and metric.

Everything converts to and from plain JSON types (``to_dict`` / ``from_dict``), so the CLI's
``--json`` output and the UI read the same structure.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Hit:
    """One neighbour of a query under one metric. ``rank`` starts at 1 (the nearest)."""

    image_id: int
    path: str
    distance: float
    rank: int
    metric: str
    label: str | None = None  # what the distance means (see lookalike.search.dupes.meaning)

    def __post_init__(self) -> None:
        if self.rank < 1:
            raise ValueError(f"rank starts at 1, got {self.rank}")
        if math.isnan(self.distance):
            raise ValueError("distance is NaN")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Hit:
        return cls(image_id=int(data["image_id"]), path=str(data["path"]), distance=float(data["distance"]),
                   rank=int(data["rank"]), metric=str(data["metric"]), label=data.get("label"))


@dataclass(frozen=True)
class QueryResult:
    """The neighbours of one query image under one metric, nearest first."""

    query: str
    metric: str
    hits: tuple[Hit, ...] = ()
    distance_kind: str = "cosine"
    seconds: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for i, hit in enumerate(self.hits, start=1):
            if hit.metric != self.metric:
                raise ValueError(f"hit from metric {hit.metric!r} in a {self.metric!r} result")
            if hit.rank != i:
                raise ValueError(f"hits must be in rank order 1..n; position {i} has rank {hit.rank}")
        if any(a.distance > b.distance for a, b in zip(self.hits, self.hits[1:])):
            raise ValueError("hits must be sorted by increasing distance")

    def to_dict(self) -> dict[str, Any]:
        return {"query": self.query, "metric": self.metric, "distance_kind": self.distance_kind,
                "seconds": self.seconds, "extra": dict(self.extra), "hits": [h.to_dict() for h in self.hits]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QueryResult:
        return cls(query=data["query"], metric=data["metric"],
                   hits=tuple(Hit.from_dict(h) for h in data.get("hits", ())),
                   distance_kind=data.get("distance_kind", "cosine"), seconds=data.get("seconds"),
                   extra=dict(data.get("extra") or {}))

    def ids(self) -> list[int]:
        return [h.image_id for h in self.hits]


def side_by_side(results: list[QueryResult]) -> dict[str, Any]:
    """Results of one query under several metrics, as one JSON-able object keyed by metric."""
    queries = {r.query for r in results}
    if len(queries) > 1:
        raise ValueError(f"side_by_side takes results of one query, got {sorted(queries)}")
    metrics = [r.metric for r in results]
    if len(set(metrics)) != len(metrics):
        raise ValueError(f"a metric appears twice: {metrics}")
    return {"query": results[0].query if results else None,
            "metrics": {r.metric: r.to_dict() for r in results}}


@dataclass
class SearchResult:
    """One query's neighbours under every metric asked for (``by_metric``), and per-metric errors
    (e.g. the query file could not be read)."""

    query: str
    image_id: int | None = None
    by_metric: dict[str, QueryResult] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def hits(self) -> dict[str, tuple[Hit, ...]]:
        return {m: r.hits for m, r in self.by_metric.items()}

    def to_dict(self) -> dict[str, Any]:
        out = side_by_side(list(self.by_metric.values())) if self.by_metric else {"metrics": {}}
        return {"query": self.query, "image_id": self.image_id, "metrics": out["metrics"],
                "errors": dict(self.errors)}
