"""A metric's identity: what produced a set of vectors, down to weights checksums and versions.

:func:`fingerprint` names a config with its resolved weights; :func:`same_metric` is the one answer
to "were these vectors made by this config?", :func:`check_same_metric` the one refusal (and remedy)
when they were not.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from importlib import metadata
from typing import Any

from lookalike.embed.config import MetricConfig
from lookalike.errors import UsageError

_PACKAGES = ("lookalike", "torch", "torchvision", "timm", "open_clip_torch", "peft", "pillow")


def package_versions() -> dict[str, str]:
    out = {}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    if "lookalike" not in out:
        from lookalike._version import __version__

        out["lookalike"] = __version__
    return out


def provenance(config: MetricConfig, precision: str = "fp32") -> dict[str, Any]:
    """A JSON-able record: the full config (model ids, weights sha256, preprocessing) and versions."""
    digests = weight_digests(config)
    return {
        "metric": config.name,
        "config": config.to_dict(),
        "weights_sha256": digests,
        "fingerprint": digest_fingerprint(config.to_dict(), digests),
        "precision": precision,
        "packages": package_versions(),
    }


def weight_digests(config: MetricConfig) -> dict[str, str | None]:
    """Each weight file's sha256: the config's, else the one pinned in the cache (its first
    verified download), else ``None``."""
    from lookalike.embed.weights.checksums import expected_digest

    return {wf.name: expected_digest(wf) for wf in config.weights}


def canonical(config: Mapping[str, Any]) -> str:
    """A canonical text of a config dict (tuples and lists compare equal)."""
    return json.dumps(config, sort_keys=True, default=list)


def digest_fingerprint(config: Mapping[str, Any], digests: Mapping[str, str | None]) -> str:
    """sha256 of a config dict and its weights' digests (see :func:`fingerprint`)."""
    text = canonical({"config": config, "weights_sha256": dict(digests)})
    return hashlib.sha256(text.encode()).hexdigest()


def fingerprint(config: MetricConfig) -> str:
    """One identity of a metric: a hash of its config and the digests of its resolved weights."""
    return digest_fingerprint(config.to_dict(), weight_digests(config))


def same_metric(stored: Any, config: MetricConfig) -> bool:
    """Whether vectors recorded with provenance ``stored`` (see :func:`provenance`) were made by
    ``config``: the same config, and every weight digest known on both sides equal."""
    if not isinstance(stored, Mapping) or not isinstance(stored.get("config"), Mapping):
        return False
    if canonical(stored["config"]) != canonical(config.to_dict()):
        return False
    then = stored.get("weights_sha256")
    if not isinstance(then, Mapping):
        return True  # recorded before digests were: the config decides
    now = weight_digests(config)
    return all(then.get(n) is None or d is None or then.get(n) == d for n, d in now.items())


def check_same_metric(stored: Any, config: MetricConfig) -> MetricConfig:
    """``config`` when :func:`same_metric`; else the one refusal, naming the remedy that works."""
    if not same_metric(stored, config):
        raise UsageError(
            f"the library's {config.name!r} vectors were made by a different config of that metric than "
            f"the registered one; re-embed them with `lookalike index --metric {config.name} --rebuild`")
    return config
