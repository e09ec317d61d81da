"""Provenance records: what produced a set of vectors, down to weights checksums and versions."""

from __future__ import annotations

from importlib import metadata
from typing import Any

from lookalike.embed.config import MetricConfig

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
    digests = config.weight_digests()
    return {
        "metric": config.name,
        "config": config.to_dict(),
        "weights_sha256": digests,
        "fingerprint": config.fingerprint(),
        "precision": precision,
        "packages": package_versions(),
    }
