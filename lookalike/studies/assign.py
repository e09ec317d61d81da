"""Balanced assignment of trials to a participant (pure functions; the service serialises calls).

Each new participant gets the ``n`` trials that have been assigned least often so far (ties broken
at random), so every trial's count stays within one of every other's as long as ``n`` does not
exceed the number of trials. Their order is random, sentinels go to random places among the main
trials, practice trials come first, and each trial's candidates get a random order on screen.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np


def least_assigned(counts: Mapping[int, int], n: int, rng: np.random.Generator) -> list[int]:
    """The ``n`` trial ids with the lowest counts (random among equal counts), in random order."""
    ids = np.array(sorted(counts), dtype=np.int64)
    if len(ids) == 0 or n <= 0:
        return []
    c = np.array([counts[int(i)] for i in ids], dtype=np.int64)
    order = np.lexsort((rng.random(len(ids)), c))  # by count, then a random key
    chosen = ids[order[:n]]
    return [int(i) for i in rng.permutation(chosen)]


def interleave(main: Sequence[int], sentinels: Sequence[int], rng: np.random.Generator) -> list[int]:
    """``main`` in its order with each sentinel inserted at a uniformly random place."""
    seq = list(main)
    for s in sentinels:
        seq.insert(int(rng.integers(0, len(seq) + 1)), s)
    return seq


@dataclass
class Plan:
    """A participant's sequence: trial ids in the order shown, and each one's slot order."""

    trial_ids: list[int]
    positions: list[list[int]]


def plan_sequence(practice: Sequence[int], main: Sequence[int], sentinels: Sequence[int],
                  slots: Mapping[int, int], rng: np.random.Generator) -> Plan:
    """Practice first (shuffled), then main trials with sentinels among them; ``slots[t]`` is the
    number of candidates of trial ``t``, shown in a random order."""
    ids = [int(i) for i in rng.permutation(np.array(list(practice), dtype=np.int64))] if practice else []
    ids += interleave(main, sentinels, rng)
    return Plan(ids, [[int(x) for x in rng.permutation(slots[t])] for t in ids])
