"""The office calendar as the admin keeps it (R-I7, D-7): extra holidays and working days
(``office_days``) that win over the ``chinesecalendar`` package, and the years the admin
declared complete (``office_calendar_years``).

``load_calendar`` turns both tables into a ``warranty.OfficeCalendar`` (cached on
``flask.g`` for the request, dropped when a use case here changes the tables). A year
that neither the package nor the admin covers is counted on plain weekdays; the calendar
says so with a ``CalendarDataMissing`` condition (``calendar_warnings``) instead of
guessing silently.

Changes are for administrators only (``ForbiddenError`` otherwise; the CLI, an actor
without a user, may act), are audited (R-R4) and commit once; bad input raises
``CalendarError`` (422) naming the field.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date

from flask import g, has_request_context
from flask_babel import gettext as _
from sqlalchemy import extract, select
from sqlalchemy.exc import IntegrityError

from rma.extensions import db
from rma.models import OfficeCalendarYear, OfficeDay, OfficeDayKind, Role
from rma.policy import current_policy
from rma.services import ForbiddenError, ValidationError, transaction
from rma.services.audit import Actor, record
from warranty.calendar import CalendarDataMissing, OfficeCalendar
from warranty.policy import Policy

NOTE_MAX = 200
YEAR_MIN = 2000
YEAR_MAX = 2200
_G_KEY = "_rma_office_calendar"
EDIT_ROLES = frozenset({Role.ADMIN})


class CalendarError(ValidationError, ValueError):
    """Bad input for the office calendar (422); ``field`` names the form field."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message, field)


# -- reading ------------------------------------------------------------------------------
def load_calendar(policy: Policy | None = None) -> OfficeCalendar:
    """The office calendar (R-I7) of ``policy`` (default: the app's) with the admin's
    table and confirmed years, cached on ``flask.g`` for the current request (outside a
    request, e.g. in a long-running ``rma tick --loop``, it is read fresh each time)."""
    policy = policy or current_policy()
    cached = g.get(_G_KEY) if has_request_context() else None
    if cached is not None and cached[0] is policy:
        return cached[1]
    overrides = {row.day: row.kind == OfficeDayKind.WORKDAY
                 for row in db.session.scalars(select(OfficeDay))}
    years = frozenset(db.session.scalars(select(OfficeCalendarYear.year)))
    calendar = OfficeCalendar(policy=policy, overrides=overrides, covered_years=years)
    if has_request_context():
        setattr(g, _G_KEY, (policy, calendar))
    return calendar


def forget_calendar() -> None:
    """Drop the cached calendar (after a change to its tables)."""
    g.pop(_G_KEY, None)


def calendar_warnings(today: date) -> list[CalendarDataMissing]:
    """R-I7: one condition per year of ``today``'s year and the next that has no holiday
    data (neither the package nor a year the admin confirmed), earliest first."""
    calendar = load_calendar()
    return [CalendarDataMissing((year,)) for year in (today.year, today.year + 1)
            if not calendar.has_data(year)]


def office_days(year: int | None = None) -> list[OfficeDay]:
    """The admin's office days, by date; only ``year``'s when given."""
    stmt = select(OfficeDay).order_by(OfficeDay.day)
    if year is not None:
        stmt = stmt.where(extract("year", OfficeDay.day) == int(year))
    return list(db.session.scalars(stmt))


def confirmed_years() -> list[OfficeCalendarYear]:
    """The years the admin declared complete, earliest first."""
    return list(db.session.scalars(select(OfficeCalendarYear).order_by(OfficeCalendarYear.year)))


# -- changes ------------------------------------------------------------------------------
def _ensure_admin(actor: Actor) -> None:
    user = actor.user
    if user is not None and (not user.is_active or user.role not in EDIT_ROLES):
        raise ForbiddenError(_("Only an administrator may change the office calendar."))


def _day(raw: object) -> date:
    if not isinstance(raw, date):
        raise CalendarError(_("Enter a date (YYYY-MM-DD)."), "day")
    if not YEAR_MIN <= raw.year <= YEAR_MAX:
        raise CalendarError(_("The year must be between %(min)d and %(max)d.",
                              min=YEAR_MIN, max=YEAR_MAX), "day")
    return raw


