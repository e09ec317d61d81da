"""Weights files: find them in the package that ships them or in the cache, download them once.

The cache is :func:`lookalike.paths.weights_dir`; a file lives at ``<cache>/<WeightFile.name>``, an
unpacked archive at ``<cache>/<name minus .zip>``. :func:`resolve` downloads a missing file on first
use (from ``WeightFile.url``, or ``$LOOKALIKE_WEIGHTS_MIRROR/<name>`` when that is set) into
``<cache>/.partial``, verifies its sha256 (or pins it on first use, see
:mod:`lookalike.embed.weights.checksums`) and only then renames it into place. :func:`verify` re-checks the
cache; :func:`lookalike.embed.weights.importer.import_dir` fills it from a folder.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import time
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lookalike.embed.weights import checksums
from lookalike.embed.weights.archive import extract_zip, tree_digests
from lookalike.embed.weights.cachefs import file_lock, place, remove, staging_path, temp_dir_beside
from lookalike.embed.config import WeightFile
from lookalike.embed.weights.transfer import ATTEMPTS, NetworkError, download, offline_reason
from lookalike.errors import WeightsCorruptError, WeightsMissingError
from lookalike.paths import weights_dir

log = logging.getLogger(__name__)

MIRROR_VAR = "LOOKALIKE_WEIGHTS_MIRROR"
OFFLINE_METRIC = "effnet-lite0"


def package_path(wf: WeightFile) -> Path | None:
    """Where a package-shipped file lies, or ``None`` if the package is not installed."""
    assert wf.package
    pkg, _, rel = wf.package.partition(":")
    spec = importlib.util.find_spec(pkg)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / rel
    return path if path.is_file() else None


def cached_path(wf: WeightFile) -> Path:
    """The final path of ``wf`` in the cache: the file, or the folder of an unpacked archive."""
    name = wf.name
    if wf.unpack:
        name = name[:-4] if name.lower().endswith(".zip") else name + ".d"
    return weights_dir() / name


def is_present(wf: WeightFile) -> bool:
    """Whether ``wf`` is available without a download (not re-hashed: see :func:`verify`)."""
    if wf.package:
        return package_path(wf) is not None
    path = cached_path(wf)
    return path.is_dir() if wf.unpack else path.is_file()


def source_url(wf: WeightFile) -> str | None:
    """Where ``wf`` is downloaded from: ``$LOOKALIKE_WEIGHTS_MIRROR/<name>`` or its official URL."""
    mirror = os.environ.get(MIRROR_VAR, "").strip()
    if mirror:
        return f"{mirror.rstrip('/')}/{urllib.parse.quote(wf.name)}"
    return wf.url


def missing_message(wf: WeightFile, metric: str, reason: str) -> str:
    """The :class:`WeightsMissingError` text: what is missing, why, and every remedy."""
    who = metric or "<metric>"
    return (
        f"{metric or wf.name}: weights file {wf.name!r} is not in the cache {weights_dir()} and "
        f"cannot be downloaded ({reason}). Remedies: run `lookalike weights fetch {who}` on a "
        f"connected machine and copy its cache folder over, then `lookalike weights import DIR` "
        f"here (for air-gapped machines); or set {MIRROR_VAR}=<base-url> to download from a mirror "
        f"that serves <base-url>/{wf.name}; or use the offline metric `{OFFLINE_METRIC}`, which "
        "needs no download."
    )


def resolve(wf: WeightFile, metric: str = "") -> Path:
    """The local path of ``wf``, downloaded first if needed.

    Raises :class:`WeightsMissingError` (offline, no route, HTTP error) naming the remedies, or
    :class:`WeightsCorruptError` when the download does not match its checksum.
    """
    if wf.package:
        path = package_path(wf)
        if path is None:
            pkg = wf.package.partition(":")[0].replace("_", "-")
            raise WeightsMissingError(f"{metric or wf.name}: weights ship in the package {pkg!r}; "
                                      f"install it with `pip install {pkg}`")
        return path
    if is_present(wf):
        return cached_path(wf)
    return fetch(wf, metric)


def fetch(wf: WeightFile, metric: str = "", attempts: int = ATTEMPTS) -> Path:
    """Download, verify and install ``wf`` unless it is already cached; returns its final path."""
    reason = offline_reason()
    if reason:
        raise WeightsMissingError(missing_message(wf, metric, reason))
    url = source_url(wf)
    if not url:
        raise WeightsMissingError(missing_message(wf, metric, "no download URL is known for it"))
    with file_lock(wf.name):  # a concurrent process may be fetching the same file
        if is_present(wf):
            return cached_path(wf)
        part = staging_path(wf.name)
        log.info("downloading %s from %s", wf.name, url)
        try:
            download(url, part, desc=wf.name, attempts=attempts)
        except NetworkError as exc:
            raise WeightsMissingError(missing_message(wf, metric, str(exc))) from exc
        return install(wf, part, source=url)


def expected_digest(wf: WeightFile) -> str | None:
    """The digest (or prefix) ``wf`` must match: the catalog's, else the pinned one, else ``None``."""
    if wf.sha256:
        return wf.sha256
    rec = checksums.entry(wf.name)
    return rec["sha256"] if rec else None


