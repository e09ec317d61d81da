"""Tuning throughput per method on this machine: training triplets per second, time to the best
epoch, and the whole run's wall time (data reading, feature extraction, training, saving).

Data: the hidden-rule triplets of the tests (``tests/tune_data.py``: real photos, "the edit that
keeps the colours is closer") for the 2AFC methods, and blur-vs-noise rankings for CLPIPS. DreamSim
runs on seeded random weights in the official layout (no real weights here); the cost per triplet
is the same. Each method runs once in a fresh ``LOOKALIKE_HOME`` (cold feature cache). The result
goes to ``benchmarks/results/tune.json``.

    PYTHONPATH=. python benchmarks/tune.py [--refs 100] [--lora-refs 24]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import machine, photo_paths, write_result


def run(base: str, data: Path, method: str, **hyper: Any) -> dict[str, Any]:
    from lookalike.tune.trainer import tune

    start = time.perf_counter()
    result = tune(base, data, method, f"bench-{method}-{int(start)}", progress=False, **hyper)
    assert result is not None
    rec = result.record
    return {"base": base, "method": method, "device": rec["device"], "triplets": rec["data"]["triplets"],
            "epochs": len(rec["report"]) - 1, "best_epoch": rec["best_epoch"],
            "triplets_per_second": rec["triplets_per_second"], "time_to_best_epoch_s": rec["time_to_best_s"],
            "wall_s": round(time.perf_counter() - start, 2), "scores": rec["scores"],
            "hyperparameters": {k: rec["hyperparameters"][k] for k in ("lr", "batch_size", "epochs")}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--refs", type=int, default=100, help="reference photos for mlp / tiny LoRA data")
    ap.add_argument("--lora-refs", type=int, default=24, help="reference photos for DreamSim LoRA")
    args = ap.parse_args()
    from lookalike.embed.backbones import fake_weights
    from lookalike.embed.registry import get_config
    from lookalike.paths import weights_dir
    from tests.tune_data import write_rule_nights, write_rule_rankings

    photos = [Path(p) for p in photo_paths()]
    out: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ["LOOKALIKE_HOME"] = str(root / "home")
        nights = write_rule_nights(root / "nights", photos[:args.refs], per_ref=1)
        small = write_rule_nights(root / "small", photos[:args.lora_refs], per_ref=1)
        ranks = write_rule_rankings(root / "ranks", photos[:60])
        fake_weights.write_metric_weights(get_config("dreamsim-clip-vitb32"), weights_dir(), seed=0)
        out.append(run("effnet-lite0", nights, "mlp"))
        out.append(run("tiny-vit", nights, "lora", lr=3e-3, epochs=10, lora_dropout=0.0))
        out.append(run("dreamsim-clip-vitb32", small, "lora", epochs=2))
        out.append(run("lpips-alex-random", ranks, "lpips-linear", lr=3e-2, epochs=40))
    path = write_result("tune", {"machine": machine(), "runs": out})
    for r in out:
        print(f"{r['method']:<13} {r['base']:<22} {r['triplets_per_second']:>9} triplets/s  "
              f"best epoch {r['best_epoch']} after {r['time_to_best_epoch_s']} s  (run {r['wall_s']} s)")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
