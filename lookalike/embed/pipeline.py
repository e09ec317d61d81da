"""Reader -> mapper stage: decode and resize files in worker processes, in order.

:func:`prepare_files` yields one :class:`Prepared` per path (pixels for every requested
:class:`Preprocess`, or the typed error), overlapping decoding with whatever the consumer does
(model inference). Worker processes use one thread each and never import torch.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import TypeVar

import numpy as np

from lookalike.embed.config import Preprocess
from lookalike.embed.images import load_image
from lookalike.embed.preprocess import draft_size, prepare
from lookalike.errors import ImageLoadError

T = TypeVar("T")


@dataclass
class Prepared:
    """One file after decoding: ``arrays[pre.key]`` per preprocess, or ``error``."""

    path: str
    arrays: dict[str, np.ndarray] | None = None
    error: ImageLoadError | None = None


def prepare_file(path: str, pres: Sequence[Preprocess], draft: bool = True) -> Prepared:
    """Decode one file and prepare it for every preprocess. Never raises for a bad file."""
    try:
        img = load_image(path, draft=draft_size(pres) if draft else None)
        return Prepared(path, {p.key: prepare(img, p) for p in pres})
    except ImageLoadError as exc:
        return Prepared(path, error=exc)
    except MemoryError as exc:
        return Prepared(path, error=ImageLoadError(path, f"out of memory: {exc}"))


def _worker_init() -> None:
    os.environ["OMP_NUM_THREADS"] = "1"


def _job(args: tuple[str, tuple[Preprocess, ...], bool]) -> Prepared:
    return prepare_file(*args)


def default_workers() -> int:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores - 1) if cores > 2 else 1


def prepare_files(paths: Iterable[str], pres: Sequence[Preprocess], workers: int | None = None,
                  draft: bool = True) -> Iterator[Prepared]:
    """Prepare ``paths`` in order with ``workers`` processes (0 = in this process)."""
    pres = tuple(pres)
    workers = default_workers() if workers is None else workers
    jobs = ((str(p), pres, draft) for p in paths)
    if workers <= 0:
        yield from map(_job, jobs)
        return
    ctx = mp.get_context("forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn")
    with ctx.Pool(workers, initializer=_worker_init) as pool:
        yield from pool.imap(_job, jobs, chunksize=4)


def batched(items: Iterable[T], n: int) -> Iterator[list[T]]:
    """Consecutive lists of at most ``n`` items."""
    it = iter(items)
    while chunk := list(islice(it, n)):
        yield chunk
