"""The Alembic migrations build exactly the schema the models describe."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import upgrade
from sqlalchemy import inspect, text

from rma.extensions import db
from tests.conftest import make_app, mark_postgres_schema_dirty


def _empty(app):
    db.drop_all()
    db.session.execute(text("DROP TABLE IF EXISTS alembic_version"))
    db.session.commit()


def test_migrations_reach_the_models_schema(database_url, tmp_path):
    app = make_app(database_url, tmp_path)
    with app.app_context():
        if not database_url.startswith("sqlite"):
            mark_postgres_schema_dirty()
            _empty(app)
        upgrade()
        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), db.metadata)
        assert diff == []
        from rma.services.schema import current_revision

        assert current_revision() is not None
        names = {ix["name"] for ix in inspect(db.engine).get_indexes("units")}
        # every look-up the app makes has an index
        assert {"ix_units_customer_id", "ix_units_model_id_lot_shipped_on", "ix_units_replaces_id",
                "ix_units_status"} <= names
        if not database_url.startswith("sqlite"):
            _empty(app)
        db.session.remove()
        db.engine.dispose()


def test_init_db_command_migrates_and_is_repeatable(runner):
    with runner.app.app_context():
        db.drop_all()
        db.session.execute(text("DROP TABLE IF EXISTS alembic_version"))
        db.session.commit()
    mark_postgres_schema_dirty()
    first = runner.invoke(args=["init-db"])
    assert first.exit_code == 0, first.output
    assert "latest schema" in first.output
    second = runner.invoke(args=["init-db"])
    assert second.exit_code == 0, second.output
