"""Every page of the app under Streamlit's AppTest, on real photos indexed under effnet-lite0 and a
test metric: the admin gate, Compare (upload, browse, click-through, agreement, missing weights),
Library (counts, failures, duplicate review), Design, Participate (retrieval and 2AFC, resume),
Results (shares, exclusions, downloads)."""

from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

import lookalike
from lookalike.studies.config import StudyConfig
from lookalike.studies.service import StudyService
from lookalike.ui import services as sv
from tests.conftest import ROOT, run_cli

APP = str(ROOT / "lookalike" / "ui" / "app.py")
ADMIN = "ui-test-admin-token"
METRICS = ["effnet-lite0", "tiny-vit"]
TIMEOUT = 120


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, photos: list[Path]) -> Path:
    """16 real photos, a re-encoded copy of the first (a true duplicate) and a broken file."""
    src = tmp_path_factory.mktemp("src")
    for p in photos[:16]:
        shutil.copy(p, src / p.name)
    Image.open(photos[0]).save(src / "copy-of-first.jpg", quality=60)
    (src / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    lib = tmp_path_factory.mktemp("ui") / "lib"
    args = ["index", str(src), "--library", str(lib), "-q"]
    for m in METRICS:
        args += ["-m", m]
    run_cli(*args, check=True)
    return lib


@pytest.fixture
def library(template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    lib = Path(shutil.copytree(template, tmp_path / "lib"))
    monkeypatch.setenv(sv.LIBRARY_ENV, str(lib))
    monkeypatch.setenv(sv.TOKEN_ENV, ADMIN)
    monkeypatch.delenv(sv.DB_ENV, raising=False)
    monkeypatch.setenv(sv.URL_ENV, "http://study.example:8501")
    return lib


def page(name: str, **params: str) -> AppTest:
    """The app opened at one page, with URL parameters."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for k, v in params.items():
        at.query_params[k] = v
    at.run()
    at.switch_page(f"views/{name}.py")
    return at.run()


def texts(at: AppTest) -> str:
    parts = [e.value for kind in ("markdown", "caption", "title", "subheader", "info", "warning", "error",
                                  "success", "code") for e in getattr(at, kind)]
    parts += [b.label for b in at.button] + [str(p.proto.text) for p in at.get("progress")]
    return "\n".join(map(str, parts))


def no_exceptions(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def make_study(library: Path, name: str = "s1", kind: str = "retrieval", **cfg) -> dict:
    cfg = {"kind": kind, "metrics": METRICS, "query_count": 6, "ranks": [1, 2], "trials_per_participant": 4,
           "practice_trials": 1, "sentinels": 1, "min_response_ms": 0.0, **cfg}
    with StudyService.open(library, admin_token=ADMIN) as svc:
        return svc.create_study(name, StudyConfig(**cfg), admin_token=ADMIN)


@pytest.mark.parametrize("name", ["compare", "library", "design", "results"])
def test_admin_pages_refuse_a_missing_or_wrong_token(library: Path, name: str) -> None:
    at = page(name)
    no_exceptions(at)
    assert not at.title and "needs the admin token" in at.warning[0].value
    assert at.text_input(key="token_input").proto.type == 1  # a password field
    at = page(name, token="wrong")
    assert not at.title and "wrong" in at.error[0].value
    at.text_input(key="token_input").input(ADMIN).run()  # the right token typed in opens the page
    no_exceptions(at)
    assert at.title


def test_participant_token_does_not_open_admin_pages(library: Path) -> None:
    info = make_study(library)
    with StudyService.open(library) as svc:
        me = svc.join(info["public_id"])["participant"]
    at = page("results", study=info["public_id"], p=me, token=me)
    assert not at.title and "wrong" in at.error[0].value and "effnet" not in texts(at)


def test_compare_upload_shows_a_column_per_metric(library: Path, photos: list[Path]) -> None:
    at = page("compare", token=ADMIN)
    no_exceptions(at)
    at.slider(key="k").set_value(5).run()
    at.file_uploader(key="upload").upload(photos[3].name, photos[3].read_bytes(), "image/jpeg")
    at.run()
    no_exceptions(at)
    assert [s.value for s in at.subheader] == METRICS
    for m in METRICS:
        hits = [b for b in at.button if b.key.startswith(f"q_{m}_")]
        assert len(hits) == 5
    body = texts(at)
    assert photos[3].name in body  # the uploaded photo is in the library: its own copy is the top hit
    assert re.search(r"\*\*#1\*\* · 0\.0000 · \*[a-z ,/-]+\*", body)  # effnet-lite0's calibrated meaning
    assert "in 2 of 2 metrics" in body  # both metrics found the photo itself: highlighted
    overlap = at.table[0].value
    assert list(overlap["metrics"]) == ["effnet-lite0 / tiny-vit"] and overlap["shared"][0] >= 1
    # click a hit: it becomes the query
    target = next(b for b in at.button if b.key == "q_tiny-vit_3")
    target.click().run()
    no_exceptions(at)
    assert at.session_state["compare_query"][0] == "id"
    captions = [c for im in at.get("image") for c in im.captions]
    assert captions[0].startswith("Query: ") and captions[0] != f"Query: {photos[3].name}"


def test_compare_reranks_with_a_pairwise_metric_as_a_column_of_its_own(library: Path, photos: list[Path],
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOKALIKE_OFFLINE", "1")
    at = page("compare", token=ADMIN)
    no_exceptions(at)
    # a library indexed under a test metric also offers the test pairwise metric
    assert at.selectbox(key="rerank").options == ["none", "diffsim-sd15", "tiny-diffsim"]
    at.slider(key="k").set_value(4).run()
    at.selectbox(key="rerank").set_value("tiny-diffsim").run()
    at.file_uploader(key="upload").upload(photos[5].name, photos[5].read_bytes(), "image/jpeg")
    at.run()
    no_exceptions(at)
    assert [s.value for s in at.subheader] == [*METRICS, "tiny-diffsim"]
    hits = [b for b in at.button if b.key.startswith("q_tiny-diffsim_")]
    assert len(hits) == 4
    assert "pairwise distance" in texts(at)
    assert not [e.value for e in at.error]
    # DiffSim without its weights: its column says how to get them; the other columns stay
    at.selectbox(key="rerank").set_value("diffsim-sd15").run()
    no_exceptions(at)
    assert [s.value for s in at.subheader] == [*METRICS, "diffsim-sd15"]
    [error] = [e.value for e in at.error]
    assert "lookalike weights import" in error
    assert len([b for b in at.button if b.key.startswith("q_effnet-lite0_")]) == 4


def test_compare_browse_uses_cached_thumbnails_not_full_photos(library: Path) -> None:
    at = page("compare", token=ADMIN)
    at.radio(key="query_source").set_value("Browse the library").run()
    no_exceptions(at)
    use = [b for b in at.button if b.key.startswith("use_")]
    assert len(use) == 17  # 16 photos and the copy; the broken file is not indexed
    cache = library / "thumbnails" / str(sv.THUMB_SIDE)  # lookalike.Library.thumbnail's cache
    thumbs = sorted(cache.glob("*.jpg"))
    assert len(thumbs) == 17 and all(max(Image.open(t).size) <= sv.THUMB_SIDE for t in thumbs)
    stamps = [t.stat().st_mtime_ns for t in thumbs]
    use[0].click().run()
    no_exceptions(at)
    assert [s.value for s in at.subheader] == METRICS
    assert [t.stat().st_mtime_ns for t in sorted(cache.glob("*.jpg"))][:17] == stamps  # made once
    urls = [u for img in at.get("image") for u in img.value]
    assert urls and all("/media/" in u for u in urls)  # served from the media cache, never a file path


def test_compare_pasted_path_and_a_bad_path(library: Path, photos: list[Path]) -> None:
    at = page("compare", token=ADMIN)
    at.radio(key="query_source").set_value("Paste a path").run()
    at.text_input(key="query_path").input(str(library / "no-such.jpg")).run()
    at.button(key="path_go").click().run()
    no_exceptions(at)
    assert "No file at" in at.error[0].value and not at.subheader
    at.text_input(key="query_path").input(str(photos[2])).run()
    at.button(key="path_go").click().run()
    no_exceptions(at)
    assert [s.value for s in at.subheader] == METRICS
    assert f"Query: {photos[2].name}" in [c for im in at.get("image") for c in im.captions]


def test_compare_shows_missing_weights_with_the_remedy(library: Path, photos: list[Path],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import lookalike.embed.factory as factory
    from lookalike.errors import WeightsMissingError

    real = factory.create_metric

    def create(name, *a, **kw):  # this machine has tiny-vit's code but pretend its weights are gone
        if name == "tiny-vit":
            raise WeightsMissingError("weights for 'tiny-vit' are not in the cache")
        return real(name, *a, **kw)

    monkeypatch.setattr(factory, "create_metric", create)
    at = page("compare", token=ADMIN)
    at.file_uploader(key="upload").upload("q.png", _png(photos[5]), "image/png").run()
    no_exceptions(at)
    assert any("lookalike weights import" in e.value and "tiny-vit" in e.value for e in at.error)
    assert any(b.key.startswith("q_effnet-lite0_") for b in at.button)  # the other metric still works


def _png(path: Path) -> bytes:
    buf = io.BytesIO()
    Image.open(path).convert("RGB").resize((200, 150)).save(buf, "PNG")
    return buf.getvalue()


def stored_reviews(library: Path) -> dict:
    from lookalike.store.reviews import ReviewStore

    with lookalike.Library.open(library) as lib:
        return ReviewStore(lib.database).export()


def test_library_counts_failures_and_duplicate_review(library: Path) -> None:
    at = page("library", token=ADMIN)
    no_exceptions(at)
    body = texts(at)
    assert "broken.jpg" in at.dataframe[0].value["file"].iloc[0]
    assert list(at.table[0].value["metric"]) == sorted(METRICS)
    assert "near-duplicate group under **effnet-lite0**" in body and "Evidence" in body
    assert "from the reference: **same photo" in body  # the calibrated meaning of the copy's distance
    assert "copy-of-first.jpg" in body
    not_same = [b for b in at.button if b.key.startswith("ns_0_")]
    keep = [b for b in at.button if b.key.startswith("keep_0_")]
    assert len(not_same) == 1 and len(keep) == 2
    keep[1].click().run()
    no_exceptions(at)
    data = stored_reviews(library)
    assert list(data["keep"].values()) == [int(keep[1].key.rsplit("_", 1)[1])]
    assert next(b for b in at.button if b.key == keep[1].key).label == "Kept"
    groups = len([b for b in at.button if b.key.startswith("ns_")])
    next(b for b in at.button if b.key == not_same[0].key).click().run()
    no_exceptions(at)
    data = stored_reviews(library)
    assert len(data["not_same"]) == 1 and data["not_same"][0]["label"] == "different"
    assert len([b for b in at.button if b.key.startswith("ns_")]) == groups - 1  # never grouped again
    assert "dissolved by your reviews" in texts(at)
    assert any(b.proto.label.startswith("Reviews as judgments") for b in at.get("download_button"))
    assert all(p.is_file() for p in (library / "..").glob("src/*"))  # nothing deleted
    assert not (library / sv.REVIEWS_FILE).exists()  # in the database, not a file beside it


def test_reviews_an_older_version_kept_in_a_file_are_imported_once(library: Path) -> None:
    with lookalike.Library.open(library) as lib:
        a, b = lib.images(status="ok").items[0].image_id, lib.images(status="ok").items[1].image_id
    (library / sv.REVIEWS_FILE).write_text(json.dumps({
        "not_same": [{"a": a, "b": b, "metric": "effnet-lite0", "distance": 0.3, "paths": None,
                      "label": "different", "at": "2026-11-30T10:00:00+00:00"},
                     {"a": a, "b": 10**6, "metric": "effnet-lite0"},  # an image that left the library
                     {"a": "x", "b": [1]}, "junk", {"b": b}],  # malformed entries are skipped
        "keep": {f"effnet-lite0:{a}": b, "effnet-lite0:bad": "not an id"}}))
    svc = sv.Services.open(library)
    try:
        assert svc.reviews().not_same_pairs() == {(min(a, b), max(a, b))}
        assert svc.reviews().load()["keep"] == {f"effnet-lite0:{a}": b}
    finally:
        svc.close()
    assert not (library / sv.REVIEWS_FILE).exists() and (library / (sv.REVIEWS_FILE + ".imported")).is_file()
    assert stored_reviews(library)["keep"] == {f"effnet-lite0:{a}": b}


def test_library_uncalibrated_metric_is_a_message(library: Path) -> None:
    at = page("library", token=ADMIN)
    at.selectbox(key="dupes_metric").set_value("tiny-vit").run()
    no_exceptions(at)
    assert any("calibration" in e.value for e in at.error)


def test_design_form_creates_a_study_with_preview_and_link(library: Path) -> None:
    at = page("design", token=ADMIN)
    no_exceptions(at)
    at.text_input(key="name").input("pilot")
    at.number_input(key="query_count").set_value(5)
    at.text_input(key="ranks").input("1-2")
    at.number_input(key="trials_per_participant").set_value(4)
    at.button[0].click()  # the form's submit button
    at.run()
    no_exceptions(at)
    assert "Study 'pilot' created" in at.success[0].value
    link = next(c.value for c in at.code if "/participate?study=" in c.value)
    assert link.startswith("http://study.example:8501/participate?study=")
    with StudyService.open(library, admin_token=ADMIN) as svc:
        info = svc.study_info("pilot", admin_token=ADMIN)
    assert link.endswith(info["public_id"]) and info["config"]["metrics"] == METRICS
    assert info["config"]["ranks"] == [1, 2] and info["config"]["trials_per_participant"] == 4
    assert len([b for b in at.get("image")]) >= 2 * 3  # two previews: reference and two candidates


def test_design_bad_form_is_a_message(library: Path) -> None:
    at = page("design", token=ADMIN)
    at.text_input(key="name").input("bad")
    at.text_input(key="ranks").input("one to ten")
    at.button[0].click().run()
    no_exceptions(at)
    assert any("bad ranks" in e.value for e in at.error)


def _answer_all(at: AppTest, pick: str = "A") -> int:
    n = 0
    while any(b.key == f"pick_{pick}" for b in at.button):
        assert "Screen" in texts(at)
        next(b for b in at.button if b.key == f"pick_{pick}").click().run()
        no_exceptions(at)
        n += 1
    return n


def test_participate_consent_trials_resume_and_completion_code(library: Path) -> None:
    info = make_study(library, completion_code="DONE42")
    pid = info["public_id"]
    at = page("participate", study=pid, PROLIFIC_PID="prolific-7")
    no_exceptions(at)
    assert "Consent" in texts(at) and at.button(key="start").disabled
    at.checkbox(key="consent").check().run()
    at.button(key="start").click().run()
    no_exceptions(at)
    me = at.query_params["p"][0] if isinstance(at.query_params["p"], list) else at.query_params["p"]
    assert "practice" in texts(at).lower()
    letters = sorted(b.label for b in at.button if b.key.startswith("pick_"))
    assert letters[:2] == ["A", "B"]
    body = texts(at)
    for secret in (*METRICS, str(library), "effnet"):
        assert secret not in body
    next(b for b in at.button if b.key == "pick_B").click().run()
    # close the tab: the link with ?p= resumes at the next trial, no consent again
    again = page("participate", study=pid, p=me)
    no_exceptions(again)
    assert "Consent" not in texts(again) and "Screen 2 of" in texts(again)
    n = _answer_all(again)
    assert n == info["trials"]["main"] and n >= 1 or n >= 4
    assert "DONE42" in texts(again) and "finished" in texts(again)
    with StudyService.open(library, admin_token=ADMIN) as svc:
        rows = svc.answers("s1", admin_token=ADMIN)
    assert {r["external_id"] for r in rows} == {"prolific-7"} and rows[0]["choice"] == "B"
    assert all(r["response_ms"] > 0 for r in rows)


def test_participate_unknown_participant_or_study_is_a_message(library: Path) -> None:
    info = make_study(library)
    at = page("participate", study=info["public_id"], p="somebody-else")
    no_exceptions(at)
    assert "not part of this study" in at.error[0].value and not at.get("image")
    at = page("participate", study="no-such-study")
    no_exceptions(at)
    assert at.error and "no such study" in at.error[0].value
    at = page("participate")
    assert "study link" in at.info[0].value


def test_participate_2afc_mode(library: Path) -> None:
    info = make_study(library, name="pair", kind="2afc", sentinels=0)
    at = page("participate", study=info["public_id"])
    at.checkbox(key="consent").check().run()
    at.button(key="start").click().run()
    no_exceptions(at)
    assert sorted(b.label for b in at.button if b.key.startswith("pick_")) == ["A", "B"]
    assert "Which of the two looks more like the reference?" in texts(at)
    assert _answer_all(at, "B") == 5  # one practice, four main
    assert "finished" in texts(at)


def test_results_shares_exclusions_and_downloads(library: Path) -> None:
    info = make_study(library, sentinels=2, trials_per_participant=6, query_count=8)
    pid = info["public_id"]
    people = []
    with StudyService.open(library) as svc:
        rng = np.random.default_rng(1)
        for i in range(4):
            me = svc.join(pid, params={"PROLIFIC_PID": f"r{i}"})["participant"]
            while True:
                t = svc.next_trial(pid, me)
                if "options" not in t:
                    break
                # a sentinel shows the reference itself: the first person never picks it, the others do
                same = [o["letter"] for o in t["options"] if o["image"] == t["reference"]]
                other = [o["letter"] for o in t["options"] if o["image"] != t["reference"]]
                pick = other[0] if i == 0 else (same or [str(rng.integers(1, len(t["options"]) + 1))])[0]
                svc.record_answer(pid, me, t["index"], pick, response_ms=900.0)
            people.append(me)
    at = page("results", token=ADMIN)
    no_exceptions(at)
    body = texts(at)
    assert "Preference shares" in body and "Exclusions" in body
    shares = at.table[0].value
    assert list(shares["metric"]) == METRICS and all("[" in s for s in shares["share [interval]"])
    assert [m.value for m in at.metric][:4] == ["4", "4", "3", "1"]
    excluded = at.table[2].value
    assert list(excluded["participant"]) == [people[0]] and "sentinel" in excluded["reasons"][0]
    labels = [b.proto.label for b in at.get("download_button")]
    assert labels[:2] == ["Answers (CSV)", "Answers (JSON)"]
    assert len(at.get("image")) >= 2  # the shares chart and the per-rank chart
    at.toggle(key="live").set_value(True).run()  # refreshed every 5 s in a fragment
    no_exceptions(at)
    assert at.table[0].value.equals(shares)


def test_home_sends_a_study_link_to_participate_and_the_organiser_to_compare(library: Path) -> None:
    info = make_study(library)
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["study"] = info["public_id"]
    at.run()
    no_exceptions(at)
    assert "Consent" in texts(at) and not at.sidebar.get("page_link")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["token"] = ADMIN
    at.run()
    assert at.title[0].value == "Compare metrics"
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    assert "Open the link you were given" in texts(at) and "needs the admin token" in at.warning[0].value
