"""A realistic request mix at a fixed rate against gunicorn, SQLite and PostgreSQL (issue 8).

    .venv/bin/python bench/load.py [--db sqlite|postgresql|both] [--rate R] [--seconds S]
        [--warmup S] [--mix warranty=69,submit=5,...] [--instances N] [--workers W]
        [--threads T] [--units N] [--rmas N] [--workdir DIR] [--reuse] [--pg-url URL]
        [--no-bare] [--no-tick]

Target (issue 8): 0 errors and p99 under 100 ms at 200 requests/s on a 2-core machine.
Measured in the same run, next to the app: a bare Flask endpoint under the same gunicorn
settings.

The generator is open-loop: request i is due at ``start + i / rate`` whatever happened to
the earlier ones, and its latency is measured from that due time (no coordinated
omission: a slow answer makes the requests behind it late, and they count it). A pool of
client threads sends them; if the pool ever falls behind, the "lag" column says so.
See bench/README.md for the data, the mix and how to read the tables.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import queue
import random
import re
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

import common
import scan
from warranty_lookup import CLK_TCK, Server

TARGET_MS = 100.0
TARGET_RATE = 200.0
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/bench_load"
PASSWORD = scan.PASSWORD  # every bench user's; a throw-away instance
MANAGER = "manager@bench.example"
WH_LEAD = scan.WAREHOUSE_STAFF[0]  # a warehouse user; the replacements page
CHINA = ZoneInfo("Asia/Shanghai")
# Default mix (weights, per cent of all requests); the reasons are in bench/README.md.
# "replacements" (the warehouse's open replacements page) is off unless --mix asks for it.
DEFAULT_MIX = {"warranty": 69, "submit": 5, "scan": 6, "dashboard": 5, "rma_list": 15,
               "replacements": 0}
KINDS = tuple(DEFAULT_MIX)
UNKNOWN_SHARE = 0.05  # warranty checks of a serial that does not exist (404 expected)
SUBMIT_SIZES = {1: 80, 2: 15, 3: 5}  # items per submitted RMA
PROGRESS_EVERY = 5.0
TIMEOUT = 30.0  # seconds a client waits for an answer
GUNICORN_EXTRA = ["--logger-class", "rma.gunicorn_logger.JsonLogger", "--graceful-timeout",
                  "20"]  # deploy/rma-web@.service (+ --workers 4, sync)


# -- databases: one small wrapper for sqlite3 and psycopg -----------------------------------
def pg_dsn(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class Db:
    """Raw access to a bench database: ``?`` placeholders on both engines, instants as
    each engine's app stores them (naive UTC text in SQLite, timestamptz in PostgreSQL)."""

    def __init__(self, engine: str, target: str):
        self.engine = engine
        if engine == "sqlite":
            self.conn = common.connect(Path(target))
        else:
            import psycopg

            self.conn = psycopg.connect(pg_dsn(target))
            self.conn.execute("SET TIME ZONE 'UTC'")
            self.conn.commit()

    def _sql(self, sql: str) -> str:
        return sql if self.engine == "sqlite" else sql.replace("?", "%s")

    def rows(self, sql: str, params: tuple | list = ()) -> list[tuple]:
        return self.conn.execute(self._sql(sql), params).fetchall()

    def value(self, sql: str, params: tuple | list = ()):
        row = self.conn.execute(self._sql(sql), params).fetchone()
        return row[0] if row else None

    def begin(self) -> None:
        if self.engine == "sqlite":
            self.conn.execute("BEGIN")

    def many(self, sql: str, rows: list[tuple]) -> None:
        if self.engine == "sqlite":
            self.conn.executemany(sql, rows)
        else:
            with self.conn.cursor() as cur:
                cur.executemany(self._sql(sql), rows)

    def commit(self) -> None:
        if self.engine == "sqlite":
            self.conn.execute("COMMIT")
        else:
            self.conn.commit()

    def stamp(self, moment: datetime):
        return scan.stamp(moment) if self.engine == "sqlite" else moment

    def close(self) -> None:
        self.conn.close()


# -- seeding --------------------------------------------------------------------------------
@dataclass
class Meta:
    """What the generator needs to know about a seeded instance (kept as JSON)."""

    scanner_token: str
    customers: list[dict]  # {"id", "contract", "email", "token"}
    units: int
    pg_ready: bool = False

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.__dict__, indent=1))

    @classmethod
    def load(cls, path: Path) -> Meta:
        return cls(**json.loads(path.read_text()))


USERS_SCRIPT = """
import json, sys
from rma import create_app
from rma.extensions import db
from rma.models import Customer
from rma.services.audit import Actor
from rma.services.users import create_token, create_user
password, manager = sys.argv[1], sys.argv[2]
app = create_app()
with app.app_context():
    actor = Actor.cli("bench-load")
    create_user(actor, manager, "manager", password, None, "en")
    out = []
    for n, customer in enumerate(db.session.scalars(db.select(Customer).order_by(Customer.id)),
                                 start=1):
        email = f"customer{n}@bench.example"
        user = create_user(actor, email, "customer", password, customer, "zh_CN")
        out.append({"id": customer.id, "contract": customer.contract_number, "email": email,
                    "token": create_token(actor, user, "bench-load")})
    db.session.commit()
print(json.dumps(out))
"""


