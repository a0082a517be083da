"""Incidents: report, contact, diagnosis, priority, support mode, on-site response and
resolution (issue 6: R-I1..R-I7, R-C4, D-7), and the queries the pages read.

The rules are ``warranty``'s: the targets' deadlines (``incident_deadlines``: contact
R-I1, diagnosis R-I2, resolution; each on the calendar or the office clock, D-7), the
escalation ladder (``escalation_schedule``, R-I4, with the admin's ladder from
``escalation_setup.current_ladder``), the on-site arrival clock and the daily briefs
(R-I6), the contract year of a visit and whether it is chargeable (R-C4). This module
loads the facts, asks the rules, stores the answer and writes, in one transaction per use
case, the change, an ``AuditEvent`` (R-R4), the incident's timeline (``IncidentEvent``,
``public`` ones are shown to the customer) and the e-mails, and commits once. A refused
action changes nothing:

- bad input → :class:`IncidentError` (422) with ``field``;
- a state that does not allow the action → :class:`IncidentStateError` (409);
- a role that may not do it → ``ForbiddenError`` (403);
- another customer's incident → :class:`IncidentNotFoundError` (404), the same answer as
  for an unknown number.

Staff (``STAFF_ROLES``: support, manager, admin) may do everything; a customer user may
report for its own customer, request on-site help and add (public) notes on its own
incidents. An actor without a user (the CLI, the tick) is the system and may act. Only
staff may give ``reported_at`` (a phone call logged afterwards); every deadline counts
from it, and a priority change recomputes them from it (D-7).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta

from flask import current_app
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload, selectinload

from rma import clock
from rma.extensions import db
from rma.models import (
    Customer,
    DailyBrief,
    Incident,
    IncidentChannel,
    IncidentEvent,
    IncidentPriority,
    IncidentStatus,
    OnsiteKind,
    OnsiteVisit,
    ProductModel,
    Role,
    SupportMode,
    Unit,
    User,
)
from rma.policy import current_policy
from rma.services import (
    ConflictError,
    ForbiddenError,
    NotFoundError,
    ValidationError,
    clean_text,
    transaction,
)
from rma.services.audit import Actor, record
from rma.services.escalation_setup import ROLE_LABELS, current_ladder, recipients_for
from rma.services.numbers import next_value
from rma.services.office_calendar import load_calendar
from rma.services.outbox import Attachment, enqueue
from warranty.calendar import CalendarDataMissing, OfficeCalendar
from warranty.errors import SerialError
from warranty.incidents import (
    Deadline,
    TargetState,
    brief_days,
    contract_year,
    escalation_schedule,
    incident_deadlines,
    is_visit_chargeable,
    onsite_arrival_deadline,
    suggested_support_mode,
    target_state,
)
from warranty.policy import PRIORITIES, Policy
from warranty.serials import normalize_serial

STAFF_ROLES = (Role.SUPPORT, Role.MANAGER, Role.ADMIN)
ENGINEER_ROLES = (Role.SUPPORT, Role.MANAGER)
OPEN_STATUSES = (IncidentStatus.NEW, IncidentStatus.CONTACTED, IncidentStatus.DIAGNOSED)
TITLE_MAX = 200
NAME_MAX = 200
CONTACT_MAX = 254
TEXT_MAX = 20000
NOTE_MAX = 5000
REASON_MAX = 2000
ADDRESS_MAX = 2000
SERIALS_MAX = 200
REPORTED_AT_MAX_AGE = timedelta(days=7)
PER_PAGE_MAX = 100
_SHOWN_MAX = 40
_MONTH = re.compile(r"^\s*(\d{4})-(\d{2})\s*$")

# -- words ------------------------------------------------------------------------------
PRIORITY_LABELS = {
    "urgent": _l("Urgent"),
    "serious": _l("Serious"),
    "general": _l("General"),
}
# R-I3, shown as help text wherever a priority is chosen.
PRIORITY_HELP = {
    "urgent": _l("The business system crashed or is severely degraded for security "
                 "reasons; a regional uplink is down; a public service stopped."),
    "serious": _l("Internal business-support systems are unstable; part of a service is "
                  "down."),
    "general": _l("A fault that does not stop normal use; consultation, documentation, "
                  "technical assistance."),
}
STATUS_LABELS = {
    "new": _l("New"),
    "contacted": _l("Contacted"),
    "diagnosed": _l("Diagnosed"),
    "resolved": _l("Resolved"),
}
MODE_LABELS = {
    "phone": _l("Phone or e-mail"),
    "remote": _l("Remote login"),
    "onsite": _l("On site"),
}
CHANNEL_LABELS = {
    "portal": _l("Portal"),
    "api": _l("API"),
    "phone": _l("Phone"),
    "email": _l("E-mail"),
}
VISIT_KIND_LABELS = {
    "emergency": _l("Emergency response"),
    "change": _l("Customer-side change"),
}
TARGET_LABELS = {
    "contact": _l("Contact and engineer assigned"),
    "diagnosis": _l("Diagnosis given"),
    "resolution": _l("Resolution"),
    "onsite_arrival": _l("Arrival on site"),
}
TARGET_STATE_LABELS = {
    "on_track": _l("On track"),
    "warning": _l("Due soon"),
    "breached": _l("Breached"),
    "met": _l("Met"),
    "missed": _l("Missed"),
}
CLOCK_LABELS = {
    "calendar": _l("calendar hours (7×24)"),
    "office": _l("office hours (Mon–Fri 9:00–18:00 China time, without public holidays)"),
}

# kind → text; the ``%(name)s`` parameters are the event's ``data`` keys (codes and ISO
# instants, put into words by ``timeline``) plus ``actor``.
INCIDENT_TIMELINE_TEXTS = {
    "reported": _l("Incident reported (%(priority)s, via %(channel)s) by %(actor)s."),
    "contacted": _l("%(actor)s contacted the customer; engineer %(engineer)s is assigned."),
    "engineer_assigned": _l("Engineer %(engineer)s assigned by %(actor)s."),
    "diagnosed": _l("Diagnosis given by %(actor)s: %(diagnosis)s"),
    "priority_changed": _l("Priority changed from %(old)s to %(new)s by %(actor)s: "
                           "%(reason)s"),
    "support_mode_changed": _l("Support mode changed from %(old)s to %(new)s by "
                               "%(actor)s."),
    "onsite_requested": _l("On-site help requested (%(kind)s) by %(actor)s; the engineer is "
                           "due on site by %(due)s."),
    "onsite_arrived": _l("The engineer arrived on site at %(arrived)s."),
    "brief_filed": _l("Daily brief for %(day)s filed by %(actor)s: %(text)s"),
    "onsite_ended": _l("On-site response ended by %(actor)s; the final report is "
                       "available."),
    "resolved": _l("Resolved by %(actor)s: %(resolution)s"),
    "note": _l("Note by %(actor)s: %(text)s"),
    "escalated": _l("Not resolved after %(hours)s hours: escalated to the %(role)s "
                    "(told: %(recipients)s)."),
    "warning": _l("Warning: the %(target)s target is due at %(due)s (told: "
                  "%(recipients)s)."),
    "brief_overdue": _l("The daily brief for %(day)s is overdue (told: %(recipients)s)."),
}
# Lower-case words for sentences of the timeline.
ROLE_WORDS = {
    "account_manager": _l("account manager"),
    "technical_lead": _l("technical lead"),
    "service_director": _l("service director"),
    "cto": _l("CTO"),
    "president": _l("president"),
}
TARGET_WORDS = {
    "contact": _l("contact"),
    "diagnosis": _l("diagnosis"),
    "resolution": _l("resolution"),
    "onsite_arrival": _l("on-site arrival"),
}


# -- errors -----------------------------------------------------------------------------
class IncidentError(ValidationError, ValueError):
    """Bad input (422); ``field`` names the form field or JSON member."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message, field)


class IncidentStateError(ConflictError):
    """The incident's or visit's state does not allow the action (409)."""


