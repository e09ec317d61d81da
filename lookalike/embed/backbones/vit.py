"""ViT-B backbones as DreamSim 0.2.1 runs them, built with timm, loaded from the official files.

Backbones (names as in DreamSim): ``dino_vitb16``, ``dinov2_vitb14``, ``clip_vitb16``,
``clip_vitb32``, ``open_clip_vitb16``, ``open_clip_vitb32``, ``synclr_vitb16``.

File layouts accepted, exactly as the reference reads them:

* ``dino``: Meta's backbone state dict (``dino_vitbase16_pretrain.pth``, what torch.hub loads).
* ``dinov2``: Meta's backbone state dict (``dinov2_vitb14_pretrain.pth``); its 37x37 position
  grid is resampled to 16x16 once, with DINOv2's own formula (bicubic, scale factor
  ``(16 + 0.1) / 37``), since DreamSim always feeds 224x224 images.
* ``dreamsim-clip``: DreamSim's ``*_pretrain.pth.tar``: ``{"state_dict": {...DINO ViT keys...,
  "pos_drop.*" (CLIP's ln_pre), "proj"}}``.
* ``synclr``: ``{"model": {"module.visual.<DINO ViT key>": ...}}``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
from torch import nn

from lookalike.embed.backbones.common import load_state_dict_file
from lookalike.errors import WeightsCorruptError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class BackboneSpec:
    """How DreamSim builds one backbone: a ViT-B (768 wide, 12 blocks, 12 heads)."""

    patch: int
    layout: str  # "dino" | "dinov2" | "dreamsim-clip" | "synclr"
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    ln_eps: float = 1e-6
    act: str = "gelu"  # "gelu" (exact erf) or "quick_gelu" (OpenAI CLIP)
    pre_norm: bool = False  # CLIP's ln_pre (DreamSim stores it as ``pos_drop``)
    layer_scale: bool = False  # DINOv2
    pos_grid: int = 14  # side of the position-embedding grid stored in the file
    proj_dim: int = 0  # CLIP's image projection (``proj``), 0 if none


SPECS: dict[str, BackboneSpec] = {
    "dino_vitb16": BackboneSpec(16, "dino", IMAGENET_MEAN, IMAGENET_STD),
    "synclr_vitb16": BackboneSpec(16, "synclr", IMAGENET_MEAN, IMAGENET_STD),
    "dinov2_vitb14": BackboneSpec(14, "dinov2", IMAGENET_MEAN, IMAGENET_STD, layer_scale=True,
                                  pos_grid=37),
    "clip_vitb16": BackboneSpec(16, "dreamsim-clip", CLIP_MEAN, CLIP_STD, 1e-5, "quick_gelu", True,
                                proj_dim=512),
    "clip_vitb32": BackboneSpec(32, "dreamsim-clip", CLIP_MEAN, CLIP_STD, 1e-5, "quick_gelu", True,
                                pos_grid=7, proj_dim=512),
    "open_clip_vitb16": BackboneSpec(16, "dreamsim-clip", CLIP_MEAN, CLIP_STD, 1e-5, "gelu", True,
                                     proj_dim=512),
    "open_clip_vitb32": BackboneSpec(32, "dreamsim-clip", CLIP_MEAN, CLIP_STD, 1e-5, "gelu", True,
                                     pos_grid=7, proj_dim=512),
}

WIDTH, DEPTH, HEADS = 768, 12, 12


def spec(backbone: str) -> BackboneSpec:
    try:
        return SPECS[backbone]
    except KeyError:
        raise ValueError(f"unknown backbone {backbone!r} (known: {', '.join(SPECS)})") from None


def create_vit(backbone: str, img_size: int = 224) -> nn.Module:
    """An uninitialised timm ViT-B with ``backbone``'s architecture, for ``img_size`` inputs."""
    from timm.layers import QuickGELU
    from timm.models.vision_transformer import VisionTransformer

    s = spec(backbone)
    act = QuickGELU if s.act == "quick_gelu" else nn.GELU
    vit = VisionTransformer(img_size=img_size, patch_size=s.patch, embed_dim=WIDTH, depth=DEPTH,
                            num_heads=HEADS, qkv_bias=True, num_classes=0, global_pool="token",
                            init_values=1.0 if s.layer_scale else None,
                            norm_layer=partial(nn.LayerNorm, eps=s.ln_eps), act_layer=act,
                            weight_init="skip")
    if s.pre_norm:  # set by hand: timm's pre_norm=True would also drop the patch-embedding bias
        vit.norm_pre = nn.LayerNorm(WIDTH, eps=s.ln_eps)
    return vit