def seed_sqlite(base: Path, args: argparse.Namespace) -> Meta:
    """scan.py's builder (units, RMAs in every state, scan events, shipments, warehouse
    users and the scanner's token), plus a manager, one customer user with a token per
    customer, replacement clocks and shipments as a working service centre has them, and
    RMAs whose units the warehouse can receive."""
    started = time.perf_counter()
    built = scan.build_database(base, args.units, args.rmas, args.seed)
    print("  users: a manager and one customer user (with an API token) per customer ...",
          flush=True)
    done = subprocess.run([sys.executable, "-c", USERS_SCRIPT, PASSWORD, MANAGER],
                          env=built.env, cwd=common.REPO, capture_output=True, text=True,
                          timeout=300, check=False)
    if done.returncode != 0:
        sys.exit(f"creating the users failed:\n{done.stderr}")
    customers = json.loads(done.stdout.strip().splitlines()[-1])
    db = Db("sqlite", str(common.db_path(base)))
    try:
        realistic_clocks(db, built.users, args.seed)
        add_receivable(db, args.receivable, args.seed)
    finally:
        db.close()
    meta = Meta(built.token, customers, args.units)
    print(f"SQLite database seeded in {time.perf_counter() - started:.0f} s", flush=True)
    return meta


RUNNING = ("confirmed", "released", "shipped")  # a replacement on its 72-hour clock
FINISHED = ("delivered", "closed")


