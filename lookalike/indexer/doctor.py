"""Consistency checks of a library, and their repairs (``lookalike doctor [--repair]``).

Checks: the SQLite file's integrity; for each metric, that its FAISS file loads, has the right
dimension and holds exactly the ids of the committed database vectors; that every stored vector
has the right size; that no content is left without a file (orphan); that every readable file
has a vector under every metric; that indexed files still exist (files under a root that is
missing or empty, e.g. an unmounted drive, are reported as ``root-unavailable`` and kept).

Repairs: orphans are dropped, vanished files forgotten (those of unavailable roots only with
``prune``), bad vectors deleted and their files
re-embedded, files lacking a vector re-embedded, FAISS files reconciled with the database (extra
ids dropped, missing vectors added, unreadable files rebuilt) and saved.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass, field
from typing import Any


from lookalike.embed.registry import library_config
from lookalike.library.folder import LibraryFolder
from lookalike.indexer.lock import WriterLock
from lookalike.indexer.plan import under
from lookalike.library.reconcile import DIMENSION, DUPLICATES, MISSING, UNREADABLE, reconcile
from lookalike.store.records import Metric

log = logging.getLogger(__name__)

EXAMPLES = 10


@dataclass
class Finding:
    """One kind of inconsistency: ``kind``, the metric it concerns, how many, a few examples."""

    kind: str
    message: str
    count: int
    metric: str | None = None
    examples: list[Any] = field(default_factory=list)
    repairable: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def unavailable_roots(lib: LibraryFolder) -> list[str]:
    """Roots that are missing or hold nothing at all (an unmounted drive's empty mount point)."""
    return [r for r in lib.records.roots() if not os.path.lexists(r) or _empty_folder(r)]


def _empty_folder(path: str) -> bool:
    try:
        with os.scandir(path) as it:
            return next(it, None) is None
    except OSError:  # not a folder, or unreadable: not "empty"
        return False


def vanished_files(lib: LibraryFolder, prune: bool = False) -> tuple[list[str], list[str]]:
    """Indexed paths that no longer exist: ``(gone, kept)``; ``kept`` are those under an
    unavailable root (all of them count as gone with ``prune``)."""
    blind = [] if prune else unavailable_roots(lib)
    paths = [p for p in lib.records.listed_paths() if not os.path.lexists(p)]
    kept = [p for p in paths if under(p, blind)]
    return [p for p in paths if not under(p, blind)], kept


def diagnose(lib: LibraryFolder, prune: bool = False) -> list[Finding]:
    """Every inconsistency found, without changing anything."""
    out: list[Finding] = []
    gone, kept = vanished_files(lib, prune)
    blind = unavailable_roots(lib) if kept else []
    result = lib.records.integrity()
    if result != ["ok"]:
        out.append(Finding("database-corrupt", "SQLite quick_check failed", len(result),
                           examples=result[:EXAMPLES], repairable=False))
    rows = lib.records.metrics()
    orphans = lib.records.orphan_contents()  # contents a study shows are kept on purpose
    if orphans:
        out.append(Finding("orphan-contents", "contents no file refers to", len(orphans),
                           examples=orphans[:EXAMPLES]))
    if gone:
        out.append(Finding("missing-files", "indexed files that no longer exist", len(gone),
                           examples=gone[:EXAMPLES]))
    if kept:
        out.append(Finding("root-unavailable", "files under a root that is missing or empty "
                           "(unmounted drive?), kept; `doctor --repair --prune` forgets them",
                           len(kept), examples=[r for r in blind if any(under(p, [r]) for p in kept)],
                           repairable=False))
    for row in rows:
        bad = lib.records.malformed_vectors(row)
        if bad:
            out.append(Finding("bad-vectors", f"stored vectors that are not {row.dim}-d float32",
                               len(bad), row.name, bad[:EXAMPLES]))
        lacking = lib.records.unembedded(row.id)
        if lacking:
            out.append(Finding("unembedded", "readable files without a vector", len(lacking),
                               row.name, lacking[:EXAMPLES]))
    for row in rows:
        out.extend(_check_index(lib, row))
    return out


def _check_index(lib: LibraryFolder, row: Metric) -> list[Finding]:
    path = lib.index_path(row.name)
    db_ids = lib.ids(row.name)
    found = reconcile(path, row.name, row.dim, row.distance, db_ids)
    if found.problem == MISSING:
        return [Finding(MISSING, found.detail, len(db_ids), row.name)]
    if found.problem == UNREADABLE:
        return [Finding(UNREADABLE, f"{path.name}: {found.detail}", 1, row.name)]
    if found.problem == DIMENSION:
        return [Finding(DIMENSION, found.detail, 1, row.name)]
    out = []
    if found.duplicates:
        out.append(Finding(DUPLICATES, "ids stored twice in the index", found.duplicates, row.name))
    if len(found.extra):
        out.append(Finding("index-extra", "index ids with no database vector", len(found.extra), row.name,
                           found.extra[:EXAMPLES].tolist()))
    if len(found.missing):
        out.append(Finding("index-behind", "database vectors not yet in the index file", len(found.missing),
                           row.name, found.missing[:EXAMPLES].tolist()))
    return out


def repair(lib: LibraryFolder, wait: bool = False, workers: int | None = None,
           device: str | None = None, prune: bool = False) -> list[str]:
    """Fix everything :func:`diagnose` can fix; returns what was done (one line each)."""
    from lookalike.indexer.run import IndexOptions, index_library
    from lookalike.indexer.writer import LibraryWriter

    done: list[str] = []
    rows = lib.records.metrics()
    configs = [library_config(r.name, r.provenance) for r in rows]  # compared, never built
    with WriterLock(lib.path, wait=wait):
        with lib.write() as w:
            for name, n in sorted(w.delete_malformed_vectors().items()):
                done.append(f"deleted {n} malformed {name} vector(s)")
        writer = LibraryWriter(lib, configs)  # loading rebuilds unreadable or mismatched index files
        for r in writer.sync_reports:
            if r.changed:
                done.append(f"index {r.metric}: {r.added} vector(s) added, {r.removed} removed"
                            + (f", rebuilt ({r.rebuilt})" if r.rebuilt else ""))
        paths, kept = vanished_files(lib, prune)
        if kept:
            log.warning("kept %d file(s) under missing or empty roots (run with --prune to forget "
                        "them)", len(kept))
        if paths:
            done.append(f"forgot {writer.delete_paths(paths)} vanished file(s)")
        dropped = writer.drop_orphan_contents()
        if dropped:
            done.append(f"dropped {len(dropped)} orphan content(s)")
        writer.save()
    lacking = sorted({p for row in rows for p in lib.records.unembedded(row.id) if os.path.exists(p)})
    if lacking and configs:
        report = index_library(lib, lacking, IndexOptions(
            metrics=[c.name for c in configs], wait=wait, workers=workers, device=device, progress=False,
            remember_roots=False),
            configs=configs)
        done.append(f"re-embedded {sum(report.embedded.values())} vector(s) for {len(lacking)} file(s)")
    return done
