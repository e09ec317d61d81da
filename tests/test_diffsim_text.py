"""SD 1.5's prompt encoder without transformers equals transformers' CLIPTokenizer / CLIPTextModel,
and official-layout weights files (old VAE attention names included) load into the diffusers models."""

from __future__ import annotations

import json

import pytest
import torch

pytest.importorskip("diffusers")

from lookalike.embed.backbones.clip_text import BOS, EOS, ClipTextEncoder, ClipTokenizer  # noqa: E402
from lookalike.embed.backbones.diffsim import load_weights  # noqa: E402
from lookalike.errors import WeightsCorruptError  # noqa: E402

PROMPTS = ["", "High quality image", "An image of a Golden-Retriever, 3 dogs!!", "  café  naïve\tCAFÉ ",
           "don't we'll it's", "photo " * 90, "ünïcödé 東京 🙂 <tag> x@y.com 12,345.6"]


@pytest.fixture(scope="module")
def vocab_files(tmp_path_factory):
    """CLIP's vocabulary (the one SD 1.5's tokenizer folder holds) as vocab.json + merges.txt."""
    open_clip = pytest.importorskip("open_clip")
    simple = open_clip.tokenizer.SimpleTokenizer()
    rename = {"<start_of_text>": BOS, "<end_of_text>": EOS}
    folder = tmp_path_factory.mktemp("tok")
    vocab = {rename.get(t, t): i for t, i in simple.encoder.items()}
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    merges = sorted(simple.bpe_ranks, key=simple.bpe_ranks.__getitem__)
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n",
                                       encoding="utf-8")
    return folder / "vocab.json", folder / "merges.txt"


def test_tokenizer_equals_transformers(vocab_files) -> None:
    transformers = pytest.importorskip("transformers")
    ours = ClipTokenizer.from_files(*vocab_files)
    ref = transformers.CLIPTokenizer(str(vocab_files[0]), str(vocab_files[1]), pad_token=EOS)
    want = ref(PROMPTS, padding="max_length", max_length=77, truncation=True, return_tensors="pt")
    got = ours(PROMPTS)
    assert got.shape == (len(PROMPTS), 77)
    for text, g, w in zip(PROMPTS, got, want["input_ids"], strict=True):
        assert g.tolist() == w.tolist(), text
    assert got[0, :3].tolist() == [49406, 49407, 49407]  # the empty prompt: BOS, then EOS padding


def test_text_encoder_equals_transformers_clip_text_model() -> None:
    transformers = pytest.importorskip("transformers")
    cfg = transformers.CLIPTextConfig(vocab_size=49408, hidden_size=32, intermediate_size=64,
                                      num_hidden_layers=3, num_attention_heads=4,
                                      max_position_embeddings=77, hidden_act="quick_gelu")
    torch.manual_seed(0)
    ref = transformers.CLIPTextModel(cfg).eval()
    ours = ClipTextEncoder(vocab_size=49408, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                           num_attention_heads=4).eval()
    ours.load_official(ref.state_dict())
    ids = torch.randint(0, 49406, (3, 77))
    ids[:, 0] = 49406
    ids[1, 5:] = 49407
    with torch.inference_mode():
        want = ref(input_ids=ids).last_hidden_state
        got = ours(ids)
    assert torch.allclose(got, want, atol=1e-5), (got - want).abs().max()


def test_official_layout_weights_load_and_bad_files_are_refused(tmp_path) -> None:
    from diffusers import AutoencoderKL
    from safetensors.torch import save_file

    cfg = dict(block_out_channels=[8, 16], down_block_types=["DownEncoderBlock2D"] * 2,
               up_block_types=["UpDecoderBlock2D"] * 2, layers_per_block=1, norm_num_groups=4)
    torch.manual_seed(1)
    vae = AutoencoderKL(**cfg).eval()
    old = {}
    for key, value in vae.state_dict().items():  # the names SD 1.5's vae file uses
        for new, was in ((".to_q.", ".query."), (".to_k.", ".key."), (".to_v.", ".value."),
                         (".to_out.0.", ".proj_attn.")):
            if "attentions" in key and new in key:
                key = key.replace(new, was)
        old[key] = value.clone()
    assert any(".proj_attn." in k for k in old)
    save_file(old, tmp_path / "vae.safetensors")
    with torch.device("meta"):
        loaded = AutoencoderKL(**cfg)
    load_weights(loaded, str(tmp_path / "vae.safetensors"), "test vae")
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.inference_mode():
        assert torch.equal(loaded.eval().encode(x).latent_dist.mean, vae.encode(x).latent_dist.mean)

    save_file({k: v for k, v in old.items() if "decoder" not in k}, tmp_path / "partial.safetensors")
    with torch.device("meta"):
        other = AutoencoderKL(**cfg)
    with pytest.raises(WeightsCorruptError, match="does not fit the model"):
        load_weights(other, str(tmp_path / "partial.safetensors"), "test vae")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(WeightsCorruptError, match="cannot read"):
        load_weights(other, str(tmp_path / "junk.safetensors"), "test vae")


def test_a_metric_built_from_weights_files(tmp_path, vocab_files, photos) -> None:
    """The diffsim-sd15 path (weights from the cache, meta-device models, tokenizer files), on tiny
    random weights in the official file layouts."""
    import dataclasses
    import shutil

    from diffusers import AutoencoderKL, UNet2DConditionModel
    from safetensors.torch import save_file

    from lookalike.embed.config import WeightFile
    from lookalike.embed.factory import pairwise_metric
    from lookalike.embed.registry import get_config
    from lookalike.paths import weights_dir

    base = get_config("tiny-diffsim")
    o = base.options
    torch.manual_seed(3)
    models = {"vae": AutoencoderKL(**o["vae"]), "unet": UNet2DConditionModel(**o["unet"]),
              "text_encoder": ClipTextEncoder(**o["text_encoder"])}
    weights_dir().mkdir(parents=True)
    files = {}
    for role, model in models.items():
        files[role] = f"tiny-{role}.safetensors"
        state = model.state_dict()
        if role == "text_encoder":  # as transformers 5 names them
            state = {k.removeprefix("text_model."): v for k, v in state.items()}
        save_file({k: v.contiguous() for k, v in state.items()}, weights_dir() / files[role])
    for role, src in (("vocab", vocab_files[0]), ("merges", vocab_files[1])):
        files[role] = f"tiny-{src.name}"
        shutil.copy(src, weights_dir() / files[role])
    options = {k: v for k, v in o.items() if k not in ("random_init", "qk_gain", "tokenizer")}
    config = dataclasses.replace(base, name="tiny-diffsim-files", weights=tuple(
        WeightFile(name=n) for n in files.values()), options={**options, "files": files,
                                                              "prompt": "a photo"})
    metric = pairwise_metric(config, device="cpu")
    for role in ("vae", "unet"):
        got = getattr(metric.scorer, role).state_dict()
        assert all(torch.equal(got[k], v) for k, v in models[role].state_dict().items()), role
    tok = ClipTokenizer.from_files(*vocab_files)
    with torch.inference_mode():
        want = models["text_encoder"].eval()(tok(["", "a photo"]))
    assert torch.allclose(metric.scorer.prompt_embeds, want)
    a, b = str(photos[0]), str(photos[1])
    d = metric.distance_pairs([a, a], [a, b])
    assert d[0] == pytest.approx(0.0, abs=1e-12) and d[1] > 0