def realistic_clocks(db: Db, users: dict[str, int], seed: int) -> None:
    """scan.py's builder spreads clock starts, shipments and deliveries at random over
    each RMA's life and runs out of spares after a third of the replacements, so most
    finished replacements look delivered late or never shipped (breaches), and most
    running clocks look long overdue. Make them as a working service centre has them:
    running clocks started in the last 80 hours (about one in ten overdue), every finished
    replacement shipped (a new spare when the stock ran out) and delivered, 4 % late."""
    rng = random.Random(seed * 7 + 3)
    now = datetime.now(UTC)
    started = time.perf_counter()
    staff = [users[email] for email in scan.WAREHOUSE_STAFF]
    rows = db.rows(
        "SELECT i.id, i.status, i.unit_id, i.clock_started_at, i.confirmed_at, u.model_id, "
        "r.customer_id, s.id FROM rma_items i JOIN units u ON u.id = i.unit_id "
        "JOIN rmas r ON r.id = i.rma_id LEFT JOIN shipments s ON s.item_id = i.id "
        "WHERE i.clock_started_at IS NOT NULL AND i.status IN (?, ?, ?, ?, ?)",
        (*RUNNING, *FINISHED))
    unit_id = db.value("SELECT max(id) FROM units")
    item_updates, ship_updates, new_units, new_ships, replaced = [], [], [], [], []
    for item_id, status, old_unit, clock_at, confirmed_at, model_id, customer_id, ship_id \
            in rows:
        start = datetime.fromisoformat(str(clock_at)).replace(tzinfo=UTC)
        if status in RUNNING:
            start = now - timedelta(hours=rng.uniform(0, 80))
        confirmed = min(datetime.fromisoformat(str(confirmed_at)).replace(tzinfo=UTC), start) \
            if confirmed_at else start
        due = start + timedelta(hours=72)
        item_updates.append((db.stamp(start), db.stamp(due), db.stamp(confirmed), item_id))
        if status in ("confirmed", "released"):
            continue
        shipped_at = start + timedelta(hours=rng.uniform(2, 40))
        delivered_at = None
        if status == "shipped":
            shipped_at = min(shipped_at, now - timedelta(minutes=30))
        else:
            delivered_at = shipped_at + timedelta(hours=rng.uniform(4, 28))
            if rng.random() < 0.04:
                delivered_at = due + timedelta(hours=rng.uniform(1, 48))
        delivered = db.stamp(delivered_at) if delivered_at else None
        if ship_id is not None:
            ship_updates.append((db.stamp(shipped_at), delivered, ship_id))
            continue
        unit_id += 1
        stamp_now = db.stamp(now)
        new_units.append((unit_id, f"RPL{unit_id:09d}", model_id, customer_id,
                          shipped_at.date().isoformat(), "in_service", old_unit, stamp_now,
                          stamp_now))
        replaced.append((old_unit,))
        new_ships.append((item_id, unit_id, f"SF{item_id:013d}", db.stamp(shipped_at),
                          rng.choice(staff), delivered, "张伟" if delivered else None))
    db.begin()
    db.many("UPDATE rma_items SET clock_started_at = ?, due_at = ?, confirmed_at = ? "
            "WHERE id = ?", item_updates)
    db.many("UPDATE shipments SET shipped_at = ?, delivered_at = ? WHERE id = ?",
            ship_updates)
    db.many("INSERT INTO units (id, serial, model_id, customer_id, shipped_on, status, "
            "replaces_id, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            new_units)
    db.many("UPDATE units SET status = 'replaced' WHERE id = ?", replaced)
    db.many("INSERT INTO shipments (item_id, kind, unit_id, carrier, tracking_number, "
            "shipped_at, shipped_by_id, delivered_at, received_by) "
            "VALUES (?, 'replacement', ?, 'SF Express', ?, ?, ?, ?, ?)", new_ships)
    db.commit()
    print(f"  replacement clocks: {len(item_updates):,} re-timed, {len(new_ships):,} "
          f"shipments of new spares added ({time.perf_counter() - started:.1f} s)",
          flush=True)


def add_receivable(db: Db, n_items: int, seed: int) -> None:
    """``n_items`` items the warehouse can receive, on new RMAs of 1 to 3 items submitted
    over the last 30 days (a quarter still ``submitted``, the rest ``awaiting_unit``:
    triage asked for the unit), on customer units that were on no RMA yet. Written as the
    app writes them: the RMA, its items, its "submitted" timeline event and audit event,
    and the RMA number counter."""
    rng = random.Random(seed * 31 + n_items)
    now = datetime.now(UTC)
    started = time.perf_counter()
    free = db.rows("SELECT id, serial, customer_id FROM units u WHERE customer_id IS NOT NULL"
                   " AND status = 'in_service' AND NOT EXISTS (SELECT 1 FROM rma_items i "
                   "WHERE i.unit_id = u.id)")
    if len(free) < n_items:
        sys.exit(f"only {len(free):,} free customer units for {n_items:,} receivable items: "
                 "build a new database (without --reuse) or pass more --units")
    rng.shuffle(free)
    by_customer: dict[int, list[tuple]] = defaultdict(list)
    for unit in free[:n_items]:
        by_customer[unit[2]].append(unit)
    year = now.astimezone(CHINA).year
    last = db.value("SELECT last_value FROM number_sequences WHERE name = 'rma' AND year = ?",
                    (year,))
    rma_id = db.value("SELECT coalesce(max(id), 0) FROM rmas")
    item_id = db.value("SELECT coalesce(max(id), 0) FROM rma_items")
    number = last or 0
    rmas, items, events, audits = [], [], [], []
    for customer_id, units in by_customer.items():
        while units:
            size = min(rng.choice((1, 1, 1, 2, 3)), len(units))
            chunk, units[:] = units[:size], units[size:]
            rma_id += 1
            number += 1
            rma_number = f"RMA-{year}-{number:06d}"
            submitted = now - timedelta(minutes=10) - rng.random() * timedelta(days=30)
            at = db.stamp(submitted)
            email = f"contact{rma_id}@customer.example"
            rmas.append((rma_id, rma_number, customer_id, "open", "张伟", "+86 138 0000 0000",
                         email, "上海市浦东新区世纪大道100号", "zh_CN", at, at))
            state = "submitted" if rng.random() < 0.25 else "awaiting_unit"
            for line, (unit_id, serial, _c) in enumerate(chunk, start=1):
                item_id += 1
                items.append((item_id, rma_id, line, unit_id, unit_id, serial,
                              "按键失灵，无法生成动态口令", "buttons", state, True,
                              "2027-12-31", "ship", False, "", "", "", at))
            events.append((rma_id, at, "submitted", email,
                           json.dumps({"items": len(chunk), "serials": [u[1] for u in chunk]})))
            audits.append((at, email, "rma.submitted", "rma", rma_number,
                           json.dumps({"number": rma_number, "items": len(chunk)})))
    db.begin()
    db.many("INSERT INTO rmas (id, number, customer_id, status, contact_name, contact_phone, "
            "contact_email, ship_to, language, submitted_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rmas)
    db.many("INSERT INTO rma_items (id, rma_id, line_no, unit_id, open_unit_id, serial, "
            "fault_description, fault_category, status, in_warranty_on_submit, "
            "warranty_end_on, basis_used, remote_confirmation, cause_notes, decision_reason, "
            "release_note, status_changed_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            items)
    db.many("INSERT INTO rma_events (rma_id, at, kind, actor_label, data) "
            "VALUES (?, ?, ?, ?, ?)", events)
    db.many("INSERT INTO audit_events (at, actor_label, action, entity_type, entity_id, after)"
            " VALUES (?, ?, ?, ?, ?, ?)", audits)
    if last is None:
        db.many("INSERT INTO number_sequences (name, year, last_value) VALUES ('rma', ?, ?)",
                [(year, number)])
    else:
        db.many("UPDATE number_sequences SET last_value = ? WHERE name = 'rma' AND year = ?",
                [(number, year)])
    db.commit()
    if db.engine == "postgresql":
        fix_sequences(db.conn, ["rmas", "rma_items"])
    print(f"  added {len(items):,} receivable items on {len(rmas):,} RMAs "
          f"({time.perf_counter() - started:.1f} s)", flush=True)


def fix_sequences(pg, tables: list[str]) -> None:
    """Each table's id sequence after rows were written with explicit ids."""
    with_id = {t for (t,) in pg.execute(
        "SELECT table_name FROM information_schema.columns WHERE table_schema = 'public' "
        "AND column_name = 'id'")}
    for table in tables:
        if table not in with_id:
            continue
        seq = pg.execute("SELECT pg_get_serial_sequence(%s, 'id')", (table,)).fetchone()
        if seq and seq[0]:
            pg.execute(f"SELECT setval('{seq[0]}', (SELECT coalesce(max(id), 0) + 1 "  # noqa: S608
                       f"FROM {table}), false)")
    pg.commit()


def copy_to_postgres(sqlite_path: Path, url: str, base: Path) -> None:
    """A fresh schema at ``url`` (``rma init-db``) holding every row of the SQLite bench
    database (COPY, foreign keys checked by neither side while copying)."""
    import psycopg

    started = time.perf_counter()
    dsn = pg_dsn(url)
    print(f"copying into PostgreSQL ({url}; its public schema is dropped first) ...",
          flush=True)
    with psycopg.connect(dsn, autocommit=True) as pg:
        pg.execute("DROP SCHEMA public CASCADE")
        pg.execute("CREATE SCHEMA public")
    env = dict(common.instance_env(base), RMA_DATABASE_URL=url)
    scan.rma_cli(env, "init-db")
    lite = sqlite3.connect(sqlite_path)
    try:
        tables = [name for (name,) in lite.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            " AND name != 'alembic_version' ORDER BY name")]
        with psycopg.connect(dsn) as pg:
            pg.execute("SET TIME ZONE 'UTC'")
            pg.execute("SET session_replication_role = replica")  # no FK triggers
            pg.execute(f"TRUNCATE {', '.join(tables)} CASCADE")
            for table in tables:
                columns = [row[1] for row in lite.execute(f"PRAGMA table_info({table})")]
                names = ", ".join(f'"{c}"' for c in columns)  # "references" is a keyword
                n = 0
                with pg.cursor().copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                    for row in lite.execute(f"SELECT {names} FROM {table}"):  # noqa: S608
                        copy.write_row(row)
                        n += 1
                if n >= 10_000:
                    print(f"  {table}: {n:,} rows ({time.perf_counter() - started:.1f} s)",
                          flush=True)
            pg.commit()
            fix_sequences(pg, tables)
        with psycopg.connect(dsn, autocommit=True) as pg:
            pg.execute("VACUUM ANALYZE")
    finally:
        lite.close()
    print(f"copied into PostgreSQL in {time.perf_counter() - started:.0f} s", flush=True)


def ensure_seeded(args: argparse.Namespace, engines: list[str]) -> tuple[Path, Meta]:
    base = args.workdir / "app"
    meta_file = args.workdir / "bench-load.json"
    if args.reuse and meta_file.exists() and common.db_path(base).exists():
        print(f"reusing the SQLite database in {base}", flush=True)
        meta = Meta.load(meta_file)
    else:
        mark = args.workdir / "bench-load-workdir"
        if args.workdir.exists():
            if not mark.exists() and any(args.workdir.iterdir()):
                sys.exit(f"{args.workdir} is not empty and not a bench/load.py work dir")
            shutil.rmtree(args.workdir)
        args.workdir.mkdir(parents=True)
        mark.write_text("made by bench/load.py; removed and made again without --reuse\n")
        meta = seed_sqlite(base, args)
        meta.save(meta_file)
    if "postgresql" in engines:
        present = 0
        if args.reuse and meta.pg_ready:
            try:
                db = Db("postgresql", args.pg_url)
                present = db.value("SELECT count(*) FROM units")
                db.close()
            except Exception as error:  # noqa: BLE001 - any failure: copy again
                print(f"PostgreSQL database not usable ({error}); copying again")
        if present and present >= meta.units:
            print(f"reusing the PostgreSQL database {args.pg_url}", flush=True)
        else:
            meta.pg_ready = False
            meta.save(meta_file)
            copy_to_postgres(common.db_path(base), args.pg_url, base)
            meta.pg_ready = True
            meta.save(meta_file)
    return base, meta


# -- the requests ---------------------------------------------------------------------------
@dataclass
class Spec:
    """One request of the schedule."""

    kind: str
    method: str
    path: str
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    expect: tuple[int, ...] = (200,)
    session: str | None = None  # a logged-in user whose cookie goes with it
    outcome: str | None = None  # the scan outcome the JSON answer must carry


def client_ip(rng: random.Random) -> str:
    return f"10.{rng.randrange(1, 255)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"


def need(rate: float, seconds: float, warmup: float, mix: dict[str, float]) -> dict[str, int]:
    """Upper bounds of requests per kind, to pre-allocate serials and items."""
    total = rate * (seconds + warmup)
    share = sum(mix.values())
    return {k: int(total * w / share * 1.15) + 30 for k, w in mix.items()}


@dataclass
class Pools:
    serials: list[str]
    free_units: dict[int, list[str]]  # customer id -> serials on no RMA (to submit)
    receivable: list[tuple[str, str]]  # (RMA number, serial)


def gather(engine: str, target: str, meta: Meta, wanted: dict[str, int],
           seed: int) -> Pools:
    """Serials for the warranty checks, free units per customer for the submissions, and
    receivable items for the scans (topped up when a previous run used them)."""
    rng = random.Random(seed)
    db = Db(engine, target)
    try:
        top = db.value("SELECT max(id) FROM units")
        ids = rng.sample(range(1, top + 1), min(top, 20_000))
        serials = []
        for i in range(0, len(ids), 1000):
            chunk = ids[i:i + 1000]
            serials += [s for (s,) in db.rows(
                f"SELECT serial FROM units WHERE id IN ({','.join('?' * len(chunk))})",
                chunk)]
        sql = ("SELECT r.number, i.serial FROM rma_items i JOIN rmas r ON r.id = i.rma_id "
               "WHERE i.status IN ('submitted', 'awaiting_unit') AND "
               "i.unit_received_at IS NULL")
        receivable = db.rows(sql)
        if len(receivable) < wanted["scan"]:
            print(f"  {engine}: {len(receivable):,} receivable items left, {wanted['scan']:,}"
                  " needed: adding more", flush=True)
            add_receivable(db, max(wanted["scan"] * 3, 5000), seed + len(receivable))
            receivable = db.rows(sql)
        free: dict[int, list[str]] = defaultdict(list)
        for serial, customer_id in db.rows(
                "SELECT serial, customer_id FROM units u WHERE customer_id IS NOT NULL AND "
                "status = 'in_service' AND NOT EXISTS (SELECT 1 FROM rma_items i "
                "WHERE i.unit_id = u.id)"):
            free[customer_id].append(serial)
    finally:
        db.close()
    rng.shuffle(receivable)
    for units in free.values():
        rng.shuffle(units)
    if sum(len(v) for v in free.values()) < wanted["submit"] * 3:
        sys.exit(f"{engine}: too few free units left to submit: build a new database")
    return Pools(serials, dict(free), [tuple(r) for r in receivable])


def schedule(n: int, mix: dict[str, float], pools: Pools | None, meta: Meta,
             seed: int, bare: bool) -> list[Spec]:
    """``n`` requests in a fixed random order of kinds, each with its payload. For the bare
    app every request is its one endpoint (the warranty URL)."""
    rng = random.Random(seed)
    kinds = ["warranty"] * n if bare else rng.choices(list(mix), list(mix.values()), k=n)
    ips = [client_ip(rng) for _ in range(5000)]
    customers = {c["id"]: c for c in meta.customers}
    specs = []
    for kind in kinds:
        if kind == "warranty":
            unknown = not bare and rng.random() < UNKNOWN_SHARE
            serial = (f"ZZX{rng.randrange(10**9):09d}" if unknown or pools is None
                      else rng.choice(pools.serials))
            specs.append(Spec(kind, "GET", f"/api/v1/warranty/{quote(serial)}",
                              headers={"X-Forwarded-For": rng.choice(ips)},
                              expect=(404,) if unknown else (200,)))
        elif kind == "submit":
            cid = rng.choice([c for c, units in pools.free_units.items() if len(units) >= 3])
            size = rng.choices(list(SUBMIT_SIZES), list(SUBMIT_SIZES.values()))[0]
            units = pools.free_units[cid]
            items = [{"serial": units.pop(), "fault_description": "按键失灵，无法生成动态口令",
                      "fault_category": "buttons"} for _ in range(size)]
            body = {"contact": {"name": "李娜", "phone": "+86 139 0000 0000",
                                "email": f"ops{cid}@customer.example"},
                    "ship_to": "北京市海淀区中关村南大街1号", "items": items}
            specs.append(Spec(kind, "POST", "/api/v1/rmas", json.dumps(body).encode(),
                              {"Authorization": f"Bearer {customers[cid]['token']}",
                               "Content-Type": "application/json",
                               "X-Forwarded-For": f"10.0.1.{cid}"}, expect=(201,)))
        elif kind == "scan":
            number, serial = pools.receivable.pop()
            specs.append(Spec(kind, "POST", f"/api/v1/rmas/{number}/receive",
                              json.dumps({"serial": serial}).encode(),
                              {"Authorization": f"Bearer {meta.scanner_token}",
                               "Content-Type": "application/json",
                               "X-Forwarded-For": "10.0.2.1"}, outcome="received"))
        elif kind == "dashboard":
            specs.append(Spec(kind, "GET", "/staff/analytics/", session=MANAGER))
        elif kind == "replacements":
            specs.append(Spec(kind, "GET", "/staff/wh/replacements", session=WH_LEAD))
        elif kind == "rma_list":
            user = rng.choice(meta.customers)["email"]
            page = "" if rng.random() < 0.8 else "?page=2"
            specs.append(Spec(kind, "GET", f"/portal/rmas{page}", session=user))
        else:
            raise ValueError(kind)
    return specs


# -- HTTP -----------------------------------------------------------------------------------
def _cookies(response: http.client.HTTPResponse, jar: dict[str, str]) -> None:
    for header in response.headers.get_all("Set-Cookie") or []:
        name, _, rest = header.partition("=")
        jar[name.strip()] = rest.split(";", 1)[0]


def log_in(port: int, email: str, ip: str) -> str:
    """Log ``email`` in through the form (CSRF token and all); its Cookie header."""
    jar: dict[str, str] = {}
    headers = {"X-Forwarded-For": ip, "X-Forwarded-Proto": "https"}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", "/login", headers=headers)
        response = conn.getresponse()
        page = response.read().decode()
        _cookies(response, jar)
        if response.status != 200:
            sys.exit(f"GET /login answered {response.status}")
        found = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page) or re.search(
            r'value="([^"]+)"[^>]*name="csrf_token"', page)
        fields = {"email": email, "password": PASSWORD}
        if found is not None:  # none when CSRF is off (the smoke test's app)
            fields["csrf_token"] = found.group(1)
        conn.close()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        form = urlencode(fields)
        conn.request("POST", "/login", form, {
            **headers, "Referer": f"https://127.0.0.1:{port}/login",  # CSRF over https
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": "; ".join(f"{k}={v}" for k, v in jar.items())})
        response = conn.getresponse()
        response.read()
        _cookies(response, jar)
        if response.status != 302:
            sys.exit(f"log-in of {email} answered {response.status}")
    finally:
        conn.close()
    return "; ".join(f"{k}={v}" for k, v in jar.items())


@dataclass
class Result:
    kind: str
    due: float
    sent: float
    done: float
    label: str  # "ok", or what went wrong: the status, an outcome, an exception


class Generator:
    """Open-loop: a dispatcher releases request i at ``t0 + i / rate`` into a queue; a pool
    of threads, each with its own keep-alive connection per instance, sends them, request i
    to ``ports[i % len(ports)]`` (nginx's round robin over the instances). Latency counts
    from the due time."""

    def __init__(self, ports: list[int], specs: list[Spec], rate: float, threads: int,
                 cookies: dict[str, str], label: str):
        self.ports = ports
        self.specs = specs
        self.rate = rate
        self.threads = threads
        self.cookies = cookies
        self.label = label
        self.slots: list[Result | None] = [None] * len(specs)  # by schedule index
        self.sent_at = [0.0] * len(specs)
        self.results: list[Result] = []  # after run(): one per spec, in schedule order
        self.finished: list[Result] = []  # in the order they came back (progress lines)
        self.todo: queue.Queue = queue.Queue()
        self.sent = 0

    def _worker(self) -> None:
        conns = [http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
                 for port in self.ports]
        while True:
            job = self.todo.get()
            if job is None:
                break
            i, due = job
            spec = self.specs[i]
            conn = conns[i % len(conns)]
            headers = {"X-Forwarded-Proto": "https", **spec.headers}
            if spec.session is not None:
                headers["Cookie"] = self.cookies[spec.session]
            sent = self.sent_at[i] = time.perf_counter()
            label = "ok"
            try:
                conn.request(spec.method, spec.path, spec.body, headers)
                response = conn.getresponse()
                body = response.read()
                if response.status not in spec.expect:
                    label = str(response.status)
                elif spec.outcome is not None:
                    outcome = json.loads(body).get("outcome")
                    if outcome != spec.outcome:
                        label = f"{response.status} {outcome}"
                if response.will_close:
                    conn.close()
            except (OSError, http.client.HTTPException, ValueError) as error:
                label = type(error).__name__
                conn.close()
            result = self.slots[i] = Result(spec.kind, due, sent, time.perf_counter(), label)
            self.finished.append(result)
        for conn in conns:
            conn.close()

    def run(self) -> tuple[float, float]:
        """Send every spec on time; returns (t0, the time the last one was due)."""
        pool = [threading.Thread(target=self._worker, daemon=True)
                for _ in range(self.threads)]
        for t in pool:
            t.start()
        stop = threading.Event()
        t0 = time.perf_counter() + 0.2
        monitor = threading.Thread(target=self._progress, args=(t0, stop), daemon=True)
        monitor.start()
        interval = 1.0 / self.rate
        for i in range(len(self.specs)):
            due = t0 + i * interval
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            self.todo.put((i, due))
            self.sent = i + 1
        last_due = t0 + (len(self.specs) - 1) * interval
        # Wait for the answers (at most the client timeout); what is still out then is
        # "unanswered", and the requests still queued are dropped.
        while len(self.finished) < len(self.specs) and \
                time.perf_counter() < last_due + TIMEOUT + 1:
            time.sleep(0.05)
        try:
            while True:
                self.todo.get_nowait()
        except queue.Empty:
            pass
        for _ in pool:
            self.todo.put(None)
        stop.set()
        monitor.join()
        # A request still out is "unanswered" (latency infinite), sent or not.
        self.results = [
            r if r is not None else Result(spec.kind, t0 + i * interval, self.sent_at[i],
                                           math.inf, "unanswered")
            for i, (spec, r) in enumerate(zip(self.specs, list(self.slots), strict=True))]
        return t0, last_due

    def _progress(self, t0: float, stop: threading.Event) -> None:
        seen = 0
        while not stop.wait(PROGRESS_EVERY):
            now = time.perf_counter()
            done = list(self.finished)
            window = sorted((r.done - r.due) * 1000 for r in done[seen:])
            errors = sum(r.label != "ok" for r in done)
            seen = len(done)
            p99 = window[min(len(window) - 1, int(len(window) * 0.99))] if window else 0
            p50 = window[len(window) // 2] if window else 0
            print(f"  [{self.label}] {now - t0:5.1f} s: due {self.sent:,} "
                  f"({self.sent / max(now - t0, 1e-9):.1f}/s), answered {len(done):,}, "
                  f"in flight {self.sent - len(done)}, errors {errors}; last "
                  f"{PROGRESS_EVERY:g} s p50 {p50:.1f} ms p99 {p99:.1f} ms", flush=True)


# -- CPU ------------------------------------------------------------------------------------
def proc_cpu(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


def pg_backends(url: str) -> list[int]:
    import psycopg
    from sqlalchemy.engine import make_url

    name = make_url(url).database
    with psycopg.connect(pg_dsn(url), autocommit=True) as pg:
        return [pid for (pid,) in pg.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid != "
            "pg_backend_pid()", (name,))]


class CpuMeter:
    """CPU of the gunicorn masters and workers (and of `rma tick`, the PostgreSQL backends
    serving the bench database and this client) between start() and stop()."""

    def __init__(self, servers: list[Server], pg_url: str | None, tick_pid: int | None):
        self.servers = servers
        self.pg_url = pg_url
        self.tick_pid = tick_pid

    def start(self) -> None:
        self.t = time.perf_counter()
        self.app0 = sum(server.cpu_seconds() for server in self.servers)
        self.tick0 = proc_cpu([self.tick_pid]) if self.tick_pid else 0.0
        self.pg0 = {p: proc_cpu([p]) for p in pg_backends(self.pg_url)} if self.pg_url else {}
        self.me0 = time.process_time()

    def stop(self) -> dict[str, float]:
        wall = time.perf_counter() - self.t
        spent = sum(server.cpu_seconds() for server in self.servers) - self.app0
        out = {"server": spent / wall * 100,
               "client": (time.process_time() - self.me0) / wall * 100}
        if self.tick_pid:
            out["rma tick"] = (proc_cpu([self.tick_pid]) - self.tick0) / wall * 100
        if self.pg_url:
            spent = sum(proc_cpu([p]) - self.pg0.get(p, 0) for p in pg_backends(self.pg_url))
            out["postgres"] = spent / wall * 100
        return out


# -- one target -----------------------------------------------------------------------------
@dataclass
class Outcome:
    name: str
    results: list[Result]
    seconds: float
    cpu: dict[str, float]  # % of one core during the measured run
    rate: float
    load: tuple[float, float]  # 1-minute load average before and after the measured run
    window: tuple[float, float]  # wall-clock start and end of the measured run
    server_ms: dict[str, list[float]] = field(default_factory=dict)  # kind -> access log


def kind_of(method: str, path: str) -> str | None:
    """The mix's kind of a request in the app's access log."""
    if path.startswith("/api/v1/warranty/"):
        return "warranty"
    if method == "POST" and path == "/api/v1/rmas":
        return "submit"
    if method == "POST" and path.endswith("/receive"):
        return "scan"
    return {"/staff/analytics/": "dashboard", "/portal/rmas": "rma_list",
            "/staff/wh/replacements": "replacements"}.get(path)


def server_times(paths: list[Path], window: tuple[float, float]) -> dict[str, list[float]]:
    """Per kind, the app's own time for each request of the measured run: the
    ``duration_ms`` of its JSON access line (from the WSGI call to the answer; the time a
    request waited for a free worker is not in it)."""
    times: dict[str, list[float]] = defaultdict(list)
    for path in paths:
        for line in path.read_text(errors="replace").splitlines():
            if '"rma.access"' not in line:
                continue
            try:
                entry = json.loads(line)
                at = datetime.fromisoformat(entry["ts"]).timestamp()
            except (ValueError, KeyError):
                continue
            kind = kind_of(entry.get("method", ""), entry.get("path", ""))
            if kind and window[0] <= at <= window[1]:
                times[kind].append(float(entry["duration_ms"]))
    return times


def drive(name: str, servers: list[Server], specs: list[Spec], warmup_n: int, args,
          pg_url: str | None, tick_pid: int | None) -> Outcome:
    ports = [server.port for server in servers]
    cookies = {}
    if any(s.session for s in specs):
        users = sorted({s.session for s in specs if s.session})
        for k, email in enumerate(users):
            # One session cookie works on every instance (one RMA_SECRET_KEY).
            cookies[email] = log_in(ports[k % len(ports)], email, f"10.0.3.{k + 1}")
        print(f"  logged in {len(users)} users: {', '.join(users)}", flush=True)
    if warmup_n:
        print(f"  warm-up: {warmup_n:,} requests in {args.warmup:g} s (not measured)",
              flush=True)
        warm = Generator(ports, specs[:warmup_n], args.rate, args.threads, cookies,
                         f"{name} warm-up")
        warm.run()
        bad = Counter(r.label for r in warm.results if r.label != "ok")
        if bad:
            print(f"  warm-up errors: {dict(bad)}", flush=True)
    measured = specs[warmup_n:]
    meter = CpuMeter(servers, pg_url, tick_pid)
    gen = Generator(ports, measured, args.rate, args.threads, cookies, name)
    load_before = os.getloadavg()[0]
    meter.start()
    wall_start = time.time()
    t0, last_due = gen.run()
    wall_end = time.time()
    cpu = meter.stop()
    load = (load_before, os.getloadavg()[0])
    results = gen.results
    seconds = last_due - t0 + 1 / args.rate
    return Outcome(name, results, seconds, cpu, args.rate, load, (wall_start, wall_end))


# -- report ---------------------------------------------------------------------------------
def pct(values: list[float], p: float) -> float:
    return values[min(len(values) - 1, int(len(values) * p))] if values else 0.0


def table(out: Outcome) -> tuple[float, int, float, float]:
    """Print one target's table; returns (p99 ms of all requests, errors, answers per
    second, server CPU ms per request)."""
    answered = sum(1 for r in out.results if r.label != "unanswered")
    cpu = ", ".join(f"{k} {v:.0f} %" for k, v in out.cpu.items())
    per_request = out.cpu["server"] / 100 * out.seconds / max(answered, 1) * 1000
    print(f"\n{out.name}: {len(out.results):,} requests due in {out.seconds:.1f} s; CPU (% of "
          f"one core, {os.cpu_count()} cores): {cpu}; server CPU {per_request:.2f} ms/request;"
          f" load average {out.load[0]:.2f} -> {out.load[1]:.2f}")
    head = (f"{'kind':<13} {'n':>6} {'ans/s':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
            f"{'max ms':>8} {'lag p99':>8} {'app p50':>8} {'app p99':>8}  errors")
    print(head)
    print("-" * len(head))
    by_kind: dict[str, list[Result]] = defaultdict(list)
    for r in out.results:
        by_kind[r.kind].append(r)
    summary = (0.0, 0, 0.0, per_request)
    for kind in [*[k for k in KINDS if k in by_kind], "all"]:
        rs = out.results if kind == "all" else by_kind[kind]
        if kind == "all":
            print("-" * len(head))
        lat = sorted((r.done - r.due) * 1000 for r in rs)
        lag = sorted((r.sent - r.due) * 1000 for r in rs if r.sent)
        bad = Counter(r.label for r in rs if r.label != "ok")
        errors = ", ".join(f"{k} x{v}" for k, v in sorted(bad.items())) or "0"
        rate = sum(1 for r in rs if r.label != "unanswered") / out.seconds
        app = sorted(out.server_ms.get(kind, []) if kind != "all" else
                     [t for ts in out.server_ms.values() for t in ts])
        app_cols = (f"{pct(app, .5):>8.1f} {pct(app, .99):>8.1f}" if app
                    else f"{'-':>8} {'-':>8}")
        print(f"{kind:<13} {len(rs):>6} {rate:>7.1f} {pct(lat, .5):>8.1f} {pct(lat, .95):>8.1f} "
              f"{pct(lat, .99):>8.1f} {lat[-1] if lat else 0:>8.1f} {pct(lag, .99):>8.1f} "
              f"{app_cols}  {errors}")
        if kind == "all":
            summary = (pct(lat, .99), sum(bad.values()), rate, per_request)
    return summary


# -- main -----------------------------------------------------------------------------------
def parse_mix(text: str) -> dict[str, float]:
    mix = dict(DEFAULT_MIX)
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, weight = part.partition("=")
        if name not in mix:
            sys.exit(f"--mix: unknown kind {name!r} (kinds: {', '.join(KINDS)})")
        mix[name] = float(weight)
    mix = {k: w for k, w in mix.items() if w > 0}
    if not mix:
        sys.exit("--mix: every weight is 0")
    return mix


def app_env(base: Path, url: str | None) -> dict[str, str]:
    """The instance environment with deploy/rma.env.example's production settings that
    apply on one host: JSON logs, one trusted proxy hop (nginx), secure cookies."""
    env = common.instance_env(base)
    if url:
        env["RMA_DATABASE_URL"] = url
    env.update(RMA_LOG_FORMAT="json", RMA_TRUSTED_PROXIES="1", RMA_SESSION_COOKIE_SECURE="true",
               RMA_MAIL_BACKEND="console", RMA_PUBLIC_URL="https://rma.example.com")
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default="both", choices=["sqlite", "postgresql", "both"])
    parser.add_argument("--rate", type=float, default=TARGET_RATE, help="requests/s")
    parser.add_argument("--seconds", type=float, default=60, help="measured, per target")
    parser.add_argument("--warmup", type=float, default=5,
                        help="unmeasured seconds at the same rate before each target")
    parser.add_argument("--mix", default="",
                        help="weights, e.g. warranty=60,submit=5 (kinds: "
                             f"{', '.join(KINDS)}; defaults "
                             f"{','.join(f'{k}={v}' for k, v in DEFAULT_MIX.items())})")
    parser.add_argument("--threads", type=int, default=128, help="client threads")
    parser.add_argument("--instances", type=int, default=2,
                        help="gunicorn instances, requests spread round robin (deploy/: "
                             "rma-web@8001 and rma-web@8002 behind nginx)")
    parser.add_argument("--workers", type=int, default=4,
                        help="sync workers per instance (deploy/rma-web@.service)")
    parser.add_argument("--units", type=int, default=100_000)
    parser.add_argument("--rmas", type=int, default=10_000)
    parser.add_argument("--receivable", type=int, default=6_000,
                        help="extra receivable items seeded for the scans")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/rma-bench-load"))
    parser.add_argument("--reuse", action="store_true",
                        help="reuse the databases already seeded (SQLite in --workdir, "
                             "PostgreSQL at --pg-url)")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL,
                        help="a throw-away database: its public schema is dropped")
    parser.add_argument("--no-bare", action="store_true", help="skip the bare Flask app")
    parser.add_argument("--no-tick", action="store_true",
                        help="do not run `rma tick --loop` beside the app (production does)")
    args = parser.parse_args()
    common.exit_cleanly_on_signals()
    mix = parse_mix(args.mix)
    engines = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    load_before = os.getloadavg()
    base, meta = ensure_seeded(args, engines)
    wanted = need(args.rate, args.seconds, args.warmup, mix)
    n_warm = int(args.rate * args.warmup)
    n = n_warm + int(args.rate * args.seconds)
    # gunicorn as deploy/rma-web@.service runs it: sync workers, the JSON logger.
    settings = argparse.Namespace(workers=args.workers, worker_class="sync", threads=1)
    outcomes: list[Outcome] = []
    logs = args.workdir / "logs"
    logs.mkdir(exist_ok=True)
    targets = ([] if args.no_bare else [("bare Flask", None)]) + [
        ({"sqlite": "app on SQLite", "postgresql": "app on PostgreSQL"}[e], e) for e in engines]
    print(f"\nmix: {', '.join(f'{k} {v:g}' for k, v in mix.items())}   rate {args.rate:g}/s   "
          f"{args.seconds:g} s measured after {args.warmup:g} s warm-up, per target", flush=True)
    for name, engine in targets:
        url = args.pg_url if engine == "postgresql" else None
        env = app_env(base, url)
        env.pop("RMA_WARRANTY_RATE_LIMIT", None)
        tag = engine or "bare"
        servers: list[Server] = []
        tick = None
        try:
            print(f"\n== {name}", flush=True)
            if engine is None:
                specs = schedule(n, mix, None, meta, args.seed, bare=True)
                servers = [Server("bare", "bare_app:create_app()", settings, env,
                                  logs / f"bare-{k + 1}.log",
                                  [*GUNICORN_EXTRA, "--pythonpath", str(Path(__file__).parent)])
                           for k in range(args.instances)]
            else:
                target = url or str(common.db_path(base))
                pools = gather(engine, target, meta, wanted, args.seed)
                specs = schedule(n, mix, pools, meta, args.seed, bare=False)
                servers = [Server(tag, "rma:create_app()", settings, env,
                                  logs / f"{tag}-{k + 1}.log", GUNICORN_EXTRA)
                           for k in range(args.instances)]
                if not args.no_tick:
                    with open(logs / f"{tag}-tick.log", "w") as out:
                        # One tick to completion first: after seeding it catches up (clock
                        # notifications, analytics snapshots), as a running tick already
                        # has in production; then the loop beside the app, as deployed.
                        began = time.perf_counter()
                        subprocess.run([common.RMA, "tick"], env=env, cwd=common.REPO,
                                       stdout=out, stderr=subprocess.STDOUT, timeout=600,
                                       check=False)
                        print(f"  rma tick (once, to catch up): "
                              f"{time.perf_counter() - began:.1f} s; then rma tick --loop "
                              "beside the app", flush=True)
                        tick = subprocess.Popen([common.RMA, "tick", "--loop"], env=env,
                                                cwd=common.REPO, stdout=out,
                                                stderr=subprocess.STDOUT,
                                                start_new_session=True)
            for server in servers:
                server.wait_ready(meta_serial(specs))
                print(f"  {server.command}", flush=True)
            outcomes.append(drive(name, servers, specs, n_warm, args, url,
                                  tick.pid if tick else None))
        finally:
            common.stop(tick)
            for server in servers:
                server.stop()
        if engine is not None and outcomes and outcomes[-1].name == name:
            outcomes[-1].server_ms = server_times([s.log for s in servers], outcomes[-1].window)
    report(args, outcomes, load_before)


def meta_serial(specs: list[Spec]) -> str:
    """A serial known to answer 200, for the readiness check."""
    for spec in specs:
        if spec.kind == "warranty" and spec.expect == (200,):
            return spec.path.rsplit("/", 1)[1]
    raise SystemExit("no warranty check in the schedule to test readiness with")


def report(args, outcomes: list[Outcome], load_before) -> None:
    load = os.getloadavg()
    print()
    print(f"load.py: rate {args.rate:g}/s, {args.seconds:g} s per target, {args.instances} "
          f"gunicorn instances x --workers {args.workers} (sync), {args.threads} client "
          "threads, cpus "
          f"{os.cpu_count()}, load average before {load_before[0]:.2f}, now "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print("latency = answer time minus the time the request was due (open loop); ans/s = "
          "answers per second; lag = send time minus due time (waiting for a free client "
          "thread); app = the app's own time from its access log (no wait for a worker); "
          f"errors = any status or outcome not expected, or no answer in {TIMEOUT:g} s")
    verdicts, needs = [], []
    for out in outcomes:
        p99, errors, rate, per_request = table(out)
        if out.name != "bare Flask":
            met = errors == 0 and p99 < TARGET_MS and rate >= TARGET_RATE * 0.98
            verdicts.append(f"{out.name}: {'MET' if met else 'MISSED'} (p99 {p99:.1f} ms, "
                            f"errors {errors}, {rate:.1f} answers/s)")
            needs.append(f"{out.name} {per_request * TARGET_RATE / 10:.0f} %")
    print()
    print(f"target (0 errors, p99 < {TARGET_MS:g} ms at {TARGET_RATE:g} req/s):  "
          + ";  ".join(verdicts))
    if needs:
        print(f"server CPU the mix needs at {TARGET_RATE:g} req/s (% of one core, from the "
              f"measured ms/request): {', '.join(needs)}; the machine has "
              f"{os.cpu_count()} cores, load average now {load[0]:.2f}")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
