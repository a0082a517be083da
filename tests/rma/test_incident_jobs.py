"""Tick jobs of the incident clocks (rma/services/incident_jobs.py, issue 6): the
escalation ladder (R-I4, D-7), breach warnings at 80 %, overdue daily briefs (R-I6), and
the in-app notices (rma/services/notifications.py).

Incidents go through the real services (``rma.services.incidents``); time is an input:
the test clock (``FIXED_NOW``) is set to each action's instant and the jobs get ``now``.
Times in the comments are China time (CST, UTC+8); 2026-11-23 is a Monday.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from rma.extensions import db
from rma.models import (
    AuditEvent,
    Customer,
    Incident,
    IncidentAlert,
    IncidentEvent,
    Notification,
    OnsiteVisit,
    OutboxMessage,
    User,
)
from rma.services import ForbiddenError, notifications
from rma.services import incident_jobs as jobs
from rma.services import incidents as svc
from rma.services.audit import Actor
from tests.conftest import PG_URL, count_queries
from tests.rma import incident_helpers as helpers
from tests.rma.incident_helpers import (
    HOLDERS,
    STAFF,
    build_incident_world,
    email_of,
    incident,
    user,
)

CST = ZoneInfo("Asia/Shanghai")
H = timedelta(hours=1)
M = timedelta(minutes=1)

needs_postgres = pytest.mark.parametrize("database_url", [
    pytest.param("postgresql", marks=pytest.mark.skipif(not PG_URL, reason="needs PostgreSQL"))
], indirect=True)

# The world of tests/rma/incident_helpers.py: support engineers sam and sue, manager mia,
# and the holders of every role (managers), with deputies where it says so.
ENGINEERS = ("sam", "sue")
MANAGERS = sorted(name for name, role in STAFF.items() if role == "manager")
# role -> (holder, deputy) of the global roles (the account manager's is the fallback).
GLOBAL = {role: (holder, deputy) for role, holder, deputy, key in HOLDERS if key is None}
# customer key -> (account manager, deputy); the others have the global one.
ACCOUNT_MANAGERS = {key: (holder, deputy) for role, holder, deputy, key in HOLDERS
                    if key is not None}


def cst(day: int, hour: int, minute: int = 0) -> datetime:
    """An instant of November 2026 in China time, as aware UTC."""
    return datetime(2026, 11, day, hour, minute, tzinfo=CST).astimezone(UTC)


def email(name: str) -> str:
    return email_of(name)


@pytest.fixture
def ctx(app):
    """A request context in English: texts are compared as written."""
    with app.test_request_context(headers={"Accept-Language": "en"}):
        yield app


def at(app, moment: datetime) -> None:
    app.config["FIXED_NOW"] = moment.isoformat()


def uid(name: str) -> int:
    return user(name).id


def customer(key: str) -> Customer:
    return helpers.customer(key.lower())


@pytest.fixture
def world(app):
    return build_incident_world(app)


def report(app, key: str, priority: str, moment: datetime, title: str = "Core switch down"
           ) -> str:
    """A phone call logged by sam at ``moment`` for customer ``key``: the number."""
    at(app, moment)
    incident = svc.report_incident(
        Actor(user=user("sam")), customer=customer(key), priority=priority, title=title,
        description="All VPN tokens fail to authenticate.", channel="phone",
        reporter_name="Zhang Wei", reporter_contact="zhang@bank.example")
    return incident.number


def contact(app, number: str, moment: datetime, engineer: str = "sam") -> None:
    at(app, moment)
    svc.contact_customer(Actor(user=user(engineer)), incident(number),
                         engineer_id=uid(engineer), note="called back")


def diagnose(app, number: str, moment: datetime) -> None:
    at(app, moment)
    svc.record_diagnosis(Actor(user=user("sam")), incident(number), "Expired CA certificate.")


def resolve(app, number: str, moment: datetime) -> None:
    at(app, moment)
    svc.resolve_incident(Actor(user=user("sam")), incident(number), "Certificate renewed.")


def reprioritise(app, number: str, priority: str, moment: datetime) -> None:
    at(app, moment)
    svc.change_priority(Actor(user=user("mia")), incident(number), priority,
                        "the customer's whole branch network is down")


def run_all(app, now: datetime) -> list:
    """One tick of the three incident jobs at ``now`` (the clock says ``now`` too)."""
    at(app, now)
    results = [jobs.escalation_job(now), jobs.warning_job(now), jobs.brief_job(now)]
    db.session.remove()
    return results


def alerts(kind: str, number: str | None = None) -> list[IncidentAlert]:
    query = select(IncidentAlert).where(IncidentAlert.kind == kind)
    if number is not None:
        query = query.join(Incident).where(Incident.number == number)
    return list(db.session.scalars(query.order_by(IncidentAlert.id)))


def escalations(number: str) -> dict[str, tuple[datetime, datetime, list[str]]]:
    """role -> (due_at, fired_at, [e-mail as holder/deputy]) of the incident's rungs."""
    return {a.key: (a.due_at, a.fired_at, [f"{r['email']} {r['as']}" for r in a.recipients])
            for a in alerts("escalation", number)}


