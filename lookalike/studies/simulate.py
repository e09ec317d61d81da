"""Simulated participants answering through the service (tests, benchmarks, demos).

A simulated person sees only what a real one sees (image tokens and letters); the service
resolves the tokens to files server side, as the UI does, and a ``judge`` picks an option.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from lookalike.library.service import Library

Judge = Callable[[Path, Sequence[Path]], int]


def distance_judge(library: Library, metric: str, temperature: float, rng: np.random.Generator) -> Judge:
    """A person who sees like ``metric``: picks option i with probability softmax(-d_i / (T * s)),
    d the cosine distance to the reference (stored vectors of ``library``), s the mean of the distances (so ``T``
    does not depend on the metric's scale)."""

    def judge(ref: Path, options: Sequence[Path]) -> int:
        ids = [library.id_for_path(p) for p in (ref, *options)]
        v = library.vectors(metric, ids)
        v = v / np.linalg.norm(v, axis=1, keepdims=True)
        d = 1.0 - v[1:] @ v[0]
        w = np.exp(-(d - d.min()) / (temperature * max(float(d.mean()), 1e-12)))
        return int(rng.choice(len(options), p=w / w.sum()))

    return judge


def run_participant(service: Any, public_id: str, judge: Judge, rng: np.random.Generator,
                    careless: bool = False, params: dict[str, str] | None = None,
                    response_ms: Callable[[], float] | None = None, limit: int | None = None) -> dict[str, Any]:
    """Join and answer every trial (or ``limit`` of them); returns the last progress/receipt."""
    state = service.join(public_id, params=params)
    token = state["participant"]
    done = 0
    while limit is None or done < limit:
        trial = service.next_trial(public_id, token)
        if trial["finished"] or "options" not in trial:
            return trial
        if careless:
            pick = int(rng.integers(len(trial["options"])))
        else:
            ref = service.image_path(public_id, trial["reference"])
            pick = judge(ref, [service.image_path(public_id, o["image"]) for o in trial["options"]])
        state = service.record_answer(public_id, token, trial["index"], trial["options"][pick]["letter"],
                                      response_ms=response_ms() if response_ms else None)
        done += 1
    return state
