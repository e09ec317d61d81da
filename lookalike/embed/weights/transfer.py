"""HTTP(S) downloads into a staging file, resumable with ``Range`` requests (stdlib urllib only).

:func:`download` appends to an existing partial file when the server answers ``206 Partial
Content`` for ``Range: bytes=N-``, and restarts from zero when the server ignores ranges. A
connection cut in the middle is retried (resuming) a few times; a connection that cannot be made at
all (offline, refused, DNS) raises :class:`NetworkError` at once. The partial file stays in the
staging folder for the next attempt; it never becomes the final file here.
"""

from __future__ import annotations

import http.client
import logging
import os
import re
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from lookalike._version import __version__
from lookalike.progress import progress_bar

log = logging.getLogger(__name__)

USER_AGENT = (f"lookalike/{__version__} (weights download; "
              f"Python-urllib/{sys.version_info[0]}.{sys.version_info[1]})")
TIMEOUT_S = 30.0
ATTEMPTS = 4
CHUNK = 1 << 16
OFFLINE_VARS = ("LOOKALIKE_OFFLINE", "HF_HUB_OFFLINE")
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


class NetworkError(Exception):
    """A download failed for network reasons (no route, refused, timed out, cut, HTTP error)."""


class _Interrupted(Exception):
    """A transient failure worth another (resuming) attempt."""


class _RangeRefused(Exception):
    """The server answered 416 to our range; ``total`` is the file size it names, if any."""

    def __init__(self, total: int | None) -> None:
        super().__init__(total)
        self.total = total


def offline_reason() -> str | None:
    """Why we must not touch the network (an offline variable is set), or ``None``."""
    for var in OFFLINE_VARS:
        value = os.environ.get(var, "").strip().lower()
        if value and value not in ("0", "false", "no", "off"):
            return f"{var}={os.environ[var]} is set"
    return None


def download(url: str, part: Path, desc: str = "download", attempts: int = ATTEMPTS,
             timeout: float | None = None) -> int:
    """Complete the file ``part`` from ``url``; returns the bytes fetched over the network.

    Resumes from the bytes already in ``part``. Raises :class:`NetworkError` when the server cannot
    be reached or answers an error, or after ``attempts`` interrupted transfers.
    """
    timeout = TIMEOUT_S if timeout is None else timeout
    fetched = 0
    last: Exception | None = None
    for attempt in range(1, attempts + 1):
        try:
            fetched += _fetch_once(url, part, desc, timeout)
            return fetched
        except _Interrupted as exc:
            last = exc
            log.warning("%s: %s (attempt %d of %d)", desc, exc, attempt, attempts)
            if attempt < attempts:
                time.sleep(min(0.25 * attempt, 2.0))
    raise NetworkError(f"{last}; gave up after {attempts} attempts (the partial file is kept for resuming)")


def _request(url: str, start: int, timeout: float) -> http.client.HTTPResponse:
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if start:
        headers["Range"] = f"bytes={start}-"
    req = urllib.request.Request(url, headers=headers)
    try:
        return urllib.request.urlopen(req, timeout=timeout)  # noqa: S310 (http/https URLs from configs)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 416 and start:
            match = re.fullmatch(r"bytes\s+\*/(\d+)", exc.headers.get("Content-Range", "").strip())
            raise _RangeRefused(int(match.group(1)) if match else None) from exc
        if exc.code >= 500 or exc.code == 429:
            raise _Interrupted(f"HTTP {exc.code} {exc.reason}") from exc
        raise NetworkError(f"HTTP {exc.code} {exc.reason} from {url}") from exc
    except urllib.error.URLError as exc:
        raise NetworkError(f"cannot reach {url}: {exc.reason}") from exc
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise NetworkError(f"cannot reach {url}: {exc}") from exc


def _fetch_once(url: str, part: Path, desc: str, timeout: float) -> int:
    have = part.stat().st_size if part.is_file() else 0
    try:
        resp = _request(url, have, timeout)
    except _RangeRefused as refused:
        if refused.total == have:
            log.info("%s: the partial file is already complete", desc)
            return 0
        log.info("%s: the server refused to resume at byte %d; restarting", desc, have)
        part.unlink()
        have = 0
        resp = _request(url, 0, timeout)
    with resp:
        total: int | None
        if have and resp.status == 206:
            match = _CONTENT_RANGE.match(resp.headers.get("Content-Range", ""))
            if not match or int(match.group(1)) != have:
                part.unlink()
                got_range = resp.headers.get("Content-Range")
                raise _Interrupted(f"unexpected Content-Range {got_range!r}; restarting")
            total = None if match.group(3) == "*" else int(match.group(3))
            mode = "ab"
            log.info("%s: resuming at byte %d", desc, have)
        else:
            if have:
                log.info("%s: the server does not support resuming; restarting", desc)
            have = 0
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            mode = "wb"
        return _copy_body(resp, part, mode, have, total, desc)


def _copy_body(resp: http.client.HTTPResponse, part: Path, mode: str, have: int, total: int | None,
               desc: str) -> int:
    got = 0
    bar = progress_bar(total, desc, unit="B", unit_scale=True, unit_divisor=1024)
    bar.update(have)
    try:
        with open(part, mode) as fh:
            try:
                while True:
                    try:
                        chunk = resp.read(CHUNK)
                    except (OSError, http.client.HTTPException) as exc:  # reset, timeout, cut
                        raise _Interrupted(f"connection lost after {have + got} bytes ({exc})") from exc
                    if not chunk:
                        break
                    fh.write(chunk)
                    got += len(chunk)
                    bar.update(len(chunk))
            finally:
                fh.flush()
                os.fsync(fh.fileno())
    finally:
        bar.close()
    if total is not None and have + got != total:
        raise _Interrupted(f"connection closed after {have + got} of {total} bytes")
    return got
