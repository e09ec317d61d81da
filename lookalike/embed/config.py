"""Metric configs: plain data that saves and loads itself as JSON.

A metric is fully described by a :class:`MetricConfig`: how to build its network (``builder``, a
``"module:function"`` path imported only when the metric is created), what its vectors are
(``dim``, ``distance``), how images are prepared (:class:`Preprocess`), and which weight files
it needs (:class:`WeightFile`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

Distance = Literal["cosine", "sqeuclidean"]


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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MetricConfig:
        data = dict(data)
        data["preprocess"] = Preprocess(**data.get("preprocess", {}))
        data["weights"] = tuple(WeightFile(**w) for w in data.get("weights", ()))
        data["model_ids"] = tuple(data.get("model_ids", ()))
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> MetricConfig:
        return cls.from_dict(json.loads(text))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_json() + "\n")

    @classmethod
    def load(cls, path: str | Path) -> MetricConfig:
        return cls.from_json(Path(path).read_text())
