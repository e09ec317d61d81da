"""Exact LPIPS k-NN through FAISS vs brute-force network comparisons, plus the working-size choice.

Parts (``--part``, default all):

``resolution``  for each trunk and working size: vector length, bytes/image, embedding speed, and
                agreement with LPIPS at 224x224 (Spearman of all pairwise distances, top-5 overlap).
``photos``      exact top-10 of every real photo: our vectors + ``IndexFlatL2`` vs ``lpips.LPIPS``
                run on every (query, photo) pair, as lpips users do; the latter timed on a sample
                of pairs and extrapolated.
``library``     a 10k library of augmented photos (lpips-alex): per-query cost both ways, the
                compact PCA index (recall@10 vs candidates, certified-exact fetch counts, bytes).

Pretrained ImageNet trunks are used when their weights are in the cache; otherwise seeded random
trunks with the real LPIPS heads (the JSON says which). Timings are taken on whatever CPU runs
this, under whatever else runs there: compare the ratios within one run.

    PYTHONPATH=. python benchmarks/lpips_knn.py --photos ../shared/photos [--part photos]
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import platform
import re
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from lookalike.embed.backbones.lpips import with_size
from lookalike.embed.images import load_image
from lookalike.embed.factory import embedding_metric
from lookalike.embed.metric import Metric
from lookalike.embed.preprocess import prepare, to_tensor
from lookalike.embed.registry import get_config
from lookalike.embed.weights import is_present

log = logging.getLogger("lpips_knn")
NETS = ("alex", "squeeze", "vgg")
SIZES = {"alex": (32, 48, 64, 96, 128), "squeeze": (32, 48, 64, 96), "vgg": (32, 48, 64)}
REF_SIZE = 224


def metric_for(net: str, size: int | None = None) -> tuple[Metric, str]:
    """The lpips-NET metric (pretrained trunk if cached, else the seeded random trunk) at ``size``."""
    config = get_config(f"lpips-{net}")
    trunk = "imagenet"
    if not all(is_present(w) for w in config.weights):
        random = get_config(f"lpips-{net}-random")
        config = replace(random, preprocess=replace(random.preprocess, interpolation="bicubic"),
                         name=config.name)
        trunk = "random (seeded)"
    if size is not None:
        config = with_size(config, size)
    elif config.preprocess.size != get_config(f"lpips-{net}").preprocess.size:
        config = with_size(config, get_config(f"lpips-{net}").preprocess.size)
    return embedding_metric(config, device="cpu"), trunk


def load_photos(folder: Path, n: int | None = None) -> list:
    with open(folder / "MANIFEST.csv", newline="") as fh:
        files = [folder / row["file"] for row in csv.DictReader(fh)]
    return [load_image(p) for p in files[:n]]


def embed(metric: Metric, images: list, batch: int = 32) -> tuple[np.ndarray, float]:
    """Vectors and seconds spent in the network (inputs prepared beforehand)."""
    x = np.stack([prepare(im, metric.config.preprocess) for im in images])
    t = time.perf_counter()
    out = np.concatenate([metric.embed_arrays(x[s:s + batch]) for s in range(0, len(x), batch)])
    return out, time.perf_counter() - t


def pairwise(v: np.ndarray) -> np.ndarray:
    """All squared L2 distances (float32 products: enough to rank for agreement measures)."""
    gram = (v @ v.T).astype(np.float64)
    sq = np.diag(gram)
    return np.maximum(sq[:, None] + sq[None] - 2 * gram, 0)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def topk_overlap(d1: np.ndarray, d2: np.ndarray, k: int) -> float:
    n = len(d1)
    m1, m2 = d1 + np.diag(np.full(n, np.inf)), d2 + np.diag(np.full(n, np.inf))
    a, b = np.argsort(m1, 1)[:, :k], np.argsort(m2, 1)[:, :k]
    return float(np.mean([len(set(x) & set(y)) / k for x, y in zip(a, b)]))


def part_resolution(photos: list, n: int) -> dict:
    images = photos[:n]
    out: dict = {"photos": len(images), "reference_size": REF_SIZE, "nets": {}}
    iu = np.triu_indices(len(images), 1)
    for net in NETS:
        ref_metric, trunk = metric_for(net, REF_SIZE)
        ref_v, ref_t = embed(ref_metric, images, batch=8)
        ref_d = pairwise(ref_v)
        del ref_v
        rows = [{"size": REF_SIZE, "dim": ref_metric.dim, "bytes_fp32": 4 * ref_metric.dim,
                 "ms_per_image": 1000 * ref_t / len(images), "spearman": 1.0, "top5_overlap": 1.0}]
        for size in SIZES[net]:
            m, _ = metric_for(net, size)
            v, t = embed(m, images)
            d = pairwise(v)
            rows.append({"size": size, "dim": m.dim, "bytes_fp32": 4 * m.dim,
                         "ms_per_image": 1000 * t / len(images),
                         "spearman": spearman(d[iu], ref_d[iu]), "top5_overlap": topk_overlap(d, ref_d, 5)})
            log.info("%s %s: %s", net, size, rows[-1])
        out["nets"][net] = {"trunk": trunk, "rows": sorted(rows, key=lambda r: r["size"])}
    return out


def reference_lpips(net: str, metric: Metric):
    """lpips.LPIPS with the same trunk weights as ``metric``."""
    import lpips

    ref = lpips.LPIPS(pretrained=True, net=net, pnet_rand=True, verbose=False).eval()
    ours = metric.module.trunk.state_dict()
    ref.net.load_state_dict({k: ours[re.sub(r"^slice\d+\.", "", k)] for k in ref.net.state_dict()})
    return ref


def time_pairs(ref, x: torch.Tensor, n_pairs: int, batch: int = 32) -> float:
    """Seconds per (query, image) pair for ``lpips.LPIPS.forward`` (network run on both sides)."""
    rng = np.random.default_rng(0)
    i, j = rng.integers(0, len(x), (2, n_pairs))
    xs = 2 * x - 1
    t = time.perf_counter()
    with torch.inference_mode():
        for s in range(0, n_pairs, batch):
            ref(xs[i[s:s + batch]], xs[j[s:s + batch]])
    return (time.perf_counter() - t) / n_pairs


def flat_knn(vectors: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, float]:
    import faiss

    index = faiss.IndexFlatL2(vectors.shape[1])
    index.add(vectors)
    t = time.perf_counter()
    _, ids = index.search(queries, k)
    return ids, time.perf_counter() - t


def part_photos(photos: list, pair_sample: int) -> dict:
    out: dict = {"photos": len(photos), "k": 10, "nets": {}}
    n = len(photos)
    for net in NETS:
        metric, trunk = metric_for(net)
        vecs, t_embed = embed(metric, photos)
        ids, t_search = flat_knn(vecs, vecs, 11)
        x = to_tensor(np.stack([prepare(im, metric.config.preprocess) for im in photos]))
        t_pair = time_pairs(reference_lpips(net, metric), x, pair_sample)
        ours = t_embed + t_search
        brute = n * (n - 1) * t_pair  # every query against every other photo
        out["nets"][net] = {
            "trunk": trunk, "size": metric.config.preprocess.size, "dim": metric.dim,
            "bytes_fp32": 4 * metric.dim, "bytes_fp16": 2 * metric.dim,
            "embed_s": t_embed, "search_s": t_search, "ours_total_s": ours,
            "lpips_s_per_pair": t_pair, "pairs_timed": pair_sample,
            "brute_total_s_extrapolated": brute, "speedup": brute / ours,
        }
        log.info("%s: %s", net, out["nets"][net])
    return out


def augment(img, rng: np.random.Generator):
    from PIL import ImageEnhance, ImageOps

    w, h = img.size
    f = rng.uniform(0.75, 1.0)
    cw, ch = int(w * f), int(h * f)
    x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    out = img.crop((x0, y0, x0 + cw, y0 + ch))
    if rng.random() < 0.5:
        out = ImageOps.mirror(out)
    out = ImageEnhance.Brightness(out).enhance(rng.uniform(0.7, 1.3))
    return ImageEnhance.Contrast(out).enhance(rng.uniform(0.7, 1.3))


def part_library(photos: list, size: int, n_queries: int, pair_sample: int) -> dict:
    from lookalike.search.compact import CompactIndex, to_float16
    from lookalike.search.evaluate import knn_recall
    from lookalike.search.rerank import array_fetcher, brute_force

    rng = np.random.default_rng(0)
    metric, trunk = metric_for("alex")
    pre = metric.config.preprocess
    small = [im.copy() for im in photos]
    for im in small:
        im.thumbnail((4 * pre.size, 4 * pre.size))
    t = time.perf_counter()
    lib_x = np.stack([prepare(augment(small[i % len(small)], rng), pre) for i in range(size)])
    q_src = rng.integers(0, len(small), n_queries)
    q_x = np.stack([prepare(augment(small[i], rng), pre) for i in q_src])
    t_aug = time.perf_counter() - t
    t = time.perf_counter()
    lib = np.concatenate([metric.embed_arrays(lib_x[s:s + 64]) for s in range(0, size, 64)])
    t_lib = time.perf_counter() - t
    t = time.perf_counter()
    queries = metric.embed_arrays(q_x)
    t_q = (time.perf_counter() - t) / n_queries
    k = 10
    ids, t_search = flat_knn(lib, queries, k)
    t_search /= n_queries
    t = time.perf_counter()
    _, all_true = brute_force(queries, lib, k)
    t_numpy = (time.perf_counter() - t) / n_queries
    flat_exact = float(np.mean(ids == all_true))

    ref = reference_lpips("alex", metric)
    t_pair = time_pairs(ref, to_tensor(lib_x[:512]), pair_sample)
    brute_q = size * t_pair
    ours_q = t_q + t_search
    result: dict = {
        "trunk": trunk, "metric": "lpips-alex", "size": pre.size, "dim": metric.dim, "library": size,
        "queries": n_queries, "augment_s": t_aug, "library_embed_s": t_lib,
        "query_embed_s": t_q, "flat_search_s_per_query": t_search,
        "flat_top10_equals_exact_numpy": flat_exact, "numpy_exact_s_per_query": t_numpy,
        "lpips_s_per_pair": t_pair, "brute_s_per_query_extrapolated": brute_q,
        "ours_s_per_query": ours_q, "speedup_per_query": brute_q / ours_q,
        "speedup_per_query_incl_library_embedding_once": brute_q / (ours_q + t_lib / n_queries),
        "bytes_fp32": 4 * metric.dim, "bytes_fp16": 2 * metric.dim,
    }
    half = to_float16(lib)
    ids16, _ = flat_knn(half.astype(np.float32), queries, k)
    result["fp16_recall_at_10"] = knn_recall(ids16, all_true)
    d32 = ((lib[:500].astype(np.float64) - lib[500:1000]) ** 2).sum(1)
    d16 = ((half[:500].astype(np.float64) - half[500:1000]) ** 2).sum(1)
    rel = np.abs(d16 - d32) / d32
    result["fp16_rel_error"] = {"median": float(np.median(rel)), "max": float(rel.max())}

    fetch = array_fetcher(lib)
    compact = []
    for dims in (32, 64, 128):
        index = CompactIndex.train(lib[rng.choice(size, min(size, 2000), replace=False)], dims)
        index.add(lib)
        row: dict = {"pca_dims": dims, "bytes_per_image": index.bytes_per_vector, "recall_at_10": {}}
        for c in (10, 50, 100, 200, 400):
            t = time.perf_counter()
            found = index.search(queries, k, fetch, n_candidates=c)[1]
            row["recall_at_10"][c] = knn_recall(found, all_true)
            row.setdefault("s_per_query", {})[c] = (time.perf_counter() - t) / n_queries
        _, exact_ids, fetched = index.search_exact(queries, k, fetch, start=50)
        row["certified_exact_equal"] = bool((exact_ids == all_true).all())
        row["certified_fetched_mean"] = float(fetched.mean())
        row["certified_fetched_max"] = int(fetched.max())
        compact.append(row)
        log.info("compact %s", row)
    result["compact"] = compact
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default_photos = Path(__file__).resolve().parents[1].parent / "shared" / "photos"
    parser.add_argument("--photos", type=Path, default=default_photos)
    parser.add_argument("--part", choices=("resolution", "photos", "library", "all"), default="all")
    parser.add_argument("--resolution-photos", type=int, default=40)
    parser.add_argument("--pair-sample", type=int, default=256)
    parser.add_argument("--library", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "lpips_knn.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    photos = load_photos(args.photos)
    result: dict = {"machine": platform.machine(), "torch_threads": torch.get_num_threads()}
    if args.out.is_file():
        result = {**json.loads(args.out.read_text()), **result}
    if args.part in ("resolution", "all"):
        result["resolution"] = part_resolution(photos, args.resolution_photos)
    if args.part in ("photos", "all"):
        result["photos"] = part_photos(photos, args.pair_sample)
    if args.part in ("library", "all"):
        result["library"] = part_library(photos, args.library, args.queries, args.pair_sample)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    log.info("wrote %s", args.out)


if __name__ == "__main__":
    main()
