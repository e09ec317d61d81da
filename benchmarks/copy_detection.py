"""Benchmark: copy detection on the real photos, every available metric against a phash baseline.

Gallery = every photo (embedded from its file, as the indexer does). Queries = every photo under
each transformation of :data:`lookalike.search.augment.TRANSFORMS` (crop, downscale, JPEG,
colour jitter, flip, rotation, a combination), parameters drawn from fixed seeds. The one relevant
gallery item of a query is its source photo. Reports recall@1, recall@5 and mAP per transformation
and over all of them, for each metric (skipping, with a note, those whose weights are missing) and
for a 64-bit perceptual hash (imagehash.phash, Hamming distance, ties broken at random).

``--variants`` also runs effnet-lite0 with other preprocessing choices (resize, interpolation,
size, mean/std) on the same queries. Usage::

    PYTHONPATH=. python benchmarks/copy_detection.py [--limit 60] [--variants]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import photo_paths  # noqa: E402
from lookalike.embed.config import MetricConfig, Preprocess  # noqa: E402
from lookalike.embed.images import load_image
from lookalike.embed.factory import create_metric
from lookalike.embed.registry import get_config, list_metrics
from lookalike.errors import WeightsMissingError
from lookalike.search.augment import TRANSFORMS, apply
from lookalike.search.evaluate import mean_average_precision, rank_by_distance, recall_at_k

log = logging.getLogger("bench.copy")
IMAGENET = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}


def make_queries(originals: list[Any], seed: int = 0) -> tuple[list[Any], np.ndarray, list[str]]:
    """Transformed images, the gallery index of each one's source, and each one's transformation."""
    images, sources, names = [], [], []
    for t_index, name in enumerate(TRANSFORMS):
        for i, original in enumerate(originals):
            images.append(apply(name, original, [seed, t_index, i]))
            sources.append(i)
            names.append(name)
    return images, np.array(sources), names


def scores(distances: np.ndarray, sources: np.ndarray, names: list[str]) -> dict[str, dict[str, float]]:
    """recall@1, recall@5, mAP per transformation and over all queries."""
    ranked = rank_by_distance(distances)
    out = {}
    names_arr = np.array(names)
    for name in [*dict.fromkeys(names), "all"]:
        sel = np.ones(len(names), bool) if name == "all" else names_arr == name
        out[name] = {"recall@1": round(recall_at_k(ranked[sel], sources[sel], 1), 4),
                     "recall@5": round(recall_at_k(ranked[sel], sources[sel], 5), 4),
                     "mAP": round(mean_average_precision(ranked[sel], sources[sel]), 4)}
    return out


def run_metric(config: MetricConfig, paths: list[str], queries: list[Any], sources: np.ndarray,
               names: list[str]) -> dict[str, Any]:
    metric = create_metric(config, device="cpu")
    t = time.perf_counter()
    gallery = metric.embed_paths(paths, progress=False)
    if gallery.failures:
        raise RuntimeError(f"gallery photos failed: {gallery.failures}")
    qv = metric.embed(queries)
    secs = time.perf_counter() - t
    res = scores(metric.distances(qv, gallery.vectors), sources, names)
    return {"preprocess": dataclasses.asdict(config.preprocess), "options": config.options,
            "embed_s": round(secs, 1), "images_per_s": round((len(paths) + len(queries)) / secs, 1),
            "scores": res}


def run_phash(originals: list[Any], queries: list[Any], sources: np.ndarray, names: list[str]) -> dict[str, Any]:
    import imagehash

    def bits(img: Any) -> np.ndarray:
        return imagehash.phash(img).hash.reshape(-1)

    g = np.stack([bits(im) for im in originals])
    q = np.stack([bits(im) for im in queries])
    hamming = (q[:, None, :] != g[None, :, :]).sum(-1).astype(np.float64)
    jitter = np.random.default_rng(0).uniform(0, 0.5, hamming.shape)  # random tie-break
    return {"method": "imagehash.phash (64-bit), Hamming distance", "scores": scores(hamming + jitter, sources, names)}


def variants(base: MetricConfig) -> dict[str, MetricConfig]:
    """Preprocessing alternatives for effnet-lite0 (the catalog entry is "catalog")."""
    pre = base.preprocess
    return {
        "shorter-crop": dataclasses.replace(base, preprocess=dataclasses.replace(pre, resize="shorter-crop")),
        "bilinear": dataclasses.replace(base, preprocess=dataclasses.replace(pre, interpolation="bilinear")),
        "size-288": dataclasses.replace(base, preprocess=Preprocess(288, pre.resize, pre.interpolation)),
        "imagenet-mean-std": dataclasses.replace(base, options={**base.options, **IMAGENET}),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=None, help="use only the first N photos")
    ap.add_argument("--metrics", nargs="*", default=None, help="default: every registered metric")
    ap.add_argument("--variants", action="store_true", help="also effnet-lite0 preprocessing variants")
    ap.add_argument("--out", default="benchmarks/results/copy_detection.json")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    paths = photo_paths()[: args.limit]
    originals = [load_image(p) for p in paths]  # decoded once, for every transformation and phash
    queries, sources, names = make_queries(originals)
    log.info("%d gallery photos, %d queries", len(paths), len(queries))
    result: dict[str, Any] = {"photos": len(paths), "queries": len(queries), "transforms": list(TRANSFORMS),
                              "metrics": {}, "skipped": {}, "variants": {}}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:  # after every step: partial results survive an interrupted run
        out.write_text(json.dumps(result, indent=2) + "\n")

    result["phash"] = run_phash(originals, queries, sources, names)
    save()
    log.info("phash: %s", result["phash"]["scores"]["all"])
    for name in args.metrics or list_metrics():
        try:
            result["metrics"][name] = run_metric(get_config(name), paths, queries, sources, names)
            log.info("%s: %s", name, result["metrics"][name]["scores"]["all"])
            save()
        except WeightsMissingError as exc:
            result["skipped"][name] = f"weights missing: {exc}"
            log.warning("skipped %s: weights missing", name)
    if args.variants:
        for vname, config in variants(get_config("effnet-lite0")).items():
            result["variants"][vname] = run_metric(config, paths, queries, sources, names)
            log.info("effnet-lite0 %s: %s", vname, result["variants"][vname]["scores"]["all"])
            save()
    save()
    print(json.dumps({k: v["scores"]["all"] for k, v in
                      {"phash": result["phash"], **result["metrics"],
                       **{f"effnet-lite0/{k}": v for k, v in result["variants"].items()}}.items()}, indent=2))


if __name__ == "__main__":
    main()
