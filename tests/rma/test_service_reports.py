"""Service reports (issue 7, R-R4): periods, the figures on generated data with known
answers (RMAs with R-R3 compliance, incidents by priority with R-I1/R-I2 targets and R-I4
escalations, R-I6 visits, R-A2 advisories), the PDF read back by text extraction, and
the ``rma tick`` job "service-reports" (China date, exactly once, catch-up, quarters).

The world (``build_world``): customer A "华东示范银行" with users alice (en), alan (zh_CN)
and an inactive one; B "Beta Bank" with bob; C without users; D with only an inactive
user. Every customer is created on 2026-10-20. In November 2026 (China dates) A has
5 RMAs with 7 items (4 free, 2 paid, 1 no fault found): 3 replacements delivered within
72 hours (48, 70 and 24 hours), 1 late (80 hours), 1 still running on 2026-12-01 and 1
waiting for payment; 3 incidents (2 urgent, 1 general) with 3 escalations; 2 on-site
visits (1 arrived in time, 1 late and chargeable); 2 advisories notified (1
acknowledged). Rows just outside November in China time (Oct 31 23:30, Dec 1 00:30) and
B's rows must not count.
"""

from __future__ import annotations

import io
import re
from datetime import UTC, date, datetime, timedelta

import pytest
from pypdf import PdfReader
from sqlalchemy import func, select

from rma.extensions import db
from rma.models import (
    Advisory,
    AdvisoryNotice,
    AuditEvent,
    Customer,
    Incident,
    IncidentAlert,
    IncidentStatus,
    OnsiteVisit,
    OutboxMessage,
    ProductModel,
    Rma,
    RmaItem,
    RmaStatus,
    ServiceReport,
    Shipment,
    Unit,
)
from rma.services import service_reports as sr
from rma.services.audit import Actor
from rma.services.catalog import create_customer, create_product_model
from rma.services.service_reports import ServiceReportError
from rma.services.users import create_user
from tests.conftest import TEST_PASSWORD, count_queries

H = timedelta(hours=1)
DEC_1 = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)  # 2026-12-01 09:00 in Shanghai
A_NAME = "华东示范银行"


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def at(app, moment: datetime) -> datetime:
    """Pin the app's clock to ``moment`` (services and the outbox read it)."""
    app.config["FIXED_NOW"] = moment.isoformat()
    return moment


