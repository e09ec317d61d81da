"""``lookalike ui``: the Streamlit app on a library (compare metrics, review duplicates, run studies)."""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from lookalike.cli.common import add_library, new_command

log = logging.getLogger(__name__)

DESCRIPTION = """\
Start the app on a library. The organiser's pages (Compare, Library, Design a study, Results) need
the admin token: with no --admin-token one is made and the admin link printed. Participants get
only the study link the Design page shows (/participate?study=...), which reaches no admin page.

For people on other machines, bind an address they can reach (--host 0.0.0.0) and give the study
a PostgreSQL database (--db) when many take part at once.
"""


def register(sub: Any, parents: list[argparse.ArgumentParser]) -> None:
    p = new_command(sub, "ui", parents, "start the app (compare metrics, review duplicates, run studies)",
                    DESCRIPTION)
    add_library(p)
    p.add_argument("--port", type=int, default=8501, help="port to listen on (default 8501)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1: this computer only; 0.0.0.0: every interface)")
    p.add_argument("--admin-token", default=None, metavar="T",
                   help="the organiser's token (default: $LOOKALIKE_UI_ADMIN_TOKEN, else a new one)")
    p.add_argument("--url", default=None, metavar="URL",
                   help="the address participants use, for the links the app shows "
                        "(default: the address the organiser's browser used)")
    p.set_defaults(func=run)


def command(args: argparse.Namespace) -> tuple[list[str], dict[str, str], str]:
    """The ``streamlit run`` command line, its environment and the admin link."""
    from lookalike.studies.blinding import new_id
    from lookalike.ui import services as sv

    library = Path(args.library or os.environ.get("LOOKALIKE_LIBRARY") or ".lookalike").resolve()
    token = args.admin_token or os.environ.get(sv.TOKEN_ENV) or new_id(18)
    app = Path(__file__).resolve().parents[1] / "ui" / "app.py"
    env = {**os.environ, sv.LIBRARY_ENV: str(library), sv.TOKEN_ENV: token,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(app.parents[2]), os.environ.get("PYTHONPATH")]))}
    if args.db:
        env[sv.DB_ENV] = args.db
    if args.url:
        env[sv.URL_ENV] = args.url
    cmd = [sys.executable, "-m", "streamlit", "run", str(app), "--server.address", args.host,
           "--server.port", str(args.port), "--server.headless", "true",
           "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
           "--client.toolbarMode", "minimal", "--server.maxUploadSize", "64"]
    shown = "localhost" if args.host in ("127.0.0.1", "0.0.0.0", "::") else args.host
    base = (args.url or f"http://{shown}:{args.port}").rstrip("/")
    return cmd, env, f"{base}/compare?token={token}"


def run(args: argparse.Namespace) -> int:
    import importlib.util

    from lookalike.errors import UsageError
    from lookalike.library.service import Library

    if importlib.util.find_spec("streamlit") is None:
        raise UsageError("the app needs Streamlit: pip install 'lookalike[ui]'")
    cmd, env, link = command(args)
    with Library.open(env["LOOKALIKE_UI_LIBRARY"], db_url=args.db):  # a clear error before the server starts
        pass
    print(f"admin link: {link}", flush=True)
    print("keep it to yourself; share study links from the Design page", flush=True)
    try:
        return subprocess.call(cmd, env=env)
    except KeyboardInterrupt:
        return 0
