"""``lookalike distance A B``: how far apart two images are under one or more metrics.

Cosine metrics give ``1 - cos`` of the two embeddings; ``sqeuclidean`` metrics (LPIPS) give the
squared L2 distance of their vectors, which for LPIPS metrics is LPIPS itself. Pairwise metrics
(``diffsim-sd15``) give their own distance (DiffSim: 1 - the aligned attention score).
"""

from __future__ import annotations

import argparse
from typing import Any

from lookalike.cli.common import add_device, add_json, emit_json, new_command

DEFAULT_METRIC = "effnet-lite0"


def register(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    p = new_command(sub, "distance", parents, "distance between two images under one or more metrics",
                    description=__doc__)
    p.add_argument("a", metavar="A", help="first image file")
    p.add_argument("b", metavar="B", help="second image file")
    p.add_argument("-m", "--metric", action="append", dest="metrics", metavar="METRIC",
                   help=f"metric name; repeat for several (default: {DEFAULT_METRIC})")
    add_json(p)
    add_device(p)
    p.set_defaults(func=run)


def distances(a: str, b: str, metrics: list[str], device: str | None = None) -> list[dict[str, Any]]:
    """One row per metric: its name, distance kind and the distance between images ``a`` and ``b``."""
    from lookalike.embed.images import load_image
    from lookalike.embed.registry import create_metric, get_config
    from lookalike.search.rerank import exact_distances

    for name in metrics:  # fail on a typo before loading any network
        get_config(name)
    images = [load_image(a), load_image(b)]
    rows = []
    for name in metrics:
        metric = create_metric(name, device=device)
        if getattr(metric, "kind", "embedding") == "pairwise":
            d = max(0.0, float(metric.distance_pairs(images[:1], images[1:])[0]))
        else:
            va, vb = metric.embed(images)
            d = max(0.0, float(exact_distances(va[None], vb[None], metric.distance_kind)[0, 0]))
        rows.append({"metric": name, "distance_kind": metric.distance_kind, "distance": d})
    return rows


def run(args: argparse.Namespace) -> int:
    metrics = list(dict.fromkeys(args.metrics or [DEFAULT_METRIC]))
    rows = distances(args.a, args.b, metrics, device=args.device)
    if args.json:
        emit_json({"a": args.a, "b": args.b, "distances": rows})
        return 0
    width = max(len(r["metric"]) for r in rows)
    for r in rows:
        print(f"{r['metric']:<{width}}  {r['distance']:.6g}")
    return 0
