"""Incident services (rma/services/incidents.py, office_calendar.py, escalation_setup.py):
report and deadlines (R-I1, R-I2, D-7), priority change (D-7), support mode (R-I5),
on-site response with briefs and final report (R-I6), chargeable change visits (R-C4),
resolution, scoping, queues, compliance, the office calendar table (R-I7) and the
escalation ladder and holders (R-I4). Every state change is audited in its transaction
(R-R4); a refused one writes nothing. The test clock says Wednesday 2026-11-25 12:00 in
Shanghai (04:00 UTC)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select

from rma.extensions import db
from rma.models import (
    AuditEvent,
    DailyBrief,
    EscalationHolder,
    EscalationRung,
    Incident,
    IncidentAlert,
    IncidentEvent,
    IncidentStatus,
    Notification,
    OfficeDay,
    OnsiteVisit,
    OutboxMessage,
    SupportMode,
)
from rma.services import ForbiddenError
from rma.services import escalation_setup as esc
from rma.services import incidents as inc
from rma.services import office_calendar as cal
from rma.services.audit import Actor
from tests.conftest import count_queries
from tests.rma.incident_helpers import (
    actor,
    build_incident_world,
    customer,
    incident,
    report,
    user,
    visit,
)
from warranty import DEFAULT_ESCALATION_LADDER, TargetState

NOW = datetime(2026, 11, 25, 4, 0, tzinfo=UTC)  # 12:00 China time, Wednesday
SHANGHAI = timedelta(hours=8)


def local(y, mo, d, h=0, mi=0) -> datetime:
    """A China-time wall clock as an aware UTC instant."""
    return datetime(y, mo, d, h, mi, tzinfo=UTC) - SHANGHAI


@pytest.fixture
def world(app):
    return build_incident_world(app)


@pytest.fixture
def ctx(app, world):
    """A request context in English: messages are compared as written."""
    with app.test_request_context(headers={"Accept-Language": "en"}):
        yield app


def audits(action: str | None = None) -> int:
    stmt = select(func.count()).select_from(AuditEvent)
    if action:
        stmt = stmt.where(AuditEvent.action == action)
    return db.session.scalar(stmt)


def written() -> tuple[int, int, int, int]:
    """Audit events, timeline events, visits, briefs: what a refused call must not add."""
    return tuple(db.session.scalar(select(func.count()).select_from(m))
                 for m in (AuditEvent, IncidentEvent, OnsiteVisit, DailyBrief))


def kinds(number: str) -> list[str]:
    return list(db.session.scalars(
        select(IncidentEvent.kind).join(Incident).where(Incident.number == number)
        .order_by(IncidentEvent.id)))


def mails(template: str) -> list[OutboxMessage]:
    return list(db.session.scalars(select(OutboxMessage)
                                   .where(OutboxMessage.template == template)))


def refused(call, error_cls, field=None, fragment=None):
    """Run ``call``; it must raise ``error_cls`` (with ``field``) and write nothing."""
    before = written()
    with pytest.raises(error_cls) as caught:
        call()
    db.session.rollback()
    assert written() == before
    if field is not None:
        assert caught.value.field == field
    if fragment is not None:
        assert fragment in caught.value.message
    return caught.value


# -- report and deadlines (R-I1, R-I2, R-I5, D-7) ---------------------------------------
def test_r_i1_r_i2_report_stores_calendar_deadlines_and_tells_everyone(ctx):
    before = audits()
    row = report("urgent")
    row = incident(row.number)
    assert row.number == "INC-2026-000001"
    assert row.status == IncidentStatus.NEW
    assert row.reported_at == NOW
    assert row.contact_due_at == NOW + timedelta(minutes=30)  # R-I1
    assert row.diagnosis_due_at == NOW + timedelta(hours=24)  # R-I2
    assert row.resolution_due_at == NOW + timedelta(hours=24)  # urgent: top rung at 24 h
    assert row.next_due_at == row.contact_due_at
    assert row.support_mode == SupportMode.ONSITE  # R-I5: urgent → on site
    assert [u.serial for u in row.units] == ["TK3-A0001"]
    assert kinds(row.number) == ["reported"]
    assert audits() == before + 1 and audits("incident.reported") == 1
    (mail,) = mails("incident_reported")
    assert mail.to_address == "li.lei@a.example" and mail.language == "en"
    assert row.number in mail.subject and "2026-11-25 12:30" in mail.body_text
    told = db.session.scalars(select(Notification.user_id).where(
        Notification.kind == "incident_reported")).all()
    assert sorted(told) == sorted([user("sam").id, user("sue").id])  # support only


@pytest.mark.parametrize("priority, hours, mode", [
    ("urgent", 24, "onsite"), ("serious", 48, "remote"), ("general", 72, "phone")])
def test_r_i5_resolution_hours_and_suggested_mode_per_priority(ctx, priority, hours, mode):
    row = incident(report(priority).number)
    assert row.resolution_due_at == NOW + timedelta(hours=hours)
    assert row.support_mode == SupportMode(mode)


@pytest.mark.parametrize("app_config", [{"POLICY": {"TARGET_CLOCK": {"contact": "office"}}}])
def test_d7_office_clock_for_contact_only(ctx):
    # Friday 17:50 China time, logged afterwards by the engineer: 10 office minutes on
    # Friday, 20 on Monday → contact due Monday 09:20; diagnosis stays on calendar hours.
    friday = local(2026, 11, 20, 17, 50)
    row = incident(report("general", reported_at=friday).number)
    assert row.reported_at == friday
    assert row.contact_due_at == local(2026, 11, 23, 9, 20)
    assert row.diagnosis_due_at == friday + timedelta(hours=24)
    clocks = inc.incident_clocks(row, NOW)
    by_target = {t.target: t for t in clocks.targets}
    assert by_target["contact"].clock == "office"
    assert by_target["diagnosis"].clock == "calendar"
    assert by_target["contact"].state == TargetState.BREACHED


def test_d7_reported_at_naive_is_china_time(ctx):
    row = report("general", reported_at=datetime(2026, 11, 25, 9, 0))
    assert incident(row.number).reported_at == local(2026, 11, 25, 9, 0)


@pytest.mark.parametrize("moment, fragment", [
    (NOW + timedelta(minutes=1), "future"),
    (NOW - timedelta(days=7, minutes=1), "7 days"),
])
def test_reported_at_refused_outside_the_window(ctx, moment, fragment):
    refused(lambda: report("general", reported_at=moment), inc.IncidentError,
            "reported_at", fragment)


def test_reported_at_is_for_staff_only(ctx):
    refused(lambda: report("general", by="alice", reported_at=NOW - timedelta(hours=1)),
            inc.IncidentError, "reported_at")
    assert report("general", reported_at=NOW - timedelta(days=6, hours=23)).number


@pytest.mark.parametrize("serial, fragment", [
    ("TK3-B0001", "TK3-B0001 is not registered to Acme Bank"),
    ("NOPE-9999", "NOPE-9999 is not known"),
    ("ab#1", "'ab#1' is not a valid serial number"),
])
def test_d8_serials_must_be_the_customers_own(ctx, serial, fragment):
    refused(lambda: report("serious", serials=("TK3-A0001", serial)), inc.IncidentError,
            "serials", fragment)


def test_report_checks_fields_and_roles(ctx):
    refused(lambda: report("critical"), inc.IncidentError, "priority")
    refused(lambda: report("general", title="  "), inc.IncidentError, "title")
    refused(lambda: report("general", description=""), inc.IncidentError, "description")
    refused(lambda: report("general", channel="fax"), inc.IncidentError, "channel")
    refused(lambda: report("general", model_codes=["NOPE"]), inc.IncidentError, "model_codes")
    # a customer user reports only for its own organisation; warehouse staff not at all
    refused(lambda: report("general", by="bob", customer_key="a", serials=()),
            ForbiddenError)
    refused(lambda: report("general", by="wendy"), ForbiddenError)


def test_customer_reports_for_own_organisation_through_the_portal(ctx):
    row = report("serious", by="alice", serials=("tk3-a0002 ",), model_codes=["tk3"],
                 reporter_contact="")
    row = incident(row.number)
    assert row.channel == "portal" and row.reported_by_id == user("alice").id
    assert [u.serial for u in row.units] == ["TK3-A0002"]
    assert [m.code for m in row.product_models] == ["TK3"]
    (mail,) = mails("incident_reported")
    assert mail.to_address == "alice@a.example"  # the reporting customer user


# -- visibility -------------------------------------------------------------------------
def test_customer_cannot_see_another_customers_incident(ctx):
    number = report("urgent").number
    assert inc.get_incident(number, user("bob")) is None
    assert inc.get_incident(number.lower(), user("alice")).number == number
    assert inc.get_incident(number, user("sam")).number == number
    assert inc.get_incident("INC-2026-999999", user("sam")) is None
    refused(lambda: inc.add_note(actor("bob"), incident(number), "hello", True),
            inc.IncidentNotFoundError)
    refused(lambda: inc.request_onsite(actor("bob"), incident(number)),
            inc.IncidentNotFoundError)
    assert inc.list_incidents(user("bob")).total == 0
    assert [i.number for i in inc.list_incidents(user("alice")).rows] == [number]


def test_customer_note_is_public_and_staff_note_may_be_internal(ctx):
    number = report("general").number
    note = inc.add_note(actor("alice"), incident(number), "Still down", False)
    assert note.public is True
    internal = inc.add_note(actor("sam"), incident(number), "Check the HSM", False)
    assert internal.public is False
    entries = inc.timeline(incident(number), user("alice"))
    texts = [e.text for e in entries]
    assert "Note by alice@a.example: Still down" in texts
    assert not any("HSM" in t for t in texts)  # internal notes stay inside
    assert entries[0].actor == "the service centre"  # staff names stay inside
    staff_texts = [e.text for e in inc.timeline(incident(number), user("sam"))]
    assert any("Check the HSM" in t for t in staff_texts)
    assert audits("incident.note_added") == 2


# -- contact, diagnosis, engineer -------------------------------------------------------
def test_r_i1_contact_assigns_the_engineer_and_cannot_happen_twice(ctx):
    number = report("urgent").number
    row = inc.contact_customer(actor("sam"), incident(number))
    row = incident(number)
    assert row.status == IncidentStatus.CONTACTED and row.engineer_id == user("sam").id
    assert row.contacted_at == NOW and row.next_due_at == row.diagnosis_due_at
    refused(lambda: inc.contact_customer(actor("sam"), incident(number)),
            inc.IncidentStateError)
    # an admin must name the engineer; the engineer must be support or manager
    number2 = report("general").number
    refused(lambda: inc.contact_customer(actor("adam"), incident(number2)),
            inc.IncidentError, "engineer_id")
    refused(lambda: inc.contact_customer(actor("adam"), incident(number2),
                                         engineer_id=user("wendy").id),
            inc.IncidentError, "engineer_id")
    inc.contact_customer(actor("adam"), incident(number2), engineer_id=user("sue").id)
    assert incident(number2).engineer_id == user("sue").id
    refused(lambda: inc.contact_customer(actor("alice"), incident(number2)), ForbiddenError)


def test_r_i2_diagnosis_from_new_implies_contact_and_is_mailed(ctx):
    number = report("serious").number
    inc.record_diagnosis(actor("sue"), incident(number), "The token's clock drifted.")
    row = incident(number)
    assert row.status == IncidentStatus.DIAGNOSED
    assert row.contacted_at == NOW and row.diagnosed_at == NOW
    assert row.engineer_id == user("sue").id
    assert kinds(number) == ["reported", "contacted", "diagnosed"]
    (mail,) = mails("incident_diagnosis")
    assert "The token's clock drifted." in mail.body_text
    refused(lambda: inc.record_diagnosis(actor("sue"), incident(number), "again"),
            inc.IncidentStateError)
    other = report().number
    refused(lambda: inc.record_diagnosis(actor("sue"), incident(other), " "),
            inc.IncidentError, "diagnosis")


def test_assign_engineer_on_an_open_incident(ctx):
    number = report("general").number
    inc.assign_engineer(actor("mia"), incident(number), user("sue").id)
    assert incident(number).engineer_id == user("sue").id
    assert audits("incident.engineer_assigned") == 1
    refused(lambda: inc.assign_engineer(actor("mia"), incident(number), user("sue").id),
            inc.IncidentError, "engineer_id")
    refused(lambda: inc.assign_engineer(actor("mia"), incident(number), user("bob").id),
            inc.IncidentError, "engineer_id")


# -- priority and support mode (D-7, R-I5) ----------------------------------------------
def test_d7_priority_change_recomputes_from_reported_at_and_is_audited(ctx):
    reported = NOW - timedelta(hours=2)
    number = report("general", reported_at=reported).number
    assert incident(number).resolution_due_at == reported + timedelta(hours=72)
    refused(lambda: inc.change_priority(actor("sam"), incident(number), "urgent", " "),
            inc.IncidentError, "reason")
    refused(lambda: inc.change_priority(actor("sam"), incident(number), "general", "same"),
            inc.IncidentError, "priority")
    inc.change_priority(actor("sam"), incident(number), "urgent", "Public service stopped")
    row = incident(number)
    assert row.priority == "urgent"
    assert row.contact_due_at == reported + timedelta(minutes=30)
    assert row.diagnosis_due_at == reported + timedelta(hours=24)
    assert row.resolution_due_at == reported + timedelta(hours=24)
    event = db.session.scalar(select(AuditEvent).where(
        AuditEvent.action == "incident.priority_changed"))
    assert event.before["priority"] == "general" and event.after["priority"] == "urgent"
    assert event.after["reason"] == "Public service stopped"
    assert event.after["resolution_due_at"] == (reported + timedelta(hours=24)).isoformat()
    texts = [e.text for e in inc.timeline(row, user("alice"))]
    assert any("from General to Urgent" in t and "Public service stopped" in t for t in texts)
    # the rungs follow the new priority: urgent's first rung is 1 hour after the report
    rungs = inc.incident_clocks(row, NOW).rungs
    assert [(r.hours, r.role) for r in rungs][:2] == [(1, "account_manager"),
                                                       (2, "technical_lead")]


def test_r_i5_support_mode_change(ctx):
    number = report("general").number
    inc.set_support_mode(actor("sam"), incident(number), "remote", "customer allows VPN")
    assert incident(number).support_mode == SupportMode.REMOTE
    refused(lambda: inc.set_support_mode(actor("sam"), incident(number), "remote"),
            inc.IncidentError, "mode")
    refused(lambda: inc.set_support_mode(actor("sam"), incident(number), "fax"),
            inc.IncidentError, "mode")
    assert audits("incident.support_mode_changed") == 1


# -- on site (R-I6, R-C4) ---------------------------------------------------------------
def _onsite(number: str, by: str = "sam", **kw) -> int:
    return inc.request_onsite(actor(by), incident(number), **kw).id


def test_r_i6_onsite_request_arrival_clock_and_one_open_visit(ctx):
    number = report("serious").number
    visit_id = _onsite(number, by="alice")  # the customer asks
    row = visit(visit_id)
    assert row.arrival_due_at == NOW + timedelta(hours=8)
    assert row.kind == "emergency" and row.chargeable is False
    assert row.site_address == "Acme Bank HQ, 1 Bund Road"
    assert incident(number).support_mode == SupportMode.ONSITE
    assert incident(number).next_due_at == NOW + timedelta(minutes=30)  # contact first
    refused(lambda: _onsite(number), inc.IncidentStateError)
    refused(lambda: _onsite(number, by="alice", requested_at=NOW - timedelta(hours=1)),
            inc.IncidentError, "requested_at")
    clocks = inc.incident_clocks(incident(number), NOW)
    arrival = [t for t in clocks.targets if t.target == "onsite_arrival"][0]
    assert arrival.due_at == NOW + timedelta(hours=8) and arrival.state == TargetState.ON_TRACK
    assert audits("onsite.requested") == 1


def test_r_i6_one_open_visit_checked_inside_the_lock(ctx):
    # A page loaded the incident (no visits yet); another writer then opened a visit in
    # the database (here: a Core insert the loaded collection does not see).
    number = report("urgent").number
    page = inc.get_incident(number, user("sam"))
    assert page.visits == []
    db.session.execute(OnsiteVisit.__table__.insert().values(
        incident_id=page.id, kind="emergency", requested_at=NOW, arrival_due_at=NOW,
        site_address="", note="", final_report="", chargeable=False))
    with pytest.raises(inc.IncidentStateError):
        inc.request_onsite(actor("sam"), page)


def test_r_c4_second_change_visit_in_a_contract_year_is_chargeable(ctx, app):
    number = report("general").number
    first = _onsite(number, kind="change")
    assert visit(first).chargeable is False
    assert visit(first).contract_year_start == date(2026, 3, 11)
    inc.record_arrival(actor("sam"), visit(first))
    inc.end_onsite(actor("sam"), visit(first), "Changed the RADIUS settings.")
    second = _onsite(number, kind="change")
    assert visit(second).chargeable is True  # R-C4: 1 free visit per contract year
    inc.record_arrival(actor("sam"), visit(second))
    inc.end_onsite(actor("sam"), visit(second), "Changed them back.")
    emergency = _onsite(number, kind="emergency")
    assert visit(emergency).chargeable is False  # R-I6 responses are never charged
    assert [v.id for v in inc.contract_visits(customer("a"), date(2026, 11, 25))] == [
        first, second, emergency]
    assert inc.contract_visits(customer("a"), date(2027, 3, 11)) == []  # the next year


def test_r_c4_contract_year_boundary_resets_the_count(ctx):
    # Gamma accepted 2025-11-21: contract year 1 ends 2026-11-21, year 2 starts 11-22.
    number = report("general", customer_key="c", serials=("TK3-C0001",),
                    reported_at=local(2026, 11, 21, 10)).number
    old = _onsite(number, kind="change", requested_at=local(2026, 11, 21, 11))
    assert visit(old).contract_year_start == date(2025, 11, 22)
    inc.record_arrival(actor("sam"), visit(old), local(2026, 11, 21, 15))
    inc.end_onsite(actor("sam"), visit(old), "Done.")
    new = _onsite(number, kind="change")
    assert visit(new).contract_year_start == date(2026, 11, 22)
    assert visit(new).chargeable is False


def test_r_i6_brief_rules(ctx, app):
    number = report("urgent", reported_at=NOW - timedelta(days=2)).number
    visit_id = _onsite(number, requested_at=local(2026, 11, 23, 13))
    refused(lambda: inc.file_daily_brief(actor("sam"), visit(visit_id), date(2026, 11, 23),
                                         "x"), inc.IncidentStateError)
    inc.record_arrival(actor("sam"), visit(visit_id), local(2026, 11, 23, 16))
    assert visit(visit_id).engineer_id == user("sam").id
    refused(lambda: inc.record_arrival(actor("sam"), visit(visit_id)), inc.IncidentStateError)
    inc.file_daily_brief(actor("sam"), visit(visit_id), date(2026, 11, 23), "Replaced HSM")
    refused(lambda: inc.file_daily_brief(actor("sam"), visit(visit_id), date(2026, 11, 23),
                                         "again"), inc.IncidentError, "day", "already filed")
    refused(lambda: inc.file_daily_brief(actor("sam"), visit(visit_id), date(2026, 11, 22),
                                         "before"), inc.IncidentError, "day")
    refused(lambda: inc.file_daily_brief(actor("sam"), visit(visit_id), date(2026, 11, 26),
                                         "future"), inc.IncidentError, "day")
    refused(lambda: inc.file_daily_brief(actor("sam"), visit(visit_id), date(2026, 11, 24),
                                         "  "), inc.IncidentError, "text")
    refused(lambda: inc.file_daily_brief(actor("alice"), visit(visit_id), date(2026, 11, 24),
                                         "customer"), ForbiddenError)
    inc.file_daily_brief(actor("sue"), visit(visit_id), date(2026, 11, 25), "Monitoring")
    assert [b.day for b in visit(visit_id).briefs] == [date(2026, 11, 23), date(2026, 11, 25)]
    assert inc.visit_brief_days(visit(visit_id), NOW) == [
        date(2026, 11, 23), date(2026, 11, 24), date(2026, 11, 25)]
    assert audits("onsite.brief_filed") == 2


def test_r_i6_end_requires_the_final_report_and_mails_the_pdf(ctx):
    number = report("urgent").number
    visit_id = _onsite(number)
    refused(lambda: inc.end_onsite(actor("sam"), visit(visit_id), "All done"),
            inc.IncidentStateError)  # not arrived yet
    inc.record_arrival(actor("sam"), visit(visit_id))
    refused(lambda: inc.end_onsite(actor("sam"), visit(visit_id), "  "), inc.IncidentError,
            "final_report")
    assert mails("onsite_report") == []
    inc.end_onsite(actor("sam"), visit(visit_id), "Root cause: failed disk. Replaced.")
    row = visit(visit_id)
    assert row.ended_at == NOW and row.final_report.startswith("Root cause")
    (mail,) = mails("onsite_report")
    assert mail.to_address == "li.lei@a.example"
    (attachment,) = mail.attachments
    assert attachment.content_type == "application/pdf"
    assert attachment.data.startswith(b"%PDF")
    doc = inc.final_report_document(row)
    assert doc.number == number and doc.visit_kind == "emergency"
    assert doc.requested == "2026-11-25 12:00" and doc.ended == "2026-11-25 12:00"
    assert doc.engineer == "Sam" and doc.generated_on == date(2026, 11, 25)
    refused(lambda: inc.end_onsite(actor("sam"), visit(visit_id), "again"),
            inc.IncidentStateError)


def test_resolve_refused_with_an_open_visit(ctx):
    number = report("urgent").number
    visit_id = _onsite(number)
    refused(lambda: inc.resolve_incident(actor("sam"), incident(number), "Fixed"),
            inc.IncidentStateError, fragment="End the on-site visit")
    inc.record_arrival(actor("sam"), visit(visit_id))
    inc.end_onsite(actor("sam"), visit(visit_id), "Replaced the disk.")
    refused(lambda: inc.resolve_incident(actor("sam"), incident(number), " "),
            inc.IncidentError, "resolution")
    inc.resolve_incident(actor("sam"), incident(number), "Fixed by replacing the disk.")
    row = incident(number)
    assert row.status == IncidentStatus.RESOLVED and row.next_due_at is None
    assert row.resolved_at == NOW
    (mail,) = mails("incident_resolved")
    assert "Fixed by replacing the disk." in mail.body_text
    for call in (lambda: inc.resolve_incident(actor("sam"), incident(number), "again"),
                 lambda: inc.change_priority(actor("sam"), incident(number), "general", "x"),
                 lambda: _onsite(number)):
        refused(call, inc.IncidentStateError)
    clocks = inc.incident_clocks(incident(number), NOW)
    assert clocks.next_breach is None
    assert {t.target: t.state for t in clocks.targets}["resolution"] == TargetState.MET


# -- every change audited in its transaction (R-R4) -------------------------------------
def test_r_r4_every_state_change_writes_one_audit_event(ctx):
    steps = []
    number = report("urgent").number
    steps.append(("incident.reported", None))

    def step(action, call):
        before = audits()
        call()
        assert audits() - before >= 1, action
        assert audits(action) >= 1, action

    step("incident.contacted", lambda: inc.contact_customer(actor("sam"), incident(number)))
    step("incident.engineer_assigned",
         lambda: inc.assign_engineer(actor("mia"), incident(number), user("sue").id))
    step("incident.diagnosed",
         lambda: inc.record_diagnosis(actor("sue"), incident(number), "disk"))
    step("incident.priority_changed",
         lambda: inc.change_priority(actor("mia"), incident(number), "serious", "workaround"))
    step("incident.support_mode_changed",
         lambda: inc.set_support_mode(actor("sue"), incident(number), "remote"))
    step("onsite.requested", lambda: _onsite(number, by="alice"))
    visit_id = incident(number).visits[0].id
    step("onsite.arrived", lambda: inc.record_arrival(actor("sue"), visit(visit_id)))
    step("onsite.brief_filed", lambda: inc.file_daily_brief(
        actor("sue"), visit(visit_id), date(2026, 11, 25), "ok"))
    step("onsite.ended", lambda: inc.end_onsite(actor("sue"), visit(visit_id), "report"))
    step("incident.resolved",
         lambda: inc.resolve_incident(actor("sue"), incident(number), "fixed"))
    assert kinds(number) == [
        "reported", "contacted", "engineer_assigned", "diagnosed", "priority_changed",
        "support_mode_changed", "onsite_requested", "support_mode_changed", "onsite_arrived",
        "brief_filed", "onsite_ended", "resolved"]
    # every timeline event has a text, never the general fallback
    for entry in inc.timeline(incident(number), user("sam")):
        assert "was updated" not in entry.text, entry


def test_a_failure_after_the_changes_rolls_everything_back(ctx, monkeypatch):
    number = report("general").number
    before = written()

    def broken(*args, **kwargs):
        raise RuntimeError("mail template broke")

    monkeypatch.setattr(inc, "_mail", broken)
    with pytest.raises(RuntimeError):
        inc.record_diagnosis(actor("sam"), incident(number), "disk")
    assert written() == before
    row = incident(number)
    assert row.status == IncidentStatus.NEW and row.diagnosed_at is None


# -- clocks, queues, board, compliance --------------------------------------------------
def test_r_i4_rungs_with_recipients_and_next_breach(ctx):
    number = report("urgent", reported_at=NOW - timedelta(minutes=50)).number
    clocks = inc.incident_clocks(incident(number), NOW)
    assert [(r.hours, r.role) for r in clocks.rungs] == [
        (1, "account_manager"), (2, "technical_lead"), (4, "service_director"), (12, "cto"),
        (24, "president")]
    first = clocks.rungs[0]
    assert first.due_at == NOW + timedelta(minutes=10) and first.fired_at is None
    assert [(r["email"], r["as"]) for r in first.recipients] == [
        ("amy@vendor.example", "holder"), ("ann@vendor.example", "deputy")]
    # contact was due 20 minutes ago: breached, and the next breach
    contact = clocks.targets[0]
    assert contact.state == TargetState.BREACHED and contact.remaining == -timedelta(minutes=20)
    assert clocks.next_breach.target == "contact"
    # a rung the tick fired shows when and to whom
    db.session.add(IncidentAlert(incident_id=incident(number).id, kind="escalation",
                                 key="account_manager", hours=1, due_at=first.due_at,
                                 fired_at=NOW, recipients=[{"user_id": 1, "email": "x@y",
                                                            "as": "holder"}]))
    db.session.commit()
    fired = inc.incident_clocks(inc.get_incident(number, user("sam")), NOW).rungs[0]
    assert fired.fired_at == NOW and fired.recipients[0]["email"] == "x@y"


def test_r_i7_calendar_warning_on_office_clock_deadlines(ctx, app):
    app.extensions.pop("rma_policy", None)
    app.config["POLICY"] = {"TARGET_CLOCK": {"escalation": "office"}}
    # general on office hours: 72 office hours (8 working days) end in December 2026,
    # a year with holiday data: no warning.
    number = report("general").number
    assert inc.incident_clocks(incident(number), NOW).warnings == []
    app.config["POLICY"] = {"TARGET_CLOCK": {"escalation": "office"},
                            "RESOLUTION_TARGET_HOURS": {"urgent": 24, "serious": 48,
                                                        "general": 400}}
    app.extensions.pop("rma_policy", None)
    number = report("general").number  # 400 office hours run into 2027: no data yet
    warnings = inc.incident_clocks(incident(number), NOW).warnings
    assert [w.years for w in warnings] == [(2027,)]


def test_engineer_queue_sorted_by_next_breach(ctx):
    late = report("general", reported_at=NOW - timedelta(hours=1)).number  # contact breached
    soon = report("urgent").number  # contact due in 30 min
    mine = report("serious").number
    inc.contact_customer(actor("sue"), incident(mine))  # diagnosis due in 24 h
    done = report("general").number
    inc.contact_customer(actor("sam"), incident(done))
    inc.resolve_incident(actor("sam"), incident(done), "answered on the phone")
    rows = inc.engineer_queue(user("sam"), NOW)
    assert [r.incident.number for r in rows] == [late, soon, mine]
    assert rows[0].state == TargetState.BREACHED and rows[0].next_target == "contact"
    assert rows[1].remaining == timedelta(minutes=30)
    assert rows[2].next_target == "diagnosis" and rows[2].engineer.email == "sue@vendor.example"
    assert [r.incident.number for r in inc.engineer_queue(user("sue"), NOW, mine_only=True)] \
        == [mine]
    board = inc.manager_board(NOW)
    assert list(board) == ["urgent", "serious", "general"]
    assert [r.incident.number for r in board["general"]] == [late]
    assert [r.incident.number for r in board["urgent"]] == [soon]


def test_engineer_queue_and_board_have_no_n_plus_1(ctx, app):
    def run():
        seen = []
        with count_queries(app) as statements:
            rows = inc.engineer_queue(user("sam"), NOW)
            for row in rows:
                seen.append((row.customer.name, row.engineer and row.engineer.email,
                             row.open_visit and row.open_visit.arrival_due_at))
            board = inc.manager_board(NOW)
            for rows_ in board.values():
                seen.extend((row.customer.name, row.engineer and row.engineer.email)
                            for row in rows_)
        assert all(name for name, *_ in seen)
        return len(statements), len(rows)

    for n in range(2):
        number = report("urgent", title=f"t{n}").number
        inc.contact_customer(actor("sue"), incident(number))
    _onsite(number)
    db.session.commit()
    small, count_small = run()
    for n in range(6):
        number = report("general", title=f"u{n}", by="alice").number
        inc.contact_customer(actor("sam"), incident(number))
        _onsite(number)
    db.session.commit()
    large, count_large = run()
    assert count_large == count_small + 6
    assert large == small


def test_compliance_counts_per_customer_and_priority(ctx):
    late = report("urgent", reported_at=NOW - timedelta(hours=2)).number
    inc.contact_customer(actor("sam"), incident(late))  # 90 minutes late: missed
    ontime = report("urgent").number
    inc.contact_customer(actor("sam"), incident(ontime))  # met
    inc.record_diagnosis(actor("sam"), incident(ontime), "cable")
    _onsite(ontime)
    report("general", customer_key="b", serials=("TK3-B0001",))
    db.session.add(IncidentAlert(incident_id=incident(late).id, kind="escalation",
                                 key="account_manager", hours=1, due_at=NOW, fired_at=NOW))
    db.session.commit()
    rows = inc.compliance("2026-11")
    assert [(r.customer_name, r.priority, r.incidents) for r in rows] == [
        ("Acme Bank", "urgent", 2), ("Beta Bank", "general", 1)]
    acme = rows[0]
    assert acme.targets["contact"] == inc.TargetTally(met=1, missed=1, open=0)
    assert acme.targets["diagnosis"] == inc.TargetTally(met=1, missed=0, open=1)
    assert acme.targets["resolution"] == inc.TargetTally(met=0, missed=0, open=2)
    assert acme.targets["onsite_arrival"] == inc.TargetTally(met=0, missed=0, open=1)
    assert acme.escalations == 1
    assert rows[1].targets["contact"] == inc.TargetTally(open=1)
    assert [r.customer_name for r in inc.compliance("2026-11", customer("b").id)] == [
        "Beta Bank"]
    assert inc.compliance("2026-10") == []
    for bad in ("2026-13", "November", ""):
        with pytest.raises(inc.IncidentError) as caught:
            inc.compliance(bad)
        assert caught.value.field == "month"


def test_customer_incidents_newest_first(ctx):
    first = report("general", reported_at=NOW - timedelta(hours=3)).number
    second = report("urgent").number
    report("general", customer_key="b", serials=())
    assert [i.number for i in inc.customer_incidents(customer("a").id)] == [second, first]
    assert [i.number for i in inc.list_incidents(user("sam"), priority="urgent").rows] == [
        second]
    with pytest.raises(inc.IncidentError):
        inc.list_incidents(user("sam"), status="sleeping")


# -- office calendar (R-I7) -------------------------------------------------------------
def test_r_i7_calendar_table_upsert_remove_and_audit(ctx):
    admin = actor("adam")
    thursday = date(2026, 11, 26)
    assert cal.load_calendar().is_working_day(thursday)
    cal.set_office_day(admin, thursday, "holiday", "company day off")
    assert not cal.load_calendar().is_working_day(thursday)
    cal.set_office_day(admin, thursday, "workday", "changed our mind")
    assert [(d.day, d.kind, d.note) for d in cal.office_days(2026)] == [
        (thursday, "workday", "changed our mind")]
    assert cal.office_days(2027) == []
    assert audits("office_day.set") == 2
    event = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "office_day.set")
                               .order_by(AuditEvent.id.desc())).first()
    assert event.before["kind"] == "holiday" and event.after["kind"] == "workday"
    cal.remove_office_day(admin, thursday)
    assert db.session.scalar(select(func.count()).select_from(OfficeDay)) == 0
    assert audits("office_day.removed") == 1
    refused(lambda: cal.remove_office_day(admin, thursday), cal.CalendarError, "day")
    refused(lambda: cal.set_office_day(admin, thursday, "party"), cal.CalendarError, "kind")
    refused(lambda: cal.set_office_day(admin, "2026-11-26", "holiday"), cal.CalendarError,
            "day")
    refused(lambda: cal.set_office_day(admin, thursday, "holiday", "x" * 201),
            cal.CalendarError, "note")
    refused(lambda: cal.set_office_day(actor("mia"), thursday, "holiday"), ForbiddenError)


def test_r_i7_warnings_for_a_year_without_data_until_confirmed(ctx):
    assert [w.years for w in cal.calendar_warnings(date(2026, 11, 25))] == [(2027,)]
    assert "2027" in cal.calendar_warnings(date(2026, 11, 25))[0].message()
    cal.confirm_year(actor("adam"), 2027, "entered from the State Council notice")
    assert cal.calendar_warnings(date(2026, 11, 25)) == []
    assert cal.load_calendar().day_source(date(2027, 3, 3)) == "table"
    cal.confirm_year(actor("adam"), 2027, "checked again")  # updates the note
    assert [(y.year, y.note) for y in cal.confirmed_years()] == [(2027, "checked again")]
    cal.unconfirm_year(actor("adam"), 2027)
    assert [w.years for w in cal.calendar_warnings(date(2026, 11, 25))] == [(2027,)]
    assert audits("office_year.confirmed") == 2 and audits("office_year.unconfirmed") == 1
    refused(lambda: cal.unconfirm_year(actor("adam"), 2027), cal.CalendarError, "year")
    refused(lambda: cal.confirm_year(actor("adam"), 1999), cal.CalendarError, "year")
    refused(lambda: cal.confirm_year(actor("sam"), 2027), ForbiddenError)


# -- escalation ladder and holders (R-I4) -----------------------------------------------
def test_r_i4_ladder_save_validate_reset(ctx):
    assert esc.ladder_is_default()
    assert esc.current_ladder() == DEFAULT_ESCALATION_LADDER
    rows = [(3, "urgent", "technical_lead"), (1, "urgent", "account_manager"),
            (8, "general", "service_director")]
    esc.save_ladder(actor("adam"), rows)
    assert not esc.ladder_is_default()
    assert esc.current_ladder() == ((1, "urgent", "account_manager"),
                                    (3, "urgent", "technical_lead"),
                                    (8, "general", "service_director"))
    event = db.session.scalar(select(AuditEvent).where(
        AuditEvent.action == "escalation_ladder.saved"))
    assert event.before["default"] is True and len(event.before["rows"]) == 15
    assert event.after["rows"] == [[1, "urgent", "account_manager"],
                                   [3, "urgent", "technical_lead"],
                                   [8, "general", "service_director"]]
    for bad in ([(1, "urgent", "account_manager"), (2, "urgent", "account_manager")],
                [(1, "urgent", "janitor")], [(0, "urgent", "cto")], [(1, "minor", "cto")],
                [(9000, "urgent", "cto")], []):
        refused(lambda bad=bad: esc.save_ladder(actor("adam"), bad), esc.SetupError, "ladder")
    assert len(esc.current_ladder()) == 3  # unchanged
    refused(lambda: esc.save_ladder(actor("mia"), rows), ForbiddenError)
    # the rungs of a new incident follow the table
    number = report("urgent").number
    assert [(r.hours, r.role) for r in inc.incident_clocks(incident(number), NOW).rungs] == [
        (1, "account_manager"), (3, "technical_lead")]
    esc.reset_ladder(actor("adam"))
    assert esc.ladder_is_default()
    assert db.session.scalar(select(func.count()).select_from(EscalationRung)) == 0
    assert audits("escalation_ladder.reset") == 1


def test_r_i4_holders_and_recipients(ctx, world):
    a, b = world["a"], world["b"]
    pairs = lambda role, cid: [(u.email, kind) for u, kind in esc.recipients_for(role, cid)]  # noqa: E731
    assert pairs("account_manager", a) == [("amy@vendor.example", "holder"),
                                           ("ann@vendor.example", "deputy")]
    assert pairs("account_manager", b) == [("gus@vendor.example", "holder")]  # fallback
    assert pairs("technical_lead", b) == [("tom@vendor.example", "holder"),
                                          ("tia@vendor.example", "deputy")]
    refused(lambda: esc.set_holder(actor("adam"), "cto", user("cat").id, user("cat").id),
            esc.SetupError, "deputy_id")
    refused(lambda: esc.set_holder(actor("adam"), "cto", user("cat").id, customer_id=a),
            esc.SetupError, "customer_id")
    refused(lambda: esc.set_holder(actor("adam"), "cto", user("alice").id), esc.SetupError,
            "user_id")
    refused(lambda: esc.set_holder(actor("adam"), "janitor", user("cat").id), esc.SetupError,
            "role")
    refused(lambda: esc.set_holder(actor("sam"), "cto", user("cat").id), ForbiddenError)
    # upsert: B gets its own account manager; the CTO gets a deputy
    esc.set_holder(actor("adam"), "account_manager", user("sue").id, user("gus").id, b)
    esc.set_holder(actor("adam"), "cto", user("cat").id, user("mia").id)
    assert pairs("account_manager", b) == [("sue@vendor.example", "holder"),
                                           ("gus@vendor.example", "deputy")]
    assert pairs("cto", a) == [("cat@vendor.example", "holder"), ("mia@vendor.example", "deputy")]
    assert db.session.scalar(select(func.count()).select_from(EscalationHolder).where(
        EscalationHolder.role == "cto")) == 1
    # remove the global president: nobody holds it
    president = world["holders"]["president"]
    esc.remove_holder(actor("adam"), president)
    assert pairs("president", a) == []
    refused(lambda: esc.remove_holder(actor("adam"), president), esc.SetupError, "holder")
    assert [h.role for h in esc.holders()][:3] == ["account_manager"] * 3
    assert audits("escalation_holder.set") == 6 + 2 and audits("escalation_holder.removed") == 1


def test_timeline_words_for_the_tick_events(ctx):
    number = report("urgent").number
    row = incident(number)
    for kind, data in [
        ("escalated", {"role": "service_director", "hours": 4, "recipients": ["Dora", "Dan"]}),
        ("warning", {"target": "contact", "due": "2026-11-25 12:30", "recipients": []}),
        ("brief_overdue", {"day": "2026-11-24", "visit_id": 1, "recipients": ["Sam"]}),
        ("mystery", {}),
    ]:
        db.session.add(IncidentEvent(incident_id=row.id, at=NOW, kind=kind, public=False,
                                     actor_label="", data=data))
    db.session.commit()
    texts = [e.text for e in inc.timeline(incident(number), user("sam"))][1:]
    assert texts == [
        "Not resolved after 4 hours: escalated to the service director (told: Dora, Dan).",
        "Warning: the contact target is due at 2026-11-25 12:30 (told: nobody).",
        "The daily brief for 2026-11-24 is overdue (told: Sam).",
        "The incident was updated (mystery) by the service centre.",
    ]
    assert [e.kind for e in inc.timeline(incident(number), user("alice"))] == ["reported"]


def test_system_actor_may_act(ctx):
    number = report("general").number
    system = Actor.cli("import")
    inc.contact_customer(system, incident(number), engineer_id=user("sam").id)
    assert incident(number).engineer_id == user("sam").id
