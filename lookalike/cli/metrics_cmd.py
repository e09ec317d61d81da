"""``lookalike metrics``: the registered metrics, their dimension and whether they work offline."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from lookalike.cli.common import add_json, emit_json, new_command


def register(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    p = new_command(sub, "metrics", parents, "list metrics (name, dim, offline?, weights present?)")
    add_json(p)
    p.add_argument("--all", action="store_true", help="include test-only metrics")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lookalike.embed.describe import describe_metrics

    listing = describe_metrics(args.all)
    rows = listing.metrics
    for path, why in listing.problems.items():  # broken user metric files: reported, skipped
        print(f"skipped user metric file {path}: {why}", file=sys.stderr)
    if args.json:
        emit_json(rows)
        return 0
    yes = {True: "yes", False: "no"}
    w = max([len(r["name"]) for r in rows] + [6])
    print(f"{'metric':<{w}} {'dim':>6}  {'distance':<11} {'offline':<8} {'weights':<8} description")
    for r in rows:
        print(f"{r['name']:<{w}} {r['dim']:>6}  {r['distance']:<11} {yes[r['offline']]:<8} "
              f"{'present' if r['weights_present'] else 'missing':<8} {r['description']}")
    return 0
