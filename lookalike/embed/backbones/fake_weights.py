"""Seeded random weights written in the official file layouts DreamSim 0.2.1 reads.

For parity tests and benchmarks only: real weights cannot be downloaded everywhere, and identical
random weights fed to two implementations prove them equal just as well. The key names and shapes
are written out here from the layouts (not taken from either implementation), so both loaders are
checked against them strictly.
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lookalike.embed.backbones.vit import DEPTH, WIDTH, spec
from lookalike.embed.config import MetricConfig

#: LoRA hyper-parameters of DreamSim's released adapters (train.py: r=16, alpha=0.5, dropout=0.3).
LORA = {"r": 16, "lora_alpha": 0.5, "lora_dropout": 0.3, "bias": "none", "target_modules": ["qkv"]}


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _normal(g: torch.Generator, shape: tuple[int, ...], std: float, mean: float = 0.0) -> torch.Tensor:
    return torch.randn(shape, generator=g) * std + mean


def vit_state_dict(backbone: str, seed: int) -> dict[str, torch.Tensor]:
    """Random ViT-B weights under DINO ViT key names (DINOv2 adds layer scale and mask_token)."""
    s = spec(backbone)
    g = _gen(seed)
    w = WIDTH
    sd: dict[str, torch.Tensor] = {
        "cls_token": _normal(g, (1, 1, w), 0.5),
        "pos_embed": _normal(g, (1, s.pos_grid ** 2 + 1, w), 0.5),
        "patch_embed.proj.weight": _normal(g, (w, 3, s.patch, s.patch), (3 * s.patch ** 2) ** -0.5),
        "patch_embed.proj.bias": _normal(g, (w,), 0.1),
    }
    if s.layout == "dinov2":
        sd["mask_token"] = _normal(g, (1, w), 0.02)
    if s.pre_norm:
        sd["pos_drop.weight"] = _normal(g, (w,), 0.1, 1.0)
        sd["pos_drop.bias"] = _normal(g, (w,), 0.1)
    for i in range(DEPTH):
        p = f"blocks.{i}."
        for norm in ("norm1", "norm2"):
            sd[p + norm + ".weight"] = _normal(g, (w,), 0.1, 1.0)
            sd[p + norm + ".bias"] = _normal(g, (w,), 0.1)
        sd[p + "attn.qkv.weight"] = _normal(g, (3 * w, w), w ** -0.5)
        sd[p + "attn.qkv.bias"] = _normal(g, (3 * w,), 0.1)
        sd[p + "attn.proj.weight"] = _normal(g, (w, w), w ** -0.5)
        sd[p + "attn.proj.bias"] = _normal(g, (w,), 0.05)
        if s.layer_scale:
            sd[p + "ls1.gamma"] = torch.rand((w,), generator=g) * 0.8 + 0.2
        sd[p + "mlp.fc1.weight"] = _normal(g, (4 * w, w), w ** -0.5)
        sd[p + "mlp.fc1.bias"] = _normal(g, (4 * w,), 0.1)
        sd[p + "mlp.fc2.weight"] = _normal(g, (w, 4 * w), (4 * w) ** -0.5)
        sd[p + "mlp.fc2.bias"] = _normal(g, (w,), 0.05)
        if s.layer_scale:
            sd[p + "ls2.gamma"] = torch.rand((w,), generator=g) * 0.8 + 0.2
    sd["norm.weight"] = _normal(g, (w,), 0.1, 1.0)
    sd["norm.bias"] = _normal(g, (w,), 0.1)
    return sd


def write_backbone(backbone: str, path: Path, seed: int) -> None:
    """Write ``backbone``'s random weights at ``path`` in its official file layout."""
    s = spec(backbone)
    sd = vit_state_dict(backbone, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    if s.layout == "dreamsim-clip":
        sd["proj"] = _normal(_gen(seed + 7919), (WIDTH, s.proj_dim), WIDTH ** -0.5)
        torch.save({"state_dict": sd}, path)
    elif s.layout == "synclr":
        torch.save({"model": {"module.visual." + k: v for k, v in sd.items()}}, path)
    else:
        torch.save(sd, path)


def write_dino_full_checkpoint(path: Path, seed: int) -> None:
    """DreamSim's ``dino_vitb16_pretrain.pth`` (a DINO training checkpoint): the reference reads its
    ``student`` projection head; DreamSim features never use it. Small random head, shapes as
    ``DINOHead(768, 2048)``."""
    g = _gen(seed)
    head = {"module.head.mlp.0.weight": (2048, WIDTH), "module.head.mlp.0.bias": (2048,),
            "module.head.mlp.2.weight": (2048, 2048), "module.head.mlp.2.bias": (2048,),
            "module.head.mlp.4.weight": (256, 2048), "module.head.mlp.4.bias": (256,),
            "module.head.last_layer.weight": (2048, 256)}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"student": {k: _normal(g, shape, 0.02) for k, shape in head.items()}}, path)


