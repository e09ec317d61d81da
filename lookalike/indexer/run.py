"""``index_library``: list -> plan -> read+decode (worker processes) -> embed (batches) -> write.

Decoding and resizing run in worker processes (:func:`lookalike.embed.pipeline.prepare_files`)
ahead of inference, which runs here in batches; results are committed every ``commit_every`` files.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from lookalike.embed.config import MetricConfig
from lookalike.embed.pipeline import Prepared, batched, prepare_files
from lookalike.embed.registry import library_config
from lookalike.indexer.library import Library
from lookalike.indexer.listing import FileEntry, walk
from lookalike.indexer.lock import WriterLock
from lookalike.indexer.plan import make_plan
from lookalike.indexer.writer import FAILED, OK, SKIPPED, FileResult, LibraryWriter
from lookalike.progress import progress_bar

log = logging.getLogger(__name__)

DEFAULT_METRIC = "effnet-lite0"


@dataclass
class IndexOptions:
    """Knobs of one indexing run (the CLI's options)."""

    metrics: Sequence[str] = (DEFAULT_METRIC,)
    batch_size: int = 32
    commit_every: int = 256
    workers: int | None = None
    device: str | None = None
    factory: str | None = None
    rebuild: bool = False
    wait: bool = False
    progress: bool = True
    save_every_s: float = 60.0
    remember_roots: bool = True  # record the roots so that `index` without DIR re-indexes them


@dataclass
class IndexReport:
    """What a run did (the CLI prints it; ``--json`` emits :meth:`to_dict`)."""

    library: str
    roots: list[str]
    metrics: list[str]
    listed: int = 0
    unchanged: int = 0
    read: int = 0
    embedded: dict[str, int] = field(default_factory=dict)
    reused: int = 0
    failed: int = 0
    skipped: int = 0
    deleted: int = 0
    vectors: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    failures: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["images_per_s"] = round(self.read / self.seconds, 2) if self.seconds else None
        return out


def index_library(library: Library, roots: Sequence[str | os.PathLike[str]] | None = None,
                  options: IndexOptions | None = None, embedder: Embedder | None = None,
                  configs: Sequence[MetricConfig] | None = None) -> IndexReport:
    """Bring ``library`` up to date with the image files under ``roots`` (default: its known roots).

    ``embedder``: an :class:`Embedder` whose networks are already loaded (benchmarks).
    ``configs``: metric configs to use instead of looking ``options.metrics`` up (doctor uses the
    configs stored with the library).
    Takes the library's writer lock (:class:`~lookalike.indexer.lock.LibraryBusyError` if another
    writer holds it, unless ``options.wait``). Safe to kill at any moment: the next run resumes.
    """
    opts = options or IndexOptions()
    start = time.monotonic()
    configs = list(configs) if configs else [resolve_config(library, m) for m in dict.fromkeys(opts.metrics)]
    with WriterLock(library.path, wait=opts.wait):
        writer = LibraryWriter(library, configs, factory=opts.factory, rebuild=opts.rebuild,
                               save_every_s=opts.save_every_s)
        top = [os.path.abspath(r) for r in roots] if roots else known_roots(library)
        report = IndexReport(str(library.path), top, [c.name for c in configs])
        plan = make_plan(walk(top), writer.known_files(), top, writer.complete_contents())
        report.listed, report.unchanged = plan.listed, plan.unchanged
        report.deleted = writer.delete_paths(plan.deleted)
        for problem in plan.problems:
            log.warning("skipped %s: %s", problem.path, problem.reason)
            writer.add(FileResult(problem.path, None, None, SKIPPED, error=problem.reason,
                                  detail=problem.detail))
            report.skipped += 1
            report.failures.append({"path": problem.path, "status": SKIPPED, "reason": problem.reason})
        writer.flush()
        if plan.todo:
            log.info("indexing %d of %d file(s) (%d unchanged) into %s", len(plan.todo), plan.listed,
                     plan.unchanged, library.path)
            embedder = embedder or Embedder(configs, opts.device)
            with progress_bar(len(plan.todo), "index", enabled=opts.progress) as bar:
                for result in embed_results(plan.todo, plan.expect, writer, embedder, opts):
                    writer.add(result)
                    report.read += 1
                    if result.status == FAILED:
                        report.failed += 1
                        report.failures.append({"path": result.path, "status": FAILED,
                                                "reason": result.error or "", "detail": result.detail or ""})
                    elif not result.vectors:
                        report.reused += 1
                    for name in result.vectors:
                        report.embedded[name] = report.embedded.get(name, 0) + 1
                    if writer.pending >= opts.commit_every:
                        writer.flush()
                    bar.update(1)
            writer.flush()
        writer.save()
        if opts.remember_roots:
            writer.touch_roots(top)
        report.vectors = {name: index.ntotal for name, index in writer.indexes.items()}
    report.seconds = round(time.monotonic() - start, 3)
    return report


def resolve_config(library: Library, name: str) -> MetricConfig:
    """The registered config of ``name``; a config stored in the library is never built."""
    stored = library.provenance(name) if name in library.metrics() else None
    return library_config(name, stored, allow_changed=True)  # the writer compares (or --rebuild)


def known_roots(library: Library) -> list[str]:
    from sqlalchemy import select

    from lookalike.store.models import Root

    with library.store.session() as s:
        roots = list(s.scalars(select(Root.path).order_by(Root.path)))
    if not roots:
        from lookalike.errors import UsageError

        raise UsageError("no folders to index: give at least one DIR (later runs remember them)")
    return roots


class Embedder:
    """Mapper stage: the metrics' networks, built on first use."""

    def __init__(self, configs: Sequence[MetricConfig], device: str | None = None) -> None:
        self.configs = {c.name: c for c in configs}
        self.device = device
        self._metrics: dict[str, Any] = {}

    def embed(self, name: str, arrays: np.ndarray) -> np.ndarray:
        if name not in self._metrics:
            from lookalike.embed.registry import create_metric

            self._metrics[name] = create_metric(self.configs[name], device=self.device)
        return self._metrics[name].embed_arrays(arrays)


def embed_results(todo: Sequence[FileEntry], expect: dict[str, str], writer: LibraryWriter,
                  embedder: Embedder, opts: IndexOptions) -> Iterator[FileResult]:
    """Read, decode and embed ``todo`` in order, one :class:`FileResult` per file."""
    from lookalike.embed.device import pick_device  # torch: only once there is work

    pres = list(dict.fromkeys(c.preprocess for c in embedder.configs.values()))
    entries = {e.path: e for e in todo}
    prepared = prepare_files([e.path for e in todo], pres, workers=opts.workers, digest=True,
                             expect=expect, gpu=pick_device(embedder.device).type == "cuda")
    for chunk in batched(prepared, opts.batch_size):
        yield from embed_chunk(chunk, entries, writer, embedder)


def embed_chunk(chunk: Sequence[Prepared], entries: dict[str, FileEntry], writer: LibraryWriter,
                embedder: Embedder) -> list[FileResult]:
    """Embed one batch: each distinct content once, only for the metrics it still lacks."""
    results = [to_result(p, entries[p.path]) for p in chunk]
    missing = writer.missing_metrics(r.sha256 for r in results if r.status == OK and r.sha256)
    for name, config in embedder.configs.items():
        todo: dict[str, np.ndarray] = {}
        for p, r in zip(chunk, results):
            if r.status != OK or p.arrays is None or r.sha256 is None:
                continue
            if name in missing.get(r.sha256, ()) and r.sha256 not in todo:
                todo[r.sha256] = p.arrays[config.preprocess.key]
        if not todo:
            continue
        vecs = embedder.embed(name, np.stack(list(todo.values())))
        by_sha = dict(zip(todo, vecs))
        for r in results:
            if r.sha256 in by_sha:
                r.vectors[name] = by_sha[r.sha256]
    return results


def to_result(p: Prepared, entry: FileEntry) -> FileResult:
    if p.error is not None:
        return FileResult(entry.path, entry.size, entry.mtime_ns, FAILED, sha256=p.sha256,
                          error=p.error.reason, detail=p.error.detail or str(p.error))
    return FileResult(entry.path, entry.size, entry.mtime_ns, OK, sha256=p.sha256, info=p.info)

