"""DiffSim (Song, Liu, Shou, ICCV 2025): Stable Diffusion self-attention features as a pairwise metric.

Per image (what :meth:`DiffSim.extract` returns and the pairwise metric caches): the image is
squashed to 512x512 (Lanczos) and scaled to [-1, 1]; the VAE posterior is sampled and scaled by the
VAE's ``scaling_factor``; noise is added at the timestep ``timesteps[step]`` of SD's PNDM scheduler
set to 1000 steps (``step=600`` -> t = 401), as the reference's ``target_step`` does; the U-Net runs
with the prompt's CLIP embedding. A hook on ``attn1`` (self-attention) of the last transformer block
of the chosen block/layer takes the queries, keys and values it computes — ``block="up"`` indexes
``unet.up_blocks[1:]``, ``"down"`` ``unet.down_blocks[:-1]`` (the blocks with attention), ``"mid"``
the middle block — plus the self-attention output ``O = softmax(Q K^T / sqrt(d)) V``, then stops
the U-Net (nothing after that layer is needed).

Aligned Attention Score of images A and B::

    s(A, B) = ( cos(attn(Q_A, K_B, V_B), O_A) + cos(attn(Q_B, K_A, V_A), O_B) ) / 2

cosine over all elements (every head and token). The distance is ``1 - s`` (0 for an image and
itself, at most 2); with ``similarity="mse"`` the distance is the mean of the two mean squared
errors instead. Defaults follow the reference's published commands (README, ``*_main.sh``):
``block="up"``, ``layer=0``, ``step=600``, ``seed=2334``, cosine; the prompt is empty by default
(the NIGHTS script uses "An image of a <category>", ``argprocess.py`` "High quality image").

Where we differ from ``showlab/DiffSim`` on purpose: the reference draws the VAE sample and the noise
of A and B from one shared CUDA generator stream, so a pair's score depends on the order of the calls
and ``s(A, A) != 1``; here every image gets the same seeded CPU draws, which makes the features a
function of the image alone (cacheable, device independent, ``s(A, A) = 1``). Like the reference
(``guidance_scale=7.5``), a non-empty prompt runs the U-Net on ``[unconditional, prompt]`` rows and
the features hold both; with the empty prompt both rows are identical and one is run.
fp16 on CUDA, fp32 on CPU; scores are computed in float32 with float64 cosine sums.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from lookalike.embed.config import MetricConfig
from lookalike.embed.options import DiffSimMetricOptions, DiffSimOptions, typed_options
from lookalike.errors import UsageError, WeightsCorruptError

log = logging.getLogger(__name__)

Features = dict[str, torch.Tensor]
BLOCKS = ("up", "down", "mid")
SIMILARITIES = ("cosine", "mse")
FEATURE_NAMES = ("q", "k", "v", "o")


def scorer_options(out: DiffSimOptions) -> DiffSimOptions:
    """The scorer settings of ``out``, checked; ``block`` without a ``_blocks`` suffix."""
    block = out.block.removesuffix("_blocks").removesuffix("_block")
    if block not in BLOCKS:
        raise UsageError(f"DiffSim block must be one of {', '.join(BLOCKS)}, got {out.block!r}")
    if out.similarity not in SIMILARITIES:
        raise UsageError(f"DiffSim similarity must be cosine or mse, got {out.similarity!r}")
    if out.batch_size < 1:
        raise UsageError("DiffSim batch_size must be >= 1")
    return DiffSimOptions(block, out.layer, out.step, out.seed, out.prompt, out.similarity, out.batch_size)


def target_attention(unet: nn.Module, block: str, layer: int) -> nn.Module:
    """The self-attention ``attn1`` whose Q, K, V DiffSim compares (see the module docstring)."""
    if block == "mid":
        holder = unet.mid_block
    else:
        blocks = list(unet.up_blocks)[1:] if block == "up" else list(unet.down_blocks)[:-1]
        blocks = [b for b in blocks if hasattr(b, "attentions")]
        if not 0 <= layer < len(blocks):
            raise UsageError(f"DiffSim layer {layer} does not exist in the {block} blocks "
                             f"(0..{len(blocks) - 1})")
        holder = blocks[layer]
    return holder.attentions[-1].transformer_blocks[-1].attn1


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """``(B, N, heads * d)`` -> ``(B, heads, N, d)``."""
    b, n, c = x.shape
    return x.view(b, n, heads, c // heads).transpose(1, 2)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``softmax(q k^T / sqrt(d)) v`` per head (the attention of ``attn1``, without its output proj)."""
    return nn.functional.scaled_dot_product_attention(q, k, v)