def notices(kind: str | None = None) -> Counter:
    """(user name, incident number, kind, role or target) -> how many notices."""
    rows = db.session.execute(
        select(User.email, Incident.number, Notification.kind, Notification.data)
        .join(User, User.id == Notification.user_id)
        .join(Incident, Incident.id == Notification.incident_id)
    ).all()
    return Counter((mail.split("@")[0], number, k, data.get("role") or data.get("target")
                    or data.get("day"))
                   for mail, number, k, data in rows if kind is None or k == kind)


def mails(template: str) -> Counter:
    """(recipient name, subject) -> how many e-mails of ``template`` in the outbox."""
    rows = db.session.execute(select(OutboxMessage.to_address, OutboxMessage.subject)
                              .where(OutboxMessage.template == template)).all()
    return Counter((to.split("@")[0], subject) for to, subject in rows)


def quarter_after(moment: datetime) -> datetime:
    """The first tick of a 15-minute tick (on the quarter hour) at or after ``moment``."""
    base = moment.replace(minute=0, second=0, microsecond=0)
    while base < moment:
        base += 15 * M
    return base


def expected(number: str, rungs: dict[str, datetime], fired: dict[str, datetime] | None = None,
             customer_key: str = "A") -> dict:
    """What ``escalations(number)`` should say: each role's due time, the tick that
    fired it (default: the first quarter hour at or after it) and who was told."""
    out = {}
    for role, due in rungs.items():
        if role == "account_manager":
            holder, deputy = ACCOUNT_MANAGERS.get(customer_key.lower(),
                                                  GLOBAL["account_manager"])
        else:
            holder, deputy = GLOBAL[role]
        told = [f"{email(holder)} holder"] + ([f"{email(deputy)} deputy"] if deputy else [])
        out[role] = (due, (fired or {}).get(role, quarter_after(due)), told)
    return out