class IncidentNotFoundError(NotFoundError, LookupError):
    """No such incident or visit, or one the user may not see (404)."""


# -- answers ----------------------------------------------------------------------------
@dataclass(frozen=True)
class TargetClock:
    """One target of an incident at ``now``: due, done, its state and time left
    (``remaining`` is negative once breached; for a done target, the margin it was met or
    missed by). ``clock`` is "calendar" or "office"; ``missing`` names years the office
    clock counted on plain weekdays (R-I7)."""

    target: str
    label: object
    start: datetime
    due_at: datetime
    done_at: datetime | None
    state: TargetState
    clock: str
    missing: CalendarDataMissing | None
    remaining: timedelta
    visit_id: int | None = None

    @property
    def breached(self) -> bool:
        return self.state in (TargetState.BREACHED, TargetState.MISSED)

    @property
    def is_open(self) -> bool:
        return self.done_at is None


@dataclass(frozen=True)
class RungView:
    """One rung of the ladder (R-I4) for an incident: when it is (or was) due, when it
    fired (None until then) and who was (or would be) told: dicts with ``user_id``,
    ``email`` and ``as`` ("holder" | "deputy")."""

    hours: int
    role: str
    label: object
    due_at: datetime
    fired_at: datetime | None
    recipients: list[dict]
    missing: CalendarDataMissing | None = None
    current: bool = True  # False: fired under an earlier priority, not on today's ladder


@dataclass(frozen=True)
class IncidentClocks:
    targets: list[TargetClock]
    rungs: list[RungView]
    next_breach: TargetClock | None
    warnings: list[CalendarDataMissing]


@dataclass(frozen=True)
class QueueRow:
    """An open incident in the engineer's queue or the manager's board."""

    incident: Incident
    customer: Customer
    engineer: User | None
    next_target: str | None
    next_due_at: datetime | None
    state: TargetState | None
    remaining: timedelta | None
    escalated_role: str | None
    open_visit: OnsiteVisit | None


@dataclass(frozen=True)
class TargetTally:
    met: int = 0
    missed: int = 0
    open: int = 0


@dataclass(frozen=True)
class ComplianceRow:
    """One customer × priority of a month (incidents reported in it, China time)."""

    customer_id: int
    customer_name: str
    contract_number: str
    priority: str
    incidents: int
    targets: dict[str, TargetTally] = field(default_factory=dict)
    escalations: int = 0
    resolved: int = 0


@dataclass(frozen=True)
class IncidentTimelineEntry:
    at: datetime
    kind: str
    text: str
    actor: str
    public: bool


# -- small helpers ----------------------------------------------------------------------
def _shown(text: str) -> str:
    return repr(text if len(text) <= _SHOWN_MAX else text[:_SHOWN_MAX] + "...")