def _cosine(x: torch.Tensor, y: torch.Tensor) -> float:
    x, y = x.reshape(-1).double(), y.reshape(-1).double()
    return float(x @ y / (x.norm() * y.norm()).clamp_min(1e-12))


def aligned_attention_score(fa: Features, fb: Features, similarity: str = "cosine",
                            device: torch.device | str = "cpu") -> float:
    """DiffSim's score of two images' features: symmetric, 1 for an image and itself (cosine).

    With ``similarity="mse"`` the mean of the two mean squared errors (lower = more alike).
    """
    qa, ka, va, oa = (fa[n].to(device) for n in FEATURE_NAMES)
    qb, kb, vb, ob = (fb[n].to(device) for n in FEATURE_NAMES)
    if qa.shape != qb.shape:
        raise ValueError(f"DiffSim features of different shapes {tuple(qa.shape)} and {tuple(qb.shape)}")
    a_on_b, b_on_a = attend(qa, kb, vb), attend(qb, ka, va)
    if similarity == "mse":
        return float((nn.functional.mse_loss(a_on_b.float(), oa.float())
                      + nn.functional.mse_loss(b_on_a.float(), ob.float())) / 2)
    return (_cosine(a_on_b, oa) + _cosine(b_on_a, ob)) / 2


def _cast(model: nn.Module, device: torch.device, dtype: torch.dtype) -> nn.Module:
    """Move and cast (``nn.Module.half``: diffusers' ``.to(dtype)`` warns about fp32 modules SD lacks)."""
    model = model.to(device).eval()
    return model.half() if dtype == torch.float16 else model.float()


class _Captured(Exception):
    """Raised by the hook once Q, K, V are taken: the rest of the U-Net is not needed."""


