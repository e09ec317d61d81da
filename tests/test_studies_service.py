"""The study service on real photos: participants, assignment, idempotent answers, concurrency,
crash safety, blinding, admin tokens, exports, and the indexer keeping what studies show."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import uuid
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from lookalike.studies.config import StudyConfig, StudyConfigError
from lookalike.studies.service import (
    AdminTokenError,
    AlreadyFinishedError,
    ImageGoneError,
    InvalidAnswerError,
    StudyClosedError,
    StudyService,
)
from lookalike.studies.simulate import distance_judge, run_participant
from tests.conftest import ROOT, run_cli
from tests.dbfixtures import BACKENDS, PG_ENV, pg_schema_url

ADMIN = "admin-secret"
METRICS = ["tiny-vit", "tiny-vit-b"]
TOKEN = re.compile(r"^i[A-Za-z0-9_-]{20}$")


def _index(photos: list[Path], folder: Path, url: str | None, metrics: list[str] = METRICS) -> Path:
    args = ["index", *map(str, photos), "--library", str(folder), "-q"]
    for m in metrics:
        args += ["-m", m]
    run_cli(*args, *(["--db", url] if url else []), check=True, env={"LOOKALIKE_HOME": str(folder.parent / "home")})
    return folder


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, photos: list[Path]) -> Path:
    """24 real photos indexed under two test metrics (SQLite), copied by the fixtures below."""
    return _index(photos[:24], tmp_path_factory.mktemp("template") / "lib", None)


@pytest.fixture(scope="module", params=BACKENDS)
def library(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, photos: list[Path],
            template: Path):
    """The template library on SQLite, and the same photos indexed on PostgreSQL."""
    folder = tmp_path_factory.mktemp("lib") / "lib"
    if request.param == "sqlite":
        yield Path(shutil.copytree(template, folder))
        return
    base = os.environ[PG_ENV]
    schema = f"t_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(base)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield _index(photos[:24], folder, pg_schema_url(base, schema))
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


@pytest.fixture(scope="module")
def sqlite_library(tmp_path_factory: pytest.TempPathFactory, template: Path) -> Path:
    return Path(shutil.copytree(template, tmp_path_factory.mktemp("lib1") / "lib"))


def _create(lib: Path, **cfg) -> tuple[str, str]:
    name = f"s-{uuid.uuid4().hex[:8]}"
    base = dict(metrics=METRICS, query_count=12, ranks=[1, 2, 3], trials_per_participant=16, practice_trials=2,
                sentinels=2, min_response_ms=0.0)
    with StudyService.open(lib, admin_token=ADMIN) as svc:
        info = svc.create_study(name, StudyConfig(**{**base, **cfg}), admin_token=ADMIN)
    return name, info["public_id"]


def _answer_all(svc: StudyService, pid: str, token: str, pick: int = 0) -> dict:
    while True:
        t = svc.next_trial(pid, token)
        if t["finished"]:
            return t
        svc.record_answer(pid, token, t["index"], t["options"][pick]["letter"])


def test_a_participant_joins_answers_in_order_resumes_and_finishes_with_the_code(sqlite_library):
    name, pid = _create(sqlite_library, completion_code="C0DE42")
    with StudyService.open(sqlite_library) as svc:
        params = {"PROLIFIC_PID": "prolific-7", "STUDY_ID": "st-1", "SESSION_ID": "se-9", "utm": "x"}
        state = svc.join(pid, params=params)
        token = state["participant"]
        assert state["total"] == 2 + 16 + 2 and state["answered"] == 0 and not state["finished"]
        first = svc.next_trial(pid, token)
        assert first["practice"] and first["index"] == 0
        assert svc.next_trial(pid, token)["options"] == first["options"]  # the same trial until answered
        with pytest.raises(InvalidAnswerError, match="not been shown|first"):
            svc.record_answer(pid, token, 1, "A")
        with pytest.raises(InvalidAnswerError, match="not one of"):
            svc.record_answer(pid, token, 0, "Z")
        receipt = svc.record_answer(pid, token, 0, "b")
        assert receipt["stored"] and receipt["answered"] == 1
        second = svc.next_trial(pid, token)
        assert second["index"] == 1 and second["practice"]
    with StudyService.open(sqlite_library, admin_token=ADMIN) as svc:  # later, elsewhere: the person resumes
        again = svc.join(pid, params={"PROLIFIC_PID": "prolific-7"})
        assert again["participant"] == token and again["answered"] == 1
        assert svc.next_trial(pid, token)["index"] == 1
        done = _answer_all(svc, pid, token)
        assert done["finished"] and done["completion_code"] == "C0DE42" and done["answered"] == 20
        with pytest.raises(InvalidAnswerError):
            svc.record_answer(pid, token, 20, "A")
        retry = svc.record_answer(pid, token, 19, "B")  # a retried last submit: nothing new stored
        assert retry["duplicate"] and not retry["stored"]
        rows = svc.answers(name, admin_token=ADMIN)
        assert len(rows) == 20 and rows[0]["prolific_pid"] == "prolific-7" and rows[0]["session_id"] == "se-9"
        assert [r["seq"] for r in rows] == list(range(20))
        assert Counter(r["role"] for r in rows) == {"practice": 2, "main": 16, "sentinel": 2}
        r = rows[5]
        assert r["shown_at"] <= r["answered_at"] and r["response_ms"] >= 0 and len(r["shown"]) >= 2
        assert r["shown"][0]["letter"] == "A" and r["choice"] == "A"


def test_answers_faster_than_the_floor_are_flagged(sqlite_library):
    name, pid = _create(sqlite_library, min_response_ms=250.0, practice_trials=0, sentinels=0,
                        trials_per_participant=3)
    with StudyService.open(sqlite_library, admin_token=ADMIN) as svc:
        token = svc.join(pid)["participant"]
        for ms in (120.0, 900.0, None):  # None: measured by the server (microseconds here)
            t = svc.next_trial(pid, token)
            assert svc.record_answer(pid, token, t["index"], "A", response_ms=ms)["too_fast"] == (ms != 900.0)
        flags = [r["too_fast"] for r in svc.answers(name, admin_token=ADMIN)]
    assert flags == [True, False, True]


def test_double_submit_stores_one_answer(library):
    name, pid = _create(library)
    with StudyService.open(library, admin_token=ADMIN) as svc:
        token = svc.join(pid)["participant"]
        t = svc.next_trial(pid, token)
        receipts = []

        def submit() -> None:
            with StudyService.open(library) as mine:
                receipts.append(mine.record_answer(pid, token, t["index"], "A"))

        threads = [threading.Thread(target=submit) for _ in range(6)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert sorted(r["stored"] for r in receipts) == [False] * 5 + [True]
        assert svc.record_answer(pid, token, t["index"], "B")["duplicate"]
        assert len(svc.answers(name, admin_token=ADMIN)) == 1


def test_30_concurrent_participants_x_20_answers_lose_nothing_and_stay_balanced(library):
    name, pid = _create(library, query_count=12, ranks=[1, 2, 3, 4])
    errors: list[BaseException] = []

    def participant(i: int) -> None:
        try:
            with StudyService.open(library) as svc:  # its own connection
                token = svc.join(pid, params={"PROLIFIC_PID": f"p{i}"})["participant"]
                _answer_all(svc, pid, token, pick=i % 2)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=participant, args=(i,)) for i in range(30)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors[:3]
    with StudyService.open(library, admin_token=ADMIN) as svc:
        rows = svc.answers(name, admin_token=ADMIN)
        info = svc.study_info(name, admin_token=ADMIN)
    assert len(rows) == 600 and info["answers"] == 600 and info["finished"] == 30
    assert len({(r["participant"], r["trial_id"]) for r in rows}) == 600
    assert Counter(Counter(r["participant"] for r in rows).values()) == {20: 30}
    for role in ("main", "sentinel"):
        counts = Counter(r["trial_id"] for r in rows if r["role"] == role)
        assert len(counts) == info["trials"][role] or role == "sentinel"
        assert max(counts.values()) - min(counts.values()) <= 1, (role, counts)


KILLED = """
import sys
from lookalike.studies.service import StudyService
lib, pid = sys.argv[1], sys.argv[2]
with StudyService.open(lib) as svc:
    token = svc.join(pid, params={"PROLIFIC_PID": "crash"})["participant"]
    while True:
        t = svc.next_trial(pid, token)
        if t["finished"]:
            break
        r = svc.record_answer(pid, token, t["index"], "A")
        print(token, t["index"], flush=True)
