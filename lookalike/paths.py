"""Where lookalike keeps things: one home folder (``LOOKALIKE_HOME`` overrides platformdirs)."""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """The lookalike home: weights cache, user metrics. Created on demand by the callers."""
    env = os.environ.get("LOOKALIKE_HOME")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("lookalike", appauthor=False))


def weights_dir() -> Path:
    return home() / "weights"


def user_metrics_dir() -> Path:
    """Folder of ``*.json`` metric configs made by users (tuned metrics)."""
    return home() / "metrics"
