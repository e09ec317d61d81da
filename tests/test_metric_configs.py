"""Metric configs: tolerant loading (unknown keys warned about and dropped), broken user files
reported and skipped (never fatal), and one fingerprint that includes the weights' digests."""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil

import pytest

from lookalike.embed.config import BadConfigError, MetricConfig, WeightFile
from lookalike.embed.provenance import fingerprint, provenance, same_metric
from lookalike.embed.registry import get_config, load_user_configs


def test_unknown_keys_are_warned_about_and_dropped(caplog):
    data = {**get_config("tiny-vit").to_dict(), "name": "mine", "from_the_future": 1}
    data["preprocess"] = {**data["preprocess"], "gamma": 2.2}
    with caplog.at_level(logging.WARNING, logger="lookalike.embed.config"):
        config = MetricConfig.from_dict(data)
    assert config.name == "mine" and config.preprocess == get_config("tiny-vit").preprocess
    assert "from_the_future" in caplog.text and "gamma" in caplog.text


@pytest.mark.parametrize("field,value", [("dim", "512"), ("dim", -1), ("distance", "manhattan"),
                                         ("weights", "x.pth"), ("model_ids", [1]), ("test_only", "no")])
def test_a_field_of_the_wrong_type_is_a_clear_error(field, value):
    data = {**get_config("tiny-vit").to_dict(), field: value}
    with pytest.raises(BadConfigError, match=field):
        MetricConfig.from_dict(data)


def test_a_missing_required_field_is_a_clear_error():
    with pytest.raises(BadConfigError, match="builder"):
        MetricConfig.from_dict({"name": "x", "dim": 3})


def test_fingerprint_covers_config_and_weight_digests():
    base = dataclasses.replace(get_config("tiny-vit"), weights=(WeightFile("w.pth", sha256="a" * 64),))
    other_weights = dataclasses.replace(base, weights=(WeightFile("w.pth", sha256="b" * 64),))
    other_dim = dataclasses.replace(base, dim=base.dim + 1)
    assert len({fingerprint(base), fingerprint(other_weights), fingerprint(other_dim)}) == 3
    assert fingerprint(base) == fingerprint(MetricConfig.from_dict(base.to_dict()))
    assert same_metric(provenance(base), base)
    assert not same_metric(provenance(base), other_weights)
    assert not same_metric(provenance(base), other_dim)
    legacy = {k: v for k, v in provenance(base).items() if k not in ("weights_sha256", "fingerprint")}
    assert same_metric(legacy, base)  # recorded before digests were: the config decides
    assert not same_metric({}, base)


def test_broken_user_metrics_are_reported_and_skipped_and_other_commands_work(photos, tmp_path, cli):
    home = tmp_path / "home"
    folder = home / "metrics"
    folder.mkdir(parents=True)
    good = {**get_config("tiny-vit").to_dict(), "name": "my-tiny", "test_only": False, "added_later": True}
    (folder / "my-tiny.json").write_text(json.dumps(good))
    (folder / "not-json.json").write_text("{ this is not json")
    (folder / "wrong-type.json").write_text(json.dumps({**good, "name": "wrong", "dim": "many"}))
    (folder / "shadow.json").write_text(json.dumps({**good, "name": "tiny-vit"}))
    configs, problems = load_user_configs(folder)
    assert list(configs) == ["my-tiny"]
    assert sorted(p.rsplit("/", 1)[1] for p in problems) == ["not-json.json", "shadow.json", "wrong-type.json"]
    env = {"LOOKALIKE_HOME": str(home)}
    proc = cli("metrics", "--all", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    names = [r["name"] for r in json.loads(proc.stdout)]
    assert "my-tiny" in names and "tiny-vit" in names and "effnet-lite0" in names
    for bad in ("not-json.json", "wrong-type.json", "shadow.json"):
        assert bad in proc.stderr
    text = cli("metrics", env=env)
    assert text.returncode == 0 and "my-tiny" in text.stdout and "not-json.json" in text.stderr
    pics = tmp_path / "pics"
    pics.mkdir()
    for p in photos[:2]:
        shutil.copy(p, pics / p.name)
    index = cli("index", str(pics), "--library", str(tmp_path / "lib"), "-m", "my-tiny", "-m", "tiny-vit",
                "-q", "--json", env=env)
    assert index.returncode == 0, index.stderr
    assert json.loads(index.stdout)["embedded"] == {"my-tiny": 2, "tiny-vit": 2}
    search = cli("search", str(photos[0]), "--library", str(tmp_path / "lib"), "--json", env=env)
    assert search.returncode == 0, search.stderr
