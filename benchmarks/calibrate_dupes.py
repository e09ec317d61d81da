"""Calibrate near-duplicate thresholds and distance bands for every available metric.

For each photo of the real set (embedded from its file, as the indexer does) it measures the
distance to known edits of itself and to other photos:

* re-encoded: JPEG q90 / q70, 70% and half size (``augment.REENCODE``);
* edited/cropped: 90% and 80% crops, colour jitter, 5-degree rotation, a quarter-size thumbnail,
  a crop+jitter+downscale+JPEG combination (``augment.EDITS``);
* same scene (proxy): two framings of one photo, opposite corners each keeping 60% of the sides,
  compared with each other (the photos hold no real multi-shot scenes);
* different: every pair of different photos.

Band edges (``dupes.bands_from_samples``): each "same" band ends at the 95th percentile of its own
distances, "similar" at the 2nd percentile of different-photo distances; edges are made
non-decreasing. The default grouping threshold is the "edited/cropped" edge, lowered if needed
so that at most 0.1% of different-photo pairs fall under it. Writes
``lookalike/search/thresholds.json`` (merging with metrics already there). Usage::

    PYTHONPATH=. python benchmarks/calibrate_dupes.py [--metrics effnet-lite0] [--limit N]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import ROOT, photo_paths  # noqa: E402
from lookalike.embed.images import load_image  # noqa: E402
from lookalike.embed.factory import create_metric
from lookalike.embed.registry import list_metrics
from lookalike.errors import WeightsMissingError
from lookalike.search.augment import EDITS, REENCODE, apply, reframe
from lookalike.search.dupes import LABELS, bands_from_samples

log = logging.getLogger("bench.calibrate")
OUT = ROOT / "lookalike" / "search" / "thresholds.json"
QUANTILE, SIMILAR_QUANTILE, MAX_FALSE_RATE = 0.95, 0.02, 0.001


def stats(x: np.ndarray) -> dict[str, float]:
    q = np.quantile(x, [0, 0.05, 0.5, 0.95, 0.99, 1])
    return {"n": len(x), **{k: round(float(v), 5) for k, v in zip(("min", "p5", "p50", "p95", "p99", "max"), q)}}


def calibrate_metric(name: str, paths: list[str], seed: int = 0) -> dict[str, Any]:
    metric = create_metric(name, device="cpu")
    gallery = metric.embed_paths(paths, progress=False).vectors
    images = [load_image(p) for p in paths]
    per_kind: dict[str, dict[str, np.ndarray]] = {"re-encoded": {}, "edited": {}}
    for kind, table, prefix in (("re-encoded", REENCODE, "reencode"), ("edited", EDITS, "edit")):
        for t_index, tname in enumerate(table):
            edited = metric.embed([apply(f"{prefix}:{tname}", im, [seed, 100 + t_index, i])
                                   for i, im in enumerate(images)])
            per_kind[kind][tname] = np.diag(metric.distances(edited, gallery))
    pairs = [reframe(im, np.random.default_rng([seed, 200, i])) for i, im in enumerate(images)]
    a = metric.embed([p[0] for p in pairs])
    b = metric.embed([p[1] for p in pairs])
    scene = np.diag(metric.distances(a, b))
    d = metric.distances(gallery, gallery)
    different = d[np.triu_indices(len(d), 1)]
    reencode = np.concatenate(list(per_kind["re-encoded"].values()))
    edited_all = np.concatenate(list(per_kind["edited"].values()))
    bands = bands_from_samples(reencode, edited_all, scene, different, QUANTILE, SIMILAR_QUANTILE)
    limit = float(np.quantile(different, MAX_FALSE_RATE))
    threshold = min(bands[LABELS[1]], limit)
    return {
        "distance": metric.distance_kind,
        "threshold": round(threshold, 5),
        "bands": {k: round(v, 5) for k, v in bands.items()},
        "rates_at_threshold": {
            "re-encoded_found": round(float(np.mean(reencode <= threshold)), 4),
            "edited_found": round(float(np.mean(edited_all <= threshold)), 4),
            "different_pairs_below": round(float(np.mean(different <= threshold)), 5),
        },
        "distances": {
            "re-encoded": {k: stats(v) for k, v in per_kind["re-encoded"].items()},
            "edited": {k: stats(v) for k, v in per_kind["edited"].items()},
            "same scene (two 60% framings)": stats(scene),
            "different photos": stats(different),
            "nearest other photo": stats(np.sort(d + np.eye(len(d)) * 1e9, axis=1)[:, 0]),
        },
        "photos": len(paths),
        "provenance": metric.provenance(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--metrics", nargs="*", default=None, help="default: every registered metric")
    ap.add_argument("--limit", type=int, default=None, help="use only the first N photos")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    paths = photo_paths()[: args.limit]
    table = json.loads(args.out.read_text()) if args.out.is_file() else {"metrics": {}}
    table["method"] = (
        f"benchmarks/calibrate_dupes.py on {len(paths)} real photos: each 'same' band ends at the "
        f"{QUANTILE:.0%} quantile of distances between a photo and its known edits (re-encoded: JPEG q90/q70, "
        "70%/half size; edited: 90%/80% crops, colour jitter, 5-degree rotation, quarter-size thumbnail, a "
        "crop+jitter+downscale+JPEG combination; same "
        "scene: two opposite-corner 60% framings of one photo); 'similar' ends at the "
        f"{SIMILAR_QUANTILE:.0%} quantile of distances between different photos; edges non-decreasing. "
        "threshold = the edited/cropped edge, lowered to keep at most "
        f"{MAX_FALSE_RATE:.1%} of different-photo pairs under it.")
    table["labels"] = [*LABELS, "different"]
    skipped = {}
    for name in args.metrics or list_metrics():
        try:
            entry = calibrate_metric(name, paths)
        except WeightsMissingError as exc:
            skipped[name] = str(exc)
            log.warning("skipped %s: weights missing", name)
            continue
        entry["date"] = dt.date.today().isoformat()
        old = table["metrics"].get(name, {})  # benchmarks/dupes.py --calibrate owns the candidate threshold
        entry.update({k: old[k] for k in ("candidate", "candidate_method") if k in old})
        table["metrics"][name] = entry
        log.info("%s: threshold %.4f bands %s rates %s", name, entry["threshold"], entry["bands"],
                 entry["rates_at_threshold"])
    args.out.write_text(json.dumps(table, indent=2, sort_keys=True) + "\n")
    if skipped:
        log.warning("not calibrated (weights missing): %s", ", ".join(skipped))


if __name__ == "__main__":
    main()
