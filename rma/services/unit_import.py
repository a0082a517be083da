"""Bulk import of units from CSV (``rma import-units``).

Streams the file in constant memory: rows are validated one by one and written in
batches inside ONE transaction, so the default mode is all-or-nothing (any invalid row
rolls everything back) and a process killed half-way leaves the database as it was.
Duplicates are found through the database's unique serial index, batch by batch, rather
than with an in-memory set of every serial read.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import IO

from sqlalchemy import Date, func, select

from rma import clock
from rma.extensions import db
from rma.models import Customer, ProductModel, Unit, UnitStatus
from rma.policy import current_policy
from rma.services.audit import Actor, record
from warranty import SerialError, normalize_serial

REQUIRED = ("serial", "model", "customer_contract", "lot", "shipped_on")
OPTIONAL = ("activated_on",)
MAX_LOT = 64


@dataclass(frozen=True)
class RowError:
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


@dataclass
class ImportReport:
    rows: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    errors: list[RowError] = field(default_factory=list)
    error_count: int = 0
    committed: bool = False
    stopped_early: bool = False


class ImportAborted(Exception):
    """The file cannot be read at all (header, encoding); nothing was imported."""

    def __init__(self, error: RowError):
        super().__init__(str(error))
        self.error = error


class _CountingReader(io.RawIOBase):
    """Counts the bytes read, for the progress bar."""

    def __init__(self, raw: IO[bytes]):
        self.raw = raw
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = self.raw.readinto(buffer)
        self.count += n or 0
        return n


def _header(fields: list[str]) -> dict[str, int]:
    names = [f.strip().lower() for f in fields]
    unknown = [n for n in names if n not in REQUIRED + OPTIONAL]
    if unknown:
        raise ImportAborted(RowError(1, "header", (
            f"header has unknown column '{unknown[0]}' (expected "
            f"{','.join(REQUIRED)}[,activated_on])")))
    missing = [n for n in REQUIRED if n not in names]
    if missing:
        raise ImportAborted(RowError(1, "header", (
            f"header is missing column '{missing[0]}' (expected "
            f"{','.join(REQUIRED)}[,activated_on])")))
    if len(set(names)) != len(names):
        raise ImportAborted(RowError(1, "header", "header names a column twice"))
    return {name: names.index(name) for name in names}


def _parse_date(text: str, line: int, name: str, errors: list[RowError]) -> date | None:
    text = text.strip()
    if not text:
        return None
    try:
        if len(text) != 10:
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        errors.append(RowError(line, name, f"{name} '{text}' is not a date (YYYY-MM-DD)"))
        return None


@dataclass
class _Pending:
    line: int
    serial: str
    model_id: int
    customer_id: int | None
    lot: str | None
    shipped_on: date | None
    activated_on: date | None
    fields: list[str]


# A valid row waits for its batch as a plain tuple (a million of them go through, so no
# object per row): line, fields, then the row exactly as INSERTed (serial, model_id,
# customer_id, lot, shipped_on, activated_on, status, created_at, updated_at) with the two
# dates as the driver gets them, then the two dates as ``date`` objects for --update.
_LINE, _FIELDS, _ROW, _SHIPPED, _ACTIVATED = range(5)
_NO_DATE: tuple[date | None, object] = (None, None)


def _pending(item: tuple) -> _Pending:
    row = item[_ROW]
    return _Pending(item[_LINE], row[0], row[1], row[2], row[3], item[_SHIPPED],
                    item[_ACTIVATED], item[_FIELDS])


class _Importer:
    def __init__(self, actor: Actor, *, skip_invalid: bool, update: bool, max_errors: int,
                 batch_size: int, rejects: Callable[[int, list[str], str], None] | None):
        self.actor = actor
        self.skip_invalid = skip_invalid
        self.update = update
        self.max_errors = max_errors
        self.batch_size = batch_size
        self.rejects = rejects
        self.report = ImportReport()
        self.today = clock.today()
        self.policy = current_policy()
        session = db.session
        self.conn = session.connection()
        dialect = self.conn.dialect
        self.models = {code: mid for mid, code in session.execute(
            select(ProductModel.id, ProductModel.code))}
        self.customers: dict[str, int | None] = {}
        self.max_id_before = session.scalar(select(func.max(Unit.id))) or 0
        self.updated_serials: set[str] = set()
        self.pending: list[tuple] = []
        self.batch_lines: dict[str, int] = {}
        self.first_id: int | None = None
        mark = "?" if dialect.paramstyle == "qmark" else "%s"
        # Only bind markers are formatted in (``mark``): the values go as parameters.
        columns = ("serial, model_id, customer_id, lot, shipped_on, activated_on, status, "
                   "created_at, updated_at")
        marks = ", ".join([mark] * 9)
        self.insert_sql = f"INSERT INTO units ({columns}) VALUES ({marks})"  # noqa: S608 # nosec B608 # fixed columns, bind markers only
        # SQLite: insert first and let the unique serial index (which the INSERT probes
        # anyway) say whether any serial of the batch is known; only then look the known
        # ones up. Saves one SELECT ... IN per batch. Elsewhere a refused row may use up
        # a sequence value, so there the batch is looked up first, as before (and on an
        # SQLite older than 3.24, which has no ON CONFLICT).
        self.insert_first = (dialect.name == "sqlite"
                             and (dialect.server_version_info or (0,)) >= (3, 24))
        self.insert_new_sql = self.insert_sql + " ON CONFLICT (serial) DO NOTHING"
        assignments = ", ".join(f"{column} = {mark}" for column in (
            "model_id", "customer_id", "lot", "shipped_on", "activated_on", "status",
            "updated_at"))
        self.update_sql = f"UPDATE units SET {assignments} WHERE id = {mark}"  # noqa: S608 # nosec B608 # fixed columns, bind markers only
        date_proc = Date().dialect_impl(dialect).bind_processor(dialect)
        self.as_date = date_proc or (lambda value: value)
        stamp_proc = Unit.__table__.c.created_at.type.bind_processor(dialect)
        stamp = clock.now()
        self.stamp = stamp_proc(stamp) if stamp_proc else stamp
        if dialect.name == "sqlite" and isinstance(self.stamp, datetime):
            # What the sqlite3 module's default datetime adapter would make of it on every
            # row (Python 3.11: isoformat(" ")); done once here instead of twice per row.
            self.stamp = self.stamp.isoformat(" ")
        self.audit_stamp = stamp
        # Dates repeat a lot (a few thousand days in a million rows): each distinct text is
        # parsed and converted for the driver once. Only valid or empty texts are kept.
        self.dates: dict[str, tuple[date | None, object]] = {}
        self.status_in_service = UnitStatus.IN_SERVICE.value
        self.status_in_stock = UnitStatus.IN_STOCK.value
        self.columns: dict[str, int] | None = None

    # -- row validation ------------------------------------------------------------
    def _customer_id(self, contract: str) -> int | None:
        if contract in self.customers:
            return self.customers[contract]
        if len(self.customers) >= 100_000:  # bound the cache: constant memory
            self.customers.clear()
        found = db.session.scalar(select(Customer.id).where(Customer.contract_number == contract))
        self.customers[contract] = found
        return found

    def _date(self, text: str, line: int, name: str,
              errors: list[RowError]) -> tuple[date | None, object]:
        """``(date or None, value for the driver)`` of a date cell not seen yet (callers
        look in ``self.dates`` first; its entries are pairs, so never false)."""
        value = _parse_date(text, line, name, errors)
        if value is None and text.strip():
            return _NO_DATE  # refused; the error is in ``errors``
        known = (value, self.as_date(value))
        if len(self.dates) >= 100_000:  # bound the cache: constant memory
            self.dates.clear()
        self.dates[text] = known
        return known

    def _use_columns(self, columns: dict[str, int]) -> None:
        self.columns = columns
        self.width = len(columns)
        self.i_serial = columns["serial"]
        self.i_model = columns["model"]
        self.i_contract = columns["customer_contract"]
        self.i_lot = columns["lot"]
        self.i_shipped = columns["shipped_on"]
        self.i_activated = columns.get("activated_on")

    def add_row(self, line: int, fields: list[str], columns: dict[str, int]) -> None:
        self.report.rows += 1
        if columns is not self.columns:
            self._use_columns(columns)
        errors: list[RowError] = []
        if len(fields) != self.width:
            errors.append(RowError(line, "row", (
                f"expected {len(columns)} columns, found {len(fields)}")))
            return self._reject(line, fields, errors)
        raw_serial = fields[self.i_serial]
        serial = ""
        try:
            serial = normalize_serial(raw_serial, self.policy)
        except SerialError as error:
            errors.append(RowError(line, "serial", str(error)))
        code = fields[self.i_model].strip().upper()
        model_id = self.models.get(code)
        if model_id is None:
            errors.append(RowError(line, "model", (
                f"model '{code}' is not a known product model" if code else "model is empty")))
        contract = fields[self.i_contract].strip().upper()
        customer_id = None
        if contract:
            customer_id = self.customers.get(contract)
            if customer_id is None:
                customer_id = self._customer_id(contract)
            if customer_id is None:
                errors.append(RowError(line, "customer_contract", (
                    f"customer_contract '{contract}' is not a known contract number")))
        lot = fields[self.i_lot].strip() or None
        if lot is not None and len(lot) > MAX_LOT:
            errors.append(RowError(line, "lot", f"lot is longer than {MAX_LOT} characters"))
        dates = self.dates
        text = fields[self.i_shipped]
        shipped_on, shipped_value = (dates.get(text)
                                     or self._date(text, line, "shipped_on", errors))
        activated_on, activated_value = _NO_DATE
        if self.i_activated is not None:
            text = fields[self.i_activated]
            activated_on, activated_value = (dates.get(text)
                                             or self._date(text, line, "activated_on", errors))
        today = self.today
        if shipped_on is not None and shipped_on > today:
            errors.append(RowError(line, "shipped_on",
                                   f"shipped_on '{shipped_on}' is in the future"))
        if activated_on is not None and activated_on > today:
            errors.append(RowError(line, "activated_on",
                                   f"activated_on '{activated_on}' is in the future"))
        if shipped_on and activated_on and activated_on < shipped_on:
            errors.append(RowError(line, "activated_on", (
                f"activated_on '{activated_on}' is before shipped_on '{shipped_on}'")))
        if contract and shipped_on is None and not errors:
            errors.append(RowError(line, "shipped_on", (
                "shipped_on is empty: a unit delivered to a customer needs its ship date")))
        if serial:
            earlier = self.batch_lines.get(serial)
            if earlier is not None:
                errors.append(RowError(line, "serial",
                                       f"serial '{serial}' is a duplicate of line {earlier}"))
            else:
                self.batch_lines[serial] = line
        if errors:
            return self._reject(line, fields, errors)
        stamp = self.stamp
        status = self.status_in_service if customer_id else self.status_in_stock
        self.pending.append((line, fields, (serial, model_id, customer_id, lot, shipped_value,
                                            activated_value, status, stamp, stamp),
                             shipped_on, activated_on))
        if len(self.pending) >= self.batch_size:
            self.flush()

    def _reject(self, line: int, fields: list[str], errors: list[RowError]) -> None:
        self.report.rejected += 1
        self.report.error_count += len(errors)
        for error in errors:
            if len(self.report.errors) < self.max_errors:
                self.report.errors.append(error)
        if self.rejects is not None:
            self.rejects(line, fields, "; ".join(e.message for e in errors))
        if not self.skip_invalid and len(self.report.errors) >= self.max_errors:
            self.report.stopped_early = True

    # -- batch writing -------------------------------------------------------------
    def _known(self, batch: list[tuple], max_id: int | None) -> dict:
        """The units already in the database among the batch's serials (up to ``max_id``)."""
        units = Unit.__table__
        query = (select(units.c.id, units.c.serial, units.c.model_id, units.c.customer_id,
                        units.c.lot, units.c.shipped_on, units.c.activated_on, units.c.status)
                 .where(units.c.serial.in_([item[_ROW][0] for item in batch])))
        if max_id is not None:
            query = query.where(units.c.id <= max_id)
        return {row.serial: row for row in self.conn.execute(query)}

    def flush(self) -> None:
        if not self.pending:
            return
        batch, self.pending, self.batch_lines = self.pending, [], {}
        # Valid rows are written even after an error in all-or-nothing mode, so that a
        # later duplicate of them is still found; the final rollback discards them.
        if self.insert_first:
            last_id = self.conn.exec_driver_sql("SELECT max(id) FROM units").scalar() or 0
            written = self.conn.exec_driver_sql(
                self.insert_new_sql, [item[_ROW] for item in batch]).rowcount
            self.report.inserted += written
            if written == len(batch):
                return  # every serial was new
            existing = self._known(batch, last_id)
        else:
            existing = self._known(batch, None)
        inserts = []
        updates = []
        for item in batch:
            old = existing.get(item[_ROW][0])
            if old is None:
                if not self.insert_first:
                    inserts.append(item[_ROW])
                continue
            p = _pending(item)
            if old.id > self.max_id_before or p.serial in self.updated_serials:
                self._reject(p.line, p.fields, [RowError(
                    p.line, "serial", f"serial '{p.serial}' appears earlier in this file")])
            elif not self.update:
                self._reject(p.line, p.fields, [RowError(
                    p.line, "serial",
                    f"serial '{p.serial}' is already known (use --update to change it)")])
            else:
                self.updated_serials.add(p.serial)
                change = self._update(old, p)
                if change is not None:
                    updates.append(change)
        if inserts:
            self.conn.exec_driver_sql(self.insert_sql, inserts)
            self.report.inserted += len(inserts)
        if updates:
            self.conn.exec_driver_sql(self.update_sql, updates)

    def _update(self, old, p: _Pending):
        status = UnitStatus(old.status)
        if status in (UnitStatus.IN_STOCK, UnitStatus.IN_SERVICE):
            status = UnitStatus.IN_SERVICE if p.customer_id else UnitStatus.IN_STOCK
        before = {"model_id": old.model_id, "customer_id": old.customer_id, "lot": old.lot,
                  "shipped_on": old.shipped_on, "activated_on": old.activated_on,
                  "status": str(old.status)}
        after = {"model_id": p.model_id, "customer_id": p.customer_id, "lot": p.lot,
                 "shipped_on": p.shipped_on, "activated_on": p.activated_on,
                 "status": status.value}
        if before == after:
            self.report.unchanged += 1
            return None
        self.report.updated += 1
        record(self.actor, "unit.updated_by_import", "unit", p.serial,
               _jsonable(before), _jsonable(after))
        return (p.model_id, p.customer_id, p.lot, self.as_date(p.shipped_on),
                self.as_date(p.activated_on), status.value, self.stamp, old.id)


