"""Staff incident pages under ``/staff/support`` (issue 6): the engineer's queue sorted by
time to the next breach, recording a phone call, the incident page with its clocks
(R-I1, R-I2, resolution, R-I6 arrival; calendar or office hours, D-7, R-I7), escalation
history (R-I4), on-site visits with their daily briefs (R-I6, R-C4) and timeline, the
manager's board, the monthly compliance table (CSV/XLSX) and the notifications.

Support engineers, managers and admins see the incident pages; managers and admins the
board and compliance table; every staff user their notifications (an escalation role may
be held by anyone on the staff). Roles are checked here and again by the services.
Views translate: form → one ``rma.services.incidents`` call → flash and redirect, or the
page again with the refusal beside its field (a wrong state answers 409). Times are
China time.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import (
    Blueprint,
    abort,
    flash,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import select
from wtforms.fields.choices import SelectChoice as C

from rma import clock
from rma.extensions import db
from rma.forms_support import (
    CHANNEL_WORDS,
    ESCALATION_ROLE_WORDS,
    MODE_WORDS,
    PRIORITY_DEFINITIONS,
    PRIORITY_WORDS,
    VISIT_KIND_WORDS,
    ArrivalForm,
    AssignForm,
    BriefForm,
    ComplianceFilterForm,
    ContactForm,
    DiagnosisForm,
    EndVisitForm,
    IncidentForm,
    MarkReadForm,
    NoteForm,
    OnsiteForm,
    PriorityForm,
    ResolveForm,
    SupportModeForm,
)
from rma.models import Customer, Incident, OnsiteVisit, Role, User
from rma.services import ServiceError
from rma.services.audit import Actor
from rma.services.incidents import (
    CLOCK_LABELS,
    STATUS_LABELS,
    TARGET_LABELS,
    TARGET_STATE_LABELS,
    IncidentError,
    IncidentStateError,
)
from rma.views import refused, roles_required

bp = Blueprint("support", __name__, url_prefix="/staff/support")

#: Who sees the incident pages and acts on incidents (the services check again).
VIEW = (Role.SUPPORT, Role.MANAGER, Role.ADMIN)
#: Who sees the board and the compliance table.
MANAGE = (Role.MANAGER, Role.ADMIN)
#: Who has notifications (any staff user may hold an escalation role).
ANY_STAFF = (Role.SUPPORT, Role.WAREHOUSE, Role.FINANCE, Role.MANAGER, Role.ADMIN)
#: Who may be assigned as the engineer (R-I1).
ENGINEERS = (Role.SUPPORT, Role.MANAGER)
EXPORT_FORMATS = ("csv", "xlsx")
#: The services' field names → this page's form fields.
FIELD_ALIASES = {"engineer_id": "engineer", "model_codes": "models", "customer": "contract"}
#: The forms of the incident page, by action (each posts to ``support.<action>``).
INCIDENT_FORMS = {
    "contact": ContactForm, "assign": AssignForm, "diagnose": DiagnosisForm,
    "priority": PriorityForm, "support_mode": SupportModeForm, "onsite": OnsiteForm,
    "resolve": ResolveForm, "note": NoteForm,
}
VISIT_FORMS = {"arrival": ArrivalForm, "brief": BriefForm, "end_visit": EndVisitForm}

TARGET_WORDS = TARGET_LABELS
STATE_WORDS = TARGET_STATE_LABELS
STATUS_WORDS = STATUS_LABELS
CLOCK_WORDS = CLOCK_LABELS


# -- template helpers -------------------------------------------------------------------
@bp.app_template_global()
def sup_sees() -> bool:
    """Whether the viewer sees the incident pages (the staff navigation's link)."""
    return current_user.is_authenticated and current_user.has_role(*VIEW)


@bp.app_template_global()
def sup_manages() -> bool:
    return current_user.is_authenticated and current_user.has_role(*MANAGE)


@bp.app_template_global()
def sup_unread() -> int:
    """The viewer's unread notifications (0 for a customer or a visitor)."""
    if not (current_user.is_authenticated and current_user.is_staff):
        return 0
    from rma.services import notifications

    return notifications.unread_count(current_user)


@bp.app_template_global()
def sup_word(kind: str, value) -> str:
    """A code in the reader's words: priority, role, mode, target, state, status, clock,
    channel, visit kind."""
    words = {
        "priority": PRIORITY_WORDS, "role": ESCALATION_ROLE_WORDS, "mode": MODE_WORDS,
        "target": TARGET_WORDS, "state": STATE_WORDS, "status": STATUS_WORDS,
        "clock": CLOCK_WORDS, "channel": CHANNEL_WORDS, "visit_kind": VISIT_KIND_WORDS,
        "definition": PRIORITY_DEFINITIONS,
    }[kind]
    return str(words.get(str(value), value or ""))


@bp.app_template_global()
def sup_left(remaining: timedelta | None) -> str:
    """Time left as "3 h 05 min left", or "1 h 10 min overdue" once passed."""
    if remaining is None:
        return "—"
    minutes = int(abs(remaining.total_seconds()) // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        span = _("%(d)d d %(h)d h", d=days, h=hours)
    elif hours:
        span = _("%(h)d h %(m)02d min", h=hours, m=minutes)
    else:
        span = _("%(m)d min", m=minutes)
    if remaining < timedelta(0):
        return _("%(span)s overdue", span=span)
    return _("%(span)s left", span=span)


@bp.app_template_global()
def sup_state(state) -> str:
    """A target state's code ("on_track", "warning", ...) for CSS classes and tests."""
    return str(getattr(state, "value", state) or "")


@bp.app_template_global()
def sup_notification_text(notice) -> str:
    from rma.services.notifications import notification_text

    return notification_text(notice)


# -- helpers ----------------------------------------------------------------------------
@dataclass(frozen=True)
class _Refusal:
    message: str
    field: str | None
    status: int


def _refused(form, error: Exception) -> tuple[str | None, int]:
    """A service refusal beside its field (``rma.views.refused``): a wrong state is 409,
    bad input 422, another customer's or unknown record 404."""
    status = getattr(error, "status", None)
    if not isinstance(status, int):
        status = 409 if isinstance(error, IncidentStateError) else 422
    message = getattr(error, "message", None) or str(error)
    field = getattr(error, "field", None)
    return refused(form, _Refusal(str(message), FIELD_ALIASES.get(field, field), status))


def _errors():
    """The refusals the incident services raise."""
    return (IncidentError, IncidentStateError, ServiceError)


def _invalid(form) -> int:
    """A posted form that did not validate: the page again with the errors beside the
    fields (a form with no field error failed its CSRF check: 400)."""
    if not form.errors:
        abort(400)
    return 422


def _aware(local: datetime | None) -> datetime | None:
    """A China-time value typed in a form as an aware instant."""
    return None if local is None else local.replace(tzinfo=clock.local_zone())


def _engineers() -> list[User]:
    return list(db.session.scalars(
        select(User).where(User.role.in_(ENGINEERS), User.is_active_flag.is_(True))
        .order_by(User.email)))


def _engineer_choices(engineers, blank: bool = False) -> list[C]:
    choices = [C(str(u.id), u.email) for u in engineers]
    return [C("", _l("Me")), *choices] if blank else choices


def _id(value) -> int | None:
    return int(value) if str(value or "").isdigit() else None


def _incident_or_404(number: str) -> Incident:
    from rma.services.incidents import get_incident

    incident = get_incident(number.strip().upper(), current_user)
    if incident is None:
        abort(404)
    return incident


def _visit_or_404(incident: Incident, visit_id: int) -> OnsiteVisit:
    visit = db.session.get(OnsiteVisit, visit_id)
    if visit is None or visit.incident_id != incident.id:
        abort(404)
    return visit


# -- queue ------------------------------------------------------------------------------
@bp.get("/")
@roles_required(*VIEW)
def queue():
    """Open incidents sorted by the time to their next breach (``?mine=1``: mine only)."""
    from rma.services.incidents import engineer_queue

    mine = request.args.get("mine") == "1"
    now = clock.now()
    rows = engineer_queue(current_user, now, mine_only=mine)
    return render_template("support/queue.html", rows=rows, mine=mine, now=now)


# -- recording a phone call -------------------------------------------------------------
def _split_serials(text: str) -> list[str]:
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


def _split_codes(text: str) -> list[str]:
    return [code for code in re.split(r"[\s,;，；]+", text or "") if code]


@bp.route("/incidents/new", methods=["GET", "POST"])
@roles_required(*VIEW)
def new_incident():
    """Record a phone call or an e-mail: the customer by contract number, the priority
    (R-I3), what is affected and when the customer reported (every clock counts from
    it). The page shows the deadlines once recorded."""
    from rma.services.catalog import customer_by_contract
    from rma.services.incidents import report_incident

    form = IncidentForm()
    if request.method == "GET":
        form.channel.data = "phone"
        return render_template("support/new.html", form=form, error=None)
    error, status = None, 200
    if not form.validate_on_submit():
        status = _invalid(form)
    else:
        try:
            customer = customer_by_contract(form.contract.data)
        except ServiceError as problem:
            error, status = refused(form, _Refusal(problem.message, "contract", 422))
        else:
            try:
                incident = report_incident(
                    Actor.current(), customer=customer, priority=form.priority.data,
                    title=form.title.data or "", description=form.description.data or "",
                    serials=_split_serials(form.serials.data),
                    model_codes=_split_codes(form.models.data), channel=form.channel.data,
                    reporter_name=form.reporter_name.data or "",
                    reporter_contact=form.reporter_contact.data or "",
                    reported_at=_aware(form.reported_at.data))
            except _errors() as problem:
                error, status = _refused(form, problem)
            else:
                flash(_("Incident %(number)s recorded; contact the customer by %(due)s "
                        "(China time).", number=incident.number,
                        due=clock.to_local(incident.contact_due_at).strftime("%Y-%m-%d %H:%M")),
                      "success")
                return redirect(url_for("support.incident", number=incident.number))
    return render_template("support/new.html", form=form, error=error), status


# -- the incident page ------------------------------------------------------------------
def _incident_forms(incident: Incident, bound: dict | None = None) -> dict:
    """Every action form of the page, fresh ones showing the incident's current values;
    ``bound`` holds the one just posted (with its input and errors)."""
    bound = bound or {}
    forms: dict = {}
    for key, form_class in INCIDENT_FORMS.items():
        forms[key] = bound.get(key) or _fresh(form_class(formdata=None, prefix=key), key,
                                              incident)
    for visit in incident.visits:
        for key, form_class in VISIT_FORMS.items():
            name = (key, visit.id)
            forms[name] = bound.get(name) or _fresh(
                form_class(formdata=None, prefix=f"{key}-{visit.id}"), key, incident)
    _fill_choices(forms, _engineers())
    return forms


def _fresh(form, key: str, incident: Incident):
    """A form not posted: preset with the incident's current values."""
    if key == "assign" and incident.engineer_id:
        form.engineer.data = str(incident.engineer_id)
    elif key == "priority":
        form.priority.data = str(incident.priority)
    elif key == "support_mode":
        form.mode.data = str(incident.support_mode)
    elif key == "brief":
        form.day.data = clock.today()
    return form


def _fill_choices(forms: dict, engineers: list[User]) -> None:
    for key in ("contact", "assign"):
        form = forms.get(key)
        if form is not None:
            form.engineer.choices = _engineer_choices(engineers, blank=key == "contact")


def _visit_views(incident: Incident, now: datetime) -> list[dict]:
    """Each visit with its filed briefs and the days whose brief is overdue (R-I6)."""
    from warranty import incidents as rules

    zone = clock.local_zone()
    views = []
    for visit in incident.visits:
        filed = [brief.day for brief in visit.briefs]
        started = visit.arrived_at
        overdue = (rules.overdue_brief_days(started, visit.ended_at, now, zone, filed)
                   if started is not None else [])
        views.append({"visit": visit, "overdue": overdue,
                      "arrival_late": visit.arrived_at is None and now > visit.arrival_due_at})
    return views


def _render_incident(incident: Incident, bound: dict | None = None, error: str | None = None,
                     status: int = 200):
    from rma.services.incidents import incident_clocks, timeline

    now = clock.now()
    clocks = incident_clocks(incident, now)
    events = timeline(incident, current_user)
    return render_template(
        "support/incident.html", incident=incident, clocks=clocks, now=now,
        forms=_incident_forms(incident, bound), error=error, events=events,
        visits=_visit_views(incident, now),
        is_open=str(incident.status) != "resolved",
        open_visit=next((v for v in incident.visits if v.ended_at is None), None),
    ), status


@bp.get("/incidents/<number>")
@roles_required(*VIEW)
def incident(number: str):
    """An incident's clocks, escalation history, on-site visits, timeline and actions."""
    return _render_incident(_incident_or_404(number))


def _act(number: str, key: str, call, message, visit_id: int | None = None):
    """Run one action posted from the incident page: the page again with the refusal
    beside its field, or a flash and back to the page."""
    found = _incident_or_404(number)
    if visit_id is not None:
        _visit_or_404(found, visit_id)
        form = VISIT_FORMS[key](prefix=f"{key}-{visit_id}")
        bound_key = (key, visit_id)
    else:
        form = INCIDENT_FORMS[key](prefix=key)
        bound_key = key
    _fill_choices({bound_key: form}, _engineers())
    error = None
    if not form.validate_on_submit():
        status = _invalid(form)
    else:
        try:
            result = call(found, form)
        except PermissionError:
            db.session.rollback()
            abort(403)
        except _errors() as problem:
            error, status = _refused(form, problem)
            found = _incident_or_404(number)
        else:
            flash(message(result), "success")
            return redirect(url_for("support.incident", number=found.number,
                                    _anchor=f"action-{key}"))
    return _render_incident(found, {bound_key: form}, error, status)


def _engineer_id(form) -> int | None:
    return _id(form.engineer.data)


@bp.post("/incidents/<number>/contact")
@roles_required(*VIEW)
def contact(number: str):
    """R-I1: the customer was contacted; the engineer (default: me) is assigned."""
    from rma.services.incidents import contact_customer

    return _act(number, "contact", lambda i, f: contact_customer(
        Actor.current(), i, engineer_id=_engineer_id(f), note=f.note.data or ""),
        lambda i: _("%(number)s: customer contacted, engineer %(who)s assigned.",
                    number=i.number, who=i.engineer.email if i.engineer else "—"))


@bp.post("/incidents/<number>/assign")
@roles_required(*VIEW)
def assign(number: str):
    from rma.services.incidents import assign_engineer

    def call(found, form):
        engineer_id = _engineer_id(form)
        if engineer_id is None:
            raise _field_error("engineer", _("Choose an engineer."))
        return assign_engineer(Actor.current(), found, engineer_id)

    return _act(number, "assign", call, lambda i: _(
        "%(number)s: engineer %(who)s assigned.", number=i.number,
        who=i.engineer.email if i.engineer else "—"))


def _field_error(field: str, message: str) -> Exception:
    return IncidentError(message, field=field)


@bp.post("/incidents/<number>/diagnose")
@roles_required(*VIEW)
def diagnose(number: str):
    """R-I2: the diagnosis, e-mailed to the customer."""
    from rma.services.incidents import record_diagnosis

    return _act(number, "diagnose", lambda i, f: record_diagnosis(
        Actor.current(), i, f.diagnosis.data or ""),
        lambda i: _("%(number)s: diagnosis given.", number=i.number))


@bp.post("/incidents/<number>/priority")
@roles_required(*VIEW)
def priority(number: str):
    """D-7: every deadline is recomputed from the report time."""
    from rma.services.incidents import change_priority

    return _act(number, "priority", lambda i, f: change_priority(
        Actor.current(), i, f.priority.data or "", f.reason.data or ""),
        lambda i: _("%(number)s: priority now %(priority)s; resolution due by %(due)s "
                    "(China time).", number=i.number, priority=sup_word("priority", i.priority),
                    due=clock.to_local(i.resolution_due_at).strftime("%Y-%m-%d %H:%M")))


@bp.post("/incidents/<number>/support-mode")
@roles_required(*VIEW)
def support_mode(number: str):
    """R-I5."""
    from rma.services.incidents import set_support_mode

    return _act(number, "support_mode", lambda i, f: set_support_mode(
        Actor.current(), i, f.mode.data or "", f.note.data or ""),
        lambda i: _("%(number)s: support mode %(mode)s.", number=i.number,
                    mode=sup_word("mode", i.support_mode)))


@bp.post("/incidents/<number>/onsite")
@roles_required(*VIEW)
def onsite(number: str):
    """R-I6 / R-C4: request an on-site visit; the arrival clock starts."""
    from rma.services.incidents import request_onsite

    def done(visit):
        text = _("On-site visit requested; arrival due by %(due)s (China time).",
                 due=clock.to_local(visit.arrival_due_at).strftime("%Y-%m-%d %H:%M"))
        if visit.chargeable:
            text += " " + _("Chargeable: the free visit of this contract year is used (R-C4).")
        return text

    return _act(number, "onsite", lambda i, f: request_onsite(
        Actor.current(), i, kind=f.kind.data or "emergency",
        requested_at=_aware(f.requested_at.data), site_address=f.site_address.data or "",
        note=f.note.data or ""), done)


@bp.post("/incidents/<number>/visits/<int:visit_id>/arrival")
@roles_required(*VIEW)
def arrival(number: str, visit_id: int):
    from rma.services.incidents import record_arrival

    return _act(number, "arrival", lambda i, f: record_arrival(
        Actor.current(), _visit_or_404(i, visit_id), _aware(f.arrived_at.data)),
        lambda v: _("Arrival on site recorded."), visit_id=visit_id)


@bp.post("/incidents/<number>/visits/<int:visit_id>/brief")
@roles_required(*VIEW)
def brief(number: str, visit_id: int):
    """R-I6: the day's brief."""
    from rma.services.incidents import file_daily_brief

    return _act(number, "brief", lambda i, f: file_daily_brief(
        Actor.current(), _visit_or_404(i, visit_id), f.day.data, f.text.data or ""),
        lambda b: _("Daily brief for %(day)s filed.", day=b.day.isoformat()),
        visit_id=visit_id)


@bp.post("/incidents/<number>/visits/<int:visit_id>/end")
@roles_required(*VIEW)
def end_visit(number: str, visit_id: int):
    """R-I6: end with the final report (sent to the customer as a PDF)."""
    from rma.services.incidents import end_onsite

    return _act(number, "end_visit", lambda i, f: end_onsite(
        Actor.current(), _visit_or_404(i, visit_id), f.final_report.data or ""),
        lambda v: _("On-site response ended; the final report was sent to the customer."),
        visit_id=visit_id)


@bp.post("/incidents/<number>/resolve")
@roles_required(*VIEW)
def resolve(number: str):
    from rma.services.incidents import resolve_incident

    return _act(number, "resolve", lambda i, f: resolve_incident(
        Actor.current(), i, f.resolution.data or ""),
        lambda i: _("%(number)s resolved.", number=i.number))


@bp.post("/incidents/<number>/note")
@roles_required(*VIEW)
def note(number: str):
    from rma.services.incidents import add_note

    return _act(number, "note", lambda i, f: add_note(
        Actor.current(), i, f.text.data or "", bool(f.public.data)),
        lambda e: _("Note added."))


@bp.get("/visits/<int:visit_id>/report.pdf")
@roles_required(*VIEW)
def final_report_pdf(visit_id: int):
    """The final emergency response report (R-I6) of an ended visit, as a PDF."""
    from rma.documents.incident import render_onsite_report
    from rma.services.incidents import final_report_document, get_visit, report_filename

    visit = get_visit(visit_id, current_user)
    if visit is None or visit.ended_at is None:
        abort(404)
    data = render_onsite_report(final_report_document(visit))
    response = send_file(io.BytesIO(data), mimetype="application/pdf", as_attachment=False,
                         download_name=report_filename(visit), max_age=0)
    response.headers["Cache-Control"] = "private, no-store"
    return response


# -- manager's board --------------------------------------------------------------------
@bp.get("/board")
@roles_required(*MANAGE)
def board():
    """Open incidents by priority, with the escalation rung each has reached (R-I4)."""
    from rma.services.incidents import manager_board

    now = clock.now()
    groups = manager_board(now)
    return render_template("support/board.html", groups=groups, now=now,
                           priorities=list(PRIORITY_WORDS))


# -- monthly compliance -----------------------------------------------------------------
COMPLIANCE_TARGETS = ("contact", "diagnosis", "resolution", "onsite_arrival")


@dataclass(frozen=True)
class ComplianceTable:
    """The compliance rows as an export table (``rma.exports``)."""

    key: str
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple, ...]


def _target_counts(row, target: str) -> tuple[int, int, int]:
    """(met, missed, open) of one target in a compliance row."""
    tally = row.targets.get(target)
    return (tally.met, tally.missed, tally.open) if tally is not None else (0, 0, 0)


def _compliance_table(month: str, rows) -> ComplianceTable:
    columns = [_("Customer"), _("Contract"), _("Priority"), _("Incidents")]
    for target in COMPLIANCE_TARGETS:
        word = sup_word("target", target)
        columns += [_("%(target)s: met", target=word), _("%(target)s: missed", target=word),
                    _("%(target)s: open", target=word)]
    columns.append(_("Escalations"))
    cells = []
    for row in rows:
        line = [row.customer_name, row.contract_number, sup_word("priority", row.priority),
                row.incidents]
        for target in COMPLIANCE_TARGETS:
            line += list(_target_counts(row, target))
        line.append(row.escalations)
        cells.append(tuple(line))
    return ComplianceTable(key=f"incident-compliance-{month}",
                           title=_("Incident compliance %(month)s", month=month),
                           columns=tuple(columns), rows=tuple(cells))


@bp.get("/compliance")
@roles_required(*MANAGE)
def compliance():
    """Per customer and priority, for incidents reported in the month (China time): how
    many, each target met / missed / still open, and escalations; ``?format=csv|xlsx``."""
    from rma.exports import export_response
    from rma.services.incidents import compliance as compliance_rows

    form = ComplianceFilterForm(request.args)
    customers = list(db.session.scalars(select(Customer).order_by(Customer.name)))
    form.customer.choices = [C("", _l("All customers")),
                             *(C(str(c.id), f"{c.name} · {c.contract_number}")
                               for c in customers)]
    form.validate()  # a bad month is shown beside the field; this month is used instead
    month = form.month.data if form.month.data and not form.month.errors else None
    month = month or f"{clock.today():%Y-%m}"
    customer_id = _id(form.customer.data)
    rows = compliance_rows(month, customer_id)
    fmt = request.args.get("format")
    if fmt is not None:
        if fmt not in EXPORT_FORMATS:
            abort(404)
        return export_response(_compliance_table(month, rows), fmt)
    return render_template("support/compliance.html", form=form, rows=rows, month=month,
                           targets=COMPLIANCE_TARGETS, target_counts=_target_counts,
                           export_args={"month": month, "customer": customer_id or ""})


# -- notifications ----------------------------------------------------------------------
@bp.route("/notifications", methods=["GET", "POST"])
@roles_required(*ANY_STAFF)
def notifications():
    """The viewer's notifications, newest first; mark one or all read."""
    from rma.services import notifications as notices

    form = MarkReadForm()
    if form.is_submitted():
        if not form.validate():
            abort(400)
        ids = [_id(form.id.data)] if _id(form.id.data) is not None else None
        count = notices.mark_read(Actor.current(), current_user, ids)
        flash(_("%(n)d notification(s) marked read.", n=count), "success")
        return redirect(url_for("support.notifications"))
    return render_template("support/notifications.html",
                           notices=notices.for_user(current_user), form=form)
