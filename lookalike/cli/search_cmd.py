"""``lookalike search``: nearest neighbours of example images, side by side per metric."""

from __future__ import annotations

import argparse
import os
from typing import Any

from lookalike.cli.common import add_device, add_json, add_library, emit_json, new_command, positive_int


def register(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    p = new_command(sub, "search", parents, "find the indexed images that look most like examples",
                    description="Nearest neighbours of each query image under each metric, side by side.\n"
                                "Queries: image files, folders, or indexed images by path or #ID.")
    p.add_argument("queries", nargs="+", metavar="IMG|DIR|#ID")
    p.add_argument("-k", type=positive_int, default=10, help="neighbours per metric (default 10)")
    p.add_argument("-m", "--metric", action="append", help="metric (repeatable; default: all indexed)")
    p.add_argument("--exclude-self", action="store_true",
                   help="drop the query file from its own hits (identical copies at other paths stay)")
    p.add_argument("--no-verify", dest="verify", action="store_false",
                   help="do not check 'same photo' hits with local features (labelled 'unverified')")
    p.add_argument("--rerank", metavar="PAIRWISE", help="re-rank the candidates with a pairwise metric "
                   "(e.g. diffsim-sd15), shown as a column of its own")
    p.add_argument("--candidates", type=int, default=100, metavar="N",
                   help="with --rerank: candidates taken from each metric's top N (default 100)")
    add_library(p)
    add_json(p)
    add_device(p)
    p.set_defaults(func=run)


def _parse_query(q: str) -> str | int:
    return int(q[1:]) if q.startswith("#") and q[1:].isdigit() else q


def run(args: argparse.Namespace) -> int:
    from lookalike.library.service import Library

    with Library.open(args.library, db_url=args.db, device=args.device) as lib:
        results = lib.search([_parse_query(q) for q in args.queries], k=args.k, metrics=args.metric,
                             exclude_self=args.exclude_self, verify=args.verify, rerank=args.rerank,
                             candidates=args.candidates)
    if args.json:
        for r in results:
            emit_json(r.to_dict())
    else:
        for r in results:
            print(side_by_side(r, args.k))
    return 1 if all(r.errors and not r.hits for r in results) else 0


def side_by_side(result: Any, k: int, width: int = 44) -> str:
    """A readable table: one column per metric, rank rows, 'name  distance  meaning' cells (the
    meaning only under calibrated metrics)."""
    from lookalike.search.dupes import short_label

    metrics = list(result.hits) + [m for m in result.errors if m not in result.hits]
    lines = [f"query: {result.query}"]
    lines.append("rank  " + "  ".join(f"{m:<{width}}" for m in metrics))
    for rank in range(k):
        cells = []
        for m in metrics:
            hits = result.hits.get(m, [])
            if m in result.errors and rank == 0:
                cell = f"error: {result.errors[m]}"
            elif rank < len(hits):
                hit = hits[rank]
                note = short_label(hit.label)
                name = os.path.basename(hit.path)[: width - 21]
                cell = f"{name:<{width - 20}} {hit.distance:.4f} {note}"
            else:
                cell = ""
            cells.append(f"{cell[:width]:<{width}}")
        if any(c.strip() for c in cells):
            lines.append(f"{rank + 1:>4}  " + "  ".join(cells))
    return "\n".join(lines) + "\n"