# -- the world ------------------------------------------------------------------------------
class _Builder:
    def __init__(self):
        self.model_id = db.session.scalar(select(ProductModel.id).where(ProductModel.code == "TK3"))
        self.serial = db.session.scalar(select(func.count(Unit.id)))

    def unit(self, customer_id: int) -> Unit:
        self.serial += 1
        unit = Unit(serial=f"TK3-{self.serial:05d}", model_id=self.model_id,
                    customer_id=customer_id, shipped_on=date(2026, 1, 5))
        db.session.add(unit)
        db.session.flush()
        return unit

    def rma(self, customer_id: int, number: str, submitted_at: datetime, items: list[dict],
            status: RmaStatus = RmaStatus.OPEN) -> Rma:
        rma = Rma(number=number, customer_id=customer_id, status=status, contact_name="Li Lei",
                  contact_phone="+86 21 5555 0000", contact_email="li@example.com",
                  ship_to="1 Bund Road", submitted_at=submitted_at)
        db.session.add(rma)
        db.session.flush()
        for line_no, spec in enumerate(items, start=1):
            unit = self.unit(customer_id)
            started = spec.get("started")
            item = RmaItem(rma_id=rma.id, line_no=line_no, unit_id=unit.id, serial=unit.serial,
                           fault_description="does not start", status=spec["status"],
                           decision=spec.get("decision"), cause=spec.get("cause"),
                           clock_started_at=started,
                           due_at=started + 72 * H if started else None)
            db.session.add(item)
            db.session.flush()
            if started is not None and "hours" in spec:
                delivered = started + spec["hours"] * H if spec["hours"] is not None else None
                db.session.add(Shipment(item_id=item.id, kind="replacement", unit_id=unit.id,
                                        carrier="SF", tracking_number=f"SF{item.id}",
                                        shipped_at=started + H, delivered_at=delivered))
        return rma

    def incident(self, customer_id: int, number: str, priority: str, reported_at: datetime, *,
                 contacted: timedelta | None = None, diagnosed: timedelta | None = None,
                 resolved: timedelta | None = None, resolution_due: timedelta = 48 * H,
                 escalations: int = 0) -> Incident:
        status = (IncidentStatus.RESOLVED if resolved else IncidentStatus.DIAGNOSED if diagnosed
                  else IncidentStatus.CONTACTED if contacted else IncidentStatus.NEW)
        incident = Incident(
            number=number, customer_id=customer_id, priority=priority, status=status,
            channel="phone", title="Login server down", description="Nobody can log in.",
            reported_at=reported_at, contact_due_at=reported_at + timedelta(minutes=30),
            diagnosis_due_at=reported_at + 24 * H,
            resolution_due_at=reported_at + resolution_due,
            contacted_at=reported_at + contacted if contacted else None,
            diagnosed_at=reported_at + diagnosed if diagnosed else None,
            resolved_at=reported_at + resolved if resolved else None)
        db.session.add(incident)
        db.session.flush()
        for index, role in enumerate(("account_manager", "technical_lead", "cto")[:escalations]):
            db.session.add(IncidentAlert(incident_id=incident.id, kind="escalation", key=role,
                                         hours=index + 1, due_at=reported_at + (index + 1) * H,
                                         fired_at=reported_at + (index + 1) * H))
        return incident

    def visit(self, incident: Incident, kind: str, requested_at: datetime,
              arrived: timedelta | None, chargeable: bool = False) -> OnsiteVisit:
        visit = OnsiteVisit(incident_id=incident.id, kind=kind, requested_at=requested_at,
                            arrival_due_at=requested_at + 8 * H,
                            arrived_at=requested_at + arrived if arrived else None,
                            chargeable=chargeable)
        db.session.add(visit)
        return visit

    def advisory(self, number: str, severity: str) -> Advisory:
        advisory = Advisory(number=number, title=f"OTP server flaw {number}", severity=severity,
                            description="A flaw.")
        db.session.add(advisory)
        db.session.flush()
        return advisory


def _customer(name: str, contract_language: str = "zh_CN") -> int:
    customer = create_customer(Actor.cli("test"), name, date(2026, 3, 10), 12, "1 Bund Road")
    customer.language = contract_language
    db.session.commit()
    return customer.id


def _user(email: str, customer_id: int | None, language: str = "en", role: str = "customer",
          active: bool = True) -> int:
    user = create_user(Actor.cli("test"), email, role, TEST_PASSWORD,
                       db.session.get(Customer, customer_id) if customer_id else None, language)
    user.full_name = email.split("@")[0].capitalize()
    user.is_active_flag = active
    db.session.commit()
    return user.id


