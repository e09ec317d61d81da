"""Re-indexing an unchanged 10,000-file library vs indexing it the first time.

    python benchmarks/reindex.py [--photos DIR] [--files 10000] [--metric tiny-vit]

Builds a temporary folder of ``--files`` copies of the real photos, each with a unique trailer after
the image data (so every file has its own content and is embedded: no de-duplication shortcut),
spread over sub-folders, indexes it once, then again unchanged. Both runs are
timed in-process (``index_library`` including opening the library); the unchanged re-index is
also timed as a ``lookalike index`` subprocess (interpreter start-up included). Target: the
in-process re-index takes < 2% of the first indexing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import PHOTOS, machine, write_result  # noqa: E402
from lookalike.files import expand_inputs  # noqa: E402
from lookalike.library.folder import LibraryFolder  # noqa: E402
from lookalike.indexer.run import IndexOptions, index_library  # noqa: E402


def make_tree(photos: list[str], dest: Path, n: int, per_dir: int = 250) -> None:
    for i in range(n):
        src = photos[i % len(photos)]
        folder = dest / f"d{i // per_dir:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{i:05d}{Path(src).suffix}"
        shutil.copyfile(src, target)
        with open(target, "ab") as fh:  # decoders ignore bytes after the image; sha256 does not
            fh.write(b"lookalike-benchmark-%d" % i)


def timed_index(lib_dir: Path, root: Path, metric: str) -> tuple[float, dict]:
    start = time.perf_counter()
    with LibraryFolder.open(lib_dir, create=True, writable=True) as lib:
        report = index_library(lib, [str(root)], IndexOptions(metrics=[metric], progress=False))
    return time.perf_counter() - start, report.to_dict()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=Path, default=PHOTOS)
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--metric", default="tiny-vit")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tree, lib_dir = Path(tmp) / "photos", Path(tmp) / "lib"
        make_tree(expand_inputs([args.photos]), tree, args.files)
        first, r1 = timed_index(lib_dir, tree, args.metric)
        again, r2 = timed_index(lib_dir, tree, args.metric)
        assert r1["read"] == args.files and r1["reused"] == 0 and r2["read"] == 0 and r2["unchanged"] == args.files
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "lookalike", "index", str(tree), "--library", str(lib_dir),
                        "-m", args.metric, "-q"], check=True, env=env)
        cli = time.perf_counter() - start
    result = {"files": args.files, "metric": args.metric, "first_index_s": round(first, 2),
              "reindex_s": round(again, 3), "reindex_ratio": round(again / first, 4),
              "reindex_cli_s": round(cli, 2), "reindex_cli_ratio": round(cli / first, 4),
              "first_index_img_s": round(args.files / first, 1), "target_ratio": 0.02,
              "machine": machine()}
    write_result("reindex", result)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