# -- (1) a simulated week ------------------------------------------------------------------
def test_r_i4_simulated_week_every_rung_once_to_the_right_people(ctx, world):
    app = ctx
    # Actions at fixed instants, applied before the tick at the same instant.
    actions: list[tuple[datetime, str, object]] = []
    numbers: dict[str, str] = {}

    def plan(moment, label, fn):
        actions.append((moment, label, fn))

    plan(cst(23, 9), "U1", lambda: numbers.__setitem__("U1", report(app, "A", "urgent",
                                                                    cst(23, 9))))
    plan(cst(23, 10, 10), "U2", lambda: numbers.__setitem__("U2", report(app, "B", "urgent",
                                                                         cst(23, 10, 10))))
    plan(cst(23, 10, 20), "U2 contact", lambda: contact(app, numbers["U2"], cst(23, 10, 20)))
    plan(cst(23, 11), "U2 diagnose", lambda: diagnose(app, numbers["U2"], cst(23, 11)))
    plan(cst(23, 12, 30), "U2 resolve", lambda: resolve(app, numbers["U2"], cst(23, 12, 30)))
    plan(cst(23, 14), "S1", lambda: numbers.__setitem__("S1", report(app, "A", "serious",
                                                                     cst(23, 14))))
    plan(cst(23, 14, 10), "S1 contact",
         lambda: contact(app, numbers["S1"], cst(23, 14, 10), "sue"))
    plan(cst(23, 19), "S1 urgent",
         lambda: reprioritise(app, numbers["S1"], "urgent", cst(23, 19)))
    plan(cst(24, 9), "S1 diagnose", lambda: diagnose(app, numbers["S1"], cst(24, 9)))
    plan(cst(25, 10), "S1 resolve", lambda: resolve(app, numbers["S1"], cst(25, 10)))
    plan(cst(24, 22, 5), "U3", lambda: numbers.__setitem__("U3", report(app, "C", "urgent",
                                                                        cst(24, 22, 5))))
    plan(cst(24, 22, 40), "U3 contact", lambda: contact(app, numbers["U3"], cst(24, 22, 40)))
    plan(cst(24, 22, 45), "U3 diagnose", lambda: diagnose(app, numbers["U3"], cst(24, 22, 45)))
    plan(cst(24, 22, 50), "U3 resolve", lambda: resolve(app, numbers["U3"], cst(24, 22, 50)))
    plan(cst(25, 9, 30), "S2", lambda: numbers.__setitem__("S2", report(app, "B", "serious",
                                                                        cst(25, 9, 30))))
    plan(cst(25, 9, 40), "S2 contact", lambda: contact(app, numbers["S2"], cst(25, 9, 40)))
    plan(cst(25, 19, 50), "S2 diagnose", lambda: diagnose(app, numbers["S2"], cst(25, 19, 50)))
    plan(cst(25, 20), "S2 resolve", lambda: resolve(app, numbers["S2"], cst(25, 20)))
    plan(cst(26, 8), "G1", lambda: numbers.__setitem__("G1", report(app, "C", "general",
                                                                    cst(26, 8))))
    plan(cst(27, 17), "G2", lambda: numbers.__setitem__("G2", report(app, "A", "general",
                                                                     cst(27, 17))))
    plan(cst(27, 17, 10), "G2 contact", lambda: contact(app, numbers["G2"], cst(27, 17, 10)))
    plan(cst(28, 4), "G2 urgent", lambda: reprioritise(app, numbers["G2"], "urgent", cst(28, 4)))
    plan(cst(28, 9, 50), "G2 diagnose", lambda: diagnose(app, numbers["G2"], cst(28, 9, 50)))
    plan(cst(28, 10), "G2 resolve", lambda: resolve(app, numbers["G2"], cst(28, 10)))
    actions.sort(key=lambda action: action[0])

    tick, end = cst(23, 8), cst(30, 8)
    pending = list(actions)
    busy_ticks = 0
    while tick <= end:
        while pending and pending[0][0] <= tick:
            pending.pop(0)[2]()
            db.session.remove()
        results = run_all(app, tick)
        busy_ticks += any(result.busy for result in results)
        assert not any(result.failed for result in results), [r.summary for r in results]
        tick += 15 * M
    assert not pending

    want = {
        # R-I4 rungs, each once, at the first tick at or after its hour, to holder + deputy.
        "U1": expected(numbers["U1"], {
            "account_manager": cst(23, 10), "technical_lead": cst(23, 11),
            "service_director": cst(23, 13), "cto": cst(23, 21), "president": cst(24, 9)}),
        # Resolved at 12:30, between the 2-hour and the 4-hour rung. Customer B has no
        # account manager of its own: the global one is told.
        "U2": expected(numbers["U2"], {
            "account_manager": cst(23, 11, 10), "technical_lead": cst(23, 12, 10)},
            customer_key="B"),
        # Serious, then urgent at 19:00 (D-7): the urgent 4-hour rung (18:00) fires on the
        # next tick; the roles already told under "serious" are not told again.
        "S1": expected(numbers["S1"], {
            "account_manager": cst(23, 16), "technical_lead": cst(23, 18),
            "service_director": cst(23, 18), "cto": cst(24, 2), "president": cst(24, 14)},
            fired={"service_director": cst(23, 19)}),
        "U3": {},  # resolved within the hour
        "S2": expected(numbers["S2"], {
            "account_manager": cst(25, 11, 30), "technical_lead": cst(25, 13, 30)},
            customer_key="B"),
        "G1": expected(numbers["G1"], {
            "account_manager": cst(26, 12), "technical_lead": cst(26, 20),
            "service_director": cst(27, 8), "cto": cst(28, 8), "president": cst(29, 8)},
            customer_key="C"),
        # General, the account manager told at 4 h; urgent at 04:00: the passed urgent
        # rungs fire at once, the 12-hour one at 05:00; resolved before the president's.
        "G2": expected(numbers["G2"], {
            "account_manager": cst(27, 21), "technical_lead": cst(27, 19),
            "service_director": cst(27, 21), "cto": cst(28, 5)},
            fired={"technical_lead": cst(28, 4), "service_director": cst(28, 4)}),
    }
    for label, rungs in want.items():
        assert escalations(numbers[label]) == rungs, label

    # In the app and by e-mail: exactly one per (person, incident, role).
    fired = [(a.incident.number, a.key, r["email"].split("@")[0], r["as"])
             for a in alerts("escalation") for r in a.recipients]
    assert len(fired) == sum(len(told) for rungs in want.values()
                             for _due, _at, told in rungs.values())
    in_app = notices()
    mail = mails("incident_escalated")
    for number, role, name, as_ in fired:
        kind = "escalation_deputy" if as_ == "deputy" else "escalation"
        assert in_app[(name, number, kind, role)] == 1, (number, role, name)
    assert sum(n for (_u, _n, kind, _r), n in in_app.items()
               if kind.startswith("escalation")) == len(fired)
    assert sum(mail.values()) == len(fired)
    assert set(mail.values()) == {1}
    assert ("pres", f"Escalation (president, 24 h): incident {numbers['U1']} of Acme Bank "
            "is not resolved") in mail
    assert ("gus", f"Escalation (account manager, 4 h): incident {numbers['G1']} of Gamma "
            "Securities is not resolved") in mail
    assert not notices("escalation_unassigned")  # every role has a holder
    deputy_mails = db.session.scalars(select(OutboxMessage.body_text).where(
        OutboxMessage.template == "incident_escalated", OutboxMessage.to_address == email("vp"))
        .order_by(OutboxMessage.id)).all()  # U1's and S1's president rungs: no row order
    assert any(f"You are the deputy of the president (Pres). Incident {numbers['U1']} of Acme "
               "Bank has not been resolved 24 hours after it was reported" in body
               for body in deputy_mails), deputy_mails

    # Escalation state on the incident, history and audit.
    u1, g2 = incident(numbers["U1"]), incident(numbers["G2"])
    assert (u1.escalated_role, u1.escalated_hours) == ("president", 24)
    assert (g2.escalated_role, g2.escalated_hours) == ("cto", 12)
    assert incident(numbers["U3"]).escalated_role is None
    escalated = db.session.scalars(select(IncidentEvent).where(
        IncidentEvent.kind == "escalated")).all()
    assert len(escalated) == len(alerts("escalation")) == 5 + 2 + 5 + 2 + 5 + 4
    assert not any(event.public for event in escalated)
    assert db.session.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "incident.escalated")) == 23

    # Breach warnings at 80 %, once each. U1 nobody contacted: its contact warning (24 of
    # 30 minutes, 09:24) went to every support engineer at the 09:30 tick; diagnosis and
    # resolution (24 h each, warned at 19.2 h = Tue 04:12) at 04:15. U2 was contacted at
    # 10:20, before its contact warning at 10:34: none.
    warned = {(a.incident.number, a.key): (a.fired_at, sorted(r["email"] for r in a.recipients))
              for a in alerts("warning")}
    everyone = sorted(email(name) for name in ENGINEERS)
    assert warned[(numbers["U1"], "contact")] == (cst(23, 9, 30), everyone)
    assert warned[(numbers["U1"], "diagnosis")] == (cst(24, 4, 15), everyone)
    assert warned[(numbers["U1"], "resolution")] == (cst(24, 4, 15), everyone)
    assert not [key for key in warned if key[0] == numbers["U2"]]
    # U3 (Tue 22:05) was contacted at 22:40: warned at the 22:30 tick (80 % = 22:29).
    assert [key for key in warned if key[0] == numbers["U3"]] == [(numbers["U3"], "contact")]
    assert warned[(numbers["U3"], "contact")] == (cst(24, 22, 30), everyone)
    # S1 (sue's) diagnosis, 24 h from Mon 14:00, warned at Tue 09:12 -- diagnosed at 09:00.
    assert (numbers["S1"], "diagnosis") not in warned
    assert warned[(numbers["S1"], "resolution")][1] == [email("sue")]
    assert set(notices("warning").values()) | set(notices("warning_breached").values()) == {1}
    assert set(mails("incident_warning").values()) == {1}
    assert busy_ticks < 60  # the other ~610 ticks found nothing to do


