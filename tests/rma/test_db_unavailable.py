"""Issue 8, point 3 (fault: the database restarted under load): a request that finds the
database away gets a 503 with ``Retry-After`` (a problem document under ``/api/``, the
error page otherwise), logged as one warning, and the next request gets a fresh session
and connection. On SQLite and PostgreSQL, without a real outage: the error is raised by a
patched service, by killing the request's own PostgreSQL connection, or by an SQLite lock.
A connection that dies after the work is done (the session's closing rollback fails) must
neither spoil a finished answer nor stop ``rma tick``. The real restart under gunicorn is
``tests/e2e/test_fault_db_restart.py``."""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3

import psycopg
import pytest
from sqlalchemy import bindparam, create_engine, func, select, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url

from rma import errors
from rma.extensions import db, login_manager
from rma.fastread import CompiledRead
from rma.models import Customer, Unit, User
from rma.services.audit import Actor
from rma.services.users import create_token

EN = {"Accept-Language": "en"}
API_DETAIL = "The database is not available at the moment. Try again in a few seconds."
PAGE_TEXT = "The service is briefly unavailable. Please try again in a few seconds."
SERIAL = "TK3-DB000001"


def _dialect(app) -> str:
    with app.app_context():
        return db.engine.dialect.name


def _lost_connection(app) -> sa_exc.OperationalError:
    """What SQLAlchemy raises when the database went away, for the app's database."""
    if _dialect(app) == "sqlite":
        return sa_exc.OperationalError("UPDATE units", {}, sqlite3.OperationalError(
            "database is locked"))
    orig = psycopg.OperationalError('connection failed: connection to server at "127.0.0.1",'
                                    " port 5432 failed: Connection refused")
    return sa_exc.OperationalError("SELECT 1", {}, orig, connection_invalidated=True)


def _raiser(error: BaseException):
    def _raise(*_args, **_kwargs):
        raise error

    return _raise


@pytest.fixture
def world(app, make_model, make_customer, make_user):
    """A unit of a customer, the customer's user and an API token of that user."""
    model_id = make_model("TK3", 36, "ship")
    contract = make_customer("Fault Bank", "2025-06-15")
    make_user("ops@fault.example", "customer", contract)
    with app.app_context():
        customer = db.session.scalar(select(Customer).where(Customer.contract_number == contract))
        db.session.add(Unit(serial=SERIAL, model_id=model_id, customer_id=customer.id,
                            shipped_on=dt.date(2026, 1, 10)))
        db.session.commit()
        user = db.session.scalar(select(User).where(User.email == "ops@fault.example"))
        token = create_token(Actor.cli("test"), user, "fault test")
    return {"contract": contract, "auth": {"Authorization": f"Bearer {token}", **EN}}


def _assert_api_503(response, path: str) -> None:
    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"
    assert response.headers["Retry-After"] == str(errors.DATABASE_RETRY_AFTER)
    assert response.headers["Cache-Control"] == "no-store"
    assert response.get_json() == {"type": "about:blank", "title": "Service Unavailable",
                                   "status": 503, "detail": API_DETAIL, "instance": path}


def _assert_page_503(response) -> str:
    assert response.status_code == 503
    assert response.mimetype == "text/html"
    assert response.headers["Retry-After"] == str(errors.DATABASE_RETRY_AFTER)
    page = response.get_data(as_text=True)
    assert "<h1>503</h1>" in page and PAGE_TEXT in page
    assert "went wrong on our side" not in page
    return page


# -- which errors mean "the database is away" --------------------------------------------
def _sqlite(message: str) -> sa_exc.OperationalError:
    return sa_exc.OperationalError("SELECT 1", {}, sqlite3.OperationalError(message))


