"""Opening a library database: engine set-up (SQLite pragmas, PostgreSQL URLs) and migrations.

SQLite gets WAL mode (readers never block the writer), a busy timeout, foreign keys and explicit
transactions (``BEGIN``, or ``BEGIN IMMEDIATE`` for writers so two writers queue instead of failing
half-way). The schema is managed by the Alembic migrations shipped in
``lookalike/store/migrations``; :func:`open_store` upgrades an older database to the newest schema.

Readers (``open_store(url, reader=True)``) never write: no ``journal_mode`` change, no migration (an
older schema is :class:`LibraryNeedsUpgradeError`), and a SQLite file they cannot write (a read-only
folder or medium) is opened read-only, or as ``immutable`` when even the WAL index cannot be made.
A database that cannot be reached or a URL that cannot be parsed is a :class:`DatabaseError`, one
clear line, never a driver traceback.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, String, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from lookalike.errors import LookalikeError, UsageError

log = logging.getLogger(__name__)

#: Seconds a SQLite connection waits for another writer's lock before giving up.
BUSY_TIMEOUT_S = 60.0
#: A fixed key for PostgreSQL's advisory lock held while migrating (two first openers at once).
_PG_MIGRATION_LOCK = 0x6C6F6F6B


class FsPath(TypeDecorator[str]):
    """A file path column: any path Python can hold (undecodable bytes included) round-trips
    exactly, stored as :func:`lookalike.files.path_to_text` (plain text for UTF-8 paths)."""

    impl = String
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Any) -> str | None:
        from lookalike.files import path_to_text

        return None if value is None else path_to_text(value)

    def process_result_value(self, value: str | None, dialect: Any) -> str | None:
        from lookalike.files import text_to_path

        return None if value is None else text_to_path(value)


class DatabaseError(LookalikeError):
    """The library database cannot be opened or used (unreachable server, disk full, corrupt file)."""


class BadDatabaseUrlError(UsageError):
    """``--db`` is not a database URL SQLAlchemy understands."""


class LibraryNeedsUpgradeError(LookalikeError):
    """A reader found an older schema; only writers (``lookalike index``) migrate."""


def describe_db_error(exc: BaseException, url: str = "") -> str:
    """One line for a driver error: the driver's own first line, without SQLAlchemy's boilerplate."""
    orig = getattr(exc, "orig", None) or exc
    first = (str(orig).strip().splitlines() or [type(orig).__name__])[0]
    where = f" {safe_url(url)}" if url else ""
    return f"database{where}: {first}"


def database_error_text(exc: BaseException) -> str | None:
    """:func:`describe_db_error` of a database driver error, ``None`` for any other exception
    (cheap: SQLAlchemy is not imported when nothing used it)."""
    import sys

    sa_exc = sys.modules.get("sqlalchemy.exc")
    if sa_exc is None or not isinstance(exc, sa_exc.SQLAlchemyError):
        return None
    return describe_db_error(exc)


def safe_url(url: str) -> str:
    """``url`` with any password hidden (or as given when it does not parse)."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - the caller reports the parse error itself
        return url


def sqlite_url(path: str | os.PathLike[str]) -> str:
    return f"sqlite:///{Path(path).resolve()}"


def normalise_url(url: str) -> str:
    """``postgres://`` / ``postgresql://`` -> the psycopg 3 driver SQLAlchemy needs."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def make_engine(url: str, immediate: bool = False, reader: bool = False) -> Engine:
    """An engine for ``url``; SQLite connections are configured for concurrent, crash-safe use.

    ``reader``: never change the database file (see the module docstring).
    """
    from sqlalchemy.exc import ArgumentError

    url = normalise_url(url)
    try:
        if not url.startswith("sqlite"):
            return create_engine(url, pool_pre_ping=True)
        options: dict[str, Any] = {"connect_args": {"timeout": BUSY_TIMEOUT_S, "isolation_level": None}}
        if reader:
            options = {"creator": _sqlite_reader(url)}
        engine = create_engine(url, **options)
    except ArgumentError:
        raise BadDatabaseUrlError(f"not a database URL: {url!r} (expected e.g. "
                                  "postgresql+psycopg://user@host/dbname or sqlite:///path)") from None
    except ImportError as exc:
        raise BadDatabaseUrlError(f"no driver for {safe_url(url)}: {exc}") from None

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        if not reader:
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


def _sqlite_reader(url: str) -> Any:
    """A DB-API connect function that never writes: read-write when allowed (SQLite opens a
    write-protected file read-only by itself), else ``mode=ro``, else ``immutable=1`` (a read-only
    folder where even the WAL index file cannot be created)."""
    import sqlite3
    from urllib.parse import quote

    from sqlalchemy.engine import make_url

    path = make_url(url).database or ""

    def connect() -> Any:
        if not os.path.isfile(path):  # a reader never creates the file
            raise sqlite3.OperationalError(f"no database file {path}")
        last: Exception | None = None
        for suffix in ("", "?mode=ro", "?immutable=1"):
            target = f"file:{quote(path)}{suffix}" if suffix else path
            conn = sqlite3.connect(target, uri=bool(suffix), timeout=BUSY_TIMEOUT_S,
                                   isolation_level=None, check_same_thread=False)
            try:
                conn.execute("SELECT count(*) FROM sqlite_master").fetchall()
                return conn
            except sqlite3.OperationalError as exc:
                conn.close()
                last = exc
        raise last or sqlite3.OperationalError(f"unable to open database file {path}")

    return connect


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

    def __init__(self, url: str, immediate: bool = False, reader: bool = False) -> None:
        self.url = normalise_url(url)
        self.reader = reader
        self.engine = make_engine(self.url, immediate=immediate, reader=reader)
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


def open_store(url: str, migrate: bool = True, immediate: bool = False, reader: bool = False) -> Store:
    """Open (and by default create or upgrade) the database at ``url``.

    ``reader``: open without writing anything (no migration: an older schema raises
    :class:`LibraryNeedsUpgradeError`, an empty database :class:`DatabaseError`). Connection
    failures raise :class:`DatabaseError`, unparsable URLs :class:`BadDatabaseUrlError`.
    """
    from sqlalchemy.exc import SQLAlchemyError

    store = Store(url, immediate=immediate, reader=reader)
    try:
        current = current_revision(store.engine)
        head = head_revision()
        if reader and current != head:
            store.close()
            if current is None:
                raise DatabaseError(f"database {safe_url(url)} holds no lookalike library")
            if current not in _known_revisions():
                raise DatabaseError(f"database {safe_url(url)} has schema {current}, newer than this "
                                    f"lookalike ({head}): upgrade lookalike")
            raise LibraryNeedsUpgradeError(
                f"library needs upgrade (schema {current}, this lookalike writes {head}): run "
                "`lookalike index` once")
        if migrate and current != head:
            if current is None:
                log.debug("creating library database schema %s", head)
            else:
                log.info("upgrading library database schema from %s to %s", current, head)
            upgrade(store.engine)
    except SQLAlchemyError as exc:
        store.close()
        text = describe_db_error(exc, url)
        if "disk is full" in text.lower():  # e.g. creating the schema on a full disk
            raise DatabaseError(f"disk full: {text}; free some space and run again") from exc
        raise DatabaseError(f"cannot open {text}") from exc
    return store


def _known_revisions() -> set[str]:
    from alembic.script import ScriptDirectory

    return {rev.revision for rev in ScriptDirectory.from_config(_alembic_config(None)).walk_revisions()}
