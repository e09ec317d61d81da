"""DiffSim speed on this machine: seconds per new image, per cached pair, and re-ranking 100 candidates.

Two models, both with random weights (no SD 1.5 weights exist here; speed does not depend on the
values): ``tiny-diffsim`` (the test metric, 32 px) and the SD 1.5 architecture itself (860M-parameter
U-Net, 512 px, the ``diffsim-sd15`` config with ``random_init``). "New image" = decode + VAE + U-Net
up to the hooked layer + writing the cache file; "cached pair" = reading two feature files and the
aligned attention score. The SD 1.5 re-rank of 100 candidates on the CPU is extrapolated from those
two figures (marked ``estimated``) unless ``--sd15-images`` >= 101.

    python benchmarks/diffsim.py [--sd15-images 2] [--candidates 100]

Writes ``benchmarks/results/diffsim.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import tempfile
import time
from typing import Any

import torch

from benchmarks.common import RESULTS, photo_paths


def _metric(name: str, random_sd15: bool = False) -> Any:
    from lookalike.embed.factory import pairwise_metric
    from lookalike.embed.registry import get_config

    config = get_config(name)
    if random_sd15:  # the real architecture with random weights: no download
        config = dataclasses.replace(config, name="diffsim-sd15-random", weights=(),
                                     options={**config.options, "random_init": True, "files": {}})
    return pairwise_metric(config, device="cpu")


def measure(metric: Any, photos: list[str], n_new: int, n_pairs: int, candidates: int | None) -> dict[str, Any]:
    """Time fresh features (cold cache), cached pairs, and optionally a cold + warm re-rank."""
    out: dict[str, Any] = {"metric": metric.name, "image_size": metric.config.preprocess.size}
    t0 = time.perf_counter()
    metric.features(photos[:n_new])
    out["new_image_s"] = (time.perf_counter() - t0) / n_new
    cached = photos[:n_new]
    pairs = [(cached[i % n_new], cached[(i + 1) % n_new]) for i in range(n_pairs)]
    t0 = time.perf_counter()
    metric.distance_pairs([a for a, _ in pairs], [b for _, b in pairs])
    out["cached_pair_s"] = (time.perf_counter() - t0) / n_pairs
    feats = metric.features(cached[:1])[0]
    out["feature_bytes_per_image"] = sum(t.numel() * t.element_size() for t in feats.values())
    out["feature_shape"] = list(feats["q"].shape)
    if candidates:
        query, gallery = photos[n_new], photos[n_new + 1:n_new + 1 + candidates]
        t0 = time.perf_counter()
        metric.distance_pairs([query] * len(gallery), gallery)
        out[f"rerank_{candidates}_cold_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        metric.distance_pairs([query] * len(gallery), gallery)
        out[f"rerank_{candidates}_warm_s"] = time.perf_counter() - t0
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sd15-images", type=int, default=2, help="new images through SD 1.5 (0: skip)")
    parser.add_argument("--candidates", type=int, default=100)
    parser.add_argument("--tiny-threads", type=int, default=1,
                        help="torch threads for the tiny model (its ops are too small to split)")
    args = parser.parse_args()
    photos = photo_paths()
    results: dict[str, Any] = {"machine": platform.processor() or platform.machine(),
                               "cores": len(os.sched_getaffinity(0)), "device": "cpu",
                               "torch": torch.__version__, "load_average_before": os.getloadavg()}
    with tempfile.TemporaryDirectory() as home:
        os.environ["LOOKALIKE_HOME"] = home  # a cold feature cache
        metric = _metric("tiny-diffsim")
        torch.set_num_threads(args.tiny_threads)  # after pick_device, which sets every core
        tiny = measure(metric, photos, 20, 200, args.candidates)
        tiny["threads"] = torch.get_num_threads()
        results["tiny-diffsim"] = tiny
        print(json.dumps(tiny, indent=2))
        if args.sd15_images > 0:
            t0 = time.perf_counter()
            sd = _metric("diffsim-sd15", random_sd15=True)
            build_s = time.perf_counter() - t0  # building picks every core again
            n = args.sd15_images
            full = n > args.candidates
            row = measure(sd, photos, n, 20, args.candidates if full else None)
            row["build_s"] = build_s
            row["threads"] = torch.get_num_threads()
            row["unet_params"] = sum(p.numel() for p in sd.scorer.unet.parameters())
            if not full:
                row[f"rerank_{args.candidates}_cold_s_estimated"] = (
                    (args.candidates + 1) * row["new_image_s"] + args.candidates * row["cached_pair_s"])
                row[f"rerank_{args.candidates}_warm_s_estimated"] = args.candidates * row["cached_pair_s"]
            results["diffsim-sd15-random"] = row
            print(json.dumps(row, indent=2))
    results["load_average_after"] = os.getloadavg()  # other jobs shared these cores
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "diffsim.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