def _year(raw: object) -> int:
    try:
        year = int(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        year = None
    if year is None or isinstance(raw, bool) or not YEAR_MIN <= year <= YEAR_MAX:
        raise CalendarError(_("The year must be between %(min)d and %(max)d.",
                              min=YEAR_MIN, max=YEAR_MAX), "year")
    return year


def _note(raw: object) -> str:
    text = raw.strip() if isinstance(raw, str) else ""
    if raw is not None and not isinstance(raw, str):
        raise CalendarError(_("This value must be text."), "note")
    if len(text) > NOTE_MAX:
        raise CalendarError(_("At most %(max)d characters.", max=NOTE_MAX), "note")
    return text


def _kind(raw: object) -> OfficeDayKind:
    try:
        return OfficeDayKind(str(raw).strip().lower())
    except ValueError:
        raise CalendarError(_("Choose a holiday or a working day."), "kind") from None


@contextmanager
def _saving() -> Iterator[None]:
    """A ``transaction`` that changes the calendar: the cached one is forgotten after it,
    committed or rolled back."""
    try:
        with transaction():
            yield
    finally:
        forget_calendar()


def set_office_day(actor: Actor, day: date, kind: str, note: str = "") -> OfficeDay:
    """Add or change the admin's entry for ``day`` (R-I7): ``holiday`` or ``workday``
    (a make-up working day); it wins over the holiday package. Audited; commits."""
    _ensure_admin(actor)
    day, wanted, note = _day(day), _kind(kind), _note(note)
    try:
        with _saving():
            row = db.session.scalar(select(OfficeDay).where(OfficeDay.day == day))
            before = row.as_audit() if row is not None else None
            if row is None:
                row = OfficeDay(day=day, kind=wanted, note=note)
                db.session.add(row)
            else:
                row.kind, row.note = wanted, note
            db.session.flush()
            record(actor, "office_day.set", "office_day", day.isoformat(), before,
                   row.as_audit())
    except IntegrityError:  # the same day added at the same moment by someone else
        raise CalendarError(_("%(day)s was changed at the same moment; try again.",
                              day=day.isoformat()), "day") from None
    return row


def remove_office_day(actor: Actor, day: date) -> None:
    """Remove the admin's entry for ``day``: the package (or plain weekdays) decides it
    again. ``CalendarError`` (field ``day``) when there is none. Audited; commits."""
    _ensure_admin(actor)
    day = _day(day)
    row = db.session.scalar(select(OfficeDay).where(OfficeDay.day == day))
    if row is None:
        raise CalendarError(_("%(day)s has no entry in the office calendar.",
                              day=day.isoformat()), "day")
    with _saving():
        before = row.as_audit()
        db.session.delete(row)
        record(actor, "office_day.removed", "office_day", day.isoformat(), before, None)


def confirm_year(actor: Actor, year: int, note: str = "") -> OfficeCalendarYear:
    """Declare ``year``'s holidays and make-up days entered in full (R-I7): the calendar
    then has data for it and shows no warning. Confirming again updates the note.
    Audited; commits."""
    _ensure_admin(actor)
    year, note = _year(year), _note(note)
    user_id = actor.user.id if actor.user is not None else None
    try:
        with _saving():
            row = db.session.get(OfficeCalendarYear, year)
            before = {"year": year, "note": row.note} if row is not None else None
            if row is None:
                row = OfficeCalendarYear(year=year, note=note, confirmed_by_id=user_id)
                db.session.add(row)
            else:
                row.note, row.confirmed_by_id = note, user_id
            db.session.flush()
            record(actor, "office_year.confirmed", "office_calendar_year", year, before,
                   {"year": year, "note": note})
    except IntegrityError:
        raise CalendarError(_("%(year)d was confirmed at the same moment; try again.",
                              year=year), "year") from None
    return row


def unconfirm_year(actor: Actor, year: int) -> None:
    """Withdraw the confirmation of ``year`` (``CalendarError`` when it was not
    confirmed). Audited; commits."""
    _ensure_admin(actor)
    year = _year(year)
    row = db.session.get(OfficeCalendarYear, year)
    if row is None:
        raise CalendarError(_("%(year)d is not confirmed.", year=year), "year")
    with _saving():
        before = {"year": year, "note": row.note}
        db.session.delete(row)
        record(actor, "office_year.unconfirmed", "office_calendar_year", year, before, None)


__all__ = ["CalendarError", "calendar_warnings", "confirm_year", "confirmed_years",
           "forget_calendar", "load_calendar", "office_days", "remove_office_day",
           "set_office_day", "unconfirm_year"]
