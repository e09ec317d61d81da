"""FAISS wrapper: ids are database ids, distances in the metric's own terms, atomic saves."""

from __future__ import annotations

import numpy as np
import pytest

from lookalike.embed.distance import pairwise
from lookalike.library.index_types import apply_params
from lookalike.library.vectors import VectorIndex, index_filename


@pytest.fixture
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    ids = rng.choice(10_000, 300, replace=False).astype(np.int64)
    return ids, rng.normal(size=(300, 24)).astype(np.float32)


@pytest.mark.parametrize("distance", ["cosine", "sqeuclidean"])
def test_flat_search_is_exact_in_metric_terms(data, distance):
    ids, vecs = data
    index = VectorIndex.build("m", 24, distance, "Flat", ids, vecs)
    assert index.exact and index.ntotal == 300 and index.distance == distance
    queries = vecs[:5] * 3.0  # cosine ignores norms; queries need not be normalised
    dist, got = index.search(queries, 7)
    truth = pairwise(queries, vecs, distance)
    order = np.argsort(truth, axis=1)[:, :7]
    np.testing.assert_array_equal(got, ids[order])
    np.testing.assert_allclose(dist, np.take_along_axis(truth, order, 1), rtol=1e-4, atol=1e-4)


def test_fewer_vectors_than_k_pads_with_minus_one(data):
    ids, vecs = data
    index = VectorIndex.build("m", 24, "cosine", "Flat", ids[:3], vecs[:3])
    dist, got = index.search(vecs[:2], 5)
    assert (got[:, 3:] == -1).all() and np.isinf(dist[:, 3:]).all() and (got[:, :3] >= 0).all()


def test_ivf_is_approximate_and_finds_itself(data):
    ids, vecs = data
    index = VectorIndex.build("m", 24, "cosine", "IVF4,Flat", ids, vecs)
    assert not index.exact and index.factory == "IVF4,Flat"
    apply_params(index.index, {"nprobe": 4})  # all lists: exhaustive
    _, got = index.search(vecs[:10], 1)
    np.testing.assert_array_equal(got[:, 0], ids[:10])


def test_add_remove_save_load(tmp_path, data):
    ids, vecs = data
    index = VectorIndex.empty("m", 24, "sqeuclidean")
    index.add(ids[:100], vecs[:100])
    assert index.remove(ids[:10]) == 10 and index.ntotal == 90
    path = tmp_path / index_filename("m/x y")
    index.save(path)
    assert path.name == "m_x_y.faiss" and [p.name for p in tmp_path.iterdir()] == [path.name]
    back = VectorIndex.load(path, "m", "sqeuclidean")
    assert sorted(back.ids()) == sorted(ids[10:100]) and back.factory == "Flat"
    np.testing.assert_array_equal(back.search(vecs[50:51], 1)[1], [[ids[50]]])


def test_wrong_dimension_is_refused(data):
    ids, vecs = data
    index = VectorIndex.empty("m", 24, "cosine")
    with pytest.raises(ValueError):
        index.add(ids[:2], vecs[:2, :10])
    with pytest.raises(ValueError):
        index.search(vecs[:1, :10], 3)


def test_large_builds_go_in_chunks_with_progress(monkeypatch, caplog, capsys, data):
    import logging

    import lookalike.library.vectors as vectors

    ids, vecs = data
    monkeypatch.setattr(vectors, "BUILD_CHUNK", 64)  # 300 vectors: 5 chunks
    caplog.set_level(logging.INFO, logger="lookalike")
    index = VectorIndex.build("m", 24, "cosine", "HNSW8,Flat", ids, vecs)
    assert index.factory == "HNSW8,Flat" and sorted(index.ids()) == sorted(ids)
    _, got = index.search(vecs[:20], 1)
    np.testing.assert_array_equal(got[:, 0], ids[:20])
    err = capsys.readouterr().err
    assert "m: build HNSW8,Flat" in err and "300/300" in err
