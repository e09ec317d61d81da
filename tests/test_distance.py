"""Distance functions against direct definitions."""

from __future__ import annotations

import numpy as np
import pytest

from lookalike.embed.distance import cosine, pairwise, sqeuclidean


def test_cosine_and_sqeuclidean_match_definitions():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 7)).astype(np.float32), rng.normal(size=(3, 7)).astype(np.float32)
    cos = np.array([[1 - x @ y / np.linalg.norm(x) / np.linalg.norm(y) for y in b] for x in a])
    sq = np.array([[((x - y) ** 2).sum() for y in b] for x in a])
    assert np.allclose(cosine(a, b), cos, atol=1e-5)
    assert np.allclose(sqeuclidean(a, b), sq, rtol=1e-6)
    assert np.allclose(pairwise(a, b, "cosine"), cos, atol=1e-5)
    with pytest.raises(ValueError):
        pairwise(a, b, "manhattan")  # type: ignore[arg-type]
