"""DiffSim on a seeded random tiny U-Net/VAE (``tiny-diffsim``): the paper's score, symmetric, 1 on
itself, equal to a written-out computation on the hooked tensors, identical with and without the
feature cache, one network pass per new image."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

pytest.importorskip("diffusers")

from lookalike.embed.backbones.diffsim import target_attention  # noqa: E402
from lookalike.embed.factory import pairwise_metric  # noqa: E402
from lookalike.embed.pairwise import PairwiseMetric, image_key  # noqa: E402
from lookalike.embed.factory import create_metric  # noqa: E402
from lookalike.embed.registry import get_config  # noqa: E402
from lookalike.errors import UsageError  # noqa: E402


def tiny(cache: bool = True, **options) -> PairwiseMetric:
    config = get_config("tiny-diffsim")
    if options:
        config = dataclasses.replace(config, name="tiny-diffsim-x", options={**config.options, **options})
    return pairwise_metric(config, device="cpu", cache=cache)


def test_create_metric_returns_a_pairwise_metric() -> None:
    metric = create_metric("tiny-diffsim", device="cpu")
    assert isinstance(metric, PairwiseMetric) and metric.kind == "pairwise"
    assert metric.name == "tiny-diffsim" and metric.config.name == "tiny-diffsim"
    assert getattr(create_metric("tiny-vit", device="cpu"), "kind", "embedding") == "embedding"
    with pytest.raises(UsageError, match="pairwise metric"):
        metric.embed_paths(["x.jpg"])
    with pytest.raises(UsageError, match="no 'int8' mode"):
        create_metric("tiny-diffsim", device="cpu", precision="int8")


def test_self_score_is_one_and_the_score_is_symmetric(photos) -> None:
    metric = tiny()
    a, b, c = (str(p) for p in photos[:3])
    d = metric.distance_pairs([a, b, a, b, a, c], [a, b, b, a, c, a])
    assert d[0] == pytest.approx(0.0, abs=1e-12) and d[1] == pytest.approx(0.0, abs=1e-12)
    assert d[2] == d[3] and d[4] == d[5]  # the score is made symmetric exactly
    assert d[2] > 1e-3 and d[4] > 1e-3 and d[2] != d[4]
    assert d.dtype == np.float64 and d.shape == (6,)


def _hooked_input(metric: PairwiseMetric, path: str) -> torch.Tensor:
    """The hidden states entering the target ``attn1`` when ``path`` is featurised."""
    attn = target_attention(metric.scorer.unet, "up", 0)
    seen: list[torch.Tensor] = []
    handle = attn.register_forward_pre_hook(lambda mod, args: seen.append(args[0].detach().clone()))
    try:
        metric.features([path])
    finally:
        handle.remove()
    assert len(seen) == 1
    return seen[0].double()


def test_distance_equals_the_papers_formula_written_out(photos) -> None:
    metric = tiny(cache=False)
    a, b = str(photos[4]), str(photos[9])
    attn = target_attention(metric.scorer.unet, "up", 0)
    wq, wk, wv = (p.weight.detach().double() for p in (attn.to_q, attn.to_k, attn.to_v))
    heads = attn.heads

    def qkv(h: torch.Tensor) -> list[torch.Tensor]:  # (1, N, C) -> 3 x (heads, N, d)
        return [(h[0] @ w.T).reshape(h.shape[1], heads, -1).permute(1, 0, 2) for w in (wq, wk, wv)]

    def attention(q, k, v):  # softmax(q k^T / sqrt(d)) v, per head
        return torch.softmax(q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5, dim=-1) @ v

    def cos(x, y):
        x, y = x.reshape(-1), y.reshape(-1)
        return float(x @ y / (x.norm() * y.norm()))

    qa, ka, va = qkv(_hooked_input(metric, a))
    qb, kb, vb = qkv(_hooked_input(metric, b))
    score = (cos(attention(qa, kb, vb), attention(qa, ka, va)) +
             cos(attention(qb, ka, va), attention(qb, kb, vb))) / 2
    [d] = metric.distance_pairs([a], [b])
    assert d == pytest.approx(1 - score, rel=1e-4, abs=1e-7)
    assert 1e-3 < d < 1


def test_cached_and_uncached_results_are_identical(photos) -> None:
    pairs_a = [str(p) for p in photos[:4]] + [str(photos[0])]
    pairs_b = [str(p) for p in photos[4:8]] + [str(photos[7])]
    uncached = tiny(cache=False).distance_pairs(pairs_a, pairs_b)
    first = tiny().distance_pairs(pairs_a, pairs_b)  # computes and writes the cache
    metric = tiny()
    files = sorted(metric.cache_dir.rglob("*.safetensors"))
    assert len(files) == 8  # one file per distinct image
    calls = []
    extract = metric.scorer.extract
    metric.scorer.extract = lambda batch: calls.append(len(batch)) or extract(batch)
    second = metric.distance_pairs(pairs_a, pairs_b)  # all from the cache
    assert calls == []
    np.testing.assert_array_equal(uncached, first)
    np.testing.assert_array_equal(first, second)
    files[0].write_bytes(b"torn")  # a damaged cache file is recomputed, not trusted
    np.testing.assert_array_equal(metric.distance_pairs(pairs_a, pairs_b), first)
    assert sum(calls) == 1 and files[0].stat().st_size > 4
    feats = metric.features([str(photos[0])])[0]
    fresh = tiny(cache=False).features([str(photos[0])])[0]
    assert set(feats) == {"q", "k", "v", "o"} and feats["q"].dtype == torch.float32
    for name in feats:
        assert torch.equal(feats[name], fresh[name])


def test_one_network_pass_per_new_image(photos) -> None:
    metric = tiny()
    calls: list[int] = []
    extract = metric.scorer.extract
    metric.scorer.extract = lambda batch: calls.append(len(batch)) or extract(batch)
    query, gallery = str(photos[10]), [str(p) for p in photos[11:17]]
    metric.distance_pairs([query] * len(gallery), gallery)
    assert sum(calls) == 7  # 6 candidates + the query, each once
    metric.distance_pairs([query] * 3, [str(p) for p in photos[15:18]])
    assert sum(calls) == 8  # only photos[17] was new


def test_in_memory_images_and_files_agree(photos) -> None:
    from lookalike.embed.images import load_image
    from lookalike.embed.preprocess import draft_size

    metric = tiny(cache=False)
    img = load_image(photos[2], draft=draft_size([metric.config.preprocess]))  # as files are read
    arr = np.asarray(img)
    d_files = metric.distance_pairs([str(photos[2])], [str(photos[3])])
    d_mem = metric.distance_pairs([img], [str(photos[3])])
    d_arr = metric.distance_pairs([arr], [str(photos[3])])
    assert d_mem[0] == pytest.approx(d_files[0], abs=1e-12) and d_arr[0] == d_mem[0]
    assert image_key(img) == image_key(arr) != image_key(str(photos[2]))


def test_options_block_layer_step_prompt_similarity(photos) -> None:
    a, b = str(photos[0]), str(photos[1])
    base = float(tiny(cache=False).distance_pairs([a], [b])[0])
    for opts in ({"block": "mid"}, {"block": "down_blocks"}, {"step": 900}, {"seed": 1}):
        d = tiny(cache=False, **opts).distance_pairs([a, a], [b, a])
        assert d[1] == pytest.approx(0.0, abs=1e-12) and d[0] > 0 and d[0] != base, opts
    prompted = tiny(cache=False, prompt="a photo of a dog")
    feats = prompted.features([a])[0]
    assert feats["q"].shape[0] == 2  # [unconditional, prompt] rows, as classifier-free guidance builds
    assert prompted.distance_pairs([a], [b])[0] != base
    mse = tiny(cache=False, similarity="mse").distance_pairs([a, a], [b, a])
    assert mse[1] == 0.0 and mse[0] > 0
    with pytest.raises(UsageError, match="layer 5 does not exist"):
        tiny(layer=5)
    with pytest.raises(UsageError, match="block must be"):
        tiny(block="sideways")
    with pytest.raises(UsageError, match="equal-length"):
        tiny(cache=False).distance_pairs([a], [a, b])


def test_changing_a_setting_uses_another_cache() -> None:
    assert tiny().cache_dir != tiny(step=500).cache_dir
    assert tiny().cache_dir == tiny().cache_dir
