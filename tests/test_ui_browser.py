"""The app end to end in headless Chromium (Playwright), over real photos indexed under
effnet-lite0 and tiny-vit: the organiser designs a retrieval study, two participants answer it in
separate browser contexts (one fails the sentinels), Results shows the shares and the exclusion,
an upload on Compare fills a column per metric. Screenshots of every page go to
``$LOOKALIKE_UI_SHOTS`` (default: the test's tmp folder)."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from lookalike.ui import browser
from tests.conftest import run_cli

pytest.importorskip("playwright.sync_api")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(browser.chromium() is None,
                                 reason="no chromium-headless-shell (apt-get install chromium-headless-shell)")]
METRICS = ["effnet-lite0", "tiny-vit"]
TOKEN = "browser-test-admin-token"
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory, photos: list[Path]) -> Path:
    """32 real photos, a re-encoded and a cropped copy of the first (a near-duplicate group)."""
    from PIL import Image

    src = tmp_path_factory.mktemp("browser-src")
    for p in photos[:32]:
        shutil.copy(p, src / p.name)
    first = Image.open(photos[0])
    first.save(src / "first-reencoded.jpg", quality=50)
    w, h = first.size
    first.crop((w // 20, h // 20, w - w // 20, h - h // 20)).save(src / "first-cropped.jpg", quality=90)
    lib = tmp_path_factory.mktemp("browser") / "holiday-photos-library"
    run_cli("index", str(src), "--library", str(lib), "-m", METRICS[0], "-m", METRICS[1], "-q", check=True)
    return lib


def test_study_and_compare_in_a_real_browser(library: Path, photos: list[Path], tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    shots = Path(os.environ.get("LOOKALIKE_UI_SHOTS") or tmp_path / "shots")
    shots.mkdir(parents=True, exist_ok=True)
    with browser.serve(library, TOKEN, tmp_path / "server.log") as server, sync_playwright() as pw:
        chrome = browser.launch(pw)
        admin = chrome.new_context(viewport={"width": 1400, "height": 1000})
        page = admin.new_page()
        link = browser.create_study(page, server, "browser pilot", {
            "Random queries": "8", "Neighbour ranks": "1-3", "Trials per participant": "5",
            "Practice trials": "1", "Sentinels (attention checks)": "2", "Too fast below (ms)": "0"})
        assert link.startswith(server.url + "/participate?study=")
        browser.screenshot(page, shots / "design.png")

        # a participant link alone reaches no admin page
        public = link.split("study=", 1)[1]
        for name in ("design", "results", "compare", "library"):
            stranger = chrome.new_context().new_page()
            stranger.goto(f"{server.url}/{name}?study={public}")
            browser.settle(stranger, "needs the admin token")
            assert "browser pilot" not in stranger.content() and "effnet" not in stranger.content()
            stranger.context.close()

        visits = []
        for careless in (False, True):
            ctx = chrome.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
            visits.append(browser.participate(ctx.new_page(), link + f"&PROLIFIC_PID=pp{int(careless)}",
                                              careless=careless, keys=not careless,
                                              shots=None if careless else shots))
            ctx.close()
        careful, careless_visit = visits
        assert careful.screens == careless_visit.screens == 1 + 5 + 2
        assert careful.code and careful.code == careless_visit.code
        # nothing a participant's browser got names a metric, the library or a photo's file
        secrets = [*METRICS, "effnet", "tiny", str(library), library.name, "first-",
                   *(p.stem for p in photos[:32])]
        for v in visits:
            blob = "\n".join([*v.html, *v.urls, *v.image_srcs])
            for s in secrets:
                assert s not in blob, f"{s!r} reached a participant"
            assert all(re.fullmatch(r".*/media/[0-9a-f]+\.jpg", src) for src in v.image_srcs)

        # resume: the link with the participant's token shows the end again, not the consent
        again = chrome.new_context(viewport=PHONE).new_page()
        again.goto(f"{link}&p={careful.participant}")
        browser.settle(again, "Your completion code")
        again.context.close()

        page.goto(f"{server.url}/results{server.admin}")
        browser.settle(page, "Preference shares")
        body = page.inner_text("body")
        assert all(m in body for m in METRICS) and "Exclusions" in body
        assert careless_visit.participant in body and "sentinel" in body
        assert careful.participant not in body
        browser.screenshot(page, shots / "results.png")

        seconds = browser.compare_upload(page, server, photos[7], METRICS)
        for m in METRICS:
            assert page.locator("h3", has_text=m).count() == 1
        assert page.locator('[class*="st-key-agree_"]').count() >= 2  # the photo itself, in both columns
        browser.screenshot(page, shots / "compare.png")

        page.goto(f"{server.url}/library{server.admin}")
        browser.settle(page, "near-duplicate group")
        assert "1 near-duplicate group under effnet-lite0" in page.inner_text("body")
        browser.screenshot(page, shots / "library.png")
        page.get_by_role("button", name="Keep this copy").last.click()  # a reviewer's decisions
        browser.settle(page, "Kept")
        page.get_by_role("button", name="Not the same photo").first.click()
        browser.settle(page, "1 pair marked not the same photo")
        body = page.inner_text("body")
        assert "1 pair marked not the same photo, 1 copy chosen; kept in the library's database" in body
        assert "keeping first-cropped.jpg" in body  # the copy kept, by its file name
        browser.screenshot(page, shots / "library-reviewed.png")
        chrome.close()
    assert seconds < 60
    assert sorted(p.name for p in shots.glob("*.png")) == [
        "compare.png", "design.png", "library-reviewed.png", "library.png", "participate-consent.png", "participate-done.png",
        "participate-trial.png", "results.png"]
