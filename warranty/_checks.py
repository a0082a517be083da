"""Small argument checks shared by the modules of the core (private)."""

from __future__ import annotations

from datetime import date, datetime

from .errors import NaiveDatetimeError, WarrantyError


def is_whole_number(value: object) -> bool:
    """True for an ``int`` that is not a ``bool``."""
    return isinstance(value, int) and not isinstance(value, bool)


def require_date(name: str, value: object, error: type[WarrantyError]) -> None:
    """Raise ``error`` unless ``value`` is a ``date`` (a ``datetime`` is refused:
    comparing one with a date raises, and its time of day would be ignored)."""
    if not isinstance(value, date) or isinstance(value, datetime):
        raise error(f"{name} must be a date, not {value!r}")


def require_aware(name: str, value: object) -> datetime:
    """``value`` when it is an aware ``datetime``; else :class:`NaiveDatetimeError`."""
    if not isinstance(value, datetime):
        raise NaiveDatetimeError(f"{name} must be an aware datetime, not {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise NaiveDatetimeError(
            f"{name} {value.isoformat()} has no time zone; pass an aware datetime (UTC as stored)"
        )
    return value
