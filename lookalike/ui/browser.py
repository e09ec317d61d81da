"""Drive the app in a real browser: start ``lookalike ui`` on a free port, and the steps of an
organiser and a participant in Playwright (Debian's ``chromium-headless-shell``; Playwright's own
download is not needed). The browser test and ``benchmarks/ui.py`` share these."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lookalike.errors import UsageError

CHROMIUM = ("/usr/bin/chromium-headless-shell", "/usr/lib/chromium/chromium-headless-shell",
            "/usr/bin/chromium", "/usr/lib/chromium/chromium")
#: JS: the app finished its run and nothing on the page is stale.
SETTLED = """(want) => {
  const app = document.querySelector('[data-testid="stApp"]');
  if (!app || app.getAttribute('data-test-script-state') === 'running') return false;
  if (document.querySelector('[data-stale="true"], [data-testid="stSkeleton"]')) return false;
  if ([...document.images].some(i => !i.complete)) return false;
  return !want.length || want.some(w => document.body.innerText.includes(w));
}"""


def chromium() -> str | None:
    """The Chromium binary to drive, or ``None``."""
    env = os.environ.get("LOOKALIKE_CHROMIUM")
    for c in (env, *CHROMIUM, shutil.which("chromium-headless-shell")):
        if c and os.access(c, os.X_OK):
            return c
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    token: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def admin(self) -> str:
        return f"?token={self.token}"


@contextmanager
def serve(library: Path, token: str, log: Path, db: str | None = None, timeout: float = 90,
          env: dict[str, str] | None = None) -> Iterator[Server]:
    """``lookalike ui`` on a free port of 127.0.0.1 until the block ends (its process group is
    stopped then)."""
    port = free_port()
    root = Path(__file__).resolve().parents[2]
    cmd = [sys.executable, "-m", "lookalike", "ui", "--library", str(library), "--port", str(port),
           "--admin-token", token, *(["--db", db] if db else [])]
    full_env = {**os.environ, "PYTHONPATH": str(root), **(env or {})}
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=full_env,
                                start_new_session=True, stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise UsageError(f"the app did not start: {log.read_text()[-2000:]}")
            time.sleep(0.3)
        yield Server(url, token, proc, log)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, signal.SIGKILL)


def launch(playwright: Any) -> Any:
    exe = chromium()
    if exe is None:
        raise UsageError("no Chromium: apt-get install --no-install-recommends chromium-headless-shell")
    return playwright.chromium.launch(executable_path=exe, args=["--no-sandbox"])


def settle(page: Any, *want: str, timeout: float = 60_000) -> None:
    """Wait until the app has finished running and (when given) one of ``want`` is on the page."""
    page.wait_for_timeout(150)  # let a click's rerun start
    page.wait_for_function(SETTLED, arg=list(want), timeout=timeout)


def screenshot(page: Any, path: Path, max_height: int = 4000) -> None:
    """The whole page (Streamlit scrolls inside its main block, so the viewport is stretched)."""
    size = page.viewport_size
    page.evaluate("""() => document.querySelectorAll('[data-testid="stMain"], [data-testid="stAppViewContainer"]')
        .forEach(e => e.scrollTo(0, 0))""")
    height = page.evaluate("""() => Math.max(...['[data-testid="stMain"]', '[data-testid="stAppViewContainer"]']
        .map(s => document.querySelector(s)).filter(Boolean).map(e => e.scrollHeight))""")
    page.set_viewport_size({"width": size["width"], "height": min(max(int(height), size["height"]), max_height)})
    settle(page)
    page.screenshot(path=str(path))
    page.set_viewport_size(size)


def create_study(page: Any, server: Server, name: str, fields: dict[str, str]) -> str:
    """Fill the Design form (labels -> values), create the study, return the participant link."""
    page.goto(f"{server.url}/design{server.admin}")
    settle(page, "New study")
    page.get_by_label("Name (only you see it)").fill(name)
    for label, value in fields.items():
        page.get_by_label(label, exact=True).fill(value)
    page.get_by_role("button", name="Create study").click()
    settle(page, "created")
    link = page.locator("code", has_text="/participate?study=").first.inner_text().strip()
    if "/participate?study=" not in link:
        raise AssertionError(f"no participant link on the page: {link!r}")
    return link


@dataclass
class Visit:
    """What one participant's browser saw."""

    html: list[str] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)
    image_srcs: list[str] = field(default_factory=list)
    trial_seconds: list[float] = field(default_factory=list)
    participant: str = ""
    code: str = ""
    screens: int = 0


def participate(page: Any, link: str, careless: bool = False, keys: bool = True,
                shots: Path | None = None) -> Visit:
    """Consent, then every screen: a careful participant picks the sentinel's reference copy when
    there is one (else the first candidate); a careless one never does. ``keys``: answer with the
    number keys, else by clicking the picture."""
    seen = Visit()
    page.on("request", lambda r: seen.urls.append(r.url))
    page.goto(link)
    settle(page, "Consent")
    seen.html.append(page.content())
    if shots:
        screenshot(page, shots / "participate-consent.png")
    page.get_by_text("I have read the above").click()
    page.get_by_role("button", name="Start").click()
    settle(page, "Screen 1 of")
    seen.participant = page.url.split("p=", 1)[1].split("&")[0]
    while True:
        text = page.inner_text("body")
        if "Your completion code" in text:
            seen.code = page.locator("code").last.inner_text().strip()
            break
        n = int(text.split("Screen ", 1)[1].split(" ")[0])
        total = int(text.split("Screen ", 1)[1].split(" of ", 1)[1].split()[0].rstrip("·"))
        ref = page.locator(".st-key-reference img").get_attribute("src")
        opts = page.locator('[class*="st-key-cand_"]')
        letters, srcs = [], []
        for i in range(opts.count()):
            cls = opts.nth(i).get_attribute("class") or ""
            letters.append(cls.split("st-key-cand_", 1)[1][0])
            srcs.append(opts.nth(i).locator("img").get_attribute("src"))
        seen.image_srcs += [ref or "", *srcs]
        same = [i for i, s in enumerate(srcs) if s == ref]
        pick = [i for i in range(len(srcs)) if i not in same][0] if careless else (same or [0])[0]
        seen.html.append(page.content())
        if shots and n == 2:
            screenshot(page, shots / "participate-trial.png")
        start = time.perf_counter()
        if keys:
            page.keyboard.press(str(pick + 1))
        else:
            opts.nth(pick).locator("img").click()
        settle(page, f"Screen {n + 1} of {total}" if n < total else "Your completion code")
        seen.trial_seconds.append(time.perf_counter() - start)
        seen.screens += 1
    seen.html.append(page.content())
    if shots:
        screenshot(page, shots / "participate-done.png")
    return seen


def compare_upload(page: Any, server: Server, photo: Path, metrics: list[str], k: int = 8) -> float:
    """Upload ``photo`` on Compare; seconds until every metric's column shows its ``k`` pictures."""
    page.goto(f"{server.url}/compare{server.admin}")
    settle(page, "Pick a query photo")
    start = time.perf_counter()
    page.locator('input[type="file"]').set_input_files(str(photo))
    cols = [f".st-key-col_{m.replace('.', '_')} img" for m in metrics]
    page.wait_for_function("""([cols, k]) => cols.every(c => {
        const imgs = [...document.querySelectorAll(c)];
        return imgs.length >= k && imgs.every(i => i.complete && i.naturalWidth > 0);
    })""", arg=[cols, k], timeout=120_000)
    seconds = time.perf_counter() - start
    settle(page)
    return seconds
