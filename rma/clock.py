"""The only place that reads the wall clock.

Everything else asks ``now()``/``today()`` here, and tests pin the clock with the
``RMA_FIXED_NOW`` config value (an aware ISO 8601 instant), so no test ever sleeps.
"""

from __future__ import annotations

import functools
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from flask import current_app, has_app_context


def _fixed() -> datetime | None:
    if not has_app_context():
        return None
    value = current_app.config.get("FIXED_NOW")
    if not value:
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        moment = datetime.fromisoformat(str(value))
    if moment.tzinfo is None:
        raise ValueError("FIXED_NOW must be an aware instant, e.g. 2026-11-25T08:00:00+00:00")
    return moment.astimezone(UTC)


def now() -> datetime:
    """The current instant, aware, in UTC."""
    return _fixed() or datetime.now(UTC)


def local_zone() -> ZoneInfo:
    """The service's zone (``RMA_TIMEZONE``, Asia/Shanghai by default)."""
    name = current_app.config.get("TIMEZONE", "Asia/Shanghai") if has_app_context() else None
    return _zone(name or "Asia/Shanghai")


@functools.lru_cache(maxsize=8)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def today() -> date:
    """Today's date in the service's zone: China time decides the date (SPEC, Warranty)."""
    fixed = _fixed()
    if fixed is None:
        return datetime.now(local_zone()).date()
    return fixed.astimezone(local_zone()).date()


def to_local(moment: datetime | None) -> datetime | None:
    """An aware instant shown in the service's zone (for display only)."""
    if moment is None:
        return None
    return moment.astimezone(local_zone())
