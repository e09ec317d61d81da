"""What ``lookalike weights list`` shows: every metric's weight files, where they are, how trusted."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def disk_size(path: Path) -> int | None:
    """Bytes of a file, or of all files under a folder; ``None`` if absent."""
    if path.is_file():
        return path.stat().st_size
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return None


def describe_weights(metrics: list[str], include_test: bool) -> list[dict[str, Any]]:
    """One row per metric (all, or those named): each weights file, present?, size, trust, source."""
    from lookalike.embed.registry import all_configs, get_config
    from lookalike.embed.weights import cached_path, is_present, package_path, source_url, trust

    if metrics:
        configs = [get_config(m) for m in metrics]
    else:
        configs = [c for c in all_configs().values() if include_test or not c.test_only]
    rows = []
    for config in configs:
        files = []
        for wf in config.weights:
            if wf.package:
                path = package_path(wf)
                source = f"package {wf.package.partition(':')[0].replace('_', '-')}"
            else:
                path = cached_path(wf)
                source = source_url(wf) or "-"
            present = is_present(wf)
            files.append({"name": wf.name, "present": present, "unpack": wf.unpack, "trust": trust(wf),
                          "path": str(path) if path and present else None,
                          "size": disk_size(path) if path and present else None,
                          "expected_size": wf.size, "sha256": wf.sha256, "source": source,
                          "url": wf.url})
        rows.append({"metric": config.name, "files": files})
    return rows
