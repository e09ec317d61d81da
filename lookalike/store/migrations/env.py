"""Alembic environment: runs on the connection lookalike hands over (see lookalike.store.db)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from lookalike.store.models import Base

config = context.config
connection = config.attributes.get("connection")

if connection is None:  # `alembic -x url=...` from a shell, for developers
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    with create_engine(url).begin() as conn:
        context.configure(connection=conn, target_metadata=Base.metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
else:
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
