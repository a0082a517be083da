"""Administration of incidents (issue 6): the office calendar (R-I7: extra holidays and
make-up working days that win over the ``chinesecalendar`` package, years declared
complete, the warning for a year without holiday data) and the escalation ladder (R-I4:
hours per priority × role, reset to SPEC's table; who holds each role, with a deputy;
account managers per customer).

Admins change these; managers may look. Views translate: form → one service call
(``rma.services.office_calendar``, ``rma.services.escalation_setup``) → flash and
redirect, or the page again with the refusal beside its field (nothing saved).
"""

from __future__ import annotations

from datetime import date
from functools import partial

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from wtforms.fields.choices import SelectChoice as C

from rma import clock
from rma.extensions import db
from rma.forms_support import (
    ESCALATION_ROLE_WORDS,
    OFFICE_DAY_WORDS,
    PRIORITY_WORDS,
    ConfirmYearForm,
    HolderForm,
    LadderForm,
    OfficeDayForm,
    RemoveDayForm,
    RemoveHolderForm,
    ResetLadderForm,
    UnconfirmYearForm,
    ladder_field_name,
)
from rma.models import Customer, Role, User
from rma.services import ServiceError
from rma.services import escalation_setup as setup
from rma.services import office_calendar as calendar_service
from rma.services.audit import Actor
from rma.views import refused, roles_required
from warranty.calendar import chinese_calendar_lookup
from warranty.policy import PRIORITIES, ROLES

bp = Blueprint("admin_incidents", __name__, url_prefix="/admin")

VIEW = (Role.ADMIN, Role.MANAGER)
EDIT = (Role.ADMIN,)
YEAR_MIN, YEAR_MAX = 2000, 2200


def _invalid(form) -> int:
    if not form.errors:
        abort(400)
    return 422


# -- office calendar (R-I7) -------------------------------------------------------------
def _year() -> int:
    try:
        year = int(request.values.get("year", ""))
    except ValueError:
        return clock.today().year
    return year if YEAR_MIN <= year <= YEAR_MAX else clock.today().year


def _package_has(year: int) -> bool:
    return chinese_calendar_lookup(date(year, 6, 1)) is not None


def _render_calendar(year: int, bound: dict | None = None, error: str | None = None,
                     status: int = 200):
    bound = bound or {}
    today = clock.today()
    day_form = bound.get("day") or OfficeDayForm(formdata=None, prefix="day")
    year_form = bound.get("year") or ConfirmYearForm(formdata=None, prefix="year")
    if year_form.year.data is None and not year_form.errors:
        year_form.year.data = year
    confirmed = {row.year: row for row in calendar_service.confirmed_years()}
    years = sorted({today.year - 1, today.year, today.year + 1, year, *confirmed})
    coverage = [{"year": y, "package": _package_has(y), "confirmed": confirmed.get(y)}
                for y in years]
    return render_template(
        "admin/calendar.html", year=year, days=calendar_service.office_days(year),
        warnings=calendar_service.calendar_warnings(today), coverage=coverage,
        day_form=day_form, year_form=year_form, remove_form=RemoveDayForm(formdata=None),
        unconfirm_form=UnconfirmYearForm(formdata=None), error=error,
        kind_words=OFFICE_DAY_WORDS, may_edit=_may_edit(), today=today,
    ), status


def _may_edit() -> bool:
    from flask_login import current_user

    return current_user.has_role(*EDIT)


@bp.get("/calendar")
@roles_required(*VIEW)
def calendar():
    """The admin's office days for a year (``?year=``), the years' holiday data, and
    the warning for this year or the next when neither the package nor the admin covers
    it (R-I7)."""
    return _render_calendar(_year())


#: Forms posted from a button in a table row: no fields shown, refusals at the top.
ROW_FORMS = ("remove", "unconfirm")


def _row_error(key: str, form, error: str | None) -> str | None:
    if error is None and key in ROW_FORMS:
        return " ".join(str(e) for errors in form.errors.values() for e in errors) or None
    return error


def _action(key: str, form, call, message: str, render, done_url: str):
    """Validate ``form`` and ``call(form)``: on success flash ``message`` and redirect to
    ``done_url``; otherwise ``render({key: form}, error, status)`` with the refusal."""
    error = None
    if not form.validate_on_submit():
        status = _invalid(form)
        error = _row_error(key, form, None)
    else:
        try:
            call(form)
        except ServiceError as refusal:
            error, status = refused(form, refusal)
            error = _row_error(key, form, error)
        else:
            flash(message, "success")
            return redirect(done_url)
    return render({key: form}, error, status)


def _calendar_action(key: str, form, call, message: str, year: int):
    return _action(key, form, call, message, partial(_render_calendar, year),
                   url_for("admin_incidents.calendar", year=year))


@bp.post("/calendar/days")
@roles_required(*EDIT)
def add_day():
    form = OfficeDayForm(prefix="day")
    year = form.day.data.year if form.day.data else _year()
    return _calendar_action("day", form, lambda f: calendar_service.set_office_day(
        Actor.current(), f.day.data, f.kind.data or "", f.note.data or ""),
        _("Office calendar day saved."), year)


