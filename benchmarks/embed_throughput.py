"""Images/s of each available metric on the real photos: end to end (decode + resize in worker
processes, overlapped with inference) and model only (pre-decoded inputs), beside the machine's
roofline measured in the same run (model FLOPs per image / measured fp32 matmul FLOP/s).

    python benchmarks/embed_throughput.py [--metric M ...] [--limit N] [--batch-size B]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))

from benchmarks.common import machine, matmul_flops, model_flops, photo_paths, write_result  # noqa: E402
from lookalike.embed.pipeline import prepare_files  # noqa: E402
from lookalike.embed.factory import create_metric  # noqa: E402
from lookalike.embed.registry import all_configs  # noqa: E402
from lookalike.embed.weights import is_present  # noqa: E402


def available_metrics() -> list[str]:
    return [n for n, c in all_configs().items()
            if not c.test_only and all(is_present(w) for w in c.weights)]


def bench_metric(name: str, paths: list[str], batch_size: int, flops_per_s: float) -> dict:
    metric = create_metric(name)
    pre = metric.config.preprocess
    arrays = np.stack([p.arrays[pre.key] for p in prepare_files(paths, [pre], workers=0)
                       if p.arrays is not None])
    metric.embed_arrays(arrays[:batch_size])  # warm-up
    start = time.perf_counter()
    for i in range(0, len(arrays), batch_size):
        metric.embed_arrays(arrays[i:i + batch_size])
    model_only = len(arrays) / (time.perf_counter() - start)

    start = time.perf_counter()
    result = metric.embed_paths(paths, batch_size=batch_size, progress=False)
    end_to_end = len(result.paths) / (time.perf_counter() - start)

    start = time.perf_counter()
    for _ in prepare_files(paths, [pre], workers=0):
        pass
    decode_only = len(paths) / (time.perf_counter() - start)

    flops = model_flops(metric.module, pre.size)
    roofline = flops_per_s / flops
    return {"metric": name, "images": len(paths), "batch_size": batch_size,
            "model_only_img_s": model_only, "end_to_end_img_s": end_to_end,
            "decode_only_img_s_1proc": decode_only,
            "end_to_end_over_model_only": end_to_end / model_only,
            "gflop_per_image": flops / 1e9, "roofline_img_s": roofline,
            "model_only_fraction_of_roofline": model_only / roofline}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--metric", action="append", help="metric(s) to measure (default: all available)")
    parser.add_argument("--limit", type=int, default=0, help="use only the first N photos")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    paths = photo_paths()[: args.limit or None]
    flops_per_s = matmul_flops()
    rows = [bench_metric(m, paths, args.batch_size, flops_per_s) for m in args.metric or available_metrics()]
    print(f"fp32 matmul: {flops_per_s / 1e9:.1f} GFLOP/s   {machine()}")
    print(f"{'metric':<22} {'GFLOP/img':>9} {'roofline':>9} {'model':>8} {'end2end':>8} {'e2e/model':>9} "
          f"{'model/roof':>10}")
    for r in rows:
        print(f"{r['metric']:<22} {r['gflop_per_image']:>9.2f} {r['roofline_img_s']:>9.1f} "
              f"{r['model_only_img_s']:>8.1f} {r['end_to_end_img_s']:>8.1f} "
              f"{r['end_to_end_over_model_only']:>9.2f} {r['model_only_fraction_of_roofline']:>10.2f}")
    path = write_result("embed_throughput", {"machine": machine(), "matmul_gflop_s": flops_per_s / 1e9,
                                             "metrics": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
