"""Typed search results: validation and JSON round trips."""

from __future__ import annotations

import json

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


def test_query_result_json_round_trip() -> None:
    res = QueryResult("q.jpg", "m", (Hit(1, "b", 0.1, 1, "m"), Hit(2, "c", 0.3, 2, "m", label="x")),
                      seconds=0.01, extra={"not_embedded": 3})
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
    a = QueryResult("q", "m1", (Hit(0, "x", 0.1, 1, "m1"),))
    b = QueryResult("q", "m2", (Hit(0, "x", 0.2, 1, "m2"),))
    out = json.loads(json.dumps(side_by_side([a, b])))
    assert out["query"] == "q" and set(out["metrics"]) == {"m1", "m2"}
    assert out["metrics"]["m2"]["hits"][0]["distance"] == pytest.approx(0.2)
    with pytest.raises(ValueError):
        side_by_side([a, QueryResult("other", "m2")])
    with pytest.raises(ValueError):
        side_by_side([a, a])
