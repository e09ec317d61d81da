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


def run(args: argparse.Namespace) -> int:
    metrics = list(dict.fromkeys(args.metrics or [DEFAULT_METRIC]))
    from lookalike.embed.compare import image_distances

    rows = image_distances(args.a, args.b, metrics, device=args.device)
    if args.json:
        emit_json({"a": args.a, "b": args.b, "distances": rows})
        return 0
    width = max(len(r["metric"]) for r in rows)
    for r in rows:
        print(f"{r['metric']:<{width}}  {r['distance']:.6g}")
    return 0
