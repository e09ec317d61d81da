"""Typed search results: validation, JSON round trips, building from FAISS rows."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lookalike.search.hits import Hit, QueryResult, side_by_side


def test_hit_json_round_trip() -> None:
    hit = Hit(7, "/photos/a.jpg", 0.125, 1, "effnet-lite0", label="similar")
    data = json.loads(json.dumps(hit.to_dict()))
    assert Hit.from_dict(data) == hit


@pytest.mark.parametrize("kwargs", [{"rank": 0}, {"distance": float("nan")}])
def test_hit_rejects_bad_values(kwargs: dict) -> None:
    base = {"image_id": 1, "path": "a", "distance": 0.1, "rank": 1, "metric": "m"}
    with pytest.raises(ValueError):
        Hit(**{**base, **kwargs})


def test_from_arrays_drops_padding_and_excluded_and_renumbers() -> None:
    paths = {3: "c.jpg", 5: "e.jpg", 9: "i.jpg"}
    res = QueryResult.from_arrays("q.jpg", "m", np.array([5, 3, -1, 9]), np.array([0.0, 0.2, 9.9, 0.4]),
                                  paths, exclude={5})
    assert res.ids() == [3, 9]
    assert [h.rank for h in res.hits] == [1, 2]
    assert [h.path for h in res.hits] == ["c.jpg", "i.jpg"]
    assert all(isinstance(h.distance, float) for h in res.hits)


def test_query_result_json_round_trip() -> None:
    res = QueryResult.from_arrays("q.jpg", "m", [1, 2], np.float32([0.1, 0.3]), ["a", "b", "c"],
                                  seconds=0.01)
    text = json.dumps(res.to_dict())
    assert QueryResult.from_dict(json.loads(text)) == res


def test_query_result_rejects_unsorted_or_mixed_hits() -> None:
    with pytest.raises(ValueError, match="increasing"):
        QueryResult("q", "m", (Hit(1, "a", 0.5, 1, "m"), Hit(2, "b", 0.1, 2, "m")))
    with pytest.raises(ValueError, match="metric"):
        QueryResult("q", "m", (Hit(1, "a", 0.1, 1, "other"),))
    with pytest.raises(ValueError, match="rank"):
        QueryResult("q", "m", (Hit(1, "a", 0.1, 2, "m"),))


def test_side_by_side_keys_by_metric_and_checks_query() -> None:
    a = QueryResult.from_arrays("q", "m1", [0], [0.1], ["x"])
    b = QueryResult.from_arrays("q", "m2", [0], [0.2], ["x"])
    out = json.loads(json.dumps(side_by_side([a, b])))
    assert out["query"] == "q" and set(out["metrics"]) == {"m1", "m2"}
    assert out["metrics"]["m2"]["hits"][0]["distance"] == pytest.approx(0.2)
    with pytest.raises(ValueError):
        side_by_side([a, QueryResult.from_arrays("other", "m2", [], [], [])])
    with pytest.raises(ValueError):
        side_by_side([a, a])
