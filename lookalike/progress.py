"""Progress bars with rate and ETA, on stderr, silenced by ``-q`` (logger level above INFO)."""

from __future__ import annotations

import logging
import sys
from typing import Any


def progress_bar(total: int | None, desc: str, unit: str = "img", enabled: bool = True,
                 **options: Any) -> Any:
    """A tqdm bar showing count, rate and ETA; a no-op bar when disabled or quiet."""
    from tqdm import tqdm

    quiet = not logging.getLogger("lookalike").isEnabledFor(logging.INFO)
    return tqdm(total=total, desc=desc, unit=unit, disable=quiet or not enabled, file=sys.stderr,
                dynamic_ncols=True, mininterval=0.5 if sys.stderr.isatty() else 10.0,
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} "
                           "[{elapsed}<{remaining}, {rate_fmt}]", **options)
