"""What a weights file is, from its first bytes: checked before a file is pinned or placed.

Accepted: safetensors; torch zip archives (``torch.save``'s format since 1.6: a zip holding
``<name>/data.pkl``); plain zip archives for files that are unpacked. The legacy torch format (a
pickle stream that starts with torch's magic number) is accepted only when the catalog pins the
file's checksum: its bytes are then known, not merely trusted on first use. A plain pickle, or
anything else, is refused. Loading never unpickles code either way (``torch.load(weights_only=True)``
or safetensors), so this check keeps wrong files out of the cache rather than being the only guard.
"""

from __future__ import annotations

import json
import os
import struct
import zipfile
from pathlib import Path

from lookalike.embed.config import WeightFile
from lookalike.errors import WeightsCorruptError

ZIP_MAGIC = b"PK\x03\x04"
#: ``pickle.dumps(0x1950a86a20f9469cfc6c, protocol=2)``: the first record of a legacy torch file.
LEGACY_TORCH_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"
MAX_SAFETENSORS_HEADER = 100 << 20

SAFETENSORS = "safetensors"
TORCH_ZIP = "torch zip archive"
ZIP = "zip archive"
TORCH_LEGACY = "legacy torch file"
PICKLE = "pickle"
UNKNOWN = "unknown"


def sniff(path: str | os.PathLike[str]) -> str:
    """The format of the file at ``path`` (one of the constants above), from its content."""
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        head = fh.read(max(len(LEGACY_TORCH_MAGIC), 16))
        if head.startswith(ZIP_MAGIC):
            return _zip_kind(Path(path))
        if head.startswith(LEGACY_TORCH_MAGIC):
            return TORCH_LEGACY
        if len(head) >= 9 and head[0] == 0x80 and 2 <= head[1] <= 5:
            return PICKLE
        if len(head) >= 9:
            (n,) = struct.unpack("<Q", head[:8])
            if 2 <= n <= min(MAX_SAFETENSORS_HEADER, size - 8) and head[8:9] == b"{":
                fh.seek(8)
                try:
                    header = json.loads(fh.read(n).decode("utf-8"))
                except (UnicodeDecodeError, ValueError):
                    return UNKNOWN
                if isinstance(header, dict):
                    return SAFETENSORS
    return UNKNOWN


def _zip_kind(path: Path) -> str:
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError):
        return UNKNOWN
    if any(n.endswith("/data.pkl") and n.count("/") == 1 for n in names):
        return TORCH_ZIP
    return ZIP


def check_format(wf: WeightFile, path: str | os.PathLike[str]) -> str:
    """The format of ``path`` if it is acceptable as ``wf``; raises :class:`WeightsCorruptError`.

    The caller has already checked the file's sha256 against ``wf.sha256`` when there is one.
    """
    kind = sniff(path)
    if wf.unpack:
        if kind in (ZIP, TORCH_ZIP):
            return kind
        raise WeightsCorruptError(f"{wf.name}: not a zip archive (found: {kind}); refusing it")
    if kind in (SAFETENSORS, TORCH_ZIP):
        return kind
    if kind == TORCH_LEGACY and wf.sha256:
        return kind
    if kind == TORCH_LEGACY:
        reason = ("a legacy torch file (a pickle stream), accepted only when the catalog pins its "
                  "sha256; save it again as safetensors or with torch.save's zip format")
    elif kind == PICKLE:
        reason = "a plain pickle, which could run code when loaded"
    elif kind == ZIP:
        reason = "a zip archive that is not a torch checkpoint (no data.pkl)"
    else:
        reason = "not a weights file (neither safetensors nor a torch zip archive)"
    raise WeightsCorruptError(f"{wf.name}: {reason}; refusing it")
