"""Periodic service reports to customers (R-R4; issue 7).

For one customer and one period (a month "2026-11" or a quarter "2026-Q4", China dates):
its RMAs submitted in the period (how many, items, decisions, causes, turnaround and the
72-hour compliance of their replacement clocks, R-R3), its incidents reported in the
period by priority with each target met or missed and the escalations (R-I1, R-I2, R-I4,
reusing ``incidents.compliance``), its on-site visits requested in the period (R-I6,
R-C4) and the advisories it was notified of in the period (R-A2).

``report_figures`` reads them in a constant number of queries (two for the RMAs, three
per month for the incidents, one each for visits and advisories) whatever the number of
RMAs. ``build_report`` stores the figures and the PDF (``ServiceReport``, unique per
customer and period) so a past report reads the same later; a sent one is never changed.

``send_due_reports_job`` is the ``rma tick`` job "service-reports": in the month after a
period (the first month of the next quarter in quarter mode, ``Policy.
service_report_period``) every customer with an active customer user that has no sent
report for the period gets it, once. The tick normally does this on the 1st; a tick that
did not run then catches up on its next run that month. Exactly once, also with two tick
processes at the same moment: each customer is its own transaction that locks (or
inserts: the unique constraint decides) the report row, sets ``sent_at`` by a conditional
``UPDATE ... WHERE sent_at IS NULL`` and writes the e-mails with dedupe keys (the
outbox's unique index) and the audit event (R-R4) in the same commit.
"""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal

from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import exists, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import defer, joinedload
from werkzeug.routing import BuildError

from rma import clock
from rma.documents.service_report import (
    ReportTableData as ReportTable,
)
from rma.documents.service_report import (
    ServiceReportDocument,
    render_service_report,
)
from rma.extensions import db
from rma.models import (
    Advisory,
    AdvisoryNotice,
    Customer,
    Incident,
    ItemStatus,
    OnsiteVisit,
    Rma,
    RmaItem,
    Role,
    ServiceReport,
    Shipment,
    User,
)
from rma.policy import current_policy
from rma.services import ValidationError
from rma.services.advisories import SEVERITY_LABELS
from rma.services.audit import Actor, record
from rma.services.incidents import PRIORITY_LABELS, TARGET_LABELS, VISIT_KIND_LABELS, compliance
from rma.services.outbox import Attachment, enqueue
from rma.services.replacement_jobs import JobResult
from warranty.policy import PRIORITIES

log = logging.getLogger(__name__)

PERIOD_KINDS = ("month", "quarter")
JOB_ACTOR = "tick:service-reports"
PDF_TYPE = "application/pdf"
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_QUARTER = re.compile(r"^(\d{4})-Q([1-4])$", re.IGNORECASE)
_HOUR = Decimal(3600)
_TENTH = Decimal("0.1")
#: Item states that never ran a replacement clock worth counting.
_NOT_COUNTED = (ItemStatus.CANCELLED, ItemStatus.REJECTED)
DECISIONS = ("free", "paid", "return_unit", "none")
CAUSES = ("quality_defect", "misuse_drop", "misuse_heat", "misuse_water", "misuse_physical",
          "misuse_other", "no_fault_found", "not_inspected")
TARGETS = tuple(TARGET_LABELS)  # contact (R-I1), diagnosis (R-I2), resolution, arrival (R-I6)

# -- words (tables of the page and the PDF) -----------------------------------------------
DECISION_LABELS = {
    "free": _l("Free replacement"),
    "paid": _l("Paid replacement"),
    "return_unit": _l("No fault found, unit returned"),
    "none": _l("No decision yet"),
}
CAUSE_LABELS = {
    "quality_defect": _l("Quality defect"),
    "misuse_drop": _l("Dropped"),
    "misuse_heat": _l("High temperature"),
    "misuse_water": _l("Water"),
    "misuse_physical": _l("Physical damage"),
    "misuse_other": _l("Other abnormal use"),
    "no_fault_found": _l("No fault found"),
    "not_inspected": _l("Not inspected yet"),
}
OUTCOME_LABELS = {"met": _l("Met"), "missed": _l("Missed"), "open": _l("Open")}
RMA_STATUS_LABELS = {"open": _l("Open"), "closed": _l("Closed"), "cancelled": _l("Cancelled")}


