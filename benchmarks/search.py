"""Benchmark: nearest-neighbour indexes on random-but-clustered vectors of the real dimensions.

For each size (``--sizes``) and dimension (``--dims``) it builds, in one run and on the same data:

* ``ours``: the FAISS index :func:`lookalike.library.index_types.choose_factory` picks, searched with
  :func:`lookalike.library.index_types.search_params`, plus a sweep of that search parameter;
* ``autofaiss``: the index ``autofaiss.build_index`` picks and tunes (16G index budget, the
  machine's MemAvailable as available memory, a 5 ms query-time target), reading the vectors from a
  folder of .npy files as its docs recommend for large collections;
* ``hnswlib``: an hnswlib HNSW graph (M=16, ef_construction=100), sweeping ``ef``;
* any extra FAISS factory strings given with ``--candidates`` (used to tune the rule).

It reports build time, index bytes per vector (size of the saved index / n), single-query latency
p50/p99 (k=10, one query per call, as a user's search does) and recall@10 against exact search.

Vectors: a Gaussian mixture (2048 clusters) in a 64-d latent space, projected linearly to ``dim``
plus isotropic noise, L2-normalised (cosine metrics store unit vectors; inner product = 1 - cosine
distance). Data are generated chunk by chunk from fixed seeds, so a 1M x 1792 run never holds a
second copy for the exact ground truth. A 1M x 1792 run with every method takes about 45 minutes
on 2 cores and peaks at 12.6 GiB (plus 7.2 GB of .npy files under ``$BENCH_TMP`` for autofaiss).
Usage (the README's figures)::

    PYTHONPATH=. python benchmarks/search.py --sizes 100000 --dims 1280 1792 --out benchmarks/results/search_100k.json
    PYTHONPATH=. python benchmarks/search.py --sizes 1000000 --dims 1792 --queries 300 \
        --candidates "HNSW32,Flat@efConstruction=40|efSearch=256,128,512" --out benchmarks/results/search_1m_1792.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from lookalike.library.index_types import (
    apply_params,
    build_params,
    choose_factory,
    search_params,
)
from lookalike.search.evaluate import knn_recall

log = logging.getLogger("bench.search")

CHUNK = 50_000
LATENT = 64
CLUSTERS = 2048
K = 10


class ClusteredVectors:
    """Deterministic clustered unit vectors, produced in chunks (same data for every method)."""

    def __init__(self, n: int, dim: int, seed: int = 0) -> None:
        self.n, self.dim, self.seed = n, dim, seed
        rng = np.random.default_rng([seed, dim])
        self.centers = rng.standard_normal((CLUSTERS, LATENT), dtype=np.float32)
        self.proj = rng.standard_normal((LATENT, dim), dtype=np.float32) / np.sqrt(LATENT)

    def _make(self, rng: np.random.Generator, count: int) -> np.ndarray:
        ids = rng.integers(0, CLUSTERS, count)
        z = self.centers[ids] + 1.0 * rng.standard_normal((count, LATENT), dtype=np.float32)
        x = z @ self.proj
        x += 0.35 * rng.standard_normal((count, self.dim), dtype=np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        return x

    def chunks(self) -> Iterator[np.ndarray]:
        for i, start in enumerate(range(0, self.n, CHUNK)):
            yield self._make(np.random.default_rng([self.seed, self.dim, 1, i]), min(CHUNK, self.n - start))

    def sample(self, count: int, salt: int) -> np.ndarray:
        """Fresh vectors from the same distribution (queries, training samples)."""
        return self._make(np.random.default_rng([self.seed, self.dim, 2, salt]), count)

    def head(self, count: int) -> np.ndarray:
        """The first ``count`` database vectors (in memory)."""
        parts, have = [], 0
        for chunk in self.chunks():
            parts.append(chunk[: count - have])
            have += len(parts[-1])
            if have >= count:
                break
        return np.concatenate(parts)


def exact_topk(data: ClusteredVectors, queries: np.ndarray, k: int = K) -> np.ndarray:
    """Exact inner-product top-k ids, merged chunk by chunk."""
    best_s = np.full((len(queries), k), -np.inf, np.float32)
    best_i = np.full((len(queries), k), -1, np.int64)
    start = 0
    for chunk in data.chunks():
        s = queries @ chunk.T
        ids = np.broadcast_to(np.arange(start, start + len(chunk)), s.shape)
        all_s = np.concatenate([best_s, s], axis=1)
        all_i = np.concatenate([best_i, ids], axis=1)
        top = np.argpartition(-all_s, k, axis=1)[:, :k]
        best_s = np.take_along_axis(all_s, top, 1)
        best_i = np.take_along_axis(all_i, top, 1)
        start += len(chunk)
    order = np.argsort(-best_s, axis=1)
    return np.take_along_axis(best_i, order, 1)


def time_queries(search: Callable[[np.ndarray], np.ndarray], queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Run single queries; returns (ids (nq, k), latencies in ms)."""
    search(queries[:1])  # warm-up
    ids, lat = [], []
    for q in queries:
        t = time.perf_counter()
        ids.append(search(q[None]))
        lat.append((time.perf_counter() - t) * 1e3)
    return np.concatenate(ids), np.array(lat)


