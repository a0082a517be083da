"""A small fixed-window rate limiter, per client address and per endpoint.

It replaced Flask-Limiter: that extension installs app-wide before/after/teardown hooks and a
storage timer thread, which cost ≈185 µs of the warranty API's ≈480 µs per request
(``bench/warranty_lookup.py``). This one costs a dictionary lookup under a lock, and only on
the views it decorates. Counters live in the process, as Flask-Limiter's ``memory://``
storage did: with N workers a client gets at most N times the limit.
"""

from __future__ import annotations

import functools
import math
import re
import threading
import time
from collections.abc import Callable
from typing import Any

from flask import current_app, request
from werkzeug.exceptions import TooManyRequests

_PERIODS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
_LIMIT = re.compile(r"^\s*(\d+)\s*(?:/|per)\s*(second|minute|hour|day)s?\s*$", re.IGNORECASE)


class LimitSyntaxError(ValueError):
    """A configured limit that is not ``N/second|minute|hour|day``."""


@functools.lru_cache(maxsize=64)
def parse_limit(text: str) -> tuple[int, int]:
    """``"120/minute"`` → ``(120, 60)``: the number of hits and the window in seconds."""
    match = _LIMIT.match(text or "")
    if not match or int(match.group(1)) < 1:
        raise LimitSyntaxError(f"rate limit {text!r} is not like '120/minute'")
    return int(match.group(1)), _PERIODS[match.group(2).lower()]


class FixedWindowCounter:
    """Hit counts per key in the current window; thread-safe, pruned as windows pass."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._counts: dict[tuple[Any, ...], tuple[int, int]] = {}
        self._pruned_at = 0.0

    def hit(self, key: tuple[Any, ...], limit: int, period: int) -> tuple[bool, int, float]:
        """Count one hit. Returns (allowed, remaining, seconds until the window resets)."""
        now = self._clock()
        window = int(now // period)
        with self._lock:
            if now - self._pruned_at > 60:
                self._prune(now)
            started, count = self._counts.get(key, (window, 0))
            if started != window:
                count = 0
            count += 1
            self._counts[key] = (window, count)
        reset = (window + 1) * period - now
        return count <= limit, max(limit - count, 0), reset

    def _prune(self, now: float) -> None:
        self._pruned_at = now
        stale = [k for k, (window, _) in self._counts.items() if window < int(now // k[-1])]
        for key in stale:
            del self._counts[key]

    def clear(self) -> None:
        with self._lock:
            self._counts.clear()


def init_app(app) -> None:
    """One counter per app; a limit that does not parse stops the app at start, not per request."""
    for key, value in app.config.items():
        if key.endswith("_RATE_LIMIT"):
            parse_limit(value)
    app.extensions["rma.ratelimit"] = FixedWindowCounter()


ENVIRON_KEY = "rma.rate_limit"


def limit(config_key: str, methods: tuple[str, ...] | None = None):
    """Limit a view to ``app.config[config_key]`` hits per client address.

    Over the limit the view is not called: a 429 with ``Retry-After`` (a problem document
    under ``/api/``, the error page elsewhere). Every counted response carries
    ``X-RateLimit-Limit``, ``X-RateLimit-Remaining`` and ``X-RateLimit-Reset``: the state
    is left in the WSGI environ and ``security.SecurityHeaders`` writes the headers, so a
    429 from an error handler gets them too.
    """

    def decorate(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            app = current_app._get_current_object()  # type: ignore[attr-defined]
            req = request._get_current_object()  # type: ignore[attr-defined]
            config = app.config
            if not config["RATELIMIT_ENABLED"] or (methods and req.method not in methods):
                return view(*args, **kwargs)
            hits, period = parse_limit(config[config_key])
            key = (req.endpoint, req.remote_addr or "-", period)
            allowed, remaining, reset = app.extensions["rma.ratelimit"].hit(key, hits, period)
            req.environ[ENVIRON_KEY] = (hits, remaining, reset)
            if not allowed:
                raise TooManyRequests(retry_after=math.ceil(reset))
            return view(*args, **kwargs)

        return wrapper

    return decorate


def response_headers(environ: dict, status: str) -> list[tuple[str, str]]:
    """The ``X-RateLimit-*`` headers (and ``Retry-After`` on a 429) for a counted request."""
    state = environ.get(ENVIRON_KEY)
    if state is None:
        return []
    hits, remaining, reset = state
    seconds = str(math.ceil(reset))
    headers = [
        ("X-RateLimit-Limit", str(hits)),
        ("X-RateLimit-Remaining", str(remaining)),
        ("X-RateLimit-Reset", seconds),
    ]
    if status.startswith("429"):
        headers.append(("Retry-After", seconds))
    return headers
