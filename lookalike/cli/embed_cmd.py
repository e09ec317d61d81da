"""``lookalike embed``: images to vectors, as JSON lines or a .npy file."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from lookalike.cli.common import add_device, add_json, emit_json, new_command
from lookalike.errors import UsageError

log = logging.getLogger(__name__)


def register(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    p = new_command(sub, "embed", parents, "embed images (files or folders) under a metric")
    p.add_argument("inputs", nargs="+", metavar="IMG|DIR", help="image files or folders (recursive)")
    p.add_argument("-m", "--metric", default="effnet-lite0", help="metric name (default: effnet-lite0)")
    add_json(p)
    p.add_argument("--out", type=Path, help="write vectors to this .npy file (and paths to .paths.txt)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", type=int, default=None, help="decoding processes (0: none)")
    p.add_argument("--precision", choices=("fp32", "int8"), default="fp32")
    add_device(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lookalike.embed.registry import create_metric
    from lookalike.files import expand_inputs

    paths = expand_inputs(args.inputs)
    if not paths:
        raise UsageError("no image files found in the inputs")
    metric = create_metric(args.metric, device=args.device, precision=args.precision)
    result = metric.embed_paths(paths, batch_size=args.batch_size, workers=args.workers,
                                progress=not args.json or args.out is not None)
    if args.out:
        out = args.out if args.out.suffix == ".npy" else args.out.with_suffix(".npy")
        tmp = out.with_name(out.name + ".tmp")
        with open(tmp, "wb") as fh:
            np.save(fh, result.vectors)
        tmp.replace(out)
        out.with_suffix(".paths.txt").write_text("".join(p + "\n" for p in result.paths))
        log.info("wrote %d x %d vectors to %s", *result.vectors.shape, out)
    if args.json:
        for path, vec in zip(result.paths, result.vectors, strict=True):
            emit_json({"path": path, "metric": metric.name, "vector": [round(float(v), 7) for v in vec]})
        for path, reason in result.failures:
            emit_json({"path": path, "metric": metric.name, "error": reason})
    elif not args.out:
        for path, vec in zip(result.paths, result.vectors, strict=True):
            print(f"{path}\t{json.dumps([round(float(v), 4) for v in vec[:4]])[:-1]}, ...] ({len(vec)}-d)")
    for path, reason in result.failures:
        log.error("failed: %s", reason)
    log.info("embedded %d image(s), %d failed", len(result.paths), len(result.failures))
    return 1 if result.failures and not result.paths else 0
