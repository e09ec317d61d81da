"""The library database: schema, migrations (old databases open in newer versions), backends."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from sqlalchemy import select

from lookalike.store import head_revision, open_store, upgrade
from lookalike.store.db import Store, current_revision, normalise_url
from lookalike.store.models import (
    Base,
    Content,
    Image,
    Judgment,
    MetricIndex,
    Study,
    Trial,
    Vector,
)
from tests.dbfixtures import db_url, store_url  # noqa: F401


def test_open_creates_schema_at_head_matching_models(db_url, tmp_path):  # noqa: F811
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    store = open_store(store_url(db_url, tmp_path))
    try:
        assert current_revision(store.engine) == head_revision()
        with store.engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
    finally:
        store.close()


def test_first_revision_data_survives_upgrade_to_head(db_url, tmp_path):  # noqa: F811
    url = store_url(db_url, tmp_path)
    store = Store(url)
    upgrade(store.engine, "0001")
    assert current_revision(store.engine) == "0001"
    with store.engine.begin() as conn:  # raw SQL: the models describe the newest schema, not 0001
        now = dt.datetime.now(dt.timezone.utc)
        conn.execute(sa.text("INSERT INTO contents (id, sha256, size, created_at) VALUES (7, :s, 12, :t)"),
                     {"s": "ab" * 32, "t": now})
        conn.execute(sa.text("INSERT INTO images (path, size, mtime_ns, sha256, content_id, status, "
                             "updated_at) VALUES ('/p/a.jpg', 12, 5, :s, 7, 'ok', :t)"),
                     {"s": "ab" * 32, "t": now})
        conn.execute(sa.text("INSERT INTO metrics (id, name, dim, distance, provenance, vector_count, "
                             "created_at, updated_at) VALUES (1, 'm', 2, 'cosine', '{}', 1, :t, :t)"),
                     {"t": now})
        conn.execute(sa.text("INSERT INTO vectors (metric_id, content_id, data) VALUES (1, 7, :d)"),
                     {"d": b"\0" * 8})
    store.close()
    store = open_store(url)  # an old library opened by a newer version is upgraded
    try:
        assert current_revision(store.engine) == head_revision() != "0001"
        with store.session() as s:
            img = s.scalar(select(Image).where(Image.path == "/p/a.jpg"))
            assert img is not None and img.content is not None and img.content.id == 7
            assert s.scalar(select(Vector.data).where(Vector.content_id == 7)) == b"\0" * 8
            s.add(Study(name="s", kind="2afc"))  # tables of the newer revision exist
            s.commit()
    finally:
        store.close()


def test_studies_trials_judgments_round_trip(db_url, tmp_path):  # noqa: F811
    store = open_store(store_url(db_url, tmp_path))
    try:
        with store.transaction() as s:
            a, b, c = (Content(sha256=ch * 64, size=1) for ch in "abc")
            study = Study(name="pilot", kind="2afc", config={"metric": "m"})
            study.trials.append(Trial(position=0, payload={"k": 3}))
            s.add_all([a, b, c, study])
            s.flush()
            trial = study.trials[0]
            trial.reference_id, trial.left_id, trial.right_id = a.id, b.id, c.id
            trial.judgments.append(Judgment(participant="p1", choice="left", response_ms=812.5,
                                            shown_at=dt.datetime.now(dt.timezone.utc)))
        with store.session() as s:
            study = s.scalar(select(Study).where(Study.name == "pilot"))
            assert study is not None and study.config == {"metric": "m"}
            (trial,) = study.trials
            (j,) = trial.judgments
            assert (j.participant, j.choice, j.swapped, j.response_ms) == ("p1", "left", False, 812.5)
            assert j.answered_at is not None and trial.payload == {"k": 3}
        with store.transaction() as s:  # deleting a content keeps the trial, unlinks the image
            s.execute(sa.delete(Content).where(Content.sha256 == "b" * 64))
        with store.session() as s:
            trial = s.scalar(select(Trial))
            assert trial is not None and trial.left_id is None and trial.right_id is not None
    finally:
        store.close()


def test_sqlite_is_wal_with_foreign_keys_and_busy_timeout(tmp_path):
    store = open_store(store_url(None, tmp_path))
    try:
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 1000
        with pytest.raises(sa.exc.IntegrityError):
            with store.transaction() as s:
                s.add(Vector(metric_id=99, content_id=99, data=b""))
    finally:
        store.close()


def test_unique_path_and_sha(db_url, tmp_path):  # noqa: F811
    store = open_store(store_url(db_url, tmp_path))
    try:
        with store.transaction() as s:
            s.add(MetricIndex(name="m", dim=2, distance="cosine", provenance={}))
        with pytest.raises(sa.exc.IntegrityError):
            with store.transaction() as s:
                s.add(MetricIndex(name="m", dim=3, distance="cosine", provenance={}))
    finally:
        store.close()


def test_postgres_urls_use_psycopg3():
    assert normalise_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert normalise_url("sqlite:///x.db") == "sqlite:///x.db"
