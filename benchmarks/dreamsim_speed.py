"""DreamSim metrics: model-only images/s in fp32 and int8 (dynamic quantisation of nn.Linear) against
the roofline measured in the same run (model FLOPs per image / measured fp32 matmul FLOP/s), and the
top-10 neighbour agreement of int8 with fp32 on the real photos.

Weights are seeded random ones in the official layouts (real ones cannot be downloaded here): speed
does not depend on the values; the int8 agreement on random weights is indicative only.

    python benchmarks/dreamsim_speed.py [--metric M ...] [--photos 32] [--batch-size 16]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import machine, matmul_flops, model_flops, photo_paths, write_result  # noqa: E402

METRICS = ["dreamsim", "dreamsim-dino-vitb16", "dreamsim-dino-vitb16-patch", "dreamsim-dinov2-vitb14",
           "dreamsim-dinov2-vitb14-patch", "dreamsim-clip-vitb32", "dreamsim-openclip-vitb32",
           "dreamsim-synclr-vitb16", "dino-vitb16", "clip-vitb32", "openclip-vitb32"]
TOP_K = 10


def top_k(vectors: np.ndarray, k: int = TOP_K) -> np.ndarray:
    d = 1.0 - vectors.astype(np.float64) @ vectors.T.astype(np.float64)
    np.fill_diagonal(d, np.inf)
    return np.argsort(d, axis=1, kind="stable")[:, :k]


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Mean fraction of each image's top-k neighbours that both vector sets share."""
    ta, tb = top_k(a), top_k(b)
    return float(np.mean([len(set(x) & set(y)) / TOP_K for x, y in zip(ta, tb)]))


def timed_embed(metric, arrays: np.ndarray, batch_size: int) -> tuple[np.ndarray, float]:
    metric.embed_arrays(arrays[:2])  # warm-up
    start = time.perf_counter()
    out = [metric.embed_arrays(arrays[i:i + batch_size]) for i in range(0, len(arrays), batch_size)]
    return np.concatenate(out), len(arrays) / (time.perf_counter() - start)


def bench(name: str, arrays: np.ndarray, batch_size: int) -> dict:
    from lookalike.embed.backbones import fake_weights
    from lookalike.embed.factory import create_metric
    from lookalike.embed.registry import get_config
    from lookalike.paths import weights_dir

    config = get_config(name)
    fake_weights.write_metric_weights(config, weights_dir(), seed=0)
    fp32 = create_metric(name, device="cpu")
    flops = model_flops(fp32.module, config.preprocess.size)
    v32, ips32 = timed_embed(fp32, arrays, batch_size)
    del fp32
    int8 = create_metric(name, device="cpu", precision="int8")
    v8, ips8 = timed_embed(int8, arrays, batch_size)
    del int8
    return {"metric": name, "dim": config.dim, "images": len(arrays), "batch_size": batch_size,
            "gflop_per_image": flops / 1e9, "fp32_img_s": ips32, "int8_img_s": ips8,
            "int8_speedup": ips8 / ips32, "int8_top10_agreement": agreement(v32, v8)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--metric", action="append", help="metric(s) to measure (default: all DreamSim ones)")
    parser.add_argument("--photos", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()

    from lookalike.embed.images import load_image
    from lookalike.embed.preprocess import prepare
    from lookalike.embed.registry import get_config

    pre = get_config("dreamsim").preprocess
    arrays = np.stack([prepare(load_image(p), pre) for p in photo_paths()[: args.photos]])
    with tempfile.TemporaryDirectory(prefix="dreamsim-bench-") as home:
        os.environ["LOOKALIKE_HOME"] = home
        flops_before = matmul_flops()
        rows = []
        for name in args.metric or METRICS:
            rows.append(bench(name, arrays, args.batch_size))
            r = rows[-1]
            print(f"  {name}: fp32 {r['fp32_img_s']:.2f} img/s, int8 {r['int8_img_s']:.2f} img/s", flush=True)
        flops_after = matmul_flops()
    # the roofline takes the better of the two matmul measurements (the cores are shared)
    flops_per_s = max(flops_before, flops_after)
    for r in rows:
        r["roofline_img_s"] = flops_per_s / (r["gflop_per_image"] * 1e9)
        r["fp32_fraction_of_roofline"] = r["fp32_img_s"] / r["roofline_img_s"]
    print(f"fp32 matmul: {flops_before / 1e9:.1f} GFLOP/s before, {flops_after / 1e9:.1f} after   {machine()}")
    print(f"{'metric':<30} {'GFLOP/img':>9} {'roofline':>9} {'fp32':>7} {'int8':>7} {'int8/fp32':>9} "
          f"{'fp32/roof':>9} {'int8 top10':>10}")
    for r in rows:
        print(f"{r['metric']:<30} {r['gflop_per_image']:>9.2f} {r['roofline_img_s']:>9.2f} "
              f"{r['fp32_img_s']:>7.2f} {r['int8_img_s']:>7.2f} {r['int8_speedup']:>9.2f} "
              f"{r['fp32_fraction_of_roofline']:>9.2f} {r['int8_top10_agreement']:>10.3f}")
    path = write_result("dreamsim_speed", {"machine": machine(), "matmul_gflop_s": flops_per_s / 1e9,
                                           "matmul_gflop_s_before": flops_before / 1e9,
                                           "matmul_gflop_s_after": flops_after / 1e9,
                                           "weights": "seeded random, official layouts",
                                           "metrics": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
