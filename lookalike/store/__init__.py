"""SQLAlchemy models and sessions for library metadata (SQLite by default, PostgreSQL by URL).

``open_store(url)`` returns a :class:`Store` with the schema created or upgraded by the Alembic
migrations shipped in ``lookalike/store/migrations``; the models are in :mod:`lookalike.store.models`.
"""

from __future__ import annotations

from lookalike.store.db import Store, head_revision, open_store, sqlite_url, upgrade

__all__ = ["Store", "head_revision", "open_store", "sqlite_url", "upgrade"]
