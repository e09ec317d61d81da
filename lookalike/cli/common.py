"""Helpers shared by subcommands: JSON output and common options."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


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


def emit_json(obj: Any) -> None:
    """One JSON document (or JSON line) on stdout."""
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def new_command(sub: Any, name: str, parents: list[argparse.ArgumentParser], help: str,
                description: str | None = None) -> argparse.ArgumentParser:
    return sub.add_parser(name, parents=parents, help=help, description=description or help,
                          formatter_class=argparse.RawDescriptionHelpFormatter)