def read_state_dict(backbone: str, path: str | Path) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
    """Read an official file; returns (state dict in DINO ViT key names, CLIP ``proj`` or None)."""
    s = spec(backbone)
    raw = load_state_dict_file(str(path))
    proj = None
    if s.layout == "dreamsim-clip":
        if not isinstance(raw, dict) or "state_dict" not in raw:
            raise WeightsCorruptError(f"{path}: expected DreamSim's {{'state_dict': ...}} layout")
        sd = dict(raw["state_dict"])
        proj = sd.pop("proj", None)
        if proj is None:
            raise WeightsCorruptError(f"{path}: no 'proj' (CLIP image projection) in state_dict")
    elif s.layout == "synclr":
        if not isinstance(raw, dict) or "model" not in raw:
            raise WeightsCorruptError(f"{path}: expected SynCLR's {{'model': ...}} layout")
        sd = {k[len("module.visual."):]: v for k, v in raw["model"].items()}
    else:
        sd = dict(raw)
        sd.pop("mask_token", None)  # DINOv2's masked-token embedding, unused at inference
    return sd, proj


def dinov2_pos_embed(pos_embed: torch.Tensor, grid: int) -> torch.Tensor:
    """Resample DINOv2's position embeddings to a ``grid`` x ``grid`` patch grid, as its code does
    (``interpolate_offset=0.1``, bicubic, no antialias, on float32)."""
    n = pos_embed.shape[1] - 1
    side = int(math.sqrt(n))
    if side * side != n:
        raise WeightsCorruptError(f"DINOv2 pos_embed has {n} patch positions, not a square grid")
    if side == grid:
        return pos_embed
    dtype = pos_embed.dtype
    pos = pos_embed.float()
    dim = pos.shape[-1]
    scale = (float(grid + 0.1) / side, float(grid + 0.1) / side)
    patch = nn.functional.interpolate(pos[:, 1:].reshape(1, side, side, dim).permute(0, 3, 1, 2),
                                      scale_factor=scale, mode="bicubic", antialias=False)
    if patch.shape[-2:] != (grid, grid):
        raise WeightsCorruptError(f"DINOv2 pos_embed resampled to {tuple(patch.shape[-2:])}")
    patch = patch.permute(0, 2, 3, 1).reshape(1, grid * grid, dim)
    return torch.cat((pos[:, :1], patch), dim=1).to(dtype)


def to_timm(backbone: str, sd: dict[str, torch.Tensor], img_size: int = 224) -> dict[str, torch.Tensor]:
    """DINO ViT key names -> timm's (``pos_drop`` holds CLIP's ln_pre: timm's ``norm_pre``)."""
    s = spec(backbone)
    out = {("norm_pre." + k[len("pos_drop."):] if k.startswith("pos_drop.") else k): v
           for k, v in sd.items()}
    if s.layout == "dinov2" and "pos_embed" in out:
        out["pos_embed"] = dinov2_pos_embed(out["pos_embed"], img_size // s.patch)
    return out


def load_vit(backbone: str, path: str | Path, img_size: int = 224) -> tuple[nn.Module, torch.Tensor | None]:
    """Build ``backbone`` and load its official file strictly; returns (ViT, proj or None)."""
    sd, proj = read_state_dict(backbone, path)
    vit = create_vit(backbone, img_size)
    try:
        vit.load_state_dict(to_timm(backbone, sd, img_size), strict=True)
    except RuntimeError as exc:
        raise WeightsCorruptError(f"{path}: not a {backbone} checkpoint: {exc}") from exc
    return vit.eval(), proj