@bp.post("/calendar/days/remove")
@roles_required(*EDIT)
def remove_day():
    form = RemoveDayForm()
    year = form.day.data.year if form.day.data else _year()
    return _calendar_action("remove", form, lambda f: calendar_service.remove_office_day(
        Actor.current(), f.day.data), _("Office calendar day removed."), year)


@bp.post("/calendar/years")
@roles_required(*EDIT)
def confirm_year():
    form = ConfirmYearForm(prefix="year")
    year = form.year.data if isinstance(form.year.data, int) else _year()
    return _calendar_action("year", form, lambda f: calendar_service.confirm_year(
        Actor.current(), f.year.data, f.note.data or ""),
        _("The year is confirmed complete: no more warning for it."), year)


@bp.post("/calendar/years/remove")
@roles_required(*EDIT)
def unconfirm_year():
    form = UnconfirmYearForm()
    year = form.year.data if isinstance(form.year.data, int) else _year()
    return _calendar_action("unconfirm", form, lambda f: calendar_service.unconfirm_year(
        Actor.current(), f.year.data), _("The year's confirmation was withdrawn."), year)


# -- escalation ladder and holders (R-I4) -----------------------------------------------
def _staff_users() -> list[User]:
    return list(db.session.scalars(
        select(User).where(User.role != Role.CUSTOMER, User.is_active_flag.is_(True))
        .order_by(User.email)))


def _ladder_form(formdata=None) -> LadderForm:
    form = LadderForm(formdata=formdata) if formdata is not None else LadderForm(formdata=None)
    if formdata is None:
        for hours, priority, role in setup.current_ladder():
            form.cell(priority, role).data = hours
    return form


def _holder_form(formdata=None) -> HolderForm:
    form = HolderForm(formdata=formdata) if formdata is not None else HolderForm(formdata=None)
    users = _staff_users()
    people = [C(str(u.id), f"{u.email} ({u.role})") for u in users]
    form.user_id.choices = [C("", _l("Choose a staff user")), *people]
    form.deputy_id.choices = [C("", _l("No deputy")), *people]
    customers = db.session.scalars(select(Customer).order_by(Customer.name))
    form.customer_id.choices = [C("", _l("All customers (global)")),
                                *(C(str(c.id), f"{c.name} · {c.contract_number}")
                                  for c in customers)]
    return form


def _render_escalation(bound: dict | None = None, error: str | None = None,
                       status: int = 200):
    bound = bound or {}
    holders = setup.holders()
    return render_template(
        "admin/escalation.html",
        ladder_form=bound.get("ladder") or _ladder_form(),
        holder_form=bound.get("holder") or _holder_form(),
        reset_form=ResetLadderForm(formdata=None), remove_form=RemoveHolderForm(formdata=None),
        holders=holders, is_default=setup.ladder_is_default(), priorities=PRIORITIES,
        roles=ROLES, field_name=ladder_field_name, priority_words=PRIORITY_WORDS,
        role_words=ESCALATION_ROLE_WORDS, missing_roles=_missing_roles(holders),
        error=error, may_edit=_may_edit(),
    ), status


def _missing_roles(holders) -> list[str]:
    """Roles on the ladder with no global holder (no one would be told, R-I4)."""
    used = {role for _hours, _priority, role in setup.current_ladder()}
    held = {h.role for h in holders if h.customer_id is None}
    return [role for role in ROLES if role in used and role not in held]


@bp.get("/escalation")
@roles_required(*VIEW)
def escalation():
    """The ladder as a grid (priority × role → hours since the report) and the role
    holders with their deputies."""
    return _render_escalation()


def _escalation_action(key: str, form, call, message: str):
    return _action(key, form, call, message, _render_escalation,
                   url_for("admin_incidents.escalation"))


@bp.post("/escalation/ladder")
@roles_required(*EDIT)
def save_ladder():
    form = _ladder_form(request.form)
    return _escalation_action("ladder", form, lambda f: setup.save_ladder(
        Actor.current(), f.rows()), _("Escalation ladder saved."))


@bp.post("/escalation/ladder/reset")
@roles_required(*EDIT)
def reset_ladder():
    form = ResetLadderForm()
    return _escalation_action("reset", form, lambda f: setup.reset_ladder(Actor.current()),
                              _("Escalation ladder reset to the table of the service "
                                "commitment (R-I4)."))


def _int(value) -> int | None:
    return int(value) if str(value or "").isdigit() else None


@bp.post("/escalation/holders")
@roles_required(*EDIT)
def set_holder():
    form = _holder_form(request.form)
    return _escalation_action("holder", form, lambda f: setup.set_holder(
        Actor.current(), f.role.data or "", _int(f.user_id.data),
        deputy_id=_int(f.deputy_id.data), customer_id=_int(f.customer_id.data)),
        _("Escalation role holder saved."))


@bp.post("/escalation/holders/<int:holder_id>/remove")
@roles_required(*EDIT)
def remove_holder(holder_id: int):
    form = RemoveHolderForm()
    return _escalation_action("remove", form, lambda f: setup.remove_holder(
        Actor.current(), holder_id), _("Escalation role holder removed."))
