"""Device choice at call time: CUDA when present, else the CPU with every core."""

from __future__ import annotations

import os

import torch


def cpu_cores() -> int:
    """Cores this process may run on (its CPU affinity, not the machine's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """``None`` -> ``cuda`` if available, else ``cpu``; an explicit choice is honoured."""
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cpu":
        cores = cpu_cores()
        if torch.get_num_threads() != cores:
            torch.set_num_threads(cores)
    return dev
