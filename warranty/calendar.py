"""The office calendar: office hours and working days in China time (R-I7, D-7, R-A2).

Office hours are ``policy.office_day_start`` to ``policy.office_day_end`` (09:00-18:00,
the end excluded) in ``policy.timezone`` (Asia/Shanghai) on working days. Whether a day
is a working day is decided, first match wins, by:

1. the admin table ``overrides`` (True = working day, False = day off);
2. the ``chinesecalendar`` package (weekends, public holidays, make-up working days 调休);
3. plain weekdays (Monday-Friday), for a year the package has no data for.

Case 3 is never silent: :meth:`OfficeCalendar.missing_between` returns a
:class:`CalendarDataMissing` condition naming the years counted on plain weekdays, unless
the admin declared the year complete (``covered_years``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from types import MappingProxyType

import chinese_calendar

from ._checks import is_whole_number, require_aware, require_date
from .errors import FactError
from .policy import DEFAULT_POLICY, Policy

_ONE_DAY = timedelta(days=1)
_ZERO = timedelta(0)
#: No office-hours sum of this product needs more days than this (about 30 years).
_MAX_DAYS = 11_000


def chinese_calendar_lookup(day: date) -> bool | None:
    """Return True for a working day, False for a day off, per the ``chinesecalendar``
    package (weekends, public holidays, make-up working days 调休); None when the package
    has no data for ``day``'s year (R-I7).

    Raises :class:`FactError` unless ``day`` is a date.
    """
    require_date("day", day, FactError)
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:
        return None


@dataclass(frozen=True)
class CalendarDataMissing:
    """A condition, not an exception: the calendar had no holiday data for ``years`` and
    counted them on plain weekdays (Monday-Friday working) (R-I7).

    ``years`` is normalised to a sorted tuple of unique years. Raises :class:`FactError`
    when it is empty or holds anything but whole numbers.
    """

    years: tuple[int, ...]

    def __post_init__(self) -> None:
        years = tuple(self.years)
        if not years or not all(is_whole_number(y) for y in years):
            raise FactError(f"CalendarDataMissing needs one or more years, not {self.years!r}")
        object.__setattr__(self, "years", tuple(sorted(set(years))))

    def message(self) -> str:
        """An English sentence for logs and warnings, e.g. "no holiday data for 2027:
        counted Monday-Friday as working days"."""
        names = ", ".join(str(y) for y in self.years)
        return f"no holiday data for {names}: counted Monday-Friday as working days"


def _duration(hours: object) -> timedelta:
    if isinstance(hours, timedelta):
        duration = hours
    elif isinstance(hours, bool) or not isinstance(hours, int | float):
        raise FactError(f"hours must be a number or a timedelta, not {hours!r}")
    else:
        if hours != hours or hours in (float("inf"), float("-inf")):
            raise FactError(f"hours must be a finite number, not {hours!r}")
        duration = timedelta(hours=hours)
    if duration < _ZERO:
        raise FactError(f"hours must not be negative, not {hours!r}")
    return duration


