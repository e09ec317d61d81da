"""``lookalike weights``: list, fetch, import and verify the weights files of the metrics."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from lookalike.cli.common import add_json, emit_json, new_command

log = logging.getLogger(__name__)

EPILOG = """\
The cache is $LOOKALIKE_HOME/weights (default: the user cache folder). Environment:
  LOOKALIKE_WEIGHTS_MIRROR=<base-url>   download <base-url>/<file name> instead of the official URL
  LOOKALIKE_OFFLINE=1 (or HF_HUB_OFFLINE=1)   never download; missing weights are an error (exit 2)
Air-gapped machines: `lookalike weights fetch METRIC` on a connected one, copy its cache folder,
then `lookalike weights import DIR`. The metric effnet-lite0 needs no download.
Trust (the `trust` column of `weights list`): catalog = full sha256 shipped with lookalike;
prefix = the hash prefix in the publisher's file name (torchvision); tofu = no published checksum,
so the first download or import is trusted and pinned in checksums.json (`verify --strict` refuses).
"""


def register(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    p = new_command(sub, "weights", parents, "list, download, import and verify weights files",
                    description="Manage the weights cache.\n\n" + EPILOG)
    wsub = p.add_subparsers(dest="weights_command", metavar="ACTION", required=True)

    q = new_command(wsub, "list", parents, "each metric's weights files: present?, size, source")
    q.add_argument("metrics", nargs="*", metavar="METRIC", help="only these metrics (default: all)")
    q.add_argument("--all", action="store_true", help="include test-only metrics")
    add_json(q)
    q.set_defaults(func=run_list)

    q = new_command(wsub, "fetch", parents, "download (and verify) the weights of metrics",
                    description="Download the weights files of the metrics into the cache, verify "
                                "their sha256 and unpack archives. Exit 2 when offline or a download "
                                "fails, 1 when a file is corrupt.\n\n" + EPILOG)
    q.add_argument("metrics", nargs="+", metavar="METRIC")
    add_json(q)
    q.set_defaults(func=run_fetch)

    q = new_command(wsub, "import", parents, "copy weights files from a folder into the cache",
                    description="Find the weights files that registered metrics need in DIR (by file "
                                "name, or by sha256 when renamed; zips or extracted folders), verify "
                                "them and copy them into the cache. Exit 1 when a file found is "
                                "corrupt; 2 when --metric was given and its weights are still missing.")
    q.add_argument("folder", type=Path, metavar="DIR")
    q.add_argument("-m", "--metric", action="append", dest="metrics", metavar="METRIC",
                   help="only the weights of this metric (repeatable)")
    add_json(q)
    q.set_defaults(func=run_import)

    q = new_command(wsub, "verify", parents, "re-check the sha256 of everything in the cache",
                    description="Recompute the sha256 and check the format of every cached weights "
                                "file against the catalog or the pinned digest; without METRIC, also "
                                "list files in the cache that no registered metric needs. Exit 1 when "
                                "anything is corrupt, unpinned (no checksum known or recorded) or "
                                "unknown, or, with --strict, trusted on first use.\n\n" + EPILOG)
    q.add_argument("metrics", nargs="*", metavar="METRIC", help="only these metrics (default: all)")
    q.add_argument("--strict", action="store_true",
                   help="refuse files trusted on first use (no published checksum)")
    q.add_argument("--pin", action="store_true",
                   help="trust unpinned files as they are now and pin their sha256")
    add_json(q)
    q.set_defaults(func=run_verify)


def human(n: int | None) -> str:
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def run_list(args: argparse.Namespace) -> int:
    from lookalike.embed.weights.listing import describe_weights

    rows = describe_weights(args.metrics, args.all or bool(args.metrics))
    if args.json:
        emit_json(rows)
        return 0
    print(f"{'metric':<22} {'file':<44} {'present':<8} {'size':>10}  {'trust':<8} source")
    for row in rows:
        if not row["files"]:
            print(f"{row['metric']:<22} {'(no weights files)':<44}")
        for f in row["files"]:
            size = f["size"] if f["present"] else f["expected_size"]
            print(f"{row['metric']:<22} {f['name']:<44} {'yes' if f['present'] else 'no':<8} "
                  f"{human(size):>10}  {f['trust']:<8} {f['source']}")
    return 0


def run_fetch(args: argparse.Namespace) -> int:
    from lookalike.embed.registry import get_config
    from lookalike.embed.weights import is_present, resolve
    from lookalike.errors import WeightsCorruptError, WeightsMissingError

    configs = [get_config(m) for m in args.metrics]  # unknown names fail before any download
    rows: list[dict[str, Any]] = []
    code = 0
    for config in configs:
        for wf in config.weights:
            row: dict[str, Any] = {"metric": config.name, "name": wf.name}
            was_present = is_present(wf)
            try:
                row["path"] = str(resolve(wf, config.name))
                row["status"] = "present" if was_present else "downloaded"
            except WeightsMissingError as exc:
                row.update(status="missing", error=str(exc))
                code = max(code, 2)
                log.error("error: %s", exc)
            except WeightsCorruptError as exc:
                row.update(status="corrupt", error=str(exc))
                code = code or 1
                log.error("error: %s", exc)
            rows.append(row)
    if args.json:
        emit_json(rows)
    else:
        for r in rows:
            print(f"{r['status']:<11} {r['metric']:<22} {r['name']}  {r.get('path', '')}")
    return code


def run_import(args: argparse.Namespace) -> int:
    from lookalike.embed.weights.importer import import_dir

    report = import_dir(args.folder, args.metrics)
    if args.json:
        emit_json(report.to_dict())
    else:
        for r in report.imported:
            print(f"imported    {r['name']}  from {r['source']}")
        for r in report.present:
            print(f"present     {r['name']}")
        for r in report.rejected:
            print(f"rejected    {r['name']}  {r['source']}: {r['reason']}")
        for r in report.missing:
            print(f"missing     {r['name']}  (needed by {', '.join(r['metrics'])})")
    log.info("imported %d, already present %d, still missing %d, rejected %d",
             len(report.imported), len(report.present), len(report.missing), len(report.rejected))
    if report.rejected:
        return 1
    return 2 if args.metrics and report.missing else 0


def run_verify(args: argparse.Namespace) -> int:
    from lookalike.embed.weights import FAILING, verify

    results = verify(args.metrics or None, strict=args.strict, pin=args.pin)
    if args.json:
        emit_json([r.to_dict() for r in results])
    else:
        for r in results:
            print(f"{r.status:<8} {r.name}" + (f"  ({r.detail})" if r.detail else ""))
    bad = [r for r in results if r.status in FAILING]
    for r in bad:
        if r.status != "corrupt":  # corrupt files are logged by verify itself
            log.error("%s: %s: %s", r.name, r.status, r.detail)
    return 1 if bad else 0
