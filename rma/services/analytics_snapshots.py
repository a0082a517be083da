"""Precomputed failure analytics (issue 7): the dashboard of each *standard filter* is
computed by ``rma tick`` (job "analytics-snapshot") and stored as JSON in
``AnalyticsSnapshot``, so ``/staff/analytics`` answers from one row instead of the
aggregate queries over every unit and RMA (about 1.5 s on a million units).

Standard filters: every model over the default range (key ``"all"``) and each product
model over the default range (``"model:<code>"``); the default range is the last twelve
months to China today (``analytics.default_filters``). A snapshot is rebuilt when it is
older than ``ANALYTICS_SNAPSHOT_MINUTES`` (app config, default 15) or was built on an
earlier China date (its range would be yesterday's). Any other filter is computed live.

The payload holds the figures only (Decimals as strings, dates ISO); :func:`load` turns
it back into the same :class:`analytics.Dashboard` the live computation gives, with the
tables' titles and headers in the reader's language.

Two ticks at once: each writes with one upsert on the unique key that is conditional on
what it read (no row: ``ON CONFLICT DO NOTHING``; a row: only while ``built_at`` is still
the one it saw), so exactly one of them stores each snapshot and the other counts it as
"skipped". A failure on one key is logged and leaves it for the next run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from flask import current_app
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from rma import clock
from rma.extensions import db
from rma.models import AnalyticsSnapshot, ProductModel
from rma.services import analytics
from rma.services.audit import Actor, record
from rma.services.replacement_jobs import JobResult
from warranty import MonthFigures

log = logging.getLogger(__name__)

ALL = "all"
DEFAULT_MINUTES = 15
#: Bumped when the payload's shape changes: an older payload is then ignored (the page
#: computes live and stores the new shape; the job rebuilds it on its next run).
PAYLOAD_VERSION = 1
_UNSEEN = object()  # store(): no expectation about the row (the newest build wins)


# -- settings and keys --------------------------------------------------------------------
def refresh_minutes() -> int:
    """``ANALYTICS_SNAPSHOT_MINUTES``: how old a snapshot may get before the tick
    rebuilds it (at least 1)."""
    value = current_app.config.get("ANALYTICS_SNAPSHOT_MINUTES", DEFAULT_MINUTES)
    return max(1, int(value if value not in (None, "") else DEFAULT_MINUTES))


def model_key(code: str | None) -> str:
    """The snapshot key of one model's standard filter (``None``: every model)."""
    return ALL if code is None else f"model:{code}"


def standard_filters(today: date) -> dict[str, analytics.Filters]:
    """Every standard filter on China date ``today``, by key: every model first, then
    each product model by code."""
    models = db.session.execute(
        select(ProductModel.id, ProductModel.code).order_by(ProductModel.code)).all()
    found = {ALL: analytics.default_filters(today)}
    found.update((model_key(code), analytics.default_filters(today, model_id))
                 for model_id, code in models)
    return found


def standard_key(filters: analytics.Filters, today: date,
                 codes: dict[int, str]) -> str | None:
    """The key of ``filters`` when it is a standard filter on ``today`` (``codes``:
    model id → code), else None (computed live)."""
    if filters != analytics.default_filters(today, filters.model_id):
        return None
    if filters.model_id is None:
        return ALL
    code = codes.get(filters.model_id)
    return None if code is None else model_key(code)


def is_fresh(built_at: datetime, now: datetime, minutes: int) -> bool:
    """Built less than ``minutes`` before ``now`` and on the same China date."""
    zone = clock.local_zone()
    return (built_at > now - timedelta(minutes=minutes)
            and built_at.astimezone(zone).date() == now.astimezone(zone).date())


