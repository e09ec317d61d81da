"""lookalike: find images that look alike to people.

The public API is small and imports nothing heavy until used::

    import lookalike
    lookalike.list_metrics()
    metric = lookalike.create_metric("effnet-lite0")
    vectors = metric.embed_paths(["a.jpg", "b.jpg"]).vectors
    with lookalike.Library.open(".lookalike") as lib:   # an indexed library (`lookalike index`)
        results = lib.search("query.jpg", k=10)
"""

from __future__ import annotations

from typing import Any

from lookalike._version import __version__

__all__ = ["Library", "__version__", "build_network", "create_metric", "list_metrics"]


def __getattr__(name: str) -> Any:  # lazy: `import lookalike` must stay cheap
    if name in ("create_metric", "list_metrics"):
        from lookalike import embed

        return getattr(embed, name)
    if name == "build_network":  # a metric's torch network, frozen or trainable
        from lookalike.embed.factory import build_network

        return build_network
    if name == "Library":
        from lookalike.library.service import Library

        return Library
    raise AttributeError(name)