# -- (2) a late tick, (3) a second tick ---------------------------------------------------
def test_r_i4_late_tick_fires_every_passed_rung_once(ctx, world):
    app = ctx
    number = report(app, "A", "urgent", cst(23, 9))
    late = cst(24, 15)  # 30 hours later: every urgent rung has passed
    result = run_all(app, late)[0]
    assert result.summary == "escalation: fired 5, notices 9, e-mails 9"
    assert (result.items, result.emails, result.busy) == (5, 9, True)
    assert escalations(number) == expected(number, {
        "account_manager": cst(23, 10), "technical_lead": cst(23, 11),
        "service_director": cst(23, 13), "cto": cst(23, 21), "president": cst(24, 9)},
        fired=dict.fromkeys(("account_manager", "technical_lead", "service_director", "cto",
                             "president"), late))
    assert (incident(number).escalated_role, incident(number).escalated_hours) == (
        "president", 24)
    assert sum(mails("incident_escalated").values()) == 9

    # (3) Running again, at the same instant or later, fires nothing more.
    for moment in (late, late, late + 48 * H):
        again = run_all(app, moment)[0]
        assert again.summary == "escalation: none"
        assert again.busy is False
    assert len(alerts("escalation")) == 5
    assert sum(mails("incident_escalated").values()) == 9
    assert sum(n for (_u, _n, kind, _r), n in notices().items()
               if kind.startswith("escalation")) == 9