def summarise(ids: np.ndarray, lat: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    return {"recall@10": round(knn_recall(ids, truth, K), 4),
            "p50_ms": round(float(np.percentile(lat, 50)), 3),
            "p99_ms": round(float(np.percentile(lat, 99)), 3)}


def file_bytes_per_vector(save: Callable[[str], None], n: int) -> float:
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        path = os.path.join(tmp, "index")
        save(path)
        return round(os.path.getsize(path) / n, 1)


def bench_faiss(data: ClusteredVectors, key: str, sweep: list[dict[str, int]], chosen: dict[str, int],
                queries: np.ndarray, truth: np.ndarray, build: dict[str, int] | None = None) -> dict[str, Any]:
    import faiss

    index = faiss.index_factory(data.dim, key, faiss.METRIC_INNER_PRODUCT)
    built_with = build_params(key) | (build or {})
    apply_params(index, built_with)
    t0 = time.perf_counter()
    train_s = 0.0
    if not index.is_trained:
        ntrain = min(data.n, train_size(key))
        sample = data.head(ntrain)
        t = time.perf_counter()
        index.train(sample)
        train_s = time.perf_counter() - t
        del sample
    add_s = 0.0
    for chunk in data.chunks():
        t = time.perf_counter()
        index.add(chunk)
        add_s += time.perf_counter() - t
        log.info("  %s: %d/%d added, %.0f vectors/s", key, index.ntotal, data.n, index.ntotal / add_s)
    build_s = train_s + add_s
    out: dict[str, Any] = {"factory": key, "build_params": built_with,
                           "build_s": round(build_s, 1), "train_s": round(train_s, 1),
                           "add_rate_per_s": round(data.n / max(add_s, 1e-9)),
                           "bytes_per_vector": file_bytes_per_vector(lambda p: faiss.write_index(index, p), data.n)}
    log.info("  faiss %s built in %.1fs (wall incl. generation %.1fs)", key, build_s, time.perf_counter() - t0)

    def run(params: dict[str, int]) -> dict[str, Any]:
        apply_params(index, params)
        ids, lat = time_queries(lambda q: index.search(q, K)[1], queries)
        return {"params": params, **summarise(ids, lat, truth)}

    out["chosen"] = run(chosen)
    out["sweep"] = [run(p) for p in sweep if p != chosen]
    return out


def train_size(key: str) -> int:
    """Training vectors for an IVF factory: 40 per list (FAISS warns below 39), at most 200k."""
    import re

    m = re.search(r"IVF(\d+)", key)
    return min(200_000, 40 * int(m.group(1))) if m else 50_000


def bench_hnswlib(data: ClusteredVectors, queries: np.ndarray, truth: np.ndarray, max_n: int,
                  efs: list[int]) -> dict[str, Any]:
    import hnswlib

    n = min(data.n, max_n)
    index = hnswlib.Index(space="ip", dim=data.dim)
    index.init_index(max_elements=n, M=16, ef_construction=100, random_seed=0)
    add_s, done = 0.0, 0
    for chunk in data.chunks():
        chunk = chunk[: n - done]
        t = time.perf_counter()
        index.add_items(chunk, np.arange(done, done + len(chunk)), num_threads=os.cpu_count() or 1)
        add_s += time.perf_counter() - t
        done += len(chunk)
        if done >= n:
            break
    out: dict[str, Any] = {"params": "M=16, ef_construction=100", "built_n": n,
                           "build_s": round(add_s, 1), "add_rate_per_s": round(n / add_s),
                           "bytes_per_vector": file_bytes_per_vector(index.save_index, n)}
    if n < data.n:
        out["note"] = (f"built on the first {n} of {data.n} vectors (build time); full build would take "
                       f"about {data.n / (n / add_s) / 60:.0f} min at this rate; recall not measured")
        out["estimated_full_build_s"] = round(data.n / (n / add_s))
        return out
    index.set_num_threads(1)
    sweep = []
    for ef in efs:
        index.set_ef(max(ef, K))
        ids, lat = time_queries(lambda q: index.knn_query(q, k=K)[0].astype(np.int64), queries)
        sweep.append({"params": {"ef": ef}, **summarise(ids, lat, truth)})
    out["sweep"] = sweep
    ok = [s for s in sweep if s["recall@10"] >= 0.95]
    out["chosen"] = ok[0] if ok else sweep[-1]
    return out


def bench_autofaiss(data: ClusteredVectors, queries: np.ndarray, truth: np.ndarray, max_n: int) -> dict[str, Any]:
    try:
        from autofaiss import build_index
    except Exception as exc:  # noqa: BLE001 - report precisely why it is missing
        return {"error": f"cannot import autofaiss: {type(exc).__name__}: {exc}"}
    if data.n > max_n:
        from autofaiss.external.optimize import get_optimal_index_keys_v2

        key = get_optimal_index_keys_v2(data.n, data.dim, max_index_memory_usage="16G")[0]
        return {"factory": key, "note": f"autofaiss picks {key!r} at this size; not built here "
                f"(n > --autofaiss-max {max_n}; see the faiss candidate with the same key)"}
    # Vectors go to a folder of .npy files, the way autofaiss is used at scale: it streams them
    # with embedding_reader instead of holding a second in-memory copy (a 1M x 1792 array is 7.2 GB).
    memory = f"{available_gib():.0f}G"
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        for i, chunk in enumerate(data.chunks()):
            np.save(os.path.join(tmp, f"part{i:05d}.npy"), chunk)
        t = time.perf_counter()
        try:
            index, infos = build_index(embeddings=tmp, save_on_disk=False, metric_type="ip",
                                       max_index_query_time_ms=5.0, min_nearest_neighbors_to_retrieve=K,
                                       max_index_memory_usage="16G", current_memory_available=memory,
                                       nb_cores=os.cpu_count(), verbose=logging.WARNING)
        except Exception as exc:  # noqa: BLE001
            return {"error": f"autofaiss.build_index failed: {type(exc).__name__}: {exc}"}
        build_s = time.perf_counter() - t
    if index is None:
        return {"error": f"autofaiss.build_index returned no index: {infos}"}
    import faiss

    ids, lat = time_queries(lambda q: index.search(q, K)[1], queries)
    return {"factory": infos.get("index_key"), "params": infos.get("index_param"),
            "build_s": round(build_s, 1), "current_memory_available": memory,
            "note": "build_s includes autofaiss's own tuning; vectors streamed from .npy files",
            "bytes_per_vector": file_bytes_per_vector(lambda p: faiss.write_index(index, p), data.n),
            "chosen": summarise(ids, lat, truth)}


def available_gib() -> float:
    """MemAvailable from /proc/meminfo, in GiB (what autofaiss may plan with on this machine)."""
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 2**20
    raise RuntimeError("no MemAvailable in /proc/meminfo")


def parse_candidate(text: str) -> tuple[str, dict[str, int], list[dict[str, int]]]:
    """``"HNSW16,Flat@efConstruction=100|efSearch=64,128"`` -> (factory, build params, sweep)."""
    head, _, sweep = text.partition("|")
    key, _, build_text = head.partition("@")
    build = {name: int(v) for name, _, v in (b.partition("=") for b in build_text.split(";") if b)}
    if not sweep:
        return key, build, [{}]
    name, _, values = sweep.partition("=")
    return key, build, [{name: int(v)} for v in values.split(",")]


def sweep_for(chosen: dict[str, int]) -> list[dict[str, int]]:
    if not chosen:
        return []
    (name, value), = chosen.items()
    return [{name: v} for v in sorted({max(1, value // 2), value, value * 2})]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000])
    ap.add_argument("--dims", type=int, nargs="+", default=[1280, 1792])
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--skip", nargs="*", default=[], choices=["ours", "autofaiss", "hnswlib"])
    ap.add_argument("--candidates", nargs="*", default=[], help='extra "FACTORY[@build=v]|param=v1,v2" to try, '
                    'e.g. "HNSW16,Flat@efConstruction=100|efSearch=64,128,256"')
    ap.add_argument("--hnswlib-max", type=int, default=1_000_000, help="build hnswlib on at most this many (time)")
    ap.add_argument("--autofaiss-max", type=int, default=1_000_000, help="run autofaiss up to this size")
    ap.add_argument("--out", default="benchmarks/results/search.json")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "processor": platform.processor()},
        "k": K, "queries": args.queries, "data": f"{CLUSTERS}-cluster Gaussian mixture in {LATENT}-d, "
        "linear map to dim + noise, unit norm; inner product", "runs": []}
    for n in args.sizes:
        for dim in args.dims:
            data = ClusteredVectors(n, dim)
            queries = data.sample(args.queries, salt=7)
            t = time.perf_counter()
            truth = exact_topk(data, queries)
            log.info("n=%d dim=%d: exact ground truth in %.1fs", n, dim, time.perf_counter() - t)
            run: dict[str, Any] = {"n": n, "dim": dim, "methods": {}}
            results["runs"].append(run)

            def save(run: dict[str, Any] = run) -> None:  # after every method: partial results survive
                run["peak_rss_gib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
                Path(args.out).parent.mkdir(parents=True, exist_ok=True)
                Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
            if "ours" not in args.skip:
                key = choose_factory(n, dim)
                chosen = search_params(key, n)
                run["methods"]["ours"] = bench_faiss(data, key, sweep_for(chosen), chosen, queries, truth)
                log.info("  ours: %s", run["methods"]["ours"]["chosen"])
                save()
            for cand in args.candidates:
                key, build, sweep = parse_candidate(cand)
                try:
                    res = bench_faiss(data, key, sweep[1:], sweep[0], queries, truth, build)
                except RuntimeError as exc:
                    res = {"factory": key, "error": str(exc)}
                run["methods"][f"faiss:{cand.partition('|')[0]}"] = res
                log.info("  %s: %s", key, res)
                save()
            if "autofaiss" not in args.skip:
                run["methods"]["autofaiss"] = bench_autofaiss(data, queries, truth, args.autofaiss_max)
                log.info("  autofaiss: %s", run["methods"]["autofaiss"])
                save()
            if "hnswlib" not in args.skip:
                run["methods"]["hnswlib"] = bench_hnswlib(data, queries, truth, args.hnswlib_max,
                                                          [16, 32, 64, 128, 256])
                log.info("  hnswlib: %s", run["methods"]["hnswlib"])
            save()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