class ServiceReportError(ValidationError, ValueError):
    """Bad input (422); ``field`` names the form field ("period", "customer")."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message, field)


# -- periods --------------------------------------------------------------------------
def period_bounds(period: str) -> tuple[date, date]:
    """"2026-11" → (2026-11-01, 2026-11-30); "2026-Q4" → (2026-10-01, 2026-12-31): the
    first and last China date of the period, inclusive. ``ServiceReportError`` (field
    ``period``, also a ``ValueError``) for anything else."""
    text = period.strip() if isinstance(period, str) else ""
    month, quarter = _MONTH.match(text), _QUARTER.match(text)
    if month and 1 <= int(month.group(2)) <= 12 and 2000 <= int(month.group(1)) <= 2200:
        year, first_month, months = int(month.group(1)), int(month.group(2)), 1
    elif quarter and 2000 <= int(quarter.group(1)) <= 2200:
        year, months = int(quarter.group(1)), 3
        first_month = 3 * (int(quarter.group(2)) - 1) + 1
    else:
        raise ServiceReportError(_("Enter a month as YYYY-MM or a quarter as YYYY-Q1 to "
                                   "YYYY-Q4."), "period")
    start = date(year, first_month, 1)
    index = year * 12 + first_month - 1 + months
    return start, date(index // 12, index % 12 + 1, 1) - timedelta(days=1)


def normalize_period(period: str) -> str:
    """The period as stored: "2026-11" or "2026-Q4" (validated by ``period_bounds``)."""
    period_bounds(period)
    return period.strip().upper()


def previous_period(today: date, kind: str) -> str | None:
    """The period whose report is due on ``today`` (a China date): on the 1st of a month
    the month before ("month"); in quarter mode only on January, April, July and October
    1st, the quarter before. ``None`` on any other day. ``ValueError`` for another
    ``kind``."""
    if kind not in PERIOD_KINDS:
        raise ValueError(f"service_report_period must be one of {', '.join(PERIOD_KINDS)}, "
                         f"not {kind!r}")
    if today.day != 1:
        return None
    last = today - timedelta(days=1)
    if kind == "month":
        return f"{last.year:04d}-{last.month:02d}"
    if today.month not in (1, 4, 7, 10):
        return None
    return f"{last.year:04d}-Q{(last.month - 1) // 3 + 1}"


def _months(start: date, end: date) -> list[str]:
    out, day = [], start
    while day <= end:
        out.append(f"{day.year:04d}-{day.month:02d}")
        day = date(day.year + (day.month == 12), day.month % 12 + 1, 1)
    return out


def _instants(start: date, end: date) -> tuple[datetime, datetime]:
    """[China midnight of ``start``, China midnight after ``end``) as UTC."""
    zone = clock.local_zone()
    lo = datetime.combine(start, time(), tzinfo=zone).astimezone(UTC)
    hi = datetime.combine(end + timedelta(days=1), time(), tzinfo=zone).astimezone(UTC)
    return lo, hi


def _local(moment: datetime | None) -> str:
    return clock.to_local(moment).strftime("%Y-%m-%d %H:%M") if moment is not None else ""


# -- figures --------------------------------------------------------------------------
@dataclass(frozen=True)
class RmaLine:
    number: str
    submitted_on: date
    items: int
    status: str


@dataclass(frozen=True)
class RmaFigures:
    """RMAs submitted in the period. ``decisions`` and ``causes`` count items (keys
    ``DECISIONS``, ``CAUSES``). The replacement clocks of their items (R-R3; cancelled
    and rejected items and items without a started clock do not count): ``met`` delivered
    by the due time, ``missed`` delivered late or still open past it, ``open`` still
    running; ``median_hours``/``p90_hours`` (nearest rank) over the delivered clocks'
    start-to-delivery hours, one decimal; ``share_met`` met over met + missed, percent
    with one decimal."""

    count: int = 0
    items: int = 0
    open_rmas: int = 0
    decisions: dict = field(default_factory=lambda: dict.fromkeys(DECISIONS, 0))
    causes: dict = field(default_factory=lambda: dict.fromkeys(CAUSES, 0))
    delivered: int = 0
    median_hours: float | None = None
    p90_hours: float | None = None
    met: int = 0
    missed: int = 0
    open: int = 0
    share_met: float | None = None
    rmas: tuple[RmaLine, ...] = ()


@dataclass(frozen=True)
class PriorityFigures:
    """Incidents of one priority reported in the period; ``targets`` maps each target of
    ``TARGETS`` to {"met", "missed", "open"} counts (``incidents.compliance``)."""

    priority: str
    incidents: int
    resolved: int
    escalations: int
    targets: dict


@dataclass(frozen=True)
class IncidentFigures:
    count: int = 0
    resolved: int = 0
    escalations: int = 0
    by_priority: tuple[PriorityFigures, ...] = ()


@dataclass(frozen=True)
class VisitLine:
    """One on-site visit requested in the period; times in China time; ``arrival`` is
    "met", "missed" or "open" (R-I6: arrival within 8 hours)."""

    incident: str
    kind: str
    requested: str
    arrival_due: str
    arrived: str
    arrival: str
    chargeable: bool


@dataclass(frozen=True)
class VisitFigures:
    count: int = 0
    arrival_met: int = 0
    arrival_missed: int = 0
    arrival_open: int = 0
    chargeable: int = 0
    visits: tuple[VisitLine, ...] = ()


@dataclass(frozen=True)
class AdvisoryLine:
    number: str
    title: str
    severity: str
    notified_on: date
    acknowledged: bool
    acknowledged_on: date | None


@dataclass(frozen=True)
class AdvisoryFigures:
    count: int = 0
    acknowledged: int = 0
    advisories: tuple[AdvisoryLine, ...] = ()


@dataclass(frozen=True)
class ServiceReportFigures:
    """Everything a service report shows (R-R4); ``as_dict`` is its JSON form, stored in
    ``ServiceReport.figures`` and read back by the page and the PDF."""

    customer_id: int
    customer_name: str
    contract_number: str
    period: str
    period_start: date
    period_end: date
    generated_at: datetime
    rmas: RmaFigures
    incidents: IncidentFigures
    visits: VisitFigures
    advisories: AdvisoryFigures

    def as_dict(self) -> dict:
        return _jsonable(asdict(self))


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return value


def _one_decimal(value: Decimal) -> float:
    return float(value.quantize(_TENTH, rounding=ROUND_HALF_UP))


def _turnaround(hours: list[Decimal]) -> tuple[float | None, float | None]:
    """Median and 90th percentile (nearest rank) of ``hours``, one decimal, as
    ``warranty.replacement.monthly_figures`` computes them for a month."""
    if not hours:
        return None, None
    values = sorted(hours)
    n = len(values)
    median = values[n // 2] if n % 2 else (values[n // 2 - 1] + values[n // 2]) / 2
    rank = max(-(-90 * n // 100), 1)
    return _one_decimal(median), _one_decimal(values[rank - 1])


def _share(part: int, whole: int) -> float | None:
    return _one_decimal(Decimal(part) * 100 / Decimal(whole)) if whole else None


def _outcome(due_at: datetime, done_at: datetime | None, now: datetime) -> str:
    if done_at is not None:
        return "met" if done_at <= due_at else "missed"
    return "missed" if now > due_at else "open"


def _rma_figures(customer_id: int, lo: datetime, hi: datetime, now: datetime) -> RmaFigures:
    in_period = (Rma.customer_id == customer_id, Rma.submitted_at >= lo, Rma.submitted_at < hi)
    rmas = db.session.execute(
        select(Rma.id, Rma.number, Rma.submitted_at, Rma.status).where(*in_period)
        .order_by(Rma.submitted_at, Rma.id)).all()
    items = db.session.execute(
        select(RmaItem.rma_id, RmaItem.status, RmaItem.decision, RmaItem.cause,
               RmaItem.clock_started_at, RmaItem.due_at, Shipment.delivered_at)
        .join(Rma, Rma.id == RmaItem.rma_id)
        .outerjoin(Shipment, Shipment.item_id == RmaItem.id).where(*in_period)).all()
    per_rma: dict[int, int] = {}
    decisions = dict.fromkeys(DECISIONS, 0)
    causes = dict.fromkeys(CAUSES, 0)
    outcomes = dict.fromkeys(("met", "missed", "open"), 0)
    hours: list[Decimal] = []
    for rma_id, status, decision, cause, started_at, due_at, delivered_at in items:
        per_rma[rma_id] = per_rma.get(rma_id, 0) + 1
        decisions[decision if decision in decisions else "none"] += 1
        key = cause or "not_inspected"
        causes[key] = causes.get(key, 0) + 1
        if started_at is None or due_at is None or status in _NOT_COUNTED:
            continue
        outcomes[_outcome(due_at, delivered_at, now)] += 1
        if delivered_at is not None:
            hours.append(Decimal((delivered_at - started_at) // timedelta(microseconds=1))
                         / 1_000_000 / _HOUR)
    median, p90 = _turnaround(hours)
    return RmaFigures(
        count=len(rmas), items=len(items),
        open_rmas=sum(1 for row in rmas if str(row.status) == "open"),
        decisions=decisions, causes=causes, delivered=len(hours), median_hours=median,
        p90_hours=p90, met=outcomes["met"], missed=outcomes["missed"], open=outcomes["open"],
        share_met=_share(outcomes["met"], outcomes["met"] + outcomes["missed"]),
        rmas=tuple(RmaLine(row.number, clock.to_local(row.submitted_at).date(),
                           per_rma.get(row.id, 0), str(row.status)) for row in rmas))


def _incident_figures(customer_id: int, months: list[str], now: datetime) -> IncidentFigures:
    merged: dict[str, dict] = {}
    for month in months:
        for row in compliance(month, customer_id, now=now):
            group = merged.setdefault(row.priority, {
                "incidents": 0, "resolved": 0, "escalations": 0,
                "targets": {t: {"met": 0, "missed": 0, "open": 0} for t in TARGETS}})
            group["incidents"] += row.incidents
            group["resolved"] += row.resolved
            group["escalations"] += row.escalations
            for target, tally in row.targets.items():
                counts = group["targets"].setdefault(target, {"met": 0, "missed": 0, "open": 0})
                counts["met"] += tally.met
                counts["missed"] += tally.missed
                counts["open"] += tally.open
    rows = tuple(PriorityFigures(priority=p, **merged[p]) for p in PRIORITIES if p in merged)
    return IncidentFigures(count=sum(r.incidents for r in rows),
                           resolved=sum(r.resolved for r in rows),
                           escalations=sum(r.escalations for r in rows), by_priority=rows)


def _visit_figures(customer_id: int, lo: datetime, hi: datetime, now: datetime) -> VisitFigures:
    rows = db.session.execute(
        select(OnsiteVisit, Incident.number).join(Incident, Incident.id == OnsiteVisit.incident_id)
        .where(Incident.customer_id == customer_id, OnsiteVisit.requested_at >= lo,
               OnsiteVisit.requested_at < hi)
        .order_by(OnsiteVisit.requested_at, OnsiteVisit.id)).all()
    lines = []
    for visit, number in rows:
        done_at = visit.arrived_at or visit.ended_at
        lines.append(VisitLine(
            incident=number, kind=str(visit.kind), requested=_local(visit.requested_at),
            arrival_due=_local(visit.arrival_due_at), arrived=_local(visit.arrived_at),
            arrival=_outcome(visit.arrival_due_at, done_at, now),
            chargeable=bool(visit.chargeable)))
    return VisitFigures(
        count=len(lines), arrival_met=sum(v.arrival == "met" for v in lines),
        arrival_missed=sum(v.arrival == "missed" for v in lines),
        arrival_open=sum(v.arrival == "open" for v in lines),
        chargeable=sum(v.chargeable for v in lines), visits=tuple(lines))


def _advisory_figures(customer_id: int, lo: datetime, hi: datetime) -> AdvisoryFigures:
    rows = db.session.execute(
        select(Advisory.number, Advisory.title, Advisory.severity, AdvisoryNotice.queued_at,
               AdvisoryNotice.acknowledged_at)
        .join(Advisory, Advisory.id == AdvisoryNotice.advisory_id)
        .where(AdvisoryNotice.customer_id == customer_id, AdvisoryNotice.queued_at >= lo,
               AdvisoryNotice.queued_at < hi)
        .order_by(AdvisoryNotice.queued_at, Advisory.number)).all()
    lines = tuple(AdvisoryLine(
        number=number, title=title, severity=str(severity),
        notified_on=clock.to_local(queued_at).date(), acknowledged=acked is not None,
        acknowledged_on=clock.to_local(acked).date() if acked is not None else None)
        for number, title, severity, queued_at, acked in rows)
    return AdvisoryFigures(count=len(lines), acknowledged=sum(a.acknowledged for a in lines),
                           advisories=lines)


def report_figures(customer: Customer, period: str, now: datetime) -> ServiceReportFigures:
    """The figures of ``customer``'s report for ``period`` judged at ``now`` (R-R4; see
    the module docstring). A bounded number of queries, whatever the number of RMAs.
    ``ServiceReportError`` (field ``period``) for a bad period."""
    period = normalize_period(period)
    start, end = period_bounds(period)
    lo, hi = _instants(start, end)
    return ServiceReportFigures(
        customer_id=customer.id, customer_name=customer.name,
        contract_number=customer.contract_number, period=period, period_start=start,
        period_end=end, generated_at=now,
        rmas=_rma_figures(customer.id, lo, hi, now),
        incidents=_incident_figures(customer.id, _months(start, end), now),
        visits=_visit_figures(customer.id, lo, hi, now),
        advisories=_advisory_figures(customer.id, lo, hi))


# -- the report as tables (page and PDF) ------------------------------------------------
def _word(words: dict, value) -> str:
    return str(words.get(str(value), value)) if value is not None else ""


def _num(value) -> str:
    return "-" if value is None else (f"{value:.1f}" if isinstance(value, float) else str(value))


def _percent(value) -> str:
    return "-" if value is None else f"{value:.1f} %"


def summary_facts(figures: dict) -> list[tuple[str, str]]:
    """The key figures (label, value) of a stored or fresh ``figures`` dict, in the
    current language."""
    rmas, incidents = figures["rmas"], figures["incidents"]
    visits, advisories = figures["visits"], figures["advisories"]
    return [
        (_("RMAs submitted"), _num(rmas["count"])),
        (_("Items returned"), _num(rmas["items"])),
        (_("Replacements within 72 hours (R-R3)"),
         _("%(met)d met, %(missed)d missed, %(open)d open", met=rmas["met"],
           missed=rmas["missed"], open=rmas["open"])),
        (_("Share within 72 hours"), _percent(rmas["share_met"])),
        (_("Median hours to delivery"), _num(rmas["median_hours"])),
        (_("90th percentile hours to delivery"), _num(rmas["p90_hours"])),
        (_("Incidents reported"), _num(incidents["count"])),
        (_("Escalations"), _num(incidents["escalations"])),
        (_("On-site visits"), _num(visits["count"])),
        (_("Chargeable visits"), _num(visits["chargeable"])),
        (_("Advisories sent"), _num(advisories["count"])),
    ]


def report_tables(figures: dict) -> list[ReportTable]:
    """Each section of a report (stored or fresh ``figures`` dict) as a table, in the
    current language: RMAs, decisions, causes, incidents by priority and target,
    on-site visits, advisories."""
    rmas, incidents = figures["rmas"], figures["incidents"]
    none = _("None in this period.")
    tables = [
        ReportTable("rmas", _("RMAs"), (_("RMA"), _("Submitted"), _("Items"), _("Status")),
                    tuple((r["number"], r["submitted_on"], str(r["items"]),
                           _word(RMA_STATUS_LABELS, r["status"])) for r in rmas["rmas"]),
                    none),
        ReportTable("decisions", _("Decisions"), (_("Decision"), _("Items")),
                    tuple((_word(DECISION_LABELS, k), str(v))
                          for k, v in rmas["decisions"].items() if v), none),
        ReportTable("causes", _("Causes"), (_("Cause"), _("Items")),
                    tuple((_word(CAUSE_LABELS, k), str(v))
                          for k, v in rmas["causes"].items() if v), none),
    ]
    rows = []
    for group in incidents["by_priority"]:
        for target in TARGETS:
            counts = group["targets"].get(target) or {}
            if not any(counts.values()):
                continue
            rows.append((_word(PRIORITY_LABELS, group["priority"]), _word(TARGET_LABELS, target),
                         str(counts["met"]), str(counts["missed"]), str(counts["open"])))
    tables.append(ReportTable(
        "incident-targets", _("Incident targets"),
        (_("Priority"), _("Target"), _("Met"), _("Missed"), _("Open")), tuple(rows), none))
    tables.append(ReportTable(
        "incidents", _("Incidents by priority"),
        (_("Priority"), _("Incidents"), _("Resolved"), _("Escalations")),
        tuple((_word(PRIORITY_LABELS, g["priority"]), str(g["incidents"]), str(g["resolved"]),
               str(g["escalations"])) for g in incidents["by_priority"]), none))
    tables.append(ReportTable(
        "visits", _("On-site visits"),
        (_("Incident"), _("Visit"), _("Requested"), _("Arrival due"), _("Arrived"),
         _("Arrival"), _("Charge")),
        tuple((v["incident"], _word(VISIT_KIND_LABELS, v["kind"]), v["requested"],
               v["arrival_due"], v["arrived"] or "-", _word(OUTCOME_LABELS, v["arrival"]),
               _("Chargeable") if v["chargeable"] else _("Free"))
              for v in figures["visits"]["visits"]), none))
    tables.append(ReportTable(
        "advisories", _("Security advisories sent"),
        (_("Advisory"), _("Title"), _("Severity"), _("Sent"), _("Acknowledged")),
        tuple((a["number"], a["title"], _word(SEVERITY_LABELS, a["severity"]),
               a["notified_on"], a["acknowledged_on"] or _("No"))
              for a in figures["advisories"]["advisories"]), none))
    return tables


def report_document(figures: dict, language: str, generated_on: date):
    """The PDF's plain data for ``figures`` in ``language`` (captions translated)."""
    with force_locale(language):
        return ServiceReportDocument(
            language=language, customer_name=figures["customer_name"],
            contract_number=figures["contract_number"], period=figures["period"],
            period_start=figures["period_start"], period_end=figures["period_end"],
            generated_on=generated_on, vendor_name=current_app.config.get("VENDOR_NAME", ""),
            summary=tuple(summary_facts(figures)),
            tables=tuple(report_tables(figures)))


