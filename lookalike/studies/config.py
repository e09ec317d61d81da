"""The design of a study as a typed config, saved as JSON with the study.

Unknown keys (from a newer version, or typos in a hand-written file) are dropped with a warning;
invalid values raise :class:`StudyConfigError`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lookalike.errors import UsageError


KINDS = ("retrieval", "2afc")
QUERY_MODES = ("random", "folder", "ids")

DEFAULT_INSTRUCTIONS = {
    "retrieval": "Each screen shows a reference photo and several candidates labelled A, B, C... "
                 "Pick the candidate that looks most like the reference.",
    "2afc": "Each screen shows a reference photo and two candidates, A and B. "
            "Pick the one that looks more like the reference.",
}
DEFAULT_CONSENT = ("This is a short study of how people judge the similarity of photos. Your answers "
                   "are stored under a pseudonymous id and used for research only. You may stop at any "
                   "time.")


class StudyConfigError(UsageError):
    """A study design that cannot work (too few metrics, bad ranks, unknown kind...)."""


@dataclass
class StudyConfig:
    """What a study shows and to whom.

    ``queries``: ``random`` (``query_count`` library images drawn with ``seed``), ``folder``
    (every indexed image under ``query_folder``) or ``ids`` (``query_ids``, library content ids).
    ``ranks``: neighbour ranks (1 = nearest) a trial is made at, per query. ``triplets``: for
    ``2afc`` studies, given ``[reference, left, right]`` content ids instead of retrievals.
    Exclusion: a participant failing more than ``max_sentinel_failures`` sentinels, or with more
    than ``max_fast_share`` of answers under ``min_response_ms``, is excluded from the analysis.
    """

    kind: str = "retrieval"
    metrics: list[str] = field(default_factory=list)
    queries: str = "random"
    query_count: int = 20
    query_folder: str | None = None
    query_ids: list[int] = field(default_factory=list)
    triplets: list[list[int]] = field(default_factory=list)
    ranks: list[int] = field(default_factory=lambda: list(range(1, 11)))
    trials_per_participant: int = 40
    practice_trials: int = 2
    sentinels: int = 5
    max_sentinel_failures: int = 0
    min_response_ms: float = 300.0
    max_fast_share: float = 0.5
    drop_too_fast: bool = True
    seed: int = 0
    instructions: str = ""
    consent: str = DEFAULT_CONSENT
    completion_code: str = ""
    description: str = ""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        if self.kind not in KINDS:
            raise StudyConfigError(f"unknown study kind {self.kind!r} (choose {', '.join(KINDS)})")
        if self.queries not in QUERY_MODES:
            raise StudyConfigError(f"unknown query mode {self.queries!r} (choose {', '.join(QUERY_MODES)})")
        if len(set(self.metrics)) != len(self.metrics):
            raise StudyConfigError(f"a metric is named twice: {self.metrics}")
        if self.kind == "retrieval" and not 2 <= len(self.metrics) <= 6:
            raise StudyConfigError(f"a retrieval study compares 2 to 6 metrics, got {len(self.metrics)}")
        if self.kind == "2afc" and not self.triplets and len(self.metrics) < 2:
            raise StudyConfigError("a 2afc study needs two or more metrics, or given triplets")
        for t in self.triplets:
            if len(t) != 3:
                raise StudyConfigError(f"a triplet is [reference, left, right], got {t}")
        if not self.triplets and (not self.ranks or min(self.ranks) < 1):
            raise StudyConfigError(f"neighbour ranks start at 1, got {self.ranks}")
        if len(set(self.ranks)) != len(self.ranks):
            raise StudyConfigError(f"a rank is named twice: {self.ranks}")
        if self.queries == "folder" and not self.query_folder and not self.triplets:
            raise StudyConfigError("queries 'folder' needs query_folder")
        if self.queries == "ids" and not self.query_ids and not self.triplets:
            raise StudyConfigError("queries 'ids' needs query_ids")
        for name in ("query_count", "trials_per_participant"):
            if getattr(self, name) < 1:
                raise StudyConfigError(f"{name} must be at least 1")
        for name in ("practice_trials", "sentinels", "max_sentinel_failures"):
            if getattr(self, name) < 0:
                raise StudyConfigError(f"{name} must not be negative")
        if self.min_response_ms < 0 or not 0 <= self.max_fast_share <= 1:
            raise StudyConfigError("min_response_ms must be >= 0 and max_fast_share in [0, 1]")

    @property
    def n_options(self) -> int:
        """Candidates per trial (before identical images are merged)."""
        return 2 if self.kind == "2afc" else len(self.metrics)

    def instructions_text(self) -> str:
        return self.instructions or DEFAULT_INSTRUCTIONS[self.kind]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StudyConfig:
        from lookalike.embed.config import BadConfigError, known_fields

        try:
            return cls(**known_fields(cls, data, "study config"))
        except (TypeError, BadConfigError) as exc:
            raise StudyConfigError(f"bad study config: {exc}") from exc

    def save(self, path: str | os.PathLike[str]) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> StudyConfig:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise StudyConfigError(f"cannot read study config {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise StudyConfigError(f"{path}: a study config is a JSON object")
        return cls.from_dict(data)


def parse_ranks(text: str) -> list[int]:
    """``"1-10"``, ``"1,3,5"`` or ``"1-3,10"`` -> a list of ranks."""
    out: list[int] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part:
                lo, hi = (int(x) for x in part.split("-", 1))
                out.extend(range(lo, hi + 1))
            elif part:
                out.append(int(part))
    except ValueError as exc:
        raise StudyConfigError(f"bad ranks {text!r} (write e.g. 1-10 or 1,3,5)") from exc
    return out
