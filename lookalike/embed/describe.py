"""What ``lookalike metrics`` shows: the registered metrics and the user files that could not be used."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class MetricsListing:
    """``metrics``: one row per metric; ``problems``: broken user metric files, path -> why."""

    metrics: list[dict[str, Any]] = field(default_factory=list)
    problems: dict[str, str] = field(default_factory=dict)


def describe_metrics(include_test: bool = False) -> MetricsListing:
    """Every registered metric (name, dim, distance, offline?, weights present?, fingerprint) and
    the user metric files skipped, with the reason."""
    from lookalike.embed.registry import builtin_configs, load_user_configs
    from lookalike.embed.provenance import fingerprint
    from lookalike.embed.weights import is_present

    users, problems = load_user_configs()
    out = MetricsListing(problems=problems)
    for config in {**builtin_configs(), **users}.values():
        if config.test_only and not include_test:
            continue
        out.metrics.append({
            "name": config.name,
            "dim": config.dim,
            "distance": config.distance,
            "offline": all(w.package for w in config.weights),
            "weights_present": all(is_present(w) for w in config.weights),
            "test_only": config.test_only,
            "user": config.name in users,
            "fingerprint": fingerprint(config),
            "description": config.description,
        })
    return out
