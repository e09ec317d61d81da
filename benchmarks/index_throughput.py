"""End-to-end indexing throughput vs model-only throughput of the same metric, in one run.

    python benchmarks/index_throughput.py [--photos DIR] [--metric effnet-lite0] [--repeat 2]

Model-only: ``Metric.embed_arrays`` on already-decoded, already-resized arrays (batches of 32).
End-to-end: ``index_library`` into a fresh library (listing, reading + hashing + decoding in
worker processes, inference, SQL commits, FAISS save), with the network already loaded so both
sides exclude start-up. Reports images/s of both and their ratio (target >= 0.85); best of
``--repeat`` runs each, alternating, so that both see the same machine load.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import PHOTOS, machine, write_result  # noqa: E402
from lookalike.embed.pipeline import prepare_files  # noqa: E402
from lookalike.embed.factory import create_metric  # noqa: E402
from lookalike.files import expand_inputs  # noqa: E402
from lookalike.library.folder import LibraryFolder  # noqa: E402
from lookalike.indexer.run import Embedder, IndexOptions, index_library  # noqa: E402


def model_only(metric, arrays: np.ndarray, batch: int) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    for i in range(0, len(arrays), batch):
        metric.embed_arrays(arrays[i:i + batch])
    return len(arrays) / (time.perf_counter() - start)


def end_to_end(embedder: Embedder, photos: Path, metric: str, batch: int, workers: int | None) -> float:
    with tempfile.TemporaryDirectory() as tmp, LibraryFolder.open(tmp, create=True, writable=True) as lib:
        start = time.perf_counter()
        report = index_library(lib, [str(photos)], IndexOptions(
            metrics=[metric], batch_size=batch, workers=workers, progress=False), embedder=embedder)
        elapsed = time.perf_counter() - start
        assert report.failed == 0 and report.read == report.listed
        return report.read / elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=Path, default=PHOTOS)
    ap.add_argument("--metric", default="effnet-lite0")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    metric = create_metric(args.metric)
    paths = expand_inputs([args.photos])
    arrays = np.stack([p.arrays[metric.config.preprocess.key]  # type: ignore[index]
                       for p in prepare_files(paths, [metric.config.preprocess]) if p.arrays is not None])
    metric.embed_arrays(arrays[: args.batch_size])  # warm-up
    embedder = Embedder([metric.config])
    embedder._metrics[metric.name] = metric  # the same loaded network for both measurements
    model, e2e = [], []
    for _ in range(args.repeat):
        model.append(model_only(metric, arrays, args.batch_size))
        e2e.append(end_to_end(embedder, args.photos, args.metric, args.batch_size, args.workers))
    result = {"metric": args.metric, "images": len(paths), "model_only_img_s": round(max(model), 2),
              "end_to_end_img_s": round(max(e2e), 2), "ratio": round(max(e2e) / max(model), 3),
              "ratio_of_medians": round(float(np.median(e2e) / np.median(model)), 3),
              "runs": {"model_only": [round(x, 2) for x in model], "end_to_end": [round(x, 2) for x in e2e]},
              "target_ratio": 0.85, "machine": machine()}
    write_result("index_throughput", result)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
