"""Fill the weights cache from a folder (air-gapped machines): ``lookalike weights import DIR``.

A needed file is found by its base name, or, when the name differs, by its sha256 (catalog digest,
our pin, or the pin in a ``checksums.json`` found in the folder, e.g. a copied cache). An archive to
unpack is found as its zip or as the already-extracted folder. Everything is verified (sha256, then
format: see :mod:`lookalike.embed.weights.formats`) and copied through the staging folder, so the
cache only ever holds verified files. Only regular files are read: symbolic links, FIFOs, devices
and sockets are refused (reported as rejected when they carry a needed file's name), also when a
file is swapped for one after the folder was listed.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from lookalike.embed.weights import checksums
from lookalike.embed.weights.archive import tree_digests
from lookalike.embed.weights.cachefs import (
    STAGING,
    copy_to_staging,
    file_kind,
    file_lock,
    open_regular,
    place,
    remove,
    staging_path,
    temp_dir_beside,
)
from lookalike.embed.config import WeightFile
from lookalike.embed.weights import (
    cached_path,
    compare_trees,
    expected_digest,
    install,
    is_present,
    needed_files,
)
from lookalike.errors import UsageError, WeightsCorruptError
from lookalike.files import sha256_stream

log = logging.getLogger(__name__)


@dataclass
class ImportReport:
    """What an import did, one ``{"name", "metrics", ...}`` row per weights file."""

    imported: list[dict[str, Any]] = field(default_factory=list)
    present: list[dict[str, Any]] = field(default_factory=list)
    missing: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"imported": self.imported, "present": self.present, "missing": self.missing,
                "rejected": self.rejected}


@dataclass
class FolderIndex:
    """The files and folders under an import folder, by base name, with lazily computed digests."""

    files: dict[str, list[Path]] = field(default_factory=dict)
    dirs: dict[str, list[Path]] = field(default_factory=dict)
    refused: dict[str, list[tuple[Path, str]]] = field(default_factory=dict)
    record: dict[str, dict[str, Any]] = field(default_factory=dict)
    digests: dict[Path, str] = field(default_factory=dict)

    @classmethod
    def scan(cls, folder: Path) -> FolderIndex:
        """List ``folder`` without following links; anything but regular files and folders is refused."""
        index = cls()
        for base, dirs, files in os.walk(folder, followlinks=False):
            kept = []
            for d in sorted(d for d in dirs if d != STAGING):
                path = Path(base, d)
                if path.is_symlink():
                    index.refused.setdefault(d, []).append((path, "a symbolic link"))
                    continue
                kept.append(d)
                index.dirs.setdefault(d, []).append(path)
            dirs[:] = kept
            for f in sorted(files):
                path = Path(base, f)
                mode = os.lstat(path).st_mode
                if not stat.S_ISREG(mode):
                    index.refused.setdefault(f, []).append((path, file_kind(mode)))
                    continue
                index.files.setdefault(f, []).append(path)
                if f == checksums.RECORD:
                    for name, rec in read_folder_record(path).items():
                        index.record.setdefault(name, rec)
        return index

    def digest(self, path: Path) -> str:
        if path not in self.digests:
            with open_regular(path) as fh:
                self.digests[path] = sha256_stream(fh)
        return self.digests[path]

    def by_digest(self, expected: str, suffix: str, exclude: list[Path]) -> list[Path]:
        """Files with ``suffix`` whose sha256 matches ``expected`` (hashing only such files)."""
        out = []
        for paths in self.files.values():
            for path in paths:
                if path.suffix.lower() != suffix or path in exclude:
                    continue
                try:
                    if checksums.digest_matches(expected, self.digest(path)):
                        out.append(path)
                except (OSError, WeightsCorruptError) as exc:  # swapped or vanished since the scan
                    log.warning("skipped %s: %s", path, exc)
        return out


def read_folder_record(path: Path) -> dict[str, dict[str, Any]]:
    """The entries of a ``checksums.json`` found in an import folder (read only if regular)."""
    try:
        with open_regular(path):
            pass
    except (OSError, WeightsCorruptError) as exc:
        log.warning("ignoring %s: %s", path, exc)
        return {}
    return checksums.read_record(path)


def import_dir(folder: str | os.PathLike[str], metrics: Iterable[str] | None = None) -> ImportReport:
    """Import the weights files the metrics need (all registered metrics by default) from ``folder``."""
    root = Path(folder)
    if not root.is_dir():
        raise UsageError(f"not a folder: {root}")
    index = FolderIndex.scan(root)
    report = ImportReport()
    for name, need in needed_files(metrics).items():
        wf = need.wf
        if wf.package:
            continue  # shipped by a Python package, installed with pip
        row: dict[str, Any] = {"name": name, "metrics": need.metrics}
        if is_present(wf):
            report.present.append({**row, "path": str(cached_path(wf))})
            continue
        base = PurePosixPath(wf.name).name
        for key in dict.fromkeys([base, cached_path(wf).name] if wf.unpack else [base]):
            for path, kind in index.refused.get(key, []):
                reason = f"{kind}, not a regular file; refusing it (import the file itself)"
                log.error("rejected %s: %s", path, reason)
                report.rejected.append({**row, "source": str(path), "reason": reason})
        done = False
        for source in candidates(wf, index):
            try:
                with file_lock(wf.name):
                    path = import_one(wf, source, index)
            except WeightsCorruptError as exc:
                log.error("rejected %s: %s", source, exc)
                report.rejected.append({**row, "source": str(source), "reason": str(exc)})
                continue
            log.info("imported %s from %s", name, source)
            report.imported.append({**row, "source": str(source), "path": str(path)})
            done = True
            break
        if not done:
            report.missing.append(row)
    return report


def candidates(wf: WeightFile, index: FolderIndex) -> list[Path]:
    """Files (or extracted folders) in the import folder that may be ``wf``, best first."""
    base = PurePosixPath(wf.name).name
    found = list(index.files.get(base, []))
    known = expected_digest(wf) or index.record.get(wf.name, {}).get("sha256")
    if known:
        found += index.by_digest(known, PurePosixPath(base).suffix.lower(), found)
    if wf.unpack:
        found += index.dirs.get(cached_path(wf).name, [])
    return found


def import_one(wf: WeightFile, source: Path, index: FolderIndex) -> Path:
    """Verify and copy one file (or extracted folder) into the cache; returns its final path."""
    if is_present(wf):
        return cached_path(wf)
    if source.is_dir():
        return import_folder(wf, source, index)
    staged = staging_path(wf.name, ".import")
    try:
        copy_to_staging(source, staged)
        return install(wf, staged, source=str(source), known=index.record.get(wf.name, {}).get("sha256"))
    finally:
        remove(staged)


def import_folder(wf: WeightFile, source: Path, index: FolderIndex) -> Path:
    """Copy an already-extracted archive folder; checked against the recorded tree if any."""
    final = cached_path(wf)
    ours = checksums.entry(wf.name) or {}
    theirs = index.record.get(wf.name, {})
    expected = ours.get("files") or theirs.get("files")
    check_tree(source)
    tmp = temp_dir_beside(final)
    try:
        shutil.copytree(source, tmp, dirs_exist_ok=True, symlinks=True)
        if any(p.is_symlink() for p in tmp.rglob("*")):
            raise WeightsCorruptError(f"{source}: contains symbolic links")
        tree = tree_digests(tmp)
        if isinstance(expected, dict):
            status, detail = compare_trees(expected, tree)
            if status != "ok":
                raise WeightsCorruptError(f"{source}: {detail}")
        else:
            log.warning("%s: no record of the extracted files; trusting them on first use", source)
        place(tmp, final)
    except BaseException:
        remove(tmp)
        raise
    checksums.update(wf.name, {"sha256": ours.get("sha256") or theirs.get("sha256") or "",
                               "files": tree, "source": str(source),
                               "trust": "recorded" if isinstance(expected, dict) else "pinned"})
    return final


def check_tree(folder: Path) -> None:
    """Raise :class:`WeightsCorruptError` unless ``folder`` holds only regular files and folders."""
    for base, dirs, files in os.walk(folder, followlinks=False):
        for name in dirs + files:
            mode = os.lstat(Path(base, name)).st_mode
            if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                raise WeightsCorruptError(f"{folder}: {Path(base, name)} is {file_kind(mode)}; refusing the folder")