def render_pdf(figures: dict, language: str, generated_on: date) -> bytes:
    return render_service_report(report_document(figures, language, generated_on))


def report_filename(customer: Customer, period: str) -> str:
    return f"service-report-{customer.contract_number}-{period}.pdf"


# -- storing and sending ----------------------------------------------------------------
def _language(customer: Customer, language: str | None) -> str:
    value = language or customer.language or "zh_CN"
    return value if value in ("zh_CN", "en") else "zh_CN"


def _locked_report(customer_id: int, period: str) -> ServiceReport | None:
    return db.session.scalar(
        select(ServiceReport).where(ServiceReport.customer_id == customer_id,
                                    ServiceReport.period == period)
        .with_for_update().execution_options(populate_existing=True))


def _store(customer: Customer, period: str, now: datetime, language: str) -> ServiceReport:
    """The row for (customer, period), created or refreshed unless sent; in the caller's
    transaction. Raises ``IntegrityError`` (from the flush) when another process inserted
    it meanwhile."""
    report = _locked_report(customer.id, period)
    if report is not None and report.sent_at is not None:
        return report
    figures = report_figures(customer, period, now).as_dict()
    pdf = render_pdf(figures, language, clock.to_local(now).date())
    if report is None:
        report = ServiceReport(customer_id=customer.id, period=period)
        db.session.add(report)
    report.period_start, report.period_end = period_bounds(period)
    report.language, report.generated_at = language, now
    report.figures, report.pdf = figures, pdf
    db.session.flush()
    return report


