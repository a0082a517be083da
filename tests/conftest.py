"""Shared fixtures (STYLE habit 9).

``app`` is a new app per test. On SQLite each test gets its own database file; when
``RMA_TEST_DATABASE_URL`` is set the same tests run again on PostgreSQL, where the schema
is created once per session and every table is emptied before each test.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import event, text
from werkzeug.routing.rules import Rule

from rma import create_app
from rma.extensions import db


def _worker_database(url: str) -> str:
    """Under pytest-xdist each worker gets its own PostgreSQL database (``<name>_gw0``,
    ...), created on first use, since every test empties the tables it uses.

    Commits to a test database need not reach the disk: ``synchronous_commit = off`` is
    set on it (for the app, the CLI and the gunicorn instances the e2e tests start),
    which halved the PostgreSQL tests' time; a crash loses at most the last commits of
    a database that every test empties anyway."""
    if not url:
        return url
    import psycopg
    from psycopg import sql
    from sqlalchemy.engine import make_url

    base = make_url(url)
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    name = f"{base.database}_{worker}" if worker else base.database
    admin_dsn = base.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        known = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not known:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        conn.execute(sql.SQL("ALTER DATABASE {} SET synchronous_commit = off")
                     .format(sql.Identifier(name)))
    return base.set(database=name).render_as_string(hide_password=False)


PG_URL = _worker_database(os.environ.get("RMA_TEST_DATABASE_URL", ""))
DATABASES = ["sqlite"] + (["postgresql"] if PG_URL else [])
FIXED_NOW = "2026-11-25T04:00:00+00:00"  # 12:00 in Shanghai
TEST_PASSWORD = "correct-horse-battery"
_pg_schema_ready = False


# -- speed: every test builds its own app and database ---------------------------------
# Werkzeug compiles two URL-builder functions per rule with ``ast`` + ``compile`` each
# time a rule is bound, which was ~60 % of building an app (~135 ms for ~100 rules, for
# every test). The generated function depends only on the rule's parsed trace and
# defaults, never on the rule object (it is bound to it afterwards), so tests share one
# per shape. Only the test suite does this; the app itself builds its map once.
_BUILDERS: dict = {}
# Should this module run twice in one process (as the conftest and as ``tests.conftest``),
# wrap werkzeug's own method, never our wrapper.
_compile_builder = getattr(Rule._compile_builder, "__wrapped__", Rule._compile_builder)


def _shared_builder(self, append_unknown: bool = True):
    defaults = tuple(sorted((k, repr(v)) for k, v in (self.defaults or {}).items()))
    converters = tuple(sorted((k, type(v).__qualname__) for k, v in self._converters.items()))
    key = (tuple(self._trace), defaults, converters, append_unknown)
    builder = _BUILDERS.get(key)
    if builder is None:
        builder = _BUILDERS[key] = _compile_builder(self, append_unknown)
    return builder


_shared_builder.__wrapped__ = _compile_builder  # type: ignore[attr-defined]
Rule._compile_builder = _shared_builder

# An empty SQLite database with the schema, made once per session and copied for each
# test (``create_all`` took ~70 ms a test; a copy takes ~1 ms).
_sqlite_template: Path | None = None


def _sqlite_schema(tmp_path_factory) -> Path:
    global _sqlite_template
    if _sqlite_template is None:
        path = tmp_path_factory.mktemp("schema") / "template.sqlite3"
        app = create_app({"TESTING": True, "DATABASE_URL": f"sqlite:///{path}",
                          "SECRET_KEY": "template"})
        with app.app_context():
            db.create_all()
            db.session.remove()
            for engine in db.engines.values():
                engine.dispose()
        with sqlite3.connect(path) as connection:  # fold the WAL into the file
            connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            connection.execute("PRAGMA journal_mode=DELETE")
        connection.close()
        _sqlite_template = path
    return _sqlite_template


def _reset_postgres() -> None:
    global _pg_schema_ready, _pg_reset
    if not _pg_schema_ready:
        db.drop_all()
        db.session.execute(text("DROP TABLE IF EXISTS alembic_version"))
        db.session.commit()
        db.create_all()
        _pg_schema_ready = True
        _pg_reset = None  # the schema may have changed: list the sequences again
    else:
        db.session.execute(text(_pg_reset_sql()))
        db.session.commit()


_pg_reset: str | None = None


def _pg_reset_sql() -> str:
    """Empty every table and restart every id sequence, in one round trip.

    ``DELETE`` rather than ``TRUNCATE``: a test leaves a handful of rows, and TRUNCATE
    makes new files for each of ~40 tables and their indexes, which took ~0.3-0.9 s per
    test against ~15 ms for the deletes. Foreign-key triggers are off for the deletes
    (``session_replication_role``), so the order does not matter."""
    global _pg_reset
    if _pg_reset is None:
        statements = ["SET LOCAL session_replication_role = replica"]
        statements += [f'DELETE FROM "{t.name}"' for t in reversed(db.metadata.sorted_tables)]
        sequences = db.session.scalars(text(
            "SELECT quote_ident(schemaname) || '.' || quote_ident(sequencename)"
            " FROM pg_sequences WHERE schemaname = current_schema()")).all()
        statements += [f"ALTER SEQUENCE {name} RESTART" for name in sequences]
        _pg_reset = ";\n".join(statements)
    return _pg_reset


def mark_postgres_schema_dirty() -> None:
    """For tests that drop or migrate the schema themselves."""
    global _pg_schema_ready
    _pg_schema_ready = False


@pytest.fixture(params=DATABASES)
def database_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.sqlite3'}"
    return PG_URL


def make_app(database_url: str, tmp_path, **overrides):
    config = {
        "TESTING": True,
        "DATABASE_URL": database_url,
        "SECRET_KEY": "test-secret-key",
        "FIXED_NOW": FIXED_NOW,
        "PASSWORD_HASH_METHOD": "pbkdf2:sha256:1000",
        "WTF_CSRF_ENABLED": False,
        "RATELIMIT_ENABLED": False,
    }
    config.update(overrides)
    config = {k: v for k, v in config.items() if v is not None}  # None: leave it to the app
    os.environ["RMA_INSTANCE_PATH"] = str(tmp_path / "instance")
    try:
        app = create_app(config)
    finally:
        del os.environ["RMA_INSTANCE_PATH"]
    _apps.append(app)
    return app


_apps: list = []


@pytest.fixture(autouse=True)
def _dispose_engines():
    """Close every connection pool a test opened, so no database connection is left to
    the garbage collector (psycopg warns then, and warnings are errors here)."""
    yield
    while _apps:
        app = _apps.pop()
        with app.app_context():
            db.session.remove()
            for engine in db.engines.values():
                engine.dispose()


@pytest.fixture
def app_config() -> dict:
    """Override in a test module to change the app's config."""
    return {}


