"""The ``lookalike`` command line. Each subcommand is a module here with ``register(subparsers)``.

Exit codes: 0 ok, 1 failure, 2 usage error or missing weights.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import sys
from collections.abc import Sequence

from lookalike import __version__
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(getattr(args, "verbose", 0), getattr(args, "quiet", False))
    try:
        return int(args.func(args) or 0)
    except LookalikeError as exc:
        log.error("error: %s", exc)
        return exc.exit_code
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130
    except BrokenPipeError:
        return 0
