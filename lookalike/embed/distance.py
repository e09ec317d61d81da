"""Distances between vectors: pure numpy functions, rows of ``a`` against rows of ``b``."""

from __future__ import annotations

import numpy as np

from lookalike.embed.config import Distance


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``1 - cos`` between every row of ``a`` and every row of ``b`` (any norms)."""
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return 1.0 - a @ b.T


def sqeuclidean(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Squared L2 between every row of ``a`` and every row of ``b``, exact in float64."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    d = (a64 * a64).sum(1)[:, None] + (b64 * b64).sum(1)[None, :] - 2.0 * a64 @ b64.T
    return np.maximum(d, 0.0)


def pairwise(a: np.ndarray, b: np.ndarray, kind: Distance) -> np.ndarray:
    """The distance matrix under ``kind`` ("cosine" or "sqeuclidean")."""
    if kind == "cosine":
        return cosine(a, b)
    if kind == "sqeuclidean":
        return sqeuclidean(a, b)
    raise ValueError(f"unknown distance {kind!r}")