def build_world(app) -> dict:
    """See the module docstring. Leaves the clock at 2026-12-01 09:00 China time."""
    world: dict = {}
    with app.test_request_context(headers={"Accept-Language": "en"}):
        at(app, utc(2026, 10, 20, 4))
        create_product_model(Actor.cli("test"), "TK3", "TK3 token", "hardware", 36, "ship", "80.00")
        a, b = _customer(A_NAME), _customer("Beta Bank", "en")
        c, d = _customer("Gamma Securities"), _customer("Delta Insurance")
        world.update(a=a, b=b, c=c, d=d)
        world["alice"] = _user("alice@a.example", a, "en")
        world["alan"] = _user("alan@a.example", a, "zh_CN")
        _user("old@a.example", a, active=False)
        world["bob"] = _user("bob@b.example", b)
        _user("dora@d.example", d, active=False)
        _user("sam@vendor.example", None, role="support")
        at(app, DEC_1)
        w = _Builder()
        delivered, shipped, waiting = "delivered", "shipped", "waiting_payment"
        free = {"decision": "free", "cause": "quality_defect"}
        paid = {"decision": "paid", "cause": "misuse_drop"}
        w.rma(a, "RMA-2026-00001", utc(2026, 11, 3, 2), [
            {**free, "status": delivered, "started": utc(2026, 11, 3, 6), "hours": 48},
            {**free, "status": delivered, "started": utc(2026, 11, 3, 6), "hours": 70},
        ], status=RmaStatus.CLOSED)
        w.rma(a, "RMA-2026-00002", utc(2026, 11, 10, 2), [
            {**free, "status": delivered, "started": utc(2026, 11, 10, 5), "hours": 80}])
        w.rma(a, "RMA-2026-00003", utc(2026, 11, 15, 2), [
            {**free, "status": shipped, "started": utc(2026, 11, 30, 2), "hours": None},
            {**paid, "status": delivered, "started": utc(2026, 11, 16, 2), "hours": 24}])
        w.rma(a, "RMA-2026-00004", utc(2026, 11, 20, 2), [{**paid, "status": waiting}])
        w.rma(a, "RMA-2026-00005", utc(2026, 11, 30, 15, 30), [  # Nov 30 23:30 China
            {"decision": "return_unit", "cause": "no_fault_found", "status": "closed"}])
        # Just outside November in China time, and another customer's RMA.
        w.rma(a, "RMA-2026-00090", utc(2026, 10, 31, 15, 30), [  # Oct 31 23:30 China
            {**free, "status": delivered, "started": utc(2026, 11, 1, 2), "hours": 90}])
        w.rma(a, "RMA-2026-00091", utc(2026, 11, 30, 16, 30), [  # Dec 1 00:30 China
            {"status": "submitted"}])
        w.rma(b, "RMA-2026-00100", utc(2026, 11, 12, 2), [
            {**free, "status": delivered, "started": utc(2026, 11, 12, 5), "hours": 100}] * 3)

        i1 = w.incident(a, "INC-2026-000001", "urgent", utc(2026, 11, 5, 2),
                        contacted=timedelta(minutes=20), diagnosed=30 * H, resolved=40 * H,
                        escalations=1)
        i2 = w.incident(a, "INC-2026-000002", "general", utc(2026, 11, 12, 2),
                        contacted=timedelta(minutes=45), diagnosed=10 * H,
                        resolution_due=38 * 24 * H)
        i3 = w.incident(a, "INC-2026-000003", "urgent", utc(2026, 11, 20, 2),
                        contacted=timedelta(minutes=10), diagnosed=5 * H, resolved=20 * H,
                        escalations=2)
        w.visit(i2, "change", utc(2026, 11, 13, 2), arrived=10 * H, chargeable=True)
        w.visit(i3, "emergency", utc(2026, 11, 20, 3), arrived=6 * H)
        w.incident(a, "INC-2026-000090", "urgent", utc(2026, 10, 31, 15),  # Oct 31 China
                   contacted=timedelta(minutes=50), escalations=3)
        ib = w.incident(b, "INC-2026-000100", "serious", utc(2026, 11, 6, 2), escalations=2)
        w.visit(ib, "emergency", utc(2026, 11, 6, 3), arrived=None, chargeable=True)
        world["incidents"] = [i1.number, i2.number, i3.number]

        sa1, sa2 = w.advisory("SA-2026-0001", "high"), w.advisory("SA-2026-0002", "low")
        sa3 = w.advisory("SA-2026-0003", "medium")
        db.session.add_all([
            AdvisoryNotice(advisory_id=sa1.id, customer_id=a, queued_at=utc(2026, 11, 8, 2),
                           acknowledged_at=utc(2026, 11, 9, 2)),
            AdvisoryNotice(advisory_id=sa2.id, customer_id=a, queued_at=utc(2026, 10, 30, 2)),
            AdvisoryNotice(advisory_id=sa3.id, customer_id=a, queued_at=utc(2026, 11, 28, 2)),
            AdvisoryNotice(advisory_id=sa1.id, customer_id=b, queued_at=utc(2026, 11, 8, 2)),
        ])
        db.session.commit()
    return world


