"""Helpers shared by subcommands: JSON output and common options."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable JSON on stdout")


def add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default=None,
                        help="torch device (default: cuda when present, else cpu)")


def add_library(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-l", "--library", default=None,
                        help="library folder (default: $LOOKALIKE_LIBRARY or ./.lookalike)")
    parser.add_argument("--db", default=None,
                        help="database URL (default: SQLite inside the library; e.g. postgresql+psycopg://...)")


def emit_json(obj: Any) -> None:
    """One JSON document (or JSON line) on stdout."""
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


def new_command(sub: Any, name: str, parents: list[argparse.ArgumentParser], help: str,
                description: str | None = None) -> argparse.ArgumentParser:
    return sub.add_parser(name, parents=parents, help=help, description=description or help,
                          formatter_class=argparse.RawDescriptionHelpFormatter)
