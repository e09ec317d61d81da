"""DreamSim metrics equal the reference implementation (dreamsim==0.2.1) on identical weights.

Real weights cannot be downloaded here, so every backbone and LoRA adapter gets seeded random
weights, written in the official file layouts (``*_pretrain.pth.tar`` with ``state_dict``/``proj``,
SynCLR's ``model`` dict, Meta's DINO/DINOv2 backbone files, peft adapter folders saved by peft's
``save_pretrained``). The same files go into the reference's ``cache_dir`` (so it skips its download)
and into our weights cache. Where the reference reaches for torch.hub (DINO, DINOv2), ``torch.hub.load``
is monkeypatched to build the upstream model class with the same random weights: for DINO the
reference's own copy of DINO's ``vision_transformer.vit_base``; for DINOv2 Meta's own
``dinov2.models.vision_transformer.vit_base`` (PyPI ``dinov2``, installed with ``--no-deps``), set up
as DINOv2's hubconf does. Both sides are fed the same decoded PIL images of 32 real photos; the
reference's distances come from its own ``PerceptualModel.forward`` over all pairs.
"""

from __future__ import annotations

import gc
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

dreamsim_model = pytest.importorskip("dreamsim.model", reason="reference dreamsim==0.2.1 not installed")

from lookalike.embed.backbones import fake_weights  # noqa: E402
from lookalike.embed.distance import pairwise  # noqa: E402
from lookalike.embed.images import load_image  # noqa: E402
from lookalike.embed.factory import create_metric  # noqa: E402
from lookalike.embed.registry import get_config  # noqa: E402

N_PHOTOS = 16  # 240 distances per variant: parity to 1e-5 and identical neighbour order
TOP_K = 10
TOL = 1e-5

#: our metric -> (reference dreamsim_type, use_patch_model)
VARIANTS = {
    "dreamsim": ("ensemble", False),
    "dreamsim-dino-vitb16": ("dino_vitb16", False),
    "dreamsim-dino-vitb16-patch": ("dino_vitb16", True),
    "dreamsim-dinov2-vitb14": ("dinov2_vitb14", False),
    "dreamsim-dinov2-vitb14-patch": ("dinov2_vitb14", True),
    "dreamsim-clip-vitb32": ("clip_vitb32", False),
    "dreamsim-openclip-vitb32": ("open_clip_vitb32", False),
    "dreamsim-synclr-vitb16": ("synclr_vitb16", False),
}
#: untuned baselines -> reference PerceptualModel(baseline=True) arguments
BASELINES = {
    "dino-vitb16": ("dino_vitb16", "cls", "16"),
    "clip-vitb32": ("clip_vitb32", "embedding", "32"),
    "openclip-vitb32": ("open_clip_vitb32", "embedding", "32"),
}
#: v0.2.0 release adapters as adapter_model.bin, the later ones as safetensors: both must load
BIN_ADAPTERS = {"dreamsim", "dreamsim-dino-vitb16", "dreamsim-clip-vitb32", "dreamsim-openclip-vitb32"}


# -- shared set-up (module scope: weights and photos are made once) --------------------------------


@pytest.fixture(scope="module")
def images(photos: list[Path]) -> list:
    assert len(photos) >= N_PHOTOS
    return [load_image(p) for p in photos[:N_PHOTOS]]


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("dreamsim")
    return {"home": base / "home", "ref": base / "ref_cache"}