@pytest.fixture
def world(app):
    return build_world(app)


@pytest.fixture
def en(app):
    with app.test_request_context(headers={"Accept-Language": "en"}):
        yield app


def customer(customer_id: int) -> Customer:
    return db.session.get(Customer, customer_id)


def outbox() -> list[OutboxMessage]:
    return list(db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def pdf_text(pdf: bytes) -> str:
    return re.sub(r"\s+", "", "".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages))


# -- periods --------------------------------------------------------------------------------
@pytest.mark.parametrize(("period", "bounds"), [
    ("2026-11", (date(2026, 11, 1), date(2026, 11, 30))),
    ("2026-02", (date(2026, 2, 1), date(2026, 2, 28))),
    ("2028-02", (date(2028, 2, 1), date(2028, 2, 29))),
    ("2026-12", (date(2026, 12, 1), date(2026, 12, 31))),
    ("2026-Q1", (date(2026, 1, 1), date(2026, 3, 31))),
    ("2026-Q4", (date(2026, 10, 1), date(2026, 12, 31))),
    (" 2026-q3 ", (date(2026, 7, 1), date(2026, 9, 30))),
])
def test_r_r4_period_bounds(period, bounds):
    assert sr.period_bounds(period) == bounds


@pytest.mark.parametrize("period", ["2026-13", "2026-00", "2026-Q5", "2026-Q0", "26-11",
                                    "2026/11", "", "November", None, 202611, "1999-01"])
def test_r_r4_a_bad_period_is_refused_on_the_period_field(en, period):
    with pytest.raises(ServiceReportError) as caught:
        sr.period_bounds(period)
    assert caught.value.field == "period" and isinstance(caught.value, ValueError)


@pytest.mark.parametrize(("today", "kind", "expected"), [
    (date(2026, 12, 1), "month", "2026-11"),
    (date(2027, 1, 1), "month", "2026-12"),
    (date(2026, 12, 2), "month", None),
    (date(2027, 1, 1), "quarter", "2026-Q4"),
    (date(2026, 4, 1), "quarter", "2026-Q1"),
    (date(2026, 7, 1), "quarter", "2026-Q2"),
    (date(2026, 10, 1), "quarter", "2026-Q3"),
    (date(2026, 12, 1), "quarter", None),
    (date(2027, 1, 2), "quarter", None),
])
def test_r_r4_previous_period(today, kind, expected):
    assert sr.previous_period(today, kind) == expected


def test_r_r4_previous_period_refuses_an_unknown_kind():
    with pytest.raises(ValueError, match="month, quarter"):
        sr.previous_period(date(2026, 12, 1), "week")


# -- figures --------------------------------------------------------------------------------
def test_r_r4_r_r3_rma_figures_of_november(en, world):
    figures = sr.report_figures(customer(world["a"]), "2026-11", DEC_1)
    rmas = figures.rmas
    assert (rmas.count, rmas.items) == (5, 7)
    assert [line.number for line in rmas.rmas] == [f"RMA-2026-0000{n}" for n in range(1, 6)]
    assert [line.items for line in rmas.rmas] == [2, 1, 2, 1, 1]
    assert rmas.rmas[-1].submitted_on == date(2026, 11, 30)  # China date of 15:30 UTC
    assert rmas.decisions == {"free": 4, "paid": 2, "return_unit": 1, "none": 0}
    assert rmas.causes["quality_defect"] == 4 and rmas.causes["misuse_drop"] == 2
    assert rmas.causes["no_fault_found"] == 1 and sum(rmas.causes.values()) == 7
    assert (rmas.met, rmas.missed, rmas.open) == (3, 1, 1)
    assert rmas.share_met == 75.0
    # delivered after 24, 48, 70 and 80 hours: median 59.0, 90th percentile (rank 4) 80.0
    assert (rmas.delivered, rmas.median_hours, rmas.p90_hours) == (4, 59.0, 80.0)


