"""``lookalike dupes``: groups of copies in a library, each member labelled with its evidence."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from lookalike.cli.common import add_json, add_library, emit_json, new_command

log = logging.getLogger(__name__)


def register(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    p = new_command(sub, "dupes", parents, "group copies (identical files, same photo) in a library",
                    description="Group copies of one photo. Byte-identical files come first (\"identical file\").\n"
                                "Near-duplicates: embedding neighbours within a loose threshold are candidates;\n"
                                "a pair is linked only when local features confirm it is the same photo\n"
                                "(OpenCV ORB + RANSAC), and each member says what the evidence is.")
    p.add_argument("-m", "--metric", default="effnet-lite0", help="metric for candidates (default: effnet-lite0)")
    p.add_argument("-t", "--threshold", type=float, default=None,
                   help="largest embedding distance of a candidate pair (default: the metric's calibration: "
                        "its loose candidate threshold, or with --no-verify its grouping threshold)")
    p.add_argument("-k", type=int, default=10, help="neighbours examined per image (default 10)")
    p.add_argument("--no-verify", dest="verify", action="store_false",
                   help="group by embedding distance alone (complete linkage; labelled 'similar (unverified)')")
    add_library(p)
    add_json(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lookalike.errors import UsageError
    from lookalike.library.service import Library

    if args.k < 1:
        raise UsageError(f"-k must be at least 1, got {args.k}")
    with Library.open(args.library, db_url=args.db) as lib:
        groups = lib.duplicates(args.metric, threshold=args.threshold, k=args.k, verify=args.verify)
        missing = lib.not_embedded(args.metric) if args.metric in lib.metrics() else 0
    if missing:
        log.warning("%d image(s) are not yet embedded under %s and were only checked for identical files; "
                    "run `lookalike index` to embed them", missing, args.metric)
    if args.json:
        for g in groups:
            emit_json(g.to_dict())
        return 0
    for n, g in enumerate(groups, 1):
        images = len({m.image_id for m in g.members})
        print(f"group {n} ({len(g.members)} files, {images} distinct, {g.kind}, {g.metric}):")
        for m in g.members:
            note = m.meaning or "reference"
            print(f"  #{m.image_id:<6} {m.distance:8.4f}  {note:<46}  {m.path}")
    print(f"{len(groups)} group(s) of copies")
    return 0
