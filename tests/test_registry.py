"""The metric registry and configs as data."""

from __future__ import annotations

import dataclasses

import pytest

from lookalike.embed.config import MetricConfig, Preprocess, WeightFile
from lookalike.embed.factory import create_metric
from lookalike.embed.registry import (
    builtin_configs,
    get_config,
    list_metrics,
    save_user_metric,
)
from lookalike.errors import UnknownMetricError, UsageError


def test_builtin_catalog_lists_offline_metric_and_hides_test_metrics():
    assert "effnet-lite0" in list_metrics()
    assert "tiny-vit" not in list_metrics()
    assert "tiny-vit" in list_metrics(include_test=True)
    assert all(get_config(n).test_only for n in list_metrics(True) if n.startswith("tiny"))


def test_every_builtin_config_round_trips_through_json():
    for config in builtin_configs().values():
        assert MetricConfig.from_json(config.to_json()) == config


def test_unknown_metric_suggests_close_names():
    with pytest.raises(UnknownMetricError, match="effnet-lite0"):
        get_config("effnet-lite")
    assert UnknownMetricError("x").exit_code == 2


def test_user_metric_is_registered_by_saving_its_config(tmp_path):
    base = get_config("tiny-vit")
    mine = dataclasses.replace(base, name="my-tuned", description="tuned on my judgments", test_only=False)
    path = save_user_metric(mine)
    assert path.is_file() and "my-tuned" in list_metrics()
    assert get_config("my-tuned") == mine
    assert create_metric("my-tuned", device="cpu").dim == base.dim
    with pytest.raises(UsageError, match="shadows"):
        save_user_metric(dataclasses.replace(base, name="effnet-lite0"))
        list_metrics()


def test_config_save_and_load(tmp_path):
    config = MetricConfig(name="x", builder="m:f", dim=3, preprocess=Preprocess(64, "shorter-crop"),
                          weights=(WeightFile("a.pth", url="http://127.0.0.1/a.pth", sha256="ab"),))
    config.save(tmp_path / "x.json")
    assert MetricConfig.load(tmp_path / "x.json") == config