def test_r_r3_an_open_clock_past_its_due_time_counts_as_missed(en, world):
    later = utc(2026, 12, 3, 3)  # the running clock was due 2026-12-03 02:00 UTC
    rmas = sr.report_figures(customer(world["a"]), "2026-11", later).rmas
    assert (rmas.met, rmas.missed, rmas.open) == (3, 2, 0)
    assert rmas.share_met == 60.0


def test_r_i1_r_i2_r_i4_incidents_by_priority_with_targets(en, world):
    incidents = sr.report_figures(customer(world["a"]), "2026-11", DEC_1).incidents
    assert (incidents.count, incidents.resolved, incidents.escalations) == (3, 2, 3)
    urgent, general = incidents.by_priority
    assert (urgent.priority, urgent.incidents, urgent.resolved, urgent.escalations) == \
        ("urgent", 2, 2, 3)
    assert urgent.targets["contact"] == {"met": 2, "missed": 0, "open": 0}
    assert urgent.targets["diagnosis"] == {"met": 1, "missed": 1, "open": 0}
    assert urgent.targets["resolution"] == {"met": 2, "missed": 0, "open": 0}
    assert urgent.targets["onsite_arrival"] == {"met": 1, "missed": 0, "open": 0}
    assert (general.priority, general.incidents, general.resolved, general.escalations) == \
        ("general", 1, 0, 0)
    assert general.targets["contact"] == {"met": 0, "missed": 1, "open": 0}
    assert general.targets["diagnosis"] == {"met": 1, "missed": 0, "open": 0}
    assert general.targets["resolution"] == {"met": 0, "missed": 0, "open": 1}
    assert general.targets["onsite_arrival"] == {"met": 0, "missed": 1, "open": 0}


def test_r_i2_open_incident_targets_are_judged_at_the_now_passed_in(app, en, world):
    """The report is judged at its own ``now``, not the app's clock: the general incident's
    resolution, still open on 1 December, is missed when judged in January (R-R4, R-I4)."""
    at(app, DEC_1)
    late = utc(2027, 1, 15, 3)
    general = sr.report_figures(customer(world["a"]), "2026-11", late).incidents.by_priority[1]
    assert general.targets["resolution"] == {"met": 0, "missed": 1, "open": 0}
    early = sr.report_figures(customer(world["a"]), "2026-11", DEC_1).incidents.by_priority[1]
    assert early.targets["resolution"] == {"met": 0, "missed": 0, "open": 1}


def test_r_i6_r_c4_visits_with_arrival_and_charge(en, world):
    visits = sr.report_figures(customer(world["a"]), "2026-11", DEC_1).visits
    assert (visits.count, visits.arrival_met, visits.arrival_missed, visits.arrival_open,
            visits.chargeable) == (2, 1, 1, 0, 1)
    change, emergency = visits.visits
    assert (change.incident, change.kind, change.arrival, change.chargeable) == \
        ("INC-2026-000002", "change", "missed", True)
    assert change.requested == "2026-11-13 10:00" and change.arrived == "2026-11-13 20:00"
    assert (emergency.kind, emergency.arrival, emergency.chargeable) == \
        ("emergency", "met", False)


def test_r_a2_advisories_notified_in_the_period(en, world):
    advisories = sr.report_figures(customer(world["a"]), "2026-11", DEC_1).advisories
    assert (advisories.count, advisories.acknowledged) == (2, 1)
    first, second = advisories.advisories
    assert (first.number, first.severity, first.acknowledged, first.acknowledged_on) == \
        ("SA-2026-0001", "high", True, date(2026, 11, 9))
    assert (second.number, second.severity, second.acknowledged) == \
        ("SA-2026-0003", "medium", False)


