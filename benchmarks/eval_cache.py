"""Cold vs warm ``lookalike eval 2afc``: how much the feature cache saves on a re-run.

Builds a NIGHTS-layout set of ``--triplets`` triplets from the real photos (PNG, 256x256), then runs
``lookalike eval 2afc --json`` twice as separate processes with one fresh ``LOOKALIKE_HOME``: the
first (cold) builds the metrics and embeds every image, the second (warm) hashes the files, reads
the vectors from the cache and scores. One run of each, as the issue asks; both wall times
include interpreter start-up. The result goes to ``benchmarks/results/eval_cache.json``.

    PYTHONPATH=. python benchmarks/eval_cache.py [--triplets 60] [--metric effnet-lite0 ...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import ROOT, machine, photo_paths, write_result


def build_nights(root: Path, photos: list[str], n: int) -> Path:
    from PIL import Image

    from tests.judgment_data import NIGHTS_HEADER, write_csv

    lines = []
    for i in range(n):
        rels = (f"ref/000/{i:03d}.png", f"distort/000/{i:03d}_0.png", f"distort/000/{i:03d}_1.png")
        for rel, photo in zip(rels, photos[3 * i:3 * i + 3], strict=True):
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            with Image.open(photo) as im:
                im.convert("RGB").resize((256, 256), Image.BICUBIC).save(root / rel)
        lines.append([i, 6, i % 2, 1 - i % 2, *rels, "test", "An image of a photo", i % 3 == 0])
    write_csv(root / "data.csv", NIGHTS_HEADER, lines)
    return root


def timed_eval(data: Path, metrics: list[str], home: Path) -> tuple[float, dict]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LOOKALIKE_HOME": str(home)}
    cmd = [sys.executable, "-m", "lookalike", "eval", "2afc", "-q", "--data", str(data), "--json",
           "--device", "cpu"]
    for m in metrics:
        cmd += ["--metric", m]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"eval failed: {proc.stderr}")
    return elapsed, json.loads(proc.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--triplets", type=int, default=60)
    ap.add_argument("--metric", action="append", dest="metrics")
    args = ap.parse_args()
    metrics = args.metrics or ["effnet-lite0", "tiny-vit"]
    photos = photo_paths()
    n = min(args.triplets, len(photos) // 3)
    with tempfile.TemporaryDirectory() as tmp:
        data = build_nights(Path(tmp) / "nights", photos, n)
        home = Path(tmp) / "home"
        cold, cold_report = timed_eval(data, metrics, home)
        warm, warm_report = timed_eval(data, metrics, home)
    for c, w in zip(cold_report["metrics"], warm_report["metrics"], strict=True):
        assert c["scores"] == w["scores"], "the cached run must give the same scores"
    result = {
        "triplets": n, "images": 3 * n, "metrics": metrics,
        "cold_s": round(cold, 3), "warm_s": round(warm, 3), "warm_over_cold": round(warm / cold, 4),
        "cold_cache": {m["metric"]: m["cache"] for m in cold_report["metrics"]},
        "warm_cache": {m["metric"]: m["cache"] for m in warm_report["metrics"]},
        "scores": {m["metric"]: m["scores"][0]["value"] for m in warm_report["metrics"]},
        "machine": machine(),
        "note": "one run each; separate processes, wall time including interpreter start-up",
    }
    path = write_result("eval_cache", result)
    print(json.dumps(result, indent=2))
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
