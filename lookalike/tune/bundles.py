"""Tuned metrics as folder bundles: ``$LOOKALIKE_HOME/metrics/NAME/``.

A bundle holds ``metric.json`` (a :class:`~lookalike.embed.config.MetricConfig` whose ``options``
record the base metric's config and fingerprint, the method, the weight files with their sha256,
and the tuning record: data hash, hyperparameters, per-epoch report, scores) and its weight files:
a peft adapter folder (``adapter/``, loadable by plain ``peft``), an MLP head
(``head.safetensors``) or LPIPS linear weights (``lpips_heads.safetensors``). Weight file names are
relative and must resolve inside the bundle; each is checked against its sha256 when the metric is
built. The registry (:mod:`lookalike.embed.registry`) lists bundles beside ``metrics/*.json``;
reading one (its folder, its files, their digests) is :mod:`lookalike.embed.bundle`; this module
writes, removes, exports and imports them.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from lookalike.embed.bundle import (BUILDER, CONFIG_FILE, BundleError, bundle_dir, check_name, inside,
                                     verify)
from lookalike.embed.config import MetricConfig
from lookalike.errors import UsageError
from lookalike.paths import user_metrics_dir

log = logging.getLogger(__name__)


def tree_digests(folder: Path, rel: str) -> dict[str, str]:
    """``{relative path: sha256}`` of the file ``rel`` or of every file under the folder ``rel``."""
    from lookalike.files import sha256_file

    path = inside(folder, rel)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return {p.relative_to(folder.resolve()).as_posix(): sha256_file(p) for p in files}


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
