"""The app in a real browser (headless Chromium): seconds from an upload on Compare until every
metric's column has drawn its pictures, and seconds per participant trial (key press until the
next screen is drawn), on the 243 real photos indexed under effnet-lite0 and tiny-vit.

    PYTHONPATH=. python benchmarks/ui.py [--library DIR] [--uploads 6] [--trials 20]

Writes benchmarks/results/ui.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import RESULTS, photo_paths  # noqa: E402

METRICS = ["effnet-lite0", "tiny-vit"]
TOKEN = "benchmark-admin-token"


def summary(xs: list[float]) -> dict[str, float]:
    return {"n": len(xs), "median_s": statistics.median(xs), "mean_s": statistics.fmean(xs),
            "min_s": min(xs), "max_s": max(xs)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--library", type=Path, default=None, help="reuse (or build) the library here")
    ap.add_argument("--uploads", type=int, default=6)
    ap.add_argument("--trials", type=int, default=20)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    from lookalike.ui import browser

    photos = photo_paths()
    work = Path(tempfile.mkdtemp(prefix="lookalike-ui-bench-"))
    lib = args.library or work / "lib"
    start = time.perf_counter()
    if not (lib / "library.db").is_file():
        cmd = [sys.executable, "-m", "lookalike", "index", *photos, "--library", str(lib), "-q"]
        for m in METRICS:
            cmd += ["-m", m]
        subprocess.run(cmd, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    index_s = time.perf_counter() - start
    out: dict[str, object] = {"photos": len(photos), "metrics": METRICS, "index_s": index_s,
                              "machine": platform.processor() or platform.machine()}
    with browser.serve(lib, TOKEN, work / "server.log") as server, sync_playwright() as pw:
        chrome = browser.launch(pw)
        page = chrome.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        uploads = [browser.compare_upload(page, server, Path(p), METRICS)
                   for p in photos[10:10 + args.uploads + 1]]
        out["upload_to_columns"] = {"first_s": uploads[0], **summary(uploads[1:])}
        link = browser.create_study(page, server, f"bench-{int(time.time())}", {
            "Random queries": "40", "Neighbour ranks": "1-5", "Trials per participant": str(args.trials),
            "Practice trials": "1", "Sentinels (attention checks)": "2", "Too fast below (ms)": "0"})
        phone = chrome.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
        visit = browser.participate(phone.new_page(), link + "&PROLIFIC_PID=bench")
        out["trial"] = summary(visit.trial_seconds)
        chrome.close()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ui.json").write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
