"""``lookalike embed``: images to vectors, as JSON lines or a .npy file."""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path
from typing import Any

from lookalike.cli.common import add_device, add_json, emit_json, json_line, new_command, positive_int
from lookalike.errors import UsageError

log = logging.getLogger(__name__)


EPILOG = """\
With --out FILE.npy, the vectors go to FILE.npy and their paths, in the same order, to
FILE.paths.jsonl: one JSON string per line (lossless for any file name, newlines included; bytes
that are not UTF-8 are \\udcNN escapes, which Python's json.loads + os.fsencode turn back into the
original bytes). Identical files are embedded once. Exit 1 when any file failed.
"""


def register(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    p = new_command(sub, "embed", parents, "embed images (files or folders) under a metric",
                    description="Embed images (files or folders) under a metric.\n\n" + EPILOG)
    p.add_argument("inputs", nargs="+", metavar="IMG|DIR", help="image files or folders (recursive)")
    p.add_argument("-m", "--metric", default="effnet-lite0", help="metric name (default: effnet-lite0)")
    add_json(p)
    p.add_argument("--out", type=Path,
                   help="write vectors to this .npy file (and their paths to .paths.jsonl)")
    p.add_argument("--batch-size", type=positive_int, default=32)
    p.add_argument("--workers", type=int, default=None, help="decoding processes (0: none)")
    p.add_argument("--precision", choices=("fp32", "int8"), default="fp32")
    add_device(p)
    p.set_defaults(func=run)


def paths_file(out: Path) -> Path:
    """Where ``embed --out X.npy`` writes the paths of the vectors: ``X.paths.jsonl``."""
    return out.with_suffix(".paths.jsonl")


def read_paths(path: str | os.PathLike[str]) -> list[str]:
    """The paths ``embed --out`` wrote, exactly as they were (see :func:`paths_file`)."""
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from lookalike.embed.factory import create_metric
    from lookalike.files import display_path, expand_inputs
    from lookalike.atomic import atomic_write, atomic_write_bytes

    problems: list[tuple[str, str]] = []
    paths = expand_inputs(args.inputs, problems)
    if not paths and not problems:
        raise UsageError("no image files found in the inputs")
    metric = create_metric(args.metric, device=args.device, precision=args.precision)
    result = metric.embed_paths(paths, batch_size=args.batch_size, workers=args.workers,
                                progress=not args.json or args.out is not None)
    failures = [(p, f"{display_path(p)}: {reason}") for p, reason in problems] + result.failures
    if args.out:
        out = args.out if args.out.suffix == ".npy" else args.out.with_suffix(".npy")
        atomic_write(out, lambda tmp: np.save(tmp, result.vectors))  # tmp ends in .npy too
        atomic_write_bytes(paths_file(out), "".join(json_line(p) + "\n" for p in result.paths).encode())
        log.info("wrote %d x %d vectors to %s (paths: %s)", *result.vectors.shape, out, paths_file(out))
    if args.json:
        for path, vec in zip(result.paths, result.vectors, strict=True):
            emit_json({"path": path, "metric": metric.name, "vector": [round(float(v), 7) for v in vec]})
        for path, reason in failures:
            emit_json({"path": path, "metric": metric.name, "error": reason})
    elif not args.out:
        for path, vec in zip(result.paths, result.vectors, strict=True):
            print(f"{display_path(path)}\t{json.dumps([round(float(v), 4) for v in vec[:4]])[:-1]}, ...] "
                  f"({len(vec)}-d)")
    for _path, reason in failures:
        log.error("failed: %s", display_path(reason))
    log.info("embedded %d image(s), %d failed", len(result.paths), len(failures))
    return 1 if failures else 0
