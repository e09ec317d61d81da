"""Pairwise metrics in the product: ``lookalike distance``, the offline error, and
``search --rerank`` / ``Library.search(rerank=...)`` over a small library of real photos."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

pytest.importorskip("diffusers")

from lookalike.embed.factory import create_metric  # noqa: E402
from lookalike.errors import UsageError  # noqa: E402
from lookalike.library.service import Library  # noqa: E402


@pytest.fixture(scope="module")
def library(photos, tmp_path_factory):
    """16 real photos indexed under tiny-vit; its own LOOKALIKE_HOME (feature cache included)."""
    from tests.conftest import run_cli

    pics = tmp_path_factory.mktemp("pics")
    for p in photos[30:46]:
        shutil.copy(p, pics / p.name)
    lib = tmp_path_factory.mktemp("lib")
    home = lib.parent / "home"
    run_cli("index", str(pics), "--library", str(lib), "-m", "tiny-vit", "-q", check=True,
            env={"LOOKALIKE_HOME": str(home)})
    return lib, pics, home


def test_distance_command_with_a_pairwise_metric(cli, photos) -> None:
    a, b = str(photos[0]), str(photos[1])
    proc = cli("distance", a, b, "-m", "tiny-diffsim", "-m", "tiny-vit", "--json", check=True)
    rows = json.loads(proc.stdout)["distances"]
    assert [r["metric"] for r in rows] == ["tiny-diffsim", "tiny-vit"]
    assert rows[0]["distance_kind"] == "pairwise" and rows[0]["distance"] > 1e-3
    metric = create_metric("tiny-diffsim", device="cpu")
    from lookalike.embed.images import load_image

    want = metric.distance_pairs([load_image(a)], [load_image(b)])[0]
    assert rows[0]["distance"] == pytest.approx(want, rel=1e-9)


def test_missing_sd15_weights_name_the_remedy_and_exit_2(cli, photos) -> None:
    a, b = str(photos[0]), str(photos[1])
    proc = cli("distance", a, b, "--metric", "diffsim-sd15", env={"LOOKALIKE_OFFLINE": "1"})
    assert proc.returncode == 2
    assert "lookalike weights import" in proc.stderr and "sd15-unet.safetensors" in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    listed = json.loads(cli("metrics", "--json", check=True).stdout)
    row = next(r for r in listed if r["name"] == "diffsim-sd15")
    assert row["weights_present"] is False and row["offline"] is False


def test_indexing_a_pairwise_metric_is_refused_clearly(cli, photos, tmp_path) -> None:
    proc = cli("index", str(photos[0]), "--library", str(tmp_path / "lib"), "-m", "tiny-diffsim")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "pairwise metric" in proc.stderr and "--rerank tiny-diffsim" in proc.stderr  # before any work


def test_library_search_reranks_candidates_by_the_pairwise_distance(library, monkeypatch) -> None:
    lib_path, pics, home = library
    monkeypatch.setenv("LOOKALIKE_HOME", str(home))
    query = str(sorted(pics.iterdir())[3])
    with Library.open(lib_path) as lib:
        [plain] = lib.search([query], k=4, metrics=["tiny-vit"])
        [result] = lib.search([query], k=4, metrics=["tiny-vit"], rerank="tiny-diffsim", candidates=12)
    assert list(result.by_metric) == ["tiny-vit", "tiny-diffsim"]
    assert result.hits["tiny-vit"] == plain.hits["tiny-vit"]  # the embedding column keeps its top 4
    with Library.open(lib_path) as lib:
        [wide] = lib.search([query], k=12, metrics=["tiny-vit"])
    pool = [h.path for h in wide.hits["tiny-vit"]]
    metric = create_metric("tiny-diffsim", device="cpu")
    d = metric.distance_pairs([query] * len(pool), pool)
    order = np.argsort(d, kind="stable")[:4]
    col = result.by_metric["tiny-diffsim"]
    assert [h.path for h in col.hits] == [pool[i] for i in order]
    assert np.allclose([h.distance for h in col.hits], np.maximum(d[order], 0.0), atol=1e-12)
    assert col.hits[0].path == query and col.distance_kind == "pairwise"
    assert col.extra == {"reranked": ["tiny-vit"], "candidates": 12}
    assert [h.path for h in col.hits] != [h.path for h in plain.hits["tiny-vit"]]  # it re-orders
    from lookalike.cli.search_cmd import side_by_side

    header = side_by_side(result, 4).splitlines()[1]
    assert "tiny-vit" in header and "tiny-diffsim" in header


def test_search_rerank_cli_json_and_table(cli, library) -> None:
    lib_path, pics, home = library
    query = str(sorted(pics.iterdir())[5])
    env = {"LOOKALIKE_HOME": str(home)}
    proc = cli("search", query, "-l", str(lib_path), "-k", "3", "-m", "tiny-vit", "--rerank", "tiny-diffsim",
               "--candidates", "8", "--exclude-self", "--json", check=True, env=env)
    out = json.loads(proc.stdout)
    hits = out["metrics"]["tiny-diffsim"]["hits"]
    assert len(hits) == 3 and [h["rank"] for h in hits] == [1, 2, 3]
    assert query not in [h["path"] for h in hits]
    assert [h["distance"] for h in hits] == sorted(h["distance"] for h in hits)
    bad = cli("search", query, "-l", str(lib_path), "--rerank", "tiny-vit", env=env)
    assert bad.returncode == 2 and "pairwise metric" in bad.stderr and "Traceback" not in bad.stderr


def test_rerank_with_bad_arguments(library, monkeypatch) -> None:
    lib_path, pics, home = library
    monkeypatch.setenv("LOOKALIKE_HOME", str(home))
    query = str(sorted(pics.iterdir())[0])
    with Library.open(lib_path) as lib:
        with pytest.raises(UsageError, match="at least 1"):
            lib.search([query], k=3, rerank="tiny-diffsim", candidates=0)
        with pytest.raises(UsageError, match="unknown metric"):
            lib.search([query], k=3, rerank="diffsim-nope")


def test_weights_import_finds_the_sd15_files_by_name(cli, photos, tmp_path) -> None:
    """The air-gapped route: files named as the catalog says are imported; files that are not SD 1.5
    are then refused with a one-line error, not a traceback."""
    import torch
    from safetensors.torch import save_file

    src = tmp_path / "copied-cache"
    src.mkdir()
    for name in ("sd15-unet", "sd15-vae", "sd15-text_encoder"):
        save_file({"w": torch.zeros(2)}, src / f"{name}.safetensors")
    (src / "sd15-tokenizer-vocab.json").write_text('{"<|startoftext|>": 0, "<|endoftext|>": 1}')
    (src / "sd15-tokenizer-merges.txt").write_text("#version: 0.2\n")
    env = {"LOOKALIKE_OFFLINE": "1"}
    cli("weights", "import", str(src), check=True, env=env)
    listed = json.loads(cli("metrics", "--json", check=True, env=env).stdout)
    assert next(r for r in listed if r["name"] == "diffsim-sd15")["weights_present"] is True
    proc = cli("distance", str(photos[0]), str(photos[1]), "-m", "diffsim-sd15", env=env)
    assert proc.returncode == 1 and "does not fit the model" in proc.stderr
    assert "Traceback" not in proc.stderr
