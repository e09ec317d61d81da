"""SQLAlchemy models and sessions for library metadata (SQLite by default, PostgreSQL by URL)."""