def build_report(customer: Customer, period: str, now: datetime, *,
                 language: str | None = None, actor: Actor | None = None) -> ServiceReport:
    """Create or replace the stored report of ``customer`` for ``period`` (figures and
    PDF in ``language``, the customer's by default), audited; commits. A sent report is
    immutable: it is returned unchanged. ``ServiceReportError`` for a bad period."""
    period = normalize_period(period)
    language = _language(customer, language)
    customer_id = customer.id
    for attempt in (1, 2):
        try:
            report = _store(customer, period, now, language)
            if report.sent_at is None:
                record(actor or Actor(label="service-reports"), "service_report.built",
                       "service_report", report.id,
                       after={"customer_id": customer_id, "period": period,
                              "language": language})
            db.session.commit()
            return report
        except IntegrityError:
            db.session.rollback()
            customer = db.session.get(Customer, customer_id)
            if attempt == 2:
                raise
        except BaseException:
            db.session.rollback()
            raise
    raise AssertionError("unreachable")


def report_pdf(customer: Customer, period: str, now: datetime,
               language: str | None = None) -> tuple[bytes, ServiceReport | None]:
    """The PDF of a period: the stored one once sent (as the customer got it), else
    rendered now without storing anything. Returns (pdf, the sent report or None)."""
    period = normalize_period(period)
    sent = sent_report(customer.id, period)
    if sent is not None:
        return sent.pdf, sent
    figures = report_figures(customer, period, now).as_dict()
    return render_pdf(figures, _language(customer, language), clock.to_local(now).date()), None


