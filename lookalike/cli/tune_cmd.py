"""``lookalike tune BASE --data DIR --method lora|mlp|lpips-linear --name NAME``: tune a metric on
human judgments and register it as metric NAME.

Data (``--data DIR``): the layouts `lookalike eval` reads (NIGHTS and study exports: DIR/data.csv;
BAPPS 2AFC; DIR/rankings.csv) or a folder of class subfolders (triplets: reference, same-class
image, other-class image). Rows labelled train/val/test keep their split; the rest is split by
reference image (--val-frac, --test-frac). The epoch with the best validation 2AFC is kept; test
is only reported.

Methods: lora = DreamSim's LoRA on the ViT attention qkv layers (ViT metrics: dreamsim*, dino-*,
clip-*, ...); mlp = a residual MLP head (one hidden layer) on the metric's cached vectors (any
embedding metric, seconds on a CPU); lpips-linear = CLPIPS: LPIPS's linear weights only (lpips-*).
Defaults are DreamSim's released recipes (LoRA ensemble: r 16, alpha 8, dropout 0.3, lr 3e-4,
batch 16, 6 epochs; single branch: r 16, alpha 32, dropout 0.2, batch 32, 8 epochs).

A checkpoint is written every epoch ($LOOKALIKE_HOME/tune-runs/NAME); --resume continues a killed
run. The result is $LOOKALIKE_HOME/metrics/NAME/ (metric.json + weights): `lookalike metrics`
lists it; embed, index, search, dupes and eval use it; `lookalike metrics export NAME` ships it.

Examples:
  lookalike tune effnet-lite0 --data my_study_export --method mlp --name effnet-mine
  lookalike tune dreamsim --data nights --method lora --name dreamsim-mine --epochs 2 --json
"""

from __future__ import annotations

import argparse
from typing import Any

from lookalike.cli.common import add_device, add_json, emit_json, new_command

METHODS = ("lora", "mlp", "lpips-linear")


def register(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    p = new_command(sub, "tune", parents, "tune a metric on human judgments (LoRA, MLP head, CLPIPS)",
                    description=__doc__)
    p.add_argument("base", metavar="BASE", help="the metric to tune (see `lookalike metrics`)")
    p.add_argument("--data", required=True, metavar="DIR", help="judgments or class folders (see above)")
    p.add_argument("--method", required=True, choices=METHODS)
    p.add_argument("--name", required=True, help="name of the tuned metric")
    p.add_argument("--layout", choices=("nights", "bapps-2afc", "rankings", "folders"), default=None,
                   help="data layout (default: detected)")
    p.add_argument("--min-votes", type=int, default=None, metavar="N", help="NIGHTS: keep triplets with >= N votes")
    p.add_argument("--skip-bad", action="store_true", help="skip malformed rows and missing images")
    g = p.add_argument_group("hyperparameters (default: the method's recipe)")
    g.add_argument("--epochs", type=int)
    g.add_argument("--lr", type=float)
    g.add_argument("--batch-size", type=int)
    g.add_argument("--margin", type=float, help="hinge margin on d0 - d1 (default 0.05)")
    g.add_argument("--weight-decay", type=float)
    g.add_argument("--seed", type=int)
    g.add_argument("--hidden", type=int, help="mlp: hidden width (default 512)")
    g.add_argument("--lora-r", type=int)
    g.add_argument("--lora-alpha", type=float)
    g.add_argument("--lora-dropout", type=float)
    g.add_argument("--no-grad-checkpointing", action="store_true", help="lora: keep all activations (faster, more memory)")
    g.add_argument("--val-frac", type=float, help="share of unlabelled references for validation (0.15)")
    g.add_argument("--test-frac", type=float, help="share of unlabelled references for test (0.15)")
    p.add_argument("--resume", action="store_true", help="continue the last checkpointed run of NAME")
    p.add_argument("--stop-after", type=int, default=None, metavar="N",
                   help="train N epochs now and stop, keeping the checkpoint (continue with --resume)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing user metric NAME")
    add_json(p)
    add_device(p)
    p.set_defaults(func=run)


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.4f}"


def render(result: dict[str, Any]) -> str:
    """The per-epoch table and the summary line."""
    cols = ["epoch", "train_loss", "val_2afc", "test_2afc"]
    extra = [k for k in ("val_spearman", "test_spearman", "val_icc", "test_icc")
             if any(k in r for r in result["report"])]
    rows = [[*cols, *extra, "seconds"]]
    for r in result["report"]:
        mark = " *" if r["epoch"] == result["best_epoch"] else ""
        rows.append([f"{r['epoch']}{mark}", *[_fmt(r.get(c)) for c in cols[1:] + extra], f"{r.get('seconds', 0):.1f}"])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    s = result["scores"]
    lines += ["", f"{result['metric']}: {result['base']} tuned with {result['method']} on "
                  f"{result['data']['layout']} ({', '.join(f'{k} {v}' for k, v in result['data']['triplets'].items())}); "
                  f"best epoch {result['best_epoch']} (*): val 2AFC {_fmt(s['base'].get('val_2afc'))} -> "
                  f"{_fmt(s['tuned'].get('val_2afc'))}, test 2AFC {_fmt(s['base'].get('test_2afc'))} -> "
                  f"{_fmt(s['tuned'].get('test_2afc'))}; {result['triplets_per_second']} triplets/s on "
                  f"{result['device']}; saved at {result['path']}"]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from lookalike.tune.trainer import tune

    hyper = {"epochs": args.epochs, "lr": args.lr, "batch_size": args.batch_size, "margin": args.margin,
             "weight_decay": args.weight_decay, "seed": args.seed, "hidden": args.hidden,
             "lora_r": args.lora_r, "lora_alpha": args.lora_alpha, "lora_dropout": args.lora_dropout,
             "val_frac": args.val_frac, "test_frac": args.test_frac,
             "grad_checkpointing": False if args.no_grad_checkpointing else None}
    out = tune(args.base, args.data, args.method, args.name, device=args.device, resume=args.resume,
                  overwrite=args.overwrite, progress=True, layout=args.layout, min_votes=args.min_votes,
                  strict=not args.skip_bad, stop_after=args.stop_after, **hyper)
    if out is None:
        emit_json({"stopped": True, "metric": args.name}) if args.json else print(
            f"stopped after {args.stop_after} epoch(s); continue with --resume")
        return 0
    result = out.to_dict()
    if args.json:
        emit_json(result)
    else:
        print(render(result))
    return 0