class DiffSim:
    """Stable Diffusion parts + DiffSim settings: uint8 images in, per-image attention features out."""

    def __init__(self, vae: nn.Module, unet: nn.Module, prompt_embeds: torch.Tensor,
                 scheduler: Any, opts: DiffSimOptions, device: torch.device, dtype: torch.dtype) -> None:
        self.vae = _cast(vae, device, dtype)
        self.unet = _cast(unet, device, dtype)
        self.prompt_embeds = prompt_embeds.to(device=device, dtype=dtype)  # (rows, T, C)
        self.scheduler = scheduler
        self.opts = opts
        self.device = device
        self.dtype = dtype
        self.attention = target_attention(self.unet, opts.block, opts.layer)
        scheduler.set_timesteps(scheduler.config.num_train_timesteps)
        if not 0 <= opts.step < len(scheduler.timesteps):
            raise UsageError(f"DiffSim step must be in 0..{len(scheduler.timesteps) - 1}, got {opts.step}")
        self.timestep = scheduler.timesteps[opts.step].reshape(1)

    @property
    def feature_dtype(self) -> str:
        return str(self.dtype).removeprefix("torch.")

    def distance(self, fa: Features, fb: Features) -> float:
        """1 - score (cosine), or the mean squared error (mse)."""
        s = aligned_attention_score(fa, fb, self.opts.similarity, self.device)
        return s if self.opts.similarity == "mse" else 1.0 - s

    def _draws(self, shape: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """The VAE-posterior draw and the noise, identical for every image (seeded CPU generator)."""
        gen = torch.Generator("cpu").manual_seed(self.opts.seed)
        eps = torch.randn(tuple(shape), generator=gen)
        noise = torch.randn(tuple(shape), generator=gen)
        return eps.to(self.device, self.dtype), noise.to(self.device, self.dtype)

    @torch.inference_mode()
    def extract(self, batch: np.ndarray) -> list[Features]:
        """``(N, S, S, 3)`` uint8 images -> one ``{"q", "k", "v", "o"}`` dict per image (CPU tensors,
        each ``(rows, heads, tokens, head_dim)``)."""
        n = len(batch)
        x = torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2)
        x = (x.to(self.device, torch.float32) / 255.0 * 2.0 - 1.0).to(self.dtype)
        dist = self.vae.encode(x).latent_dist
        eps, noise = self._draws((1, *dist.mean.shape[1:]))
        latents = (dist.mean + dist.std * eps) * self.vae.config.scaling_factor
        t = self.timestep.to(self.device)
        noisy = self.scheduler.add_noise(latents, noise.expand_as(latents), t)
        rows = len(self.prompt_embeds)
        sample = self.scheduler.scale_model_input(torch.cat([noisy] * rows), t)
        context = self.prompt_embeds.repeat_interleave(n, dim=0)  # [uncond x n, prompt x n]
        got: dict[str, torch.Tensor] = {}

        def hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
            h = args[0] if args else kwargs["hidden_states"]
            if module.group_norm is not None:
                h = module.group_norm(h.transpose(1, 2)).transpose(1, 2)
            for name, proj in (("q", module.to_q), ("k", module.to_k), ("v", module.to_v)):
                got[name] = split_heads(proj(h), module.heads)
            raise _Captured

        handle = self.attention.register_forward_pre_hook(hook, with_kwargs=True)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                self.unet(sample, t.expand(len(sample)), encoder_hidden_states=context)
        except _Captured:
            pass
        finally:
            handle.remove()
        if not got:
            raise RuntimeError("the DiffSim hook did not run (the target attention was skipped)")
        out = []
        for i in range(n):
            idx = [r * n + i for r in range(rows)]
            q, k, v = (got[name][idx].contiguous() for name in ("q", "k", "v"))
            feats = {"q": q, "k": k, "v": v, "o": attend(q, k, v)}
            out.append({name: t_.cpu() for name, t_ in feats.items()})
        return out


# -- building ------------------------------------------------------------------------------------

_DEPRECATED_ATTN = re.compile(r"\.(query|key|value|proj_attn)\.(weight|bias)$")
_NEW_NAMES = {"query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0"}


def load_weights(model: nn.Module, path: str, what: str) -> None:
    """Load an official diffusers ``*.safetensors`` (old VAE attention names are renamed)."""
    from safetensors.torch import load_file

    try:
        state = load_file(path)
    except Exception as exc:  # safetensors raises its own error types
        raise WeightsCorruptError(f"{what}: cannot read {path}: {exc}") from exc
    wanted = set(model.state_dict())
    for key in list(state):
        m = _DEPRECATED_ATTN.search(key)
        if m and key not in wanted:
            new = key[: m.start()] + f".{_NEW_NAMES[m.group(1)]}.{m.group(2)}"
            value = state.pop(key)
            state[new] = value.reshape(value.shape[0], -1) if value.ndim > 2 else value
    if hasattr(model, "official_state"):
        state = model.official_state(state)
    missing, unexpected = sorted(wanted - set(state)), sorted(set(state) - wanted)
    if missing or unexpected:
        raise WeightsCorruptError(f"{what}: {path} does not fit the model (missing {missing[:3]}, "
                                  f"unexpected {unexpected[:3]})")
    model.load_state_dict(state, strict=True, assign=True)