def sent_report(customer_id: int, period: str) -> ServiceReport | None:
    return db.session.scalar(select(ServiceReport).where(
        ServiceReport.customer_id == customer_id, ServiceReport.period == period,
        ServiceReport.sent_at.is_not(None)))


def customer_reports(customer_id: int) -> list[ServiceReport]:
    """The customer's sent reports, newest period first (without their PDFs loaded)."""
    return list(db.session.scalars(
        select(ServiceReport).where(ServiceReport.customer_id == customer_id,
                                    ServiceReport.sent_at.is_not(None))
        .options(defer(ServiceReport.pdf), defer(ServiceReport.figures),
                 joinedload(ServiceReport.customer))
        .order_by(ServiceReport.period_start.desc(), ServiceReport.period.desc())))


def recent_sent_reports(limit: int = 50) -> list[ServiceReport]:
    """Sent reports of every customer, most recently sent first."""
    return list(db.session.scalars(
        select(ServiceReport).where(ServiceReport.sent_at.is_not(None))
        .options(defer(ServiceReport.pdf), defer(ServiceReport.figures),
                 joinedload(ServiceReport.customer))
        .order_by(ServiceReport.sent_at.desc(), ServiceReport.id.desc()).limit(limit)))


def get_customer_report(customer_id: int, report_id: int) -> ServiceReport | None:
    """A sent report of this customer; ``None`` for another customer's, an unsent or an
    unknown one (the portal answers 404 alike)."""
    report = db.session.get(ServiceReport, report_id)
    if report is None or report.customer_id != customer_id or report.sent_at is None:
        return None
    return report


