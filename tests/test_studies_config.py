"""StudyConfig as data: JSON round trip, unknown keys warned about and dropped, bad values refused."""

from __future__ import annotations

import logging

import pytest

from lookalike.studies.config import StudyConfig, StudyConfigError


def test_round_trip_and_unknown_keys(tmp_path, caplog) -> None:
    config = StudyConfig(metrics=["effnet-lite0", "tiny-vit"], ranks=[1, 2, 3], sentinels=2, seed=7)
    path = tmp_path / "study.json"
    config.save(path)
    assert StudyConfig.load(path) == config
    with caplog.at_level(logging.WARNING):
        newer = StudyConfig.from_dict({**config.to_dict(), "from_a_newer_version": True})
    assert newer == config and "from_a_newer_version" in caplog.text


def test_bad_values_are_clear_errors() -> None:
    with pytest.raises(StudyConfigError):
        StudyConfig.from_dict({"metrics": ["effnet-lite0"]})  # one metric: nothing to compare
    with pytest.raises(StudyConfigError):
        StudyConfig.from_dict(["not", "an", "object"])  # type: ignore[arg-type]
