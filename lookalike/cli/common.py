"""Helpers shared by subcommands: JSON output and common options."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1 (``-k 0``, ``-k -3`` are usage errors)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable JSON on stdout")


def add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default=None,
                        help="torch device (default: cuda when present, else cpu)")


def add_library(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-l", "--library", type=Path, default=None,
                        help="library folder (default: $LOOKALIKE_LIBRARY or ./.lookalike)")
    parser.add_argument("--db", default=None, metavar="URL",
                        help="database URL, e.g. postgresql+psycopg://user@host/db (default: SQLite "
                             "library.db in the library folder); remembered by the library")


#: Lone surrogates: undecodable file-name bytes (``os.fsdecode``) and nothing else in practice.
_SURROGATE = re.compile("[\ud800-\udfff]")


def json_line(obj: Any) -> str:
    """Compact UTF-8 JSON; a file name's undecodable bytes stay lossless as ``\\udcNN`` escapes
    (``json.loads`` gives back the same string, ``os.fsencode`` of it the original bytes)."""
    text = json.dumps(obj, ensure_ascii=False, default=str)
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def emit_json(obj: Any) -> None:
    """One JSON document (or JSON line) on stdout."""
    sys.stdout.write(json_line(obj) + "\n")
    sys.stdout.flush()


def new_command(sub: Any, name: str, parents: list[argparse.ArgumentParser], help: str,
                description: str | None = None) -> argparse.ArgumentParser:
    return sub.add_parser(name, parents=parents, help=help, description=description or help,
                          formatter_class=argparse.RawDescriptionHelpFormatter)
