"""``lookalike dupes``: groups of near-duplicate images in a library, each distance explained."""

from __future__ import annotations

import argparse
from typing import Any

from lookalike.cli.common import add_json, add_library, emit_json, new_command


def register(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    p = new_command(sub, "dupes", parents, "group near-duplicate images of a library",
                    description="Group near-duplicates: images linked by a distance at most the threshold.\n"
                                "The default threshold per metric comes from a calibration on known edits\n"
                                "of real photos (lookalike/search/thresholds.json; see the README).")
    p.add_argument("-m", "--metric", default="effnet-lite0", help="metric (default: effnet-lite0)")
    p.add_argument("-t", "--threshold", type=float, default=None,
                   help="largest distance that counts as a duplicate (default: the metric's calibration)")
    p.add_argument("-k", type=int, default=10, help="neighbours examined per image (default 10)")
    add_library(p)
    add_json(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lookalike.search.library import Library

    with Library.open(args.library, db_url=args.db) as lib:
        groups = lib.duplicates(args.metric, threshold=args.threshold, k=args.k)
    if args.json:
        for g in groups:
            emit_json(g.to_dict())
        return 0
    for n, g in enumerate(groups, 1):
        print(f"group {n} ({len(g.members)} images, {g.metric}):")
        for image_id, path, distance, meaning in g.members:
            note = f"  {meaning}" if meaning else ""
            print(f"  #{image_id:<6} {distance:8.4f}{note:<30}  {path}")
    print(f"{len(groups)} group(s) of near-duplicates")
    return 0
