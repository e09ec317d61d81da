"""The ``lookalike`` command line. Each subcommand is a module here with ``register(subparsers)``.

Exit codes: 0 ok, 1 failure, 2 usage error or missing weights, 130 interrupted. Every failure is one
line on stderr: expected ones (:class:`~lookalike.errors.LookalikeError`, file-system and database
errors, disk full, unreadable pickles) say what went wrong; anything else is reported as an
internal error. ``-v`` adds the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import sys
from collections.abc import Sequence

from lookalike._version import __version__
from lookalike.errors import LookalikeError

#: Subcommand modules, in the order ``--help`` lists them (missing ones are skipped).
COMMANDS = ("metrics", "embed", "distance", "weights", "index", "status", "doctor", "search",
            "dupes", "eval", "study", "tune", "ui")

log = logging.getLogger("lookalike")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lookalike",
        description="Find images that look alike to people: embed, index and search photos "
                    "under learned perceptual metrics.",
    )
    parser.add_argument("--version", action="version", version=f"lookalike {__version__}")
    verbosity = argparse.ArgumentParser(add_help=False)
    verbosity.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv: debug)")
    verbosity.add_argument("-q", "--quiet", action="store_true", help="only errors; no progress bars")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        modname = f"lookalike.cli.{name}_cmd"
        if importlib.util.find_spec(modname) is None:
            continue
        importlib.import_module(modname).register(sub, [verbosity])
    return parser


def setup_logging(verbose: int, quiet: bool) -> None:
    level = logging.ERROR if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s" if verbose else "%(message)s"))
    root = logging.getLogger("lookalike")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    if verbose == 0:  # keep the default output readable: per-file warnings only with -v
        logging.getLogger("lookalike.embed.metric").setLevel(logging.ERROR)


def describe_failure(exc: BaseException) -> tuple[str, int]:
    """The one line and exit code the CLI reports for ``exc``."""
    import errno
    import pickle

    if isinstance(exc, LookalikeError):
        text = str(exc)
        if any(s in text for s in ("database or disk is full", "No space left on device")):
            return f"error: disk full: {text}; free some space and run again", exc.exit_code
        return f"error: {text}", exc.exit_code
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        where = f" writing {exc.filename}" if exc.filename else ""
        return f"error: disk full{where} ({exc.strerror or exc}); free some space and run again", 1
    if isinstance(exc, OSError):
        where = f": {exc.filename}" if exc.filename else ""
        return f"error: {exc.strerror or exc}{where}", 1
    from lookalike.store.db import database_error_text  # the error path only

    text = database_error_text(exc)
    if text is not None:
        if "full" in text.lower():
            return f"error: disk full: {text}; free some space and run again", 1
        return f"error: {text}", 1
    if isinstance(exc, pickle.UnpicklingError):
        return f"error: a file could not be unpickled (not a valid checkpoint?): {exc}", 1
    if isinstance(exc, MemoryError):
        return "error: out of memory", 1
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"internal error: {type(exc).__name__}: {first} (run with -v for the traceback)", 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    verbose = getattr(args, "verbose", 0)
    setup_logging(verbose, getattr(args, "quiet", False))
    for stream in (sys.stdout, sys.stderr):  # undecodable file names print escaped, never crash
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # noqa: BLE001 - every failure becomes one line (+ traceback with -v)
        message, code = describe_failure(exc)
        log.error("%s", message, exc_info=exc if verbose else None)
        return code
