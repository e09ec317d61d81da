"""Opening a library database: engine set-up (SQLite pragmas, PostgreSQL URLs) and migrations.

SQLite gets WAL mode (readers never block the writer), a busy timeout, foreign keys and explicit
transactions (``BEGIN``, or ``BEGIN IMMEDIATE`` for writers so two writers queue instead of failing
half-way). The schema is managed by the Alembic migrations shipped in
``lookalike/store/migrations``; :func:`open_store` upgrades an older database to the newest schema.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)

#: Seconds a SQLite connection waits for another writer's lock before giving up.
BUSY_TIMEOUT_S = 60.0
#: A fixed key for PostgreSQL's advisory lock held while migrating (two first openers at once).
_PG_MIGRATION_LOCK = 0x6C6F6F6B


def sqlite_url(path: str | os.PathLike[str]) -> str:
    return f"sqlite:///{Path(path).resolve()}"


def normalise_url(url: str) -> str:
    """``postgres://`` / ``postgresql://`` -> the psycopg 3 driver SQLAlchemy needs."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def make_engine(url: str, immediate: bool = False) -> Engine:
    """An engine for ``url``; SQLite connections are configured for concurrent, crash-safe use."""
    url = normalise_url(url)
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True)
    engine = create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_S, "isolation_level": None})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")  # with WAL: durable against process crashes
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        want = conn.get_execution_options().get("sqlite_immediate", immediate)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if want else "BEGIN")

    return engine


def _alembic_config(connection: Any) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(resources.files("lookalike.store") / "migrations"))
    cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config(None)).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate the schema to ``revision`` (one transaction; concurrent openers wait their turn)."""
    from alembic import command

    with engine.connect().execution_options(sqlite_immediate=True) as conn:
        with conn.begin():
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
            command.upgrade(_alembic_config(conn), revision)


class Store:
    """A library database: an engine and a session factory."""

    def __init__(self, url: str, immediate: bool = False) -> None:
        self.url = normalise_url(url)
        self.engine = make_engine(self.url, immediate=immediate)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def session(self) -> Session:
        return self._sessions()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session whose work is committed on success and rolled back on any exception."""
        with self._sessions() as session, session.begin():
            yield session

    def close(self) -> None:
        self.engine.dispose()

    def __repr__(self) -> str:
        return f"Store({self.engine.url.render_as_string(hide_password=True)!r})"


def open_store(url: str, migrate: bool = True, immediate: bool = False) -> Store:
    """Open (and by default create or upgrade) the database at ``url``."""
    store = Store(url, immediate=immediate)
    if migrate and (current := current_revision(store.engine)) != head_revision():
        if current is None:
            log.debug("creating library database schema %s", head_revision())
        else:
            log.info("upgrading library database schema from %s to %s", current, head_revision())
        upgrade(store.engine)
    return store
