"""``lookalike embed`` edge cases (issue 10.14): failures exit 1, any file name survives --out,
over-long paths are reported, identical files are embedded once; -k must be positive."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np

from lookalike.cli.embed_cmd import read_paths
from lookalike.embed.factory import create_metric
from lookalike.files import expand_inputs


def deep_folder(top, photo) -> str:
    """A photo whose full path is over 4096 bytes (built relative to directory fds)."""
    fd = os.open(top, os.O_RDONLY)
    for _ in range(17):
        os.mkdir("d" * 250, dir_fd=fd)
        sub = os.open("d" * 250, os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = sub
    out = os.open("deep.jpg", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
    os.write(out, photo.read_bytes())
    os.close(out)
    os.close(fd)
    return str(top)


def test_any_file_name_round_trips_through_out(cli, photos, tmp_path):
    folder = tmp_path / "pics"
    folder.mkdir()
    names = [b"new\nline.jpg", b"caf\xe9.jpg", b"plain.jpg"]
    for name, photo in zip(names, photos):
        shutil.copyfile(photo, os.fsencode(folder) + b"/" + name)
    out = tmp_path / "v.npy"
    proc = cli("embed", str(folder), "-m", "tiny-vit", "--out", str(out), "--workers", "0")
    assert proc.returncode == 0, proc.stderr
    got = read_paths(tmp_path / "v.paths.jsonl")
    assert sorted(os.fsencode(p) for p in got) == sorted(os.fsencode(folder) + b"/" + n for n in names)
    assert np.load(out).shape == (3, 32)


def test_failures_and_long_paths_are_reported_and_exit_1(cli, photos, tmp_path):
    folder = tmp_path / "pics"
    folder.mkdir()
    shutil.copyfile(photos[0], folder / "ok.jpg")
    (folder / "broken.jpg").write_text("no")
    deep_folder(folder, photos[1])
    problems: list[tuple[str, str]] = []
    assert expand_inputs([folder], problems) == [str(folder / "broken.jpg"), str(folder / "ok.jpg")]
    assert [r for _, r in problems] == ["path too long"]
    proc = cli("embed", str(folder), "-m", "tiny-vit", "--json", "--workers", "0")
    assert proc.returncode == 1
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    errors = sorted(r["error"].rsplit(": ", 1)[-1] for r in rows if "error" in r)
    assert errors == ["not an image", "path too long"] and sum("vector" in r for r in rows) == 1


def test_index_reports_an_over_long_path(cli, photos, tmp_path):
    folder = tmp_path / "pics"
    folder.mkdir()
    shutil.copyfile(photos[0], folder / "ok.jpg")
    deep_folder(folder, photos[1])
    proc = cli("index", str(folder), "--library", str(tmp_path / "lib"), "-m", "tiny-vit", "--json",
               "--workers", "0")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["read"] == 1 and [f["reason"] for f in report["failures"]] == ["path too long"]


def test_identical_files_in_a_batch_are_embedded_once(photos, tmp_path):
    a, b = tmp_path / "a.jpg", tmp_path / "b.jpg"
    shutil.copyfile(photos[0], a)
    shutil.copyfile(photos[0], b)
    metric = create_metric("tiny-vit")
    rows: list[int] = []
    real = metric.embed_arrays
    metric.embed_arrays = lambda batch: (rows.append(len(batch)), real(batch))[1]  # count network rows
    result = metric.embed_paths([a, b, photos[1]], workers=0, progress=False)
    assert rows == [2] and result.paths == [str(a), str(b), str(photos[1])]
    np.testing.assert_array_equal(result.vectors[0], result.vectors[1])


def test_k_must_be_positive(cli, tmp_path):
    for k in ("0", "-3", "x"):
        proc = cli("search", "q.jpg", "-k", k, "--library", str(tmp_path))
        assert proc.returncode == 2 and "-k" in proc.stderr
