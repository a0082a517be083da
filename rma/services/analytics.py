"""Failure analytics for managers and engineering (issue 7): returns per product model,
lot and shipment month as a rate of units shipped, the cause mix (D-4), time to failure
in months of service, warranty cost (free replacements at the model's unit cost), the
72-hour compliance trend (R-R3) and the lots flagged for a rate far above their model's.

A *return* is an RMA item of any status but rejected (``warranty.analytics``). Filters:
one product model, and the China dates the RMAs were submitted (both ends inclusive);
units shipped are counted over all time (a rate is "returns reported in the period per
unit of that model, lot or month ever shipped"). Everything is counted in the database
with GROUP BY: a fixed number of queries whatever the data size, and no per-unit
Python. Reads only: nothing here commits.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from flask_babel import gettext as _
from sqlalchemy import Date, Integer, case, cast, extract, func, select

from rma import clock
from rma.extensions import db
from rma.models import ItemStatus, ProductModel, Rma, RmaItem, Shipment, Unit
from rma.policy import current_policy
from rma.services import ValidationError
from warranty import ClockRecord, Policy, monthly_figures
from warranty.analytics import MONTH_BUCKETS, LotCount, exact_rate, flag_lots, histogram, rate
from warranty.decision import Cause, Outcome
from warranty.money import round_money

NOT_INSPECTED = "not_inspected"
UNKNOWN = "unknown"  # months of service without a usable ship date
#: Lots shown on the page (the export has every lot with a return).
LOTS_SHOWN = 20
#: Longest date range a dashboard may cover.
MAX_RANGE_DAYS = 366 * 10
NO_RETURN_STATUSES = (ItemStatus.REJECTED,)
NO_CLOCK_STATUSES = (ItemStatus.CANCELLED, ItemStatus.REJECTED)


def cause_label(cause: str) -> str:
    """A D-4 cause (or "not inspected") in the reader's language."""
    return {
        Cause.QUALITY_DEFECT.value: _("Quality defect"),
        Cause.MISUSE_DROP.value: _("Dropped"),
        Cause.MISUSE_HEAT.value: _("High temperature"),
        Cause.MISUSE_WATER.value: _("Water"),
        Cause.MISUSE_PHYSICAL.value: _("Crushed or physically damaged"),
        Cause.MISUSE_OTHER.value: _("Other abnormal use"),
        Cause.NO_FAULT_FOUND.value: _("No fault found"),
        NOT_INSPECTED: _("Not inspected yet"),
    }.get(cause, cause)


@dataclass(frozen=True)
class AnalyticsTable:
    """A section's figures as a table (``rma.exports`` writes it as CSV or XLSX):
    ``kinds`` says per column how the page shows it ("text", "int", "pct", "money",
    "hours")."""

    key: str
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple, ...]
    kinds: tuple[str, ...]


# -- filters ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Filters:
    """What the dashboard counts: RMAs submitted from ``date_from`` through ``date_to``
    (China dates), of units of ``model_id`` (None: every model)."""

    date_from: date
    date_to: date
    model_id: int | None = None