@dataclass(frozen=True)
class OfficeCalendar:
    """Office hours and working days (R-I7) for ``policy`` (zone, office day start/end).

    ``overrides`` is the admin table (date -> True working day / False day off); it wins
    over the package. ``covered_years`` are years the admin declared complete: they count
    as having data even where the package has none. ``lookup`` answers a day from the
    holiday package (:func:`chinese_calendar_lookup`; None = no data for that year).
    Raises :class:`FactError` for an override that is not ``date -> bool`` or a covered
    year that is not a whole number.
    """

    policy: Policy = DEFAULT_POLICY
    overrides: Mapping[date, bool] = field(default_factory=dict, hash=False)
    covered_years: frozenset[int] = frozenset()
    lookup: Callable[[date], bool | None] = chinese_calendar_lookup

    def __post_init__(self) -> None:
        table = dict(self.overrides)
        for day, working in table.items():
            require_date("override day", day, FactError)
            if not isinstance(working, bool):
                raise FactError(
                    f"override {day.isoformat()} must be True or False, not {working!r}"
                )
        object.__setattr__(self, "overrides", MappingProxyType(table))
        years = frozenset(self.covered_years)
        if not all(is_whole_number(y) for y in years):
            raise FactError(f"covered_years must be whole years, not {self.covered_years!r}")
        object.__setattr__(self, "covered_years", years)

    # -- days -----------------------------------------------------------------------

    def has_data(self, year: int) -> bool:
        """True when the holiday package knows ``year`` or the admin declared it complete
        (``covered_years``) (R-I7). Raises :class:`FactError` unless ``year`` is a whole
        number."""
        if not is_whole_number(year) or not 1 <= year <= 9999:
            raise FactError(f"year must be a whole number 1..9999, not {year!r}")
        return year in self.covered_years or self.lookup(date(year, 1, 1)) is not None

    def is_working_day(self, day: date) -> bool:
        """True when ``day`` is a working day (R-I7): the admin table first, then the
        holiday package, then Monday-Friday for a year without data.

        Raises :class:`FactError` unless ``day`` is a date.
        """
        require_date("day", day, FactError)
        working = self.overrides.get(day)
        if working is None:
            working = self.lookup(day)
        if working is None:
            working = day.weekday() < 5
        return working

    def day_source(self, day: date) -> str:
        """Return what decides ``day`` (R-I7): "table" (an admin override, or a year the
        admin declared complete that the package does not know: weekdays per the table),
        "package" (``chinesecalendar``) or "fallback" (plain weekdays, no data).

        Raises :class:`FactError` unless ``day`` is a date.
        """
        require_date("day", day, FactError)
        if day in self.overrides:
            return "table"
        if self.lookup(day) is not None:
            return "package"
        return "table" if day.year in self.covered_years else "fallback"

    def missing_between(self, start: date, end: date) -> CalendarDataMissing | None:
        """Return the years from ``start.year`` through ``end.year`` that have no data
        (:meth:`has_data`) as a :class:`CalendarDataMissing`, or None when all have data
        (R-I7). Raises :class:`FactError` unless both are dates, or when ``end`` is before
        ``start``."""
        require_date("start", start, FactError)
        require_date("end", end, FactError)
        first, last = start, end
        if last < first:
            raise FactError(f"end {last.isoformat()} is before start {first.isoformat()}")
        years = [y for y in range(first.year, last.year + 1) if not self.has_data(y)]
        return CalendarDataMissing(tuple(years)) if years else None

    def add_working_days(self, day: date, n: int) -> date:
        """Return the ``n``-th working day after ``day`` (R-A2, R-I7); ``n == 0`` returns
        ``day`` itself. Raises :class:`FactError` unless ``day`` is a date and ``n`` a whole
        number >= 0."""
        require_date("day", day, FactError)
        if not is_whole_number(n) or n < 0:
            raise FactError(f"n must be a whole number >= 0, not {n!r}")
        current = day
        for _ in range(_MAX_DAYS):
            if n == 0:
                return current
            current += _ONE_DAY
            if self.is_working_day(current):
                n -= 1
        raise FactError(f"{day.isoformat()} + {n} working days is too far away")

    # -- instants -------------------------------------------------------------------

    def is_office_time(self, instant: datetime) -> bool:
        """True when ``instant`` lies in office hours [start, end) in the policy's zone on
        a working day (R-I7). Raises :class:`NaiveDatetimeError` for a naive datetime."""
        require_aware("instant", instant)
        at = instant.astimezone(UTC)
        day = at.astimezone(self.policy.zone).date()
        if not self.is_working_day(day):
            return False
        opens, closes = self._office_hours(day)
        return opens <= at < closes

    def add_office_hours(self, start: datetime, hours: int | float | timedelta) -> datetime:
        """Return the instant ``hours`` office hours after ``start``, in UTC (R-I7, D-7).

        A start outside office hours counts from the next opening. Exactly ``hours`` of
        office time lie between ``start`` and the result; a sum that uses up a day to its
        end returns that day's closing time (18:00), not the next opening. ``hours == 0``
        returns the next office instant (``start`` itself when inside office hours).
        Raises :class:`NaiveDatetimeError` for a naive ``start`` and :class:`FactError`
        for negative or non-numeric ``hours``.
        """
        require_aware("start", start)
        remaining = _duration(hours)
        at = start.astimezone(UTC)
        day = at.astimezone(self.policy.zone).date()
        for _ in range(_MAX_DAYS):
            if self.is_working_day(day):
                opens, closes = self._office_hours(day)
                at = max(at, opens)
                if at < closes:
                    available = closes - at
                    if remaining <= available:
                        return at + remaining
                    remaining -= available
            day += _ONE_DAY
        raise FactError(f"{start.isoformat()} + {hours!r} office hours is too far away")

    def office_time_between(self, a: datetime, b: datetime) -> timedelta:
        """Return the office time (R-I7) in [``a``, ``b``); zero when ``b <= a``.

        Raises :class:`NaiveDatetimeError` for a naive datetime.
        """
        require_aware("a", a)
        require_aware("b", b)
        a, b = a.astimezone(UTC), b.astimezone(UTC)
        if b <= a:
            return _ZERO
        zone = self.policy.zone
        day, last = a.astimezone(zone).date(), b.astimezone(zone).date()
        total = _ZERO
        while day <= last:
            if self.is_working_day(day):
                opens, closes = self._office_hours(day)
                overlap = min(b, closes) - max(a, opens)
                if overlap > _ZERO:
                    total += overlap
            day += _ONE_DAY
        return total

    # -- helpers ----------------------------------------------------------------------

    def _office_hours(self, day: date) -> tuple[datetime, datetime]:
        zone = self.policy.zone
        opens = datetime.combine(day, self.policy.office_day_start, tzinfo=zone)
        closes = datetime.combine(day, self.policy.office_day_end, tzinfo=zone)
        return opens.astimezone(UTC), closes.astimezone(UTC)
