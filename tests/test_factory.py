"""The index-choice rule: valid FAISS strings, parameters that apply, good recall on clustered data."""

from __future__ import annotations

import numpy as np
import pytest

from lookalike.library.index_types import (
    FLAT_MAX_FLOATS,
    HNSW_EF_CONSTRUCTION,
    apply_params,
    build_params,
    choose_factory,
    param_string,
    search_params,
)

faiss = pytest.importorskip("faiss")


@pytest.mark.parametrize("n", [1, 1000, 4681, 4682, 200_000, 1_000_000, 20_000_000])
@pytest.mark.parametrize("dim", [32, 1280, 1792])
def test_every_choice_is_a_valid_factory_with_applicable_params(n: int, dim: int) -> None:
    key = choose_factory(n, dim)
    index = faiss.index_factory(dim, key, faiss.METRIC_INNER_PRODUCT)
    assert index.d == dim
    apply_params(index, search_params(key, n))  # raises on an unknown parameter


def test_small_libraries_get_exact_search() -> None:
    assert choose_factory(10, 1280) == "Flat"
    assert search_params("Flat", 10) == {}
    assert choose_factory(FLAT_MAX_FLOATS // 1792, 1792) == "Flat"
    assert choose_factory(FLAT_MAX_FLOATS // 1792 + 1, 1792) != "Flat"
    assert choose_factory(100_000, 16) == "Flat"  # small vectors: flat stays cheap for longer


def test_param_string_and_apply_set_the_index() -> None:
    assert param_string({"nprobe": 8, "efSearch": 3}) == "nprobe=8,efSearch=3"
    ivf = faiss.index_factory(16, "IVF8,Flat")
    apply_params(ivf, {"nprobe": 5})
    assert faiss.extract_index_ivf(ivf).nprobe == 5
    hnsw = faiss.index_factory(16, "HNSW8,Flat")
    apply_params(hnsw, {"efSearch": 77})
    assert faiss.downcast_index(hnsw).hnsw.efSearch == 77


def test_build_params_reach_the_graph_through_wrappers() -> None:
    from lookalike.library.vectors import VectorIndex

    assert build_params("Flat") == {} and build_params("IVF64,Flat") == {}
    wrapped = faiss.index_factory(16, "IDMap2,HNSW8,Flat")
    apply_params(wrapped, {"efConstruction": 123})
    assert faiss.downcast_index(faiss.downcast_index(wrapped).index).hnsw.efConstruction == 123
    with pytest.raises(RuntimeError, match="efConstruction"):
        apply_params(faiss.index_factory(16, "Flat"), {"efConstruction": 5})
    index = VectorIndex.empty("m", 16, "cosine", "HNSW8,Flat")
    assert faiss.downcast_index(index.index.index).hnsw.efConstruction == HNSW_EF_CONSTRUCTION


def test_chosen_index_finds_the_true_neighbours() -> None:
    """Above the flat limit, the chosen index with its parameters keeps recall@10 high (clustered data)."""
    rng = np.random.default_rng(0)
    dim = 512
    n = FLAT_MAX_FLOATS // dim + 4000
    centers = rng.standard_normal((200, 8)).astype(np.float32)
    proj = rng.standard_normal((8, dim)).astype(np.float32)

    def sample(count: int) -> np.ndarray:
        z = centers[rng.integers(0, 200, count)] + rng.standard_normal((count, 8), dtype=np.float32)
        x = z @ proj + 0.3 * rng.standard_normal((count, dim), dtype=np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    data, queries = sample(n), sample(100)
    key = choose_factory(n, dim)
    assert key != "Flat"
    index = faiss.index_factory(dim, key, faiss.METRIC_INNER_PRODUCT)
    if not index.is_trained:
        index.train(data)
    index.add(data)
    apply_params(index, search_params(key, n))
    found = index.search(queries, 10)[1]
    exact = np.argsort(-(queries @ data.T), axis=1)[:, :10]
    recall = np.mean([len(set(f) & set(e)) / 10 for f, e in zip(found, exact)])
    assert recall >= 0.95
