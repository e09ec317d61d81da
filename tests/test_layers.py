"""The package's layers, read from its source: only ``lookalike/store`` speaks SQL, only the indexer
and the search service touch FAISS, and the CLI, the app and studies reach a library only through
the one service ``lookalike.Library`` (never the store layer's ``LibraryFolder``)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "lookalike"


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports (at any depth: function-level imports count too)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return out


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def users_of(prefix: str) -> set[str]:
    return {str(p.relative_to(PACKAGE)) for p in modules()
            if any(m == prefix or m.startswith(prefix + ".") for m in imports(p))}


def test_the_reader_sees_function_level_imports(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("def f():\n    from sqlalchemy import select\n    import faiss\n")
    assert {"sqlalchemy", "sqlalchemy.select", "faiss"} <= imports(f)


def test_only_the_store_speaks_sql():
    outside = {m for m in users_of("sqlalchemy") | users_of("alembic") | users_of("lookalike.store.models")
               if not m.startswith("store/")}
    assert not outside, f"SQL outside lookalike/store: {sorted(outside)}"


def test_only_the_indexer_and_search_touch_faiss():
    outside = {m for m in users_of("faiss") if not m.startswith(("indexer/", "search/", "library/"))}
    assert not outside, f"FAISS outside indexer/, library/ and search/: {sorted(outside)}"


@pytest.mark.parametrize("layer", ["cli", "ui", "studies", "tune", "judgments"])
def test_apps_reach_a_library_only_through_the_service(layer):
    """``LibraryFolder`` (the store layer under ``lookalike.Library``) is the indexer's own: the CLI may
    open it only for the writers (``index``, ``doctor``)."""
    writers = {"cli/index_cmd.py", "cli/doctor_cmd.py"}
    users = {m for m in users_of("lookalike.library.folder") if m.startswith(layer + "/")} - writers
    assert not users, f"{layer} bypasses lookalike.Library: {sorted(users)}"