def default_filters(today: date, model_id: int | None = None) -> Filters:
    """The last twelve months: from the first day of the month eleven months before
    ``today``'s through ``today``."""
    index = today.year * 12 + today.month - 1 - 11
    return Filters(date(index // 12, index % 12 + 1, 1), today, model_id)


def check_filters(filters: Filters) -> Filters:
    """``filters`` when usable; :class:`ValidationError` (field ``date_to`` or
    ``date_from``) for an inverted or too long range."""
    if filters.date_to < filters.date_from:
        raise ValidationError(_("The end is before the start."), "date_to")
    if (filters.date_to - filters.date_from).days > MAX_RANGE_DAYS:
        raise ValidationError(_("Choose at most ten years."), "date_from")
    return filters


# -- the figures --------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelRow:
    model_id: int
    code: str
    name: str
    unit_cost: Decimal
    shipped: int
    returns: int
    rate: Decimal | None
    flagged_lots: int


@dataclass(frozen=True)
class LotRow:
    model_code: str
    lot: str
    shipped: int
    returns: int
    rate: Decimal | None
    model_rate: Decimal | None
    flagged: bool


@dataclass(frozen=True)
class MonthRow:
    month: str  # "YYYY-MM"
    shipped: int
    returns: int
    rate: Decimal | None


@dataclass(frozen=True)
class CostRow:
    key: str  # a month "YYYY-MM" or a model code
    free_replacements: int
    cost: Decimal


@dataclass(frozen=True)
class Dashboard:
    """The figures of one filter, each section also as an exportable :class:`Table`."""

    filters: Filters
    models: list[ModelRow]
    lots: list[LotRow]  # lots with at least one return, flagged first, then by rate
    flagged: list[LotRow]
    shipment_months: list[MonthRow]
    causes: list[tuple[str, int, Decimal | None]]  # cause code, returns, share %
    months_of_service: list[tuple[str, int]]  # bucket label, returns (+ unknown)
    cost_by_month: list[CostRow]
    cost_by_model: list[CostRow]
    compliance: list  # warranty.MonthFigures
    cost_by_month_model: dict[tuple[str, str], Decimal] = field(default_factory=dict)
    tables: dict[str, AnalyticsTable] = field(default_factory=dict)

    @property
    def total_returns(self) -> int:
        return sum(row.returns for row in self.models)


def _utc_bounds(filters: Filters) -> tuple[datetime, datetime]:
    zone = clock.local_zone()
    start = datetime.combine(filters.date_from, time(0), tzinfo=zone).astimezone(UTC)
    end = datetime.combine(filters.date_to + timedelta(days=1), time(0),
                           tzinfo=zone).astimezone(UTC)
    return start, end


def _local_date(column):
    """The China date (the service's zone) of an aware instant column, in SQL. SQLite
    has no time zones: it shifts by the zone's offset now, exact for China (no daylight
    saving since 1991); PostgreSQL converts with the zone itself."""
    zone = clock.local_zone()
    if db.session.get_bind().dialect.name == "postgresql":
        return cast(func.timezone(zone.key, column), Date)
    minutes = int(clock.now().astimezone(zone).utcoffset().total_seconds() // 60)
    return func.date(column, f"{minutes:+d} minutes")


def _month_key(year: int, month: int) -> str:
    return f"{int(year):04d}-{int(month):02d}"


def _returns(filters: Filters, *columns):
    """SELECT ``columns`` FROM the returns in ``filters`` (items joined to their RMA
    and unit)."""
    start, end = _utc_bounds(filters)
    statement = (
        select(*columns)
        .select_from(RmaItem)
        .join(Rma, Rma.id == RmaItem.rma_id)
        .join(Unit, Unit.id == RmaItem.unit_id)
        .where(RmaItem.status.not_in(NO_RETURN_STATUSES),
               Rma.submitted_at >= start, Rma.submitted_at < end)
    )
    if filters.model_id is not None:
        statement = statement.where(Unit.model_id == filters.model_id)
    return statement


def _shipped_counts(filters: Filters) -> tuple[list, list]:
    """Units shipped (with a ship date) per (model, ship date), and per (model, lot):
    two queries, each read from one covering index alone (``ix_units_model_id_shipped_on``
    and ``ix_units_model_id_lot_shipped_on``: SQLite's plan says "USING COVERING INDEX")
    rather than one query over the whole table."""
    by_day = (select(Unit.model_id, Unit.shipped_on, func.count().label("n"))
              .where(Unit.shipped_on.is_not(None))
              .group_by(Unit.model_id, Unit.shipped_on))
    by_lot = (select(Unit.model_id, Unit.lot, func.count(Unit.shipped_on).label("n"))
              .group_by(Unit.model_id, Unit.lot))
    if filters.model_id is not None:
        by_day = by_day.where(Unit.model_id == filters.model_id)
        by_lot = by_lot.where(Unit.model_id == filters.model_id)
    return db.session.execute(by_day).all(), db.session.execute(by_lot).all()


def _return_counts(filters: Filters) -> list:
    """Returns per (model, lot, ship date of the unit): one query."""
    statement = _returns(filters, Unit.model_id, Unit.lot, Unit.shipped_on,
                         func.count().label("n")
                         ).group_by(Unit.model_id, Unit.lot, Unit.shipped_on)
    return db.session.execute(statement).all()


def _cause_counts(filters: Filters) -> list:
    """Returns per (model, month reported, cause, decision): one query."""
    reported = _local_date(Rma.submitted_at)
    year = cast(extract("year", reported), Integer).label("year")
    month = cast(extract("month", reported), Integer).label("month")
    statement = _returns(filters, Unit.model_id, year, month, RmaItem.cause,
                         RmaItem.decision, RmaItem.status, func.count().label("n")
                         ).group_by(Unit.model_id, year, month, RmaItem.cause,
                                    RmaItem.decision, RmaItem.status)
    return db.session.execute(statement).all()


def months_of_service_sql(shipped_on, reported_on):
    """``warranty.analytics.months_of_service`` as a SQL expression (NULL without a ship
    date): the month difference, less one when the report's day is before the ship day."""
    def part(name, value):
        return cast(extract(name, value), Integer)

    return ((part("year", reported_on) - part("year", shipped_on)) * 12
            + part("month", reported_on) - part("month", shipped_on)
            - case((part("day", reported_on) < part("day", shipped_on), 1), else_=0))


def _service_months(filters: Filters) -> list:
    """Returns per whole months of service at the report: one query."""
    months = months_of_service_sql(Unit.shipped_on, _local_date(Rma.submitted_at)
                                   ).label("months")
    statement = _returns(filters, months, func.count().label("n")).group_by(months)
    return db.session.execute(statement).all()


def _clock_records(filters: Filters) -> list[ClockRecord]:
    """The replacement clocks (R-R3) of the items in ``filters`` (not cancelled or
    rejected): one query."""
    start, end = _utc_bounds(filters)
    statement = (
        select(RmaItem.clock_started_at, RmaItem.due_at, Shipment.delivered_at)
        .join(Rma, Rma.id == RmaItem.rma_id)
        .outerjoin(Shipment, Shipment.item_id == RmaItem.id)
        .where(RmaItem.clock_started_at.is_not(None), RmaItem.due_at.is_not(None),
               RmaItem.status.not_in(NO_CLOCK_STATUSES),
               Rma.submitted_at >= start, Rma.submitted_at < end)
    )
    if filters.model_id is not None:
        statement = statement.join(Unit, Unit.id == RmaItem.unit_id).where(
            Unit.model_id == filters.model_id)
    return [ClockRecord(*row) for row in db.session.execute(statement)]


def dashboard(filters: Filters, now: datetime, policy: Policy | None = None) -> Dashboard:
    """Every figure of the analytics page for ``filters`` (see the module docstring),
    judged at ``now`` (open clocks past due count as breached). Seven queries, whatever
    the number of units or RMAs. Raises :class:`ValidationError` for unusable filters."""
    check_filters(filters)
    policy = policy or current_policy()
    models = {m.id: m for m in db.session.scalars(select(ProductModel))}

    shipped_lot: dict[tuple[int, str], int] = defaultdict(int)
    shipped_model: dict[int, int] = defaultdict(int)
    shipped_month: dict[str, int] = defaultdict(int)
    by_day, by_lot = _shipped_counts(filters)
    for row in by_day:
        shipped_model[row.model_id] += row.n
        shipped_month[_month_key(row.shipped_on.year, row.shipped_on.month)] += row.n
    for row in by_lot:
        shipped_lot[row.model_id, row.lot or ""] += row.n
    returns_lot: dict[tuple[int, str], int] = defaultdict(int)
    returns_model: dict[int, int] = defaultdict(int)
    returns_month: dict[str, int] = defaultdict(int)
    for row in _return_counts(filters):
        returns_model[row.model_id] += row.n
        returns_lot[row.model_id, row.lot or ""] += row.n
        if row.shipped_on is not None:
            returns_month[_month_key(row.shipped_on.year, row.shipped_on.month)] += row.n

    model_exact = {m: exact_rate(returns_model[m], shipped_model[m])
                   for m in set(shipped_model) | set(returns_model)}
    lot_counts = [LotCount(m, lot, shipped_lot.get((m, lot), 0), n)
                  for (m, lot), n in returns_lot.items()]
    flagged_keys = flag_lots(lot_counts, model_exact, policy)
    lots = sorted(
        (LotRow(models[c.model].code, c.lot, c.shipped, c.returns, rate(c.returns, c.shipped),
                rate(returns_model[c.model], shipped_model[c.model]), c.key in flagged_keys)
         for c in lot_counts),
        key=lambda r: (not r.flagged, -(r.rate or 0), -r.returns, r.model_code, r.lot))
    flagged = [row for row in lots if row.flagged]

    shown = [models[filters.model_id]] if filters.model_id in models else \
        sorted(models.values(), key=lambda m: m.code)
    model_rows = [
        ModelRow(m.id, m.code, m.name, round_money(m.unit_cost or Decimal(0)),
                 shipped_model[m.id], returns_model[m.id],
                 rate(returns_model[m.id], shipped_model[m.id]),
                 sum(1 for key in flagged_keys if key[0] == m.id))
        for m in shown if shipped_model[m.id] or returns_model[m.id] or filters.model_id
    ]
    month_rows = [MonthRow(month, shipped_month[month], returns_month[month],
                           rate(returns_month[month], shipped_month[month]))
                  for month in sorted(set(shipped_month) | set(returns_month))]

    cause_totals: dict[str, int] = defaultdict(int)
    free_by_month: dict[str, int] = defaultdict(int)
    free_by_model: dict[int, int] = defaultdict(int)
    cost_by_month: dict[str, Decimal] = defaultdict(Decimal)
    cost_by_month_model: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for row in _cause_counts(filters):
        cause_totals[row.cause or NOT_INSPECTED] += row.n
        if row.decision == Outcome.FREE.value and row.status != ItemStatus.CANCELLED.value:
            month = _month_key(row.year, row.month)
            free_by_month[month] += row.n
            free_by_model[row.model_id] += row.n
            cost = row.n * (models[row.model_id].unit_cost or Decimal(0))
            cost_by_month[month] += cost
            cost_by_month_model[month, models[row.model_id].code] += cost
    total = sum(cause_totals.values())
    order = [c.value for c in Cause] + [NOT_INSPECTED]
    causes = [(cause, cause_totals[cause], _share(cause_totals[cause], total))
              for cause in order if cause_totals.get(cause)]
    causes += [(cause, n, _share(n, total)) for cause, n in sorted(cause_totals.items())
               if cause not in order]

    service: dict[int, int] = {}
    unknown = 0  # no ship date, or reported before it (bad data)
    for row in _service_months(filters):
        if row.months is None or row.months < 0:
            unknown += row.n
        else:
            service[int(row.months)] = row.n
    bars = [(bucket.label, n) for bucket, n in histogram(service, MONTH_BUCKETS)]

    board = Dashboard(
        filters=filters,
        models=model_rows,
        lots=lots,
        flagged=flagged,
        shipment_months=month_rows,
        causes=causes,
        months_of_service=bars + ([(UNKNOWN, unknown)] if unknown else []),
        cost_by_month=[CostRow(m, free_by_month[m], round_money(cost_by_month[m]))
                       for m in sorted(free_by_month)],
        cost_by_model=[CostRow(models[m].code, n,
                               round_money(n * (models[m].unit_cost or Decimal(0))))
                       for m, n in sorted(free_by_model.items(),
                                          key=lambda kv: models[kv[0]].code)],
        compliance=monthly_figures(_clock_records(filters), now, policy),
        cost_by_month_model={k: round_money(v) for k, v in cost_by_month_model.items()},
    )
    board.tables.update(_tables(board))
    return board


def _share(part: int, whole: int) -> Decimal | None:
    return rate(part, whole) if whole else None


def _tenth(value: float | None) -> Decimal | None:
    return None if value is None else Decimal(str(value)).quantize(Decimal("0.1"))


def months_label(key: str) -> str:
    """A months-of-service bar in the reader's words (the unknown bar translated)."""
    return _("Ship date unknown") if key == UNKNOWN else key


def _tables(board: Dashboard) -> dict[str, AnalyticsTable]:
    """Every section as a table, by key (titles and headers in the reader's language)."""
    lot_columns = (_("Model"), _("Lot"), _("Units shipped"), _("Returns"), _("Rate (%)"),
                   _("Model rate (%)"))
    lot_kinds = ("text", "text", "int", "int", "pct", "pct")

    def lot_cells(row: LotRow) -> tuple:
        return (row.model_code, row.lot, row.shipped, row.returns, row.rate, row.model_rate)

    made: list[AnalyticsTable] = [
        AnalyticsTable("flagged-lots", _("Flagged lots"), lot_columns,
                       tuple(lot_cells(r) for r in board.flagged), lot_kinds),
        AnalyticsTable(
            "by-model", _("Returns per product model"),
            (_("Model"), _("Name"), _("Units shipped"), _("Returns"), _("Rate (%)"),
             _("Flagged lots")),
            tuple((r.code, r.name, r.shipped, r.returns, r.rate, r.flagged_lots)
                  for r in board.models),
            ("text", "text", "int", "int", "pct", "int")),
        AnalyticsTable(
            "by-lot", _("Returns per lot"), (*lot_columns, _("Flagged")),
            tuple((*lot_cells(r), _("yes") if r.flagged else "") for r in board.lots),
            (*lot_kinds, "text")),
        AnalyticsTable(
            "by-shipment-month", _("Returns per shipment month"),
            (_("Shipped in"), _("Units shipped"), _("Returns"), _("Rate (%)")),
            tuple((r.month, r.shipped, r.returns, r.rate) for r in board.shipment_months),
            ("text", "int", "int", "pct")),
        AnalyticsTable(
            "causes", _("Cause mix"), (_("Cause"), _("Returns"), _("Share (%)")),
            tuple((cause_label(c), n, share) for c, n, share in board.causes),
            ("text", "int", "pct")),
        AnalyticsTable(
            "months-of-service", _("Time to failure (months of service)"),
            (_("Months of service"), _("Returns")),
            tuple((months_label(label), n) for label, n in board.months_of_service),
            ("text", "int")),
        AnalyticsTable(
            "cost-by-month", _("Warranty cost per month"),
            (_("Month reported"), _("Free replacements"), _("Warranty cost (CNY)")),
            tuple((r.key, r.free_replacements, r.cost) for r in board.cost_by_month),
            ("text", "int", "money")),
        AnalyticsTable(
            "cost-by-model", _("Warranty cost per product model"),
            (_("Model"), _("Free replacements"), _("Warranty cost (CNY)")),
            tuple((r.key, r.free_replacements, r.cost) for r in board.cost_by_model),
            ("text", "int", "money")),
        AnalyticsTable(
            "compliance", _("72-hour compliance per month"),
            (_("Month (clock started)"), _("Clocks started"), _("Delivered"),
             _("Within 72 hours"), _("Share within (%)"), _("Median hours"),
             _("90th percentile hours"), _("Breached")),
            tuple((f.month, f.started, f.delivered, f.within_target,
                   rate(f.within_target, f.delivered), _tenth(f.median_hours), _tenth(f.p90_hours),
                   f.breached) for f in board.compliance),
            ("text", "int", "int", "int", "pct", "hours", "hours", "int")),
    ]
    return {table.key: table for table in made}


#: The export keys, in page order.
TABLE_KEYS = ("flagged-lots", "by-model", "by-lot", "by-shipment-month", "causes",
              "months-of-service", "cost-by-month", "cost-by-model", "compliance")