CLASSIFIED = [
    ("sqlite-locked", _sqlite("database is locked"), True),
    ("sqlite-unopenable", _sqlite("unable to open database file"), True),
    ("sqlite-no-table", _sqlite("no such table: units"), False),
    ("sqlite-no-column", _sqlite("no such column: units.colour"), False),
    ("pg-refused", sa_exc.OperationalError("SELECT 1", {}, psycopg.OperationalError(
        "connection failed: Connection refused")), True),
    ("pg-admin-shutdown", sa_exc.OperationalError("SELECT 1", {}, psycopg.errors.AdminShutdown(
        "terminating connection due to administrator command"), connection_invalidated=True),
     True),
    ("pg-closed-interface", sa_exc.InterfaceError("SELECT 1", {}, psycopg.InterfaceError(
        "the connection is closed"), connection_invalidated=True), True),
    ("pg-undefined-table", sa_exc.ProgrammingError("SELECT 1", {}, psycopg.errors.UndefinedTable(
        'relation "units" does not exist')), False),
    ("integrity", sa_exc.IntegrityError("INSERT", {}, sqlite3.IntegrityError("UNIQUE")), False),
    ("pool-timeout", sa_exc.TimeoutError("QueuePool limit of size 5 overflow 10 reached"), True),
    ("not-a-database-error", ValueError("database is locked"), False),
    # the drivers' own errors, had one got past SQLAlchemy's wrapping
    ("raw-psycopg-refused", psycopg.OperationalError("connection failed: refused"), True),
    ("raw-psycopg-admin-shutdown", psycopg.errors.AdminShutdown("terminating connection"),
     True),
    ("raw-psycopg-undefined-table", psycopg.errors.UndefinedTable("units"), False),
    ("raw-sqlite-locked", sqlite3.OperationalError("database is locked"), True),
    ("raw-sqlite-no-table", sqlite3.OperationalError("no such table: units"), False),
]


@pytest.mark.parametrize(("error", "expected"), [case[1:] for case in CLASSIFIED],
                         ids=[case[0] for case in CLASSIFIED])
def test_what_counts_as_the_database_being_away(error, expected):
    assert errors.is_database_unavailable(error) is expected


# -- API: problem document ---------------------------------------------------------------
def test_public_api_answers_503_problem_and_the_next_request_works(app, client, world,
                                                                   monkeypatch, caplog):
    """The warranty look-up (the fast read path, no session) with the database away."""
    monkeypatch.setattr("rma.views.api.check_warranty", _raiser(_lost_connection(app)))
    with caplog.at_level(logging.WARNING):
        response = client.get(f"/api/v1/warranty/{SERIAL}", headers=EN)
    _assert_api_503(response, f"/api/v1/warranty/{SERIAL}")
    logged = [r for r in caplog.records if r.name == "rma"]
    assert [r.levelno for r in logged] == [logging.WARNING]  # one warning, no "unhandled error"
    assert "database unavailable (GET /api/v1/warranty/" in logged[0].getMessage()
    assert logged[0].exc_info is None  # an expected outage, not a traceback
    monkeypatch.undo()
    again = client.get(f"/api/v1/warranty/{SERIAL}", headers=EN)
    assert again.status_code == 200
    assert again.get_json()["serial"] == SERIAL


def test_token_api_answers_503_problem_and_the_next_request_works(app, client, world,
                                                                  monkeypatch):
    """An API call with a token (user loaded through the session) that fails later on."""
    monkeypatch.setattr("rma.views.api.list_rmas", _raiser(_lost_connection(app)))
    response = client.get("/api/v1/rmas", headers=world["auth"])
    _assert_api_503(response, "/api/v1/rmas")
    monkeypatch.undo()
    again = client.get("/api/v1/rmas", headers=world["auth"])
    assert again.status_code == 200, again.get_data(as_text=True)


# -- HTML: the error page ---------------------------------------------------------------
def test_logged_in_page_answers_503_page_and_the_next_request_works(app, client, world,
                                                                    monkeypatch):
    """The user was loaded before the failure: the page renders without touching the
    database again (as to a visitor) and the log-in survives for the next request."""
    response = client.post("/login", data={"email": "ops@fault.example",
                                           "password": "correct-horse-battery"}, headers=EN)
    assert response.status_code == 302
    monkeypatch.setattr("rma.views.portal.list_rmas", _raiser(_lost_connection(app)))
    page = _assert_page_503(client.get("/portal/", headers=EN))
    assert "ops@fault.example" not in page  # rendered without the user
    monkeypatch.undo()
    again = client.get("/portal/", headers=EN)
    assert again.status_code == 200
    assert "ops@fault.example" in again.get_data(as_text=True)


