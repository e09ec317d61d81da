"""Shared benchmark helpers: the photo set, the machine's measured fp32 matmul rate, JSON output."""

from __future__ import annotations

import csv
import json
import os
import platform
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = Path(os.environ.get("LOOKALIKE_TEST_PHOTOS", ROOT.parent / "shared" / "photos"))
RESULTS = ROOT / "benchmarks" / "results"


def photo_paths(folder: Path = PHOTOS) -> list[str]:
    with open(folder / "MANIFEST.csv", newline="") as fh:
        return [str(folder / row["file"]) for row in csv.DictReader(fh)]


def matmul_flops(n: int = 2048, seconds: float = 2.0) -> float:
    """Measured fp32 matmul FLOP/s on the CPU with torch's current thread count."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    reps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        torch.mm(a, b)
        reps += 1
    return 2 * n**3 * reps / (time.perf_counter() - start)


def model_flops(module: torch.nn.Module, size: int) -> float:
    """FLOPs of one forward pass on one ``size`` x ``size`` image (matmuls and convolutions)."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        module(torch.rand(1, 3, size, size))
    return float(counter.get_total_flops())


def machine() -> dict[str, object]:
    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__}


def write_result(name: str, data: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path
