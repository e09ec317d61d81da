"""``index_library``: list -> plan -> read+decode (worker processes) -> embed (batches) -> write.

Decoding and resizing run in worker processes (:func:`lookalike.embed.pipeline.prepare_files`)
ahead of inference; each batch is planned against the database (:func:`plan_batch`: which metrics
each content still needs) and embedded by a pure mapper (:func:`embed_batch`: arrays in, vectors
out) that a :class:`Distributor` runs (:class:`InProcess`, the only one). The mapper is bound to an
:class:`Embedder` holding loaded models, so it cannot yet be shipped to worker processes or Ray
actors. Results are committed every ``commit_every`` files.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np

from lookalike.embed.config import MetricConfig
from lookalike.embed.pipeline import Prepared, batched, prepare_files
from lookalike.embed.registry import library_config
from lookalike.files import PATH_TOO_LONG, display_path
from lookalike.library.folder import LibraryFolder
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
    commit_every_s: float = 10.0  # also commit when this long has passed since the last commit
    workers: int | None = None
    device: str | None = None
    factory: str | None = None
    rebuild: bool = False
    wait: bool = False
    progress: bool = True
    save_every_s: float = 60.0
    remember_roots: bool = True  # record the roots so that `index` without DIR re-indexes them
    prune: bool = False  # forget the files of roots that are missing or empty (else: unavailable)
    retry_failed: bool = False  # re-read every failed file (access errors are always retried)


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
    moved: int = 0  # files found at a new path within the roots: same id and vectors, not re-embedded
    vectors: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    failures: list[dict[str, str]] = field(default_factory=list)
    unavailable: list[str] = field(default_factory=list)  # roots missing or empty: files kept
    interrupted: str | None = None  # the signal that stopped the run after committing

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["images_per_s"] = round(self.read / self.seconds, 2) if self.seconds else None
        return out


def index_library(library: LibraryFolder, roots: Sequence[str | os.PathLike[str]] | None = None,
                  options: IndexOptions | None = None, embedder: Embedder | None = None,
                  configs: Sequence[MetricConfig] | None = None,
                  distributor: Distributor | None = None) -> IndexReport:
    """Bring ``library`` up to date with the image files under ``roots`` (default: its known roots).

    ``embedder``: an :class:`Embedder` whose networks are already loaded (benchmarks).
    ``configs``: metric configs to use instead of looking ``options.metrics`` up (doctor uses the
    configs stored with the library).
    Takes the library's writer lock (:class:`~lookalike.indexer.lock.LibraryBusyError` if another
    writer holds it, unless ``options.wait``). Safe to kill at any moment: the next run resumes.
    Results are committed every ``commit_every`` files or ``commit_every_s`` seconds, whichever
    comes first; SIGINT/SIGTERM (once) stop the run after committing what is done
    (``report.interrupted``); a second signal stops at once. A root that is missing or suddenly
    empty (an unmounted drive) is reported in ``report.unavailable`` and its files are kept,
    unless ``options.prune``.
    """
    opts = options or IndexOptions()
    start = time.monotonic()
    names = run_metrics(library, opts.metrics)
    configs = list(configs) if configs else [resolve_config(library, m) for m in names]
    with WriterLock(library.path, wait=opts.wait), StopSignals() as stop:
        writer = LibraryWriter(library, configs, factory=opts.factory, rebuild=opts.rebuild,
                               save_every_s=opts.save_every_s)
        try:
            report = _index(library, writer, roots, opts, embedder, configs, stop, distributor)
        except BaseException:
            _salvage(writer)
            raise
    report.seconds = round(time.monotonic() - start, 3)
    return report


def _index(library: LibraryFolder, writer: LibraryWriter, roots: Sequence[str | os.PathLike[str]] | None,
           opts: IndexOptions, embedder: Embedder | None, configs: Sequence[MetricConfig],
           stop: StopSignals, distributor: Distributor | None = None) -> IndexReport:
    top = [os.path.abspath(r) for r in roots] if roots else known_roots(library)
    report = IndexReport(str(library.path), top, [c.name for c in configs])
    known = writer.known_files()
    plan = make_plan(walk(top), known, top, writer.complete_contents(),
                     prune=opts.prune, retry_failed=opts.retry_failed)
    # Files outside this run's roots that lack a metric's vector (a metric added by an earlier
    # run on other folders): embedded now, so that every metric covers every root.
    plan.todo += [e for e in walk(plan.lacking) if isinstance(e, FileEntry)]
    report.listed, report.unchanged = plan.listed, plan.unchanged
    report.unavailable = plan.unavailable
    for root in plan.unavailable:
        log.warning("root %s is missing or empty (unmounted drive?): its files are kept%s", root,
                    "" if opts.prune else "; run with --prune to forget them")
    report.deleted = writer.expect_moves(known[p] for p in plan.deleted)  # the rest: at the end, unless moved
    for problem in plan.problems:
        log.warning("skipped %s: %s", display_path(problem.path), problem.reason)
        if problem.reason != PATH_TOO_LONG:  # reported each run; too long for a path column
            writer.add(FileResult(problem.path, None, None, SKIPPED, error=problem.reason,
                                  detail=problem.detail))
        report.skipped += 1
        report.failures.append({"path": problem.path, "status": SKIPPED, "reason": problem.reason})
    writer.flush()
    report.interrupted = stop.signal  # a signal while listing: commit that much, embed nothing
    if plan.todo and not stop.signal:
        log.info("indexing %d of %d file(s) (%d unchanged) into %s", len(plan.todo), plan.listed,
                 plan.unchanged, library.path)
        embedder = embedder or Embedder(configs, opts.device)
        last_commit = time.monotonic()
        with progress_bar(len(plan.todo), "index", enabled=opts.progress) as bar:
            for result in embed_results(plan.todo, plan.expect, writer, embedder, opts,
                                        on_read=lambda _p: bar.update(1), distributor=distributor):
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
                if (writer.pending >= opts.commit_every
                        or time.monotonic() - last_commit >= opts.commit_every_s):
                    writer.flush()
                    last_commit = time.monotonic()
                if stop.signal:
                    report.interrupted = stop.signal
                    break
        writer.flush()
    report.deleted += writer.finish_moves()
    report.moved = writer.moved
    if opts.remember_roots:  # before the final save: a failed save must not lose them
        gone = [r for r in plan.unavailable if opts.prune and not os.path.lexists(r)]
        writer.touch_roots(top, forget=gone)
    writer.save()
    report.vectors = {name: index.ntotal for name, index in writer.indexes.items()}
    return report


def _salvage(writer: LibraryWriter) -> None:
    """After a failure: commit the finished results, drop metrics this run added but never filled."""
    try:
        writer.flush()
    except Exception as exc:  # noqa: BLE001 - the original error is the one to report
        log.debug("could not commit the finished results: %s", exc)
    try:
        for name in writer.forget_empty_new_metrics():
            log.info("removed metric %s: this run added it but embedded nothing", name)
    except Exception as exc:  # noqa: BLE001
        log.debug("could not remove the empty new metrics: %s", exc)


class StopSignals:
    """``with StopSignals() as stop:`` the first SIGINT/SIGTERM sets ``stop.signal`` (the run then
    commits and stops); a second one raises :class:`KeyboardInterrupt` at once. Only in the main
    thread (elsewhere signals are left alone)."""

    def __init__(self) -> None:
        self.signal: str | None = None
        self._old: dict[int, Any] = {}

    def _handle(self, signum: int, _frame: Any) -> None:
        if self.signal is not None:
            raise KeyboardInterrupt
        self.signal = signal.Signals(signum).name
        log.warning("%s: stopping after committing the files done so far (again to stop at once)",
                    self.signal)

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


def run_metrics(library: LibraryFolder, requested: Sequence[str]) -> list[str]:
    """The metrics a run brings up to date: every metric of the library plus the requested ones.

    A library's metrics cover all of its images: adding a metric (``index DIR --metric X``) embeds
    every indexed image under X, and indexing new files embeds them under every metric.
    """
    return list(dict.fromkeys([*library.metrics(), *requested]))


def resolve_config(library: LibraryFolder, name: str) -> MetricConfig:
    """The registered config of ``name``; a config stored in the library is never built."""
    stored = library.provenance(name) if name in library.metrics() else None
    config = library_config(name, stored, allow_changed=True)  # the writer compares (or --rebuild)
    if config.kind == "pairwise":
        from lookalike.errors import UsageError

        raise UsageError(f"{name} is a pairwise metric (it compares two images; it has no vectors to "
                         f"index): use it with `lookalike search --rerank {name}` or `lookalike distance`")
    return config


def known_roots(library: LibraryFolder) -> list[str]:
    roots = library.records.roots()
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
            from lookalike.embed.factory import create_metric

            log.info("loading %s…", name)
            self._metrics[name] = create_metric(self.configs[name], device=self.device)
        return self._metrics[name].embed_arrays(arrays)


class Distributor(Protocol):
    """Runs the embed mapper over batches (in this process: :class:`InProcess`).
    ``map`` must keep the order of ``jobs`` and be lazy (the runner plans each batch just in time)."""

    def map(self, mapper: Callable[[EmbedJob], list[FileResult]],
            jobs: Iterable[EmbedJob]) -> Iterator[list[FileResult]]: ...


class InProcess:
    """The default :class:`Distributor`: each batch embedded here, in order."""

    def map(self, mapper: Callable[[EmbedJob], list[FileResult]],
            jobs: Iterable[EmbedJob]) -> Iterator[list[FileResult]]:
        return map(mapper, jobs)


@dataclass
class EmbedJob:
    """One batch for the mapper: decoded files, their listing entries, and which metrics each
    content (sha256) still needs (decided by the runner from the database, not by the mapper)."""

    chunk: Sequence[Prepared]
    entries: dict[str, FileEntry]
    needs: dict[str, set[str]]


def embed_results(todo: Sequence[FileEntry], expect: dict[str, str], writer: LibraryWriter,
                  embedder: Embedder, opts: IndexOptions,
                  on_read: Callable[[Prepared], None] | None = None,
                  distributor: Distributor | None = None) -> Iterator[FileResult]:
    """Stages read/decode -> plan batch -> embed, one :class:`FileResult` per file, in order.

    ``on_read`` is called as each file has been read and decoded (before its batch is embedded):
    the progress bar moves per image, not per batch.
    """
    from lookalike.embed.device import pick_device  # torch: only once there is work

    pres = list(dict.fromkeys(c.preprocess for c in embedder.configs.values()))
    entries = {e.path: e for e in todo}
    prepared = prepare_files([e.path for e in todo], pres, workers=opts.workers, digest=True,
                             expect=expect, gpu=pick_device(embedder.device).type == "cuda")
    if on_read is not None:
        prepared = _tap(prepared, on_read)
    jobs = (plan_batch(chunk, entries, writer) for chunk in batched(prepared, opts.batch_size))
    for results in (distributor or InProcess()).map(lambda job: embed_batch(job, embedder), jobs):
        yield from results


def _tap(items: Iterator[Prepared], call: Callable[[Prepared], None]) -> Iterator[Prepared]:
    for item in items:
        call(item)
        yield item


def plan_batch(chunk: Sequence[Prepared], entries: dict[str, FileEntry], writer: LibraryWriter) -> EmbedJob:
    """Which metrics each content of the batch still needs (committed or pending in ``writer``)."""
    shas = [p.sha256 for p in chunk if p.error is None and p.sha256]
    return EmbedJob(chunk, entries, writer.missing_metrics(shas))


def embed_batch(job: EmbedJob, embedder: Embedder) -> list[FileResult]:
    """The mapper: decoded arrays in, vectors out; each distinct content once, only for the metrics
    it needs. Touches no database."""
    results = [to_result(p, job.entries[p.path]) for p in job.chunk]
    for name, config in embedder.configs.items():
        todo: dict[str, np.ndarray] = {}
        for p, r in zip(job.chunk, results):
            if r.status != OK or p.arrays is None or r.sha256 is None:
                continue
            if name in job.needs.get(r.sha256, ()) and r.sha256 not in todo:
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

