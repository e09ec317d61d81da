"""How far apart two images are under one or more metrics (what ``lookalike distance`` prints).

Cosine metrics give ``1 - cos`` of the two embeddings; ``sqeuclidean`` metrics (LPIPS) the squared
L2 distance of their vectors; pairwise metrics (``diffsim-sd15``) their own distance.
"""

from __future__ import annotations

from typing import Any


def image_distances(a: str, b: str, metrics: list[str], device: str | None = None) -> list[dict[str, Any]]:
    """One row per metric: its name, distance kind and the distance between images ``a`` and ``b``."""
    from lookalike.embed.images import load_image
    from lookalike.embed.factory import create_metric
    from lookalike.embed.registry import get_config
    from lookalike.embed.distance import pairwise

    for name in metrics:  # fail on a typo before loading any network
        get_config(name)
    images = [load_image(a), load_image(b)]
    rows = []
    for name in metrics:
        metric = create_metric(name, device=device)
        if metric.kind == "pairwise":
            d = max(0.0, float(metric.distance_pairs(images[:1], images[1:])[0]))
        else:
            va, vb = metric.embed(images)
            d = max(0.0, float(pairwise(va[None], vb[None], metric.distance_kind)[0, 0]))
        rows.append({"metric": name, "distance_kind": metric.distance_kind, "distance": d})
    return rows
