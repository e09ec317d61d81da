"""sha256 checks of weights files and the trust-on-first-use record ``<cache>/checksums.json``.

A :class:`~lookalike.embed.config.WeightFile` may carry a full sha256 digest or a prefix of at least
8 hex digits (torchvision's files name one: ``alexnet-owt-7be5be79.pth``). Files whose official
digest is not published (``sha256=None``) are pinned by the first verified download: the record
keeps the digest, and later verifications and imports must match it. For extracted archives the
record also keeps the digest of every extracted file (``files``), so the folder can be verified
after the archive itself is gone.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lookalike.atomic import atomic_write_json
from lookalike.embed.weights.cachefs import file_lock
from lookalike.errors import WeightsCorruptError
from lookalike.paths import weights_dir

if TYPE_CHECKING:
    from lookalike.embed.config import WeightFile

log = logging.getLogger(__name__)

RECORD = "checksums.json"
MIN_PREFIX = 8
_HEX = re.compile(r"[0-9a-f]+")


def normalise_expected(expected: str) -> str:
    """A lower-case hex digest or prefix; raises ``ValueError`` for anything else."""
    value = expected.strip().lower()
    if not (MIN_PREFIX <= len(value) <= 64 and _HEX.fullmatch(value)):
        raise ValueError(f"not a sha256 digest or prefix of >= {MIN_PREFIX} hex digits: {expected!r}")
    return value


def digest_matches(expected: str, actual: str) -> bool:
    """Whether ``actual`` (full hex digest) matches ``expected`` (full digest or prefix)."""
    return actual.lower().startswith(normalise_expected(expected))


def check(expected: str, actual: str, what: str) -> None:
    """Raise :class:`WeightsCorruptError` unless the digests match."""
    if not digest_matches(expected, actual):
        raise WeightsCorruptError(f"{what}: sha256 {actual} does not match the expected {expected}")


def record_path() -> Path:
    return weights_dir() / RECORD


def read_record(path: Path | None = None) -> dict[str, dict[str, Any]]:
    """All entries of a ``checksums.json`` (ours by default), by weights file name."""
    path = path or record_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable checksum record %s: %s", path, exc)
        return {}
    entries = data.get("files", {}) if isinstance(data, dict) else {}
    return {k: v for k, v in entries.items() if isinstance(v, dict) and isinstance(v.get("sha256"), str)}


def entry(name: str) -> dict[str, Any] | None:
    """The record of one weights file, if any."""
    return read_record().get(name)


def update(name: str, value: dict[str, Any] | None) -> None:
    """Set (or delete, with ``None``) the record of ``name``; written atomically under a lock."""
    with file_lock(RECORD):
        entries = read_record()
        if value is None:
            entries.pop(name, None)
        else:
            entries[name] = value
        atomic_write_json(record_path(), {"version": 1, "files": entries})


def expected_digest(wf: WeightFile) -> str | None:
    """The digest (or prefix) ``wf`` must match: the catalog's, else the pinned one, else ``None``."""
    if wf.sha256:
        return wf.sha256
    rec = entry(wf.name)
    return rec["sha256"] if rec else None
