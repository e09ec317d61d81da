"""Metric configs: plain data that saves and loads itself as JSON.

Plain data: nothing here reads the weights cache (a config's identity, which includes its weights'
digests, is :mod:`lookalike.embed.provenance`) or checks a family's options (that is
:func:`lookalike.embed.options.check_options`, which the registry runs on every config it reads).

A metric is fully described by a :class:`MetricConfig`: how to build its network (``builder``, a
``"module:function"`` path imported only when the metric is created), what its vectors are
(``dim``, ``distance``), how images are prepared (:class:`Preprocess`), and which weight files
it needs (:class:`WeightFile`).

Configs are data that may come from outside (a user's JSON file, a library received from someone
else), so :func:`check_config` holds every field that reaches the file system or the importer to
an allow-list: builders are ``lookalike.embed.backbones.<module>:build`` only, weight names are
relative, normalised paths that stay inside the weights cache, URLs are http(s).
"""

from __future__ import annotations

import json
import logging
import re
import typing
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from lookalike.errors import LookalikeError

Distance = Literal["cosine", "sqeuclidean"]
#: What a metric gives: vectors (``embedding``) or only a distance between two images (``pairwise``).
MetricKind = Literal["embedding", "pairwise"]

#: The only builders a config may name: a ``build`` function of one of lookalike's own backbones.
BUILDER_PATTERN = re.compile(r"lookalike\.embed\.backbones\.[a-z][a-z0-9_]*:build")
#: Metric names: they become file names (user metrics, FAISS indexes).
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")
_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._+-]*")
_PACKAGE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
#: Names inside the weights cache that belong to the cache itself.
RESERVED_NAMES = ("checksums.json",)


log = logging.getLogger(__name__)


class BadConfigError(LookalikeError, ValueError):
    """A metric config that is not one: a field of the wrong type or value, a required one missing."""


def known_fields(cls: type, data: Any, where: str) -> dict[str, Any]:
    """``data``'s entries that are fields of the dataclass ``cls``; unknown keys are warned about and
    dropped (as PEFT does), so that a config written by a newer lookalike still loads."""
    if not isinstance(data, Mapping):
        raise BadConfigError(f"{where}: expected an object, got {type(data).__name__}")
    names = {f.name for f in fields(cls)}
    unknown = sorted(str(k) for k in data if k not in names)
    if unknown:
        log.warning("%s: ignoring unknown key(s) %s", where, ", ".join(unknown))
    return {k: v for k, v in data.items() if k in names}


def check_types(obj: Any, where: str) -> None:
    """Raise :class:`BadConfigError` when a field of the dataclass ``obj`` has the wrong type."""
    hints = typing.get_type_hints(type(obj))
    for f in fields(obj):
        value, hint = getattr(obj, f.name), hints[f.name]
        if not _is_a(value, hint):
            raise BadConfigError(f"{where}: {f.name} must be {_describe(hint)}, got {value!r}")


def _is_a(value: Any, hint: Any) -> bool:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal:
        return value in args
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", ())):
        return any(_is_a(value, a) for a in args)
    if hint is type(None):
        return value is None
    if origin is tuple:
        return isinstance(value, tuple)
    if origin is list:
        return isinstance(value, (list, tuple))
    if origin is dict:
        return isinstance(value, dict)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True


def _describe(hint: Any) -> str:
    if typing.get_origin(hint) is Literal:
        return "one of " + ", ".join(map(repr, typing.get_args(hint)))
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


class UnsafeConfigError(LookalikeError):
    """A metric config names a builder outside the allow-list or a path that could escape its folder."""


def check_builder(builder: str) -> str:
    """``builder`` if it is ``lookalike.embed.backbones.<module>:build``; raises otherwise."""
    if not isinstance(builder, str) or not BUILDER_PATTERN.fullmatch(builder):
        raise UnsafeConfigError(
            f"refusing builder {builder!r}: only lookalike's own backbones "
            "(lookalike.embed.backbones.<module>:build) can build a metric")
    return builder


def check_relative_path(name: str, what: str = "weights file") -> str:
    """A relative, normalised POSIX path (``a/b.pth``): no ``..``, ``.``, empty or hidden parts,
    no absolute path, drive or backslash. Returns it unchanged; raises :class:`UnsafeConfigError`."""
    parts = name.split("/") if isinstance(name, str) else []
    if not parts or not all(_PART.fullmatch(p) for p in parts) or len(name) > 255:
        raise UnsafeConfigError(
            f"refusing {what} name {name!r}: it must be a relative path of plain names "
            "(letters, digits, ._+-; no '..', no absolute path, no hidden parts)")
    return name


def check_weight_name(name: str) -> str:
    """A weights file name that stays inside the cache and is not one of the cache's own files."""
    check_relative_path(name)
    if name in RESERVED_NAMES:
        raise UnsafeConfigError(f"refusing weights file name {name!r}: the cache uses that name itself")
    return name


