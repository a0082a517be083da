"""The replacement clock: 72 calendar hours from confirmation to delivery (R-R3, D-2, D-3).

The clock starts when a free replacement is confirmed (remotely or on inspection) or a
paid one is released (see :func:`warranty.lifecycle.clock_starts`) and stops when the
replacement is delivered on site. Every instant is an aware datetime; months of the
monthly figures are counted in the policy's time zone (China time by default).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum

from ._checks import require_aware, require_date
from .calendar import OfficeCalendar
from .errors import FactError, PolicyError
from .policy import DEFAULT_POLICY, Policy

_MICROSECONDS_PER_HOUR = Decimal(3_600_000_000)
_TENTH = Decimal("0.1")


class ClockState(StrEnum):
    """Where a replacement stands against its deadline (R-R3)."""

    ON_TRACK = "on_track"  # open, at least policy.replacement_at_risk_hours left
    AT_RISK = "at_risk"  # open, fewer hours left, due time not passed
    BREACHED = "breached"  # open, due time passed
    MET = "met"  # delivered at or before the due time
    MISSED = "missed"  # delivered after the due time

    @property
    def is_open(self) -> bool:
        """True while the replacement is not delivered."""
        return self in (ClockState.ON_TRACK, ClockState.AT_RISK, ClockState.BREACHED)


def replacement_due(
    started_at: datetime,
    policy: Policy = DEFAULT_POLICY,
    calendar: OfficeCalendar | None = None,
) -> datetime:
    """Return when a replacement must be on site: ``started_at`` plus
    ``policy.replacement_target_hours`` (72) hours on the replacement's clock (R-R3, D-7),
    in UTC.

    Calendar clock (the default): elapsed hours, not wall-clock hours: across a
    daylight-saving change the result is still exactly 72 hours later. Office clock
    (D-7): office hours of ``calendar`` (R-I7). Raises :class:`NaiveDatetimeError` for a
    naive ``started_at`` and :class:`PolicyError` when the policy puts the replacement
    target on office hours but no ``calendar`` is given.
    """
    require_aware("started_at", started_at)
    if policy.clock_for("replacement") != "calendar":
        if calendar is None:
            raise PolicyError(
                "the replacement target runs on office hours (D-7): "
                "pass an office calendar, or put it back on calendar hours"
            )
        return calendar.add_office_hours(started_at, policy.replacement_target_hours)
    return started_at.astimezone(UTC) + timedelta(hours=policy.replacement_target_hours)


def clock_state(
    due_at: datetime,
    now: datetime,
    delivered_at: datetime | None = None,
    policy: Policy = DEFAULT_POLICY,
) -> ClockState:
    """Return the state of a replacement clock due at ``due_at``, judged at ``now`` (R-R3).

    Once delivered: ``MET`` when ``delivered_at <= due_at`` (delivered exactly at the due
    time is met), else ``MISSED``. While open: ``BREACHED`` once ``now`` is past
    ``due_at`` (exactly at the due time is not breached yet), ``AT_RISK`` when less than
    ``policy.replacement_at_risk_hours`` (24) are left, else ``ON_TRACK`` (exactly 24 h
    left is still on track). Raises :class:`NaiveDatetimeError` for a naive datetime.
    """
    require_aware("due_at", due_at)
    require_aware("now", now)
    if delivered_at is not None:
        require_aware("delivered_at", delivered_at)
        return ClockState.MET if delivered_at <= due_at else ClockState.MISSED
    if now > due_at:
        return ClockState.BREACHED
    if due_at - now < timedelta(hours=policy.replacement_at_risk_hours):
        return ClockState.AT_RISK
    return ClockState.ON_TRACK


def _hours(start: datetime, end: datetime) -> Decimal:
    return Decimal((end - start) // timedelta(microseconds=1)) / _MICROSECONDS_PER_HOUR


def _one_decimal(hours: Decimal) -> float:
    return float(hours.quantize(_TENTH, rounding=ROUND_HALF_UP))


def hours_between(start: datetime, end: datetime) -> float:
    """Return the elapsed hours from ``start`` to ``end``, rounded half away from zero
    to one decimal (negative when ``end`` is earlier): 90 minutes → 1.5, 3 minutes → 0.1.

    Raises :class:`NaiveDatetimeError` for a naive datetime.
    """
    require_aware("start", start)
    require_aware("end", end)
    return _one_decimal(_hours(start, end))


def unit_return_deadline(shipped_on: date, policy: Policy = DEFAULT_POLICY) -> date:
    """Return the last day the faulty unit of an advance replacement may come back:
    ``shipped_on`` plus ``policy.advance_return_days`` (14) days (D-2).

    Shipped 2026-03-01 → 2026-03-15. Raises :class:`FactError` unless ``shipped_on`` is a
    date (a datetime is refused).
    """
    require_date("shipped_on", shipped_on, FactError)
    return shipped_on + timedelta(days=policy.advance_return_days)


def is_unit_overdue(deadline: date | None, today: date, unit_received: bool) -> bool:
    """True when an advance-replaced unit has not come back and ``today`` is after its
    ``deadline`` (D-2; the deadline day itself is not overdue). False when there is no
    deadline (no advance replacement) or the unit was received.

    Raises :class:`FactError` unless ``today`` (and ``deadline`` when given) is a date.
    """
    require_date("today", today, FactError)
    if deadline is None:
        return False
    require_date("deadline", deadline, FactError)
    return not unit_received and today > deadline


@dataclass(frozen=True)
class ClockRecord:
    """One replacement clock: when it started, when it was due, when (if) delivered.

    Every instant must be aware; raises :class:`NaiveDatetimeError` otherwise.
    """

    started_at: datetime
    due_at: datetime
    delivered_at: datetime | None = None

    def __post_init__(self) -> None:
        require_aware("started_at", self.started_at)
        require_aware("due_at", self.due_at)
        if self.delivered_at is not None:
            require_aware("delivered_at", self.delivered_at)


@dataclass(frozen=True)
class MonthFigures:
    """The R-R3 figures of the clocks that started in one month.

    ``month`` is "YYYY-MM" in the policy's time zone (China time). ``within_target``
    counts deliveries at or before the due time; ``share_within`` is that over
    ``delivered`` (None with no delivery). ``median_hours`` and ``p90_hours`` (nearest
    rank) are over the delivered clocks' start-to-delivery hours, one decimal (None with
    no delivery). ``breached`` counts late deliveries plus clocks still open past their
    due time at ``now``.
    """

    month: str
    started: int
    delivered: int
    within_target: int
    share_within: float | None
    median_hours: float | None
    p90_hours: float | None
    breached: int


def _median(values: list[Decimal]) -> Decimal:
    n = len(values)
    mid = n // 2
    return values[mid] if n % 2 else (values[mid - 1] + values[mid]) / 2


def _nearest_rank(values: list[Decimal], percent: int) -> Decimal:
    rank = -(-percent * len(values) // 100)  # ceil(p/100 * n), at least 1
    return values[max(rank, 1) - 1]


def _figures(month: str, records: list[ClockRecord], now: datetime) -> MonthFigures:
    done = [r for r in records if r.delivered_at is not None]
    hours = sorted(_hours(r.started_at, r.delivered_at) for r in done)
    within = sum(1 for r in done if r.delivered_at <= r.due_at)
    open_late = sum(1 for r in records if r.delivered_at is None and now > r.due_at)
    return MonthFigures(
        month=month,
        started=len(records),
        delivered=len(done),
        within_target=within,
        share_within=within / len(done) if done else None,
        median_hours=_one_decimal(_median(hours)) if hours else None,
        p90_hours=_one_decimal(_nearest_rank(hours, 90)) if hours else None,
        breached=(len(done) - within) + open_late,
    )


def monthly_figures(
    records: Iterable[ClockRecord], now: datetime, policy: Policy = DEFAULT_POLICY
) -> list[MonthFigures]:
    """Return the R-R3 figures per month the clocks started in, oldest month first.

    Months are taken in ``policy.timezone`` (a clock started 2026-11-30T20:00Z counts for
    2026-12 in China time); only months with at least one record are listed. Raises
    :class:`NaiveDatetimeError` for a naive ``now`` and :class:`FactError` for an item
    that is not a :class:`ClockRecord`.
    """
    require_aware("now", now)
    zone = policy.zone
    by_month: dict[str, list[ClockRecord]] = {}
    for record in records:
        if not isinstance(record, ClockRecord):
            raise FactError(f"monthly_figures needs ClockRecord items, not {record!r}")
        local = record.started_at.astimezone(zone)
        month = f"{local.year:04d}-{local.month:02d}"
        by_month.setdefault(month, []).append(record)
    return [_figures(month, by_month[month], now) for month in sorted(by_month)]
