"""``lookalike index``: add folders of photos to a library, incrementally and resumably."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from lookalike.cli.common import add_device, add_json, add_library, emit_json, new_command, positive_int

log = logging.getLogger(__name__)

EPILOG = """\
Re-running is incremental: files whose path, size and mtime are unchanged are not read again,
changed files are re-embedded, deleted files leave the index, and identical files are embedded
once. A run killed at any moment loses at most its last uncommitted batch; just run it again.
Ctrl-C (SIGINT) or SIGTERM commits what is done and stops (exit 130); a second one stops at once.
Without DIR, the folders indexed before are re-indexed. Every metric of a library covers all of its
images: without --metric, all the library's metrics are brought up to date; a new --metric is
computed for every indexed image. A folder that is missing or suddenly empty (an unmounted drive)
is reported as unavailable and its files are kept, unless --prune. Failed files are not read again
unless changed, or --retry-failed (files that failed on permissions are always retried).
"""


def register(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    p = new_command(sub, "index", parents, "index folders of photos into a library",
                    description="Index folders of photos into a library (SQL metadata + one FAISS "
                                "index per metric).\n\n" + EPILOG)
    p.add_argument("dirs", nargs="*", metavar="DIR", help="folders (or files) to index")
    add_library(p)
    p.add_argument("-m", "--metric", action="append", dest="metrics", metavar="M",
                   help="metric to index (repeatable; default: the library's "
                        "metrics, or effnet-lite0 for a new library)")
    p.add_argument("--index-factory", default=None, metavar="F",
                   help="FAISS index factory string (e.g. Flat, IVF1024,Flat, HNSW16,Flat) instead "
                        "of the size-based choice; remembered; 'auto' returns to the size-based choice")
    p.add_argument("--batch-size", type=positive_int, default=32, help="images per inference batch")
    p.add_argument("--commit-every", type=positive_int, default=256, metavar="N",
                   help="commit rows and vectors every N files (default 256) ...")
    p.add_argument("--commit-seconds", type=float, default=10.0, metavar="S",
                   help="... or every S seconds, whichever comes first (default 10)")
    p.add_argument("--retry-failed", action="store_true",
                   help="read failed files again even if unchanged (e.g. after fixing them)")
    p.add_argument("--prune", action="store_true",
                   help="forget the files of folders that are missing or empty (default: keep them)")
    p.add_argument("--workers", type=int, default=None, help="decoding processes (0: none)")
    p.add_argument("--rebuild", action="store_true",
                   help="re-embed a metric whose config changed since its vectors were made")
    p.add_argument("--wait", action="store_true",
                   help="wait for another writer of the library to finish instead of failing")
    add_device(p)
    add_json(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lookalike.errors import UsageError
    from lookalike.files import display_path
    from lookalike.library.folder import LibraryFolder
    from lookalike.indexer.run import DEFAULT_METRIC, IndexOptions, index_library

    for d in args.dirs:
        if not Path(d).exists():
            raise UsageError(f"no such file or folder: {d}")
    with LibraryFolder.open(args.library, db_url=args.db, create=True, writable=True) as lib:
        metrics = args.metrics or lib.metrics() or [DEFAULT_METRIC]
        opts = IndexOptions(metrics=metrics, batch_size=args.batch_size, commit_every=args.commit_every,
                            commit_every_s=args.commit_seconds, workers=args.workers,
                            device=args.device, factory=args.index_factory, rebuild=args.rebuild,
                            wait=args.wait, progress=not args.json, prune=args.prune,
                            retry_failed=args.retry_failed)
        report = index_library(lib, args.dirs or None, opts)
    code = 130 if report.interrupted else 0
    if args.json:
        emit_json(report.to_dict())
    elif args.quiet:  # -q: only errors
        return code
    else:
        embedded = ", ".join(f"{n} {c}" for n, c in report.embedded.items()) or "none"
        print(f"{report.listed} file(s) listed: {report.unchanged} unchanged, {report.read} read "
              f"({report.reused} reused identical content), {report.failed} failed, "
              f"{report.skipped} skipped, {report.moved} moved, {report.deleted} removed; "
              f"embedded: {embedded}")
        print("index: " + ", ".join(f"{n} {c} vectors" for n, c in report.vectors.items())
              + f"  [{report.seconds:.1f} s]")
        if report.unavailable:
            print("unavailable (missing or empty, files kept): "
                  + ", ".join(display_path(r) for r in report.unavailable))
        if report.interrupted:
            print(f"interrupted ({report.interrupted}) after committing {report.read} file(s); "
                  "run the same command again to finish")
        for f in report.failures[:20]:
            log.warning("%s %s: %s", f["status"], display_path(f["path"]), f["reason"])
        if len(report.failures) > 20:
            log.warning("... and %d more (see `lookalike status`)", len(report.failures) - 20)
    return code