def test_r_r4_another_customers_data_never_appears(en, world):
    figures = sr.report_figures(customer(world["b"]), "2026-11", DEC_1)
    assert (figures.rmas.count, figures.rmas.items, figures.rmas.missed) == (1, 3, 3)
    assert figures.incidents.count == 1 and figures.incidents.escalations == 2
    assert [r.priority for r in figures.incidents.by_priority] == ["serious"]
    assert figures.visits.count == 1 and figures.visits.arrival_missed == 1
    assert [a.number for a in figures.advisories.advisories] == ["SA-2026-0001"]
    text = str(figures.as_dict())
    assert "RMA-2026-0000" not in text and "INC-2026-000001" not in text
    assert A_NAME not in text
    empty = sr.report_figures(customer(world["c"]), "2026-11", DEC_1)
    assert (empty.rmas.count, empty.incidents.count, empty.visits.count,
            empty.advisories.count) == (0, 0, 0, 0)
    assert empty.rmas.share_met is None and empty.rmas.median_hours is None


def test_r_r4_a_quarter_spans_three_months(en, world):
    figures = sr.report_figures(customer(world["a"]), "2026-Q4", DEC_1)
    assert (figures.period, figures.period_start, figures.period_end) == \
        ("2026-Q4", date(2026, 10, 1), date(2026, 12, 31))
    assert figures.rmas.count == 7  # with Oct 31 and Dec 1 (China dates)
    assert figures.incidents.count == 4 and figures.incidents.escalations == 6
    assert figures.advisories.count == 3


def test_r_r4_figures_are_json_able(en, world):
    import json

    data = sr.report_figures(customer(world["a"]), "2026-11", DEC_1).as_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["period_start"] == "2026-11-01" and data["rmas"]["share_met"] == 75.0
    assert data["customer_name"] == A_NAME


def test_r_r4_report_figures_runs_a_bounded_number_of_queries(app, en, world):
    w = _Builder()
    small, large = _customer("Small Bank"), _customer("Large Bank")
    for index in range(2):
        w.rma(small, f"RMA-2026-1{index:04d}", utc(2026, 11, 5, 2),
              [{"status": "delivered", "decision": "free", "cause": "quality_defect",
                "started": utc(2026, 11, 5, 3), "hours": 30}])
    for index in range(40):
        w.rma(large, f"RMA-2026-2{index:04d}", utc(2026, 11, 5, 2),
              [{"status": "delivered", "decision": "free", "cause": "quality_defect",
                "started": utc(2026, 11, 5, 3), "hours": 30 + index}] * 2)
    db.session.commit()
    counts = []
    for customer_id in (small, large):
        row = customer(customer_id)
        with count_queries(app) as statements:
            figures = sr.report_figures(row, "2026-11", DEC_1)
        counts.append(len(statements))
    assert figures.rmas.items == 80
    assert counts[0] == counts[1] <= 8, counts
    with count_queries(app) as statements:
        sr.report_figures(customer(large), "2026-Q4", DEC_1)
    assert len(statements) <= 14


# -- the PDF --------------------------------------------------------------------------------
def test_r_r4_the_pdf_shows_title_customer_period_and_key_figures(en, world):
    report = sr.build_report(customer(world["a"]), "2026-11", DEC_1)
    assert report.language == "zh_CN" and report.pdf.startswith(b"%PDF")
    text = pdf_text(report.pdf)
    for expected in ("服务报告", A_NAME, "2026-11", "2026-11-01", "2026-11-30",
                     "RMA-2026-00001", "INC-2026-000002", "SA-2026-0003", "75.0%", "59.0",
                     "80.0", customer(world["a"]).contract_number):
        assert expected in text, expected
    assert "RMA-2026-00100" not in text and "Beta" not in text


def test_r_r4_the_english_pdf(en, world):
    report = sr.build_report(customer(world["b"]), "2026-11", DEC_1)
    assert report.language == "en"
    text = pdf_text(report.pdf)
    for expected in ("Servicereport", "BetaBank", "2026-11", "RMAssubmitted", "Escalations",
                     "RMA-2026-00100", "INC-2026-000100", "SA-2026-0001", "Chargeable"):
        assert expected in text, expected


