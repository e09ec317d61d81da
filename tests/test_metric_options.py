"""Typed metric options: every built-in config reads into its family's dataclass unchanged, and
options wrong for the family are a clear error (a broken user file, not a crash)."""

from __future__ import annotations

import dataclasses
import json
import logging

import pytest

from lookalike.embed.config import BadConfigError, MetricConfig
from lookalike.embed.options import (DreamSimOptions, EffnetOptions, LpipsOptions, TinyVitOptions,
                                     check_options, options_class, typed_options)
from lookalike.embed.provenance import fingerprint
from lookalike.embed.registry import builtin_configs, get_config, load_user_configs

BUILTIN = sorted(builtin_configs())


@pytest.mark.parametrize("name", BUILTIN)
def test_builtin_configs_round_trip_unchanged(name, caplog):
    config = get_config(name)
    with caplog.at_level(logging.WARNING, logger="lookalike.embed.config"):
        again = MetricConfig.from_dict(json.loads(config.to_json()))
        opts = typed_options(config)
    assert caplog.text == ""  # no built-in option is unknown to its family
    assert again.to_dict() == config.to_dict() and again.to_json() == config.to_json()
    assert fingerprint(again) == fingerprint(config)
    typed = dataclasses.asdict(opts)
    assert {k: typed[k] for k in config.options} == config.options  # every option read, as written


def test_each_family_has_its_options_type():
    kinds = {n: options_class(get_config(n)) for n in ("effnet-lite0", "dreamsim", "lpips-alex", "tiny-vit")}
    assert kinds == {"effnet-lite0": EffnetOptions, "dreamsim": DreamSimOptions,
                     "lpips-alex": LpipsOptions, "tiny-vit": TinyVitOptions}
    assert typed_options(get_config("lpips-alex-random")).random_trunk_seed == 0
    assert typed_options(get_config("dino-vitb16")).lora is None


@pytest.mark.parametrize("name,options,match", [
    ("tiny-vit", {"seed": 0, "patch": "8", "width": 32, "depth": 2, "heads": 2}, "patch"),
    ("tiny-vit", {"seed": 0, "width": 32, "depth": 2, "heads": 2}, "patch"),
    ("lpips-alex", {"net": "resnet"}, "net"),
    ("dreamsim", {"branches": "dino"}, "branches"),
    ("effnet-lite0", {"model": "efficientnet-lite0", "mean": 0.5, "std": [0.5] * 3}, "mean"),
])
def test_options_wrong_for_the_family_are_a_clear_error(name, options, match):
    data = {**get_config(name).to_dict(), "options": options}
    with pytest.raises(BadConfigError, match=match):
        check_options(MetricConfig.from_dict(data))


def test_unknown_options_are_warned_about_and_dropped(caplog):
    config = dataclasses.replace(get_config("tiny-vit"), options={**get_config("tiny-vit").options, "gain": 2})
    with caplog.at_level(logging.WARNING, logger="lookalike.embed.config"):
        opts = typed_options(config)
    assert "gain" in caplog.text and not hasattr(opts, "gain") and opts.patch == 8


def test_a_user_metric_with_bad_options_is_reported_and_skipped(tmp_path):
    good = {**get_config("tiny-vit").to_dict(), "name": "my-tiny", "test_only": False}
    (tmp_path / "my-tiny.json").write_text(json.dumps(good))
    bad = {**good, "name": "bad-opts", "options": {**good["options"], "depth": "two"}}
    (tmp_path / "bad-opts.json").write_text(json.dumps(bad))
    configs, problems = load_user_configs(tmp_path)
    assert list(configs) == ["my-tiny"]
    assert list(problems) == [str(tmp_path / "bad-opts.json")] and "depth" in problems[str(tmp_path / "bad-opts.json")]