@pytest.fixture
def home(shared: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> Path:
    """Our LOOKALIKE_HOME, shared by this module's tests (weights written once)."""
    monkeypatch.setenv("LOOKALIKE_HOME", str(shared["home"]))
    return shared["home"]


def _link(src: Path, dst: Path) -> None:
    if not dst.exists():
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.symlink_to(src, target_is_directory=src.is_dir())


def prepare_weights(name: str, shared: dict[str, Path]) -> None:
    """Random weights for ``name`` in our cache, and the same files where the reference looks."""
    config = get_config(name)
    weights = shared["home"] / "weights"
    fake_weights.write_metric_weights(config, weights, seed=0, safetensors=name not in BIN_ADAPTERS)
    for wf in config.weights:
        if wf.unpack:  # the release zip's members sit directly in the reference's cache_dir
            for item in (weights / wf.name.removesuffix(".zip")).iterdir():
                _link(item, shared["ref"] / item.name)
        else:  # torch.hub.load_state_dict_from_url keeps Meta's files in <hub dir>/checkpoints
            _link(weights / wf.name, shared["ref"] / "checkpoints" / wf.name)


def _fake_hub_load(ref_cache: Path):
    """``torch.hub.load`` for the two hub models DreamSim asks for, from the cached random files."""

    def load(repo: str, model: str, *args, **kwargs) -> torch.nn.Module:
        ckpt = ref_cache / "checkpoints"
        if repo == "facebookresearch/dino:main" and model == "dino_vitb16":
            from dreamsim.feature_extraction.vision_transformer import vit_base

            net = vit_base(patch_size=16, num_classes=0)  # DINO's hubconf dino_vitb16
            net.load_state_dict(torch.load(ckpt / "dino_vitbase16_pretrain.pth", weights_only=True))
            return net
        if repo == "facebookresearch/dinov2" and model == "dinov2_vitb14":
            dinov2_vit = pytest.importorskip("dinov2.models.vision_transformer",
                                             reason="pip install --no-deps dinov2==0.0.1.dev2")
            # DINOv2's hubconf: vit_base, img_size 518, layer scale 1.0, plain MLP, unchunked blocks
            net = dinov2_vit.vit_base(patch_size=14, img_size=518, init_values=1.0, ffn_layer="mlp",
                                      block_chunks=0)
            net.load_state_dict(torch.load(ckpt / "dinov2_vitb14_pretrain.pth", weights_only=True))
            return net
        raise AssertionError(f"unexpected torch.hub.load({repo!r}, {model!r})")

    return load


def reference_model(name: str, shared: dict[str, Path], monkeypatch: pytest.MonkeyPatch):
    """The reference PerceptualModel (peft-wrapped for tuned variants) on the random weights."""
    monkeypatch.setattr(torch.hub, "load", _fake_hub_load(shared["ref"]))
    monkeypatch.setattr(torch.hub, "set_dir", lambda d: None)
    cache = str(shared["ref"])
    if name in BASELINES:
        model_type, feat_type, stride = BASELINES[name]
        model = dreamsim_model.PerceptualModel(model_type=model_type, feat_type=feat_type, stride=stride,
                                               baseline=True, load_dir=cache, device="cpu")
        return model.eval().requires_grad_(False)
    kind, patch = VARIANTS[name]
    model, _ = dreamsim_model.dreamsim(pretrained=True, device="cpu", cache_dir=cache,
                                       dreamsim_type=kind, use_patch_model=patch)
    return model


def reference_preprocess(images: list) -> torch.Tensor:
    """The reference's preprocessing (from ``dreamsim.dreamsim``): resize 224 bicubic, ToTensor."""
    from torchvision import transforms

    t = transforms.Compose([transforms.Resize((224, 224), interpolation=transforms.InterpolationMode.BICUBIC),
                            transforms.ToTensor()])
    return torch.stack([t(im.convert("RGB")) for im in images])


def reference_distances(model, x: torch.Tensor, batch: int = 16) -> np.ndarray:
    """All-pairs distances by the reference's own ``forward`` (its pooling, normalisation and
    cosine), with each image embedded once: ``embed`` is served from the precomputed embeddings."""
    inner = model.base_model.model if hasattr(model, "base_model") else model
    with torch.inference_mode():
        emb = torch.cat([inner.embed(x[i:i + batch]) for i in range(0, len(x), batch)])
        n = len(x)
        a = torch.arange(n).repeat_interleave(n)
        b = torch.arange(n).repeat(n)
        inner.embed = lambda idx: emb[idx]
        try:
            d = inner(a, b)
        finally:
            del inner.embed
    return d.reshape(n, n).double().numpy()


def neighbours(d: np.ndarray, k: int = TOP_K) -> np.ndarray:
    d = d.copy()
    np.fill_diagonal(d, np.inf)
    return np.argsort(d, axis=1, kind="stable")[:, :k]


def check_parity(name: str, images: list, shared: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    prepare_weights(name, shared)
    ref = reference_model(name, shared, monkeypatch)
    d_ref = reference_distances(ref, reference_preprocess(images))
    del ref
    gc.collect()
    ours = create_metric(name, device="cpu")
    vecs = ours.embed(images, batch_size=16)
    del ours
    gc.collect()
    assert vecs.shape == (N_PHOTOS, get_config(name).dim)
    d_ours = pairwise(vecs.astype(np.float64), vecs.astype(np.float64), get_config(name).distance)
    assert np.isfinite(d_ref).all() and np.isfinite(d_ours).all()
    off = ~np.eye(N_PHOTOS, dtype=bool)
    assert d_ref[off].std() > 1e-3, "random weights gave degenerate distances"
    gap = np.abs(d_ref - d_ours).max()
    assert gap <= TOL, f"{name}: max |d_ref - d_ours| = {gap:.3g}"
    np.testing.assert_array_equal(neighbours(d_ref), neighbours(d_ours))


# -- tests -----------------------------------------------------------------------------------------


def test_catalog_covers_every_reference_variant() -> None:
    """Each dreamsim_type (and patch model) the reference offers has our metric, with its URL."""
    from dreamsim.config import dreamsim_args, dreamsim_weights

    offered = set(dreamsim_args["model_config"])
    ours = {kind + ("_patch" if patch else "") for kind, patch in VARIANTS.values()}
    assert ours == offered
    for name, (kind, patch) in VARIANTS.items():
        ref_type = kind + ("_patch" if patch else "")
        urls = {wf.url for wf in get_config(name).weights}
        assert dreamsim_weights[ref_type] in urls, name
        cfg = dreamsim_args["model_config"][ref_type]
        ours_branches = get_config(name).options["branches"]
        assert [b["backbone"] for b in ours_branches] == cfg["model_type"].split(",")
        assert [b["feature"] for b in ours_branches] == cfg["feat_type"].split(",")


@pytest.mark.parametrize("name", list(VARIANTS))
def test_variant_matches_reference(name: str, images: list, shared: dict[str, Path], home: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    check_parity(name, images, shared, monkeypatch)


@pytest.mark.parametrize("name", list(BASELINES))
def test_baseline_matches_reference(name: str, images: list, shared: dict[str, Path], home: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    check_parity(name, images, shared, monkeypatch)


def test_release_archive_loads_without_conversion(tmp_path: Path, images: list, home: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A zip in the release layout, unpacked as is, loads; the merged qkv weights are exactly
    W + (alpha / r) * B @ A read independently from the adapter and backbone files."""
    name = "dreamsim-clip-vitb32"
    config = get_config(name)
    archive_wf = next(wf for wf in config.weights if wf.unpack)
    staging = tmp_path / "staging"
    fake_weights.write_metric_weights(config, staging, seed=5, safetensors=False)
    adapter_json = staging / archive_wf.name.removesuffix(".zip") / "clip_vitb32_single_lora" / "adapter_config.json"
    legacy = json.loads(adapter_json.read_text())
    legacy.update(merge_weights=False, enable_lora=None)  # keys of the early peft that made the release
    adapter_json.write_text(json.dumps(legacy))
    zipped = fake_weights.zip_folder(staging / archive_wf.name.removesuffix(".zip"), tmp_path / archive_wf.name)
    fresh = tmp_path / "home"
    monkeypatch.setenv("LOOKALIKE_HOME", str(fresh))
    with zipfile.ZipFile(zipped) as zf:  # what the weights cache does with an unpack=True file
        zf.extractall(fresh / "weights" / archive_wf.name.removesuffix(".zip"))
    folder = fresh / "weights" / archive_wf.name.removesuffix(".zip")
    assert sorted(p.name for p in folder.iterdir()) == ["clip_vitb32_pretrain.pth.tar", "clip_vitb32_single_lora"]

    metric = create_metric(name, device="cpu")
    adapter = folder / "clip_vitb32_single_lora"
    cfg = json.loads((adapter / "adapter_config.json").read_text())
    lora = torch.load(adapter / "adapter_model.bin", weights_only=True)
    base = torch.load(folder / "clip_vitb32_pretrain.pth.tar", weights_only=True)["state_dict"]
    scale = cfg["lora_alpha"] / cfg["r"]
    blocks = metric.module.extractor_list[0].model.blocks
    for j, block in enumerate(blocks):
        key = f"base_model.model.extractor_list.0.model.blocks.{j}.attn.qkv"
        expected = base[f"blocks.{j}.attn.qkv.weight"] + scale * lora[key + ".lora_B.weight"] @ lora[key + ".lora_A.weight"]
        torch.testing.assert_close(block.attn.qkv.weight, expected, rtol=0, atol=1e-6)
        assert not torch.equal(block.attn.qkv.weight, base[f"blocks.{j}.attn.qkv.weight"])

    tuned = metric.embed(images[:4])
    untuned = create_metric("clip-vitb32", device="cpu").embed(images[:4])
    assert np.isfinite(tuned).all()
    assert np.abs(tuned - untuned).max() > 1e-3  # the adapter changes the metric


def test_broken_adapter_is_refused(tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An adapter whose keys do not fit must fail loudly, never load as a silent no-op."""
    from lookalike.errors import WeightsCorruptError

    name = "dreamsim-clip-vitb32"
    config = get_config(name)
    monkeypatch.setenv("LOOKALIKE_HOME", str(tmp_path))
    fake_weights.write_metric_weights(config, tmp_path / "weights", seed=1)
    adapter = tmp_path / "weights" / "dreamsim_clip_vitb32_checkpoint" / "clip_vitb32_single_lora"
    fake_weights.write_lora(adapter, n_branches=2, seed=1)  # an ensemble-shaped adapter: keys of branch 1 do not exist
    with pytest.raises(WeightsCorruptError):
        create_metric(name, device="cpu")


def test_embed_offline_without_weights_exits_2(cli, photos: list[Path], tmp_path: Path) -> None:
    env = {"LOOKALIKE_OFFLINE": "1", "LOOKALIKE_HOME": str(tmp_path)}
    proc = cli("embed", str(photos[0]), "--metric", "dreamsim", env=env)
    assert proc.returncode == 2, proc.stderr
    assert "lookalike weights" in proc.stderr



def test_int8_keeps_neighbours(images: list, shared: dict[str, Path], home: Path) -> None:
    """The catalog offers int8 for DreamSim metrics: dynamic quantisation keeps the top-10 lists
    (>= 0.98 shared neighbours on the 32 photos; all variants are measured in benchmarks/)."""
    name = "dreamsim-clip-vitb32"
    assert get_config(name).options["int8"]
    prepare_weights(name, shared)
    fp32 = create_metric(name, device="cpu").embed(images, batch_size=16)
    int8 = create_metric(name, device="cpu", precision="int8").embed(images, batch_size=16)
    n32 = neighbours(pairwise(fp32, fp32, "cosine"))
    n8 = neighbours(pairwise(int8, int8, "cosine"))
    shared_fraction = np.mean([len(set(a) & set(b)) / TOP_K for a, b in zip(n32, n8)])
    assert np.abs(fp32 - int8).max() > 0  # quantisation really happened
    assert shared_fraction >= 0.98
