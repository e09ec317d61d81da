"""``lookalike status``: what a library holds, per metric, and which files failed and why."""

from __future__ import annotations

import argparse
from typing import Any

from lookalike.cli.common import add_json, emit_json, new_command
from lookalike.cli.common import add_library


def register(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    p = new_command(sub, "status", parents, "show what a library holds (files, metrics, failures)")
    add_library(p)
    p.add_argument("--all", action="store_true", help="list every failed or skipped file (default: 20)")
    add_json(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lookalike.files import display_path
    from lookalike.library.service import Library

    with Library.open(args.library, db_url=args.db) as lib:
        st = lib.status()
    if args.json:
        emit_json(st)
        return 0
    f = st["files"]
    print(f"library  {st['library']}  ({st['database']}, schema {st['schema']})")
    print(f"files    {f['total']}: {f['ok']} ok, {f['failed']} failed, {f['skipped']} skipped; "
          f"{st['contents']} distinct contents")
    for root in st["roots"]:
        print(f"root     {display_path(root['path'])}  (indexed {root['indexed_at']})")
    for m in st["metrics"]:
        todo = m["images_not_embedded"]
        cover = f"; {todo} image(s) not yet embedded (run `lookalike index`)" if todo else ""
        print(f"metric   {m['name']}: {m['vectors']} vectors, {m['dim']}-d {m['distance']}, "
              f"index {m['factory'] or '-'} ({m['saved_index_vectors']} saved), "
              f"{m['coverage']:.0%} of images{cover}")
    if st["reasons"]:
        print("problems " + ", ".join(f"{n} {r}" for r, n in sorted(st["reasons"].items())))
        shown = st["problems"] if args.all else st["problems"][:20]
        for p in shown:
            print(f"  {p['status']:8} {p['reason']:28} {display_path(p['path'])}")
        if len(shown) < len(st["problems"]):
            print(f"  ... {len(st['problems']) - len(shown)} more (--all)")
    return 0
