"""Small argument checks shared by the modules of the core (private)."""

from __future__ import annotations

from datetime import date, datetime

from .errors import WarrantyError


def is_whole_number(value: object) -> bool:
    """True for an ``int`` that is not a ``bool``."""
    return isinstance(value, int) and not isinstance(value, bool)


def require_date(name: str, value: object, error: type[WarrantyError]) -> None:
    """Raise ``error`` unless ``value`` is a ``date`` (a ``datetime`` is refused:
    comparing one with a date raises, and its time of day would be ignored)."""
    if not isinstance(value, date) or isinstance(value, datetime):
        raise error(f"{name} must be a date, not {value!r}")