def _models(o: DiffSimMetricOptions) -> tuple[nn.Module, nn.Module, nn.Module]:
    from diffusers import AutoencoderKL, UNet2DConditionModel

    from lookalike.embed.backbones.clip_text import ClipTextEncoder

    return (AutoencoderKL(**o.vae), UNet2DConditionModel(**o.unet), ClipTextEncoder(**o.text_encoder))


def _tokenizer(config: MetricConfig, files: dict[str, str]) -> Any:
    from lookalike.embed.backbones.clip_text import BOS, EOS, ClipTokenizer

    if "vocab" in files:
        return ClipTokenizer.from_files(files["vocab"], files["merges"])
    if typed_options(config).tokenizer == "open_clip":  # test metrics: CLIP's vocabulary, bundled
        from open_clip.tokenizer import SimpleTokenizer

        simple = SimpleTokenizer()
        merges = sorted(simple.bpe_ranks, key=simple.bpe_ranks.__getitem__)
        rename = {"<start_of_text>": BOS, "<end_of_text>": EOS}
        return ClipTokenizer({rename.get(t, t): i for t, i in simple.encoder.items()}, merges)
    raise UsageError(f"{config.name} has no tokenizer files; only the empty prompt works")


def _sharpen(unet: nn.Module, gain: float) -> None:
    """Scale every attention's query and key weights (random test models: less uniform attention)."""
    if gain != 1.0:
        with torch.no_grad():
            for name, param in unet.named_parameters():
                if name.endswith(("attn1.to_q.weight", "attn1.to_k.weight")):
                    param.mul_(gain)


def prompt_embeddings(text_encoder: nn.Module, tokenizer: Any, prompt: str) -> torch.Tensor:
    """``(rows, 77, C)``: ``[""]`` for the empty prompt, else ``["", prompt]`` (classifier-free
    guidance rows, as the reference's ``guidance_scale=7.5`` makes diffusers build them)."""
    from lookalike.embed.backbones.clip_text import CONTEXT

    text_encoder = text_encoder.float().eval()
    with torch.inference_mode():
        if tokenizer is None:
            vocab = text_encoder.text_model.embeddings.token_embedding.num_embeddings
            ids = torch.full((1, CONTEXT), vocab - 1, dtype=torch.int64)  # BOS then EOS padding
            ids[0, 0] = vocab - 2
        else:
            ids = tokenizer([""] + ([prompt] if prompt else []))
        return text_encoder(ids)


def build(config: MetricConfig, device: torch.device, trainable: bool = False) -> DiffSim:
    """The DiffSim scorer of a metric config (official weights, or seeded random ones for tests).

    DiffSim is training-free: it compares the attention features of a frozen Stable Diffusion and
    has no network to tune, so ``trainable=True`` is refused (:class:`UsageError`)."""
    from diffusers import PNDMScheduler

    from lookalike.embed.weights import resolve

    if trainable:
        raise UsageError(f"{config.name} is a DiffSim metric: it scores pairs with a frozen Stable "
                         "Diffusion's attention features and has no trainable network (tune an "
                         "embedding metric instead, e.g. dreamsim or lpips-alex)")

    o: DiffSimMetricOptions = typed_options(config)
    opts = scorer_options(o)
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    files = {role: str(resolve(wf, config.name)) for role, name in o.files.items()
             for wf in config.weights if wf.name == name}
    if o.random_init:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(o.init_seed)
            vae, unet, text = _models(o)
        _sharpen(unet, float(o.qk_gain))
    else:
        with torch.device("meta"):
            vae, unet, text = _models(o)
        for role, model in (("vae", vae), ("unet", unet), ("text_encoder", text)):
            load_weights(model, files[role], f"{config.name} {role}")
    tokenizer = _tokenizer(config, files) if opts.prompt else None
    embeds = prompt_embeddings(text, tokenizer, opts.prompt)
    del text
    scheduler = PNDMScheduler(**o.scheduler)
    return DiffSim(vae, unet, embeds, scheduler, opts, device, dtype)
