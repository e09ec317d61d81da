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
    register_actions(p, parents)


def register_actions(p: argparse.ArgumentParser, parents: list[argparse.ArgumentParser]) -> None:
    """``metrics remove|export|import``: user metrics (tuned bundles) off this machine and onto another."""
    from pathlib import Path

    msub = p.add_subparsers(dest="metrics_command", metavar="ACTION")
    q = new_command(msub, "remove", parents, "delete a user (tuned) metric")
    q.add_argument("name", metavar="NAME")
    add_json(q)
    q.set_defaults(func=run_remove)
    q = new_command(msub, "export", parents, "zip a tuned metric (config + weights) for another machine",
                    description="Write NAME.zip (the bundle, digests checked). On the other machine: "
                                "`lookalike metrics import NAME.zip`, plus the base metric's weights "
                                "(`lookalike weights fetch BASE` or `lookalike weights import DIR`).")
    q.add_argument("name", metavar="NAME")
    q.add_argument("dest", type=Path, nargs="?", default=Path("."), metavar="DEST",
                   help="a .zip path or a folder (default: .)")
    add_json(q)
    q.set_defaults(func=run_export)
    q = new_command(msub, "import", parents, "install a tuned metric from an exported zip or bundle folder")
    q.add_argument("source", type=Path, metavar="ZIP_OR_DIR")
    q.add_argument("--overwrite", action="store_true", help="replace a user metric of the same name")
    add_json(q)
    q.set_defaults(func=run_import)


def run_remove(args: argparse.Namespace) -> int:
    from lookalike.tune.bundles import remove

    path = remove(args.name)
    emit_json({"removed": args.name, "path": str(path)}) if args.json else print(f"removed {args.name} ({path})")
    return 0


def run_export(args: argparse.Namespace) -> int:
    from lookalike.tune.bundles import export

    out = export(args.name, args.dest)
    emit_json({"exported": args.name, "path": str(out)}) if args.json else print(f"exported {args.name} to {out}")
    return 0


def run_import(args: argparse.Namespace) -> int:
    from lookalike.embed.options import typed_options
    from lookalike.tune.bundles import import_bundle

    config = import_bundle(args.source, overwrite=args.overwrite)
    base = typed_options(config).base.get("name", "?")
    if args.json:
        emit_json({"imported": config.name, "base": base})
    else:
        print(f"imported {config.name} (base metric {base}: its weights come from `lookalike weights`)")
    return 0


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
