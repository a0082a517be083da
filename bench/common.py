"""Shared helpers for the benchmark scripts: realistic unit rows, fresh instances, raw
SQLite inserts and child-process handling. Not a test; nothing here is timed by itself."""

from __future__ import annotations

import csv
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
RMA = str(BIN / "rma")
HEADER = ["serial", "model", "customer_contract", "lot", "shipped_on", "activated_on"]

# (code, name, kind, life months, basis): a few product models, as a vendor has.
MODELS = [
    ("TK-100", "USB token", "hardware", 36, "ship"),
    ("TK-200", "Bluetooth token", "hardware", 24, "activation"),
    ("LIC-PRO", "Pro licence", "software", 12, "activation"),
    ("SRV-A1", "A1 appliance", "appliance", 60, "acceptance"),
]
SERIAL_PREFIX = {"TK-100": "TKA", "TK-200": "TKB", "LIC-PRO": "LPR", "SRV-A1": "SA1"}
# (name, accepted_on): a few customers under contract.
CUSTOMERS = [
    ("Shanghai Metro Bank", "2021-03-15"),
    ("Jiangsu Power Grid", "2022-06-01"),
    ("Hangzhou City Health", ""),
    ("Guangdong Logistics", "2023-01-10"),
    ("Beijing Telecom", "2020-11-20"),
    ("Chengdu University", ""),
]


def exit_cleanly_on_signals() -> None:
    """SIGTERM (and SIGINT even when started in the background) raise SystemExit, so the
    scripts' ``finally`` blocks stop their children and remove their temporary files."""
    def handler(signum, _frame):
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def instance_env(base: Path) -> dict[str, str]:
    """Environment for the ``rma`` CLI / gunicorn on an SQLite file under ``base``."""
    env = dict(os.environ)
    env["RMA_INSTANCE_PATH"] = str(base / "instance")
    env["RMA_DATABASE_URL"] = f"sqlite:///{base / 'rma.sqlite3'}"
    env["RMA_SECRET_KEY"] = "bench-secret-key"  # noqa: S105 (a throw-away instance)
    env.pop("RMA_FIXED_NOW", None)
    return env


def rma(env: dict[str, str], *args: str) -> str:
    """Run one ``rma`` command; return its stdout or exit with its stderr."""
    done = subprocess.run([RMA, *args], env=env, cwd=REPO, capture_output=True, text=True,
                          timeout=120, check=False)
    if done.returncode != 0:
        sys.exit(f"rma {' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
    return done.stdout


def fresh_instance(base: Path) -> tuple[dict[str, str], list[str]]:
    """``rma init-db`` plus the product models and customers; returns (env, contracts)."""
    base.mkdir(parents=True, exist_ok=True)
    env = instance_env(base)
    rma(env, "init-db")
    for code, name, kind, months, basis in MODELS:
        rma(env, "add-model", code, "--name", name, "--kind", kind,
            "--life-months", str(months), "--basis", basis)
    contracts = []
    for name, accepted_on in CUSTOMERS:
        args = ["add-customer", name, "--contract-months", "36"]
        if accepted_on:
            args += ["--accepted-on", accepted_on]
        contracts.append(rma(env, *args).strip().splitlines()[-1].strip())
    return env, contracts


def db_path(base: Path) -> Path:
    return base / "rma.sqlite3"


def generate_rows(n: int, contracts: list[str], seed: int = 1) -> Iterator[list[str]]:
    """``n`` valid CSV rows: lots of 200-2,000 units of one model shipped to one customer
    (about 5 % are spares in stock: no contract, no dates), ship dates spread over the
    last five years in lot order, activation 0-90 days after shipping for about 70 %.
    Serials are per-model factory sequences, so they are unique and mostly ascending."""
    rng = random.Random(seed)
    last_day = datetime.now(UTC).date() - timedelta(days=1)  # never "in the future"
    first_day = last_day - timedelta(days=5 * 365)
    span = (last_day - first_day).days
    codes = [m[0] for m in MODELS]
    next_seq = dict.fromkeys(codes, 100_000)
    made = 0
    lot_no = 0
    while made < n:
        lot_no += 1
        code = rng.choice(codes)
        size = min(rng.randint(200, 2000), n - made)
        stock = rng.random() < 0.05
        contract = "" if stock else rng.choice(contracts)
        ship = first_day + timedelta(days=span * made // n)
        ship_text = "" if stock else ship.isoformat()
        lot = f"L{ship.year}{ship.month:02d}-{lot_no:05d}"
        prefix = SERIAL_PREFIX[code]
        seq = next_seq[code]
        next_seq[code] = seq + size
        for k in range(size):
            activated = ""
            if not stock and rng.random() < 0.7:
                day = ship + timedelta(days=rng.randint(0, 90))
                activated = min(day, last_day).isoformat()
            yield [f"{prefix}{seq + k:09d}", code, contract, lot, ship_text, activated]
        made += size


def write_csv(path: Path, n: int, contracts: list[str]) -> None:
    """Write the generated rows to ``path``, printing progress every 10 %."""
    step = max(n // 10, 1)
    started = time.perf_counter()
    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(HEADER)
        for i, row in enumerate(generate_rows(n, contracts), start=1):
            writer.writerow(row)
            if i % step == 0 or i == n:
                print(f"  generated {i:>9,} / {n:,} rows ({time.perf_counter() - started:.1f} s)",
                      flush=True)


def connect(path: Path) -> sqlite3.Connection:
    """A plain sqlite3 connection with the pragmas the app sets (rma/db_setup.py)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA busy_timeout = 10000")
    if conn.execute("PRAGMA journal_mode").fetchone()[0] not in ("wal", "memory"):
        conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


def lookups(conn: sqlite3.Connection) -> tuple[dict[str, int], dict[str, int]]:
    models = dict(conn.execute("SELECT code, id FROM product_models"))
    customers = dict(conn.execute("SELECT contract_number, id FROM customers"))
    return models, customers


INSERT = ("INSERT INTO units (serial, model_id, customer_id, lot, shipped_on, activated_on, "
          "status, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")


def stamp_now() -> str:
    """An instant as SQLAlchemy stores a UTCDateTime in SQLite (naive UTC text)."""
    return str(datetime.now(UTC).replace(tzinfo=None))


def resolved(rows: Iterable[list[str]], models: dict[str, int],
             customers: dict[str, int], stamp: str) -> Iterator[tuple]:
    """CSV rows as the tuples the importer writes (ids resolved, status derived)."""
    for serial, code, contract, lot, shipped_on, activated_on in rows:
        customer_id = customers[contract] if contract else None
        yield (serial, models[code], customer_id, lot or None, shipped_on or None,
               activated_on or None, "in_service" if customer_id else "in_stock",
               stamp, stamp)


def read_csv(path: Path) -> Iterator[list[str]]:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        next(reader)
        yield from reader


def insert_all(conn: sqlite3.Connection, tuples: Iterable[tuple]) -> None:
    """One transaction, one executemany, commit."""
    conn.execute("BEGIN")
    conn.executemany(INSERT, tuples)
    conn.execute("COMMIT")


def stop(proc: subprocess.Popen | None, grace: float = 10.0) -> None:
    """Stop a child we started (and its process group, which it leads)."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()

