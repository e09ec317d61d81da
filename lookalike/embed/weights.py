"""Weights files: find them in the cache or in the package that ships them.

(Downloading, importing from a folder and verifying are added on top of :func:`resolve`.)
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from lookalike.embed.config import WeightFile
from lookalike.errors import WeightsMissingError
from lookalike.paths import weights_dir


def package_path(wf: WeightFile) -> Path | None:
    """Where a package-shipped file lies, or ``None`` if the package is not installed."""
    assert wf.package
    pkg, _, rel = wf.package.partition(":")
    spec = importlib.util.find_spec(pkg)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / rel
    return path if path.is_file() else None


def cached_path(wf: WeightFile) -> Path:
    return weights_dir() / wf.name


def is_present(wf: WeightFile) -> bool:
    if wf.package:
        return package_path(wf) is not None
    return cached_path(wf).is_file()


def resolve(wf: WeightFile, metric: str = "") -> Path:
    """The local path of ``wf``; raises :class:`WeightsMissingError` naming the remedies."""
    if wf.package:
        path = package_path(wf)
        if path is None:
            pkg = wf.package.partition(":")[0].replace("_", "-")
            raise WeightsMissingError(f"{metric or wf.name}: weights ship in the package {pkg!r}; "
                                      f"install it with `pip install {pkg}`")
        return path
    path = cached_path(wf)
    if path.is_file():
        return path
    raise WeightsMissingError(
        f"{metric or wf.name}: weights file {wf.name!r} is not in the cache {weights_dir()}. "
        f"Run `lookalike weights fetch {metric or '<metric>'}` on a connected machine, or "
        "`lookalike weights import DIR` with the files copied from one; the offline metric "
        "`effnet-lite0` needs no download."
    )
