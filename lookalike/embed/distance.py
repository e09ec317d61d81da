"""Distances between vectors, the one place a metric's distance kind is dispatched.

``cosine`` metrics: ``1 - cos``; ``sqeuclidean`` metrics (LPIPS): the squared L2 distance, summed as
direct squared differences in float64 (no ``|a|^2 + |b|^2 - 2ab`` cancellation). An unknown kind is
an error, never a silent default. :func:`pairwise` gives the matrix of rows of ``a`` against rows of
``b``; :func:`paired` the distance of ``a[i]`` to ``b[i]`` (numpy arrays, or torch tensors with
gradients for tuning).
"""

from __future__ import annotations

from typing import Any, cast, get_args

import numpy as np

from lookalike.embed.config import Distance

KINDS: tuple[str, ...] = get_args(Distance)


def check_kind(kind: str) -> Distance:
    """``kind`` if it is a distance kind this package knows; ``ValueError`` otherwise."""
    if kind not in KINDS:
        raise ValueError(f"unknown distance {kind!r} (expected {' or '.join(KINDS)})")
    return cast(Distance, kind)


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``1 - cos`` between every row of ``a`` and every row of ``b`` (any norms), float64."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return 1.0 - a @ b.T


def sqeuclidean(a: np.ndarray, b: np.ndarray, block: int = 512) -> np.ndarray:
    """Squared L2 between every row of ``a`` and every row of ``b``: sums of squared differences
    in float64, ``b`` read ``block`` rows at a time (bounded temporaries; ``b`` may be a memmap)."""
    q = np.asarray(a, dtype=np.float64)
    out = np.empty((len(q), len(b)))
    for s in range(0, len(b), block):
        v = np.asarray(b[s:s + block], dtype=np.float64)
        for i, row in enumerate(q):
            diff = v - row
            out[i, s:s + block] = np.einsum("ij,ij->i", diff, diff)
    return out


def pairwise(a: np.ndarray, b: np.ndarray, kind: str) -> np.ndarray:
    """The ``(len(a), len(b))`` distance matrix under ``kind`` ("cosine" or "sqeuclidean"), float64."""
    return cosine(a, b) if check_kind(kind) == "cosine" else sqeuclidean(a, b)


def paired(a: Any, b: Any, kind: str) -> Any:
    """Distance of ``a[i]`` to ``b[i]`` under ``kind``: float64 for numpy arrays; for torch tensors
    (tuning) a tensor that keeps their gradients."""
    kind = check_kind(kind)
    if not isinstance(a, np.ndarray) and hasattr(a, "requires_grad"):  # torch, imported by the caller
        import torch

        if kind == "cosine":
            return 1 - torch.nn.functional.cosine_similarity(a, b, dim=1)
        return ((a - b) ** 2).sum(1)
    a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if kind == "cosine":
        na = np.maximum(np.linalg.norm(a64, axis=1), 1e-12)
        nb = np.maximum(np.linalg.norm(b64, axis=1), 1e-12)
        return 1.0 - (a64 * b64).sum(1) / (na * nb)
    diff = a64 - b64
    return (diff * diff).sum(1)
