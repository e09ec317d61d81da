"""The tuning service behind ``lookalike tune``: data + base metric + method -> a tuned metric.

Every epoch: one pass over the training triplets in shuffled batches (Adam, DreamSim's hinge loss
on ``d0 - d1``), then 2AFC on the validation and test splits. The epoch with the best validation
2AFC is kept (test is only reported); epoch 0 is the base metric. A checkpoint is written after
every epoch to ``$LOOKALIKE_HOME/tune-runs/NAME/checkpoint.pt`` (tensors and plain data, read back
with ``weights_only=True``); ``resume=True`` continues a killed run with the same base, data and
hyperparameters. The result is a bundle (:mod:`lookalike.tune.bundles`) whose config keeps the
whole report.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import random
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from lookalike.embed.config import MetricConfig
from lookalike.errors import UsageError
from lookalike.judgments import scores as S
from lookalike.paths import home
from lookalike.progress import progress_bar
from lookalike.tune import bundles, recipe
from lookalike.tune.common import Learner, hinge_loss, targets
from lookalike.tune.datasets import TuneData, load

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"


@dataclass
class TuneResult:
    """The registered metric and its tuning record."""

    name: str
    path: Path
    config: MetricConfig

    @property
    def record(self) -> dict[str, Any]:
        return bundles.info(self.config)

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.name, "path": str(self.path), **self.record}


def runs_dir() -> Path:
    return home() / "tune-runs"


def _nan_none(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else x


def split_scores(learner: Learner, data: TuneData, method: str) -> dict[str, float | None]:
    """2AFC on val and test (and Spearman/ICC on ranked items for lpips-linear)."""
    out: dict[str, float | None] = {}
    for split in ("val", "test"):
        trips = data.split(split)
        if trips:
            d0, d1 = learner.distances(trips)
            out[f"{split}_2afc"] = S.twoafc(d0, d1, targets(trips))
        else:
            out[f"{split}_2afc"] = None
        if method == "lpips-linear" and data.ranked.get(split):
            from lookalike.tune.clpips import rank_scores

            rs = rank_scores(learner, data.ranked[split])  # type: ignore[arg-type]
            out[f"{split}_spearman"], out[f"{split}_icc"] = _nan_none(rs["spearman"]), _nan_none(rs["icc"])
    return out


def make_learner(hp: recipe.TuneConfig, base: MetricConfig, data: TuneData, device: torch.device,
                 progress: bool) -> Learner:
    from lookalike.embed.factory import build_network
    from lookalike.tune.common import prepared_arrays

    paths = data.image_paths
    if hp.method == "mlp":
        from lookalike.tune.features import base_vectors
        from lookalike.tune.heads import MlpLearner

        vectors = base_vectors(base, paths, device=str(device), progress=progress)
        return MlpLearner(base, paths, vectors, hp.hidden, device, hp.seed)
    if hp.method == "lpips-linear":
        from lookalike.embed.backbones.lpips import load_heads
        from lookalike.tune.clpips import LpipsLinearLearner, PairDiffs, is_lpips

        if not is_lpips(base):
            raise UsageError(f"--method lpips-linear needs an LPIPS base metric (lpips-*), not {base.name}")
        net = build_network(base, trainable=False, device=device)  # the heads train on cached diffs
        diffs = PairDiffs(base, net, prepared_arrays(paths, base.preprocess, progress), device, progress=progress)
        learner = LpipsLinearLearner(base, diffs, load_heads(base), device)
        learner.prefetch([*data.train, *data.val, *data.test],
                         [r for items in data.ranked.values() for r in items])
        return learner
    from lookalike.tune.lora import LoraLearner, qkv_layers

    # frozen (a released adapter merged): the fresh LoRA that peft adds is what trains
    net = build_network(base, trainable=False, device="cpu")
    if not qkv_layers(net):  # before decoding any image
        raise UsageError(f"LoRA tuning needs a ViT base metric (attention 'qkv' layers), not {base.name}; "
                         "use --method mlp for other metrics")
    return LoraLearner(base, net, prepared_arrays(paths, base.preprocess, progress), hp.lora_r,
                       hp.lora_alpha, hp.lora_dropout, device, hp.seed, hp.grad_checkpointing)


@contextlib.contextmanager
def training_threads(method: str, device: torch.device) -> Iterator[None]:
    """One CPU thread for the frozen-feature methods: their steps are small matrix products, which
    extra threads slow down (10x on a busy 2-core machine) rather than speed up."""
    if device.type != "cpu" or method == "lora":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _save_checkpoint(folder: Path, payload: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (CHECKPOINT + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, folder / CHECKPOINT)


def _load_checkpoint(folder: Path) -> dict[str, Any] | None:
    path = folder / CHECKPOINT
    if not path.is_file():
        return None
    return torch.load(path, map_location="cpu", weights_only=True)


def _check_target(name: str, overwrite: bool) -> None:
    from lookalike.embed.registry import all_configs, builtin_configs

    bundles.check_name(name)
    if name in builtin_configs():
        raise UsageError(f"{name!r} is a built-in metric; pick another --name")
    if name in all_configs() and not overwrite:
        raise UsageError(f"a metric named {name!r} already exists; pick another --name, pass --overwrite, "
                         "or `lookalike metrics remove` it first")


def tune(base: str | MetricConfig, data: str | os.PathLike[str] | TuneData, method: str, name: str, *,
         device: str | None = None, resume: bool = False, overwrite: bool = False, progress: bool = True,
         layout: str | None = None, min_votes: int | None = None, strict: bool = True,
         stop_after: int | None = None, **hyper: Any) -> TuneResult | None:
    """Tune ``base`` on ``data`` with ``method`` and register the result as metric ``name``.

    ``hyper`` overrides the recipe (:mod:`lookalike.tune.recipe`): ``epochs``, ``lr``,
    ``batch_size``, ``margin``, ``seed``, ``hidden``, ``lora_r``, ``lora_alpha``, ``lora_dropout``,
    ``grad_checkpointing``, ``val_frac``, ``test_frac``, ``weight_decay``. ``stop_after``: train at
    most that many epochs in this call and return ``None``, leaving the checkpoint for ``resume``."""
    from lookalike.embed.device import pick_device
    from lookalike.embed.registry import get_config
    from lookalike.judgments.cache import fingerprint, fingerprint_record

    start = time.perf_counter()
    base_cfg = base if isinstance(base, MetricConfig) else get_config(base)
    if base_cfg.builder == bundles.BUILDER:
        raise UsageError(f"{base_cfg.name} is itself a tuned metric; tune its base "
                         f"{base_cfg.options['base']['name']} instead")
    _check_target(name, overwrite)
    hp = recipe.make(method, base_cfg, **hyper)
    td = data if isinstance(data, TuneData) else load(data, layout, hp.val_frac, hp.test_frac, hp.seed,
                                                        strict, min_votes)
    data_hash = td.digest()
    base_fp = fingerprint(fingerprint_record(base_cfg) or {})
    run_key = hashlib.sha256(json.dumps([base_fp, data_hash, hp.to_dict()], sort_keys=True).encode()).hexdigest()
    dev = pick_device(device)
    log.info("tuning %s (%s) on %s: %s; device %s", base_cfg.name, method, td.root,
             ", ".join(f"{k} {v}" for k, v in td.summary()["triplets"].items()), dev)  # type: ignore[union-attr]
    learner = make_learner(hp, base_cfg, td, dev, progress)
    optimizer = torch.optim.Adam(learner.parameters(), lr=hp.lr, betas=hp.betas, weight_decay=hp.weight_decay)

    run = runs_dir() / name
    report: list[dict[str, Any]] = []
    best_epoch, best_val, best_state = 0, -1.0, learner.state()
    first = 1
    ckpt = _load_checkpoint(run) if resume else None
    if resume and ckpt is None:
        log.warning("--resume: no checkpoint for %s in %s; starting from the base metric", name, run)
    if ckpt is not None:
        if ckpt.get("run_key") != run_key:
            raise UsageError(f"{run / CHECKPOINT} is from a run with another base metric, data or "
                             "hyperparameters; rerun without --resume to start afresh")
        learner.load_state(ckpt["state"])
        optimizer.load_state_dict(ckpt["optimizer"])
        report = list(ckpt["report"])
        best_epoch, best_val, best_state = int(ckpt["best_epoch"]), float(ckpt["best_val"]), ckpt["best_state"]
        first = int(ckpt["epoch"]) + 1
        log.info("resuming %s after epoch %d", name, first - 1)
    else:
        shutil.rmtree(run, ignore_errors=True)
        report.append({"epoch": 0, "train_loss": None, **split_scores(learner, td, method), "seconds": 0.0,
                       "note": "base metric"})

    train = list(td.train)
    tgt_all = torch.tensor(targets(train), dtype=torch.float32, device=dev)
    steps_total = (hp.epochs - first + 1) * len(train)
    train_seconds = sum(r.get("seconds") or 0.0 for r in report)
    with progress_bar(steps_total, f"tune {name}", unit="triplet", enabled=progress) as bar, \
            training_threads(method, dev):
        for epoch in range(first, hp.epochs + 1):
            t0 = time.perf_counter()
            order = list(range(len(train)))
            random.Random(hp.seed * 1000 + epoch).shuffle(order)
            torch.manual_seed(hp.seed * 1000 + epoch)  # LoRA dropout
            losses = []
            for s in range(0, len(order), hp.batch_size):
                idx = order[s:s + hp.batch_size]
                d0, d1 = learner.batch_distances([train[i] for i in idx])
                loss = hinge_loss(d0, d1, tgt_all[idx], hp.margin)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                learner.after_step()
                losses.append(float(loss.detach()) * len(idx))
                bar.update(len(idx))
            seconds = time.perf_counter() - t0
            train_seconds += seconds
            rec = {"epoch": epoch, "train_loss": sum(losses) / len(train), **split_scores(learner, td, method),
                   "seconds": round(seconds, 3)}
            report.append(rec)
            val = rec["val_2afc"]
            if val is None or val > best_val:
                best_epoch, best_val, best_state = epoch, (val if val is not None else -1.0), learner.state()
                rec["time_to_best_s"] = round(train_seconds, 3)
            bar.set_postfix(epoch=epoch, loss=f"{rec['train_loss']:.4f}",
                            val=f"{val:.3f}" if val is not None else "-")
            _save_checkpoint(run, {"run_key": run_key, "epoch": epoch, "state": learner.state(),
                                   "optimizer": optimizer.state_dict(), "report": report,
                                   "best_epoch": best_epoch, "best_val": best_val, "best_state": best_state})
            if stop_after is not None and epoch - first + 1 >= stop_after and epoch < hp.epochs:
                log.info("stopped after epoch %d; continue with --resume", epoch)
                return None
    if not td.val:
        log.warning("no validation triplets: keeping the last epoch")
    learner.load_state(best_state)
    result = _register(name, base_cfg, base_fp, method, hp, td, data_hash, learner, report, best_epoch,
                       dev, time.perf_counter() - start, overwrite)
    shutil.rmtree(run, ignore_errors=True)
    return result


def _register(name: str, base: MetricConfig, base_fp: str, method: str, hp: recipe.TuneConfig, td: TuneData,
              data_hash: str, learner: Learner, report: list[dict[str, Any]], best_epoch: int,
              device: torch.device, seconds: float, overwrite: bool) -> TuneResult:
    staged = bundles.staging(name)
    try:
        extra = learner.write(staged)
        dim = int(extra.pop("dim", base.dim))
        rels = [v if isinstance(v, str) else v["file"] for k, v in extra.items() if k in ("adapter", "head", "lpips_heads")]
        files = {p: d for rel in rels for p, d in bundles.tree_digests(staged, rel).items()}
        epochs = [r for r in report if r["epoch"] >= 1]
        trained = sum(len(td.train) for _ in epochs)
        best = next(r for r in report if r["epoch"] == best_epoch)
        tuning = {
            "base": base.name, "base_fingerprint": base_fp, "method": method,
            "data": {**td.summary(), "hash": data_hash}, "hyperparameters": hp.to_dict(),
            "report": report, "best_epoch": best_epoch,
            "scores": {"base": {k: v for k, v in report[0].items() if k.endswith(("2afc", "spearman", "icc"))},
                       "tuned": {k: v for k, v in best.items() if k.endswith(("2afc", "spearman", "icc"))}},
            "device": str(device), "seconds": round(seconds, 3),
            "triplets_per_second": round(trained / max(1e-9, sum(r["seconds"] for r in epochs)), 2) if epochs else None,
            "time_to_best_s": best.get("time_to_best_s"),
        }
        options = {"base": base.to_dict(), "method": method, **extra, "files": files, "tuning": tuning}
        config = replace(base, name=name, builder=bundles.BUILDER, dim=dim, options=options,
                         model_ids=(*base.model_ids, f"tuned {method} ({data_hash[:12]})"),
                         description=f"{base.name} tuned ({method}) on {td.layout} {Path(td.root).name}; "
                                     f"val 2AFC {_fmt(report[0].get('val_2afc'))} -> {_fmt(best.get('val_2afc'))}",
                         family="tuned")
        path = bundles.write(config, staged, overwrite=overwrite)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    return TuneResult(name, path, config)


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"

