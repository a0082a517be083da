"""Log output: ``LOG_FORMAT`` (``RMA_LOG_FORMAT``) is ``text`` (the default: Flask's and
gunicorn's own lines, as ``make run`` shows them) or ``json``.

In ``json`` mode the ``rma`` loggers write one JSON object per line to standard error:
``ts`` (ISO 8601, UTC), ``level``, ``logger``, ``message``, ``request_id`` inside a
request (the ``X-Request-ID`` of the response, ``rma.security.request_id``) and ``exc``
with the traceback of a logged exception. Every request also gets one access line
(logger ``rma.access``) with ``method``, ``path`` (without the query string, which may
carry secrets), ``status``, ``duration_ms`` and ``user_id`` (never the e-mail address);
gunicorn's own access log is then redundant; ``rma.gunicorn_logger.JsonLogger`` puts
gunicorn's own lines in the same shape.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from datetime import UTC, datetime

from flask import Flask, g, has_request_context

FORMATS = ("text", "json")
ACCESS_LOGGER = "rma.access"
USER_KEY = "rma.user_id"  # WSGI environ: the request's user id, left by an after_request hook
# Fields of a LogRecord that are not "extra" data passed by the caller.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record. Extra fields given with ``logger.info(..., extra={})``
    are copied in. The time is the record's own (when it was logged), not ``rma.clock``:
    a pinned demo clock must not make the logs lie."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if has_request_context():
            from rma.security import request_id

            entry["request_id"] = request_id()
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        elif record.stack_info:
            entry["exc"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class _StderrHandler(logging.StreamHandler):
    """Writes to the current ``sys.stderr`` (looked up per record, so a replaced stream,
    as under pytest's capture, is honoured)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)
        self.setFormatter(JsonFormatter())

    @property  # type: ignore[override]
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


class AccessLog:
    """WSGI middleware: one ``rma.access`` line per request, once the app has answered
    (the time until then, in milliseconds)."""

    def __init__(self, wsgi_app) -> None:
        self.wsgi_app = wsgi_app
        self.logger = logging.getLogger(ACCESS_LOGGER)

    def __call__(self, environ, start_response):
        from rma.security import REQUEST_ID_KEY

        started = time.perf_counter()
        status = ["500"]

        def start(status_line, headers, exc_info=None):
            status[0] = status_line.split(" ", 1)[0]
            return start_response(status_line, headers, exc_info)

        try:
            return self.wsgi_app(environ, start)
        finally:
            method = environ.get("REQUEST_METHOD", "")
            path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
            self.logger.info(
                "%s %s %s", method, path, status[0],
                extra={"request_id": environ.get(REQUEST_ID_KEY, ""), "method": method,
                       "path": path, "status": int(status[0]),
                       "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                       "user_id": environ.get(USER_KEY)})


def _note_user(response):
    """Leave the id of the request's user (session or bearer token) for the access line,
    without loading a user the request did not load itself."""
    from flask import request

    user = g.get("api_user") or g.get("_login_user")
    if user is not None and getattr(user, "is_authenticated", False):
        request.environ[USER_KEY] = getattr(user, "id", None)
    return response


def init_app(app: Flask) -> None:
    """Apply ``LOG_FORMAT``; an unknown value stops the app at start. In ``text`` mode
    nothing is added (no cost per request)."""
    fmt = str(app.config.get("LOG_FORMAT") or "text").strip().lower()
    if fmt not in FORMATS:
        raise ValueError(f"LOG_FORMAT must be one of {', '.join(FORMATS)}, not {fmt!r}")
    app.config["LOG_FORMAT"] = fmt
    logger = logging.getLogger("rma")  # app.logger and every rma.* module logger
    for handler in [h for h in logger.handlers if isinstance(h, _StderrHandler)]:
        logger.removeHandler(handler)
    if fmt == "text":
        logger.propagate = True
        return
    from flask.logging import default_handler

    logger.removeHandler(default_handler)
    logger.addHandler(_StderrHandler())
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)
    logger.propagate = False  # one line per record, whatever the root logger has
    app.after_request(_note_user)
    app.wsgi_app = AccessLog(app.wsgi_app)
