"""LPIPS as an exact embedding: parity with the lpips package on identical (random-trunk) weights."""

from __future__ import annotations

import re
from functools import cache

import numpy as np
import pytest
import torch

from lookalike.embed.backbones.lpips import (
    TAPS,
    embedding_dim,
    load_heads,
    trunk_state,
    with_size,
)
from lookalike.embed.config import Preprocess
from lookalike.embed.images import load_image
from lookalike.embed.preprocess import prepare, to_tensor
from lookalike.embed.factory import create_metric
from lookalike.embed.registry import get_config

lpips = pytest.importorskip("lpips")
faiss = pytest.importorskip("faiss")

N_PHOTOS = 50
K = 10


@cache
def _inputs(paths: tuple[str, ...], size: int, interpolation: str) -> torch.Tensor:
    pre = Preprocess(size=size, resize="squash", interpolation=interpolation)  # type: ignore[arg-type]
    return to_tensor(np.stack([prepare(load_image(p), pre) for p in paths]))


def _reference(net: str, trunk: torch.nn.Module) -> torch.nn.Module:
    """lpips.LPIPS with the shipped v0.1 heads and our trunk's weights copied into its slices."""
    ref = lpips.LPIPS(pretrained=True, net=net, version="0.1", pnet_rand=True, verbose=False).eval()
    ours = trunk.state_dict()
    state = {k: ours[re.sub(r"^slice\d+\.", "", k)] for k in ref.net.state_dict()}
    ref.net.load_state_dict(state)
    return ref


def _reference_pairs(ref: torch.nn.Module, x: torch.Tensor, batch: int = 128) -> np.ndarray:
    """All-pairs LPIPS from the reference's own pieces, trunk run once per image.

    The body of ``lpips.LPIPS.forward`` (v0.1, ``lpips=True``, not spatial) with ``ref.net``'s
    outputs cached: ``scaling_layer`` -> ``net`` -> ``normalize_tensor`` -> squared difference ->
    ``lins`` -> ``spatial_average``, summed over layers. :func:`_check_against_forward` confirms it
    equals ``ref.forward`` itself.
    """
    n = len(x)
    with torch.inference_mode():
        feats = [lpips.normalize_tensor(o) for o in ref.net(ref.scaling_layer(2 * x - 1))]
        i, j = np.triu_indices(n, 1)
        out = np.zeros((n, n))
        for s in range(0, len(i), batch):
            a, b = torch.from_numpy(i[s:s + batch]), torch.from_numpy(j[s:s + batch])
            val = 0
            for kk, f in enumerate(feats):
                val = val + lpips.spatial_average(ref.lins[kk]((f[a] - f[b]) ** 2), keepdim=True)
            out[i[s:s + batch], j[s:s + batch]] = val.flatten().double().numpy()
    return out + out.T


def _check_against_forward(ref: torch.nn.Module, x: torch.Tensor, ref_d: np.ndarray) -> None:
    """``lpips.LPIPS.forward`` on neighbouring pairs agrees with the cached-feature reference."""
    a = torch.arange(len(x))
    b = (a + 1) % len(x)
    with torch.inference_mode():
        d = ref(x[a], x[b], normalize=True).flatten().double().numpy()
    want = ref_d[a.numpy(), b.numpy()]
    assert np.allclose(d, want, rtol=1e-6, atol=0)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("net", ["alex", "squeeze", "vgg"])
def test_squared_l2_equals_lpips_and_faiss_top10_matches(net: str, photos) -> None:
    metric = create_metric(f"lpips-{net}-random", device="cpu")
    pre = metric.config.preprocess
    paths = tuple(str(p) for p in photos[:N_PHOTOS])
    x = _inputs(paths, pre.size, pre.interpolation)
    with torch.inference_mode():
        vecs = metric.module(x).numpy()
    assert vecs.shape == (N_PHOTOS, metric.dim)

    ref = _reference(net, metric.module.trunk)
    ref_d = _reference_pairs(ref, x)
    _check_against_forward(ref, x, ref_d)
    ours = np.stack([((vecs.astype(np.float64) - v) ** 2).sum(1) for v in vecs])
    off = ~np.eye(N_PHOTOS, dtype=bool)
    assert ref_d[off].min() > 0
    rel = np.abs(ours[off] - ref_d[off]) / ref_d[off]
    assert rel.max() <= 1e-5, f"max relative difference {rel.max():.3g}"

    index = faiss.IndexFlatL2(metric.dim)
    index.add(vecs)
    _, got = index.search(vecs, K + 1)
    masked = ref_d + np.diag(np.full(N_PHOTOS, np.inf))
    want = np.argsort(masked, axis=1, kind="stable")[:, :K]
    got = np.array([[j for j in row if j != q][:K] for q, row in enumerate(got)])
    assert (got == want).all(), f"{(got != want).any(1).sum()} queries differ"


