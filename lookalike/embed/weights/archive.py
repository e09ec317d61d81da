"""Safe extraction of weights archives (zip): no absolute paths, no ``..``, no links."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import zipfile
from pathlib import Path

from lookalike.files import sha256_file
from lookalike.errors import LookalikeError, WeightsCorruptError

_DRIVE = re.compile(r"^[A-Za-z]:")


def member_parts(name: str) -> list[str]:
    """The path components of a zip member name; raises on absolute or escaping names."""
    if not name or name.startswith(("/", "\\")) or _DRIVE.match(name):
        raise WeightsCorruptError(f"archive member {name!r} has an absolute path")
    parts = [p for p in re.split(r"[/\\]", name) if p not in ("", ".")]
    if ".." in parts:
        raise WeightsCorruptError(f"archive member {name!r} escapes the target folder")
    return parts


def check_members(zf: zipfile.ZipFile) -> list[tuple[zipfile.ZipInfo, list[str]]]:
    """Every member with its checked path components (all checked before anything is written)."""
    out = []
    for info in zf.infolist():
        parts = member_parts(info.filename)
        if stat.S_ISLNK(info.external_attr >> 16):
            raise WeightsCorruptError(f"archive member {info.filename!r} is a symbolic link")
        if parts:
            out.append((info, parts))
    return out


def extract_zip(archive: Path, dest: Path) -> dict[str, str]:
    """Extract ``archive`` into the existing folder ``dest``; returns ``{relative path: sha256}``.

    Raises :class:`WeightsCorruptError` for a file that is not a zip or holds an unsafe member.
    """
    root = dest.resolve()
    tree: dict[str, str] = {}
    try:
        with zipfile.ZipFile(archive) as zf:
            members = check_members(zf)
            need = sum(info.file_size for info, _ in members)
            free = shutil.disk_usage(root).free
            if need > free:
                raise LookalikeError(f"{archive.name}: unpacking needs {need} bytes, "
                                     f"only {free} are free in {root}")
            for info, parts in members:
                target = root.joinpath(*parts)
                if root not in target.resolve().parents:
                    raise WeightsCorruptError(f"archive member {info.filename!r} escapes the target folder")
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                h = hashlib.sha256()
                with zf.open(info) as src, open(target, "xb") as out:
                    for chunk in iter(lambda: src.read(1 << 20), b""):
                        h.update(chunk)
                        out.write(chunk)
                    out.flush()
                    os.fsync(out.fileno())
                tree["/".join(parts)] = h.hexdigest()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as exc:
        raise WeightsCorruptError(f"{archive.name}: not a readable zip archive ({exc})") from exc
    except FileExistsError as exc:
        raise WeightsCorruptError(f"{archive.name}: member {exc.filename} appears twice") from exc
    return tree


def tree_digests(folder: Path) -> dict[str, str]:
    """``{relative posix path: sha256}`` of every file under ``folder`` (links are not followed)."""
    out: dict[str, str] = {}
    for base, dirs, files in os.walk(folder, followlinks=False):
        dirs.sort()
        for name in sorted(files):
            path = Path(base, name)
            out[path.relative_to(folder).as_posix()] = sha256_file(path)
    return out
