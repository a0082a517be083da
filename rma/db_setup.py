"""Engine settings per database: SQLite gets WAL and foreign keys, PostgreSQL psycopg 3."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url


def configure_engine_options(app: Flask) -> None:
    url = make_url(app.config["SQLALCHEMY_DATABASE_URI"])
    if url.drivername in ("postgresql", "postgres"):
        # psycopg 3 is the driver we ship and test; a bare postgresql:// URL would ask for psycopg2.
        url = url.set(drivername="postgresql+psycopg")
        app.config["SQLALCHEMY_DATABASE_URI"] = url.render_as_string(hide_password=False)
    options = dict(app.config.get("SQLALCHEMY_ENGINE_OPTIONS") or {})
    if url.get_backend_name() == "postgresql":
        options.setdefault("pool_pre_ping", True)
        # A database host that drops packets must not hold a worker until the TCP timeout:
        # give up connecting after 5 s (the request then answers 503, rma.errors).
        connect_args = dict(options.get("connect_args") or {})
        connect_args.setdefault("connect_timeout", 5)
        options["connect_args"] = connect_args
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = options


def _sqlite_on_connect(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA busy_timeout = 10000")
        mode = cursor.execute("PRAGMA journal_mode").fetchone()[0]
        if mode not in ("wal", "memory"):
            cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        # Reads through a memory map skip a copy per page; measured by bench/warranty_lookup.py.
        cursor.execute("PRAGMA mmap_size = 268435456")
    finally:
        cursor.close()


def install_sqlite_pragmas(app: Flask) -> None:
    with app.app_context():
        from rma.extensions import db

        engine: Engine = db.engine
        if engine.dialect.name == "sqlite" and not event.contains(
            engine, "connect", _sqlite_on_connect
        ):
            event.listen(engine, "connect", _sqlite_on_connect)