def test_r_i4_resolved_before_the_rung_never_fires_it(ctx, world):
    app = ctx
    number = report(app, "B", "serious", cst(23, 9))
    run_all(app, cst(23, 11))  # the 2-hour rung
    contact(app, number, cst(23, 11, 5))
    diagnose(app, number, cst(23, 11, 10))
    resolve(app, number, cst(23, 12, 59))  # before the 4-hour rung at 13:00
    for moment in (cst(23, 13), cst(24, 9), cst(26, 9)):
        assert run_all(app, moment)[0].summary == "escalation: none"
    assert list(escalations(number)) == ["account_manager"]


def test_r_i4_role_without_holder_is_recorded_and_managers_are_told(ctx, world, caplog):
    app = ctx
    from rma.models import EscalationHolder

    db.session.execute(EscalationHolder.__table__.delete().where(
        EscalationHolder.role == "technical_lead"))
    db.session.commit()
    number = report(app, "A", "urgent", cst(23, 9))
    with caplog.at_level(logging.WARNING, logger="rma.services.incident_jobs"):
        result = run_all(app, cst(23, 11))[0]
    # account manager + deputy, and the technical lead's notice to the managers: mia and
    # every holder (all managers here).
    managers = len(MANAGERS)
    assert result.summary == f"escalation: fired 2, notices {2 + managers}, e-mails 2"
    lead = alerts("escalation", number)[1]
    assert (lead.key, lead.recipients, lead.hours) == ("technical_lead", [], 2)
    told = notices("escalation_unassigned")
    assert told[("mia", number, "escalation_unassigned", "technical_lead")] == 1
    assert sum(told.values()) == managers
    assert any("nobody holds that role" in record.getMessage() for record in caplog.records)
    assert (incident(number).escalated_role, incident(number).escalated_hours) == (
        "technical_lead", 2)
    assert run_all(app, cst(23, 12))[0].summary == "escalation: none"  # once


