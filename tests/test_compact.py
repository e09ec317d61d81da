"""Compact PCA + residual-norm index: lower bounds, certified exact search, recall, float16."""

from __future__ import annotations

import numpy as np
import pytest

from lookalike.search.compact import CompactIndex, float16_error_bound, pca_basis, to_float16
from lookalike.search.evaluate import knn_recall
from lookalike.embed.distance import sqeuclidean
from lookalike.search.rerank import array_fetcher, brute_force


@pytest.fixture(scope="module")
def library(photos) -> np.ndarray:
    """LPIPS vectors of real photos and of their mirror images and crops (near-duplicates)."""
    from PIL import ImageOps

    from lookalike.embed.images import load_image
    from lookalike.embed.factory import create_metric

    metric = create_metric("lpips-alex-random", device="cpu")
    images = [load_image(p) for p in photos[:100]]
    crops = [im.crop((im.width // 10, im.height // 10, im.width, im.height)) for im in images]
    return metric.embed(images + [ImageOps.mirror(im) for im in images] + crops)


def test_basis_is_orthonormal(library) -> None:
    mean, comps = pca_basis(library[:200], 24)
    assert comps.shape == (24, library.shape[1]) and mean.shape == (library.shape[1],)
    assert np.allclose(comps @ comps.T, np.eye(24), atol=1e-5)


def test_codes_give_lower_bounds_on_the_exact_distance(library) -> None:
    index = CompactIndex.train(library, dims=16)
    codes = index.encode(library).astype(np.float64)
    lower = sqeuclidean(codes[:40], codes)
    exact = sqeuclidean(library[:40], library)
    assert (lower <= exact * (1 + 1e-5) + 1e-9).all()
    assert (lower > 0.3 * exact).mean() > 0.5  # and not vacuous


def test_search_exact_equals_brute_force(library) -> None:
    queries, base = library[250:], library[:250]
    index = CompactIndex.train(base, dims=16)
    index.add(base)
    k = 10
    true_d, true_i = brute_force(queries, base, k)
    d, i, fetched = index.search_exact(queries, k, array_fetcher(base), start=20)
    assert (i == true_i).all() and np.allclose(d, true_d, rtol=1e-12)
    assert fetched.min() >= 20 and fetched.max() <= len(base)


def test_search_recall_grows_with_candidates(library, tmp_path) -> None:
    queries, base = library[250:], library[:250]
    index = CompactIndex.train(base, dims=16)
    index.add(base)
    k = 10
    _, truth = brute_force(queries, base, k)
    recalls = [knn_recall(index.search(queries, k, array_fetcher(base), n_candidates=c)[1], truth)
               for c in (10, 40, 250)]
    assert recalls[0] <= recalls[1] <= recalls[2] == 1.0
    assert recalls[0] < 1.0  # the candidate stage alone is approximate
    index.save(tmp_path / "c")
    again = CompactIndex.load(tmp_path / "c")
    assert again.ntotal == len(base) and again.bytes_per_vector == 4 * 17
    assert (again.search(queries, k, array_fetcher(base), 40)[1]
            == index.search(queries, k, array_fetcher(base), 40)[1]).all()
    with pytest.raises(ValueError):
        index.encode(base[:, :-1])


def test_float16_storage_error_is_within_its_bound(library) -> None:
    half = to_float16(library)
    assert half.dtype == np.float16 and half.nbytes * 2 == library.astype(np.float32).nbytes
    rng = np.random.default_rng(0)
    i, j = rng.integers(0, len(library), (2, 1000))
    i, j = i[i != j], j[i != j]
    i, j = np.concatenate([i, np.arange(100)]), np.concatenate([j, np.arange(100) + 100])  # mirrors
    a, b = library[i], library[j]
    d = ((a.astype(np.float64) - b) ** 2).sum(1)
    d16 = ((half[i].astype(np.float64) - half[j]) ** 2).sum(1)
    assert (np.abs(d16 - d) <= float16_error_bound(a, b)).all()
    assert np.median(np.abs(d16 - d) / d) < 1e-3
    with pytest.raises(ValueError):
        to_float16(np.array([[1e6]]))
