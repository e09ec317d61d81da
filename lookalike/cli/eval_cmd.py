"""``lookalike eval 2afc|jnd|rank``: how well metrics agree with people, with 95% intervals.

Data layouts (``--data DIR``; detected, or set with ``--layout``):
  2afc  NIGHTS (DIR/data.csv, ref/, distort/), lookalike 2AFC study exports (same layout),
        BAPPS 2AFC (<split>/<subset>/{ref,p0,p1,judge})
  jnd   BAPPS JND (<split>/<subset>/{p0,p1,same})
  rank  DIR/rankings.csv: target,candidate,rank[,rater,split,category] (rank 1 = most similar)

Scores: 2afc = mean((d0<d1)(1-t) + (d1<d0)t + 0.5(d0==d1)) as DreamSim and LPIPS compute it;
jnd_map = BAPPS's JND mean average precision; spearman and icc = ICC(A,1) between human and
metric ranks within each target. Intervals: percentile bootstrap over reference images (2afc),
pairs (jnd) or targets (rank). Vectors are cached under $LOOKALIKE_HOME/features per metric and
image content, so further metrics and re-runs only embed what is new.

Examples:
  lookalike eval 2afc --data nights --metric dreamsim --metric lpips-alex --split test --min-votes 6
  lookalike eval jnd --data bapps/jnd/val --metric lpips-alex --json
"""

from __future__ import annotations

import argparse
from typing import Any

from lookalike.cli.common import add_device, add_json, emit_json, new_command

DEFAULT_METRIC = "effnet-lite0"
LAYOUT_CHOICES = ("nights", "bapps-2afc", "bapps-jnd", "rankings")


def register(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    p = new_command(sub, "eval", parents, "score metrics against human judgments (2AFC, JND, rankings)",
                    description=__doc__)
    p.add_argument("task", choices=("2afc", "jnd", "rank"), help="kind of judgments")
    p.add_argument("--data", required=True, metavar="DIR", help="data folder (see the layouts above)")
    p.add_argument("-m", "--metric", action="extend", nargs="+", dest="metrics", metavar="METRIC",
                   help=f"metric name(s); repeat or list several (default: {DEFAULT_METRIC})")
    p.add_argument("--split", default=None,
                   help="only this split (NIGHTS: train, val, test, test_imagenet, test_no_imagenet; "
                        "BAPPS: the split folder name, e.g. val); default: all, with a per-split breakdown")
    p.add_argument("--layout", choices=LAYOUT_CHOICES, default=None, help="data layout (default: detected)")
    p.add_argument("--min-votes", type=int, default=None, metavar="N",
                   help="NIGHTS: keep triplets with at least N votes (the reference uses 6)")
    p.add_argument("--skip-bad", action="store_true",
                   help="skip malformed rows and missing or unreadable images (counted) instead of failing")
    p.add_argument("--bootstrap", type=int, default=1000, metavar="N", help="bootstrap replicates (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the feature cache")
    p.add_argument("--batch-size", type=int, default=32)
    add_json(p)
    add_device(p)
    p.set_defaults(func=run)


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4f}"


def render(report: dict[str, Any]) -> str:
    """The human-readable table: one row per metric and score, then the breakdowns."""
    rows = [("metric", "score", "value", "95% CI", "n", "split", "category")]
    for m in report["metrics"]:
        for s in m["scores"]:
            rows.append((m["metric"], s["score"], _fmt(s["value"]),
                         f"[{_fmt(s['ci95'][0])}, {_fmt(s['ci95'][1])}]", str(s["n"]), "all", "all"))
        for s in m["breakdown"]:
            rows.append((m["metric"], s["score"], _fmt(s["value"]),
                         f"[{_fmt(s['ci95'][0])}, {_fmt(s['ci95'][1])}]", str(s["n"]),
                         s["split"] or "all", s["category"] or "all"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    d = report["data"]
    foot = (f"{d['layout']} {d['root']}: {d['scored']} scored, {d['skipped']} skipped"
            + (f" ({', '.join(f'{k}: {v}' for k, v in d['skip_reasons'].items())})" if d["skipped"] else "")
            + (f", filtered {d['filtered']}" if d["filtered"] else "")
            + f"; {report['bootstrap']['replicates']} bootstrap replicates over {report['bootstrap']['unit']}s")
    return "\n".join([*lines, "", foot])


def run(args: argparse.Namespace) -> int:
    from lookalike.judgments.evaluate import evaluate

    metrics = list(dict.fromkeys(args.metrics or [DEFAULT_METRIC]))
    report = evaluate(args.task, args.data, metrics, split=args.split, layout=args.layout,
                      min_votes=args.min_votes, strict=not args.skip_bad, device=args.device,
                      cache=not args.no_cache, batch_size=args.batch_size, n_boot=args.bootstrap,
                      seed=args.seed, progress=True).to_dict()
    if args.json:
        emit_json(report)
    else:
        print(render(report))
    return 0
