"""Tuned metrics as folder bundles: ``$LOOKALIKE_HOME/metrics/NAME/``.

A bundle holds ``metric.json`` (a :class:`~lookalike.embed.config.MetricConfig` whose ``options``
record the base metric's config and fingerprint, the method, the weight files with their sha256,
and the tuning record: data hash, hyperparameters, per-epoch report, scores) and its weight files:
a peft adapter folder (``adapter/``, loadable by plain ``peft``), an MLP head
(``head.safetensors``) or LPIPS linear weights (``lpips_heads.safetensors``). Weight file names are
relative and must resolve inside the bundle; each is checked against its sha256 when the metric is
built. The registry (:mod:`lookalike.embed.registry`) lists bundles beside ``metrics/*.json``.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

from lookalike.embed.config import MetricConfig
from lookalike.errors import LookalikeError, UsageError, WeightsCorruptError
from lookalike.paths import user_metrics_dir

log = logging.getLogger(__name__)

CONFIG_FILE = "metric.json"
BUILDER = "lookalike.embed.backbones.tuned:build"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class BundleError(LookalikeError):
    """A tuned-metric bundle is missing, malformed or does not match its recorded digests."""


def check_name(name: str) -> str:
    if not NAME_RE.match(name) or name.endswith(".json"):
        raise UsageError(f"metric name {name!r}: use letters, digits, '.', '_' and '-' (up to 100)")
    return name


def bundle_dir(name: str, root: Path | None = None) -> Path:
    return (root or user_metrics_dir()) / check_name(name)


def inside(folder: Path, rel: str) -> Path:
    """``folder / rel`` for a relative ``rel`` that stays inside ``folder`` (no ``..``, no links out)."""
    p = PurePosixPath(rel)
    if p.is_absolute() or ".." in p.parts or not p.parts or "\\" in rel:
        raise WeightsCorruptError(f"{folder}: weight file name {rel!r} must be relative and inside the bundle")
    path = (folder / p).resolve()
    if not path.is_relative_to(folder.resolve()):
        raise WeightsCorruptError(f"{folder}: weight file {rel!r} resolves outside the bundle")
    return path


def tree_digests(folder: Path, rel: str) -> dict[str, str]:
    """``{relative path: sha256}`` of the file ``rel`` or of every file under the folder ``rel``."""
    from lookalike.files import sha256_file

    path = inside(folder, rel)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return {p.relative_to(folder.resolve()).as_posix(): sha256_file(p) for p in files}


def verify(folder: Path, config: MetricConfig) -> None:
    """Every recorded weight file is present, inside the bundle, with its recorded sha256."""
    from lookalike.embed.options import typed_options
    from lookalike.files import sha256_file

    files: dict[str, str] = typed_options(config).files
    if not files:
        raise BundleError(f"{folder}: {CONFIG_FILE} records no weight files")
    for rel, digest in files.items():
        path = inside(folder, rel)
        if not path.is_file():
            raise BundleError(f"{folder}: weight file {rel} is missing (re-import or re-tune the metric)")
        if sha256_file(path) != digest:
            raise WeightsCorruptError(f"{path}: sha256 differs from the one recorded in {CONFIG_FILE}")


def write(config: MetricConfig, staged: Path, root: Path | None = None, overwrite: bool = False) -> Path:
    """Move a staged folder (weights written, ``metric.json`` not yet) into place as bundle ``NAME``."""
    final = bundle_dir(config.name, root)
    if final.exists() and not overwrite:
        raise UsageError(f"a metric named {config.name!r} already exists ({final}); pick another --name "
                         "or remove it with `lookalike metrics remove`")
    config.save(staged / CONFIG_FILE)
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.exists():
        old = final.with_name(f".{final.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        final.replace(old)
        staged.replace(final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        staged.replace(final)
    log.info("saved tuned metric %s at %s", config.name, final)
    return final


def staging(name: str, root: Path | None = None) -> Path:
    parent = root or user_metrics_dir()
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{check_name(name)}.", dir=parent))


def load(name: str, root: Path | None = None) -> MetricConfig:
    path = bundle_dir(name, root) / CONFIG_FILE
    if not path.is_file():
        raise BundleError(f"no tuned metric {name!r} ({path} not found)")
    return MetricConfig.load(path)


def remove(name: str, root: Path | None = None) -> Path:
    """Delete a user metric: its bundle folder or its ``NAME.json``. Built-ins cannot be removed."""
    from lookalike.embed.registry import builtin_configs

    if name in builtin_configs():
        raise UsageError(f"{name!r} is a built-in metric; only user metrics can be removed")
    folder = root or user_metrics_dir()
    single = folder / f"{name}.json"
    if single.is_file():
        single.unlink()
        return single
    path = bundle_dir(name, root)
    if not (path / CONFIG_FILE).is_file():
        raise UsageError(f"no user metric named {name!r} (`lookalike metrics` lists them)")
    shutil.rmtree(path)
    return path


def export(name: str, dest: Path, root: Path | None = None) -> Path:
    """Zip bundle ``NAME`` (verified first) to ``dest`` (a ``.zip`` path or a folder)."""
    folder = bundle_dir(name, root)
    config = load(name, root)
    verify(folder, config)
    out = dest / f"{name}.zip" if dest.is_dir() else dest
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, f"{name}/{path.relative_to(folder).as_posix()}")
    return out


def import_bundle(source: Path, root: Path | None = None, overwrite: bool = False) -> MetricConfig:
    """Install a bundle from an exported zip or a bundle folder; digests are checked before it is
    registered. The base metric's own weights come separately (`lookalike weights fetch/import`)."""
    parent = root or user_metrics_dir()
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".import.", dir=parent))
    try:
        if source.is_dir():
            shutil.copytree(source, tmp / "b")
            staged = tmp / "b"
        elif zipfile.is_zipfile(source):
            from lookalike.embed.weights.archive import extract_zip

            (tmp / "x").mkdir()
            extract_zip(source, tmp / "x")
            tops = [p for p in (tmp / "x").iterdir()]
            staged = tops[0] if len(tops) == 1 and tops[0].is_dir() else tmp / "x"
        else:
            raise UsageError(f"{source}: not a bundle folder nor a zip made by `lookalike metrics export`")
        if not (staged / CONFIG_FILE).is_file():
            raise BundleError(f"{source}: no {CONFIG_FILE} (not a tuned-metric bundle)")
        config = MetricConfig.load(staged / CONFIG_FILE)
        check_name(config.name)
        if config.builder != BUILDER:
            raise BundleError(f"{source}: builder {config.builder!r} is not a tuned-metric builder")
        verify(staged, config)
        write(config, staged, root, overwrite)
        return config
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def info(config: MetricConfig) -> dict[str, Any]:
    """The tuning record kept in a tuned metric's config."""
    return dict(config.options.get("tuning", {}))
