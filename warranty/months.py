"""Month arithmetic: the SPEC "Month rule", shared by warranties and contract terms.

N months from a start day S cover S through the day before the same day of the month
N months later; where that day does not exist in the target month, through the last
day of that month. Examples (SPEC): 2026-03-11 + 12 → 2027-03-10; 2024-02-29 + 36 →
2027-02-28; 2024-01-31 + 1 → 2024-02-29; 2023-05-15 + 36 → 2026-05-14.
"""

from __future__ import annotations

from calendar import monthrange
from datetime import date, timedelta

from ._checks import is_whole_number
from .errors import PolicyError

_ONE_DAY = timedelta(days=1)


def _shift_month(year: int, month: int, n: int) -> tuple[int, int]:
    years, month0 = divmod(month - 1 + n, 12)
    return year + years, month0 + 1


def add_months(d: date, n: int) -> date:
    """Return the same day of the month ``n`` months after ``d`` (``n`` may be negative).

    Where that day does not exist in the target month the last day of that month is
    returned (2024-01-31 + 1 → 2024-02-29). Raises :class:`PolicyError` when ``n`` is
    not an integer.
    """
    if not is_whole_number(n):
        raise PolicyError(f"a month count must be a whole number, not {n!r}")
    year, month = _shift_month(d.year, d.month, n)
    if not 1 <= year <= 9999:
        raise PolicyError(f"{d.isoformat()} + {n} months is outside the calendar")
    return date(year, month, min(d.day, monthrange(year, month)[1]))


def last_covered_day(start: date, months: int) -> date:
    """Return the last day covered by ``months`` months starting on ``start`` (Month rule).

    The result is the day before the same day of the month ``months`` months later, or
    the last day of the target month where that day does not exist in it. Always
    ``>= start``. Raises :class:`PolicyError` when ``months`` is not an integer >= 1.
    """
    if not is_whole_number(months) or months < 1:
        raise PolicyError(f"a period must be a whole number of months >= 1, not {months!r}")
    year, month = _shift_month(start.year, start.month, months)
    if year > 9999:
        raise PolicyError(f"{start.isoformat()} + {months} months is outside the calendar")
    days_in_month = monthrange(year, month)[1]
    if start.day > days_in_month:
        # The same day does not exist in the target month: cover through its last day.
        return date(year, month, days_in_month)
    return date(year, month, start.day) - _ONE_DAY