# -- payload ------------------------------------------------------------------------------
def _s(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _d(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def dump(board: analytics.Dashboard) -> dict:
    """The figures of ``board`` as JSON-able data (no translated text: titles, headers
    and cause names are made again in the reader's language by :func:`load`)."""
    f = board.filters
    return {
        "version": PAYLOAD_VERSION,
        "filters": [f.date_from.isoformat(), f.date_to.isoformat(), f.model_id],
        "models": [[r.model_id, r.code, r.name, _s(r.unit_cost), r.shipped, r.returns,
                    _s(r.rate), r.flagged_lots] for r in board.models],
        "lots": [[r.model_code, r.lot, r.shipped, r.returns, _s(r.rate), _s(r.model_rate),
                  r.flagged] for r in board.lots],
        "shipment_months": [[r.month, r.shipped, r.returns, _s(r.rate)]
                            for r in board.shipment_months],
        "causes": [[cause, n, _s(share)] for cause, n, share in board.causes],
        "months_of_service": [[label, n] for label, n in board.months_of_service],
        "cost_by_month": [[r.key, r.free_replacements, _s(r.cost)]
                          for r in board.cost_by_month],
        "cost_by_model": [[r.key, r.free_replacements, _s(r.cost)]
                          for r in board.cost_by_model],
        "compliance": [[f.month, f.started, f.delivered, f.within_target, f.share_within,
                        f.median_hours, f.p90_hours, f.breached] for f in board.compliance],
        "cost_by_month_model": [[month, code, _s(cost)] for (month, code), cost
                                in board.cost_by_month_model.items()],
    }


def load(payload: dict) -> analytics.Dashboard | None:
    """The :class:`analytics.Dashboard` stored by :func:`dump` (equal to the live one it
    was made from), or None for a payload of another version."""
    if not isinstance(payload, dict) or payload.get("version") != PAYLOAD_VERSION:
        return None
    date_from, date_to, model_id = payload["filters"]
    lots = [analytics.LotRow(code, lot, shipped, returns, _d(rate), _d(model_rate), flagged)
            for code, lot, shipped, returns, rate, model_rate, flagged in payload["lots"]]
    board = analytics.Dashboard(
        filters=analytics.Filters(date.fromisoformat(date_from), date.fromisoformat(date_to),
                                  model_id),
        models=[analytics.ModelRow(mid, code, name, Decimal(cost), shipped, returns, _d(rate),
                                   flagged)
                for mid, code, name, cost, shipped, returns, rate, flagged
                in payload["models"]],
        lots=lots,
        flagged=[row for row in lots if row.flagged],
        shipment_months=[analytics.MonthRow(month, shipped, returns, _d(rate))
                         for month, shipped, returns, rate in payload["shipment_months"]],
        causes=[(cause, n, _d(share)) for cause, n, share in payload["causes"]],
        months_of_service=[(label, n) for label, n in payload["months_of_service"]],
        cost_by_month=[analytics.CostRow(key, n, Decimal(cost))
                       for key, n, cost in payload["cost_by_month"]],
        cost_by_model=[analytics.CostRow(key, n, Decimal(cost))
                       for key, n, cost in payload["cost_by_model"]],
        compliance=[MonthFigures(*row) for row in payload["compliance"]],
        cost_by_month_model={(month, code): Decimal(cost)
                             for month, code, cost in payload["cost_by_month_model"]},
    )
    board.tables.update(analytics._tables(board))
    return board


# -- reading and writing ------------------------------------------------------------------
@dataclass(frozen=True)
class Figures:
    """What the page shows: the ``board`` and where it came from. ``built_at`` is the
    snapshot's instant (None: computed live for a filter that is not standard)."""

    board: analytics.Dashboard
    key: str | None
    built_at: datetime | None

    @property
    def live(self) -> bool:
        return self.built_at is None


def store(key: str, board: analytics.Dashboard, built_at: datetime,
          expect: object = _UNSEEN) -> bool:
    """Upsert the snapshot ``key`` (one statement; the caller commits). ``expect`` is
    what the writer read before computing: None (no row: insert, or nothing if someone
    else inserted meanwhile) or the row's ``built_at`` (replace only while it is still
    that). Without ``expect`` the newer build wins. Returns whether this call wrote."""
    table = AnalyticsSnapshot.__table__
    dialect = db.session.get_bind().dialect.name
    make = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = make(table).values(key=key, built_at=built_at, payload=dump(board))
    if expect is None:
        statement = statement.on_conflict_do_nothing(index_elements=[table.c.key])
    else:
        condition = (table.c.built_at <= built_at) if expect is _UNSEEN \
            else (table.c.built_at == expect)
        statement = statement.on_conflict_do_update(
            index_elements=[table.c.key],
            set_={"built_at": statement.excluded.built_at,
                  "payload": statement.excluded.payload},
            where=condition)
    # RETURNING says whether a row was written (rowcount is not reliable for an upsert
    # on every driver); nothing comes back when the conflict clause declined.
    return db.session.execute(statement.returning(table.c.id)).first() is not None


def read(key: str) -> tuple[datetime, analytics.Dashboard] | None:
    """The stored snapshot ``key`` as (built_at, board), or None (missing or of another
    payload version). One query."""
    row = db.session.execute(select(AnalyticsSnapshot.built_at, AnalyticsSnapshot.payload)
                             .where(AnalyticsSnapshot.key == key)).first()
    if row is None:
        return None
    board = load(row.payload)
    return None if board is None else (row.built_at, board)


def figures(filters: analytics.Filters, now: datetime, codes: dict[int, str]) -> Figures:
    """The page's figures for ``filters``: a standard filter from its snapshot (if that
    is missing, of another version or of another range, computed live and stored, so the
    next reader has it); any other filter computed live. ``codes``: model id → code.
    Raises :class:`ValidationError` for unusable filters (as ``analytics.dashboard``)."""
    key = standard_key(filters, now.astimezone(clock.local_zone()).date(), codes)
    if key is None:
        return Figures(analytics.dashboard(filters, now), None, None)
    found = read(key)
    if found is not None and found[1].filters == filters:
        return Figures(found[1], key, found[0])
    board = analytics.dashboard(filters, now)
    try:
        store(key, board, now)
        db.session.commit()
    except Exception:  # a cache fill: the reader still gets the figures
        db.session.rollback()
        log.exception("analytics snapshot %s: could not store it", key)
    return Figures(board, key, now)


def recompute(actor: Actor, model_id: int | None, now: datetime) -> Figures:
    """"Recompute now" (managers, admins): the standard filter of ``model_id`` (None:
    every model) computed live and stored whatever the snapshot's age; audited."""
    today = now.astimezone(clock.local_zone()).date()
    code = None
    if model_id is not None:
        code = db.session.scalar(select(ProductModel.code).where(ProductModel.id == model_id))
        if code is None:
            model_id = None
    filters = analytics.default_filters(today, model_id)
    key = model_key(code)
    board = analytics.dashboard(filters, now)
    store(key, board, now)
    record(actor, "analytics_snapshot.recomputed", "analytics_snapshot", key,
           after={"built_at": now.isoformat(), "date_from": filters.date_from.isoformat(),
                  "date_to": filters.date_to.isoformat()})
    db.session.commit()
    return Figures(board, key, now)


# -- the tick job -------------------------------------------------------------------------
def stale_keys(now: datetime) -> tuple[dict[str, analytics.Filters], dict[str, datetime]]:
    """(the standard filters whose snapshot is missing or stale at ``now``, by key; the
    ``built_at`` read for each of those that has a row)."""
    today = now.astimezone(clock.local_zone()).date()
    wanted = standard_filters(today)
    built = dict(db.session.execute(
        select(AnalyticsSnapshot.key, AnalyticsSnapshot.built_at)
        .where(AnalyticsSnapshot.key.in_(list(wanted)))).all())
    minutes = refresh_minutes()
    stale = {key: filters for key, filters in wanted.items()
             if key not in built or not is_fresh(built[key], now, minutes)}
    return stale, {key: built[key] for key in stale if key in built}


def analytics_snapshot_job(now: datetime) -> JobResult:
    """Rebuild every missing or stale standard snapshot (see the module docstring); one
    transaction per key. Idle: ``"analytics-snapshot: none"`` with ``busy`` False."""
    stale, seen = stale_keys(now)
    db.session.rollback()  # end the read before the computations
    if not stale:
        return JobResult("analytics-snapshot: none", busy=False)
    built = skipped = failed = 0
    for key, filters in stale.items():
        try:
            board = analytics.dashboard(filters, now)
            wrote = store(key, board, now, seen.get(key))
            db.session.commit()
        except Exception:
            db.session.rollback()
            log.exception("analytics snapshot %s failed; left for the next run", key)
            failed += 1
        else:
            built, skipped = built + wrote, skipped + (not wrote)
    summary = f"analytics-snapshot: built {built}"
    if skipped:
        summary += f", skipped {skipped} (built by another tick)"
    if failed:
        summary += f", failed {failed}"
    return JobResult(summary, busy=True, items=built, failed=failed)
