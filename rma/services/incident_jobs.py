"""Periodic jobs of the incident clocks, run by ``rma tick`` (``rma.cli.TICK_JOBS``).

* ``escalation_job`` (R-I4, D-7): each rung of the ladder whose hour has passed while the
  incident is unresolved tells the role's holder and deputy, in the app and by e-mail.
* ``warning_job``: at ``Policy.breach_warning_percent`` of a target (contact R-I1,
  diagnosis R-I2, resolution, on-site arrival R-I6) the assigned engineer is warned.
* ``brief_job`` (R-I6): each China-time day of an on-site response without a daily brief
  is flagged to the engineer once the day is over.

Each job takes ``now`` and returns a ``replacement_jobs.JobResult``.

Exactly once, also when a tick runs late, twice, or on two machines at the same moment:
every notice is an ``IncidentAlert`` row, unique on (incident, kind, key), written in its
own transaction together with its in-app notices, e-mails (outbox dedupe keys), timeline
event and audit event. The incident row is locked first (``FOR UPDATE`` on PostgreSQL)
and the alert re-checked against it; a second process waits for the lock and then hits
the unique constraint, rolls back and counts the alert as already fired. A late tick fires
every passed rung, oldest first, each once. A failure on one alert is logged and left for
the next run without stopping the others.

The candidates are read in a constant number of queries (open incidents, their alerts,
their visits and briefs, the calendar, the ladder); the deadlines are computed in Python
by ``warranty``, so a run with nothing due does not query per incident.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from flask import current_app, g
from flask_babel import lazy_gettext as _l
from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload
from werkzeug.routing import BuildError

from rma import clock
from rma.extensions import db
from rma.models import (
    DailyBrief,
    Incident,
    IncidentAlert,
    IncidentEvent,
    IncidentStatus,
    OnsiteVisit,
    Role,
    User,
)
from rma.policy import current_policy
from rma.services import office_calendar
from rma.services.audit import Actor, record
from rma.services.escalation_setup import current_ladder, recipients_for
from rma.services.notifications import (
    ESCALATION_ROLE_TEXTS,
    PRIORITY_TEXTS,
    TARGET_TEXTS,
    notify,
)
from rma.services.outbox import enqueue
from rma.services.replacement_jobs import JobResult
from warranty import Deadline, OfficeCalendar, Policy, escalation_schedule, warning_at
from warranty.incidents import overdue_brief_days

log = logging.getLogger(__name__)

ESCALATION_ACTOR = "tick:escalation"
WARNING_ACTOR = "tick:incident-warning"
BRIEF_ACTOR = "tick:daily-brief"

#: Warned targets of the incident itself, with the policy clock each runs on (D-7): the
#: resolution target runs on the "escalation" clock. On-site arrival is per visit.
INCIDENT_TARGETS = (("contact", "contact"), ("diagnosis", "diagnosis"),
                    ("resolution", "escalation"))
#: An ended on-site visit is checked for missing briefs this long after its end; its last
#: day is overdue the day after the end, so a tick that ran at least once in this window
#: has flagged them all.
ENDED_VISIT_WINDOW = timedelta(days=31)


@dataclass(frozen=True)
class _Told:
    """One addressee of an alert, as stored in ``IncidentAlert.recipients``."""

    user: User
    as_: str  # "holder" | "deputy" | "engineer" | "support"

    def as_json(self) -> dict:
        return {"user_id": self.user.id, "email": self.user.email, "as": self.as_}


@dataclass
class _Tally:
    fired: int = 0
    already: int = 0
    emails: int = 0
    notices: int = 0
    failed: int = 0

    def add(self, outcome: tuple[int, int] | None) -> None:
        if outcome is None:
            self.already += 1
            return
        notices, emails = outcome
        self.fired += 1
        self.notices += notices
        self.emails += emails

    def result(self, name: str, verb: str) -> JobResult:
        text = f"{name}: {verb} {self.fired}, notices {self.notices}, e-mails {self.emails}"
        if self.already:
            text += f", already done {self.already}"
        if self.failed:
            text += f", failed {self.failed}"
        return JobResult(text, busy=bool(self.fired or self.failed), items=self.fired,
                         emails=self.emails, failed=self.failed)


# -- helpers ------------------------------------------------------------------------------
def staff_incident_url(number: str) -> str:
    """The incident's page for staff (``PUBLIC_URL``). Built from the ``support.incident``
    endpoint; its known path when the support pages are not installed."""
    base = current_app.config["PUBLIC_URL"].rstrip("/")
    try:
        path = current_app.url_map.bind("localhost").build("support.incident",
                                                           {"number": number})
    except BuildError:
        path = f"/staff/support/incidents/{number}"
    return base + path


def _local(moment: datetime) -> str:
    local = clock.to_local(moment)
    return f"{local:%Y-%m-%d %H:%M} {local.tzname()}"


def _name(user: User | None) -> str:
    if user is None:
        return ""
    return user.full_name or user.email


def _dedupe(prefix: str, user: User) -> str:
    """One e-mail per alert and addressee; hashed if it would not fit the 200-character
    ``OutboxMessage.dedupe_key``."""
    key = f"{prefix}:{user.id}"
    if len(key) > 200:
        key = "incident:sha256:" + hashlib.sha256(key.encode()).hexdigest()
    return key


def _tell(told: list[_Told], incident: Incident, kind: str, data: dict, template: str,
          context: dict, dedupe_prefix: str, now: datetime) -> tuple[int, int]:
    """A notice of ``kind`` (dated ``now``) and an e-mail from ``template`` to each
    addressee, the e-mail once per ``dedupe_prefix`` and addressee. Returns (notices,
    e-mails queued)."""
    notices = emails = 0
    for person in told:
        notify(person.user, kind, data, incident).created_at = now
        notices += 1
        message = enqueue(to=person.user.email,
                          language=person.user.language or incident.language,
                          template=template, context={**context, "name": _name(person.user)},
                          dedupe_key=_dedupe(dedupe_prefix, person.user))
        emails += message is not None
    return notices, emails


def _lock_incident(incident_id: int) -> Incident | None:
    """The incident, re-read and locked for this alert's transaction (PostgreSQL
    ``FOR UPDATE``; SQLite serialises writers anyway)."""
    return db.session.scalar(
        select(Incident).where(Incident.id == incident_id)
        .options(joinedload(Incident.customer), joinedload(Incident.engineer))
        .with_for_update(of=Incident)
        .execution_options(populate_existing=True)
    )


def _claim(incident: Incident, kind: str, key: str, *, due_at: datetime, now: datetime,
           recipients: list[_Told], hours: int | None = None) -> IncidentAlert | None:
    """Insert the alert; ``None`` (rolled back) when it exists: another run fired it."""
    alert = IncidentAlert(incident_id=incident.id, kind=kind, key=key, hours=hours,
                          due_at=due_at, fired_at=now,
                          recipients=[told.as_json() for told in recipients])
    db.session.add(alert)
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        return None
    return alert


def _active(users: list[User | None]) -> list[User]:
    seen: set[int] = set()
    out = []
    for user in users:
        if user is not None and user.is_active_flag and user.id not in seen:
            seen.add(user.id)
            out.append(user)
    return out


def _active_role(role: Role) -> list[User]:
    return list(db.session.scalars(
        select(User).where(User.role == role, User.is_active_flag.is_(True)).order_by(User.id)
    ))


def _engineer_or_support(*engineers: User | None) -> list[_Told]:
    """The assigned engineer (the first active one given), else every active support
    engineer."""
    for engineer in _active(list(engineers)):
        return [_Told(engineer, "engineer")]
    return [_Told(user, "support") for user in _active_role(Role.SUPPORT)]


def _open_incidents(*where) -> list[Incident]:
    return list(db.session.scalars(
        select(Incident).where(Incident.status != IncidentStatus.RESOLVED,
                               Incident.resolved_at.is_(None), *where)
        .order_by(Incident.reported_at, Incident.id)
    ))


def _fired(kind: str, incident_ids: list[int]) -> set[tuple[int, str]]:
    if not incident_ids:
        return set()
    rows = db.session.execute(
        select(IncidentAlert.incident_id, IncidentAlert.key)
        .where(IncidentAlert.kind == kind, IncidentAlert.incident_id.in_(incident_ids))
    ).all()
    return {(incident_id, key) for incident_id, key in rows}


def _run(name: str, verb: str, due: list[tuple], fire, now: datetime) -> JobResult:
    """Fire each due alert in its own transaction; a failure is logged and retried on
    the next run."""
    db.session.rollback()  # end the read before the per-alert write transactions
    tally = _Tally()
    for args in due:
        try:
            tally.add(fire(*args, now))
        except Exception:  # noqa: BLE001 - logged; the alert is retried on the next run
            db.session.rollback()
            log.exception("%s for incident %s failed", name, args[0])
            tally.failed += 1
    return tally.result(name, verb)


def _calendar(policy) -> OfficeCalendar:
    """The office calendar as the tables say now: ``load_calendar`` caches it on
    ``flask.g``, which lives as long as ``rma tick --loop``, so each run reloads it."""
    g.pop(office_calendar._G_KEY, None)
    return office_calendar.load_calendar(policy)


# -- escalation (R-I4) --------------------------------------------------------------------
def _ladder_policy(policy: Policy) -> Policy:
    """The policy with the ladder in force (the admin's table or SPEC's)."""
    return policy.with_overrides(escalation_ladder=tuple(current_ladder()))


def _schedule(incident: Incident, policy: Policy, calendar: OfficeCalendar):
    return escalation_schedule(incident.reported_at, str(incident.priority), policy, calendar)


def escalation_candidates(now: datetime) -> list[tuple[int, str]]:
    """(incident id, role) of every rung ``escalation_job`` would fire at ``now``: rungs
    of the incident's current priority whose hour has passed, of unresolved incidents,
    whose role was not told yet (a priority change does not tell a role twice, D-7)."""
    policy = _ladder_policy(current_policy())
    if not policy.escalation_ladder:
        return []
    # Office hours only stretch a duration, so no rung is due before reported_at plus the
    # ladder's first hour in calendar time.
    first = min(int(hours) for hours, _priority, _role in policy.escalation_ladder)
    incidents = _open_incidents(Incident.reported_at <= now - timedelta(hours=first))
    if not incidents:
        return []
    fired = _fired("escalation", [incident.id for incident in incidents])
    calendar = _calendar(policy)
    due = []
    for incident in incidents:
        for rung in _schedule(incident, policy, calendar):
            if rung.due_at <= now and (incident.id, rung.role) not in fired:
                due.append((incident.id, rung.role))
    return due


def escalation_job(now: datetime) -> JobResult:
    """R-I4: fire every rung that is due at ``now`` and was not fired yet, once each (see
    the module docstring); a resolved incident fires nothing more."""
    due = escalation_candidates(now)
    if not due:
        return JobResult("escalation: none", busy=False)
    return _run("escalation", "fired", due, fire_escalation, now)


def fire_escalation(incident_id: int, role: str, now: datetime) -> tuple[int, int] | None:
    """Fire one rung; commits. Returns (in-app notices, e-mails queued), or ``None`` when
    it was not fired: another run fired it, or the incident was resolved or its priority
    changed meanwhile so that the rung is not due."""
    incident = _lock_incident(incident_id)
    if incident is None or incident.status == IncidentStatus.RESOLVED:
        db.session.rollback()
        return None
    policy = _ladder_policy(current_policy())
    rung = next((r for r in _schedule(incident, policy, _calendar(policy))
                 if r.role == role and r.due_at <= now), None)
    if rung is None:
        db.session.rollback()
        return None
    told = [_Told(user, as_) for user, as_ in recipients_for(role, incident.customer_id)
            if user is not None and user.is_active_flag]
    alert = _claim(incident, "escalation", role, due_at=rung.due_at, now=now,
                   recipients=told, hours=rung.hours)
    if alert is None:
        return None
    number = incident.number
    data = {"number": number, "role": role, "hours": rung.hours,
            "priority": str(incident.priority)}
    notices = emails = 0
    if told:
        context = _email_context(incident, now)
        context.update(role=ESCALATION_ROLE_TEXTS.get(role, role), hours=rung.hours,
                       due=_local(rung.due_at),
                       holder_name=_name(told[0].user) if told[0].as_ == "holder" else "")
        for person in told:
            kind = "escalation_deputy" if person.as_ == "deputy" else "escalation"
            notify(person.user, kind, data, incident).created_at = now
            notices += 1
            message = enqueue(
                to=person.user.email, language=person.user.language or incident.language,
                template="incident_escalated",
                context={**context, "name": _name(person.user),
                         "deputy": person.as_ == "deputy"},
                dedupe_key=_dedupe(f"incident:{incident.id}:escalation:{role}", person.user))
            emails += message is not None
    else:
        log.warning("incident %s reached the %s rung (%s h) but nobody holds that role "
                    "(customer %s): set a holder on the escalation page", number, role,
                    rung.hours, incident.customer_id)
        for manager in _active_role(Role.MANAGER):
            notify(manager, "escalation_unassigned", data, incident).created_at = now
            notices += 1
    before = {"escalated_role": incident.escalated_role,
              "escalated_hours": incident.escalated_hours}
    if incident.escalated_hours is None or rung.hours >= incident.escalated_hours:
        incident.escalated_role = role
        incident.escalated_hours = rung.hours
    db.session.add(IncidentEvent(
        incident_id=incident.id, at=now, kind="escalated", public=False, actor_label="",
        data={"role": role, "hours": rung.hours,
              "recipients": [_name(person.user) for person in told]}))
    event = record(Actor(label=ESCALATION_ACTOR), "incident.escalated", "incident",
                   incident.id, before=before,
                   after={"escalated_role": incident.escalated_role,
                          "escalated_hours": incident.escalated_hours,
                          "rung": {"role": role, "hours": rung.hours,
                                   "due_at": rung.due_at.isoformat()},
                          "recipients": alert.recipients})
    event.at = now
    db.session.commit()
    return notices, emails


def _email_context(incident: Incident, now: datetime) -> dict:
    return {
        "number": incident.number,
        "title": incident.title,
        "customer_name": incident.customer.name,
        "priority": PRIORITY_TEXTS.get(str(incident.priority), str(incident.priority)),
        "reported": _local(incident.reported_at),
        "engineer": _name(incident.engineer),
        "url": staff_incident_url(incident.number),
        "vendor_name": current_app.config["VENDOR_NAME"],
    }


# -- breach warnings ----------------------------------------------------------------------
def _incident_deadlines(incident: Incident, policy) -> list[tuple[str, Deadline]]:
    """(alert key, deadline) of the targets of ``incident`` not met yet."""
    done = {"contact": incident.contacted_at, "diagnosis": incident.diagnosed_at,
            "resolution": incident.resolved_at}
    due = {"contact": incident.contact_due_at, "diagnosis": incident.diagnosis_due_at,
           "resolution": incident.resolution_due_at}
    return [(target, Deadline(target=target, start=incident.reported_at, due_at=due[target],
                              clock=policy.clock_for(clock_target), missing=None))
            for target, clock_target in INCIDENT_TARGETS if done[target] is None]


def _visit_deadline(visit: OnsiteVisit, policy) -> tuple[str, Deadline]:
    return (f"onsite_arrival:{visit.id}",
            Deadline(target="onsite_arrival", start=visit.requested_at,
                     due_at=visit.arrival_due_at, clock=policy.clock_for("onsite_arrival"),
                     missing=None))


def _waiting_visits(incident_ids: list[int]) -> dict[int, list[OnsiteVisit]]:
    visits: dict[int, list[OnsiteVisit]] = defaultdict(list)
    if incident_ids:
        for visit in db.session.scalars(
            select(OnsiteVisit).where(OnsiteVisit.incident_id.in_(incident_ids),
                                      OnsiteVisit.arrived_at.is_(None),
                                      OnsiteVisit.ended_at.is_(None))
            .order_by(OnsiteVisit.id)
        ):
            visits[visit.incident_id].append(visit)
    return visits


def warning_candidates(now: datetime) -> list[tuple[int, str]]:
    """(incident id, key) of every warning ``warning_job`` would send at ``now``: targets
    not met whose warning instant (``warranty.warning_at``) has passed and that were not
    warned yet. The key is the target, or "onsite_arrival:<visit id>"."""
    incidents = _open_incidents(Incident.reported_at <= now)
    if not incidents:
        return []
    ids = [incident.id for incident in incidents]
    fired = _fired("warning", ids)
    visits = _waiting_visits(ids)
    policy = current_policy()
    calendar = _calendar(policy)
    due = []
    for incident in incidents:
        deadlines = _incident_deadlines(incident, policy)
        deadlines += [_visit_deadline(visit, policy) for visit in visits.get(incident.id, ())]
        for key, deadline in deadlines:
            if (incident.id, key) not in fired and warning_at(deadline, policy, calendar) <= now:
                due.append((incident.id, key))
    return due


def warning_job(now: datetime) -> JobResult:
    """Warn the assigned engineer (every active support engineer when none is assigned)
    once per target when ``breach_warning_percent`` of it has passed and it is not met;
    a tick that comes after the breach still warns, saying it is breached."""
    due = warning_candidates(now)
    if not due:
        return JobResult("incident-warnings: none", busy=False)
    return _run("incident-warnings", "warned", due, fire_warning, now)


def fire_warning(incident_id: int, key: str, now: datetime) -> tuple[int, int] | None:
    """Send one warning; commits. ``None`` when it was not sent (sent by another run, or
    the target was met or the incident resolved meanwhile)."""
    incident = _lock_incident(incident_id)
    if incident is None or incident.status == IncidentStatus.RESOLVED:
        db.session.rollback()
        return None
    policy = current_policy()
    engineers = [incident.engineer]
    if key.startswith("onsite_arrival:"):
        visit = db.session.get(OnsiteVisit, int(key.split(":", 1)[1]),
                               populate_existing=True)
        if (visit is None or visit.incident_id != incident.id or visit.arrived_at is not None
                or visit.ended_at is not None):
            db.session.rollback()
            return None
        deadline = _visit_deadline(visit, policy)[1]
        engineers.insert(0, visit.engineer)
    else:
        deadline = dict(_incident_deadlines(incident, policy)).get(key)
        if deadline is None:
            db.session.rollback()
            return None
    warn_at = warning_at(deadline, policy, _calendar(policy))
    if warn_at > now:
        db.session.rollback()
        return None
    told = _engineer_or_support(*engineers)
    alert = _claim(incident, "warning", key, due_at=warn_at, now=now, recipients=told)
    if alert is None:
        return None
    breached = now > deadline.due_at
    data = {"number": incident.number, "target": deadline.target,
            "due": _local(deadline.due_at)}
    context = _email_context(incident, now)
    context.update(target=TARGET_TEXTS.get(deadline.target, deadline.target),
                   due=_local(deadline.due_at), breached=breached,
                   percent=policy.breach_warning_percent)
    notices, emails = _tell(told, incident, "warning_breached" if breached else "warning",
                            data, "incident_warning", context,
                            f"incident:{incident.id}:warning:{key}", now)
    if not told:
        log.warning("incident %s: %s target warning but no active support engineer to tell",
                    incident.number, deadline.target)
    db.session.add(IncidentEvent(
        incident_id=incident.id, at=now, kind="warning", public=False, actor_label="",
        data={"target": deadline.target, "due_at": deadline.due_at.isoformat(),
              "due": data["due"], "breached": breached,
              "recipients": [_name(person.user) for person in told]}))
    event = record(Actor(label=WARNING_ACTOR), "incident.warning_sent", "incident",
                   incident.id, after={"key": key, "target": deadline.target,
                                       "due_at": deadline.due_at.isoformat(),
                                       "warn_at": warn_at.isoformat(), "breached": breached,
                                       "recipients": alert.recipients})
    event.at = now
    db.session.commit()
    return notices, emails


# -- overdue daily briefs (R-I6) ----------------------------------------------------------
def _visit_overdue_days(visit: OnsiteVisit, now: datetime, filed, policy) -> list[date]:
    if visit.arrived_at is None:
        return []
    return overdue_brief_days(visit.arrived_at, visit.ended_at, now, policy.zone, filed)


def brief_candidates(now: datetime) -> list[tuple[int, str]]:
    """(incident id, "<visit id>:<day>") of every missing daily brief ``brief_job`` would
    flag at ``now``: the China-time days of an on-site response, from the arrival through
    its end (or yesterday while it goes on), without a brief and not flagged yet."""
    visits = list(db.session.scalars(
        select(OnsiteVisit).where(
            OnsiteVisit.arrived_at.is_not(None), OnsiteVisit.arrived_at <= now,
            or_(OnsiteVisit.ended_at.is_(None), OnsiteVisit.ended_at >= now - ENDED_VISIT_WINDOW))
        .order_by(OnsiteVisit.id)
    ))
    if not visits:
        return []
    filed: dict[int, set[date]] = defaultdict(set)
    for visit_id, day in db.session.execute(
        select(DailyBrief.visit_id, DailyBrief.day)
        .where(DailyBrief.visit_id.in_([visit.id for visit in visits]))
    ):
        filed[visit_id].add(day)
    fired = _fired("brief_overdue", sorted({visit.incident_id for visit in visits}))
    policy = current_policy()
    due = []
    for visit in visits:
        for day in _visit_overdue_days(visit, now, filed[visit.id], policy):
            key = f"{visit.id}:{day.isoformat()}"
            if (visit.incident_id, key) not in fired:
                due.append((visit.incident_id, key))
    return due


def brief_job(now: datetime) -> JobResult:
    """R-I6: flag each missing daily brief once, to the visit's engineer (else the
    incident's, else every active support engineer), in the app and by e-mail."""
    due = brief_candidates(now)
    if not due:
        return JobResult("daily-briefs: none", busy=False)
    return _run("daily-briefs", "flagged", due, flag_brief_overdue, now)


