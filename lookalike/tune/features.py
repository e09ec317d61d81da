"""Frozen base-metric vectors through the evaluation's feature cache (computed once per image)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lookalike.embed.config import MetricConfig
from lookalike.files import sha256_file
from lookalike.judgments.cache import FeatureCache, fingerprint_record


def base_vectors(config: MetricConfig, paths: Sequence[str], device: str | None = None,
                 cache: FeatureCache | None = None, batch_size: int = 32,
                 progress: bool = True) -> np.ndarray:
    """``(len(paths), dim)`` vectors of the metric ``config`` (what ``lookalike eval`` would use):
    read from the feature cache, the missing ones embedded and added to it."""
    from lookalike.embed.factory import create_metric
    from lookalike.errors import ImageLoadError

    hashes = [sha256_file(p) for p in paths]
    record = fingerprint_record(config)
    store = (cache or FeatureCache()).store(record, "vectors") if record is not None else None
    found = store.get(list(dict.fromkeys(hashes))) if store else {}
    missing = {h: p for h, p in zip(hashes, paths, strict=True) if h not in found}
    if missing:
        metric = create_metric(config, device=device)
        result = metric.embed_paths(list(missing.values()), batch_size=batch_size, progress=progress)
        if result.failures:
            path, reason = result.failures[0]
            raise ImageLoadError(path, reason)
        new = [sha256_file(p) for p in result.paths]
        found.update(zip(new, result.vectors, strict=True))
        if store is not None:
            store.put(new, result.vectors)
    return np.stack([found[h] for h in hashes]).astype(np.float32)
