"""DreamSim (ensemble and single-branch) and its untuned baselines, equal to dreamsim 0.2.1.

A metric's ``options``::

    {"branches": [{"backbone": "dino_vitb16", "feature": "cls",
                   "weights": "<WeightFile name>", "member": "<file inside an unpacked archive>"}],
     "lora": {"weights": "<archive WeightFile name>", "member": "ensemble_lora"},   # absent: untuned
     "center": true,                                # DreamSim's normalize_embeds
     "int8": true}       # int8 dynamic quantisation keeps >= 0.98 top-10 agreement with fp32

What each branch emits (as ``dreamsim.model.PerceptualModel`` does):

* ``cls``: the CLS token leaving block 11 (before the final LayerNorm);
* ``embedding``: the final-LayerNorm CLS token times CLIP's ``proj`` (512-d);
* ``cls_patch``: all tokens leaving block 11; the vector is then
  ``[cls, mean(patch tokens)]`` of the per-token centred, unit-norm tokens (1536-d).

Branch features are concatenated; ``center`` subtracts each vector's mean and divides by its norm.
The LoRA adapter folders are read by peft unchanged, then merged into the qkv weights.

``build(config, trainable=True)``: with a LoRA adapter, the adapter stays unmerged (a peft
``PeftModel`` in training mode, LoRA dropout active) and only its LoRA matrices require grad, as
DreamSim's ``training/train.py`` trains; in eval mode it gives the merged network's vectors (to
float rounding, ~1e-6). Without one (the untuned baselines) every ViT weight trains (full
fine-tuning); CLIP's ``proj`` stays a fixed buffer. The ViTs have no dropout or BatchNorm.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lookalike.embed.backbones.common import Normalize, set_trainable
from lookalike.embed.backbones.vit import load_vit, spec
from lookalike.embed.config import MetricConfig, WeightFile
from lookalike.embed.options import DreamSimOptions, typed_options
from lookalike.embed.weights import resolve
from lookalike.errors import WeightsCorruptError

log = logging.getLogger(__name__)

FEATURES = ("cls", "embedding", "cls_patch")


class Branch(nn.Module):
    """Normalise, run one ViT, take DreamSim's feature. ``.model`` keeps the name peft keys use."""

    def __init__(self, model: nn.Module, mean: tuple[float, ...], std: tuple[float, ...],
                 feature: str, proj: torch.Tensor | None = None) -> None:
        super().__init__()
        if feature not in FEATURES:
            raise ValueError(f"unknown DreamSim feature {feature!r} (one of {FEATURES})")
        if feature == "embedding" and proj is None:
            raise ValueError("the 'embedding' feature needs a CLIP projection")
        self.normalize = Normalize(mean, std)
        self.model = model
        self.feature = feature
        self.register_buffer("proj", proj.float() if proj is not None else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.model
        t = m.patch_embed(self.normalize(x))
        t = m.norm_pre(m._pos_embed(t))
        t = m.blocks(t)
        if self.feature == "cls":
            return t[:, 0]
        if self.feature == "cls_patch":
            return t
        return m.norm(t)[:, 0] @ self.proj


class DreamSimNet(nn.Module):
    """Branches -> one vector per image. Attribute names mirror ``PerceptualModel`` so that the
    official peft adapters (keys ``extractor_list.<i>.model.blocks.<j>.attn.qkv``) load as they are."""

    def __init__(self, branches: list[Branch], center: bool) -> None:
        super().__init__()
        self.extractor_list = nn.ModuleList(branches)
        self.center = center
        self.patch = any(b.feature == "cls_patch" for b in branches)
        if self.patch and len(branches) != 1:
            raise ValueError("cls_patch works with a single branch only")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.patch:
            tokens = self.extractor_list[0](x)
            if self.center:
                tokens = tokens - tokens.mean(dim=-1, keepdim=True)
                tokens = tokens / tokens.norm(dim=-1, keepdim=True)
            return torch.cat((tokens[:, 0], tokens[:, 1:].mean(dim=1)), dim=-1)
        e = torch.cat([b(x) for b in self.extractor_list], dim=-1)
        if self.center:
            e = e - e.mean(dim=1, keepdim=True)
            e = e / e.norm(dim=1, keepdim=True)
        return e


# -- weights ---------------------------------------------------------------------------------------


def weight_path(config: MetricConfig, name: str) -> Path:
    """Local path of the config's WeightFile ``name`` (an unpacked archive gives its folder)."""
    return resolve(_weight_file(config, name), config.name)


def member_path(root: Path, member: str | None) -> Path:
    """``member`` inside an unpacked archive (at its top or one folder down), or ``root`` itself."""
    if not member:
        return root
    for candidate in [root / member, *(d / member for d in sorted(root.iterdir()) if d.is_dir())]:
        if candidate.exists():
            return candidate
    raise WeightsCorruptError(f"{root}: the archive has no {member!r}; delete the folder and fetch "
                              "the weights again")


def _weight_file(config: MetricConfig, name: str) -> WeightFile:
    for wf in config.weights:
        if wf.name == name:
            return wf
    raise ValueError(f"{config.name}: no weights file named {name!r} in its config")


def _branch(config: MetricConfig, item: dict[str, Any]) -> Branch:
    backbone = item["backbone"]
    s = spec(backbone)
    path = member_path(weight_path(config, item["weights"]), item.get("member"))
    vit, proj = load_vit(backbone, path, config.preprocess.size)
    return Branch(vit, s.mean, s.std, item["feature"], proj)


def apply_lora(net: nn.Module, folder: Path, trainable: bool = False) -> nn.Module:
    """Load an official DreamSim peft adapter folder into ``net`` and merge it into the weights
    (frozen, eval mode); ``trainable``: keep it unmerged, in training mode, only LoRA requiring grad."""
    from peft import LoraConfig, get_peft_model, load_peft_weights, set_peft_model_state_dict

    if not (folder / "adapter_config.json").is_file():
        raise WeightsCorruptError(f"{folder}: no adapter_config.json (not a peft LoRA folder)")
    if not any((folder / f).is_file() for f in ("adapter_model.safetensors", "adapter_model.bin")):
        raise WeightsCorruptError(f"{folder}: no adapter_model.safetensors or adapter_model.bin")
    config = LoraConfig.from_pretrained(str(folder))
    config.inference_mode = not trainable
    model = get_peft_model(net, config)
    state = load_peft_weights(str(folder), device="cpu")
    result = set_peft_model_state_dict(model, state)
    missing = [k for k in result.missing_keys if "lora_" in k]
    if result.unexpected_keys or missing or not state:
        raise WeightsCorruptError(
            f"{folder}: adapter does not fit the model (unexpected {list(result.unexpected_keys)[:3]}, "
            f"missing {missing[:3]})")
    if trainable:
        model.requires_grad_(False)
        for name, param in model.named_parameters():
            param.requires_grad_("lora_" in name)
        log.debug("loaded %d LoRA tensors from %s, unmerged and trainable", len(state), folder)
        return model.train()
    merged = model.merge_and_unload()
    log.debug("merged %d LoRA tensors from %s", len(state), folder)
    return merged.eval().requires_grad_(False)


def build(config: MetricConfig, trainable: bool = False) -> nn.Module:
    """The metric's network: ``(N, 3, 224, 224)`` in [0, 1] -> ``(N, dim)`` (``trainable``: see
    the module docstring)."""
    o: DreamSimOptions = typed_options(config)
    net = DreamSimNet([_branch(config, item) for item in o.branches], o.center)
    lora = o.lora
    if lora:
        folder = member_path(weight_path(config, lora["weights"]), lora.get("member"))
        return apply_lora(net, folder, trainable)
    return set_trainable(net, trainable)

