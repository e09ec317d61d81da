"""Typed views of a :class:`~lookalike.embed.config.MetricConfig`'s ``options``, one per family.

``MetricConfig.options`` stays the JSON dict (stored configs and fingerprints do not change);
:func:`typed_options` reads it into the dataclass of the config's builder module, warning about and
dropping unknown keys and raising :class:`~lookalike.embed.config.BadConfigError` for missing or
mistyped ones. Builders read ``typed_options(config).model`` instead of ``config.options["model"]``.

Families are keyed by builder module (``lookalike.embed.backbones.<module>:build``), not by the
``family`` label: the ``test`` family holds both a tiny ViT and a tiny DiffSim.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from lookalike.embed.config import BadConfigError, MetricConfig, check_types, known_fields


@dataclass(frozen=True)
class EffnetOptions:
    """EfficientNet-Lite: the ``efficientnet_lite_pytorch`` model name and input normalisation."""

    model: str
    mean: list[float]
    std: list[float]


@dataclass(frozen=True)
class DreamSimOptions:
    """DreamSim and its untuned baselines (see :mod:`lookalike.embed.backbones.dreamsim`)."""

    branches: list[dict[str, Any]]
    center: bool = False
    lora: dict[str, Any] | None = None
    int8: bool = False
    reference: str = ""


@dataclass(frozen=True)
class LpipsOptions:
    """LPIPS as an embedding: the trunk, and a seed for a random trunk (tests only)."""

    net: Literal["alex", "vgg", "squeeze"]
    random_trunk_seed: int | None = None
    int8: bool = False


@dataclass(frozen=True)
class TinyVitOptions:
    """TEST-ONLY seeded random ViT."""

    seed: int
    patch: int
    width: int
    depth: int
    heads: int
    int8: bool = False


@dataclass(frozen=True)
class DiffSimOptions:
    """DiffSim's scorer settings (values checked by
    :func:`lookalike.embed.backbones.diffsim.scorer_options`)."""

    block: str = "up"
    layer: int = 0
    step: int = 600
    seed: int = 2334
    prompt: str = ""
    similarity: str = "cosine"
    batch_size: int = 1


@dataclass(frozen=True)
class DiffSimMetricOptions(DiffSimOptions):
    """A DiffSim metric (pairwise): scorer settings plus model shapes, weight roles, test knobs."""

    kind: Literal["pairwise"] = "pairwise"
    files: dict[str, str] = field(default_factory=dict)
    unet: dict[str, Any] = field(default_factory=dict)
    vae: dict[str, Any] = field(default_factory=dict)
    text_encoder: dict[str, Any] = field(default_factory=dict)
    scheduler: dict[str, Any] = field(default_factory=dict)
    random_init: bool = False
    init_seed: int = 0
    qk_gain: float = 1.0
    tokenizer: str | None = None
    reference: str = ""


@dataclass(frozen=True)
class TunedOptions:
    """A tuned metric's bundle (see :mod:`lookalike.embed.backbones.tuned`)."""

    base: dict[str, Any]
    method: Literal["lora", "mlp", "lpips-linear"]
    files: dict[str, str] = field(default_factory=dict)
    tuning: dict[str, Any] = field(default_factory=dict)
    adapter: str | None = None
    head: dict[str, Any] | None = None
    lpips_heads: str | None = None


#: Builder module -> the dataclass of its options.
OPTIONS: dict[str, type] = {
    "effnet": EffnetOptions,
    "dreamsim": DreamSimOptions,
    "lpips": LpipsOptions,
    "tiny": TinyVitOptions,
    "diffsim": DiffSimMetricOptions,
    "tuned": TunedOptions,
}


def options_class(config: MetricConfig) -> type | None:
    """The options dataclass of ``config``'s builder module, ``None`` for one without."""
    module = config.builder.partition(":")[0].rpartition(".")[2]
    return OPTIONS.get(module)


def typed_options(config: MetricConfig) -> Any:
    """``config.options`` as its family's dataclass (unknown keys warned about and dropped).
    Raises :class:`BadConfigError` for a missing or mistyped option, or a builder without one."""
    cls = options_class(config)
    where = f"metric config {config.name!r} options"
    if cls is None:
        raise BadConfigError(f"{where}: builder {config.builder!r} has no options type")
    try:
        opts = cls(**known_fields(cls, config.options, where))
    except TypeError as exc:  # a required option missing
        raise BadConfigError(f"{where}: {exc}") from None
    check_types(opts, where)
    return opts


def check_options(config: MetricConfig) -> MetricConfig:
    """``config`` if its options read into its family's dataclass (a builder without an options type
    passes); raises :class:`BadConfigError` for options wrong for the family."""
    if options_class(config) is not None:
        typed_options(config)
    return config
