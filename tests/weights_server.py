"""A real HTTP server on 127.0.0.1 for the weights tests, with switches to misbehave.

``cut_after``/``cuts``: the next ``cuts`` responses stop after ``cut_after`` body bytes and close the
connection (the declared Content-Length stays the full one). ``ignore_range``: answer every request
with ``200`` and the whole file. ``corrupt``: serve the bytes with one byte flipped. ``delay``:
spread the body over about that many seconds.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import threading
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from lookalike.embed.config import MetricConfig, Preprocess, WeightFile
from lookalike.embed.registry import save_user_metric


@dataclass
class Server:
    """Files served at ``/<name>``, a log of requests, and the misbehaviour switches."""

    files: dict[str, bytes] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    cut_after: int = 0
    cuts: int = 0
    ignore_range: bool = False
    corrupt: bool = False
    delay: float = 0.0
    base: str = ""

    def url(self, name: str) -> str:
        return f"{self.base}/{name}"

    def gets(self, name: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["path"] == f"/{name}"]


def make_handler(state: Server) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep test output clean
            pass

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            state.requests.append({"path": self.path, "range": self.headers.get("Range"),
                                   "user_agent": self.headers.get("User-Agent")})
            data = state.files.get(self.path.lstrip("/"))
            if data is None:
                self.send_error(404)
                return
            if state.corrupt:
                data = bytes([data[0] ^ 0xFF]) + data[1:]
            start = 0
            rng = self.headers.get("Range")
            if rng and not state.ignore_range:
                start = int(rng.removeprefix("bytes=").split("-")[0])
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
                self.send_header("Accept-Ranges", "none" if state.ignore_range else "bytes")
            body = data[start:]
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if state.cuts > 0:
                state.cuts -= 1
                self.wfile.write(body[:state.cut_after])
                self.wfile.flush()
                self.close_connection = True
                return
            if state.delay:
                step = max(1, len(body) // 20)
                for i in range(0, len(body), step):
                    time.sleep(state.delay / 20)
                    self.wfile.write(body[i:i + step])
                return
            self.wfile.write(body)

    return Handler


def start_server() -> tuple[Server, ThreadingHTTPServer, threading.Thread]:
    state = Server()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(state))
    state.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return state, httpd, thread


def random_bytes(n: int) -> bytes:
    """A valid safetensors file of exactly ``n`` bytes (``n >= 128``) whose one uint8 tensor is random."""
    return safetensors_bytes(os.urandom(n - 128), total=n)


def safetensors_bytes(payload: bytes, total: int | None = None) -> bytes:
    """``payload`` as the one uint8 tensor of a safetensors file, padded to ``total`` bytes."""
    header = json.dumps({"w": {"dtype": "U8", "shape": [len(payload)], "data_offsets": [0, len(payload)]}})
    raw = header.encode()
    if total is not None:
        pad = total - 8 - len(raw) - len(payload)
        assert pad >= 0, "total too small"
        raw += b" " * pad  # safetensors allows trailing spaces in the header
    return struct.pack("<Q", len(raw)) + raw + payload


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_zip(members: dict[str, bytes]) -> bytes:
    """A zip archive (bytes) holding ``members`` under their names, as given (unsafe ones too)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0)), data)
    return buf.getvalue()


def add_metric(name: str, weights: list[WeightFile]) -> MetricConfig:
    """Register a tiny user metric (in ``$LOOKALIKE_HOME/metrics``) that needs ``weights``."""
    config = MetricConfig(
        name=name, family="test", builder="lookalike.embed.backbones.tiny:build", dim=32,
        preprocess=Preprocess(size=32, resize="squash", interpolation="bilinear"),
        weights=tuple(weights), options={"seed": 0, "patch": 8, "width": 32, "depth": 2, "heads": 2},
        description="TEST ONLY: tiny metric whose weights come from a local HTTP server")
    save_user_metric(config)
    return config


def cache_files(root: Path) -> list[str]:
    """Relative paths of every file under ``root`` (to assert what a failed call left behind)."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


@pytest.fixture
def server() -> Iterator[Server]:
    """A running :class:`Server` (import this fixture into a test module)."""
    state, httpd, thread = start_server()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