def test_the_503_page_keeps_the_language_of_a_loaded_user(app, client, world, make_user,
                                                         monkeypatch):
    """The page renders as to a visitor, but in the language of the user the request had
    already loaded (Chinese here, though the browser asks for English)."""
    make_user("zh@fault.example", "customer", world["contract"], language="zh_CN")
    response = client.post("/login", data={"email": "zh@fault.example",
                                           "password": "correct-horse-battery"}, headers=EN)
    assert response.status_code == 302
    monkeypatch.setattr("rma.views.portal.list_rmas", _raiser(_lost_connection(app)))
    response = client.get("/portal/", headers=EN)
    assert response.status_code == 503
    assert '<html lang="zh-CN">' in response.get_data(as_text=True)


def test_failure_while_loading_the_user_gives_the_page_not_a_500(app, client, world,
                                                                monkeypatch):
    """The first query of a logged-in request (Flask-Login's user loader) fails: the error
    page must not ask the loader again."""
    response = client.post("/login", data={"email": "ops@fault.example",
                                           "password": "correct-horse-battery"}, headers=EN)
    assert response.status_code == 302
    calls = []

    def _loader(user_id):
        calls.append(user_id)
        raise _lost_connection(app)

    monkeypatch.setattr(login_manager, "_user_callback", _loader)
    _assert_page_503(client.get("/portal/rmas", headers=EN))
    assert len(calls) == 1
    monkeypatch.undo()
    assert client.get("/portal/rmas", headers=EN).status_code == 200


def test_error_page_that_needs_the_database_gives_the_503_page(app, client, world,
                                                              monkeypatch):
    """A logged-in user's 404 during an outage: the error page's navigation would load the
    user, which fails inside the error handler (gunicorn's bare 500 before the fix)."""
    response = client.post("/login", data={"email": "ops@fault.example",
                                           "password": "correct-horse-battery"}, headers=EN)
    assert response.status_code == 302
    monkeypatch.setattr(login_manager, "_user_callback", _raiser(_lost_connection(app)))
    _assert_page_503(client.get("/no-such-page", headers=EN))
    monkeypatch.undo()
    missing = client.get("/no-such-page", headers=EN)
    assert missing.status_code == 404
    assert "ops@fault.example" in missing.get_data(as_text=True)


def test_a_real_programming_error_stays_a_500(app, client, world, monkeypatch, caplog):
    """Only errors that pass with time are 503: a missing table is a bug or a broken
    deployment and is logged as an unhandled error."""
    error = (_sqlite("no such table: units") if _dialect(app) == "sqlite" else
             sa_exc.ProgrammingError("SELECT 1", {}, psycopg.errors.UndefinedTable("units")))
    monkeypatch.setattr("rma.views.api.check_warranty", _raiser(error))
    with caplog.at_level(logging.WARNING):
        response = client.get(f"/api/v1/warranty/{SERIAL}", headers=EN)
    assert response.status_code == 500
    assert "Retry-After" not in response.headers
    assert any(r.getMessage() == "unhandled error" and r.exc_info for r in caplog.records)


# -- real failures of the request's own connection ---------------------------------------
@pytest.fixture
def fault_routes(app):
    """``/api/v1/test-fault`` and ``/test-fault`` read through the session, then break
    the request's own database connection: PostgreSQL kills its backend (what a restart
    does to every connection), SQLite finds the database locked by another connection
    past a zero busy timeout. ``/api/v1/test-count`` reads and writes afterwards."""

    def _fault():
        db.session.scalar(select(User.id).limit(1))
        if db.engine.dialect.name == "postgresql":
            db.session.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))
        else:
            db.session.connection().exec_driver_sql("PRAGMA busy_timeout = 0")
            db.session.execute(text("UPDATE users SET email = email"))
        return "not reached"

    def _count():
        db.session.connection().exec_driver_sql(
            "PRAGMA busy_timeout = 10000" if db.engine.dialect.name == "sqlite" else "SELECT 1")
        db.session.execute(text("UPDATE users SET language = language"))
        db.session.commit()
        return {"users": db.session.scalar(select(func.count(User.id)))}

    app.add_url_rule("/api/v1/test-fault", "test_api_fault", _fault)
    app.add_url_rule("/test-fault", "test_page_fault", _fault)
    app.add_url_rule("/api/v1/test-count", "test_api_count", _count)
    return app