def test_d_7_office_clock_escalates_after_office_hours(ctx, world):
    """D-7, R-I7: with the escalation clock on office hours, the 1-hour rung of an
    urgent incident reported on Friday 17:30 is due on Monday at 9:30."""
    app = ctx
    app.config["POLICY"] = {"target_clock": {"escalation": "office"}}
    app.extensions.pop("rma_policy", None)
    number = report(app, "A", "urgent", cst(27, 17, 30))
    for moment in (cst(27, 18, 30), cst(28, 12), cst(30, 9, 15)):
        assert run_all(app, moment)[0].summary == "escalation: none"
    result = run_all(app, cst(30, 9, 30))[0]
    assert result.summary == "escalation: fired 1, notices 2, e-mails 2"
    assert escalations(number)["account_manager"][:2] == (cst(30, 9, 30), cst(30, 9, 30))


# -- (4) two machines at the same instant ------------------------------------------------
@needs_postgres
def test_r_i4_two_ticks_at_once_fire_each_alert_once(app, world):
    with app.test_request_context(headers={"Accept-Language": "en"}):
        numbers = [report(app, key, "urgent", cst(23, 9, minute))
                   for minute, key in enumerate("ABCABC")]
    now = cst(23, 14)  # three rungs each: account manager, technical lead, service director
    at(app, now)
    barrier = threading.Barrier(2)
    results: list = [None, None]

    def run(index: int) -> None:
        with app.test_request_context(headers={"Accept-Language": "en"}):
            try:
                barrier.wait()
                results[index] = jobs.escalation_job(now)
            except Exception as error:  # noqa: BLE001 - the test reports any error
                results[index] = ("crash", repr(error))
            finally:
                db.session.remove()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert all(isinstance(r, jobs.JobResult) for r in results), results
    assert sum(r.items for r in results) == 18, [r.summary for r in results]
    assert sum(r.failed for r in results) == 0
    with app.app_context():
        keys = Counter((a.incident.number, a.key) for a in alerts("escalation"))
        assert len(keys) == 18 and set(keys.values()) == {1}
        assert set(keys) == {(n, role) for n in numbers
                             for role in ("account_manager", "technical_lead",
                                          "service_director")}
        assert set(notices().values()) == {1}
        assert set(mails("incident_escalated").values()) == {1}
        # A and B's account managers have deputies; C's is the global one without.
        # A: amy + ann, tom + tia, dora + dan; B and C: gus, tom + tia, dora + dan.
        assert sum(mails("incident_escalated").values()) == sum(
            r.emails for r in results) == 2 * (6 + 5 + 5)


# -- (5) warnings at 80 % ------------------------------------------------------------------
def test_warning_at_80_percent_goes_to_the_assigned_engineer_once(ctx, world):
    app = ctx
    number = report(app, "A", "urgent", cst(23, 9))
    contact(app, number, cst(23, 9, 10), "sue")
    # Diagnosis (24 h) and resolution (urgent: 24 h) are warned at 19.2 h: Tue 04:12.
    assert run_all(app, cst(24, 4, 11))[1].summary == "incident-warnings: none"
    result = run_all(app, cst(24, 4, 12))[1]
    assert result.summary == "incident-warnings: warned 2, notices 2, e-mails 2"
    warned = {a.key: (a.due_at, a.recipients) for a in alerts("warning", number)}
    sue = [{"user_id": uid("sue"), "email": email("sue"), "as": "engineer"}]
    assert warned == {"diagnosis": (cst(24, 4, 12), sue), "resolution": (cst(24, 4, 12), sue)}
    assert notices("warning") == Counter({("sue", number, "warning", "diagnosis"): 1,
                                          ("sue", number, "warning", "resolution"): 1})
    assert mails("incident_warning") == Counter({
        ("sue", f"Target at risk: diagnosis of incident {number} is due 2026-11-24 09:00 CST"): 1,
        ("sue", f"Target at risk: resolution of incident {number} is due 2026-11-24 09:00 CST"): 1,
    })
    body = db.session.scalars(select(OutboxMessage.body_text).where(
        OutboxMessage.template == "incident_warning")).first()
    assert (f"80 % of the time for the diagnosis target of incident {number} of Acme Bank "
            "has passed: it is due at 2026-11-24 09:00 CST.") in body
    assert f"/staff/support/incidents/{number}" in body
    for moment in (cst(24, 4, 30), cst(24, 10)):  # once, also after the breach
        assert run_all(app, moment)[1].summary == "incident-warnings: none"
    notice = db.session.scalars(select(Notification).where(
        Notification.user_id == uid("sue"), Notification.kind == "warning")).first()
    assert notifications.notification_text(notice) == (
        f"Incident {number}: the diagnosis target is due at 2026-11-24 09:00 CST.")
    events = db.session.scalars(select(IncidentEvent).where(
        IncidentEvent.kind == "warning")).all()
    assert len(events) == 2 and not any(event.public for event in events)


