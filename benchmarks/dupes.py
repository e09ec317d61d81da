"""Benchmark: near-duplicate groups on a library with known copies and hard look-alikes.

The real photos are split by source photo (the sha256 in MANIFEST.csv: even first byte ->
calibration, odd -> evaluation). Calibration photos only set the candidate threshold (``--calibrate``
writes it into ``lookalike/search/thresholds.json``); every figure below is measured on a library
built from the evaluation photos alone:

* every evaluation photo, as indexed files; among them many distinct look-alikes (gcompris hammers,
  fish, windmills, palaces and pyramids, two Qutub Minar photos, a stereo pair, wallpapers);
* for half of them (seeded draw), 1-3 copies made with the transformations of
  :mod:`lookalike.search.augment` (re-encodings: JPEG q90/q70, 70% and half size; edits: 90%/80%
  crops, colour jitter, 5-degree rotation, quarter-size thumbnail, crop+jitter+downscale+JPEG),
  and for one in ten a byte-identical copy.

Truth: a photo and its copies form a group. Pairwise precision and recall count every pair of
files inside predicted groups (or listed as duplicates) against the true pairs. Compared in the
same run: ``lookalike dupes`` defaults (verified), ``--no-verify`` (complete linkage at the
calibrated threshold), the single-linkage grouping of earlier versions, imagededup's PHash with its
default ``max_distance_threshold=10``, and imagededup's CNN rule (cosine similarity >= 0.9) on
lookalike's effnet-lite0 vectors. Also times ``dupes`` on a library of all 243 photos and lists the
groups it finds there (there are no copies among them). Usage::

    PYTHONPATH=. python benchmarks/dupes.py [--calibrate] [--out benchmarks/results/dupes.json]
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import PHOTOS, RESULTS, ROOT  # noqa: E402
from lookalike.embed.images import load_image  # noqa: E402
from lookalike.search.augment import EDITS, REENCODE, apply

log = logging.getLogger("bench.dupes")
COPIES = [f"reencode:{k}" for k in REENCODE] + [f"edit:{k}" for k in EDITS]
METRIC = "effnet-lite0"
#: Candidate threshold = this quantile of photo-to-copy distances on the calibration photos (1.0: the
#: largest; verification, not this threshold, keeps the groups precise, so it can be loose).
CANDIDATE_QUANTILE = 1.0


def split_photos(folder: Path = PHOTOS) -> tuple[list[Path], list[Path]]:
    """(calibration, evaluation) photos, split by source photo (first byte of its sha256)."""
    with open(folder / "MANIFEST.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    cal = [folder / r["file"] for r in rows if int(r["sha256"][:2], 16) % 2 == 0]
    ev = [folder / r["file"] for r in rows if int(r["sha256"][:2], 16) % 2 == 1]
    return cal, ev


def build_library_folder(photos: list[Path], out: Path, seed: int = 0) -> list[list[str]]:
    """Write the photos and their copies into ``out``; returns the true groups (file names)."""
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    truth = []
    for i, src in enumerate(photos):
        shutil.copy(src, out / src.name)
        group = [src.name]
        if rng.uniform() < 0.5:
            img = load_image(src)
            for n, name in enumerate(rng.choice(COPIES, size=int(rng.integers(1, 4)), replace=False)):
                copy = apply(str(name), img, [seed, i, n])
                fname = f"{src.stem}-copy{n}-{name.split(':')[1]}.jpg"
                copy.save(out / fname, quality=92)
                group.append(fname)
            if rng.uniform() < 0.2:
                shutil.copy(src, out / f"{src.stem}-identical.jpg")
                group.append(f"{src.stem}-identical.jpg")
        truth.append(group)
    return truth


def pairs_of_groups(groups: list[list[str]]) -> set[frozenset[str]]:
    return {frozenset(p) for g in groups for p in itertools.combinations(sorted(set(g)), 2)}


def pairs_of_map(dup_map: dict[str, list[Any]]) -> set[frozenset[str]]:
    """imagededup's {file: [duplicate files]} as a set of pairs."""
    return {frozenset((a, b if isinstance(b, str) else b[0])) for a, bs in dup_map.items() for b in bs}


def score(predicted: set[frozenset[str]], truth: set[frozenset[str]]) -> dict[str, Any]:
    tp = len(predicted & truth)
    return {"pairs_predicted": len(predicted), "true_positives": tp,
            "false_pairs": len(predicted - truth),
            "precision": round(tp / len(predicted), 4) if predicted else 1.0,
            "recall": round(tp / len(truth), 4) if truth else 1.0}


