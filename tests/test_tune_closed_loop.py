"""The closed loop on real photos: simulated participants who judge by colour answer a 2AFC study
-> export -> `lookalike tune` -> the tuned metric in `lookalike metrics` -> `lookalike index` ->
`lookalike search` -> a retrieval study of base vs tuned metric, answered by the same rule,
prefers the tuned metric."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lookalike.studies.config import StudyConfig
from lookalike.studies.service import StudyService
from lookalike.studies.simulate import run_participant
from tests.conftest import run_cli
from tests.tune_data import recolour, reframe

ADMIN = "admin-secret"
BASE, TUNED = "effnet-lite0", "effnet-colour"
N_REFS = 40


def colour_judge(ref: Path, options: Sequence[Path]) -> int:
    """A person who sees colour, not layout: the option whose hue and saturation histograms are
    nearest the reference's."""
    def hist(p: Path) -> np.ndarray:
        hsv = np.asarray(Image.open(p).convert("RGB").resize((32, 32)).convert("HSV"), np.float64).reshape(-1, 3)
        hue = np.bincount((hsv[:, 0] // 32).astype(int), weights=hsv[:, 1] / 255, minlength=8)
        sat = np.bincount((hsv[:, 1] // 32).astype(int), minlength=8)
        return np.concatenate([hue, sat]) / len(hsv)

    h = hist(ref)
    return int(np.argmin([np.abs(hist(o) - h).sum() for o in options]))


def _library_photos(folder: Path, photos: list[Path], seed: int) -> list[tuple[Path, Path, Path]]:
    """Per photo: itself, a reframed copy (same colours) and a grey copy (same framing)."""
    rng = random.Random(seed)
    out = []
    folder.mkdir(parents=True)
    for i, p in enumerate(photos):
        with Image.open(p) as im:
            ref = im.convert("RGB").resize((96, 96), Image.BICUBIC)
        paths = (folder / f"{i:03d}.png", folder / f"{i:03d}_crop.png", folder / f"{i:03d}_grey.png")
        ref.save(paths[0])
        reframe(ref, rng).save(paths[1])
        recolour(ref, rng).save(paths[2])
        out.append(paths)
    return out


def _top_paths(result: dict) -> dict[str, str]:
    """``{metric: path of the nearest hit}`` from one `lookalike search --json` line."""
    if "hits" in result:
        return {result["metric"]: result["hits"][0]["path"]}
    return {m: r["hits"][0]["path"] for m, r in result["metrics"].items()}


@pytest.mark.slow  # three effnet-lite0 passes over 180 images on the CPU
@pytest.mark.learning
def test_study_tune_index_search_study_prefers_the_tuned_metric(tmp_path: Path, photos: list[Path], seed: int) -> None:
    lib, pics = tmp_path / "lib", tmp_path / "pics"
    sets = _library_photos(pics, photos[:N_REFS], seed)
    run_cli("index", str(pics), "--library", str(lib), "-m", BASE, "-q", check=True)

    with StudyService.open(lib, admin_token=ADMIN) as svc:
        ids = {p: svc.library.id_for_path(p) for trio in sets for p in trio}
        triplets = [[ids[r], ids[a], ids[b]] if i % 2 else [ids[r], ids[b], ids[a]] for i, (r, a, b) in enumerate(sets)]
        svc.create_study("pairs", StudyConfig(kind="2afc", triplets=triplets, trials_per_participant=len(triplets),
                                              practice_trials=0, sentinels=0, min_response_ms=0.0),
                         admin_token=ADMIN)
        pid = svc.study_info("pairs", admin_token=ADMIN)["public_id"]
        rng = np.random.default_rng(seed)
        for _ in range(3):
            run_participant(svc, pid, colour_judge, rng)
        [data_csv] = svc.export("pairs", tmp_path / "export", "nights", admin_token=ADMIN)

    proc = run_cli("tune", BASE, "--data", str(data_csv.parent), "--method", "mlp", "--name", TUNED, "--seed", str(seed),
                   "--json", "-q")
    assert proc.returncode == 0, proc.stderr
    tuned = json.loads(proc.stdout)
    assert tuned["scores"]["tuned"]["val_2afc"] > tuned["scores"]["base"]["val_2afc"], tuned["report"]
    listed = json.loads(run_cli("metrics", "--json", check=True).stdout)
    assert TUNED in {m["name"] for m in listed}

    run_cli("index", str(pics), "--library", str(lib), "-m", BASE, "-m", TUNED, "-q", check=True)
    queries = [str(r) for r, _, _ in sets[:10]]
    proc = run_cli("search", *queries, "--library", str(lib), "-m", BASE, "-m", TUNED, "-k", "1",
                   "--exclude-self", "--json", "-q", check=True)
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    crops = {BASE: 0, TUNED: 0}
    for r in results:
        for metric, found in _top_paths(r).items():
            crops[metric] += found.endswith("_crop.png")
    assert crops[TUNED] > crops[BASE]  # the tuned metric's nearest neighbour is the same-colour copy

    with StudyService.open(lib, admin_token=ADMIN) as svc:
        svc.create_study("retrieval", StudyConfig(kind="retrieval", metrics=[BASE, TUNED], queries="ids",
                                                  query_ids=[ids[r] for r, _, _ in sets], ranks=[1],
                                                  trials_per_participant=N_REFS, practice_trials=0,
                                                  sentinels=0, min_response_ms=0.0), admin_token=ADMIN)
        pid = svc.study_info("retrieval", admin_token=ADMIN)["public_id"]
        rng = np.random.default_rng(seed + 1)
        for _ in range(3):
            run_participant(svc, pid, colour_judge, rng)
        shares = svc.results("retrieval", admin_token=ADMIN, replicates=200)["shares"]
    assert shares[TUNED]["share"] > shares[BASE]["share"] + 0.3
    assert shares[TUNED]["low"] > shares[BASE]["high"]
