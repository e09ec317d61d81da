"""Study service speed: answer-recording latency under 30 concurrent participants (SQLite and
PostgreSQL), and analysis time for 10,000 answers.

    python benchmarks/studies.py [--photos DIR] [--participants 30] [--answers 40] [--pg URL]

Indexes 40 real photos under the test metric ``tiny-vit`` into a temporary library (and into a
PostgreSQL schema when ``--pg`` or ``$LOOKALIKE_TEST_PG_URL`` is given), creates a retrieval study,
then runs ``--participants`` threads, each with its own service (connection pool), joining and
answering every trial as fast as it can; ``record_answer`` and ``next_trial`` calls are timed, with
one service per participant (own connection pool) and with one service shared by all threads.
Analysis: ``analyse`` (2,000 bootstrap replicates) on 10,000 simulated answers (250 participants
x 40), and ``StudyService.results`` on the database the latency run filled. Results in
``benchmarks/results/studies.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from contextlib import nullcontext
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from benchmarks.common import PHOTOS, machine, photo_paths, write_result  # noqa: E402

ADMIN = "bench"


def index(photos: list[str], folder: Path, url: str | None) -> None:
    from lookalike.library.folder import LibraryFolder
    from lookalike.indexer.run import IndexOptions, index_library

    with LibraryFolder.open(folder, db_url=url, create=True, writable=True) as lib:
        index_library(lib, photos, IndexOptions(metrics=["tiny-vit"], progress=False))


def latency(lib: Path, participants: int, answers: int, shared: bool = False) -> dict[str, object]:
    """Every participant a thread; ``shared``: one service for all threads (a server's way),
    else one service (connection pool) each."""
    from lookalike.studies.config import StudyConfig
    from lookalike.studies.service import StudyService

    name = f"bench-{uuid.uuid4().hex[:6]}"
    with StudyService.open(lib, admin_token=ADMIN) as svc:
        ids = svc.library.ids("tiny-vit").tolist()
        rng = np.random.default_rng(0)
        triplets = [[int(x) for x in rng.choice(ids, 3, replace=False)] for _ in range(answers * 2)]
        cfg = StudyConfig(kind="2afc", triplets=triplets, trials_per_participant=answers, practice_trials=0,
                          sentinels=0, min_response_ms=0)
        pid = svc.create_study(name, cfg, admin_token=ADMIN)["public_id"]
    rec: list[float] = []
    nxt: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(participants)

    common = StudyService.open(lib) if shared else None

    def run(i: int) -> None:
        mine_r, mine_n = [], []
        with (nullcontext(common) if common else StudyService.open(lib)) as svc:
            token = svc.join(pid, params={"PROLIFIC_PID": f"b{i}"})["participant"]
            barrier.wait()
            while True:
                t0 = time.perf_counter()
                t = svc.next_trial(pid, token)
                t1 = time.perf_counter()
                if t["finished"]:
                    break
                svc.record_answer(pid, token, t["index"], "A" if i % 2 else "B")
                mine_n.append(t1 - t0)
                mine_r.append(time.perf_counter() - t1)
        with lock:
            rec.extend(mine_r)
            nxt.extend(mine_n)

    start = time.perf_counter()
    threads = [threading.Thread(target=run, args=(i,)) for i in range(participants)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - start
    if common is not None:
        common.close()
    with StudyService.open(lib, admin_token=ADMIN) as svc:
        stored = svc.study_info(name, admin_token=ADMIN)["answers"]
        t0 = time.perf_counter()
        svc.results(name, admin_token=ADMIN, replicates=2000)
        results_s = time.perf_counter() - t0
    r, n = np.array(rec) * 1000, np.array(nxt) * 1000
    return {"participants": participants, "services": "one shared" if shared else "one per participant",
            "answers": len(rec), "stored": stored, "wall_s": round(wall, 2),
            "answers_per_s": round(len(rec) / wall, 1),
            "record_answer_ms": {"p50": round(float(np.percentile(r, 50)), 2), "p99": round(float(np.percentile(r, 99)), 2)},
            "next_trial_ms": {"p50": round(float(np.percentile(n, 50)), 2), "p99": round(float(np.percentile(n, 99)), 2)},
            "results_s": round(results_s, 3)}


def analysis_time(n_participants: int = 250, per: int = 40, replicates: int = 2000) -> dict[str, object]:
    from lookalike.studies.analysis import Answers, ExclusionRule, analyse, simulate_choices

    rng = np.random.default_rng(0)
    m = 5
    part, choice, _ = simulate_choices(np.array([3.0, 2.0, 1.5, 1.0, 0.5]), n_participants, per, rng, 0.1)
    n = len(part)
    ans = Answers([f"m{i}" for i in range(m)], [str(i) for i in range(n_participants)], part,
                  rng.integers(0, 400, n), rng.random(n) < 0.1, rng.integers(1, 11, n),
                  np.tile(np.arange(m), (n, 1)), choice, np.zeros(n, int), rng.lognormal(7, 0.5, n),
                  np.zeros(n, bool))
    t0 = time.perf_counter()
    analyse(ans, ExclusionRule(), replicates=replicates)
    return {"answers": n, "participants": n_participants, "metrics": m, "replicates": replicates,
            "analyse_s": round(time.perf_counter() - t0, 3)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=Path, default=PHOTOS)
    ap.add_argument("--participants", type=int, default=30)
    ap.add_argument("--answers", type=int, default=40, help="answers per participant")
    ap.add_argument("--pg", default=os.environ.get("LOOKALIKE_TEST_PG_URL"))
    args = ap.parse_args()
    photos = photo_paths(args.photos)[:40]
    out: dict[str, object] = {"machine": machine(), "analysis_10k": analysis_time()}
    print(json.dumps(out["analysis_10k"]))
    with tempfile.TemporaryDirectory() as tmp:
        backends = {"sqlite": None}
        if args.pg:
            import sqlalchemy as sa

            from tests.dbfixtures import pg_schema_url

            schema = f"bench_{uuid.uuid4().hex[:8]}"
            engine = sa.create_engine(args.pg)
            with engine.begin() as conn:
                conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
            backends["postgres"] = pg_schema_url(args.pg, schema)
        try:
            for name, url in backends.items():
                lib = Path(tmp) / name
                index(photos, lib, url)
                for shared in (False, True):
                    key = f"{name}_{'shared' if shared else 'separate'}"
                    out[key] = latency(lib, args.participants, args.answers, shared)
                    print(key, json.dumps(out[key]))
        finally:
            if args.pg:
                with engine.begin() as conn:
                    conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    write_result("studies", out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