@pytest.fixture
def locked(app):
    """On SQLite: another connection holds the write lock while the block runs."""

    class _Lock:
        def __enter__(self):
            self.other = None
            if _dialect(app) == "sqlite":
                with app.app_context():
                    path = db.engine.url.database
                self.other = sqlite3.connect(path, isolation_level=None)
                self.other.execute("BEGIN IMMEDIATE")
            return self

        def __exit__(self, *_exc):
            if self.other is not None:
                self.other.execute("ROLLBACK")
                self.other.close()

    return _Lock()


@pytest.mark.parametrize("path", ["/api/v1/test-fault", "/test-fault"])
def test_connection_lost_mid_request_gives_503_and_a_fresh_session_next(
        fault_routes, client, world, locked, path, caplog):
    with locked, caplog.at_level(logging.WARNING):
        response = client.get(path, headers=EN)
    if path.startswith("/api/"):
        _assert_api_503(response, path)
    else:
        _assert_page_503(response)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    for _ in range(2):  # the next requests read and write through a working connection
        again = client.get("/api/v1/test-count", headers=EN)
        assert again.status_code == 200, again.get_data(as_text=True)
        assert again.get_json() == {"users": 1}


def test_pooled_connections_killed_by_a_restart_are_replaced(app, client, world):
    """PostgreSQL only: every pooled connection dies (as in a restart) between requests;
    ``pool_pre_ping`` replaces them, so the next requests, on the fast read path and
    through the session, succeed without a single failure."""
    if _dialect(app) != "postgresql":
        pytest.skip("SQLite has no server to restart")
    for _ in range(2):
        assert client.get(f"/api/v1/warranty/{SERIAL}", headers=EN).status_code == 200
        assert client.get("/api/v1/rmas", headers=world["auth"]).status_code == 200
    with app.app_context():
        url = db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        pooled = db.engine.pool.checkedin()
    assert pooled >= 1
    with psycopg.connect(url, autocommit=True) as killer:
        killed = killer.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()").fetchone()[0]
    assert killed >= pooled
    assert client.get(f"/api/v1/warranty/{SERIAL}", headers=EN).status_code == 200
    assert client.get("/api/v1/rmas", headers=world["auth"]).status_code == 200


def test_fast_read_path_wraps_a_failed_connect_like_core(database_url, tmp_path):
    """``CompiledRead`` on a database it cannot reach raises SQLAlchemy's
    ``OperationalError``, as ``Connection.execute`` does, not the driver's own error (which
    the error handler would not have known as an outage: the warranty API answered 500
    while PostgreSQL restarted)."""
    if database_url.startswith("sqlite"):
        url = f"sqlite:///{tmp_path / 'no-such-folder' / 'rma.sqlite3'}"
    else:
        url = make_url(database_url).set(host="127.0.0.1", port=1)
    engine = create_engine(url, pool_pre_ping=True)
    read = CompiledRead(select(Unit.__table__.c.serial).where(
        Unit.__table__.c.serial == bindparam("serial")))
    try:
        with pytest.raises(sa_exc.OperationalError) as core, engine.connect() as connection:
            connection.execute(read._statement, {"serial": SERIAL})
        with pytest.raises(sa_exc.OperationalError) as fast:
            read.first(engine, serial=SERIAL)
    finally:
        engine.dispose()
    assert type(fast.value.orig) is type(core.value.orig)
    assert errors.is_database_unavailable(fast.value)


# -- the connection dies after the work is done ------------------------------------------
@pytest.fixture
def kill_connection(app, monkeypatch):
    """``kill_connection()`` inside a request or job: the session's connection dies
    without the caller noticing, so only the session's closing rollback meets it.
    PostgreSQL: its backend is terminated from another connection (and waited for), as
    a restart does. SQLite: the next rollback finds the connection closed."""

    def _kill() -> None:
        if db.engine.dialect.name == "postgresql":
            pid = db.session.scalar(text("SELECT pg_backend_pid()"))
            url = db.engine.url.set(drivername="postgresql").render_as_string(
                hide_password=False)
            with psycopg.connect(url, autocommit=True) as other:
                assert other.execute("SELECT pg_terminate_backend(%s, 5000)",
                                     (pid,)).fetchone()[0]
            return
        db.session.scalar(select(User.id).limit(1))  # the session holds a connection
        dialect = db.engine.dialect
        rollback = dialect.do_rollback

        def _closed(dbapi_connection):
            monkeypatch.setattr(dialect, "do_rollback", rollback)
            raise sqlite3.ProgrammingError("Cannot operate on a closed database.")

        monkeypatch.setattr(dialect, "do_rollback", _closed)

    return _kill