def test_warning_without_engineer_goes_to_every_support_engineer(ctx, world):
    app = ctx
    number = report(app, "B", "general", cst(23, 9))
    result = run_all(app, cst(23, 9, 24))[1]  # 24 of 30 minutes
    assert result.summary == "incident-warnings: warned 1, notices 2, e-mails 2"
    (alert,) = alerts("warning", number)
    assert alert.key == "contact"
    assert sorted((r["email"], r["as"]) for r in alert.recipients) == [
        (email("sam"), "support"), (email("sue"), "support")]


def test_warning_after_the_breach_says_it_is_breached(ctx, world):
    app = ctx
    number = report(app, "B", "general", cst(23, 9))
    result = run_all(app, cst(23, 10))[1]  # the tick came late: the contact is breached
    assert result.items == 1
    assert notices("warning_breached") == Counter({
        ("sam", number, "warning_breached", "contact"): 1,
        ("sue", number, "warning_breached", "contact"): 1})
    assert ("sam", f"Target breached: contact of incident {number} was due "
            "2026-11-23 09:30 CST") in mails("incident_warning")


def test_r_i6_onsite_arrival_warning_once_per_visit(ctx, world):
    app = ctx
    number = report(app, "A", "urgent", cst(23, 9))
    contact(app, number, cst(23, 9, 10), "sue")
    at(app, cst(23, 10))
    visit = svc.request_onsite(Actor(user=user("sue")), incident(number),
                               site_address="Shanghai, Century Avenue 100")
    visit_id = visit.id
    db.session.remove()
    # Arrival due at 18:00 (8 h, R-I6); warned at 80 %: 16:24.
    assert run_all(app, cst(23, 16, 23))[1].summary == "incident-warnings: none"
    assert run_all(app, cst(23, 16, 24))[1].items == 1
    assert [a.key for a in alerts("warning", number)] == [f"onsite_arrival:{visit_id}"]
    assert run_all(app, cst(23, 17))[1].summary == "incident-warnings: none"


# -- (6) overdue daily briefs --------------------------------------------------------------
def test_r_i6_overdue_brief_flagged_once_per_day(ctx, world):
    app = ctx
    number = report(app, "A", "urgent", cst(23, 9))
    contact(app, number, cst(23, 9, 10), "sue")
    at(app, cst(23, 10))
    sue = Actor(user=user("sue"))
    visit = svc.request_onsite(sue, incident(number), site_address="Century Avenue 100")
    visit_id = visit.id
    at(app, cst(23, 15))
    svc.record_arrival(sue, db.session.get(OnsiteVisit, visit_id))
    at(app, cst(23, 20))
    svc.file_daily_brief(sue, db.session.get(OnsiteVisit, visit_id), date(2026, 11, 23),
                         "Replaced the CA certificate on the first cluster.")
    db.session.remove()

    assert run_all(app, cst(23, 23, 59))[2].summary == "daily-briefs: none"  # Monday filed
    assert run_all(app, cst(24, 23, 59))[2].summary == "daily-briefs: none"  # Tue not over
    result = run_all(app, cst(25, 0, 15))[2]
    assert result.summary == "daily-briefs: flagged 1, notices 1, e-mails 1"
    (alert,) = alerts("brief_overdue", number)
    assert (alert.key, alert.due_at) == (f"{visit_id}:2026-11-24", cst(25, 0))
    assert alert.recipients == [{"user_id": uid("sue"), "email": email("sue"),
                                 "as": "engineer"}]
    assert mails("brief_overdue") == Counter({
        ("sue", f"Daily brief missing: incident {number}, 2026-11-24"): 1})
    body = db.session.scalar(select(OutboxMessage.body_text).where(
        OutboxMessage.template == "brief_overdue"))
    assert (f"No daily brief was filed for 2026-11-24 of the on-site response to incident "
            f"{number} of Acme Bank (on site since 2026-11-23 15:00 CST).") in body
    for moment in (cst(25, 0, 30), cst(25, 23, 59)):  # once a day
        assert run_all(app, moment)[2].summary == "daily-briefs: none"
    # Two days later (a late tick): Wednesday and Thursday, once each.
    result = run_all(app, cst(27, 8))[2]
    assert result.items == 2
    assert notices("brief_overdue") == Counter({
        ("sue", number, "brief_overdue", day): 1
        for day in ("2026-11-24", "2026-11-25", "2026-11-26")})
    # The ended response's last day is flagged the day after it, and nothing after that.
    at(app, cst(27, 12))
    svc.end_onsite(Actor(user=user("sue")), db.session.get(OnsiteVisit, visit_id),
                   "Service restored.")
    db.session.remove()
    assert run_all(app, cst(27, 23))[2].summary == "daily-briefs: none"
    assert run_all(app, cst(28, 0, 15))[2].items == 1
    assert run_all(app, cst(30, 9))[2].summary == "daily-briefs: none"
    assert [a.key.split(":")[1] for a in alerts("brief_overdue")] == [
        "2026-11-24", "2026-11-25", "2026-11-26", "2026-11-27"]


