"""What a weights file is, from its first bytes: checked before a file is pinned or placed.

Accepted: safetensors; torch zip archives (``torch.save``'s format since 1.6: a zip holding
``<name>/data.pkl``) whose pickle names only tensor-rebuilding functions (:data:`SAFE_GLOBALS`:
no ``os.system``, no ``builtins.eval``); plain zip archives for files that are unpacked. The legacy torch format (a
pickle stream that starts with torch's magic number) is accepted only when the catalog pins the
file's checksum: its bytes are then known, not merely trusted on first use. A plain pickle, or
anything else, is refused. Loading never unpickles code either way (``torch.load(weights_only=True)``
or safetensors), so this check keeps wrong files out of the cache rather than being the only guard.
"""

from __future__ import annotations

import json
import os
import pickletools
import re
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
CODE = "torch zip archive whose pickle names code"
JSON_TEXT = "JSON"
PLAIN_TEXT = "UTF-8 text"
#: Data files a model needs beside its weights (tokenizer vocabularies, merges): read as text, never run.
TEXT_SUFFIXES = {".json": JSON_TEXT, ".txt": PLAIN_TEXT}
MAX_TEXT = 64 << 20

#: ``module.name`` patterns a checkpoint's pickle may name: what rebuilds tensors and state dicts.
SAFE_GLOBALS = re.compile(
    r"collections\.OrderedDict|torch\._utils\._rebuild_[a-z0-9_]+|torch\.[A-Za-z0-9]*Storage"
    r"|torch\.(Size|device|(b?float|u?int|complex)(8|16|32|64|128)?(_e[0-9a-z]+)?|bool|half|double|long"
    r"|short|cfloat|cdouble|chalf)|torch\.nn\.parameter\.Parameter"
    r"|_codecs\.encode|builtins\.(set|frozenset|slice|bytearray|complex)")
MAX_PICKLE = 256 << 20
_STRING_OPS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING",
               "BINSTRING", "STRING"}


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
            pickles = [i for i in zf.infolist() if i.filename.endswith("/data.pkl") and i.filename.count("/") == 1]
            if not pickles:
                return ZIP
            if len(pickles) > 1 or pickles[0].file_size > MAX_PICKLE:
                return CODE
            data = zf.read(pickles[0])
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError):
        return UNKNOWN
    unsafe = unsafe_globals(data)
    return CODE if unsafe else TORCH_ZIP


def unsafe_globals(data: bytes) -> list[str]:
    """The ``module.name`` globals a pickle names outside :data:`SAFE_GLOBALS` (``"?"`` for ones
    that cannot be read without running it). Reads opcodes only; nothing is unpickled."""
    out: list[str] = []
    recent: list[object] = []  # values pushed lately, enough to read STACK_GLOBAL's two strings
    memo: dict[object, object] = {}
    try:
        for op, arg, _ in pickletools.genops(data):
            name = op.name
            if name == "GLOBAL":
                module, _, attr = str(arg).partition(" ")
                found = f"{module}.{attr}"
            elif name == "STACK_GLOBAL":
                module, attr = (recent[-2], recent[-1]) if len(recent) >= 2 else (None, None)
                found = f"{module}.{attr}" if isinstance(module, str) and isinstance(attr, str) else "?"
            elif name in ("INST", "OBJ"):
                found = "?" if name == "OBJ" else str(arg).replace(" ", ".")
            else:
                if name in _STRING_OPS:
                    recent.append(arg)
                elif name == "MEMOIZE":
                    memo[len(memo)] = recent[-1] if recent else None
                elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
                    memo[arg] = recent[-1] if recent else None
                elif name in ("GET", "BINGET", "LONG_BINGET"):
                    recent.append(memo.get(arg))
                elif op.stack_after:
                    recent.append(None)
                continue
            recent.append(None)
            if found == "?" or not SAFE_GLOBALS.fullmatch(found):
                out.append(found)
    except ValueError:  # not a pickle stream
        return ["?"]
    return out


def check_format(wf: WeightFile, path: str | os.PathLike[str]) -> str:
    """The format of ``path`` if it is acceptable as ``wf``; raises :class:`WeightsCorruptError`.

    The caller has already checked the file's sha256 against ``wf.sha256`` when there is one.
    """
    suffix = Path(wf.name).suffix.lower()
    if suffix in TEXT_SUFFIXES and not wf.unpack:
        return _check_text(wf, Path(path), TEXT_SUFFIXES[suffix])
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
    elif kind == CODE:
        found = ", ".join(unsafe_globals_of(Path(path))[:5]) or "?"
        reason = f"a torch zip archive whose pickle names code ({found}), not only tensors"
    elif kind == ZIP:
        reason = "a zip archive that is not a torch checkpoint (no data.pkl)"
    else:
        reason = "not a weights file (neither safetensors nor a torch zip archive)"
    raise WeightsCorruptError(f"{wf.name}: {reason}; refusing it")


def _check_text(wf: WeightFile, path: Path, kind: str) -> str:
    """A ``.json``/``.txt`` data file: UTF-8 (JSON that parses), no NUL bytes, at most 64 MiB."""
    if path.stat().st_size > MAX_TEXT:
        raise WeightsCorruptError(f"{wf.name}: larger than {MAX_TEXT >> 20} MiB for a {kind} file; refusing it")
    try:
        text = path.read_bytes().decode("utf-8")
        if "\0" in text:
            raise ValueError("NUL byte")
        if kind == JSON_TEXT:
            json.loads(text)
    except ValueError as exc:
        raise WeightsCorruptError(f"{wf.name}: not a {kind} file ({exc}); refusing it") from None
    return kind


def unsafe_globals_of(path: Path) -> list[str]:
    """:func:`unsafe_globals` of a torch zip archive's ``data.pkl`` (for messages)."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = [n for n in zf.namelist() if n.endswith("/data.pkl")]
            return unsafe_globals(zf.read(names[0])) if names else []
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError):
        return []