def index(folder: Path, lib: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "lookalike", "index", str(folder), "--library", str(lib),
                    "-m", METRIC, "-q"], check=True, env=env)
    return time.perf_counter() - t


def lookalike_rows(lib_path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Groups by lookalike's three rules, as file-name groups, with timings; and the vectors."""
    from lookalike.library.service import Library
    from lookalike.search.dupes import calibrate, candidate_pairs, components
    from lookalike.search.rerank import brute_force

    out: dict[str, Any] = {}
    with Library.open(lib_path) as lib:
        lib.duplicates(METRIC, k=1)  # warm up (index load, OpenCV import): time the work itself
        for name, kwargs in (("lookalike dupes (default: verified)", {}),
                             ("lookalike dupes --no-verify (complete linkage)", {"verify": False})):
            t = time.perf_counter()
            groups = lib.duplicates(METRIC, **kwargs)
            secs = time.perf_counter() - t
            out[name] = ([[os.path.basename(m.path) for m in g.members] for g in groups], secs,
                         [g.to_dict() for g in groups])
        ids = lib.ids(METRIC)
        vecs = lib.vectors(METRIC, ids)
        paths = lib.paths_for(ids.tolist())
        t = time.perf_counter()
        dist, nbr = brute_force(vecs, vecs, min(11, len(ids)), "cosine")  # 10 neighbours besides itself
        old = components(len(ids), candidate_pairs(nbr, dist, calibrate(METRIC)))  # single linkage
        out["single linkage at the calibrated threshold (before)"] = (
            [[os.path.basename(paths[int(ids[r])][0]) for r in g] for g in old], time.perf_counter() - t, None)
        # one vector per content: give every path its content's vector, as a file-based tool sees them
        per_file = {os.path.basename(p): vecs[row] for row, i in enumerate(ids) for p in paths[int(i)]}
    return out, per_file


def imagededup_rows(folder: Path, vectors: dict[str, np.ndarray]) -> dict[str, Any]:
    import torch
    from imagededup.methods import CNN, PHash
    from imagededup.utils import CustomModel

    out: dict[str, Any] = {}
    t = time.perf_counter()
    phash = PHash(verbose=False).find_duplicates(image_dir=str(folder), max_distance_threshold=10)
    out["imagededup PHash (max_distance_threshold=10)"] = (pairs_of_map(phash), time.perf_counter() - t)
    # imagededup's own CNN rule on effnet-lite0 vectors: its MobileNet weights cannot be downloaded
    # here, so the model is a placeholder and the encodings are lookalike's
    cnn = CNN(verbose=False, model_config=CustomModel(name=METRIC, model=torch.nn.Identity(),
                                                       transform=lambda x: x))
    t = time.perf_counter()
    enc = {name: v / np.linalg.norm(v) for name, v in vectors.items()}
    found = cnn.find_duplicates(encoding_map=enc, min_similarity_threshold=0.9, num_sim_workers=0)
    out[f"imagededup CNN rule (cosine >= 0.9) on {METRIC}"] = (pairs_of_map(found), time.perf_counter() - t)
    return out


def calibrate_candidate(photos: list[Path], seed: int = 1) -> dict[str, Any]:
    """Candidate threshold from calibration photos: the CANDIDATE_QUANTILE of copy distances."""
    from lookalike.embed.factory import create_metric
    from lookalike.search.verify import features, verify_features

    metric = create_metric(METRIC, device="cpu")
    gallery = metric.embed_paths([str(p) for p in photos], progress=False).vectors
    images = [load_image(p) for p in photos]
    dists, found = [], []
    for t, name in enumerate(COPIES):
        copies = [apply(name, im, [seed, t, i]) for i, im in enumerate(images)]
        dists.append(np.diag(metric.distances(metric.embed(copies), gallery)))
        found += [verify_features(features(a), features(b)).same for a, b in zip(images, copies, strict=True)]
    d = np.concatenate(dists)
    return {"candidate": round(float(np.quantile(d, CANDIDATE_QUANTILE)), 5), "photos": len(photos),
            "copies": int(len(d)), "copies_verified": round(float(np.mean(found)), 4),
            "copy_distance_max": round(float(d.max()), 5)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calibrate", action="store_true",
                    help="first set the candidate threshold from the calibration photos (thresholds.json)")
    ap.add_argument("--out", type=Path, default=RESULTS / "dupes.json")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    for noisy in ("alembic", "faiss", "imagededup", "lookalike.store"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    cal_photos, eval_photos = split_photos()
    result: dict[str, Any] = {"split": {"calibration": len(cal_photos), "evaluation": len(eval_photos),
                                        "rule": "sha256 first byte even -> calibration"}}
    if not args.calibrate and args.out.is_file():  # keep the figures of the last calibration
        previous = json.loads(args.out.read_text()).get("calibration")
        if previous:
            result["calibration"] = previous
    if args.calibrate:
        entry = calibrate_candidate(cal_photos)
        table_path = ROOT / "lookalike" / "search" / "thresholds.json"
        table = json.loads(table_path.read_text())
        table["metrics"][METRIC]["candidate"] = entry["candidate"]
        table["metrics"][METRIC]["candidate_method"] = (
            f"benchmarks/dupes.py --calibrate: {CANDIDATE_QUANTILE:.1%} quantile of distances between "
            f"{entry['photos']} calibration photos and their copies ({', '.join(COPIES)})")
        table_path.write_text(json.dumps(table, indent=2, sort_keys=True) + "\n")
        result["calibration"] = entry
        log.info("calibration: %s", entry)
    with tempfile.TemporaryDirectory() as tmp:
        folder, lib = Path(tmp) / "photos", Path(tmp) / "lib"
        truth = build_library_folder(eval_photos, folder)
        true_pairs = pairs_of_groups(truth)
        n_files = sum(len(g) for g in truth)
        result["library"] = {"files": n_files, "photos": len(truth), "true_groups": sum(len(g) > 1 for g in truth),
                             "true_pairs": len(true_pairs), "index_s": round(index(folder, lib), 1)}
        log.info("library: %s", result["library"])
        rows: dict[str, Any] = {}
        ours, vectors = lookalike_rows(lib)
        for name, (groups, secs, detail) in ours.items():
            rows[name] = {**score(pairs_of_groups(groups), true_pairs), "groups": len(groups), "seconds": round(secs, 2)}
            if detail is not None and "default" in name:
                result["false_groups_default"] = [g for g in detail if any(
                    frozenset((a["path"].rsplit("/", 1)[1], b["path"].rsplit("/", 1)[1])) not in true_pairs
                    for a, b in itertools.combinations(g["members"], 2))]
                result["missed_pairs_default"] = sorted(sorted(p) for p in true_pairs - pairs_of_groups(groups))
        for name, (pairs, secs) in imagededup_rows(folder, vectors).items():
            rows[name] = {**score(pairs, true_pairs), "seconds": round(secs, 2)}
        result["rows"] = rows
        for name, row in rows.items():
            log.info("%-55s P %.4f R %.4f (%d false pairs) %.2fs", name, row["precision"], row["recall"],
                     row["false_pairs"], row["seconds"])
        full_folder, full_lib = Path(tmp) / "all", Path(tmp) / "all-lib"
        full_folder.mkdir()
        for p in cal_photos + eval_photos:
            shutil.copy(p, full_folder / p.name)
        index(full_folder, full_lib)
        from lookalike.library.service import Library

        with Library.open(full_lib) as full:
            full.duplicates(METRIC, k=1)  # warm up: the model-free parts (index load, OpenCV)
            t = time.perf_counter()
            groups = full.duplicates(METRIC)
            secs = time.perf_counter() - t
            before = full.duplicates(METRIC, verify=False)
        result["all_photos"] = {
            "photos": len(cal_photos) + len(eval_photos), "dupes_seconds": round(secs, 2),
            "groups": [[os.path.basename(m.path) for m in g.members] for g in groups],
            "no_verify_groups": len(before)}
        log.info("all %d photos: dupes %.2fs, %d groups (--no-verify: %d)", result["all_photos"]["photos"],
                 secs, len(groups), len(before))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(table_markdown(result))


def table_markdown(result: dict[str, Any]) -> str:
    lines = ["| method | precision | recall | false pairs | seconds |", "|---|---:|---:|---:|---:|"]
    for name, row in result["rows"].items():
        lines.append(f"| {name} | {row['precision']:.4f} | {row['recall']:.4f} | {row['false_pairs']} | "
                     f"{row['seconds']:.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
