"""Incident targets, the escalation ladder, on-site visits (R-I1, R-I2, R-I4..R-I6, R-C4).

Every target counts from an aware instant on the clock the policy names for it (D-7):
calendar hours (support is 7x24) by default, or office hours of an
:class:`~warranty.calendar.OfficeCalendar` (R-I7). Instants come in aware and go out in
UTC; days (briefs, contract years) are taken in China time (the policy's zone).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ._checks import is_whole_number, require_aware, require_date
from .calendar import CalendarDataMissing, OfficeCalendar
from .errors import FactError, PolicyError
from .months import last_covered_day
from .policy import PRIORITIES, Policy

#: The targets every incident carries (R-I1 contact, R-I2 diagnosis, resolution).
INCIDENT_TARGETS = ("contact", "diagnosis", "resolution")

#: Deadline targets and the D-7 clock setting each one runs on.
_CLOCK_OF_TARGET = {
    "contact": "contact",
    "diagnosis": "diagnosis",
    "resolution": "escalation",  # both count hours since the report until resolved
    "escalation": "escalation",
    "onsite_arrival": "onsite_arrival",
    "replacement": "replacement",
}
#: R-I5: the support mode suggested for each priority.
_SUPPORT_MODES = {"urgent": "onsite", "serious": "remote", "general": "phone"}
#: R-C4 / R-I6: kinds of on-site visit.
_VISIT_KINDS = ("emergency", "change")
_CONTRACT_YEAR_MONTHS = 12
_ONE_DAY = timedelta(days=1)


def _require_priority(priority: object) -> str:
    if priority not in PRIORITIES:
        raise PolicyError(f"unknown priority {priority!r}; known: {', '.join(PRIORITIES)}")
    return str(priority)


def _number(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FactError(f"{name} must be a number, not {value!r}")
    if value != value or value < 0 or value == float("inf"):
        raise FactError(f"{name} must be a finite number >= 0, not {value!r}")
    return value


@dataclass(frozen=True)
class Deadline:
    """When a target is due: ``start`` plus its duration on ``clock`` (D-7).

    ``target`` is "contact", "diagnosis", "resolution", "onsite_arrival", "escalation" or
    "replacement"; ``clock`` is "calendar" or "office"; ``missing`` is set when the office
    clock counted through a year without holiday data (R-I7). ``start`` and ``due_at`` are
    aware UTC. Raises :class:`NaiveDatetimeError` for a naive instant.
    """

    target: str
    start: datetime
    due_at: datetime
    clock: str
    missing: CalendarDataMissing | None = None

    def __post_init__(self) -> None:
        require_aware("start", self.start)
        require_aware("due_at", self.due_at)


@dataclass(frozen=True)
class Rung:
    """One rung of the escalation ladder (R-I4): at ``due_at`` (aware UTC, ``hours`` after
    the report on the "escalation" clock) the holder of ``role`` is told. ``missing`` as
    on :class:`Deadline`."""

    hours: int
    role: str
    due_at: datetime
    missing: CalendarDataMissing | None = None


class TargetState(StrEnum):
    """Where a target stands at an instant (R-I1, R-I2, R-I4, R-I6)."""

    ON_TRACK = "on_track"  # open, before the warning instant
    WARNING = "warning"  # open, breach_warning_percent of the time used, not yet due
    BREACHED = "breached"  # open, due time passed
    MET = "met"  # done at or before the due time
    MISSED = "missed"  # done after the due time

    @property
    def is_open(self) -> bool:
        """True while the target is not done."""
        return self in (TargetState.ON_TRACK, TargetState.WARNING, TargetState.BREACHED)


def _default_duration(target: str, policy: Policy) -> timedelta:
    if target == "contact":
        return timedelta(minutes=policy.contact_target_minutes)
    if target == "diagnosis":
        return timedelta(hours=policy.diagnosis_target_hours)
    if target == "onsite_arrival":
        return timedelta(hours=policy.onsite_arrival_hours)
    if target == "replacement":
        return timedelta(hours=policy.replacement_target_hours)
    raise FactError(f"the {target!r} target needs hours or minutes")


def target_deadline(
    target: str,
    start: datetime,
    policy: Policy,
    calendar: OfficeCalendar,
    *,
    hours: int | float | None = None,
    minutes: int | None = None,
) -> Deadline:
    """Return the deadline of ``target``: ``start`` plus ``hours`` + ``minutes`` on the clock
    ``policy.clock_for`` names for it (D-7; "resolution" runs on the "escalation" clock).

    Calendar clock: elapsed hours. Office clock: office hours of ``calendar`` (R-I7); the
    deadline then names any year counted without holiday data (``missing``). With neither
    ``hours`` nor ``minutes`` the policy's own duration is used for "contact" (R-I1),
    "diagnosis" (R-I2), "onsite_arrival" (R-I6) and "replacement" (R-R3).
    Raises :class:`NaiveDatetimeError` for a naive ``start``, :class:`PolicyError` for an
    unknown target and :class:`FactError` for a negative or missing duration.
    """
    require_aware("start", start)
    if target not in _CLOCK_OF_TARGET:
        raise PolicyError(f"unknown target {target!r}; known: {', '.join(_CLOCK_OF_TARGET)}")
    if hours is None and minutes is None:
        duration = _default_duration(target, policy)
    else:
        duration = timedelta(
            hours=_number("hours", hours) if hours is not None else 0,
            minutes=_number("minutes", minutes) if minutes is not None else 0,
        )
    clock = policy.clock_for(_CLOCK_OF_TARGET[target])
    begin = start.astimezone(UTC)
    if clock == "calendar":
        return Deadline(target, begin, begin + duration, clock, None)
    due_at = calendar.add_office_hours(begin, duration)
    zone = calendar.policy.zone
    missing = calendar.missing_between(
        begin.astimezone(zone).date(), due_at.astimezone(zone).date()
    )
    return Deadline(target, begin, due_at, clock, missing)


def incident_deadlines(
    reported_at: datetime, priority: str, policy: Policy, calendar: OfficeCalendar
) -> dict[str, Deadline]:
    """Return the deadlines of an incident reported at ``reported_at``, keyed by
    ``INCIDENT_TARGETS``: "contact" (+ ``policy.contact_target_minutes``, R-I1),
    "diagnosis" (+ ``policy.diagnosis_target_hours``, R-I2) and "resolution"
    (+ ``policy.resolution_hours(priority)``, R-I4), each on its own clock (D-7).

    A priority change recomputes them from the same ``reported_at`` (D-7). Raises
    :class:`PolicyError` for an unknown priority and :class:`NaiveDatetimeError` for a
    naive ``reported_at``.
    """
    priority = _require_priority(priority)
    return {
        "contact": target_deadline(
            "contact", reported_at, policy, calendar, minutes=policy.contact_target_minutes
        ),
        "diagnosis": target_deadline(
            "diagnosis", reported_at, policy, calendar, hours=policy.diagnosis_target_hours
        ),
        "resolution": target_deadline(
            "resolution", reported_at, policy, calendar, hours=policy.resolution_hours(priority)
        ),
    }


def escalation_schedule(
    reported_at: datetime,
    priority: str,
    policy: Policy,
    calendar: OfficeCalendar,
    ladder: Iterable[tuple[int, str, str]] | None = None,
) -> list[Rung]:
    """Return the escalation rungs (R-I4) of an incident of ``priority``, earliest first.

    ``ladder`` holds rows (hours, priority, role) (default: ``policy.escalation_ladder``,
    SPEC's table); each rung is due ``hours`` after ``reported_at`` on the "escalation"
    clock (D-7). Raises :class:`PolicyError` for an unknown priority or an unusable
    ladder and :class:`NaiveDatetimeError` for a naive ``reported_at``.
    """
    priority = _require_priority(priority)
    if ladder is not None:
        policy = policy.with_overrides(escalation_ladder=tuple(ladder))
    rungs = []
    for hours, role in policy.escalation_steps(priority):
        deadline = target_deadline("escalation", reported_at, policy, calendar, hours=hours)
        rungs.append(Rung(hours, role, deadline.due_at, deadline.missing))
    return rungs


def onsite_arrival_deadline(
    requested_at: datetime, policy: Policy, calendar: OfficeCalendar
) -> Deadline:
    """Return when the engineer must arrive on site: ``requested_at`` plus
    ``policy.onsite_arrival_hours`` (8) on the "onsite_arrival" clock (R-I6, D-7).

    Raises :class:`NaiveDatetimeError` for a naive ``requested_at``.
    """
    return target_deadline(
        "onsite_arrival", requested_at, policy, calendar, hours=policy.onsite_arrival_hours
    )


def warning_at(deadline: Deadline, policy: Policy, calendar: OfficeCalendar) -> datetime:
    """Return the instant (UTC) at which ``policy.breach_warning_percent`` (80 %) of the
    target's time has passed, on the deadline's own clock: elapsed time on the calendar
    clock, office time between start and due on the office clock (issue 6, D-7, R-I7).

    Raises :class:`FactError` unless ``deadline`` is a :class:`Deadline`.
    """
    if not isinstance(deadline, Deadline):
        raise FactError(f"warning_at needs a Deadline, not {deadline!r}")
    percent = policy.breach_warning_percent
    start = deadline.start.astimezone(UTC)
    if deadline.clock == "office":
        used = calendar.office_time_between(start, deadline.due_at) * percent / 100
        return calendar.add_office_hours(start, used)
    return start + (deadline.due_at - start) * percent / 100


def target_state(
    deadline: Deadline,
    now: datetime,
    done_at: datetime | None,
    policy: Policy,
    calendar: OfficeCalendar,
) -> TargetState:
    """Return where the target of ``deadline`` stands at ``now`` (R-I1, R-I2, R-I4, R-I6).

    Done: MET when ``done_at <= due_at`` (exactly at the due time is met), else MISSED.
    Open: BREACHED once ``now`` is past ``due_at``, WARNING from :func:`warning_at` on,
    else ON_TRACK. Raises :class:`NaiveDatetimeError` for a naive instant.
    """
    require_aware("now", now)
    if done_at is not None:
        require_aware("done_at", done_at)
        return TargetState.MET if done_at <= deadline.due_at else TargetState.MISSED
    if now > deadline.due_at:
        return TargetState.BREACHED
    if now >= warning_at(deadline, policy, calendar):
        return TargetState.WARNING
    return TargetState.ON_TRACK


def _zone(zone: object) -> tzinfo:
    if isinstance(zone, str):
        try:
            return ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise FactError(f"unknown time zone {zone!r}") from exc
    if not isinstance(zone, tzinfo):
        raise FactError(f"zone must be a time zone, not {zone!r}")
    return zone


def brief_days(
    started_at: datetime, ended_at: datetime | None, now: datetime, zone: tzinfo | str
) -> list[date]:
    """Return the days (in ``zone``, China time) a daily brief is due for an on-site
    response (R-I6): ``started_at``'s local date through ``ended_at``'s (or, while open,
    ``now``'s) local date, inclusive; empty when that end is before the start.

    Raises :class:`NaiveDatetimeError` for a naive instant and :class:`FactError` for an
    unknown zone.
    """
    require_aware("started_at", started_at)
    require_aware("now", now)
    tz = _zone(zone)
    end = now if ended_at is None else require_aware("ended_at", ended_at)
    first, last = started_at.astimezone(tz).date(), end.astimezone(tz).date()
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def overdue_brief_days(
    started_at: datetime,
    ended_at: datetime | None,
    now: datetime,
    zone: tzinfo | str,
    filed: Iterable[date],
) -> list[date]:
    """Return the days of :func:`brief_days` whose brief is overdue at ``now`` (R-I6): the
    day has fully passed in ``zone`` (it is before ``now``'s local date) and no brief was
    ``filed`` for it. Raises as :func:`brief_days`.
    """
    days = brief_days(started_at, ended_at, now, zone)
    today = now.astimezone(_zone(zone)).date()
    done = set(filed)
    return [day for day in days if day < today and day not in done]


def contract_year(accepted_on: date, day: date, policy: Policy) -> tuple[date, date]:
    """Return the contract year (first, last day, inclusive) that contains ``day`` (R-C4).

    Contract years run 12 months each from the day after acceptance (R-C2), by the Month
    rule (acceptance 2026-03-10 -> 2026-03-11..2027-03-10, 2027-03-11..2028-03-10, ...).
    A ``day`` before the first year falls in the first year. ``policy`` is accepted for
    symmetry with the other rules; a contract year is always 12 months. Raises
    :class:`FactError` unless both arguments are dates.
    """
    require_date("accepted_on", accepted_on, FactError)
    require_date("day", day, FactError)
    start = accepted_on + _ONE_DAY
    months = (day.year - start.year) * 12 + day.month - start.month
    k = max(0, months // _CONTRACT_YEAR_MONTHS - 1)
    while last_covered_day(start, _CONTRACT_YEAR_MONTHS * (k + 1)) < day:
        k += 1
    first = start if k == 0 else last_covered_day(start, _CONTRACT_YEAR_MONTHS * k) + _ONE_DAY
    return first, last_covered_day(start, _CONTRACT_YEAR_MONTHS * (k + 1))


def is_visit_chargeable(kind: str, earlier_change_visits_in_year: int, policy: Policy) -> bool:
    """True when an on-site visit is charged (R-C4): a "change" visit (customer-side
    change) beyond ``policy.onsite_change_visits_per_year`` (1) in its contract year; an
    "emergency" visit (R-I6) never is.

    Raises :class:`FactError` for an unknown kind or a count that is not a whole
    number >= 0.
    """
    if kind not in _VISIT_KINDS:
        raise FactError(f"visit kind must be one of {', '.join(_VISIT_KINDS)}, not {kind!r}")
    count = earlier_change_visits_in_year
    if not is_whole_number(count) or count < 0:
        raise FactError(f"earlier_change_visits_in_year must be a whole number >= 0, not {count!r}")
    if kind == "emergency":
        return False
    return count >= policy.onsite_change_visits_per_year


def suggested_support_mode(priority: str) -> str:
    """Return the support mode R-I5 suggests for ``priority``: urgent -> "onsite",
    serious -> "remote", general -> "phone". Raises :class:`PolicyError` for an unknown
    priority."""
    return _SUPPORT_MODES[_require_priority(priority)]
