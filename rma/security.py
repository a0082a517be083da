"""Response headers and cookie settings that every response gets."""

from __future__ import annotations

import itertools
import os
import secrets

from flask import Flask, request
from flask.sessions import SecureCookieSessionInterface

from rma import ratelimit

CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'"
)
STATIC_HEADERS = (
    ("Content-Security-Policy", CSP),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
    ("Permissions-Policy", "camera=(), microphone=(), geolocation=()"),
)
# A JSON answer is never rendered as a page: OWASP's REST set is enough, and every header
# costs on each API call (werkzeug and gunicorn validate each one).
API_HEADERS = (
    ("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'"),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
)
HSTS = ("Strict-Transport-Security", "max-age=31536000")
REQUEST_ID_KEY = "rma.request_id"


class _RequestIds:
    """Ids unique within a process's life, prefixed by a random tag drawn again after a
    fork (so gunicorn workers differ). ``secrets.token_hex`` per request was a getrandom
    system call each time; an id needs to be unique, not unguessable."""

    def __init__(self) -> None:
        self.reset()
        os.register_at_fork(after_in_child=self.reset)

    def reset(self) -> None:
        self.tag = secrets.token_hex(4)
        self.counter = itertools.count(1)

    def next(self) -> str:
        return f"{self.tag}{next(self.counter):08x}"


_ids = _RequestIds()


def request_id() -> str:
    """This request's id: the caller's ``X-Request-ID`` when it is sane, else a new one."""
    return request.environ.get(REQUEST_ID_KEY, "")


class SecurityHeaders:
    """WSGI middleware: adds the security headers and ``X-Request-ID`` to every response,
    error pages and static files included. A header the app already set is left alone.

    It works on the WSGI header list rather than in an ``after_request`` hook: werkzeug's
    ``Headers`` validates and de-duplicates on every assignment, which cost ≈10 µs per
    request on the warranty API (``bench/warranty_lookup.py``)."""

    def __init__(self, wsgi_app, hsts: bool) -> None:
        self.wsgi_app = wsgi_app
        extra = (HSTS,) if hsts else ()
        self.page_headers = STATIC_HEADERS + extra
        self.api_headers = API_HEADERS + extra

    def __call__(self, environ, start_response):
        incoming = environ.get("HTTP_X_REQUEST_ID", "")
        bare = incoming.replace("-", "")
        ok = 0 < len(incoming) <= 64 and bare.isascii() and bare.isalnum()
        rid = incoming if ok else _ids.next()
        environ[REQUEST_ID_KEY] = rid
        ours = (
            self.api_headers
            if environ.get("PATH_INFO", "").startswith("/api/")
            else self.page_headers
        )

        def start(status, headers, exc_info=None):
            counted = ratelimit.response_headers(environ, status)
            present = {name.lower() for name, _ in headers}
            headers.extend(h for h in (*ours, *counted) if h[0].lower() not in present)
            headers.append(("X-Request-ID", rid))
            return start_response(status, headers, exc_info)

        return self.wsgi_app(environ, start)


class ApiSkipsSession(SecureCookieSessionInterface):
    """The JSON API authenticates with bearer tokens, never a cookie: under ``/api/`` no
    session is read or written. That keeps a browser's log-in cookie from authorising the
    CSRF-exempt API, and saves the signing work on every API request."""

    def open_session(self, app, request):
        if request.path.startswith("/api/"):
            return self.session_class()
        return super().open_session(app, request)

    def save_session(self, app, session, response) -> None:
        if request.path.startswith("/api/"):
            return
        super().save_session(app, session, response)


def init_app(app: Flask) -> None:
    app.session_interface = ApiSkipsSession()
    app.wsgi_app = SecurityHeaders(app.wsgi_app, hsts=bool(app.config["SESSION_COOKIE_SECURE"]))