def test_r_r4_build_report_stores_and_replaces_an_unsent_report(app, en, world):
    first = sr.build_report(customer(world["a"]), "2026-11", DEC_1)
    assert first.figures["rmas"]["count"] == 5 and first.sent_at is None
    _Builder().rma(world["a"], "RMA-2026-00006", utc(2026, 11, 21, 2), [{"status": "submitted"}])
    db.session.commit()
    again = sr.build_report(customer(world["a"]), "2026-11", DEC_1 + H)
    assert again.id == first.id and again.figures["rmas"]["count"] == 6
    assert db.session.scalar(select(func.count(ServiceReport.id))) == 1
    actions = db.session.scalars(select(AuditEvent.action).where(
        AuditEvent.entity_type == "service_report")).all()
    assert actions == ["service_report.built", "service_report.built"]


def test_r_r4_a_sent_report_is_immutable(app, en, world):
    assert sr.send_due_reports_job(DEC_1).items == 2
    sent = sr.sent_report(world["a"], "2026-11")
    pdf, figures, generated_at = sent.pdf, dict(sent.figures), sent.generated_at
    _Builder().rma(world["a"], "RMA-2026-00006", utc(2026, 11, 21, 2), [{"status": "submitted"}])
    db.session.commit()
    again = sr.build_report(customer(world["a"]), "2026-11", DEC_1 + 5 * H, language="en")
    assert again.id == sent.id and again.pdf == pdf and again.figures == figures
    assert again.generated_at == generated_at and again.language == "zh_CN"
    assert sr.report_pdf(customer(world["a"]), "2026-11", DEC_1 + 5 * H)[0] == pdf


# -- the tick job ---------------------------------------------------------------------------
def test_r_r4_tick_on_the_first_sends_last_months_report_once_per_customer(app, en, world):
    result = sr.send_due_reports_job(DEC_1)
    assert result.summary == "service-reports: sent 2 (2026-11), e-mails 3"
    assert (result.items, result.emails, result.busy) == (2, 3, True)
    mails = outbox()
    assert sorted(m.to_address for m in mails) == ["alan@a.example", "alice@a.example",
                                                   "bob@b.example"]
    by_address = {m.to_address: m for m in mails}
    alan, alice = by_address["alan@a.example"], by_address["alice@a.example"]
    assert alan.language == "zh_CN" and alice.language == "en"
    assert alice.template == "service_report" and "2026-11" in alice.subject
    assert A_NAME in alice.subject and "/portal/reports" in alice.body_text
    [attachment] = alice.attachments
    report = sr.sent_report(world["a"], "2026-11")
    assert attachment.content_type == "application/pdf" and attachment.data == report.pdf
    contract = customer(world["a"]).contract_number
    assert attachment.filename == f"service-report-{contract}-2026-11.pdf"
    assert report.sent_at == DEC_1 and report.period_start == date(2026, 11, 1)
    assert alice.dedupe_key == f"service-report:{report.id}:user:{world['alice']}"
    # C has no user and D only an inactive one: no report for them.
    assert db.session.scalar(select(func.count(ServiceReport.id))) == 2
    sent = db.session.scalars(select(AuditEvent).where(
        AuditEvent.action == "service_report.sent")).all()
    assert len(sent) == 2 and all(e.actor_label == sr.JOB_ACTOR for e in sent)
    # A second run, and a run the next day, send nothing more.
    assert sr.send_due_reports_job(DEC_1 + H).summary == "service-reports: none"
    assert sr.send_due_reports_job(utc(2026, 12, 2, 1)).busy is False
    assert len(outbox()) == 3


def test_r_r4_a_second_machine_sending_the_same_report_sends_nothing(app, en, world):
    assert sr.send_report(world["a"], "2026-11", DEC_1) == 2
    assert sr.send_report(world["a"], "2026-11", DEC_1) is None
    assert len(outbox()) == 2


def test_r_r4_an_unsent_stored_report_is_rebuilt_and_sent(app, en, world):
    built = sr.build_report(customer(world["a"]), "2026-11", DEC_1 - 2 * H)
    assert sr.send_due_reports_job(DEC_1).items == 2
    sent = sr.sent_report(world["a"], "2026-11")
    assert sent.id == built.id and sent.generated_at == DEC_1