@pytest.fixture
def app(database_url, tmp_path, tmp_path_factory, app_config) -> Iterator:
    if database_url.startswith("sqlite:///"):
        shutil.copyfile(_sqlite_schema(tmp_path_factory), database_url[len("sqlite:///"):])
    app = make_app(database_url, tmp_path, **app_config)
    with app.app_context():
        if database_url.startswith("sqlite"):
            db.create_all()  # the copied schema: checks the tables exist, creates none
        else:
            _reset_postgres()
    yield app
    with app.app_context():
        db.session.remove()
        for engine in db.engines.values():
            engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def ctx(app):
    """An app context for service-level tests."""
    with app.app_context():
        yield app


@contextmanager
def count_queries(app) -> Iterator[list[str]]:
    """Collect the SQL statements run inside the block (to catch N+1 queries)."""
    statements: list[str] = []
    with app.app_context():
        engine = db.engine

    def _before(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", _before)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", _before)


# -- data builders ------------------------------------------------------------------
@pytest.fixture
def make_model(app):
    from rma.services.audit import Actor
    from rma.services.catalog import create_product_model

    def _make(code="TK3", life_months=36, basis="ship", kind="hardware", price="80.00",
              name=None):
        with app.app_context():
            model = create_product_model(Actor.cli("test"), code, name or f"{code} token",
                                         kind, life_months, basis, price)
            return model.id

    return _make


@pytest.fixture
def make_customer(app):
    from rma.services.audit import Actor
    from rma.services.catalog import create_customer

    def _make(name="华东示范银行", accepted_on="2025-06-15", months=12):
        with app.app_context():
            customer = create_customer(Actor.cli("test"), name, accepted_on, months)
            return customer.contract_number

    return _make


@pytest.fixture
def make_user(app):
    from rma.services.audit import Actor
    from rma.services.catalog import customer_by_contract
    from rma.services.users import create_user

    def _make(email, role, contract=None, password=TEST_PASSWORD, language="en"):
        with app.app_context():
            customer = customer_by_contract(contract) if contract else None
            user = create_user(Actor.cli("test"), email, role, password, customer, language)
            return user.id

    return _make


@pytest.fixture
def login(client, make_user):
    """Log the test client in as a new user with ``role``; returns the client."""

    def _login(role="admin", email=None, contract=None):
        email = email or f"{role}@example.com"
        make_user(email, role, contract)
        response = client.post("/login", data={"email": email, "password": TEST_PASSWORD})
        assert response.status_code == 302, response.data
        return client

    return _login
