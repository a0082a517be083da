"""Schema revision checks (``rma init-db`` output; later the readiness probe)."""

from __future__ import annotations

from sqlalchemy import text

from rma.extensions import db


def current_revision() -> str | None:
    """The Alembic revision the database is at, or None before the first migration."""
    try:
        return db.session.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except Exception:
        db.session.rollback()
        return None