def check_weight_file(wf: WeightFile) -> WeightFile:
    """Every path-like field of ``wf``: its name, its package path, its URL scheme."""
    check_weight_name(wf.name)
    if wf.package is not None:
        pkg, sep, rel = wf.package.partition(":")
        if not sep or not _PACKAGE.fullmatch(pkg):
            raise UnsafeConfigError(f"refusing package {wf.package!r} of {wf.name!r}: "
                                    "expected 'package:relative/path'")
        check_relative_path(rel, "package file")
    if wf.url is not None and not re.match(r"https?://", wf.url):
        raise UnsafeConfigError(f"refusing URL {wf.url!r} of {wf.name!r}: only http(s) downloads")
    return wf


def check_config(config: MetricConfig) -> MetricConfig:
    """``config`` if its name, builder and weight files pass the allow-lists; raises otherwise."""
    if not isinstance(config.name, str) or not NAME_PATTERN.fullmatch(config.name):
        raise UnsafeConfigError(f"refusing metric name {config.name!r}: letters, digits and ._+- only")
    check_builder(config.builder)
    for wf in config.weights:
        check_weight_file(wf)
    return config


@dataclass(frozen=True)
class WeightFile:
    """One weights file a metric needs.

    ``name`` is the path inside the weights cache (``<cache>/<name>``). ``sha256`` may be ``None``
    for files whose official checksum is not published; then the first verified download pins it.
    ``package`` names a Python package that ships the file instead (``"pkg:relative/path"``).
    ``unpack``: the download is a zip archive, extracted into the folder ``<cache>/<name>`` minus
    its ``.zip`` suffix; :func:`lookalike.embed.weights.resolve` then returns that folder.
    """

    name: str
    url: str | None = None
    sha256: str | None = None
    size: int | None = None
    package: str | None = None
    unpack: bool = False


@dataclass(frozen=True)
class Preprocess:
    """How a decoded RGB image becomes the network input (a square uint8 array).

    ``resize="squash"`` resizes the whole image to ``size`` x ``size`` (DreamSim's choice: nothing is
    cropped away); ``"shorter-crop"`` resizes the shorter side to ``size`` and centre-crops.
    Normalisation (mean/std) belongs to the network, which receives floats in [0, 1].
    """

    size: int = 224
    resize: Literal["squash", "shorter-crop"] = "squash"
    interpolation: Literal["bicubic", "bilinear", "lanczos"] = "bicubic"

    @property
    def key(self) -> str:
        return f"{self.resize}-{self.size}-{self.interpolation}"


@dataclass(frozen=True)
class MetricConfig:
    """Everything that defines a metric. Saved in every index as part of its provenance."""

    name: str
    builder: str
    dim: int
    preprocess: Preprocess = field(default_factory=Preprocess)
    distance: Distance = "cosine"
    weights: tuple[WeightFile, ...] = ()
    model_ids: tuple[str, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    family: str = ""
    test_only: bool = False

    @property
    def kind(self) -> MetricKind:
        """``pairwise`` when the config's options say so (DiffSim: :mod:`lookalike.embed.pairwise`),
        else ``embedding``. Read from ``options`` so that stored configs and fingerprints stay as
        they were; the one place that reads it."""
        return "pairwise" if self.options.get("kind") == "pairwise" else "embedding"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MetricConfig:
        """Build from JSON data: unknown keys are warned about and dropped; a missing required field
        or a field of the wrong type raises :class:`BadConfigError`."""
        name = data.get("name", "?") if isinstance(data, Mapping) else "?"
        where = f"metric config {name!r}"
        out = known_fields(cls, data, where)
        try:
            out["preprocess"] = Preprocess(**known_fields(Preprocess, out.get("preprocess", {}),
                                                          f"{where} preprocess"))
            weights = out.get("weights", ())
            if not isinstance(weights, (list, tuple)):
                raise BadConfigError(f"{where}: weights must be a list, got {weights!r}")
            out["weights"] = tuple(WeightFile(**known_fields(WeightFile, w, f"{where} weights"))
                                   for w in weights)
            ids = out.get("model_ids", ())
            if not isinstance(ids, (list, tuple)) or not all(isinstance(i, str) for i in ids):
                raise BadConfigError(f"{where}: model_ids must be a list of strings, got {ids!r}")
            out["model_ids"] = tuple(ids)
            config = cls(**out)
        except TypeError as exc:  # a required field missing
            raise BadConfigError(f"{where}: {exc}") from None
        check_types(config, where)
        check_types(config.preprocess, f"{where} preprocess")
        for wf in config.weights:
            check_types(wf, f"{where} weights")
        if config.dim < 0:  # 0: a pairwise metric (no vectors)
            raise BadConfigError(f"{where}: dim must not be negative, got {config.dim}")
        return config

    @classmethod
    def from_json(cls, text: str) -> MetricConfig:
        return cls.from_dict(json.loads(text))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json() + "\n")

    @classmethod
    def load(cls, path: str | Path) -> MetricConfig:
        return cls.from_json(Path(path).read_text())
