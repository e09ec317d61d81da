"""The ``db_url`` fixture: every store/indexer test runs on SQLite, and on PostgreSQL too when
``LOOKALIKE_TEST_PG_URL`` is set (each test in a schema of its own, dropped afterwards).

Import it into a test module with ``from tests.dbfixtures import db_url  # noqa: F401``.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

PG_ENV = "LOOKALIKE_TEST_PG_URL"
BACKENDS = ["sqlite"] + (["postgres"] if os.environ.get(PG_ENV) else [])


def pg_schema_url(base: str, schema: str) -> str:
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options={quote(f'-csearch_path={schema}')}"


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """``None`` (the library's own SQLite file) or a PostgreSQL URL bound to a fresh schema."""
    if request.param == "sqlite":
        yield None
        return
    import sqlalchemy as sa

    from lookalike.store.db import normalise_url

    base = normalise_url(os.environ[PG_ENV])
    schema = f"t_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(base)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield pg_schema_url(base, schema)
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


def store_url(db_url: str | None, folder: Path) -> str:
    """A concrete URL: ``db_url`` or a SQLite file in ``folder``."""
    from lookalike.store.db import sqlite_url

    return db_url or sqlite_url(folder / "test.db")


def copy_photos(photos: list[Path], dest: Path, n: int | None = None) -> list[Path]:
    """Copy (the first ``n``) real photos into ``dest`` so a test may change them."""
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for p in photos[:n]:
        shutil.copy2(p, dest / p.name)
        out.append(dest / p.name)
    return out