"""


def test_killing_the_process_mid_study_loses_nothing_and_the_study_continues(library):
    name, pid = _create(library, trials_per_participant=30, ranks=[1, 2, 3, 4])
    proc = subprocess.Popen([sys.executable, "-c", KILLED, str(library), pid], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    acked = []
    assert proc.stdout is not None
    for line in proc.stdout:
        acked.append(line.split())
        if len(acked) == 12:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    token = acked[0][0]
    with StudyService.open(library, admin_token=ADMIN) as svc:
        stored = [r["seq"] for r in svc.answers(name, admin_token=ADMIN)]
        assert stored == list(range(len(stored))) and len(stored) >= 12  # every acknowledged answer, no gap
        state = svc.join(pid, params={"PROLIFIC_PID": "crash"})
        assert state["participant"] == token and state["answered"] == len(stored)
        done = _answer_all(svc, pid, token)
        assert done["finished"] and len(svc.answers(name, admin_token=ADMIN)) == done["total"] == 2 + 30 + 2


def _walk(obj, path=""):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _walk(v, f"{path}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _walk(v, f"{path}[{i}]")
    else:
        yield path, obj


@pytest.mark.parametrize("kind", ["retrieval", "2afc"])
def test_no_participant_payload_names_a_metric_content_id_or_path(sqlite_library, kind):
    from PIL import Image as PILImage
    from sqlalchemy import select

    from lookalike.store.models import Content, Image

    name, pid = _create(sqlite_library, kind=kind, trials_per_participant=8, sentinels=2)
    payloads: list[dict] = []
    with StudyService.open(sqlite_library, admin_token=ADMIN) as svc:
        with svc.library.database.session() as s:
            paths = list(s.scalars(select(Image.path)))
            contents = {c: h for c, h in s.execute(select(Content.id, Content.sha256))}
        payloads.append(svc.public_info(pid))
        state = svc.join(pid, params={"PROLIFIC_PID": "walker"})
        payloads.append(state)
        token = state["participant"]
        while True:
            t = svc.next_trial(pid, token)
            payloads.append(t)
            if t["finished"]:
                break
            payloads.append(svc.record_answer(pid, token, t["index"], t["options"][-1]["letter"]))
            payloads.append(svc.progress(pid, token))
        payloads.append(svc.join(pid, participant=token))
        images = {v for p in payloads for k, v in _walk(p) if k.endswith("reference") or k.endswith("image")}
        jpeg = svc.image_bytes(pid, next(iter(images)))
    forbidden = set(METRICS) | {part for m in METRICS for part in m.split("-") if len(part) > 2} | {name}
    forbidden |= {str(Path(sqlite_library))} | set(contents.values())
    forbidden |= {x for p in paths for x in (p, os.path.basename(p), Path(p).stem)}
    allowed_ints = {"index", "total", "answered", "practice"}
    for payload in payloads:
        for where, value in _walk(payload):
            key = where.rsplit(".", 1)[-1].split("[")[0]
            assert not re.search(r"metric|content|sha|path|rank|label|slot|correct|role|sentinel|trial_id", key)
            if isinstance(value, bool) or value is None:
                continue
            if isinstance(value, (int, float)):
                assert key in allowed_ints, where
                continue
            if key in ("reference", "image"):
                assert TOKEN.match(value) and value not in {str(c) for c in contents}, where
                continue
            for bad in forbidden:
                assert bad.lower() not in str(value).lower(), (where, bad)
    assert len(images) >= 3
    img = PILImage.open(__import__("io").BytesIO(jpeg))
    assert img.format == "JPEG" and "exif" not in img.info and max(img.size) <= 1024


def test_admin_operations_need_the_admin_token(sqlite_library):
    name, pid = _create(sqlite_library)
    cfg = StudyConfig(metrics=METRICS, query_count=3)
    with StudyService.open(sqlite_library, admin_token=ADMIN) as svc:
        for bad in (None, "", "wrong"):
            for call in (lambda: svc.create_study("x", cfg, admin_token=bad),
                         lambda: svc.results(name, admin_token=bad), lambda: svc.answers(name, admin_token=bad),
                         lambda: svc.close_study(name, admin_token=bad), lambda: svc.list_studies(admin_token=bad),
                         lambda: svc.export(name, "/tmp/x", admin_token=bad)):
                with pytest.raises(AdminTokenError):
                    call()
    with StudyService.open(sqlite_library) as svc:  # a service opened without a token: participant-only
        with pytest.raises(AdminTokenError):
            svc.study_info(name, admin_token=ADMIN)
        assert svc.public_info(pid)["open"]


def test_a_service_wraps_a_library_the_caller_opened(sqlite_library):
    from lookalike.library.service import Library

    name, pid = _create(sqlite_library)
    with Library.open(sqlite_library) as lib:
        with StudyService(lib, ADMIN) as svc:
            assert svc.library is lib
            assert name in [s["name"] for s in svc.list_studies(admin_token=ADMIN)]
            token = svc.join(pid)["participant"]
            ref = svc.image_path(pid, svc.next_trial(pid, token)["reference"])
        assert lib.id_for_path(ref) is not None  # the file behind a token is one of the library's


def test_a_closed_study_takes_no_new_participants_or_answers(sqlite_library):
    name, pid = _create(sqlite_library)
    with StudyService.open(sqlite_library, admin_token=ADMIN) as svc:
        token = svc.join(pid)["participant"]
        t = svc.next_trial(pid, token)
        assert svc.close_study(name, admin_token=ADMIN)["status"] == "closed"
        with pytest.raises(StudyClosedError):
            svc.join(pid)
        with pytest.raises(StudyClosedError):
            svc.record_answer(pid, token, t["index"], "A")
        with pytest.raises(StudyClosedError):
            svc.next_trial(pid, token)
        assert not svc.public_info(pid)["open"]


def test_bad_designs_are_clear_errors(sqlite_library):
    with StudyService.open(sqlite_library, admin_token=ADMIN) as svc:
        with pytest.raises(StudyConfigError, match="no index for"):
            svc.create_study("bad", StudyConfig(metrics=["tiny-vit", "effnet-lite0"]), admin_token=ADMIN)
        with pytest.raises(StudyConfigError, match="2 to 6"):
            StudyConfig(metrics=["tiny-vit"])
        with pytest.raises(StudyConfigError, match="no vector"):
            svc.create_study("bad", StudyConfig(metrics=METRICS, queries="ids", query_ids=[99999]), admin_token=ADMIN)
        name, _ = _create(sqlite_library)
        with pytest.raises(Exception, match="exists already"):
            svc.create_study(name, StudyConfig(metrics=METRICS), admin_token=ADMIN)


def test_2afc_export_is_the_nights_layout_and_long_exports_hold_every_answer(sqlite_library, tmp_path):
    name, pid = _create(sqlite_library, kind="2afc", trials_per_participant=10, sentinels=2, ranks=[1, 2])
    with StudyService.open(sqlite_library, admin_token=ADMIN) as svc:
        rng = np.random.default_rng(0)
        judge = distance_judge(svc.library, "tiny-vit", 0.3, rng)
        for i in range(8):
            run_participant(svc, pid, judge, rng, careless=(i == 0))
        n = svc.study_info(name, admin_token=ADMIN)["answers"]
        [csv_path] = svc.export(name, tmp_path / "long", "csv", admin_token=ADMIN)
        [json_path] = svc.export(name, tmp_path / "long", "json", admin_token=ADMIN)
        [data] = svc.export(name, tmp_path / "nights", "nights", admin_token=ADMIN)
        excluded = {e["participant"] for e in svc.results(name, admin_token=ADMIN)["participants"]["excluded"]}
        main = [r for r in svc.answers(name, admin_token=ADMIN) if r["role"] == "main" and r["participant"] not in excluded]
    with open(csv_path, newline="") as fh:
        long_rows = list(csv.DictReader(fh))
    assert len(long_rows) == n == len(json.loads(json_path.read_text())) == 8 * 14
    with open(data, newline="") as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == ["id", "votes", "left_vote", "right_vote", "ref_path", "left_path", "right_path",
                                     "split", "prompt", "is_imagenet"]
        rows = list(reader)
    assert sum(int(r["votes"]) for r in rows) == len(main) and len(rows) == len({r["trial_id"] for r in main})
    split_of_ref: dict[bytes, str] = {}
    for r in rows:
        assert int(r["votes"]) == int(r["left_vote"]) + int(r["right_vote"])
        assert r["ref_path"].startswith("ref/") and r["left_path"].startswith("distort/")
        assert r["right_path"].startswith("distort/") and r["split"] in ("train", "val", "test")
        ref = (data.parent / r["ref_path"]).read_bytes()
        assert (data.parent / r["left_path"]).is_file() and (data.parent / r["right_path"]).is_file()
        assert split_of_ref.setdefault(ref, r["split"]) == r["split"]  # splits go by reference image
    # `lookalike eval` reads the export as it is: each target is the share of people who chose the right image
    from lookalike.judgments.datasets import read_nights

    chose_right: dict[int, list[bool]] = {}
    for r in main:
        chose_right.setdefault(r["trial_id"], []).append(r["choice_slot"] == 1)
    expected = [float(np.mean(chose_right[k])) for k in sorted(chose_right)]
    assert [t.target for t in read_nights(data.parent).records] == pytest.approx(expected)
    assert 0 < np.mean(expected) < 1


@pytest.mark.slow  # three indexing runs
def test_the_indexer_keeps_the_content_a_study_shows(tmp_path, photos):
    from sqlalchemy import select

    from lookalike.indexer.doctor import diagnose
    from lookalike.library.folder import LibraryFolder
    from lookalike.store.models import Content, Vector

    pics = tmp_path / "pics"
    pics.mkdir()
    for p in photos[:12]:
        shutil.copy2(p, pics / p.name)
    lib = _index([pics], tmp_path / "lib", None)
    name, pid = _create(lib, query_count=4, ranks=[1], trials_per_participant=4, practice_trials=0, sentinels=1)
    with StudyService.open(lib, admin_token=ADMIN) as svc:
        token = svc.join(pid)["participant"]
        t = svc.next_trial(pid, token)
        gone = svc.image_path(pid, t["reference"])
        with svc.library.database.session() as s:
            cid = s.scalar(select(Content.id).where(Content.sha256 == __import__("hashlib").sha256(
                gone.read_bytes()).hexdigest()))
    saved = gone.read_bytes()
    gone.unlink()
    run_cli("index", "--library", str(lib), "-q", check=True)
    with LibraryFolder.open(lib) as indexed:
        with indexed.store.session() as s:
            assert s.get(Content, cid) is not None  # the study's identity of the image is kept
            assert not list(s.scalars(select(Vector).where(Vector.content_id == cid)))  # search no longer finds it
        assert not [f for f in diagnose(indexed) if f.kind == "orphan-contents"]
    with StudyService.open(lib, admin_token=ADMIN) as svc:
        with pytest.raises(ImageGoneError):
            svc.image_path(pid, t["reference"])
        assert svc.results(name, admin_token=ADMIN, replicates=10)["study"] == name
    gone.write_bytes(saved)  # the file comes back: the same content id, shown again
    run_cli("index", "--library", str(lib), "-q", check=True)
    with StudyService.open(lib) as svc:
        assert svc.image_path(pid, t["reference"]).read_bytes() == saved
