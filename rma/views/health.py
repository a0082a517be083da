"""Probes for load balancers and process managers (issue 8).

``/healthz`` says the process answers (no database work: a slow database must not make
a supervisor restart healthy workers). ``/readyz`` says this instance can serve: the
database answers and its schema is at the migrations head of this release; otherwise a
503 problem document (RFC 9457) naming what is wrong, with ``Retry-After``.

Neither touches the session, the log-in or the rate limits, and the answers are for
machines: the texts are not translated.
"""

from __future__ import annotations

import functools

from flask import Blueprint, Flask, current_app, jsonify, request
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from rma.errors import problem
from rma.extensions import db
from rma.services.schema import current_revision

bp = Blueprint("health", __name__)

RETRY_AFTER_SECONDS = 10
PROBE_PATHS = frozenset({"/healthz", "/readyz"})


@functools.lru_cache(maxsize=8)
def migrations(directory: str) -> tuple[str, frozenset[str]]:
    """The head revision of the Alembic scripts in ``directory`` and every revision they
    know. Read once per process: the scripts change only with a new release, which
    restarts the process."""
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory(directory)
    head = scripts.get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations in {directory}")
    return head, frozenset(script.revision for script in scripts.walk_revisions())


def _not_ready(detail: str, **facts):
    response = problem(503, "Service Unavailable", detail, **facts)
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/healthz")
def healthz():
    response = jsonify(status="ok")
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/readyz")
def readyz():
    """200 when the database answers and is at the migrations head; else 503."""
    head, known = migrations(current_app.extensions["migrate"].directory)
    try:
        db.session.execute(text("SELECT 1"))
    except SQLAlchemyError as error:
        db.session.rollback()
        current_app.logger.warning("readiness: database unreachable: %s",
                                   type(error).__name__)
        return _not_ready("database unreachable", database="unreachable")
    revision = current_revision()
    if revision is not None and revision not in known:
        # A newer release migrated the database (a rolling upgrade): this one is stale.
        return _not_ready(f"migrations ahead: at {revision}, head {head}",
                          database="ok", migrations="ahead", revision=revision, head=head)
    if revision != head:
        return _not_ready(f"migrations behind: at {revision or 'none'}, head {head}",
                          database="ok", migrations="behind", revision=revision, head=head)
    response = jsonify(status="ready", database="ok", migrations="head", revision=revision)
    response.headers["Cache-Control"] = "no-store"
    return response


class ProbesSkipSession:
    """Wraps the app's session interface: for the probes no session is read or written,
    so a cookie a probe happens to carry is neither decoded, refreshed nor varied on.
    Everything else is the wrapped interface's."""

    def __init__(self, inner) -> None:
        self.inner = inner

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def open_session(self, app: Flask, req):
        if req.path in PROBE_PATHS:
            return self.inner.make_null_session(app)
        return self.inner.open_session(app, req)

    def save_session(self, app: Flask, session, response) -> None:
        if request.path in PROBE_PATHS:
            return
        self.inner.save_session(app, session, response)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.session_interface = ProbesSkipSession(app.session_interface)
