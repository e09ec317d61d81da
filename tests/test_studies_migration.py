"""Migration 0003: a 0002 database with a study keeps it on upgrade; downgrade works."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy import select

from lookalike.store import upgrade
from lookalike.store.db import Store, current_revision, open_store
from lookalike.store.models import Judgment, Participant, Study, Trial
from tests.dbfixtures import db_url, store_url  # noqa: F401


def test_a_0002_study_survives_the_upgrade_and_the_downgrade_works(db_url, tmp_path):  # noqa: F811
    url = store_url(db_url, tmp_path)
    store = Store(url)
    upgrade(store.engine, "0002")
    now = dt.datetime.now(dt.timezone.utc)
    with store.engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO studies (id, name, kind, description, config, created_at) "
                             "VALUES (1, 'old', '2afc', '', '{}', :t)"), {"t": now})
        conn.execute(sa.text("INSERT INTO trials (id, study_id, position, payload, created_at) "
                             "VALUES (1, 1, 0, '{}', :t)"), {"t": now})
        conn.execute(sa.text("INSERT INTO judgments (trial_id, participant, choice, swapped, answered_at) "
                             "VALUES (1, 'p', 'left', false, :t)"), {"t": now})
    store.close()
    store = open_store(url)
    try:
        with store.session() as s:
            study = s.scalar(select(Study))
            assert study is not None and study.status == "open" and study.public_id is None
            assert s.scalar(select(Trial.role)) == "main"
            j = s.scalar(select(Judgment))
            assert j is not None and j.too_fast is False and j.participant_id is None
            assert s.scalar(select(sa.func.count()).select_from(Participant)) == 0
        from importlib import resources

        from alembic import command
        from alembic.config import Config

        with store.engine.connect().execution_options(sqlite_immediate=True) as conn, conn.begin():
            cfg = Config()
            cfg.set_main_option("script_location", str(resources.files("lookalike.store") / "migrations"))
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0002")
        assert current_revision(store.engine) == "0002"
        assert "participants" not in sa.inspect(store.engine).get_table_names()
    finally:
        store.close()
