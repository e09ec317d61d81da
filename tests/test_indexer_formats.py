"""Every format indexes; every bad file is recorded with its reason; nothing stops the run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from sqlalchemy import select

from lookalike.indexer import listing
from lookalike.library.folder import LibraryFolder
from lookalike.indexer.run import IndexOptions, index_library
from lookalike.store.models import Image as ImageRow
from tests.conftest import ROOT, unprivileged
from tests.corpus import bad_files, odd_files
from tests.dbfixtures import db_url  # noqa: F401


def make_corpus(photo: Path, root: Path) -> tuple[set[str], dict[str, str]]:
    """Good files (names) and bad files (name -> expected reason), from tests/corpus.py and more."""
    odd = odd_files(root, photo)
    bad = bad_files(root, photo)
    small = Image.open(photo).convert("RGB").resize((96, 64))
    (root / "photo.jpg").write_bytes(photo.read_bytes())
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees when shown
    exif[0x0132] = "2021:05:06 07:08:09"
    small.save(root / "rotated.jpg", exif=exif)
    for ext in ("webp", "tiff", "bmp"):
        small.save(root / f"pic.{ext}")
    import pillow_heif

    pillow_heif.from_pillow(small).save(root / "pic.heic", quality=80)
    (root / "readme.txt").write_text("ignored: not an image name")
    good = {p.name for p, _ in odd.values()} | {"photo.jpg", "rotated.jpg", "pic.webp", "pic.tiff",
                                                "pic.bmp", "pic.heic"}
    reasons = {"zero-byte": "empty file", "truncated": "truncated or corrupt image", "text": "not an image",
               "bomb": "image too large (decompression-bomb limit)"}
    return good, {bad[k].name: reasons[k] for k in reasons}


def test_bad_file_corpus(photos, tmp_path, db_url, monkeypatch):  # noqa: F811
    root = tmp_path / "corpus"
    good, bad = make_corpus(photos[0], root)
    assert len(good) >= 13 and len(bad) == 4
    (root / "sub").mkdir()
    os.symlink(root, root / "sub" / "loop")
    (root / "locked").mkdir()
    Image.new("RGB", (8, 8)).save(root / "locked" / "hidden.png")
    real = os.scandir

    def scandir(path):  # type: ignore[no-untyped-def]  # root reads everything: inject the error
        if os.path.basename(str(path)) == "locked":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(listing.os, "scandir", scandir)
    with LibraryFolder.open(tmp_path / "lib", db_url=db_url, create=True, writable=True) as lib:
        report = index_library(lib, [str(root)], IndexOptions(metrics=["tiny-vit"], workers=1,
                                                               progress=False, commit_every=3))
        assert report.read == len(good) + len(bad) and report.failed == len(bad) and report.skipped == 2
        with lib.store.session() as s:
            rows = {Path(r.path).relative_to(root).as_posix(): r for r in s.scalars(select(ImageRow))}
        assert {n for n, r in rows.items() if r.status == "ok"} == good
        assert {n: r.error for n, r in rows.items() if r.status == "failed"} == bad
        assert {n: r.error for n, r in rows.items() if r.status == "skipped"} == {
            "sub/loop": "symlink loop", "locked": "unreadable folder"}
        assert "900000000" in (rows["bomb.png"].detail or "")  # 30000 x 30000 pixels
        rot = rows["rotated.jpg"]
        assert (rot.width, rot.height, rot.orientation) == (64, 96, 6)  # upright size
        assert rot.exif_datetime == "2021:05:06 07:08:09"
        assert (rows["pic.heic"].format, rows["pic.heic"].width) == ("HEIF", 96)
        assert rows["photo.jpg"].sha256 == next(
            line.split(",")[1] for line in (photos[0].parent / "MANIFEST.csv").read_text().splitlines()
            if line.startswith(photos[0].name))
        vecs = lib.vectors("tiny-vit", lib.ids("tiny-vit"))
        assert vecs.shape == (len(good), 32) and np.isfinite(vecs).all()
    monkeypatch.setattr(listing.os, "scandir", real)
    with LibraryFolder.open(tmp_path / "lib") as lib:  # again: bad files are not re-read, the folder is
        report = index_library(lib, [str(root)],
                               IndexOptions(metrics=["tiny-vit"], workers=0, progress=False))
    assert report.read == 1 and report.unchanged == len(good) + len(bad) and report.skipped == 1


def test_unreadable_folder_by_permissions(tmp_path):
    root = tmp_path / "r"
    (root / "locked").mkdir(parents=True)
    (root / "locked").chmod(0)
    try:  # a real `lookalike index` without root's capabilities, so the permissions bite
        cmd = unprivileged([sys.executable, "-m", "lookalike", "index", str(root), "--library",
                            str(tmp_path / "lib"), "-m", "tiny-vit", "--json", "-q"])
        proc = subprocess.run(cmd, capture_output=True, text=True, check=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    finally:
        (root / "locked").chmod(0o755)
    report = json.loads(proc.stdout)
    assert report["failures"] == [{"path": str(root / "locked"), "status": "skipped",
                                   "reason": "unreadable folder"}]