# -- (7) through the CLI ------------------------------------------------------------------
@pytest.fixture
def app_config() -> dict:
    return {"MAIL_BACKEND": "console", "MAIL_FROM": "rma@rma.example.com"}


def test_tick_prints_the_incident_job_summaries_and_sends_the_mail(app, world, runner):
    with app.test_request_context(headers={"Accept-Language": "en"}):
        number = report(app, "B", "urgent", cst(23, 9))
        contact(app, number, cst(23, 9, 5))
    at(app, cst(23, 10))
    result = runner.invoke(args=["tick"])
    assert result.exit_code == 0, result.output
    line = result.output.strip().splitlines()[-1]
    assert line.startswith("tick 2026-11-23 10:00:00 CST: ")
    assert ("escalation: fired 1, notices 1, e-mails 1; incident-warnings: none; "
            "daily-briefs: none; ") in line
    assert "; mail: sent " in line
    assert f"To: {email('gus')}" in result.output
    assert f"Subject: Escalation (account manager, 1 h): incident {number} of Beta Bank" in (
        result.output)
    assert f"/staff/support/incidents/{number}" in result.output
    again = runner.invoke(args=["tick"])
    assert "escalation: none; incident-warnings: none; daily-briefs: none" in again.output


# -- no N+1 --------------------------------------------------------------------------------
def test_jobs_do_not_query_per_incident_when_nothing_is_due(ctx, world):
    app = ctx

    def statements(count: int) -> int:
        for n in range(count):
            report(app, "ABC"[n % 3], ("urgent", "serious", "general")[n % 3],
                   cst(23, 9) + n * M)
        db.session.remove()
        run_all(app, cst(24, 12))  # fire what is due, then measure a quiet tick
        with count_queries(app) as seen:
            results = run_all(app, cst(24, 12, 1))
        assert not any(result.busy for result in results), [r.summary for r in results]
        return len(seen)

    few = statements(2)
    many = statements(10)
    assert many == few, (few, many)
    assert few <= 15


def test_notifications_unread_list_and_mark_read(ctx, world):
    app = ctx
    number = report(app, "A", "urgent", cst(23, 9))
    run_all(app, cst(23, 11))
    am = user("amy")
    assert notifications.unread_count(am) == 1
    (notice,) = [n for n in notifications.for_user(am) if n.kind == "escalation"]
    assert notifications.notification_text(notice) == (
        f"Incident {number} is not resolved 1 h after the report: escalated to you as "
        "account manager.")
    with pytest.raises(ForbiddenError):
        notifications.mark_read(Actor(user=user("mia")), am)
    at(app, cst(23, 12))
    assert notifications.mark_read(Actor(user=am), am, [notice.id]) == 1
    assert notifications.unread_count(am) == 0
    assert notifications.mark_read(Actor(user=am), am) == 0
    assert db.session.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "notification.read")) == 1
