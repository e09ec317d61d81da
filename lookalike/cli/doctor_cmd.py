"""``lookalike doctor``: check that a library's FAISS indexes and database agree; repair them."""

from __future__ import annotations

import argparse
from typing import Any

from lookalike.cli.common import add_device, add_json, emit_json, new_command
from lookalike.cli.common import add_library


def register(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    p = new_command(sub, "doctor", parents, "check a library's consistency (and --repair it)",
                    description="Check that every metric's FAISS index holds exactly the database's "
                                "vectors, that no content is orphaned, that every readable file has "
                                "a vector and still exists. Exit 0 when consistent, 1 when not.")
    add_library(p)
    p.add_argument("--repair", action="store_true",
                   help="fix what was found: reconcile indexes, drop orphans, re-embed files")
    p.add_argument("--prune", action="store_true",
                   help="with --repair: also forget the files of roots that are missing or empty "
                        "(by default they are kept: an unmounted drive is not a deletion)")
    p.add_argument("--wait", action="store_true", help="wait for a running writer instead of failing")
    p.add_argument("--workers", type=int, default=None, help="decoding processes for re-embedding")
    add_device(p)
    add_json(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lookalike.files import display_path
    from lookalike.indexer.doctor import diagnose, repair
    from lookalike.library.folder import LibraryFolder

    with LibraryFolder.open(args.library, db_url=args.db, writable=args.repair) as lib:
        before = diagnose(lib, prune=args.prune)
        if args.repair and before:
            done = repair(lib, wait=args.wait, workers=args.workers, device=args.device,
                          prune=args.prune)
            after = diagnose(lib)
        else:
            done, after = [], before
    if args.json:
        emit_json({"library": str(lib.path), "consistent": not after,
                   "findings": [f.to_dict() for f in before], "repaired": done,
                   "remaining": [f.to_dict() for f in after]})
    else:
        for f in before:
            where = f" [{f.metric}]" if f.metric else ""
            ex = f": {', '.join(display_path(str(e)) for e in f.examples[:3])}" if f.examples else ""
            print(f"{f.kind}{where}: {f.count} {f.message}{ex}")
        for line in done:
            print(f"repaired: {line}")
        print("consistent" if not after else f"{len(after)} problem(s) remain"
              + ("" if args.repair else " (run with --repair)"))
    return 0 if not after else 1