def _iso(value: date | datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def local_text(moment: datetime | None) -> str:
    """An instant as China time, "2026-11-25 12:30" ("" for None)."""
    if moment is None:
        return ""
    return clock.to_local(moment).strftime("%Y-%m-%d %H:%M")


def display_name(user: User | None) -> str:
    if user is None:
        return ""
    return user.full_name or user.email


def is_staff_user(user: User | None) -> bool:
    """True for an active support, manager or admin user (who may run incidents)."""
    return (user is not None and bool(getattr(user, "is_authenticated", True))
            and user.is_active and user.role in STAFF_ROLES)


def _user_id(actor: Actor) -> int | None:
    return actor.user.id if actor.user is not None else None


def _ensure_staff(actor: Actor) -> None:
    if actor.user is not None and not is_staff_user(actor.user):
        raise ForbiddenError(_("Only the support centre may do this."))


def _ensure_party(actor: Actor, incident: Incident) -> None:
    """Staff, the system, or a user of the incident's own customer (else 404)."""
    user = actor.user
    if user is None or is_staff_user(user):
        return
    if user.role == Role.CUSTOMER and user.is_active and user.customer_id == incident.customer_id:
        return
    if user.role == Role.CUSTOMER:
        raise IncidentNotFoundError(_("There is no incident %(number)s.",
                                      number=incident.number), "number")
    raise ForbiddenError(_("Only the support centre may do this."))


def _text(raw: object, field_name: str, limit: int, *, required: str | None = None) -> str:
    return clean_text(raw, field_name, limit, required=required, error=IncidentError)


def _choice(enum_cls, raw: object, field_name: str, message: str):
    text = raw.strip().lower() if isinstance(raw, str) else str(raw or "")
    try:
        return enum_cls(text)
    except ValueError:
        raise IncidentError(message, field_name) from None


def _priority(raw: object) -> IncidentPriority:
    return _choice(IncidentPriority, raw, "priority",
                   _("Choose a priority: urgent, serious or general."))


def _instant(raw: object, field_name: str) -> datetime:
    """An aware instant; a naive one is China time (a form's ``datetime-local``)."""
    if not isinstance(raw, datetime):
        raise IncidentError(_("Enter a date and time (YYYY-MM-DD HH:MM)."), field_name)
    if raw.tzinfo is None or raw.utcoffset() is None:
        raw = raw.replace(tzinfo=clock.local_zone())
    return raw.astimezone(UTC)


def _engineer(raw: object, field_name: str = "engineer_id") -> User:
    try:
        key = int(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        key = None
    user = db.session.get(User, key) if key is not None and not isinstance(raw, bool) else None
    if user is None:
        raise IncidentError(_("Choose an engineer."), field_name)
    if not user.is_active or user.role not in ENGINEER_ROLES:
        raise IncidentError(_("%(email)s is not an active support engineer or manager.",
                              email=user.email), field_name)
    return user


def _locked(incident: Incident) -> Incident:
    """The incident read fresh and locked for this transaction (PostgreSQL ``FOR
    UPDATE``): two requests on one incident run one after the other."""
    key = incident.id if isinstance(incident, Incident) else incident
    row = db.session.scalar(
        select(Incident).where(Incident.id == key).with_for_update(of=Incident)
        .execution_options(populate_existing=True))
    if row is None:
        raise IncidentNotFoundError(_("There is no such incident."), "number")
    # Collections loaded before the lock (a page's get_incident) may be stale: the state
    # checks (one open visit) must read them inside the lock.
    db.session.expire(row, ["visits"])
    return row


def _locked_visit(visit: OnsiteVisit) -> OnsiteVisit:
    key = visit.id if isinstance(visit, OnsiteVisit) else visit
    incident_id = db.session.scalar(select(OnsiteVisit.incident_id).where(OnsiteVisit.id == key))
    if incident_id is None:
        raise IncidentNotFoundError(_("There is no such on-site visit."), "visit")
    _locked(incident_id)
    row = db.session.scalar(
        select(OnsiteVisit).where(OnsiteVisit.id == key).with_for_update(of=OnsiteVisit)
        .execution_options(populate_existing=True))
    db.session.expire(row, ["briefs"])
    return row


def _ensure_open(incident: Incident) -> None:
    if incident.status == IncidentStatus.RESOLVED:
        raise IncidentStateError(_("Incident %(number)s is resolved: nothing more can be "
                                   "done with it.", number=incident.number))


def _event(incident: Incident, kind: str, actor: Actor, now: datetime, /, *,
           public: bool = True, **data) -> IncidentEvent:
    event = IncidentEvent(incident_id=incident.id, at=now, kind=kind, public=public,
                          actor_id=_user_id(actor), actor_label=actor.label, data=data)
    db.session.add(event)
    return event


def _snapshot(incident: Incident) -> dict:
    return {**incident.as_audit(), "next_due_at": _iso(incident.next_due_at),
            "title": incident.title, "diagnosis": incident.diagnosis,
            "resolution": incident.resolution}


def _audit(actor: Actor, action: str, incident: Incident, before: dict | None, **extra) -> None:
    record(actor, action, "incident", incident.number, before, {**_snapshot(incident), **extra})


def _visit_audit(visit: OnsiteVisit) -> dict:
    return {**visit.as_audit(), "contract_year_start": _iso(visit.contract_year_start),
            "site_address": visit.site_address,
            "briefs": [b.day.isoformat() for b in visit.briefs]}


# -- deadlines (R-I1, R-I2, R-I4, R-I6, D-7) --------------------------------------------
def _apply_deadlines(incident: Incident, policy: Policy, calendar: OfficeCalendar
                     ) -> dict[str, Deadline]:
    deadlines = incident_deadlines(incident.reported_at, str(incident.priority), policy,
                                   calendar)
    incident.contact_due_at = deadlines["contact"].due_at
    incident.diagnosis_due_at = deadlines["diagnosis"].due_at
    incident.resolution_due_at = deadlines["resolution"].due_at
    return deadlines


def _open_dues(incident: Incident, visits: Iterable[OnsiteVisit]) -> list[tuple[datetime, str]]:
    """(due, target) of every target not yet met of an open incident."""
    if incident.status == IncidentStatus.RESOLVED:
        return []
    dues = []
    if incident.contacted_at is None:
        dues.append((incident.contact_due_at, "contact"))
    if incident.diagnosed_at is None:
        dues.append((incident.diagnosis_due_at, "diagnosis"))
    dues.append((incident.resolution_due_at, "resolution"))
    for visit in visits:
        if visit.ended_at is None and visit.arrived_at is None:
            dues.append((visit.arrival_due_at, "onsite_arrival"))
    return sorted(dues, key=lambda pair: pair[0])


def _refresh_next_due(incident: Incident) -> None:
    dues = _open_dues(incident, incident.visits)
    incident.next_due_at = dues[0][0] if dues else None


# -- e-mails ----------------------------------------------------------------------------
def incident_url(incident: Incident) -> str:
    """The incident's portal page, for e-mails (``PUBLIC_URL``)."""
    return f"{current_app.config['PUBLIC_URL'].rstrip('/')}/portal/incidents/{incident.number}"


def contact_address(incident: Incident) -> str | None:
    """Where the customer's e-mails about ``incident`` go: the reporter's contact when it
    is an e-mail address, else the customer user who reported it, else the customer's
    first active admin user (or any active user), else its billing e-mail; None if none."""
    from rma.services.users import normalize_email

    contact = (incident.reporter_contact or "").strip()
    if "@" in contact:
        try:
            return normalize_email(contact)
        except ValidationError:
            pass
    reporter = incident.reported_by
    if reporter is not None and reporter.role == Role.CUSTOMER and reporter.is_active:
        return reporter.email
    email = db.session.scalar(
        select(User.email).where(User.customer_id == incident.customer_id,
                                 User.is_active_flag.is_(True))
        .order_by(User.is_customer_admin.desc(), User.id).limit(1))
    return email or (incident.customer.billing_email or None)


def _mail(incident: Incident, template: str, dedupe_key: str, attachments=(), **context) -> None:
    to = contact_address(incident)
    if not to:
        return
    enqueue(to=to, language=incident.language, template=template,
            context={"number": incident.number, "title": incident.title,
                     "customer_name": incident.customer.name,
                     "contact_name": incident.reporter_name, "url": incident_url(incident),
                     "vendor_name": current_app.config["VENDOR_NAME"], **context},
            attachments=list(attachments), dedupe_key=dedupe_key)


# -- report (R-I1..R-I3, R-I5) ----------------------------------------------------------
def _units(customer: Customer, serials: Iterable[str], policy: Policy) -> list[Unit]:
    wanted: list[str] = []
    for raw in serials or ():
        if not isinstance(raw, str):
            raise IncidentError(_("Serial numbers must be text."), "serials")
        text = raw.strip()
        if not text:
            continue
        try:
            serial = normalize_serial(text, policy)
        except SerialError:
            raise IncidentError(_("%(serial)s is not a valid serial number.",
                                  serial=_shown(text)), "serials") from None
        if serial not in wanted:
            wanted.append(serial)
    if len(wanted) > SERIALS_MAX:
        raise IncidentError(_("At most %(max)d serial numbers.", max=SERIALS_MAX), "serials")
    if not wanted:
        return []
    found = {u.serial: u for u in db.session.scalars(select(Unit).where(Unit.serial.in_(wanted)))}
    for serial in wanted:
        unit = found.get(serial)
        if unit is None:
            raise IncidentError(_("%(serial)s is not known.", serial=serial), "serials")
        if unit.customer_id != customer.id:
            raise IncidentError(_("%(serial)s is not registered to %(customer)s.",
                                  serial=serial, customer=customer.name), "serials")
    return [found[s] for s in wanted]


def _models(codes: Iterable[str]) -> list[ProductModel]:
    wanted: list[str] = []
    for raw in codes or ():
        if not isinstance(raw, str):
            raise IncidentError(_("Product model codes must be text."), "model_codes")
        code = raw.strip().upper()
        if code and code not in wanted:
            wanted.append(code)
    if not wanted:
        return []
    found = {m.code: m for m in db.session.scalars(
        select(ProductModel).where(ProductModel.code.in_(wanted)))}
    for code in wanted:
        if code not in found:
            raise IncidentError(_("%(code)s is not a product model.", code=_shown(code)),
                                "model_codes")
    return [found[c] for c in wanted]


def _reported_at(actor: Actor, raw: datetime | None, now: datetime) -> datetime:
    if raw is None:
        return now
    if actor.user is not None and not is_staff_user(actor.user):
        raise IncidentError(_("Only the support centre may set the time of the report."),
                            "reported_at")
    moment = _instant(raw, "reported_at")
    if moment > now:
        raise IncidentError(_("The time of the report cannot be in the future."),
                            "reported_at")
    if now - moment > REPORTED_AT_MAX_AGE:
        raise IncidentError(_("The time of the report may be at most %(days)d days ago.",
                              days=REPORTED_AT_MAX_AGE.days), "reported_at")
    return moment


def report_incident(actor: Actor, *, customer: Customer, priority: str, title: str,
                    description: str, serials: Iterable[str] = (),
                    model_codes: Iterable[str] = (), channel: str, reporter_name: str = "",
                    reporter_contact: str = "", reported_at: datetime | None = None,
                    language: str | None = None) -> Incident:
    """Record a fault report (R-I1..R-I3): its number ``INC-<year>-<6 digits>``, the
    affected units (the customer's own, field ``serials``) and models, and the deadlines
    of contact (R-I1), diagnosis (R-I2) and resolution counted from ``reported_at`` (staff
    only: at most 7 days back, not in the future; default now) on each target's clock
    (D-7). The support mode starts as R-I5 suggests. E-mails an acknowledgement to the
    customer's contact and notifies every active support user in the app. Commits."""
    user = actor.user
    if customer is None:
        raise IncidentError(_("Choose the customer."), "customer")
    if user is not None and not is_staff_user(user):
        if not (user.role == Role.CUSTOMER and user.is_active
                and user.customer_id == customer.id):
            raise ForbiddenError(_("You may report incidents only for your own "
                                   "organisation."))
    policy = current_policy()
    now = clock.now()
    prio = _priority(priority)
    title = _text(title, "title", TITLE_MAX, required=_("Give the incident a short title."))
    description = _text(description, "description", TEXT_MAX,
                        required=_("Describe the fault."))
    kind = _choice(IncidentChannel, channel, "channel", _("Choose how the report came in."))
    reporter_name = _text(reporter_name, "reporter_name", NAME_MAX)
    reporter_contact = _text(reporter_contact, "reporter_contact", CONTACT_MAX)
    language = language or customer.language or "zh_CN"
    if language not in current_app.config["LANGUAGES"]:
        raise IncidentError(_("Choose a language: zh_CN or en."), "language")
    moment = _reported_at(actor, reported_at, now)
    units = _units(customer, serials, policy)
    models = _models(model_codes)
    with transaction():
        year = clock.to_local(now).year
        incident = Incident(
            number=f"INC-{year}-{next_value('incident', year):06d}",
            customer_id=customer.id, priority=prio, status=IncidentStatus.NEW,
            support_mode=SupportMode(suggested_support_mode(prio.value)), channel=kind,
            title=title, description=description, reporter_name=reporter_name,
            reporter_contact=reporter_contact, language=language,
            reported_by_id=_user_id(actor), reported_at=moment, created_at=now,
            updated_at=now)
        incident.customer = customer
        incident.units = units
        incident.product_models = models
        _apply_deadlines(incident, policy, load_calendar(policy))
        _refresh_next_due(incident)
        db.session.add(incident)
        db.session.flush()
        _event(incident, "reported", actor, now, priority=prio.value, channel=kind.value,
               reported_at=moment.isoformat())
        _audit(actor, "incident.reported", incident, None,
               serials=[u.serial for u in units], models=[m.code for m in models],
               channel=kind.value)
        _mail(incident, "incident_reported", f"incident_reported:{incident.number}",
              priority=PRIORITY_LABELS[prio.value], reported_at=local_text(moment),
              contact_due=local_text(incident.contact_due_at),
              diagnosis_due=local_text(incident.diagnosis_due_at),
              resolution_due=local_text(incident.resolution_due_at),
              serials=[u.serial for u in units])
        _notify_support(incident, customer)
    return incident


def _notify_support(incident: Incident, customer: Customer) -> None:
    from rma.services.notifications import notify

    users = db.session.scalars(select(User).where(User.role == Role.SUPPORT,
                                                  User.is_active_flag.is_(True))
                               .order_by(User.id))
    for user in users:
        notify(user, "incident_reported",
               {"number": incident.number, "priority": str(incident.priority),
                "customer": customer.name, "title": incident.title}, incident)


# -- contact, engineer, diagnosis (R-I1, R-I2) ------------------------------------------
def contact_customer(actor: Actor, incident: Incident, *, engineer_id: int | None = None,
                     note: str = "") -> Incident:
    """R-I1: the customer was contacted and an engineer is assigned (default: the actor,
    who must then be a support engineer or manager). NEW → CONTACTED. Commits."""
    _ensure_staff(actor)
    note = _text(note, "note", NOTE_MAX)
    with transaction():
        incident = _locked(incident)
        _ensure_open(incident)
        if incident.status != IncidentStatus.NEW or incident.contacted_at is not None:
            raise IncidentStateError(_("The customer of %(number)s was already contacted.",
                                       number=incident.number))
        if engineer_id in (None, "", 0):
            if actor.user is None or actor.user.role not in ENGINEER_ROLES:
                raise IncidentError(_("Choose an engineer."), "engineer_id")
            engineer = actor.user
        else:
            engineer = _engineer(engineer_id)
        before = _snapshot(incident)
        now = clock.now()
        incident.contacted_at = now
        incident.engineer_id = engineer.id
        incident.status = IncidentStatus.CONTACTED
        incident.updated_at = now
        _refresh_next_due(incident)
        _event(incident, "contacted", actor, now, engineer=display_name(engineer),
               engineer_id=engineer.id)
        if note:
            _event(incident, "note", actor, now, public=False, text=note)
        _audit(actor, "incident.contacted", incident, before, note=note)
    return incident


def assign_engineer(actor: Actor, incident: Incident, engineer_id: int) -> Incident:
    """Assign the dedicated engineer (an active support user or manager) of an open
    incident. Commits."""
    _ensure_staff(actor)
    with transaction():
        incident = _locked(incident)
        _ensure_open(incident)
        engineer = _engineer(engineer_id)
        if incident.engineer_id == engineer.id:
            raise IncidentError(_("%(name)s is already the engineer.",
                                  name=display_name(engineer)), "engineer_id")
        before = _snapshot(incident)
        now = clock.now()
        incident.engineer_id = engineer.id
        incident.updated_at = now
        for visit in incident.visits:
            if visit.ended_at is None and visit.engineer_id is None:
                visit.engineer_id = engineer.id
        _event(incident, "engineer_assigned", actor, now, engineer=display_name(engineer),
               engineer_id=engineer.id)
        _audit(actor, "incident.engineer_assigned", incident, before)
    return incident


def record_diagnosis(actor: Actor, incident: Incident, diagnosis: str) -> Incident:
    """R-I2: the diagnosis given to the customer (e-mailed). CONTACTED → DIAGNOSED; from
    NEW it also records the contact (R-I1) now. Commits."""
    _ensure_staff(actor)
    text = _text(diagnosis, "diagnosis", TEXT_MAX, required=_("Write the diagnosis."))
    with transaction():
        incident = _locked(incident)
        _ensure_open(incident)
        if incident.status == IncidentStatus.DIAGNOSED:
            raise IncidentStateError(_("The diagnosis of %(number)s was already given.",
                                       number=incident.number))
        before = _snapshot(incident)
        now = clock.now()
        if incident.contacted_at is None:
            incident.contacted_at = now
            if incident.engineer_id is None and actor.user is not None \
                    and actor.user.role in ENGINEER_ROLES:
                incident.engineer_id = actor.user.id
            engineer = db.session.get(User, incident.engineer_id) if incident.engineer_id else None
            _event(incident, "contacted", actor, now, engineer=display_name(engineer) or "-",
                   engineer_id=incident.engineer_id)
        incident.diagnosed_at = now
        incident.diagnosis = text
        incident.status = IncidentStatus.DIAGNOSED
        incident.updated_at = now
        _refresh_next_due(incident)
        _event(incident, "diagnosed", actor, now, diagnosis=text)
        _audit(actor, "incident.diagnosed", incident, before)
        engineer = db.session.get(User, incident.engineer_id) if incident.engineer_id else None
        _mail(incident, "incident_diagnosis", f"incident_diagnosis:{incident.number}",
              diagnosis=text, engineer=display_name(engineer),
              diagnosed_at=local_text(now))
    return incident


# -- priority and support mode (D-7, R-I5) ----------------------------------------------
def change_priority(actor: Actor, incident: Incident, priority: str, reason: str) -> Incident:
    """Change the priority (R-I3) with a reason: every deadline is computed again from the
    original report time (D-7). Commits."""
    _ensure_staff(actor)
    prio = _priority(priority)
    reason = _text(reason, "reason", REASON_MAX,
                   required=_("Give the reason for the priority change."))
    with transaction():
        incident = _locked(incident)
        _ensure_open(incident)
        old = str(incident.priority)
        if old == prio.value:
            raise IncidentError(_("The priority is already %(priority)s.",
                                  priority=PRIORITY_LABELS[old]), "priority")
        before = _snapshot(incident)
        now = clock.now()
        incident.priority = prio
        policy = current_policy()
        _apply_deadlines(incident, policy, load_calendar(policy))
        _refresh_next_due(incident)
        incident.updated_at = now
        _event(incident, "priority_changed", actor, now, old=old, new=prio.value,
               reason=reason)
        _audit(actor, "incident.priority_changed", incident, before, reason=reason)
    return incident


def set_support_mode(actor: Actor, incident: Incident, mode: str, note: str = "") -> Incident:
    """R-I5: phone/e-mail, remote login or on site. Commits."""
    _ensure_staff(actor)
    wanted = _choice(SupportMode, mode, "mode",
                     _("Choose a support mode: phone, remote or onsite."))
    note = _text(note, "note", NOTE_MAX)
    with transaction():
        incident = _locked(incident)
        _ensure_open(incident)
        old = str(incident.support_mode)
        if old == wanted.value:
            raise IncidentError(_("The support mode is already %(mode)s.",
                                  mode=MODE_LABELS[old]), "mode")
        before = _snapshot(incident)
        now = clock.now()
        incident.support_mode = wanted
        incident.updated_at = now
        _event(incident, "support_mode_changed", actor, now, old=old, new=wanted.value)
        if note:
            _event(incident, "note", actor, now, public=False, text=note)
        _audit(actor, "incident.support_mode_changed", incident, before, note=note)
    return incident


# -- on site (R-I6, R-C4) ---------------------------------------------------------------
def _accepted_on(customer: Customer) -> date:
    if customer.accepted_on is not None:
        return customer.accepted_on
    return clock.to_local(customer.created_at or clock.now()).date()


def _day_bounds(first: date, last: date) -> tuple[datetime, datetime]:
    zone = clock.local_zone()
    lo = datetime.combine(first, time(), tzinfo=zone).astimezone(UTC)
    hi = datetime.combine(last + timedelta(days=1), time(), tzinfo=zone).astimezone(UTC)
    return lo, hi


def contract_visits(customer: Customer, day: date) -> list[OnsiteVisit]:
    """R-C4: the customer's on-site visits requested in the contract year of ``day``
    (years from the acceptance + 1 day; from the registration date without one), by
    request time."""
    first, last = contract_year(_accepted_on(customer), day, current_policy())
    lo, hi = _day_bounds(first, last)
    return list(db.session.scalars(
        select(OnsiteVisit).join(Incident, Incident.id == OnsiteVisit.incident_id)
        .where(Incident.customer_id == customer.id, OnsiteVisit.requested_at >= lo,
               OnsiteVisit.requested_at < hi)
        .options(joinedload(OnsiteVisit.incident))
        .order_by(OnsiteVisit.requested_at, OnsiteVisit.id)))


def open_visit(incident: Incident) -> OnsiteVisit | None:
    return next((v for v in incident.visits if v.ended_at is None), None)


def request_onsite(actor: Actor, incident: Incident, *, kind: str = "emergency",
                   requested_at: datetime | None = None, site_address: str = "",
                   note: str = "") -> OnsiteVisit:
    """Ask for an engineer on site: R-I6 (``emergency``: arrival within 8 hours of the
    request, on the "onsite_arrival" clock, D-7) or R-C4 (``change``: a customer-side
    change; the 2nd and later in a contract year are chargeable). The customer (own
    incident) or staff; ``requested_at`` staff only. At most one open visit per incident.
    The support mode becomes on site. Commits."""
    kind_value = _choice(OnsiteKind, kind, "kind",
                         _("Choose the kind of visit: emergency or change."))
    site_address = _text(site_address, "site_address", ADDRESS_MAX)
    note = _text(note, "note", NOTE_MAX)
    now = clock.now()
    if requested_at is not None:
        if actor.user is not None and not is_staff_user(actor.user):
            raise IncidentError(_("Only the support centre may set the time of the "
                                  "request."), "requested_at")
        moment = _instant(requested_at, "requested_at")
        if moment > now:
            raise IncidentError(_("The time of the request cannot be in the future."),
                                "requested_at")
    else:
        moment = now
    with transaction():
        incident = _locked(incident)
        _ensure_party(actor, incident)
        _ensure_open(incident)
        if moment < incident.reported_at:
            raise IncidentError(_("The request cannot be earlier than the report."),
                                "requested_at")
        current = open_visit(incident)
        if current is not None:
            raise IncidentStateError(_("An on-site visit of %(number)s is already open; end "
                                       "it first.", number=incident.number))
        customer = db.session.scalar(select(Customer).where(Customer.id == incident.customer_id)
                                     .with_for_update(of=Customer))
        policy = current_policy()
        calendar = load_calendar(policy)
        deadline = onsite_arrival_deadline(moment, policy, calendar)
        day = clock.to_local(moment).date()
        first, _last = contract_year(_accepted_on(customer), day, policy)
        earlier = sum(1 for v in contract_visits(customer, day) if v.kind == OnsiteKind.CHANGE)
        chargeable = is_visit_chargeable(kind_value.value, earlier, policy)
        before = _snapshot(incident)
        visit = OnsiteVisit(
            incident_id=incident.id, kind=kind_value, requested_at=moment,
            arrival_due_at=deadline.due_at, engineer_id=incident.engineer_id,
            site_address=site_address or customer.address or "", note=note,
            contract_year_start=first, chargeable=chargeable)
        incident.visits.append(visit)
        db.session.flush()
        old_mode = str(incident.support_mode)
        incident.support_mode = SupportMode.ONSITE
        incident.updated_at = now
        _refresh_next_due(incident)
        _event(incident, "onsite_requested", actor, now, kind=kind_value.value,
               due=deadline.due_at.isoformat(), visit_id=visit.id, chargeable=chargeable,
               requested_at=moment.isoformat())
        if old_mode != SupportMode.ONSITE.value:
            _event(incident, "support_mode_changed", actor, now, old=old_mode,
                   new=SupportMode.ONSITE.value)
        _audit(actor, "incident.onsite_requested", incident, before, visit_id=visit.id)
        record(actor, "onsite.requested", "onsite_visit", visit.id, None, _visit_audit(visit))
    return visit


def record_arrival(actor: Actor, visit: OnsiteVisit, arrived_at: datetime | None = None
                   ) -> OnsiteVisit:
    """R-I6: the engineer arrived on site (default now; not in the future, not before the
    request). Staff. Commits."""
    _ensure_staff(actor)
    now = clock.now()
    moment = _instant(arrived_at, "arrived_at") if arrived_at is not None else now
    if moment > now:
        raise IncidentError(_("The arrival cannot be in the future."), "arrived_at")
    with transaction():
        visit = _locked_visit(visit)
        incident = visit.incident
        if visit.ended_at is not None:
            raise IncidentStateError(_("This on-site visit has ended."))
        if visit.arrived_at is not None:
            raise IncidentStateError(_("The arrival was already recorded at %(at)s.",
                                       at=local_text(visit.arrived_at)))
        if moment < visit.requested_at:
            raise IncidentError(_("The arrival cannot be earlier than the request."),
                                "arrived_at")
        before = _visit_audit(visit)
        visit.arrived_at = moment
        if visit.engineer_id is None:
            if actor.user is not None and actor.user.role in ENGINEER_ROLES:
                visit.engineer_id = actor.user.id
            else:
                visit.engineer_id = incident.engineer_id
        incident.updated_at = now
        _refresh_next_due(incident)
        _event(incident, "onsite_arrived", actor, now, arrived=moment.isoformat(),
               visit_id=visit.id)
        record(actor, "onsite.arrived", "onsite_visit", visit.id, before, _visit_audit(visit))
    return visit


def visit_brief_days(visit: OnsiteVisit, now: datetime) -> list[date]:
    """R-I6: the China-time days a brief is due for: from the arrival on site through the
    end of the response (or today while it runs); none before the arrival."""
    if visit.arrived_at is None:
        return []
    return brief_days(visit.arrived_at, visit.ended_at, now, clock.local_zone())


def file_daily_brief(actor: Actor, visit: OnsiteVisit, day: date, text: str) -> DailyBrief:
    """R-I6: the brief report of one day of the on-site response: a day from the arrival
    through the end (or today), one per day. Staff. Commits."""
    _ensure_staff(actor)
    body = _text(text, "text", TEXT_MAX, required=_("Write the brief report."))
    if isinstance(day, datetime) or not isinstance(day, date):
        raise IncidentError(_("Enter a date (YYYY-MM-DD)."), "day")
    try:
        with transaction():
            visit = _locked_visit(visit)
            incident = visit.incident
            now = clock.now()
            if visit.arrived_at is None:
                raise IncidentStateError(_("Record the arrival on site first."))
            days = visit_brief_days(visit, now)
            if day not in days:
                raise IncidentError(_("%(day)s is not a day of this on-site response "
                                      "(%(first)s to %(last)s).", day=day.isoformat(),
                                      first=days[0].isoformat(), last=days[-1].isoformat()),
                                    "day")
            if any(b.day == day for b in visit.briefs):
                raise IncidentError(_("The brief for %(day)s was already filed.",
                                      day=day.isoformat()), "day")
            before = _visit_audit(visit)
            brief = DailyBrief(visit_id=visit.id, day=day, text=body, filed_at=now,
                               filed_by_id=_user_id(actor))
            visit.briefs.append(brief)
            db.session.flush()
            incident.updated_at = now
            _event(incident, "brief_filed", actor, now, day=day.isoformat(), text=body,
                   visit_id=visit.id)
            record(actor, "onsite.brief_filed", "onsite_visit", visit.id, before,
                   {**_visit_audit(visit), "brief": {"day": day.isoformat(), "text": body}})
    except IntegrityError:  # the same day filed at the same moment by someone else
        raise IncidentError(_("The brief for %(day)s was already filed.",
                              day=day.isoformat()), "day") from None
    return brief


def end_onsite(actor: Actor, visit: OnsiteVisit, final_report: str) -> OnsiteVisit:
    """R-I6: end the on-site response with the detailed final report (required), which is
    e-mailed to the customer as a PDF. Staff. Commits."""
    _ensure_staff(actor)
    report = _text(final_report, "final_report", TEXT_MAX,
                   required=_("Write the final report of the on-site response."))
    with transaction():
        visit = _locked_visit(visit)
        incident = visit.incident
        if visit.ended_at is not None:
            raise IncidentStateError(_("This on-site visit has already ended."))
        if visit.arrived_at is None:
            raise IncidentStateError(_("Record the arrival on site first."))
        before = _visit_audit(visit)
        now = clock.now()
        visit.ended_at = now
        visit.final_report = report
        if visit.engineer_id is None:
            visit.engineer_id = incident.engineer_id
        incident.updated_at = now
        _refresh_next_due(incident)
        db.session.flush()
        _event(incident, "onsite_ended", actor, now, visit_id=visit.id)
        record(actor, "onsite.ended", "onsite_visit", visit.id, before, _visit_audit(visit))
        from rma.documents.incident import render_onsite_report

        pdf = render_onsite_report(final_report_document(visit))
        _mail(incident, "onsite_report", f"onsite_report:{visit.id}",
              attachments=[Attachment(report_filename(visit), "application/pdf", pdf)],
              ended_at=local_text(now), engineer=display_name(visit.engineer),
              filename=report_filename(visit))
    return visit


def report_filename(visit: OnsiteVisit) -> str:
    return f"{visit.incident.number}-onsite-{visit.id}.pdf"


def final_report_document(visit: OnsiteVisit):
    """The plain data of the visit's final report PDF (``OnsiteReportDocument``), times
    in China time; dated the day the response ended (today while it runs)."""
    from rma.documents.incident import OnsiteReportDocument

    incident = visit.incident
    customer = incident.customer
    generated = clock.to_local(visit.ended_at).date() if visit.ended_at else clock.today()
    return OnsiteReportDocument(
        number=incident.number, customer_name=customer.name,
        contract_number=customer.contract_number, language=incident.language,
        visit_kind=str(visit.kind), requested=local_text(visit.requested_at),
        arrived=local_text(visit.arrived_at), ended=local_text(visit.ended_at),
        engineer=display_name(visit.engineer), site_address=visit.site_address or "",
        briefs=tuple((b.day, b.text) for b in visit.briefs),
        final_report=visit.final_report or "", generated_on=generated,
        incident_title=incident.title, vendor_name=current_app.config["VENDOR_NAME"],
        chargeable=bool(visit.chargeable))


# -- resolution and notes ---------------------------------------------------------------
def resolve_incident(actor: Actor, incident: Incident, resolution: str) -> Incident:
    """Resolve the incident (escalation stops, R-I4); refused while an on-site visit is
    open. E-mails the customer. Staff. Commits."""
    _ensure_staff(actor)
    text = _text(resolution, "resolution", TEXT_MAX, required=_("Describe the resolution."))
    with transaction():
        incident = _locked(incident)
        _ensure_open(incident)
        if open_visit(incident) is not None:
            raise IncidentStateError(_("End the on-site visit with its final report before "
                                       "resolving %(number)s.", number=incident.number))
        before = _snapshot(incident)
        now = clock.now()
        incident.resolved_at = now
        incident.resolution = text
        incident.status = IncidentStatus.RESOLVED
        incident.next_due_at = None
        incident.updated_at = now
        _event(incident, "resolved", actor, now, resolution=text)
        _audit(actor, "incident.resolved", incident, before)
        _mail(incident, "incident_resolved", f"incident_resolved:{incident.number}",
              resolution=text, resolved_at=local_text(now))
    return incident


def add_note(actor: Actor, incident: Incident, text: str, public: bool) -> IncidentEvent:
    """A note on the timeline: staff choose public (the customer sees it) or internal; a
    customer's note (own incident) is always public. Commits."""
    body = _text(text, "text", NOTE_MAX, required=_("Write the note."))
    with transaction():
        incident = _locked(incident)
        _ensure_party(actor, incident)
        staff = actor.user is None or is_staff_user(actor.user)
        shown = bool(public) or not staff
        now = clock.now()
        event = _event(incident, "note", actor, now, public=shown, text=body)
        incident.updated_at = now
        db.session.flush()
        record(actor, "incident.note_added", "incident", incident.number, None,
               {"event_id": event.id, "public": shown, "text": body})
    return event


# -- reading ----------------------------------------------------------------------------
def _detail_options():
    return (
        joinedload(Incident.customer), joinedload(Incident.engineer),
        joinedload(Incident.reported_by),
        selectinload(Incident.units), selectinload(Incident.product_models),
        selectinload(Incident.events), selectinload(Incident.alerts),
        selectinload(Incident.visits).options(selectinload(OnsiteVisit.briefs),
                                              joinedload(OnsiteVisit.engineer)),
    )


def _visible(incident: Incident | None, user: User | None) -> bool:
    if incident is None or user is None:
        return False
    if is_staff_user(user):
        return True
    return (user.role == Role.CUSTOMER and user.is_active
            and user.customer_id == incident.customer_id)


def get_incident(number: str, actor_user: User | None) -> Incident | None:
    """The incident ``number`` with its customer, units, timeline, alerts and visits, or
    None when there is none or ``actor_user`` may not see it (another customer's)."""
    text = number.strip().upper()[:64] if isinstance(number, str) else ""
    if not text:
        return None
    incident = db.session.scalar(select(Incident).where(Incident.number == text)
                                 .options(*_detail_options()))
    return incident if _visible(incident, actor_user) else None


def get_visit(visit_id: int, actor_user: User | None) -> OnsiteVisit | None:
    """The on-site visit with its incident and briefs, or None (unknown, or another
    customer's)."""
    try:
        key = int(visit_id)
    except (TypeError, ValueError):
        return None
    visit = db.session.scalar(
        select(OnsiteVisit).where(OnsiteVisit.id == key)
        .options(joinedload(OnsiteVisit.incident).joinedload(Incident.customer),
                 selectinload(OnsiteVisit.briefs), joinedload(OnsiteVisit.engineer)))
    if visit is None or not _visible(visit.incident, actor_user):
        return None
    return visit


def _deadline(target: str, start: datetime, due_at: datetime, policy: Policy,
              clock_target: str) -> Deadline:
    return Deadline(target=target, start=start, due_at=due_at,
                    clock=policy.clock_for(clock_target), missing=None)


def _merge_missing(conditions: Iterable[CalendarDataMissing | None]) -> list[CalendarDataMissing]:
    years = sorted({y for c in conditions if c is not None for y in c.years})
    return [CalendarDataMissing(tuple(years))] if years else []


def incident_clocks(incident: Incident, now: datetime) -> IncidentClocks:
    """The incident's targets at ``now`` (contact R-I1, diagnosis R-I2, resolution, and
    the arrival of its open or last on-site visit R-I6), its escalation rungs (R-I4: due,
    fired, who), the next target to be breached and the calendar warnings (R-I7). A
    target not reached when the incident was resolved counts as done at the resolution."""
    policy = current_policy()
    calendar = load_calendar(policy)
    computed = incident_deadlines(incident.reported_at, str(incident.priority), policy,
                                  calendar)
    stored = {"contact": incident.contact_due_at, "diagnosis": incident.diagnosis_due_at,
              "resolution": incident.resolution_due_at}
    done = {"contact": incident.contacted_at or incident.resolved_at,
            "diagnosis": incident.diagnosed_at or incident.resolved_at,
            "resolution": incident.resolved_at}
    targets = []
    for name in ("contact", "diagnosis", "resolution"):
        deadline = replace(computed[name], due_at=stored[name])
        targets.append(_target_clock(deadline, done[name], now, policy, calendar))
    visits = list(incident.visits)
    visit = next((v for v in visits if v.ended_at is None), visits[-1] if visits else None)
    if visit is not None:
        computed_visit = onsite_arrival_deadline(visit.requested_at, policy, calendar)
        deadline = replace(computed_visit, due_at=visit.arrival_due_at)
        targets.append(_target_clock(deadline, visit.arrived_at or visit.ended_at, now,
                                     policy, calendar, visit.id))
    rungs = _rung_views(incident, policy, calendar)
    open_targets = [t for t in targets if t.done_at is None]
    next_breach = min(open_targets, key=lambda t: t.due_at) if open_targets else None
    warnings = _merge_missing([t.missing for t in targets] + [r.missing for r in rungs])
    return IncidentClocks(targets=targets, rungs=rungs, next_breach=next_breach,
                          warnings=warnings)


def _target_clock(deadline: Deadline, done_at: datetime | None, now: datetime, policy: Policy,
                  calendar: OfficeCalendar, visit_id: int | None = None) -> TargetClock:
    state = target_state(deadline, now, done_at, policy, calendar)
    remaining = deadline.due_at - (done_at or now)
    return TargetClock(target=deadline.target, label=TARGET_LABELS.get(deadline.target, ""),
                       start=deadline.start, due_at=deadline.due_at, done_at=done_at,
                       state=state, clock=deadline.clock, missing=deadline.missing,
                       remaining=remaining, visit_id=visit_id)


def _recipient_dicts(role: str, customer_id: int) -> list[dict]:
    return [{"user_id": user.id, "email": user.email, "name": display_name(user), "as": kind}
            for user, kind in recipients_for(role, customer_id)]


def _rung_views(incident: Incident, policy: Policy, calendar: OfficeCalendar) -> list[RungView]:
    fired = {a.key: a for a in incident.alerts if a.kind == "escalation"}
    views = []
    resolved = incident.status == IncidentStatus.RESOLVED
    for rung in escalation_schedule(incident.reported_at, str(incident.priority), policy,
                                    calendar, current_ladder()):
        alert = fired.pop(rung.role, None)
        if alert is not None:
            recipients = list(alert.recipients or [])
        elif resolved:
            recipients = []
        else:
            recipients = _recipient_dicts(rung.role, incident.customer_id)
        views.append(RungView(hours=rung.hours, role=rung.role,
                              label=ROLE_LABELS.get(rung.role, rung.role), due_at=rung.due_at,
                              fired_at=alert.fired_at if alert else None,
                              recipients=recipients, missing=rung.missing))
    for role, alert in fired.items():  # fired under an earlier priority or ladder
        views.append(RungView(hours=alert.hours or 0, role=role,
                              label=ROLE_LABELS.get(role, role), due_at=alert.due_at,
                              fired_at=alert.fired_at, recipients=list(alert.recipients or []),
                              current=False))
    return sorted(views, key=lambda v: (v.due_at, v.hours))


def _queue_row(incident: Incident, now: datetime, policy: Policy,
               calendar: OfficeCalendar) -> QueueRow:
    visits = list(incident.visits)
    dues = _open_dues(incident, visits)
    current = next((v for v in visits if v.ended_at is None), None)
    if not dues:
        return QueueRow(incident, incident.customer, incident.engineer, None, None, None, None,
                        incident.escalated_role, current)
    due_at, target = dues[0]
    if target == "onsite_arrival":
        start = current.requested_at if current is not None else incident.reported_at
    else:
        start = incident.reported_at
    clock_target = {"resolution": "escalation"}.get(target, target)
    deadline = _deadline(target, start, due_at, policy, clock_target)
    state = target_state(deadline, now, None, policy, calendar)
    return QueueRow(incident, incident.customer, incident.engineer, target, due_at, state,
                    due_at - now, incident.escalated_role, current)


def _open_incidents(*where) -> list[Incident]:
    return list(db.session.scalars(
        select(Incident).where(Incident.status.in_(OPEN_STATUSES), *where)
        .options(joinedload(Incident.customer), joinedload(Incident.engineer),
                 selectinload(Incident.visits))
        .order_by(Incident.next_due_at, Incident.id)).unique())


def _sort_key(row: QueueRow):
    far = datetime.max.replace(tzinfo=UTC)
    return (row.next_due_at or far, row.incident.id)


def engineer_queue(user: User, now: datetime, mine_only: bool = False) -> list[QueueRow]:
    """Open incidents by time to their next breach, soonest first (``mine_only``: those
    assigned to ``user``). A constant number of queries."""
    policy = current_policy()
    calendar = load_calendar(policy)
    where = [Incident.engineer_id == user.id] if mine_only else []
    rows = [_queue_row(i, now, policy, calendar) for i in _open_incidents(*where)]
    return sorted(rows, key=_sort_key)


def manager_board(now: datetime) -> dict[str, list[QueueRow]]:
    """Open incidents by priority (every priority a key, most severe first), each list by
    time to the next breach; rows carry the highest rung reached (R-I4)."""
    policy = current_policy()
    calendar = load_calendar(policy)
    board: dict[str, list[QueueRow]] = {p: [] for p in PRIORITIES}
    for incident in _open_incidents():
        board.setdefault(str(incident.priority), []).append(
            _queue_row(incident, now, policy, calendar))
    return {p: sorted(rows, key=_sort_key) for p, rows in board.items()}


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """"YYYY-MM" as [first instant, first instant of the next month) in China time (UTC);
    ``IncidentError`` (field ``month``) otherwise."""
    match = _MONTH.match(month) if isinstance(month, str) else None
    year, number = (int(match.group(1)), int(match.group(2))) if match else (0, 0)
    if not match or not 1 <= number <= 12 or not 2000 <= year <= 2200:
        raise IncidentError(_("Enter a month as YYYY-MM."), "month")
    first = date(year, number, 1)
    following = date(year + 1, 1, 1) if number == 12 else date(year, number + 1, 1)
    return _day_bounds(first, following - timedelta(days=1))


def compliance(month: str, customer_id: int | None = None, *,
               now: datetime | None = None) -> list[ComplianceRow]:
    """Per customer × priority, the incidents reported in ``month`` (China time): how
    many, and per target (contact R-I1, diagnosis R-I2, resolution, on-site arrival R-I6)
    how many were met, missed (done late, or still open past due at ``now``, by default
    the clock's) or are open; and how many escalations fired (R-I4). By customer name,
    then priority."""
    lo, hi = month_bounds(month)
    stmt = (select(Incident).where(Incident.reported_at >= lo, Incident.reported_at < hi)
            .options(joinedload(Incident.customer), selectinload(Incident.visits),
                     selectinload(Incident.alerts)))
    if customer_id is not None:
        stmt = stmt.where(Incident.customer_id == customer_id)
    now = clock.now() if now is None else now
    groups: dict[tuple[int, str], dict] = {}
    for incident in db.session.scalars(stmt).unique():
        key = (incident.customer_id, str(incident.priority))
        group = groups.setdefault(key, {
            "customer": incident.customer, "incidents": 0, "escalations": 0, "resolved": 0,
            "targets": {t: [0, 0, 0] for t in TARGET_LABELS}})
        group["incidents"] += 1
        group["resolved"] += incident.status == IncidentStatus.RESOLVED
        group["escalations"] += sum(1 for a in incident.alerts if a.kind == "escalation")
        checks = [
            ("contact", incident.contact_due_at, incident.contacted_at or incident.resolved_at),
            ("diagnosis", incident.diagnosis_due_at,
             incident.diagnosed_at or incident.resolved_at),
            ("resolution", incident.resolution_due_at, incident.resolved_at),
        ]
        checks += [("onsite_arrival", v.arrival_due_at, v.arrived_at or v.ended_at)
                   for v in incident.visits]
        for target, due_at, done_at in checks:
            tally = group["targets"][target]
            if done_at is not None:
                tally[0 if done_at <= due_at else 1] += 1
            elif now > due_at:
                tally[1] += 1
            else:
                tally[2] += 1
    rank = {p: i for i, p in enumerate(PRIORITIES)}
    rows = [
        ComplianceRow(customer_id=cid, customer_name=g["customer"].name,
                      contract_number=g["customer"].contract_number, priority=priority,
                      incidents=g["incidents"],
                      targets={t: TargetTally(*counts) for t, counts in g["targets"].items()},
                      escalations=g["escalations"], resolved=int(g["resolved"]))
        for (cid, priority), g in groups.items()
    ]
    return sorted(rows, key=lambda r: (r.customer_name, rank.get(r.priority, 9)))


def customer_incidents(customer_id: int, page: int = 1, per_page: int = 20,
                       status: str | None = None) -> list[Incident]:
    """A customer's incidents, newest report first (``status``: "open", "resolved" or a
    status value)."""
    stmt = select(Incident).where(Incident.customer_id == customer_id)
    stmt = _status_where(stmt, status)
    per_page = min(max(int(per_page), 1), PER_PAGE_MAX)
    page = max(int(page), 1)
    return list(db.session.scalars(
        stmt.options(joinedload(Incident.customer), joinedload(Incident.engineer))
        .order_by(Incident.reported_at.desc(), Incident.id.desc())
        .offset((page - 1) * per_page).limit(per_page)).unique())


def _status_where(stmt, status: str | None):
    text = (status or "").strip().lower()
    if not text:
        return stmt
    if text == "open":
        return stmt.where(Incident.status.in_(OPEN_STATUSES))
    try:
        return stmt.where(Incident.status == IncidentStatus(text))
    except ValueError:
        raise IncidentError(_("Status %(value)s is not an incident status.",
                              value=_shown(text)), "status") from None


@dataclass(frozen=True)
class IncidentPage:
    rows: list[Incident]
    total: int
    page: int
    per_page: int
    pages: int


def list_incidents(viewer: User, *, status: str | None = None, priority: str | None = None,
                   customer_id: int | None = None, page: int = 1, per_page: int = 20
                   ) -> IncidentPage:
    """Incidents ``viewer`` may see, newest report first: a customer only its own, staff
    all (``customer_id`` narrows); ``status`` "open", "resolved" or a status, ``priority``
    a priority (``IncidentError`` for another value)."""
    stmt = select(Incident)
    if not is_staff_user(viewer):
        if viewer is None or viewer.role != Role.CUSTOMER or (
                customer_id is not None and customer_id != viewer.customer_id):
            return IncidentPage([], 0, 1, per_page, 1)
        customer_id = viewer.customer_id
    if customer_id is not None:
        stmt = stmt.where(Incident.customer_id == customer_id)
    stmt = _status_where(stmt, status)
    if priority:
        stmt = stmt.where(Incident.priority == _priority(priority))
    per_page = min(max(int(per_page), 1), PER_PAGE_MAX)
    total = db.session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    pages = max(1, math.ceil(total / per_page))
    page = max(int(page), 1)
    rows = list(db.session.scalars(
        stmt.options(joinedload(Incident.customer), joinedload(Incident.engineer))
        .order_by(Incident.reported_at.desc(), Incident.id.desc())
        .offset((page - 1) * per_page).limit(per_page)).unique())
    return IncidentPage(rows, total, page, per_page, pages)


# -- timeline ---------------------------------------------------------------------------
def _local_param(value: object) -> object:
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return value
        if moment.tzinfo is not None:
            return local_text(moment)
    return value


def _params(kind: str, data: dict, actor: str) -> dict:
    params = {key: _local_param(value) for key, value in data.items()}
    params["actor"] = actor
    labels = {"priority_changed": PRIORITY_LABELS, "support_mode_changed": MODE_LABELS}.get(kind)
    if labels is not None:
        for key in ("old", "new"):
            if key in params:
                params[key] = labels.get(str(params[key]), params[key])
    if "priority" in params:
        params["priority"] = PRIORITY_LABELS.get(str(params["priority"]), params["priority"])
    if "channel" in params:
        params["channel"] = CHANNEL_LABELS.get(str(params["channel"]), params["channel"])
    if kind == "onsite_requested" and "kind" in params:
        params["kind"] = VISIT_KIND_LABELS.get(str(params["kind"]), params["kind"])
    if "role" in params:
        params["role"] = ROLE_WORDS.get(str(params["role"]), params["role"])
    if "target" in params:
        params["target"] = TARGET_WORDS.get(str(params["target"]), params["target"])
    if kind in ("escalated", "warning", "brief_overdue"):
        told = params.get("recipients")
        names = [str(n) for n in told] if isinstance(told, list | tuple) else []
        params["recipients"] = ", ".join(names) if names else _("nobody")
    return params


def timeline_text(event: IncidentEvent, actor: str | None = None) -> str:
    """One event in words in the current language; a kind without a text (or with data
    that does not fit it) gets a general sentence, never an error."""
    data = event.data if isinstance(event.data, dict) else {}
    who = actor if actor is not None else (event.actor_label or _("the service centre"))
    template = INCIDENT_TIMELINE_TEXTS.get(event.kind)
    if template is not None:
        try:
            return str(template) % _params(event.kind, data, who)
        except (KeyError, TypeError, ValueError):
            pass
    return _("The incident was updated (%(what)s) by %(actor)s.",
             what=(event.kind or "").replace("_", " "), actor=who)


def timeline(incident: Incident, viewer: User | None = None) -> list[IncidentTimelineEntry]:
    """The incident's events, oldest first, in words. A customer ``viewer`` sees only
    public events, and anyone outside its organisation is "the service centre"."""
    customer_view = viewer is not None and not is_staff_user(viewer)
    events = [e for e in incident.events if e.public or not customer_view]
    own: set[int] = set()
    if customer_view:
        ids = {e.actor_id for e in events if e.actor_id is not None}
        if ids:
            own = set(db.session.scalars(select(User.id).where(
                User.id.in_(ids), User.customer_id == viewer.customer_id)))
    entries = []
    for event in events:
        actor = event.actor_label or _("the service centre")
        if customer_view and event.actor_id not in own:
            actor = _("the service centre")
        entries.append(IncidentTimelineEntry(at=event.at, kind=event.kind,
                                             text=timeline_text(event, actor), actor=actor,
                                             public=bool(event.public)))
    return entries


__all__ = [
    "CHANNEL_LABELS", "CLOCK_LABELS", "INCIDENT_TIMELINE_TEXTS", "MODE_LABELS",
    "PRIORITY_HELP", "PRIORITY_LABELS", "STAFF_ROLES", "STATUS_LABELS", "TARGET_LABELS",
    "TARGET_STATE_LABELS", "VISIT_KIND_LABELS", "ComplianceRow", "IncidentClocks",
    "IncidentError", "IncidentNotFoundError", "IncidentPage", "IncidentStateError",
    "IncidentTimelineEntry", "QueueRow", "RungView", "TargetClock", "TargetTally",
    "add_note", "assign_engineer", "change_priority", "compliance", "contact_address",
    "contact_customer", "contract_visits", "customer_incidents", "display_name",
    "end_onsite", "engineer_queue", "file_daily_brief", "final_report_document",
    "get_incident", "get_visit", "incident_clocks", "incident_url", "is_staff_user",
    "list_incidents", "local_text", "manager_board", "month_bounds", "open_visit",
    "record_arrival", "record_diagnosis", "report_filename", "report_incident",
    "request_onsite", "resolve_incident", "set_support_mode", "timeline", "timeline_text",
    "visit_brief_days",
]