def portal_url() -> str:
    base = current_app.config["PUBLIC_URL"].rstrip("/")
    try:
        path = current_app.url_map.bind("localhost").build("portal_reports.report_list")
    except BuildError:
        path = "/portal/reports"
    return base + path


def _contacts(customer_id: int) -> list[User]:
    return list(db.session.scalars(
        select(User).where(User.customer_id == customer_id, User.role == Role.CUSTOMER,
                           User.is_active_flag.is_(True)).order_by(User.id)))


def due_period(now: datetime, kind: str) -> str | None:
    """The period ``send_due_reports_job`` sends at ``now``: the one that fell due on the
    1st of the current China month (any day of that month: catch-up)."""
    return previous_period(clock.to_local(now).date().replace(day=1), kind)


def due_customers(period: str) -> list[int]:
    """Customers that existed before the period ended, have an active customer user and
    no sent report for ``period``: one query."""
    _start, end = period_bounds(period)
    _lo, hi = _instants(_start, end)
    has_contact = exists().where(User.customer_id == Customer.id, User.role == Role.CUSTOMER,
                                 User.is_active_flag.is_(True))
    sent = exists().where(ServiceReport.customer_id == Customer.id,
                          ServiceReport.period == period, ServiceReport.sent_at.is_not(None))
    return list(db.session.scalars(
        select(Customer.id).where(has_contact, ~sent, Customer.created_at < hi)
        .order_by(Customer.id)))


