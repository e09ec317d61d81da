"""Reading a tuned metric's folder bundle, ``$LOOKALIKE_HOME/metrics/NAME/`` (see
:mod:`lookalike.tune.bundles` for what it holds and how it is written): its folder, its weight files
(which must stay inside it) and their recorded digests. The tuned builder
(:mod:`lookalike.embed.backbones.tuned`) reads bundles through this module only.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

from lookalike.embed.config import MetricConfig
from lookalike.errors import LookalikeError, UsageError, WeightsCorruptError
from lookalike.paths import user_metrics_dir

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
