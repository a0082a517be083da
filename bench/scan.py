"""Benchmark a warehouse scan (issue 4): ``rma.services.warehouse.scan`` in process, then
the HTTP endpoints that call it under gunicorn, on 1,000,000 units and 100,000 RMAs.

    .venv/bin/python bench/scan.py [--units N] [--rmas N] [--samples S] [--warmup W]
        [--workers W] [--concurrency C] [--variant none|unnested] [--workdir DIR] [--keep]

Target (issue 4): a scan answers in under 50 ms at the server. Each case is compared with
a reference measured in the same run on the same database: one raw ``sqlite3`` indexed
lookup of the same serial. See bench/README.md for how to read the tables.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import http.client
import json
import os
import random
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote, urlencode

import common

GUNICORN = str(common.BIN / "gunicorn")
TARGET_MS = 50.0
MARK = "m=1"  # query parameter of the measured requests, to find them in the access log
PASSWORD = "bench-scan-password"  # noqa: S105 (a throw-away instance)
SCANNER = "scanner@bench.example"
WAREHOUSE_STAFF = [f"wh{n}@bench.example" for n in range(1, 6)]
OPEN_STATES = ("submitted", "awaiting_unit", "received", "confirmed", "waiting_payment",
               "released", "shipped", "delivered")
FINAL_STATES = ("closed", "cancelled", "rejected")
RECEIVABLE = ("submitted", "awaiting_unit")
# Item states of RMAs submitted in the last 45 days (weights): the open work of a service
# centre. Older RMAs are nearly all closed, cancelled or rejected.
RECENT_MIX = {"submitted": 20, "awaiting_unit": 25, "received": 8, "confirmed": 8,
              "waiting_payment": 4, "released": 2, "shipped": 8, "delivered": 10,
              "closed": 10, "cancelled": 2, "rejected": 3}
OLD_MIX = {"closed": 85, "cancelled": 5, "rejected": 7, "delivered": 2, "awaiting_unit": 1}
ITEMS_PER_RMA = {1: 70, 2: 17, 3: 6, 4: 3, 5: 2, 8: 1, 12: 1}
BIG_TABLES = ("units", "rmas", "rma_items", "rma_events", "scan_events", "audit_events",
              "shipments", "outbox_messages")


# -- a variant of the app, to measure a fix before it is made ----------------------------
def unnest_unit_model_join() -> None:
    """``--variant unnested``: ``Unit.model`` (``lazy="joined", innerjoin=True``) as
    ``innerjoin="unnested"``. Loaded under an outer join (``joinedload(RmaItem.unit)``),
    the inner join is otherwise nested, ``LEFT OUTER JOIN (units JOIN product_models)``,
    and SQLite materialises that whole join (every unit) before it can join one row."""
    from rma.models import Unit

    Unit.model.property.innerjoin = "unnested"


def create_unnested_app():
    """gunicorn app spec ``scan:create_unnested_app()`` (``--pythonpath bench``)."""
    unnest_unit_model_join()
    from rma import create_app

    return create_app()


VARIANTS = {"none": "rma:create_app()", "unnested": "scan:create_unnested_app()"}


def stamp(moment: datetime) -> str:
    """An aware instant as SQLAlchemy stores a UTCDateTime in SQLite (naive UTC text)."""
    return moment.astimezone(UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")


def progress(label: str, done: int, total: int, started: float) -> None:
    print(f"  {label}: {done:>9,} / {total:,} ({time.perf_counter() - started:.1f} s)",
          flush=True)


# -- building the database ----------------------------------------------------------------
def rma_cli(env: dict[str, str], *args: str, stdin: str = "") -> str:
    done = subprocess.run([common.RMA, *args], env=env, cwd=common.REPO, input=stdin,
                          capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        sys.exit(f"rma {' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
    return done.stdout


def with_progress(rows: Iterator, total: int, label: str) -> Iterator:
    step = max(total // 10, 1)
    started = time.perf_counter()
    for n, row in enumerate(rows, start=1):
        yield row
        if n % step == 0 or n == total:
            progress(label, n, total, started)


@dataclass
class Built:
    env: dict[str, str]
    token: str
    users: dict[str, int]


def build_database(base: Path, n_units: int, n_rmas: int, seed: int) -> Built:
    """``rma init-db`` + models, customers and users through the CLI; then units, RMAs,
    items, shipments and events with raw sqlite3 (the fast path)."""
    print(f"building the database in {base} ...", flush=True)
    env, contracts = common.fresh_instance(base)
    for email in [SCANNER, *WAREHOUSE_STAFF]:
        rma_cli(env, "create-user", email, "--role", "warehouse", "--language", "en",
                stdin=PASSWORD + "\n")
    token = rma_cli(env, "create-token", SCANNER, "--name", "bench").strip().splitlines()[-1]
    conn = common.connect(common.db_path(base))
    try:
        models, customers = common.lookups(conn)
        users = dict(conn.execute("SELECT email, id FROM users"))
        started = time.perf_counter()
        rows = with_progress(common.generate_rows(n_units, contracts), n_units, "units")
        common.insert_all(conn, common.resolved(rows, models, customers,
                                                stamp(datetime.now(UTC))))
        print(f"  inserted {n_units:,} units in {time.perf_counter() - started:.1f} s",
              flush=True)
        # No ANALYZE: the app never runs it, so its queries are planned without statistics.
        insert_rmas(conn, n_units, n_rmas, users, seed)
    finally:
        conn.close()
    return Built(env, token, users)


def _units_by_id(conn: sqlite3.Connection, ids: list[int]) -> list[tuple]:
    found = []
    for i in range(0, len(ids), 5000):
        chunk = ids[i:i + 5000]
        found += conn.execute(
            "SELECT id, serial, customer_id, model_id FROM units WHERE customer_id IS NOT NULL"
            f" AND id IN ({','.join('?' * len(chunk))})", chunk).fetchall()
    return found


def insert_rmas(conn: sqlite3.Connection, n_units: int, n_rmas: int, users: dict[str, int],
                seed: int) -> None:
    """``n_rmas`` RMAs with 1 to 12 items each (1.6 on average) on distinct customer units:
    90 % submitted over the last three years (nearly all final now), 10 % in the last 45
    days (the open work, every item state). Received units have a scan event, shipped
    items a shipment with a spare as replacement (while the spares last)."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    sizes = rng.choices(list(ITEMS_PER_RMA), weights=list(ITEMS_PER_RMA.values()), k=n_rmas)
    wanted = int(sum(sizes) * 1.1) + 1000
    print(f"  choosing {wanted:,} units for about {sum(sizes):,} items ...", flush=True)
    picked = _units_by_id(conn, rng.sample(range(1, n_units + 1), min(wanted, n_units)))
    rng.shuffle(picked)
    by_customer: dict[int, list[tuple]] = defaultdict(list)
    for unit in picked:
        by_customer[unit[2]].append(unit)
    spares = conn.execute("SELECT id, serial, model_id FROM units WHERE customer_id IS NULL "
                          "AND status = 'in_stock'").fetchall()
    rng.shuffle(spares)
    spares = spares[: int(len(spares) * 0.8)]  # a fifth stays in stock

    staff = [users[email] for email in WAREHOUSE_STAFF]
    three_years, recent = timedelta(days=3 * 365), timedelta(days=45)
    dates = sorted(
        [now - recent - rng.random() * (three_years - recent) for _ in range(n_rmas * 9 // 10)]
        + [now - timedelta(hours=1) - rng.random() * recent
           for _ in range(n_rmas - n_rmas * 9 // 10)])
    rmas, items, events, audits, scans, shipments = [], [], [], [], [], []
    unit_updates, spare_updates = [], []
    per_year: dict[int, int] = defaultdict(int)
    customer_ids = sorted(by_customer)
    item_id = 0
    started = time.perf_counter()
    for rma_id, (submitted, size) in enumerate(zip(dates, sizes, strict=True), start=1):
        customer = rng.choice(customer_ids)
        pool = by_customer[customer]
        if len(pool) < size:
            customer = max(by_customer, key=lambda c: len(by_customer[c]))
            pool = by_customer[customer]
        units = [pool.pop() for _ in range(size)]
        per_year[submitted.year] += 1
        number = f"RMA-{submitted.year}-{per_year[submitted.year]:06d}"
        is_recent = now - submitted < recent
        mix = RECENT_MIX if is_recent else OLD_MIX
        states = rng.choices(list(mix), weights=list(mix.values()), k=size)
        for line_no, (unit, state) in enumerate(zip(units, states, strict=True), start=1):
            item_id += 1
            row, extra = _item(rng, item_id, rma_id, line_no, unit, state, submitted, now,
                               staff, spares)
            items.append(row)
            scans.extend(extra["scans"])
            shipments.extend(extra["shipments"])
            unit_updates.extend(extra["unit_updates"])
            spare_updates.extend(extra["spare_updates"])
        final = all(state in FINAL_STATES for state in states)
        status = ("cancelled" if all(s == "cancelled" for s in states)
                  else "closed" if final else "open")
        rmas.append((rma_id, number, customer, status, "张伟", "+86 138 0000 0000",
                     f"contact{rma_id}@customer.example", "上海市浦东新区世纪大道100号",
                     "zh_CN", stamp(submitted), stamp(submitted + timedelta(days=1))))
        events.append((rma_id, stamp(submitted), "submitted", "",
                       json.dumps({"items": size, "serials": [u[1] for u in units]})))
        audits.append((stamp(submitted), f"contact{rma_id}@customer.example", "rma.submitted",
                       "rma", number, json.dumps({"number": number, "items": size})))
        if rma_id % max(n_rmas // 10, 1) == 0:
            progress("RMAs generated", rma_id, n_rmas, started)

    started = time.perf_counter()
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO rmas (id, number, customer_id, status, contact_name, contact_phone, "
        "contact_email, ship_to, language, submitted_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rmas)
    conn.executemany(f"INSERT INTO rma_items ({', '.join(ITEM_COLUMNS)}) "
                     f"VALUES ({', '.join('?' * len(ITEM_COLUMNS))})", items)
    conn.executemany(
        "INSERT INTO rma_events (rma_id, at, kind, actor_label, data) VALUES (?, ?, ?, ?, ?)",
        events)
    conn.executemany(
        "INSERT INTO audit_events (at, actor_label, action, entity_type, entity_id, after) "
        "VALUES (?, ?, ?, ?, ?, ?)", audits)
    conn.executemany(
        "INSERT INTO scan_events (at, user_id, station, code, serial, rma_id, item_id, "
        "outcome) VALUES (?, ?, ?, ?, ?, ?, ?, 'received')",
        sorted(scans))  # in time order, as a real station writes them
    conn.executemany(
        "INSERT INTO shipments (item_id, kind, unit_id, carrier, tracking_number, shipped_at,"
        " shipped_by_id, delivered_at, received_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        shipments)
    conn.executemany("UPDATE units SET status = ? WHERE id = ?", unit_updates)
    conn.executemany("UPDATE units SET status = 'in_service', customer_id = ?, replaces_id = ?,"
                     " shipped_on = ? WHERE id = ?", spare_updates)
    for year, last in per_year.items():
        conn.execute("INSERT INTO number_sequences (name, year, last_value) VALUES "
                     "('rma', ?, ?)", (year, last))
    conn.execute("COMMIT")
    counts = {state: 0 for state in (*OPEN_STATES, *FINAL_STATES)}
    for row in items:
        counts[row[ITEM_COLUMNS.index("status")]] += 1
    print(f"  inserted {len(rmas):,} RMAs, {len(items):,} items, {len(shipments):,} shipments,"
          f" {len(scans):,} scan events in {time.perf_counter() - started:.1f} s", flush=True)
    print("  items by state: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()),
          flush=True)


ITEM_COLUMNS = (
    "id", "rma_id", "line_no", "unit_id", "open_unit_id", "serial", "fault_description",
    "fault_category", "status", "in_warranty_on_submit", "warranty_end_on", "basis_used",
    "cause", "decision", "decision_rule", "confirmed_at", "due_at", "status_changed_at",
    "remote_confirmation", "cause_notes", "computed_decision", "decision_reason",
    "confirmed_by_id", "unit_received_at", "unit_received_by_id", "unit_due_back_on",
    "released_at", "release_note", "clock_started_at", "rejected_reason", "closed_at",
)
_REACHED = {state: i for i, state in enumerate(OPEN_STATES)}


def _item(rng: random.Random, item_id: int, rma_id: int, line_no: int, unit: tuple,
          state: str, submitted: datetime, now: datetime, staff: list[int],
          spares: list[tuple]) -> tuple[tuple, dict]:
    """One item row in ``state`` with the facts that state implies, and its extra rows."""
    unit_id, serial, customer_id, _model = unit
    final = state in FINAL_STATES
    reached = len(OPEN_STATES) if state == "closed" else _REACHED.get(state, 0)
    if state in ("cancelled", "rejected"):
        reached = rng.choice([0, 1, 2])
    span = max((now - submitted).total_seconds(), 3600)
    moments = sorted(submitted + timedelta(seconds=rng.random() * span) for _ in range(6))
    remote = reached >= _REACHED["confirmed"] and rng.random() < 0.4
    paid = reached >= _REACHED["confirmed"] and rng.random() < 0.15
    received_at = None
    if reached >= _REACHED["received"] and not remote:
        received_at = moments[0]
    elif remote and state in ("closed",):
        received_at = moments[4]
    confirmed_at = moments[1] if reached >= _REACHED["confirmed"] else None
    started_at = (moments[2] if paid else confirmed_at) \
        if reached >= _REACHED["confirmed"] and (not paid or reached >= _REACHED["released"]) \
        else None
    shipped = reached >= _REACHED["shipped"]
    delivered = reached >= _REACHED["delivered"]
    extra: dict = {"scans": [], "shipments": [], "unit_updates": [], "spare_updates": []}
    if received_at is not None:
        extra["scans"].append((stamp(received_at), rng.choice(staff), "dock-1", serial,
                               serial, rma_id, item_id))
        extra["unit_updates"].append(("returned", unit_id))
    due_back = None
    if shipped:
        shipped_at = moments[3]
        if remote:
            due_back = (shipped_at + timedelta(days=14)).date().isoformat()
        if spares:
            spare_id, spare_serial, _m = spares.pop()
            extra["shipments"].append((
                item_id, "replacement", spare_id, "SF Express", f"SF{item_id:013d}",
                stamp(shipped_at), rng.choice(staff),
                stamp(moments[4]) if delivered else None, "张伟" if delivered else None))
            extra["spare_updates"].append((customer_id, unit_id, shipped_at.date().isoformat(),
                                           spare_id))
            extra["unit_updates"].append(("replaced", unit_id))
    status_changed = moments[5] if state != "submitted" else submitted
    row = (
        item_id, rma_id, line_no, unit_id, None if final else unit_id, serial,
        "按键失灵，无法生成动态口令", "buttons", state, 1, "2027-12-31", "ship",
        ("misuse_drop" if paid else "quality_defect") if confirmed_at else None,
        ("paid" if paid else "free") if confirmed_at else None,
        ("R-W4" if paid else "R-W3") if confirmed_at else None,
        stamp(confirmed_at) if confirmed_at else None,
        stamp(started_at + timedelta(hours=72)) if started_at else None,
        stamp(status_changed), int(remote), "",
        ("paid" if paid else "free") if confirmed_at else None, "",
        staff[0] if confirmed_at else None,
        stamp(received_at) if received_at else None,
        rng.choice(staff) if received_at else None, due_back,
        stamp(moments[2]) if paid and started_at else None, "",
        stamp(started_at) if started_at else None,
        "不在保修范围内的产品" if state == "rejected" else None,
        stamp(moments[5]) if state == "closed" else None,
    )
    return row, extra


# -- samples --------------------------------------------------------------------------------
@dataclass
class Samples:
    receivable: list[tuple[str, str]]  # (RMA number, serial) of items that may be received
    open_serials: list[str]  # serials on an open item (a bare scan finds the RMA)
    no_rma_serials: list[str]  # known units on no open RMA
    unknown_serials: list[str]  # valid serials of no unit


def pick_samples(path: Path, seed: int) -> Samples:
    rng = random.Random(seed)
    conn = sqlite3.connect(path)
    try:
        receivable = conn.execute(
            "SELECT r.number, i.serial FROM rma_items i JOIN rmas r ON r.id = i.rma_id "
            "WHERE i.status IN ('submitted', 'awaiting_unit') AND i.unit_received_at IS NULL"
        ).fetchall()
        open_serials = [s for (s,) in conn.execute(
            "SELECT serial FROM rma_items WHERE open_unit_id IS NOT NULL")]
        top = conn.execute("SELECT max(id) FROM units").fetchone()[0]
        ids = rng.sample(range(1, top + 1), 20_000)
        known = []
        for i in range(0, len(ids), 5000):
            chunk = ids[i:i + 5000]
            known += [s for (s,) in conn.execute(
                "SELECT serial FROM units u WHERE id IN "
                f"({','.join('?' * len(chunk))}) AND NOT EXISTS (SELECT 1 FROM rma_items i "
                "WHERE i.open_unit_id = u.id)", chunk)]
    finally:
        conn.close()
    rng.shuffle(receivable)
    rng.shuffle(open_serials)
    rng.shuffle(known)
    unknown = [f"ZZX{rng.randrange(10**9):09d}" for _ in range(20_000)]
    return Samples(receivable, open_serials, known, unknown)


# -- figures --------------------------------------------------------------------------------
@dataclass
class Figures:
    name: str
    times_ms: list[float]
    seconds: float  # wall time of the whole run
    outcomes: dict[str, int] = field(default_factory=dict)
    errors: int = 0

    def pct(self, p: float) -> float:
        ordered = sorted(self.times_ms)
        return ordered[min(len(ordered) - 1, int(len(ordered) * p))] if ordered else 0.0

    @property
    def rate(self) -> float:
        return len(self.times_ms) / self.seconds if self.seconds else 0.0


def table(title: str, rows: list[tuple[Figures, Figures | None]]) -> None:
    print()
    print(title)
    head = (f"{'case':<44} {'n':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'req/s':>8} "
            f"{'ref p50':>8} {'ref p99':>8}  outcomes")
    print(head)
    print("-" * len(head))
    for fig, ref in rows:
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(fig.outcomes.items()))
        if fig.errors:
            outcomes += f", ERRORS {fig.errors}"
        refs = (f"{ref.pct(0.5):>8.3f} {ref.pct(0.99):>8.3f}" if ref is not None
                else f"{'-':>8} {'-':>8}")
        print(f"{fig.name:<44} {len(fig.times_ms):>6} {fig.pct(0.5):>8.2f} "
              f"{fig.pct(0.99):>8.2f} {max(fig.times_ms, default=0):>8.2f} {fig.rate:>8.1f} "
              f"{refs}  {outcomes}")


# -- the reference: raw sqlite3, one indexed lookup per scan --------------------------------
REFERENCE_SQL = {
    "with_rma": "SELECT i.id, i.status FROM rma_items i JOIN rmas r ON r.id = i.rma_id "
                "WHERE r.number = ? AND i.serial = ?",
    "bare": "SELECT i.id, r.number FROM rma_items i JOIN rmas r ON r.id = i.rma_id "
            "WHERE i.serial = ? AND i.open_unit_id IS NOT NULL LIMIT 1",
    "unit": "SELECT id FROM units WHERE serial = ?",
}


def reference(path: Path, name: str, sql: str, params: list[tuple]) -> Figures:
    conn = common.connect(path)
    conn.execute("PRAGMA mmap_size = 268435456")  # as rma/db_setup.py
    try:
        times = []
        started = time.perf_counter()
        for args in params:
            t0 = time.perf_counter()
            conn.execute(sql, args).fetchall()
            times.append((time.perf_counter() - t0) * 1000)
        return Figures(name, times, time.perf_counter() - started)
    finally:
        conn.close()


# -- in process: the service -------------------------------------------------------------
class Statements:
    """Every distinct SQL statement the app sends (for the query plans), with its first
    parameters."""

    def __init__(self):
        self.seen: dict[str, tuple] = {}

    def __call__(self, conn, cursor, statement, parameters, context, executemany):
        if not executemany and statement not in self.seen:
            self.seen[statement] = tuple(parameters) if parameters else ()


def run_service(env: dict[str, str], samples: Samples, n: int, warmup: int,
                statements: Statements, variant: str) -> list[tuple[Figures, Figures | None]]:
    os.environ.update({k: v for k, v in env.items() if k.startswith("RMA_")})
    if variant == "unnested":
        unnest_unit_model_join()
    from sqlalchemy import event

    from rma import create_app
    from rma.extensions import db
    from rma.models import User
    from rma.services import warehouse
    from rma.services.audit import Actor

    app = create_app()
    path = common.db_path(Path(env["RMA_INSTANCE_PATH"]).parent)
    rows = []
    with app.app_context():
        event.listen(db.engine, "before_cursor_execute", statements)
        user_id = db.session.scalar(db.select(User.id).where(User.email == SCANNER))

        def actor() -> Actor:
            return Actor(user=db.session.get(User, user_id))

        def measure(name: str, calls: list[tuple[str, str | None]]) -> Figures:
            times, outcomes = [], defaultdict(int)
            started = time.perf_counter()
            for code, number in calls:
                t0 = time.perf_counter()
                with app.test_request_context():  # a request's scope: session removed after
                    result = warehouse.scan(actor(), code, rma_number=number, station="bench")
                    outcomes[result.outcome] += 1
                times.append((time.perf_counter() - t0) * 1000)
            return Figures(name, times, time.perf_counter() - started, dict(outcomes))

        take = samples.receivable[:warmup + n]
        del samples.receivable[:warmup + n]
        measure("warm-up", [(s, r) for r, s in take[:warmup]])
        calls = take[warmup:]
        a = measure("(a) serial on the RMA at hand: received",
                    [(s, r) for r, s in calls])
        rows.append((a, reference(path, "ref", REFERENCE_SQL["with_rma"],
                                  [(r, s) for r, s in calls])))
        again = measure("(a') the same serial again: already received",
                        [(s, r) for r, s in calls])
        rows.append((again, None))
        bare = samples.open_serials[:n]
        b = measure("(b) bare serial: finds its open RMA", [(s, None) for s in bare])
        rows.append((b, reference(path, "ref", REFERENCE_SQL["bare"], [(s,) for s in bare])))
        unknown = samples.unknown_serials[:n]
        c = measure("(c) unknown serial", [(s, None) for s in unknown])
        rows.append((c, reference(path, "ref", REFERENCE_SQL["unit"], [(s,) for s in unknown])))
        known = samples.no_rma_serials[:n]
        d = measure("(d) known serial on no open RMA", [(s, None) for s in known])
        rows.append((d, reference(path, "ref", REFERENCE_SQL["unit"], [(s,) for s in known])))
        # The scan page in process, once per case, only to collect its SQL for the plans.
        if "warehouse.scan" in app.view_functions:
            app.config.update(WTF_CSRF_ENABLED=False, RATELIMIT_ENABLED=False)
            client = app.test_client()
            client.post("/login", data={"email": SCANNER, "password": PASSWORD})
            number, serial = samples.receivable.pop()
            client.post(f"/staff/wh/scan?rma={quote(number)}", data={"code": serial})
            client.post("/staff/wh/scan", data={"code": samples.open_serials[-1]})
            client.post("/staff/wh/scan", data={"code": samples.unknown_serials[-1]})
        event.remove(db.engine, "before_cursor_execute", statements)
        db.session.remove()
        for engine in db.engines.values():
            engine.dispose()
    return rows


def query_plans(path: Path, statements: Statements) -> list[tuple[str, list[str]]]:
    """Statements whose plan reads a whole big table: a ``SCAN`` of it, or a
    ``MATERIALIZE`` step with a big table inside (SQLite builds the nested join or
    subquery whole first). Each is a candidate for an index or another query shape."""
    conn = sqlite3.connect(path)
    flagged = []
    try:
        for sql, params in statements.seen.items():
            if not sql.lstrip().upper().startswith(("SELECT", "UPDATE", "DELETE", "WITH")):
                continue
            try:
                plan = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params)]
            except sqlite3.Error:
                continue
            scans = [line for line in plan if line.startswith("SCAN ")
                     and line.split()[1] in BIG_TABLES]
            # A MATERIALIZE step builds a subquery or nested join whole before joining it:
            # with a big table inside, every row of that table is read.
            inside = [line for line in plan if line.startswith(("SCAN ", "SEARCH "))
                      and re.sub(r"_\d+$", "", line.split()[1]) in BIG_TABLES]
            if scans or (any(line.startswith("MATERIALIZE") for line in plan) and inside):
                flagged.append((sql, plan))
    finally:
        conn.close()
    return flagged


# -- over HTTP: gunicorn ------------------------------------------------------------------
class Server:
    def __init__(self, env: dict[str, str], workers: int, log_dir: Path, app: str):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.access = log_dir / "access.log"
        self.error = log_dir / "gunicorn.log"
        cmd = [GUNICORN, "--no-control-socket", "--workers", str(workers), "--worker-class",
               "sync", "--bind", f"127.0.0.1:{self.port}", "--access-logfile", str(self.access),
               "--access-logformat", "%(m)s %(U)s %(q)s %(s)s %(D)s",
               "--pythonpath", str(Path(__file__).resolve().parent), app]
        self.command = " ".join(cmd[:-6]) + " ... " + app
        with open(self.error, "w") as out:
            self.proc = subprocess.Popen(cmd, env=env, cwd=common.REPO, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                sys.exit(f"gunicorn exited:\n{self.error.read_text()[-3000:]}")
            try:
                status, _h, _b = Client(self.port).request("GET", "/login")
                if status == 200:
                    return
            except OSError:
                time.sleep(0.2)
        sys.exit(f"gunicorn not ready after {timeout:.0f} s:\n{self.error.read_text()[-3000:]}")

    def log_size(self) -> int:
        return self.access.stat().st_size if self.access.exists() else 0

    def server_ms(self, since: int, count: int) -> list[float]:
        """Times (%(D)s, microseconds, in ms) of the measured requests (query ``m=1``)
        logged since byte ``since``; waits for all ``count`` of them."""
        deadline = time.monotonic() + 10
        while True:  # a worker writes its log line right after responding
            with open(self.access) as log:
                log.seek(since)
                lines = [line.split() for line in log.read().splitlines()]
            times = [int(parts[-1]) / 1000 for parts in lines
                     if len(parts) == 5 and MARK in parts[2].split("&")]
            if len(times) >= count or time.monotonic() > deadline:
                return times
            time.sleep(0.05)

    def stop(self) -> None:
        common.stop(self.proc)


class Client:
    """One HTTP/1.1 connection (reopened when the server closes it) with a cookie jar."""

    def __init__(self, port: int):
        self.port = port
        self.cookies: dict[str, str] = {}
        self.conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict, bytes]:
        headers = dict(headers or {})
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            self.conn.request(method, path, body=body, headers=headers)
            response = self.conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException):
            self.conn.close()
            self.conn = None
            raise
        for name, value in response.getheaders():
            if name.lower() == "set-cookie":
                key, _sep, rest = value.partition("=")
                self.cookies[key.strip()] = rest.split(";", 1)[0]
        if response.will_close:
            self.conn.close()
            self.conn = None
        return response.status, dict(response.getheaders()), data

    def form(self, path: str, fields: dict[str, str]) -> tuple[int, dict, bytes]:
        return self.request("POST", path, urlencode(fields).encode(),
                            {"Content-Type": "application/x-www-form-urlencoded"})

    def csrf(self, path: str) -> str:
        _status, _headers, body = self.request("GET", path)
        match = re.search(rb'name="csrf_token" type="hidden" value="([^"]+)"', body) or \
            re.search(rb'name="csrf_token" value="([^"]+)"', body)
        if match is None:
            sys.exit(f"no CSRF token on {path}")
        return match.group(1).decode()

    def log_in(self) -> str:
        token = self.csrf("/login")
        status, _h, _b = self.form("/login", {"email": SCANNER, "password": PASSWORD,
                                              "csrf_token": token})
        if status != 302:
            sys.exit(f"log-in answered {status}")
        return self.csrf("/staff/wh/scan")


_OUTCOME = re.compile(rb'data-outcome="([a-z_]+)"')


def run_http(server: Server, name: str, calls: list,
             send: Callable[[Client, object, bool], tuple[int, str]], concurrency: int,
             warmup: list, budget: float, setup: Callable[[Client], None] | None = None
             ) -> Figures:
    """``calls`` spread over ``concurrency`` client threads, each with its own connection
    (and log-in when ``setup`` says so), for at most ``budget`` seconds (a slow case stops
    early and reports how many it sent); the server's own times come from its access
    log. Warm-up calls are sent first and not counted."""
    clients = [Client(server.port) for _ in range(concurrency)]
    if setup is not None:
        for client in clients:
            setup(client)
    warm_until = time.monotonic() + budget / 4
    for k, call in enumerate(warmup):
        if time.monotonic() > warm_until:
            break
        send(clients[k % concurrency], call, False)
    since = server.log_size()
    outcomes: dict[str, int] = defaultdict(int)
    errors = [0]
    sent = [0]
    lock = threading.Lock()
    halt = threading.Event()
    deadline = time.monotonic() + budget

    def worker(k: int) -> None:
        for call in calls[k::concurrency]:
            if halt.is_set() or time.monotonic() > deadline:
                return
            try:
                status, outcome = send(clients[k], call, True)
            except (OSError, http.client.HTTPException):
                status, outcome = 0, "connection error"
            with lock:
                sent[0] += 1
                outcomes[outcome] += 1
                errors[0] += status not in (200, 409)

    started = time.perf_counter()
    pool = concurrent.futures.ThreadPoolExecutor(concurrency)
    try:
        for future in [pool.submit(worker, k) for k in range(concurrency)]:
            future.result()
    except BaseException:
        halt.set()  # Ctrl-C or SIGTERM: the threads stop after their current request
        raise
    finally:
        pool.shutdown(wait=True)
    seconds = time.perf_counter() - started
    times = server.server_ms(since, sent[0])
    if sent[0] < len(calls):
        outcomes["not sent (time budget)"] = len(calls) - sent[0]
    return Figures(name, times, seconds, dict(outcomes), errors[0])


def api_receive(token: str) -> Callable[[Client, object, bool], tuple[int, str]]:
    def send(client: Client, call, measured: bool) -> tuple[int, str]:
        number, serial = call
        status, _h, body = client.request(
            "POST", f"/api/v1/rmas/{quote(number)}/receive" + ("?" + MARK if measured else ""),
            json.dumps({"serial": serial}).encode(),
            {"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        try:
            return status, json.loads(body).get("outcome", str(status))
        except ValueError:
            return status, str(status)
    return send


def page_scan(tokens: dict[int, str]) -> Callable[[Client, object, bool], tuple[int, str]]:
    def send(client: Client, call, measured: bool) -> tuple[int, str]:
        code, number = call
        query = [MARK] if measured else []
        if number:
            query.append(f"rma={quote(number)}")
        path = "/staff/wh/scan" + ("?" + "&".join(query) if query else "")
        status, _h, body = client.form(path, {"code": code, "csrf_token": tokens[id(client)],
                                              "station": "bench"})
        match = _OUTCOME.search(body)
        return status, match.group(1).decode() if match else f"page {status}"
    return send


# -- main -------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=1_000_000)
    parser.add_argument("--rmas", type=int, default=100_000)
    parser.add_argument("--samples", type=int, default=1000, help="scans per case")
    parser.add_argument("--warmup", type=int, default=50, help="unmeasured scans per run")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers")
    parser.add_argument("--concurrency", type=int, default=2, help="HTTP client connections")
    parser.add_argument("--budget", type=float, default=60,
                        help="seconds at most per HTTP case (default 60)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--variant", choices=sorted(VARIANTS), default="none",
                        help="measure the app as it is, or with a candidate fix applied at "
                             "start-up (see unnest_unit_model_join)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="build here, or reuse the database already built here (kept)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    common.exit_cleanly_on_signals()

    tmp = args.workdir or Path(tempfile.mkdtemp(prefix="rma-bench-scan-"))
    base = tmp / "app"
    server: Server | None = None
    load_before = os.getloadavg()
    try:
        print(f"work dir: {tmp}")
        token_file = base / "bench-token"
        if args.workdir and common.db_path(base).exists() and token_file.exists():
            print("reusing the database built there before", flush=True)
            env, token = common.instance_env(base), token_file.read_text().strip()
        else:
            started = time.perf_counter()
            built = build_database(base, args.units, args.rmas, args.seed)
            env, token = built.env, built.token
            token_file.write_text(token)
            print(f"built in {time.perf_counter() - started:.0f} s", flush=True)
        path = common.db_path(base)
        samples = pick_samples(path, args.seed + 1)
        need = 3 * (args.samples + args.warmup) + 1
        if len(samples.receivable) < need:
            sys.exit(f"only {len(samples.receivable)} receivable items left; need {need} "
                     "(build a new database, or pass fewer --samples)")
        print(f"samples: {len(samples.receivable):,} receivable items, "
              f"{len(samples.open_serials):,} open items", flush=True)
        conn = sqlite3.connect(path)
        args.units, args.rmas = (conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                                 for table in ("units", "rmas"))
        conn.close()

        print("in process: rma.services.warehouse.scan ...", flush=True)
        statements = Statements()
        service_rows = run_service(env, samples, args.samples, args.warmup, statements,
                                   args.variant)

        env = dict(env, RMA_LOGIN_RATE_LIMIT="1000000/minute")
        server = Server(env, args.workers, tmp, VARIANTS[args.variant])
        server.wait_ready()
        print(f"gunicorn: {server.command}", flush=True)
        http_rows: list[tuple[Figures, Figures | None]] = []
        n, w, c = args.samples, args.warmup, args.concurrency
        take = samples.receivable[:n + w]
        del samples.receivable[:n + w]
        http_rows.append((run_http(
            server, "(a) POST /api/v1/rmas/<number>/receive",
            take[w:], api_receive(token), c, take[:w], args.budget), None))
        # Installed, the page sends an anonymous visitor to the log-in page.
        if Client(server.port).request("GET", "/staff/wh/scan")[0] == 302:
            tokens: dict[int, str] = {}

            def log_in(client: Client) -> None:
                tokens[id(client)] = client.log_in()

            send = page_scan(tokens)
            take = samples.receivable[:n + w]
            del samples.receivable[:n + w]
            http_rows.append((run_http(
                server, "(a) scan page, serial on the RMA at hand",
                [(s, r) for r, s in take[w:]], send, c, [(s, r) for r, s in take[:w]],
                args.budget, log_in), None))
            http_rows.append((run_http(
                server, "(b) scan page, bare serial finds its RMA",
                [(s, None) for s in samples.open_serials[-n:]], send, c,
                [(s, None) for s in samples.open_serials[-n - w:-n]], args.budget, log_in),
                None))
            http_rows.append((run_http(
                server, "(c) scan page, unknown serial",
                [(s, None) for s in samples.unknown_serials[-n:]], send, c,
                [(s, None) for s in samples.unknown_serials[-n - w:-n]], args.budget,
                log_in), None))
        else:
            print("the scan page (/staff/wh/scan) is not installed: only the API is measured")

        report(args, service_rows, http_rows, load_before)
        flagged = query_plans(path, statements)
        print()
        if flagged:
            print("query plans that read a whole big table (a missing index, or a nested join "
                  "SQLite materialises):")
            for sql, plan in flagged:
                print("  " + " ".join(sql.split())[:300])
                for line in plan:
                    print(f"      {line}")
        else:
            print(f"query plans: every one of the {len(statements.seen)} statements the scan "
                  "(service and page) sent uses an index on the big tables")
    finally:
        if server is not None:
            server.stop()
        if args.keep or args.workdir:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def report(args, service_rows, http_rows, load_before) -> None:
    load_after = os.getloadavg()
    print()
    print(f"units: {args.units:,}   RMAs: {args.rmas:,}   scans per case: {args.samples}   "
          f"variant: {args.variant}   "
          f"cpus: {os.cpu_count()}   load average before/after: "
          f"{load_before[0]:.2f}/{load_after[0]:.2f}")
    table("in process: warehouse.scan(...) one after another, commit included "
          "(ref: one raw sqlite3 indexed lookup of the same serial)", service_rows)
    table(f"over HTTP: server time from gunicorn's access log (%(D)s), {args.workers} sync "
          f"workers, {args.concurrency} client connections", http_rows)
    worst = max((fig.pct(0.99) for fig, _ref in [*service_rows, *http_rows]), default=0)
    print()
    print(f"slowest p99 at the server: {worst:.2f} ms   (target < {TARGET_MS:g} ms: "
          f"{'MET' if worst < TARGET_MS else 'MISSED'})")


if __name__ == "__main__":
    main()