def send_report(customer_id: int, period: str, now: datetime) -> int | None:
    """Build and send one customer's report for ``period``; commits. Returns the e-mails
    queued, or ``None`` when it was sent already (by another run) or the customer is gone."""
    for attempt in (1, 2):
        try:
            return _send_once(customer_id, period, now)
        except IntegrityError:  # another process inserted the row first: look again
            db.session.rollback()
            if attempt == 2:
                raise
        except BaseException:
            db.session.rollback()
            raise
    return None


def _send_once(customer_id: int, period: str, now: datetime) -> int | None:
    customer = db.session.get(Customer, customer_id)
    if customer is None:
        return None
    report = _store(customer, period, now, _language(customer, None))
    won = db.session.execute(
        update(ServiceReport).where(ServiceReport.id == report.id,
                                    ServiceReport.sent_at.is_(None))
        .values(sent_at=now).execution_options(synchronize_session=False)).rowcount
    if won != 1:
        db.session.rollback()
        return None
    contacts = _contacts(customer_id)
    filename = report_filename(customer, period)
    emails, recipients = 0, []
    for user in contacts:
        message = enqueue(
            to=user.email, language=user.language or report.language,
            template="service_report",
            context={"name": user.full_name or user.email, "customer": customer.name,
                     "period": period, "period_start": report.period_start.isoformat(),
                     "period_end": report.period_end.isoformat(), "filename": filename,
                     "url": portal_url(),
                     "vendor_name": current_app.config.get("VENDOR_NAME", "")},
            attachments=[Attachment(filename, PDF_TYPE, report.pdf)],
            dedupe_key=f"service-report:{report.id}:user:{user.id}")
        if message is not None:
            emails += 1
            recipients.append(user.email)
    record(Actor(label=JOB_ACTOR), "service_report.sent", "service_report", report.id,
           after={"customer_id": customer_id, "period": period, "sent_at": now.isoformat(),
                  "recipients": recipients})
    db.session.commit()
    return emails


