"""The package's layers, read from its source (every import at any depth: function-level and
``TYPE_CHECKING`` imports count too).

Floors, top to bottom (a module may import its own package, a package on a lower floor, or a
declared sideways neighbour; never one above)::

    lookalike (the package face: lookalike/__init__, __main__)
    cli, ui                       thin: parse input, call a service, render   (cli -> ui: `lookalike ui`)
    studies, tune, judgments      services over a library and metrics         (tune -> judgments)
    indexer                       list -> plan -> decode -> embed -> write, doctor
    library                       lookalike.Library, the library folder, FAISS, reconcile, thumbnails
    search                        pure algorithms over arrays
    embed                         metrics: factory, registry, configs, backbones, weights
    store                         SQLAlchemy models and migrations: the only SQL
    errors, files, atomic, paths, progress, _version   (the ground: plain helpers)

The indexer sits above the library: it writes into the library folder (records and FAISS files)
that ``lookalike.Library`` reads, and the library never calls the indexer.

Also: no import cycle between modules; only ``lookalike/store`` speaks SQL; only the library, the
indexer and search touch FAISS; the CLI, the app and studies reach a library only through
``lookalike.Library`` (never the folder underneath it, except the writers ``index`` and ``doctor``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "lookalike"

FACE = "(face)"
GROUND = "(ground)"
FLOORS: list[tuple[str, ...]] = [
    (FACE,),
    ("cli", "ui"),
    ("studies", "tune", "judgments"),
    ("indexer",),
    ("library",),
    ("search",),
    ("embed",),
    ("store",),
    (GROUND,),
]
SIDEWAYS = {("cli", "ui"), ("tune", "judgments")}


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports (at any depth: function-level imports count too), as written."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return out


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path) -> dict[str, set[str]]:
    """``{module: modules of the package it imports}`` for the package folder ``root``.

    ``from a.b import c`` is an arrow to ``a.b.c`` when that is a module, else to ``a.b``; relative
    imports are resolved. Importing ``a.b.c`` is not counted as importing the package ``a.b``
    itself (its ``__init__``), as import-linter and grimp count it.
    """
    files = {module_name(p, root): p for p in sorted(root.rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                wanted = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                    base = ".".join([*up, base] if base else up)
                wanted = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base for a in node.names]
            else:
                continue
            for target in wanted:
                while target and target not in files:  # `import a.b.c.func`-like names: the module
                    target = target.rpartition(".")[0]
                if target and target != name:
                    targets.add(target)
        graph[name] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def room(module: str) -> str:
    """The package a module lives in (``cli``, ``embed``...), or the face / the ground."""
    parts = module.split(".")
    if module in ("lookalike", "lookalike.__main__"):
        return FACE
    return parts[1] if (PACKAGE / parts[1]).is_dir() else GROUND


def floor(pkg: str) -> int:
    for i, names in enumerate(FLOORS):
        if pkg in names:
            return i
    raise AssertionError(f"package {pkg!r} is on no floor of tests/test_layers.py: place it")


def arrows_up(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for src, targets in sorted(graph.items()):
        for dst in sorted(targets):
            a, b = room(src), room(dst)
            if a == b or (a, b) in SIDEWAYS:
                continue
            if floor(a) >= floor(b):
                bad.append(f"{src} -> {dst} ({a} may not import {b})")
    return bad


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def users_of(prefix: str) -> set[str]:
    return {str(p.relative_to(PACKAGE)) for p in modules()
            if any(m == prefix or m.startswith(prefix + ".") for m in imports(p))}


# -- the checks can fail -----------------------------------------------------------------------------


def test_the_reader_sees_function_level_imports(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("def f():\n    from sqlalchemy import select\n    import faiss\n")
    assert {"sqlalchemy", "sqlalchemy.select", "faiss"} <= imports(f)


def test_the_graph_finds_a_cycle_through_a_function_level_import(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg.sub import b\n")
    (pkg / "sub" / "b.py").write_text("def f():\n    from .c import g\n")
    (pkg / "sub" / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.a\n")
    (pkg / "d.py").write_text("from pkg import a\n")
    graph = import_graph(pkg)
    assert graph["pkg.a"] == {"pkg.sub.b"} and graph["pkg.sub.b"] == {"pkg.sub.c"}
    assert graph["pkg.d"] == {"pkg.a"}
    assert cycles(graph) == [["pkg.a", "pkg.sub.b", "pkg.sub.c"]]


def test_an_arrow_up_is_named():
    graph = {"lookalike.embed.x": {"lookalike.search.y", "lookalike.errors"},
             "lookalike.tune.t": {"lookalike.judgments.j"}, "lookalike.judgments.j": {"lookalike.tune.t"},
             "lookalike.embed.p": {"lookalike"}}
    assert arrows_up(graph) == ["lookalike.embed.p -> lookalike (embed may not import (face))",
                                "lookalike.embed.x -> lookalike.search.y (embed may not import search)",
                                "lookalike.judgments.j -> lookalike.tune.t (judgments may not import tune)"]


# -- the package ---------------------------------------------------------------------------------------


def test_every_package_has_a_floor():
    for pkg in {room(m) for m in import_graph(PACKAGE)}:
        floor(pkg)


def test_no_import_cycle_between_modules():
    assert cycles(import_graph(PACKAGE)) == []


def test_no_arrow_back_up():
    assert arrows_up(import_graph(PACKAGE)) == []


def test_only_the_store_speaks_sql():
    outside = {m for m in users_of("sqlalchemy") | users_of("alembic") | users_of("lookalike.store.models")
               if not m.startswith("store/")}
    assert not outside, f"SQL outside lookalike/store: {sorted(outside)}"


def test_only_the_library_the_indexer_and_search_touch_faiss():
    outside = {m for m in users_of("faiss") if not m.startswith(("indexer/", "search/", "library/"))}
    assert not outside, f"FAISS outside library/, indexer/ and search/: {sorted(outside)}"


@pytest.mark.parametrize("layer", ["cli", "ui", "studies", "tune", "judgments"])
def test_apps_reach_a_library_only_through_the_service(layer):
    """``LibraryFolder`` (the folder under ``lookalike.Library``) is the writers' own: the CLI may
    open it only for ``index`` and ``doctor``."""
    writers = {"cli/index_cmd.py", "cli/doctor_cmd.py"}
    users = {m for m in users_of("lookalike.library.folder") if m.startswith(layer + "/")} - writers
    assert not users, f"{layer} bypasses lookalike.Library: {sorted(users)}"
