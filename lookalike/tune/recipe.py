"""Tuning hyperparameters: a typed config with the released DreamSim recipe as defaults."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from lookalike.embed.config import MetricConfig
from lookalike.errors import UsageError


METHODS = ("lora", "mlp", "lpips-linear")

#: DreamSim's released recipes (README, "Training"): ensemble vs single branch.
LORA_ENSEMBLE = {"lora_r": 16, "lora_alpha": 8.0, "lora_dropout": 0.3, "lr": 3e-4, "batch_size": 16, "epochs": 6}
LORA_SINGLE = {"lora_r": 16, "lora_alpha": 32.0, "lora_dropout": 0.2, "lr": 3e-4, "batch_size": 32, "epochs": 8}
#: Frozen-feature methods: every step is a matrix product, so more epochs cost seconds.
MLP = {"lr": 1e-3, "batch_size": 64, "epochs": 30, "hidden": 512}
LPIPS_LINEAR = {"lr": 1e-2, "batch_size": 64, "epochs": 30}


@dataclass(frozen=True)
class TuneConfig:
    """Everything that defines a tuning run besides the base metric and the data."""

    method: str
    epochs: int
    lr: float
    batch_size: int
    margin: float = 0.05
    betas: tuple[float, float] = (0.5, 0.999)
    weight_decay: float = 0.0
    seed: int = 0
    hidden: int = 512
    lora_r: int = 16
    lora_alpha: float = 32.0
    lora_dropout: float = 0.2
    grad_checkpointing: bool = True
    val_frac: float = 0.15
    test_frac: float = 0.15
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TuneConfig:
        """Unknown keys are warned about and dropped (configs written by a newer version load)."""
        from lookalike.embed.config import known_fields

        d = known_fields(cls, data, "tuning config")
        if "betas" in d:
            d["betas"] = tuple(d["betas"])
        return cls(**d)


def is_ensemble(base: MetricConfig) -> bool:
    return len(base.options.get("branches", ())) > 1


def defaults(method: str, base: MetricConfig) -> dict[str, Any]:
    if method == "lora":
        return dict(LORA_ENSEMBLE if is_ensemble(base) else LORA_SINGLE)
    if method == "mlp":
        return dict(MLP)
    if method == "lpips-linear":
        return dict(LPIPS_LINEAR)
    raise UsageError(f"unknown tuning method {method!r} (one of {', '.join(METHODS)})")


def make(method: str, base: MetricConfig, **overrides: Any) -> TuneConfig:
    """The recipe for ``method`` on ``base`` with the non-``None`` ``overrides`` applied."""
    values = {**defaults(method, base), **{k: v for k, v in overrides.items() if v is not None}}
    config = TuneConfig.from_dict({"method": method, **values})
    if config.epochs < 1 or config.batch_size < 1 or config.lr <= 0:
        raise UsageError("--epochs and --batch-size must be >= 1 and --lr > 0")
    return config
