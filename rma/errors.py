"""Error pages for people and RFC 9457 problem documents for the API."""

from __future__ import annotations

import logging
import sqlite3
import sys

from flask import Flask, g, jsonify, make_response, render_template, request
from flask_babel import force_locale, get_locale
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFError
from sqlalchemy import exc as sa_exc
from sqlalchemy import inspect as sa_inspect
from werkzeug.exceptions import HTTPException, InternalServerError

PROBLEM_TYPE = "about:blank"
# Issue 8: what a client is told to wait when the database is briefly away (a restart,
# a fail-over, a lock held too long). A restart of PostgreSQL takes a few seconds.
DATABASE_RETRY_AFTER = 5
# SQLite errors that pass with time; anything else (no such table, a syntax error ...) is
# a bug or a broken deployment and stays a 500. "database is locked" comes after the
# connection's busy_timeout (rma.db_setup) expired.
_SQLITE_TRANSIENT = ("database is locked", "database table is locked",
                     "unable to open database file")


def problem(status: int, title: str, detail: str = "", **extra):
    """A ``application/problem+json`` response (RFC 9457)."""
    body = {"type": extra.pop("type", PROBLEM_TYPE), "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body["instance"] = request.path
    body.update(extra)
    response = jsonify(body)
    response.status_code = status
    response.mimetype = "application/problem+json"
    return response


def wants_problem() -> bool:
    return request.path.startswith("/api/")


def is_database_unavailable(error: BaseException) -> bool:
    """Whether ``error`` means the database cannot serve right now, so the same request
    may well succeed a few seconds later: the connection was lost or refused (PostgreSQL
    restarting, a fail-over), the pool found no free connection in time, PostgreSQL
    gave up for an operational reason (admin shutdown, too many connections, a deadlock,
    a serialization failure), or SQLite stayed locked past its busy timeout."""
    if isinstance(error, sa_exc.TimeoutError):  # QueuePool: no connection within the timeout
        return True
    if isinstance(error, sa_exc.DBAPIError):
        if error.connection_invalidated:
            return True
        return isinstance(error, sa_exc.OperationalError) and _is_transient(error.orig)
    # A driver's own error that got past SQLAlchemy (code on a raw DBAPI connection).
    return _is_driver_error(error, "OperationalError") and _is_transient(error)


def _is_driver_error(error: BaseException, name: str) -> bool:
    """``error`` is a ``name`` of the DB-API module that raised it (PEP 249: every driver
    has ``OperationalError``), without importing any driver here."""
    module = sys.modules.get(type(error).__module__.split(".")[0])
    kind = getattr(module, name, None)
    return isinstance(kind, type) and isinstance(error, kind)


def _is_transient(orig: BaseException) -> bool:
    if isinstance(orig, sqlite3.Error):
        message = str(orig).lower()
        return any(message.startswith(text) for text in _SQLITE_TRANSIENT)
    # psycopg's OperationalError: connection failures (class 08), operator intervention
    # (57: admin shutdown, cannot connect now), insufficient resources (53), lock and
    # transaction-rollback errors (55P03, 40001, 40P01).
    return True


def _first_line(error: BaseException) -> str:
    cause = getattr(error, "orig", None) or error
    lines = str(cause).strip().splitlines()
    return lines[0][:300] if lines else type(cause).__name__


def discard_session(logger: logging.Logger) -> None:
    """End the scoped session whatever became of its connection. When the database
    restarted since the session's last statement, the closing rollback fails: the
    server has dropped that transaction already and the pool has discarded the
    connection, so the failure is logged and the session forgotten all the same (the
    next request or job starts with a new one). Raising here would turn a finished
    answer into a 500, or stop ``rma tick --loop``."""
    from rma.extensions import db

    try:
        db.session.remove()
    except sa_exc.SQLAlchemyError as error:
        db.session.registry.clear()  # remove() clears it only when close() succeeds
        if is_database_unavailable(error):
            logger.warning("database connection lost while closing the session: %s: %s",
                           type(error).__name__, _first_line(error))
        else:
            logger.exception("closing the session failed")


def _forget_database_state(app: Flask) -> None:
    """After a database failure: settle this request's language while the user (if one
    is loaded) can still say it, end the session (see ``discard_session``) so the next
    request starts with a fresh one, and let the error page render as to a visitor: its
    navigation would otherwise read the user and their notifications from the database."""
    from rma.extensions import login_manager
    from rma.logs import USER_KEY

    user = g.get("api_user") or g.get("_login_user")
    state = sa_inspect(user, raiseerr=False) if user is not None else None
    if state is not None and state.identity:  # a User (not the anonymous one): no query
        request.environ[USER_KEY] = state.identity[0]
    if "_login_user" in g:
        try:
            get_locale()  # cached for the request: the user's language, already loaded
        except sa_exc.SQLAlchemyError:
            pass  # it was expired and cannot be read: the session's or browser's language
    discard_session(app.logger)
    g.api_user = None
    g._login_user = login_manager.anonymous_user()


def _database_unavailable(app: Flask, error: BaseException):
    """503 with ``Retry-After``: a problem document for the API, the error page otherwise.
    Logged as one warning line: the outage is expected to pass and is not a bug."""
    app.logger.warning("database unavailable (%s %s): %s: %s", request.method, request.path,
                       type(error).__name__, _first_line(error))
    _forget_database_state(app)
    if wants_problem():
        from rma.views.api import api_language

        with force_locale(api_language()):
            detail = _("The database is not available at the moment. Try again in a few "
                       "seconds.")
        response = problem(503, "Service Unavailable", detail)
    else:
        response = make_response(render_template("errors/error.html", code=503), 503)
    response.headers["Retry-After"] = str(DATABASE_RETRY_AFTER)
    response.headers["Cache-Control"] = "no-store"
    return response


def _error_page(app: Flask, code: int, message: str | None = None,
                detail: str | None = None):
    """The HTML error page: the status's own sentence, or ``detail`` when the app has a
    more useful one (an exception's ``page_message``). Its navigation reads a logged-in
    user from the database: when the database is away that fails inside the error handler
    itself (a 404 or a 400 during an outage), which gunicorn would answer with its bare
    500; the 503 page instead."""
    try:
        return make_response(render_template("errors/error.html", code=code,
                                             message=message, detail=detail), code)
    except Exception as error:
        if not is_database_unavailable(error):
            raise
        return _database_unavailable(app, error)


def init_app(app: Flask) -> None:
    # Runs before Flask-SQLAlchemy's own teardown (registered earlier; Flask runs them in
    # reverse), which then finds no session left to close.
    app.teardown_appcontext(lambda _error: discard_session(app.logger))

    @app.errorhandler(CSRFError)
    def _csrf(error: CSRFError):
        if wants_problem():
            return problem(400, "CSRF check failed", error.description)
        return _error_page(app, 400, error.description)

    @app.errorhandler(HTTPException)
    def _http(error: HTTPException):
        code = error.code or 500
        if wants_problem():
            response = problem(code, error.name, error.description or "")
        else:
            response = _error_page(app, code, error.description,
                                   getattr(error, "page_message", None))
            if response.status_code != code:  # the database was away: the 503 as it is
                return response
        for name, value in error.get_response().headers.items():
            if name in ("Retry-After", "Allow"):
                response.headers[name] = value
        return response

    @app.errorhandler(Exception)
    def _unexpected(error: Exception):
        if is_database_unavailable(error):
            return _database_unavailable(app, error)
        app.logger.exception("unhandled error")
        if wants_problem():
            return problem(500, "Internal Server Error", "The error was logged.")
        return _error_page(app, 500, InternalServerError.description)