def flag_brief_overdue(incident_id: int, key: str, now: datetime) -> tuple[int, int] | None:
    """Flag one missing brief; commits. ``None`` when not flagged (flagged by another run,
    or the brief was filed meanwhile)."""
    incident = _lock_incident(incident_id)
    if incident is None:
        db.session.rollback()
        return None
    visit_id, day_text = key.split(":", 1)
    day = date.fromisoformat(day_text)
    visit = db.session.get(OnsiteVisit, int(visit_id), populate_existing=True)
    if visit is None or visit.incident_id != incident.id:
        db.session.rollback()
        return None
    policy = current_policy()
    filed = set(db.session.scalars(select(DailyBrief.day).where(DailyBrief.visit_id == visit.id)))
    if day not in _visit_overdue_days(visit, now, filed, policy):
        db.session.rollback()
        return None
    # The brief was due by the end of its China-time day.
    day_end = datetime.combine(day + timedelta(days=1), time(0), policy.zone)
    told = _engineer_or_support(visit.engineer, incident.engineer)
    alert = _claim(incident, "brief_overdue", key, due_at=day_end, now=now, recipients=told)
    if alert is None:
        return None
    data = {"number": incident.number, "day": day.isoformat(), "visit_id": visit.id}
    context = _email_context(incident, now)
    context.update(day=day.isoformat(), site_address=visit.site_address,
                   arrived=_local(visit.arrived_at), ongoing=visit.ended_at is None)
    notices, emails = _tell(told, incident, "brief_overdue", data, "brief_overdue", context,
                            f"incident:{incident.id}:brief:{key}", now)
    db.session.add(IncidentEvent(
        incident_id=incident.id, at=now, kind="brief_overdue", public=False, actor_label="",
        data={"day": day.isoformat(), "visit_id": visit.id,
              "recipients": [_name(person.user) for person in told]}))
    event = record(Actor(label=BRIEF_ACTOR), "onsite_visit.brief_overdue", "onsite_visit",
                   visit.id, after={"incident_id": incident.id, "day": day.isoformat(),
                                    "recipients": alert.recipients})
    event.at = now
    db.session.commit()
    return notices, emails


def _register_timeline_text() -> None:
    """The incident timeline's text for a flagged brief (staff only, ``public`` False)."""
    try:
        from rma.services.incidents import INCIDENT_TIMELINE_TEXTS
    except ImportError:  # the incident services are not installed
        return
    INCIDENT_TIMELINE_TEXTS.setdefault(
        "brief_overdue", _l("The daily brief for %(day)s was not filed."))


_register_timeline_text()

__all__ = ["BRIEF_ACTOR", "ENDED_VISIT_WINDOW", "ESCALATION_ACTOR", "WARNING_ACTOR",
           "brief_candidates", "brief_job", "escalation_candidates", "escalation_job",
           "fire_escalation", "fire_warning", "flag_brief_overdue", "staff_incident_url",
           "warning_candidates", "warning_job"]