@pytest.mark.parametrize("net", ["alex", "vgg", "squeeze"])
def test_declared_dims_match_the_network(net: str) -> None:
    config = get_config(f"lpips-{net}")
    assert config.distance == "sqeuclidean"
    assert config.dim == embedding_dim(net, load_heads(config), config.preprocess.size)
    heads = load_heads(config)
    assert len(heads) == len(TAPS[net]) and all((w >= 0).all() for w in heads)


def test_with_size_recomputes_dim_and_builds(photos) -> None:
    config = with_size(get_config("lpips-alex-random"), 48, name="lpips-alex-48")
    assert config.preprocess.size == 48 and config.dim != get_config("lpips-alex-random").dim
    metric = create_metric(config, device="cpu")
    assert metric.embed(photos[:2]).shape == (2, config.dim)


def test_wrong_dim_is_refused() -> None:
    from dataclasses import replace

    config = get_config("lpips-alex-random")
    with pytest.raises(ValueError, match="dims"):
        create_metric(replace(config, dim=config.dim + 1), device="cpu")


def test_missing_trunk_weights_name_the_remedy() -> None:
    from lookalike.errors import WeightsMissingError

    with pytest.raises(WeightsMissingError, match="alexnet-owt-7be5be79"):
        create_metric("lpips-alex", device="cpu")


def test_trunk_state_loads_a_torchvision_checkpoint() -> None:
    from torchvision import models

    torch.manual_seed(1)
    full = models.squeezenet1_1(weights=None)
    from lookalike.embed.backbones.lpips import make_trunk

    trunk = make_trunk("squeeze")
    trunk.load_state_dict(trunk_state(full.state_dict()))
    for a, b in zip(trunk.state_dict().values(), full.features.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(ValueError):
        trunk_state({"fc.weight": torch.zeros(1)})


def test_vector_distance_matches_per_layer_definition(photos) -> None:
    """|v(a) - v(b)|^2 = sum_l mean_hw sum_c w_c (f_a - f_b)^2, computed from the layer features."""
    metric = create_metric("lpips-squeeze-random", device="cpu")
    pre = metric.config.preprocess
    x = _inputs(tuple(str(p) for p in photos[:2]), pre.size, pre.interpolation)
    heads = load_heads(metric.config)
    with torch.inference_mode():
        feats = metric.module.layer_features(x)
        v = metric.module(x).double()
    want = sum(((f[0] - f[1]).double() ** 2 * w.double().view(-1, 1, 1)).sum(0).mean()
               for f, w in zip(feats, heads))
    got = ((v[0] - v[1]) ** 2).sum()
    assert abs(float(got) - float(want)) <= 1e-6 * float(want)  # float32 vectors


def test_pretrained_trunk_is_loaded_from_the_weights_cache(tmp_path, monkeypatch, photos) -> None:
    """The real loading path: a torchvision checkpoint file in the cache becomes the trunk."""
    from dataclasses import replace

    from torchvision import models

    from lookalike.embed.config import WeightFile

    monkeypatch.setenv("LOOKALIKE_HOME", str(tmp_path))
    (tmp_path / "weights").mkdir()
    torch.manual_seed(3)
    full = models.squeezenet1_1(weights=None)
    torch.save(full.state_dict(), tmp_path / "weights" / "fake-squeezenet.pth")
    config = get_config("lpips-squeeze")
    config = replace(config, weights=(config.weights[0], WeightFile(name="fake-squeezenet.pth")))
    metric = create_metric(config, device="cpu")
    for key, value in full.features.state_dict().items():
        assert torch.equal(metric.module.trunk.state_dict()[key], value)
    assert metric.embed(photos[:1]).shape == (1, config.dim)