def write_lora(folder: Path, n_branches: int, seed: int, safetensors: bool = True) -> None:
    """A random DreamSim LoRA adapter folder, saved by peft's ``save_pretrained`` from a skeleton
    with ``PerceptualModel``'s module names (``extractor_list.<i>.model.blocks.<j>.attn.qkv``)."""
    from peft import LoraConfig, get_peft_model

    def vit_skeleton() -> nn.Module:
        blocks = nn.ModuleList()
        for _ in range(DEPTH):
            block = nn.Module()
            block.attn = nn.Module()
            block.attn.qkv = nn.Linear(WIDTH, 3 * WIDTH)
            blocks.append(block)
        holder = nn.Module()
        holder.blocks = blocks
        return holder

    skeleton = nn.Module()
    skeleton.extractor_list = nn.ModuleList()
    for _ in range(n_branches):
        branch = nn.Module()
        branch.model = vit_skeleton()
        skeleton.extractor_list.append(branch)
    model = get_peft_model(skeleton, LoraConfig(**LORA))
    g = _gen(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_A" in name or "lora_B" in name:
                p.copy_(_normal(g, tuple(p.shape), 0.25))
    if folder.exists():
        shutil.rmtree(folder)
    model.save_pretrained(str(folder), safe_serialization=safetensors)


def zip_folder(folder: Path, archive: Path) -> Path:
    """Zip ``folder``'s contents at the archive's top level, as DreamSim's release zips are."""
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(folder).as_posix())
    return archive


def write_metric_weights(config: MetricConfig, root: Path, seed: int = 0,
                         safetensors: bool = True) -> list[Path]:
    """Write random weights for every file ``config`` needs into the weights cache ``root``:
    Meta backbone files as files, DreamSim archives unpacked into ``<name minus .zip>/``.
    Each backbone's weights depend only on (backbone, seed), so metrics sharing a file agree and
    a backbone file already there is kept."""
    o: dict[str, Any] = config.options
    by_name = {wf.name: wf for wf in config.weights}
    written: list[Path] = []
    for i, item in enumerate(o["branches"]):
        wf = by_name[item["weights"]]
        base = root / (wf.name.removesuffix(".zip") if wf.unpack else wf.name)
        path = base / item["member"] if item.get("member") else base
        if not path.exists():
            write_backbone(item["backbone"], path, seed + _backbone_offset(item["backbone"]))
        written.append(path)
    archives = [wf for wf in config.weights if wf.unpack]
    backbones = {b["backbone"] for b in o["branches"]}
    if archives:
        # the release archives with a DINO / DINOv2 branch also hold a file of that name
        # (DINO's training checkpoint; the reference only checks DINOv2's is there)
        folder = root / archives[0].name.removesuffix(".zip")
        if "dino_vitb16" in backbones:
            write_dino_full_checkpoint(folder / "dino_vitb16_pretrain.pth", seed)
        if "dinov2_vitb14" in backbones:
            write_backbone("dinov2_vitb14", folder / "dinov2_vitb14_pretrain.pth",
                           seed + _backbone_offset("dinov2_vitb14"))
    lora = o.get("lora")
    if lora:
        folder = root / by_name[lora["weights"]].name.removesuffix(".zip") / lora["member"]
        write_lora(folder, len(o["branches"]), seed + 1000 + len(config.name), safetensors)
        written.append(folder)
    return written


def _backbone_offset(backbone: str) -> int:
    return sum(ord(c) for c in backbone) * 31