def send_due_reports_job(now: datetime, kind: str | None = None) -> JobResult:
    """``rma tick`` job "service-reports" (R-R4): the previous period's report to each
    due customer (see the module docstring), once. ``kind`` defaults to the policy's
    ``service_report_period``. One customer's failure is logged and retried next run."""
    kind = kind or current_policy().service_report_period
    period = due_period(now, kind)
    customers = due_customers(period) if period else []
    if not customers:
        return JobResult("service-reports: none", busy=False)
    db.session.rollback()  # end the read before the per-customer transactions
    sent = emails = already = failed = 0
    for customer_id in customers:
        try:
            outcome = send_report(customer_id, period, now)
        except Exception:  # noqa: BLE001 - logged; the customer is retried on the next run
            db.session.rollback()
            log.exception("service report %s for customer %s failed", period, customer_id)
            failed += 1
            continue
        if outcome is None:
            already += 1
        else:
            sent += 1
            emails += outcome
    text = f"service-reports: sent {sent} ({period}), e-mails {emails}"
    if already:
        text += f", already sent {already}"
    if failed:
        text += f", failed {failed}"
    return JobResult(text, busy=bool(sent or failed), items=sent, emails=emails, failed=failed)


__all__ = ["CAUSES", "DECISIONS", "PERIOD_KINDS", "ReportTable", "ServiceReportError",
           "ServiceReportFigures", "build_report", "customer_reports", "due_customers",
           "get_customer_report", "period_bounds", "previous_period", "recent_sent_reports",
           "report_figures", "report_pdf", "report_tables", "send_due_reports_job",
           "send_report", "sent_report", "summary_facts"]