def _jsonable(values: dict) -> dict:
    return {k: (v.isoformat() if isinstance(v, date) else v) for k, v in values.items()}


def import_units(
    actor: Actor,
    stream: IO[bytes],
    *,
    source: str = "",
    skip_invalid: bool = False,
    update: bool = False,
    max_errors: int = 50,
    batch_size: int = 2000,
    rejects: Callable[[int, list[str], str], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import units from a CSV byte stream (UTF-8, with or without BOM).

    Columns: ``serial,model,customer_contract,lot,shipped_on[,activated_on]``. By default
    all-or-nothing: any invalid row imports nothing and the report lists up to
    ``max_errors`` errors. ``skip_invalid`` imports the valid rows and passes each
    rejected row with its reasons to ``rejects``. ``update`` changes known serials instead
    of refusing them (each change audited with before/after, R-R4). Raises
    ``ImportAborted`` when the header or the encoding is unusable.
    """
    counter = _CountingReader(stream)
    text = io.TextIOWrapper(io.BufferedReader(counter, 1 << 16), encoding="utf-8-sig",
                            newline="")
    reader = csv.reader(text)
    importer: _Importer | None = None
    try:
        try:
            header = next(reader, None)
            if header is None:
                raise ImportAborted(RowError(1, "header", "the file is empty"))
            columns = _header(header)
            importer = _Importer(actor, skip_invalid=skip_invalid, update=update,
                                 max_errors=max_errors, batch_size=batch_size, rejects=rejects)
            report = importer.report
            last_progress = 0
            for fields in reader:
                if not fields or (len(fields) == 1 and not fields[0].strip()):
                    continue
                importer.add_row(reader.line_num, fields, columns)
                if report.stopped_early:
                    break
                if progress is not None and counter.count - last_progress >= 1 << 20:
                    progress(counter.count - last_progress)
                    last_progress = counter.count
            importer.flush()
            if progress is not None:
                progress(counter.count - last_progress)
        except UnicodeDecodeError:
            raise ImportAborted(RowError(
                (reader.line_num or 0) + 1, "file",
                "the file is not UTF-8 text (in Excel, save it as 'CSV UTF-8')")) from None
        except csv.Error as error:
            raise ImportAborted(RowError(reader.line_num, "file",
                                         f"the file is not valid CSV: {error}")) from None
        if report.rejected and not skip_invalid:
            db.session.rollback()
            report.inserted = report.updated = 0
            return report
        record(actor, "units.imported", "import", source or "stdin", None, {
            "rows": report.rows, "inserted": report.inserted, "updated": report.updated,
            "unchanged": report.unchanged, "rejected": report.rejected,
            "first_new_id": importer.max_id_before + 1 if report.inserted else None,
        })
        db.session.commit()
        report.committed = True
        return report
    except BaseException:
        db.session.rollback()
        raise