def test_r_r4_the_china_date_decides(app, en, world):
    before = sr.send_due_reports_job(utc(2026, 11, 30, 15))  # Nov 30 23:00 China
    assert before.summary.startswith("service-reports: sent 2 (2026-10)")
    after = sr.send_due_reports_job(utc(2026, 11, 30, 16, 30))  # Dec 1 00:30 China
    assert after.summary.startswith("service-reports: sent 2 (2026-11)")


def test_r_r4_catch_up_after_a_missed_first(app, en, world):
    at(app, utc(2026, 12, 3, 1))
    result = sr.send_due_reports_job(utc(2026, 12, 3, 1))
    assert result.summary == "service-reports: sent 2 (2026-11), e-mails 3"
    assert sr.send_due_reports_job(utc(2026, 12, 20, 1)).summary == "service-reports: none"


def test_r_r4_a_customer_created_after_the_period_gets_no_report(app, en, world):
    at(app, utc(2026, 12, 1, 0))
    late = _customer("Late Bank")
    _user("lena@late.example", late)
    assert sr.send_due_reports_job(DEC_1).items == 2
    assert sr.sent_report(late, "2026-11") is None


def test_r_r4_one_failing_customer_does_not_stop_the_others(app, en, world, monkeypatch):
    real = sr._send_once

    def flaky(customer_id, period, now):
        if customer_id == world["a"]:
            raise RuntimeError("disk full")
        return real(customer_id, period, now)

    monkeypatch.setattr(sr, "_send_once", flaky)
    result = sr.send_due_reports_job(DEC_1)
    assert result.summary == "service-reports: sent 1 (2026-11), e-mails 1, failed 1"
    assert sr.sent_report(world["a"], "2026-11") is None
    assert db.session.scalar(select(func.count(ServiceReport.id))) == 1
    monkeypatch.setattr(sr, "_send_once", real)
    assert sr.send_due_reports_job(DEC_1 + H).summary == \
        "service-reports: sent 1 (2026-11), e-mails 2"


@pytest.mark.parametrize("app_config", [{"POLICY": {"service_report_period": "quarter"}}])
def test_r_r4_quarter_mode_sends_the_quarter_on_january_first(app, en, world):
    assert sr.send_due_reports_job(DEC_1).summary == "service-reports: none"
    new_year = at(app, utc(2026, 12, 31, 16, 5))  # 2027-01-01 00:05 China
    result = sr.send_due_reports_job(new_year)
    assert result.summary == "service-reports: sent 2 (2026-Q4), e-mails 3"
    report = sr.sent_report(world["a"], "2026-Q4")
    assert (report.period_start, report.period_end) == (date(2026, 10, 1), date(2026, 12, 31))
    assert report.figures["rmas"]["count"] == 7
    assert sr.send_due_reports_job(new_year + 24 * H).summary == "service-reports: none"


def test_r_r4_rma_tick_runs_the_job(app, world, runner):
    result = runner.invoke(args=["tick"])
    assert result.exit_code == 0, result.output
    line = result.output.strip().splitlines()[-1]
    assert "service-reports: sent 2 (2026-11), e-mails 3; mail: sent 3" in line
    result = runner.invoke(args=["tick"])
    assert "service-reports: none; mail: sent 0" in result.output.strip().splitlines()[-1]


def test_r_r4_customer_reports_lists_sent_ones_newest_first(app, en, world):
    sr.send_due_reports_job(utc(2026, 11, 30, 15))  # October's
    sr.send_due_reports_job(DEC_1)  # November's
    sr.build_report(customer(world["a"]), "2026-12", DEC_1)  # stored, not sent
    assert [r.period for r in sr.customer_reports(world["a"])] == ["2026-11", "2026-10"]
    november = sr.sent_report(world["a"], "2026-11")
    assert sr.get_customer_report(world["a"], november.id) is not None
    assert sr.get_customer_report(world["b"], november.id) is None
    unsent = db.session.scalar(select(ServiceReport).where(ServiceReport.period == "2026-12"))
    assert sr.get_customer_report(world["a"], unsent.id) is None
