"""Warranty look-ups by serial: the public check page and API (R-W1, R-W2)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Result, bindparam, select
from sqlalchemy.exc import NoResultFound

from rma import clock
from rma.extensions import db
from rma.fastread import CompiledRead
from rma.models import Customer, ProductModel, Unit
from rma.policy import current_policy
from rma.services import NotFoundError
from warranty import Basis, Coverage, SerialError, UnitFacts, coverage, normalize_serial

_MAX_CHAIN = 50


@dataclass(frozen=True)
class WarrantyAnswer:
    serial: str
    product_model: str
    product_name: str
    kind: str
    coverage: Coverage
    replacement_of: str | None

    def as_public_json(self) -> dict:
        """The public answer: no customer data (issue 2, public warranty check)."""
        cov = self.coverage
        return {
            "serial": self.serial,
            "product_model": self.product_model,
            "kind": self.kind,
            "warranty_basis": cov.basis_used,
            "warranty_start": cov.start_on.isoformat() if cov.start_on else None,
            "warranty_end": cov.end_on.isoformat() if cov.end_on else None,
            "in_warranty": cov.in_warranty,
            "days_left": cov.days_left,
            "replacement_of": self.replacement_of,
        }


# Built once from the tables (Core, not ORM entities) with the serial or id as a bound
# parameter: the API runs this for every request, and a fixed statement object keeps its
# cache key, so each call skips building the WHERE clause, computing the cache key and the
# ORM's result machinery (the rows are the same plain rows either way). Session.execute
# still autoflushes before a Core statement, as before.
_units = Unit.__table__
_models = ProductModel.__table__
_customers = Customer.__table__
_LOOKUP = (
    select(
        _units.c.id,
        _units.c.serial,
        _units.c.shipped_on,
        _units.c.activated_on,
        _units.c.replaces_id,
        _models.c.code,
        _models.c.name,
        _models.c.kind,
        _models.c.life_months,
        _models.c.warranty_basis,
        _customers.c.accepted_on,
    )
    .select_from(_units)
    .join(_models, _models.c.id == _units.c.model_id)
    .outerjoin(_customers, _customers.c.id == _units.c.customer_id)
)
_BY_SERIAL = _LOOKUP.where(_units.c.serial == bindparam("serial"))
_BY_ID = _LOOKUP.where(_units.c.id == bindparam("unit_id"))


_FAST_BY_SERIAL = CompiledRead(_BY_SERIAL)
_FAST_BY_ID = CompiledRead(_BY_ID)


def _read(statement, params: dict | None, take: Callable[[Result], Any]) -> Any:
    """``take(result)`` of a read-only look-up, through the session if this request (or
    command) already has one, so its pending changes are flushed and seen as before.
    Without a session there is nothing pending and no transaction of ours to join, so a
    pooled connection reads exactly what a new session would, without creating, beginning
    and closing one."""
    if db.session.registry.has():
        return take(db.session.execute(statement, params))
    with db.engine.connect() as connection:
        return take(connection.execute(statement, params))


def _read_one(statement, fast: CompiledRead, params: dict, required: bool):
    """One row by a unique key. Without a session (the public API) it runs as a
    ``CompiledRead`` on a pooled DBAPI cursor: same SQL and values, a third of the time."""
    if db.session.registry.has():
        result = db.session.execute(statement, params)
        return result.one() if required else result.one_or_none()
    row = fast.first(db.engine, **params)  # both keys are UNIQUE (serial, id)
    if row is None and required:
        raise NoResultFound("No row was found when one was required")
    return row


def _facts(row, replaces: UnitFacts | None) -> UnitFacts:
    return UnitFacts(
        serial=row.serial,
        life_months=row.life_months,
        basis=Basis(row.warranty_basis),
        shipped_on=row.shipped_on,
        activated_on=row.activated_on,
        acceptance_on=row.accepted_on,
        replaces=replaces,
    )


def _chain(first_replaces_id: int | None) -> UnitFacts | None:
    """The facts of the unit replaced (and what it replaced, ...), one query per link."""
    rows = []
    next_id = first_replaces_id
    while next_id is not None:
        if len(rows) >= _MAX_CHAIN:
            raise RuntimeError("replacement chain longer than 50 units")
        row = _read_one(_BY_ID, _FAST_BY_ID, {"unit_id": next_id}, required=True)
        rows.append(row)
        next_id = row.replaces_id
    facts = None
    for row in reversed(rows):
        facts = _facts(row, facts)
    return facts


def _answer(row, on: date) -> WarrantyAnswer:
    replaces = _chain(row.replaces_id) if row.replaces_id is not None else None
    facts = _facts(row, replaces)
    return WarrantyAnswer(
        serial=row.serial,
        product_model=row.code,
        product_name=row.name,
        kind=str(row.kind),
        coverage=coverage(facts, on, current_policy()),
        replacement_of=replaces.serial if replaces is not None else None,
    )


def check_warranty(raw_serial: str, on: date | None = None) -> WarrantyAnswer:
    """Coverage of one unit on ``on`` (today in China time by default).

    Raises ``warranty.SerialError`` for a malformed serial (D-8) and ``NotFoundError``
    for an unknown one.
    """
    serial = normalize_serial(raw_serial, current_policy())
    row = _read_one(_BY_SERIAL, _FAST_BY_SERIAL, {"serial": serial}, required=False)
    if row is None:
        raise NotFoundError(f"serial '{serial}' is not known", "serial")
    return _answer(row, on or clock.today())


@dataclass(frozen=True)
class LineResult:
    line: int
    raw: str
    answer: WarrantyAnswer | None
    error: str | None  # English sentence (CLI, logs)
    error_code: str | None = None  # "malformed" or "unknown", for translated pages


def check_many(lines: list[str], on: date | None = None) -> list[LineResult]:
    """Check several serials at once (one query for all known ones); each line gets its
    answer or its own error, in the order given. Blank lines are skipped."""
    on = on or clock.today()
    policy = current_policy()
    parsed: list[tuple[int, str, str | None, str | None]] = []
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            parsed.append((number, raw.strip(), normalize_serial(raw, policy), None))
        except SerialError as error:
            parsed.append((number, raw.strip(), None, str(error)))
    wanted = {serial for _, _, serial, _ in parsed if serial}
    rows = {}
    if wanted:
        for row in _read(_LOOKUP.where(_units.c.serial.in_(wanted)), None, Result.all):
            rows[row.serial] = row
    results = []
    for number, raw, serial, error in parsed:
        if error is not None:
            results.append(LineResult(number, raw, None, error, "malformed"))
        elif serial not in rows:
            results.append(LineResult(number, serial, None, f"serial '{serial}' is not known",
                                      "unknown"))
        else:
            results.append(LineResult(number, raw, _answer(rows[serial], on), None))
    return results
