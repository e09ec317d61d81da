"""``lookalike study``: design, inspect, analyse, export and close preference studies."""

from __future__ import annotations

import argparse
from typing import Any

from lookalike.cli.common import add_device, add_json, add_library, emit_json, new_command


def register(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    p = new_command(sub, "study", parents, "run retrieval preference and 2AFC studies with people",
                    description="Design a blinded study on the library, then read its analysis.\n"
                                "Participants answer through `lookalike ui` (or the Python service).\n\n"
                                "  lookalike study create pilot -m effnet-lite0 -m dreamsim --random 30 --ranks 1-10\n"
                                "  lookalike study results pilot --charts out/\n"
                                "  lookalike study export pilot --out out/ --format nights")
    ss = p.add_subparsers(dest="study_command", metavar="ACTION", required=True)

    c = new_command(ss, "create", parents, "design a study (trials are made from the search now, then frozen)")
    c.add_argument("name")
    c.add_argument("--config", metavar="FILE", help="a study config JSON (the options below override it)")
    c.add_argument("--kind", choices=("retrieval", "2afc"))
    c.add_argument("-m", "--metric", action="append", dest="metrics", metavar="M",
                   help="metric to compare (repeatable; retrieval: 2-6)")
    q = c.add_mutually_exclusive_group()
    q.add_argument("--random", type=int, metavar="N", help="N random library images as queries (seeded)")
    q.add_argument("--query-folder", metavar="DIR", help="every indexed image under DIR is a query")
    q.add_argument("--query-id", type=int, action="append", metavar="ID", help="a library image id (repeatable)")
    q.add_argument("--triplets", metavar="FILE",
                   help="2afc: a CSV (reference,left,right image ids) or JSON list of triplets")
    c.add_argument("--ranks", help="neighbour ranks, e.g. 1-10 or 1,3,5 (default 1-10)")
    c.add_argument("--trials", type=int, dest="trials_per_participant", help="main trials per participant (40)")
    c.add_argument("--practice", type=int, dest="practice_trials", help="practice trials (2)")
    c.add_argument("--sentinels", type=int, help="sentinel trials per participant (5)")
    c.add_argument("--max-sentinel-failures", type=int, help="exclude participants failing more (0)")
    c.add_argument("--min-rt-ms", type=float, dest="min_response_ms", help="answers faster are flagged (300)")
    c.add_argument("--seed", type=int)
    c.add_argument("--instructions")
    c.add_argument("--consent")
    c.add_argument("--completion-code")
    c.add_argument("--description")
    _common(c)
    add_device(c)
    c.set_defaults(func=run_create)

    ls = new_command(ss, "list", parents, "the library's studies")
    _common(ls)
    ls.set_defaults(func=run_list)

    sh = new_command(ss, "show", parents, "a study's design, link id and counts")
    sh.add_argument("name")
    sh.add_argument("--preview", type=int, default=0, metavar="N", help="also the first N trials as participants see them")
    _common(sh)
    sh.set_defaults(func=run_show)

    r = new_command(ss, "results", parents, "the analysis: shares with confidence intervals, per rank, Bradley-Terry, "
                                            "pairwise tests, exclusions, agreement, response times")
    r.add_argument("name")
    r.add_argument("--charts", metavar="DIR", help="write PNG charts and results.json to DIR")
    r.add_argument("--replicates", type=int, default=2000, help="bootstrap replicates (2000)")
    r.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    r.add_argument("--within", action="store_true",
                   help="also resample answers within participants (two-stage; conservative)")
    _common(r)
    r.set_defaults(func=run_results)

    e = new_command(ss, "export", parents, "write every answer (CSV/JSON, long format) or the NIGHTS layout (2afc)")
    e.add_argument("name")
    e.add_argument("--out", required=True, metavar="DIR")
    e.add_argument("--format", choices=("csv", "json", "nights"), default="csv")
    _common(e)
    e.set_defaults(func=run_export)

    cl = new_command(ss, "close", parents, "stop a study: no new participants or answers")
    cl.add_argument("name")
    _common(cl)
    cl.set_defaults(func=run_close)


def _common(p: argparse.ArgumentParser) -> None:
    add_library(p)
    add_json(p)


def _service(args: argparse.Namespace) -> tuple[Any, str]:
    """The CLI runs on the library's own files, so it holds the admin role: a one-off token."""
    from lookalike.studies.blinding import new_id
    from lookalike.studies.service import StudyService

    token = new_id()
    return StudyService.open(args.library, db_url=args.db, admin_token=token,
                             device=getattr(args, "device", None)), token


def _read_triplets(path: str) -> list[list[int]]:
    import csv
    import json
    from pathlib import Path

    from lookalike.studies.config import StudyConfigError

    text = Path(path).read_text()
    try:
        if path.endswith(".json"):
            rows = json.loads(text)
        else:
            rows = [r for r in csv.reader(text.splitlines()) if r and not r[0].strip().startswith("ref")]
        return [[int(x) for x in row] for row in rows]
    except (ValueError, TypeError) as exc:
        raise StudyConfigError(f"{path}: triplets are rows of three image ids ({exc})") from exc


def run_create(args: argparse.Namespace) -> int:
    from lookalike.studies.config import StudyConfig, parse_ranks

    base = StudyConfig.load(args.config).to_dict() if args.config else {}
    over: dict[str, Any] = {k: getattr(args, k) for k in (
        "kind", "metrics", "trials_per_participant", "practice_trials", "sentinels", "max_sentinel_failures",
        "min_response_ms", "seed", "instructions", "consent", "completion_code", "description")
        if getattr(args, k) is not None}
    if args.ranks:
        over["ranks"] = parse_ranks(args.ranks)
    if args.random is not None:
        over.update(queries="random", query_count=args.random)
    elif args.query_folder:
        over.update(queries="folder", query_folder=args.query_folder)
    elif args.query_id:
        over.update(queries="ids", query_ids=args.query_id)
    elif args.triplets:
        over.update(kind=over.get("kind", "2afc"), triplets=_read_triplets(args.triplets))
    config = StudyConfig.from_dict({**base, **over})
    svc, token = _service(args)
    with svc:
        info = svc.create_study(args.name, config, admin_token=token)
    if args.json:
        emit_json(info)
    else:
        t = info["trials"]
        print(f"study {info['name']} ({info['kind']}): {t['main']} trials, {t['practice']} practice, "
              f"{t['sentinel']} sentinels")
        print(f"participant link id: {info['public_id']}")
        print(f"completion code: {info['config']['completion_code']}")
    return 0


def run_list(args: argparse.Namespace) -> int:
    svc, token = _service(args)
    with svc:
        studies = svc.list_studies(admin_token=token)
    if args.json:
        emit_json(studies)
        return 0
    print(f"{'name':<24} {'kind':<10} {'status':<7} {'trials':>6} {'people':>6} {'done':>5} {'answers':>7}")
    for s in studies:
        print(f"{s['name'][:24]:<24} {s['kind']:<10} {s['status']:<7} {s['trials']['main']:>6} "
              f"{s['participants']:>6} {s['finished']:>5} {s['answers']:>7}")
    return 0


def run_show(args: argparse.Namespace) -> int:
    svc, token = _service(args)
    with svc:
        info = svc.study_info(args.name, admin_token=token)
        if args.preview:
            info["preview"] = svc.preview(args.name, args.preview, admin_token=token)
    if args.json:
        emit_json(info)
        return 0
    cfg = info["config"]
    print(f"study {info['name']} ({info['kind']}, {info['status']}), link id {info['public_id']}")
    print(f"metrics: {', '.join(cfg['metrics']) or '-'}; ranks: {cfg['ranks']}; queries: {cfg['queries']}")
    t = info["trials"]
    print(f"trials: {t['main']} main, {t['practice']} practice, {t['sentinel']} sentinels; per participant: "
          f"{cfg['trials_per_participant']} + {cfg['sentinels']} sentinels")
    print(f"participants: {info['participants']} ({info['finished']} finished), answers: {info['answers']}")
    for k, v in (cfg.get("skipped") or {}).items():
        print(f"not made: {v} trial(s): {k}")
    return 0


def run_results(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    svc, token = _service(args)
    with svc:
        res = svc.results(args.name, admin_token=token, replicates=args.replicates, seed=args.seed,
                          within=args.within)
    if args.charts:
        from lookalike.studies.charts import write_charts

        out = Path(args.charts)
        res["charts"] = [str(p) for p in write_charts(res, out)]
        (out / "results.json").write_text(json.dumps(res, indent=1) + "\n")
    if args.json:
        emit_json(res)
    else:
        print(results_table(res))
    return 0


def _ci(row: dict[str, Any], key: str = "share", pct: bool = True) -> str:
    def f(x: Any) -> str:
        return "-" if x is None else (f"{100 * x:5.1f}%" if pct else f"{x:+.3f}")
    return f"{f(row[key])}  [{f(row['low'])}, {f(row['high'])}]"


def results_table(res: dict[str, Any]) -> str:
    """The analysis as readable text."""
    p, a = res["participants"], res["answers"]
    lines = [f"study {res['study']} ({res['kind']}, {res['status']}): {p['joined']} participants "
             f"({p['finished']} finished, {p['included']} included), {a['analysed']} answers analysed "
             f"of {a['total']}"]
    if res["shares"]:
        lines.append("")
        lines.append(f"{'metric':<28} {'share [95% CI]':<26} {'chosen/shown':>12}   {'Bradley-Terry log-strength':<28}")
        for m, row in res["shares"].items():
            bt = res["bradley_terry"].get(m)
            lines.append(f"{m[:28]:<28} {_ci(row):<26} {row['chosen']:>5}/{row['shown']:<6}   "
                         f"{_ci(bt, 'log_strength', pct=False) if bt else ''}")
    if res["per_rank"]:
        metrics = list(res["shares"])
        lines += ["", "share per neighbour rank:", "rank  " + "  ".join(f"{m[:22]:>22}" for m in metrics)]
        for r, table in res["per_rank"].items():
            cells = [f"{100 * table[m]['share']:5.1f}% ±{50 * (table[m]['high'] - table[m]['low']):4.1f}"
                     if table[m]["share"] is not None and table[m]["low"] is not None else "-" for m in metrics]
            lines.append(f"{r:>4}  " + "  ".join(f"{c:>22}" for c in cells))
    if res["pairwise"]:
        lines += ["", "pairwise (difference of shares, bootstrap p with Holm correction; head-to-head wins):"]
        for t in res["pairwise"]:
            diff = "-" if t["difference"] is None else f"{100 * t['difference']:+.1f} pts"
            lines.append(f"  {t['a']} vs {t['b']}: {diff}, p={t['p_holm']:.3g}; {t['a_wins']}:{t['b_wins']}")
    if res["merged"]["answers"]:
        lines += ["", f"note: {res['merged']['answers']} answers showed an image several metrics returned; "
                      + res["merged"]["note"]]
    s = res["sentinels"]
    lines += ["", f"sentinels: {s['failed']} of {s['answered']} failed"
              + (f" ({100 * s['failure_rate']:.1f}%)" if s["failure_rate"] is not None else "")]
    for e in p["excluded"]:
        lines.append(f"  excluded {e['participant']}: {'; '.join(e['reasons'])}")
    g = res["agreement"]
    alpha = "-" if g["krippendorff_alpha"] is None else f"{g['krippendorff_alpha']:.3f}"
    lines.append(f"agreement: Krippendorff's alpha {alpha} over {g['trials']} trials answered by several people")
    rt = res["response_ms"]
    if rt.get("answers"):
        lines.append(f"response time: median {rt['median']:.0f} ms (IQR {rt['p25']:.0f}-{rt['p75']:.0f}), "
                     f"{rt['too_fast']} too fast")
    return "\n".join(lines)


def run_export(args: argparse.Namespace) -> int:
    svc, token = _service(args)
    with svc:
        paths = svc.export(args.name, args.out, args.format, admin_token=token)
    if args.json:
        emit_json({"written": [str(p) for p in paths]})
    else:
        for p in paths:
            print(p)
    return 0


def run_close(args: argparse.Namespace) -> int:
    svc, token = _service(args)
    with svc:
        info = svc.close_study(args.name, admin_token=token)
    if args.json:
        emit_json(info)
    else:
        print(f"study {info['name']} closed ({info['participants']} participants, {info['answers']} answers)")
    return 0