def check_staged(wf: WeightFile, staged: Path, known: str | None = None) -> str:
    """Verify a staged file; returns its sha256. On a mismatch deletes it and raises.

    ``known`` is a digest vouched for elsewhere (another machine's pin), used only when neither the
    catalog nor our own record has one.
    """
    digest = checksums.sha256_file(staged)
    expected = expected_digest(wf) or known
    try:
        if wf.size is not None and staged.stat().st_size != wf.size:
            raise WeightsCorruptError(f"{wf.name}: {staged.stat().st_size} bytes, expected {wf.size}")
        if expected:
            checksums.check(expected, digest, wf.name)
    except WeightsCorruptError:
        remove(staged)
        raise
    return digest


def install(wf: WeightFile, staged: Path, source: str, known: str | None = None) -> Path:
    """Verify a staged download or copy and move it into place (unpacking archives)."""
    digest = check_staged(wf, staged, known)
    size = staged.stat().st_size
    final = cached_path(wf)
    record: dict[str, Any] = {"sha256": digest, "size": size, "source": source,
                              "trust": "catalog" if wf.sha256 else "pinned",
                              "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if wf.unpack:
        try:
            record["files"] = unpack(staged, final)
        finally:
            remove(staged)
    else:
        place(staged, final)
    if not wf.sha256 and not checksums.entry(wf.name):
        log.info("pinned sha256 %s for %s (no official checksum is published)", digest, wf.name)
    checksums.update(wf.name, record)
    return final


def unpack(archive: Path, final: Path) -> dict[str, str]:
    """Extract ``archive`` beside ``final`` and rename the folder into place; returns its tree."""
    tmp = temp_dir_beside(final)
    try:
        tree = extract_zip(archive, tmp)
        place(tmp, final)
    except BaseException:
        remove(tmp)
        raise
    return tree


@dataclass
class Needed:
    """A weights file and the registered metrics that need it."""

    wf: WeightFile
    metrics: list[str] = field(default_factory=list)


def needed_files(metrics: Iterable[str] | None = None, include_test: bool = True) -> dict[str, Needed]:
    """The weights files of the given metrics (all registered ones by default), by name."""
    from lookalike.embed.registry import all_configs, get_config

    if metrics is None:
        configs = [c for c in all_configs().values() if include_test or not c.test_only]
    else:
        configs = [get_config(m) for m in metrics]
    out: dict[str, Needed] = {}
    for config in configs:
        for wf in config.weights:
            out.setdefault(wf.name, Needed(wf)).metrics.append(config.name)
    return out


@dataclass
class FileStatus:
    """The result of verifying one weights file: ``ok``, ``corrupt``, ``missing`` or ``pinned``."""

    name: str
    metrics: list[str]
    status: str
    path: str | None = None
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "metrics": self.metrics, "status": self.status, "path": self.path,
                "detail": self.detail}


def verify_file(wf: WeightFile) -> tuple[str, str]:
    """Re-hash one file (or unpacked folder) against the catalog or the pinned record."""
    if wf.package:
        path = package_path(wf)
        if path is None:
            return "missing", f"package {wf.package.partition(':')[0]} is not installed"
        if wf.sha256 and not checksums.digest_matches(wf.sha256, checksums.sha256_file(path)):
            return "corrupt", f"sha256 differs from {wf.sha256}"
        return "ok", ""
    path = cached_path(wf)
    if not is_present(wf):
        return "missing", ""
    rec = checksums.entry(wf.name)
    if wf.unpack:
        tree = tree_digests(path)
        if not rec or not isinstance(rec.get("files"), dict):
            checksums.update(wf.name, {"sha256": "", "files": tree, "trust": "pinned", "source": "verify"})
            return "pinned", "no record of the extracted files; pinned them now"
        return compare_trees(rec["files"], tree)
    digest = checksums.sha256_file(path)
    expected = expected_digest(wf)
    if not expected:
        checksums.update(wf.name, {"sha256": digest, "size": path.stat().st_size, "trust": "pinned",
                                   "source": "verify"})
        return "pinned", f"no checksum known; pinned {digest} now"
    if not checksums.digest_matches(expected, digest):
        return "corrupt", f"sha256 {digest} does not match the expected {expected}"
    return "ok", ""


def compare_trees(expected: dict[str, str], actual: dict[str, str]) -> tuple[str, str]:
    """Compare a recorded ``{relative path: sha256}`` tree with the folder's."""
    problems = [f"{p}: missing" for p in sorted(set(expected) - set(actual))]
    problems += [f"{p}: unexpected file" for p in sorted(set(actual) - set(expected))]
    problems += [f"{p}: sha256 differs" for p in sorted(set(expected) & set(actual))
                 if expected[p] != actual[p]]
    return ("corrupt", "; ".join(problems)) if problems else ("ok", "")


def verify(metrics: Iterable[str] | None = None) -> list[FileStatus]:
    """Re-check every weights file the metrics need (all registered metrics by default)."""
    out = []
    for name, need in needed_files(metrics).items():
        status, detail = verify_file(need.wf)
        path = package_path(need.wf) if need.wf.package else cached_path(need.wf)
        out.append(FileStatus(name, need.metrics, status, str(path) if path and status != "missing" else None,
                              detail))
        if status == "corrupt":
            log.error("%s: corrupt: %s", name, detail)
    return out