def test_connection_dying_after_the_view_keeps_its_answer(app, client, world,
                                                          kill_connection, caplog):
    """The database restarts between a page's last query and the end of the request: the
    session's closing rollback fails, which must not turn a finished answer into a 500
    (gunicorn's own error page, before the fix), and the next request starts afresh."""

    def _view():
        db.session.scalar(select(User.id).limit(1))
        kill_connection()
        return "done"

    app.add_url_rule("/test-dies-after", "test_dies_after", _view)
    with caplog.at_level(logging.WARNING):
        response = client.get("/test-dies-after")
    assert response.status_code == 200
    assert response.get_data(as_text=True) == "done"
    warnings = [r.getMessage() for r in caplog.records if r.name == "rma"]
    assert any("closing the session" in message for message in warnings), warnings
    again = client.get(f"/api/v1/warranty/{SERIAL}", headers=EN)
    assert again.status_code == 200
    assert client.get("/api/v1/rmas", headers=world["auth"]).status_code == 200


def test_tick_survives_a_connection_dying_after_a_job(app, world, kill_connection,
                                                      monkeypatch):
    """``rma tick --loop`` ends each job's session; a connection that died meanwhile must
    not stop the loop (before the fix ``_run_jobs`` raised out of its ``finally``)."""
    from rma import cli

    runs = []

    def _job(now):
        kill_connection()
        runs.append(now)
        return cli.TickResult("probe: ok")

    def _count(now):
        return cli.TickResult(f"users: {db.session.scalar(select(func.count(User.id)))}")

    monkeypatch.setattr(cli, "TICK_JOBS", [cli.TickJob("probe", _job),
                                           cli.TickJob("count", _count)])
    with app.app_context():
        line, _busy, ok = cli._run_jobs(app)
    assert ok, line
    assert line.endswith("probe: ok; users: 1")
    assert len(runs) == 1


def test_a_tick_job_that_finds_the_database_away_logs_one_line(app, monkeypatch, caplog):
    """During an outage each job logs one warning line (no traceback per job per tick);
    any other error keeps its traceback."""
    from sqlalchemy.exc import OperationalError

    from rma import cli

    def _away(now):
        raise OperationalError("SELECT 1", {}, Exception("connection refused\nmore detail"))

    def _bug(now):
        raise ValueError("a bug")

    monkeypatch.setattr(cli, "TICK_JOBS", [cli.TickJob("away", _away),
                                           cli.TickJob("bug", _bug)])
    with app.app_context():
        line, _busy, ok = cli._run_jobs(app)
    assert not ok
    assert "away: FAILED (database unavailable)" in line and "bug: FAILED (ValueError" in line
    away = [r for r in caplog.records if "tick job away" in r.getMessage()]
    bug = [r for r in caplog.records if "tick job bug" in r.getMessage()]
    assert [(r.levelname, r.exc_info) for r in away] == [("WARNING", None)]
    assert "connection refused" in away[0].getMessage()
    assert "more detail" not in away[0].getMessage()
    assert bug[0].levelname == "ERROR" and bug[0].exc_info is not None


def test_postgresql_connections_give_up_after_5_seconds(tmp_path):
    """A database host that drops packets must not hold a worker until the TCP timeout."""
    from tests.conftest import make_app

    pg = make_app("postgresql+psycopg://nobody@127.0.0.1:1/none", tmp_path)
    assert pg.config["SQLALCHEMY_ENGINE_OPTIONS"]["connect_args"] == {"connect_timeout": 5}
    assert pg.config["SQLALCHEMY_ENGINE_OPTIONS"]["pool_pre_ping"] is True
    mine = make_app("postgresql+psycopg://nobody@127.0.0.1:1/none", tmp_path,
                    SQLALCHEMY_ENGINE_OPTIONS={"connect_args": {"connect_timeout": 2}})
    assert mine.config["SQLALCHEMY_ENGINE_OPTIONS"]["connect_args"] == {"connect_timeout": 2}
