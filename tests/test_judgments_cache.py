"""The feature cache: keyed by metric fingerprint and file content, written atomically."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from lookalike.embed.registry import get_config
from lookalike.files import sha256_file
from lookalike.judgments.cache import FeatureCache, VectorStore, fingerprint, fingerprint_record


def test_store_round_trip_and_merge(tmp_path: Path) -> None:
    cache = FeatureCache(tmp_path)
    record = {"provenance": {"metric": "x"}, "kind": "embedding"}
    store = cache.store(record)
    rows = np.arange(12, dtype=np.float32).reshape(3, 4)
    store.put(["a", "b", "c"], rows)
    other = cache.store(record)  # another handle (process) on the same store
    other.put(["d"], np.ones((1, 4), np.float32))
    got = cache.store(record).get(["a", "c", "d", "zzz"])
    assert sorted(got) == ["a", "c", "d"]
    np.testing.assert_array_equal(got["c"], rows[2])
    np.testing.assert_array_equal(got["d"], np.ones(4))
    assert not [p for p in store.folder.iterdir() if p.name.endswith(".tmp")]
    assert (store.folder / "meta.json").is_file()
    # another namespace or record is another store
    assert cache.store(record, "pair-distances").folder != store.folder
    assert cache.store({**record, "kind": "pairwise"}).get(["a"]) == {}


def test_unreadable_index_is_recomputed_not_fatal(tmp_path: Path) -> None:
    store = VectorStore(tmp_path / "s")
    store.put(["a"], np.ones((1, 2), np.float32))
    (tmp_path / "s" / "index.json").write_text("{broken")
    assert VectorStore(tmp_path / "s").get(["a"]) == {}


def test_fingerprint_follows_config_precision_and_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOKALIKE_HOME", str(tmp_path))
    config = get_config("tiny-vit")
    base = fingerprint(fingerprint_record(config))
    assert base == fingerprint(fingerprint_record(config))
    changed = dataclasses.replace(config, options={**config.options, "seed": 5})
    assert fingerprint(fingerprint_record(changed)) != base
    assert fingerprint(fingerprint_record(config, precision="int8")) != base
    # weights in the cache without a recorded digest: placing or rewriting them changes the key
    from lookalike.embed.weights import cached_path

    from lookalike.embed.registry import builtin_configs

    ds = next(c for c in builtin_configs().values()
              if any(not w.unpack and not w.sha256 and not w.package for w in c.weights))
    wf = next(w for w in ds.weights if not w.unpack and not w.sha256 and not w.package)
    before = fingerprint(fingerprint_record(ds))
    path = cached_path(wf)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"weights v1")
    placed = fingerprint(fingerprint_record(ds))
    assert placed != before
    path.write_bytes(b"weights v2, longer")
    assert fingerprint(fingerprint_record(ds)) != placed


def test_file_sha256_is_content_based(tmp_path: Path) -> None:
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(b"same")
    b.write_bytes(b"same")
    assert sha256_file(a) == sha256_file(b)
    b.write_bytes(b"other")
    assert sha256_file(a) != sha256_file(b)
