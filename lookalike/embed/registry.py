"""The metric registry: configs as data, looked up by name.

Built-in configs live in ``lookalike/embed/catalog/*.json`` (one file per family); metrics that users
tune themselves live as JSON in :func:`lookalike.paths.user_metrics_dir`. Nothing heavy is imported
here: a metric is built only by :mod:`lookalike.embed.factory`.

Every config read here passes :func:`lookalike.embed.config.check_config` (builders from
lookalike's own backbones only, weight names that stay inside the cache) and
:func:`lookalike.embed.options.check_options` (options its family reads). A config stored in a
library is never built: :func:`library_config` returns the registered config of the same name and
only compares the stored one with it.
"""

from __future__ import annotations

import difflib
import functools
import json
import logging
from importlib import resources
from pathlib import Path
from typing import Any

from lookalike.embed.config import MetricConfig, UnsafeConfigError, check_config
from lookalike.embed.options import check_options
from lookalike.embed.provenance import check_same_metric
from lookalike.errors import LookalikeError, UnknownMetricError, UsageError
from lookalike.paths import user_metrics_dir

log = logging.getLogger(__name__)

@functools.cache
def builtin_configs() -> dict[str, MetricConfig]:
    """All configs shipped with the package, by name."""
    out: dict[str, MetricConfig] = {}
    for entry in sorted(resources.files("lookalike.embed.catalog").iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".json"):
            continue
        for item in json.loads(entry.read_text()):
            config = check_options(check_config(MetricConfig.from_dict(item)))
            if config.name in out:
                raise ValueError(f"metric {config.name!r} defined twice (in {entry.name})")
            out[config.name] = config
    return out


def load_user_configs(folder: Path | None = None) -> tuple[dict[str, MetricConfig], dict[str, str]]:
    """User-made metrics and the files that could not be used: ``(configs by name, {path: why})``.

    Read fresh each call (tuning adds them while we run). A file that is not JSON, holds a field of
    the wrong type, fails the allow-lists or shadows a built-in metric is reported and skipped; the
    other metrics stay usable. Unknown keys are warned about and dropped.
    """
    folder = folder or user_metrics_dir()
    out: dict[str, MetricConfig] = {}
    problems: dict[str, str] = {}
    if folder.is_dir():
        builtin = builtin_configs()
        files = [(p, False) for p in sorted(folder.glob("*.json"))]
        files += [(p, True) for p in sorted(folder.glob("*/metric.json"))]  # folder bundles (tuned metrics)
        for path, bundle in files:
            try:
                if not path.is_file():
                    raise UnsafeConfigError("not a regular file")
                config = check_options(MetricConfig.load(path) if bundle else check_config(MetricConfig.load(path)))
                if bundle and config.name != path.parent.name:
                    raise UsageError(f"bundle folder {path.parent.name!r} holds metric {config.name!r}; "
                                     "the names must match")
                if config.name in builtin:
                    raise UsageError(f"user metric {config.name!r} shadows a built-in metric; rename it")
                if config.name in out:
                    raise UsageError(f"metric {config.name!r} is defined twice")
            except (OSError, ValueError, TypeError, KeyError, LookalikeError) as exc:
                log.debug("ignoring user metric %s: %s", path, exc)
                problems[str(path)] = str(exc)
                continue
            out[config.name] = config
    return out, problems


def user_configs(folder: Path | None = None) -> dict[str, MetricConfig]:
    """Configs of user-made metrics; broken files are skipped with a warning naming them
    (``lookalike metrics`` lists them: :func:`load_user_configs`)."""
    configs, problems = load_user_configs(folder)
    for path, why in problems.items():
        log.warning("ignoring user metric %s: %s", path, why)
    return configs


def all_configs() -> dict[str, MetricConfig]:
    """Built-in and user metrics by name (broken user files skipped, see :func:`user_configs`)."""
    return {**builtin_configs(), **user_configs()}


def list_metrics(include_test: bool = False) -> list[str]:
    """Names of the registered metrics (test-only metrics when asked)."""
    return [n for n, c in all_configs().items() if include_test or not c.test_only]


def get_config(name: str) -> MetricConfig:
    configs = all_configs()
    try:
        return configs[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(configs), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UnknownMetricError(
            f"unknown metric {name!r}{hint} (`lookalike metrics` lists them)"
        ) from None


def save_user_metric(config: MetricConfig, folder: Path | None = None) -> Path:
    """Register a user metric by writing its config (atomically) where the registry finds it."""
    check_options(check_config(config))
    if config.name in builtin_configs():
        raise UsageError(f"user metric {config.name!r} shadows a built-in metric; rename it")
    folder = folder or user_metrics_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{config.name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(config.to_json() + "\n")
    tmp.replace(path)
    return path


class UnregisteredMetricError(UnknownMetricError):
    """A library holds vectors of a metric that is not registered here; its stored config is not built."""


def library_config(name: str, provenance: Any, allow_changed: bool = False) -> MetricConfig:
    """The registered config for the metric ``name`` found in a library.

    ``provenance`` is what the library stored for that metric (a record with a ``"config"``), or
    ``None`` when the library has no such metric. It is data from the library's database, which may
    come from anyone: its config is compared with the registered one, never built. Raises
    :class:`UnregisteredMetricError` when ``name`` is not registered (built-in catalog or
    ``$LOOKALIKE_HOME/metrics``), and :class:`UsageError` when the stored config differs from the
    registered one, unless ``allow_changed`` (the caller then compares or re-embeds itself, as
    ``index --rebuild`` does).
    """
    try:
        config = get_config(name)
    except UnknownMetricError:
        if provenance is None:
            raise
        raise UnregisteredMetricError(
            f"refusing the library's metric {name!r}: it is not registered here, and lookalike "
            "never builds a metric from the config stored in a library (register it as a built-in "
            f"or user metric in {user_metrics_dir()} to use it)") from None
    if provenance is not None and not allow_changed:
        check_same_metric(provenance, config)
    return config
