"""Benchmark the failure analytics (issue 7): ``/staff/analytics`` and each of its
queries at the server, on 1,000,000 units and 100,000 RMAs.

    .venv/bin/python bench/reports.py [--units N] [--rmas N] [--rounds R] [--warmup W]
        [--workdir DIR] [--reuse] [--seed S]

Target (issue 7): the dashboard answers in under 300 ms at the server. The page is
requested through the Flask test client (logged in as a manager), so the time is the
server's own (routing, queries, Python, template) without a network.

The standard filters (every model, or one model, over the last twelve months) are
precomputed by ``rma tick`` (job "analytics-snapshot", rma/services/analytics_snapshots.py)
and the page reads them from one row: that is the figure the target applies to
("SNAPSHOT" rows). The same page computed live (a range one day shorter, so not a
standard filter: the same work) is timed too ("LIVE" rows), and so is the tick job
building every standard snapshot from nothing ("JOB" row: what each refresh costs the
tick, not a reader). Each query of the live computation is timed alone, and compared
with a reference measured in the same run on the same database: the least work any live
answer needs, one raw ``sqlite3`` pass over the returns of the range (items → RMAs →
units, GROUP BY model) plus one pass over the units index (GROUP BY model). Query plans
that read a whole big table are printed.

The database is built into ``--workdir`` (default /tmp/rma-bench-reports) with the
builder of bench/scan.py (units, RMAs, items, shipments, raw sqlite3 with progress),
then the models get unit costs and the confirmed items a mix of causes (D-4).
``--reuse`` uses the database already built there (about 90 s to build).

With ``--database-url postgresql+psycopg://...`` the same rows are copied (COPY) from
the SQLite database into that PostgreSQL database (its schema dropped and made again
by ``rma init-db``: use a throw-away database) and measured there too.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import sys
import time
from pathlib import Path

import common
import scan

TARGET_MS = 300.0
MANAGER = "manager@bench.example"
PASSWORD = "bench-reports-password"  # noqa: S105 (a throw-away instance)
UNIT_COSTS = {"TK-100": "35.00", "TK-200": "55.00", "LIC-PRO": "0.00", "SRV-A1": "12500.00"}
CAUSES = ("quality_defect", "quality_defect", "quality_defect", "quality_defect",
          "misuse_drop", "misuse_heat", "misuse_water", "misuse_physical", "misuse_other",
          "no_fault_found")
BIG_TABLES = ("units", "rmas", "rma_items", "shipments")


# -- building -----------------------------------------------------------------------------
def build(base: Path, units: int, rmas: int, seed: int) -> dict[str, str]:
    started = time.perf_counter()
    scan.build_database(base, units, rmas, seed)
    env = common.instance_env(base)
    scan.rma_cli(env, "create-user", MANAGER, "--role", "manager", "--language", "en",
                 stdin=PASSWORD + "\n")
    conn = common.connect(common.db_path(base))
    try:
        print("  unit costs and a mix of causes (D-4) ...", flush=True)
        conn.execute("BEGIN")
        for code, cost in UNIT_COSTS.items():
            conn.execute("UPDATE product_models SET unit_cost = ? WHERE code = ?", (cost, code))
        cases = " ".join(f"WHEN {k} THEN '{c}'" for k, c in enumerate(CAUSES))
        conn.execute(f"UPDATE rma_items SET cause = CASE id % {len(CAUSES)} {cases} END, "
                     "decision = CASE WHEN id % 10 < 4 THEN 'free' WHEN id % 10 = 9 "
                     "THEN 'return_unit' ELSE 'paid' END WHERE cause IS NOT NULL")
        conn.execute("COMMIT")
    finally:
        conn.close()
    (base / "bench-reports-ready").write_text("ok")
    print(f"built in {time.perf_counter() - started:.0f} s", flush=True)
    return env


COPIED = ("product_models", "customers", "users", "units", "rmas", "rma_items", "shipments")


def copy_to_postgres(sqlite_path: Path, url: str, base: Path) -> dict[str, str]:
    """A fresh schema at ``url`` (``rma init-db``) with the bench rows copied in."""
    import psycopg
    from sqlalchemy.engine import make_url

    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as pg:
        pg.execute("DROP SCHEMA public CASCADE")
        pg.execute("CREATE SCHEMA public")
    env = dict(common.instance_env(base), RMA_DATABASE_URL=url)
    scan.rma_cli(env, "init-db")
    lite = sqlite3.connect(sqlite_path)
    started = time.perf_counter()
    try:
        with psycopg.connect(dsn) as pg:
            pg.execute("SET TIME ZONE 'UTC'")
            pg.execute(f"TRUNCATE {', '.join(COPIED)} CASCADE")
            for table in COPIED:
                columns = [row[1] for row in lite.execute(f"PRAGMA table_info({table})")]
                names = ", ".join(columns)
                with pg.cursor().copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                    for n, row in enumerate(lite.execute(f"SELECT {names} FROM {table}"), 1):
                        copy.write_row(row)
                        if n % 250_000 == 0:
                            print(f"  copied {n:>9,} rows of {table} "
                                  f"({time.perf_counter() - started:.1f} s)", flush=True)
                pg.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                           f"(SELECT max(id) FROM {table}))")
            pg.commit()
        with psycopg.connect(dsn, autocommit=True) as pg:
            pg.execute("VACUUM ANALYZE")
    finally:
        lite.close()
    print(f"copied into PostgreSQL in {time.perf_counter() - started:.0f} s", flush=True)
    return env


# -- measuring ----------------------------------------------------------------------------
def pct(times: list[float], p: float) -> float:
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))] if ordered else 0.0


def timed(fn, rounds: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return times


REFERENCE_SQL = (
    "SELECT u.model_id, count(*) FROM rma_items i JOIN rmas r ON r.id = i.rma_id "
    "JOIN units u ON u.id = i.unit_id WHERE i.status != 'rejected' AND r.submitted_at >= ? "
    "AND r.submitted_at < ? GROUP BY u.model_id",
    "SELECT model_id, count(*) FROM units WHERE shipped_on IS NOT NULL GROUP BY model_id",
)


def reference_pg(url: str, start: str, end: str, rounds: int, warmup: int) -> list[float]:
    import psycopg
    from sqlalchemy.engine import make_url

    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        sql = REFERENCE_SQL[0].replace("?", "%s")

        def run():
            conn.execute(sql, (start, end)).fetchall()
            conn.execute(REFERENCE_SQL[1]).fetchall()
        return timed(run, rounds, warmup)


def reference(path: Path, start: str, end: str, rounds: int, warmup: int) -> list[float]:
    conn = common.connect(path)
    conn.execute("PRAGMA mmap_size = 268435456")  # as rma/db_setup.py
    try:
        def run():
            conn.execute(REFERENCE_SQL[0], (start, end)).fetchall()
            conn.execute(REFERENCE_SQL[1]).fetchall()
        return timed(run, rounds, warmup)
    finally:
        conn.close()


def measure(env: dict[str, str], rounds: int, warmup: int) -> tuple[list, list, str, str]:
    os.environ.update({k: v for k, v in env.items() if k.startswith("RMA_")})
    from datetime import timedelta

    from sqlalchemy import delete, event, select

    from rma import clock, create_app
    from rma.extensions import db
    from rma.models import AnalyticsSnapshot, ProductModel
    from rma.services import analytics
    from rma.services.analytics_snapshots import analytics_snapshot_job

    app = create_app()
    app.config.update(WTF_CSRF_ENABLED=False, RATELIMIT_ENABLED=False)
    statements: dict[str, tuple] = {}

    def seen(conn, cursor, statement, parameters, context, executemany):
        statements.setdefault(statement, tuple(parameters) if parameters else ())

    rows = []
    with app.app_context():
        event.listen(db.engine, "before_cursor_execute", seen)
        model_id = db.session.scalar(select(ProductModel.id).where(
            ProductModel.code == "TK-100"))
        client = app.test_client()
        answer = client.post("/login", data={"email": MANAGER, "password": PASSWORD})
        if answer.status_code != 302:
            sys.exit(f"log-in failed: {answer.status_code}")

        def page(query: str = ""):
            def get():
                response = client.get("/staff/analytics/" + query)
                if response.status_code != 200:
                    sys.exit(f"GET /staff/analytics/{query} answered {response.status_code}")
            return get

        def build_all():
            """One tick's job from nothing, in its own app context (as ``rma tick``)."""
            with app.app_context():
                db.session.execute(delete(AnalyticsSnapshot))
                db.session.commit()
                t0 = time.perf_counter()
                result = analytics_snapshot_job(clock.now())
                spent = (time.perf_counter() - t0) * 1000
                db.session.remove()
            if result.failed or not result.items:
                sys.exit(f"analytics-snapshot job: {result.summary}")
            return spent, result.items

        for _ in range(warmup):
            build_all()
        built = [build_all() for _ in range(rounds)]
        rows.append((f"JOB   rma tick analytics-snapshot: build all {built[0][1]} "
                     "snapshots", [ms for ms, _n in built]))
        filters = analytics.default_filters(clock.today())
        shorter = (filters.date_from + timedelta(days=1)).isoformat()
        rows.append(("SNAPSHOT  GET /staff/analytics/ (every model, 12 months)",
                     timed(page(), rounds, warmup)))
        rows.append(("SNAPSHOT  GET /staff/analytics/?model=<TK-100>",
                     timed(page(f"?model={model_id}"), rounds, warmup)))
        rows.append(("SNAPSHOT  GET ...?export=by-lot&format=csv",
                     timed(page("?export=by-lot&format=csv"), rounds, warmup)))
        rows.append(("LIVE  GET /staff/analytics/?date_from=<+1 day>",
                     timed(page(f"?date_from={shorter}"), rounds, warmup)))
        rows.append(("LIVE  GET ...?model=<TK-100>&date_from=<+1 day>",
                     timed(page(f"?model={model_id}&date_from={shorter}"), rounds, warmup)))
        with app.test_request_context():
            for name, fn in (
                    ("LIVE query: units shipped (2 queries)", analytics._shipped_counts),
                    ("LIVE query: returns per model/lot/ship date", analytics._return_counts),
                    ("LIVE query: returns per month/cause/decision", analytics._cause_counts),
                    ("LIVE query: returns per months of service", analytics._service_months),
                    ("LIVE query: replacement clocks (+ ClockRecord)",
                     analytics._clock_records)):
                rows.append((name, timed(lambda fn=fn: fn(filters), rounds, warmup)))
                db.session.remove()
            start, end = analytics._utc_bounds(filters)
        event.remove(db.engine, "before_cursor_execute", seen)
        db.session.remove()
        for engine in db.engines.values():
            engine.dispose()
    fmt = "%Y-%m-%d %H:%M:%S.%f"
    plans = [] if env["RMA_DATABASE_URL"].startswith("postgresql") else \
        query_plans(common.db_path(Path(env["RMA_INSTANCE_PATH"]).parent), statements)
    return rows, plans, start.strftime(fmt), end.strftime(fmt)


def query_plans(path: Path, statements: dict[str, tuple]) -> list[tuple[str, list[str]]]:
    """Every SELECT the page sent with its plan, marking a SCAN of a big table."""
    conn = sqlite3.connect(path)
    found = []
    try:
        for sql, params in statements.items():
            if not sql.lstrip().upper().startswith("SELECT") or "FROM units" not in sql \
                    and "FROM rma_items" not in sql:
                continue
            plan = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params)]
            found.append((sql, plan))
    finally:
        conn.close()
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=1_000_000)
    parser.add_argument("--rmas", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=10, help="measured requests per case")
    parser.add_argument("--warmup", type=int, default=2, help="unmeasured requests first")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/rma-bench-reports"))
    parser.add_argument("--reuse", action="store_true",
                        help="reuse the database already built in --workdir")
    parser.add_argument("--database-url", default="",
                        help="also copy the rows into this PostgreSQL database (dropped and "
                             "made again) and measure there")
    args = parser.parse_args()
    common.exit_cleanly_on_signals()
    base = args.workdir / "app"
    load_before = os.getloadavg()
    if args.reuse and (base / "bench-reports-ready").exists():
        print(f"reusing the database in {base}", flush=True)
        env = common.instance_env(base)
    else:
        if base.exists():
            sys.exit(f"{base} exists: pass --reuse, or remove it to build a new one")
        env = build(base, args.units, args.rmas, args.seed)
    path = common.db_path(base)
    conn = sqlite3.connect(path)
    counts = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # noqa: S608
              for t in ("units", "rmas", "rma_items")}
    conn.close()
    rows, plans, start, end = measure(env, args.rounds, args.warmup)
    ref = reference(path, start, end, args.rounds, args.warmup)
    report("SQLite", counts, args, rows, ref, plans, load_before)
    if args.database_url:
        pg_env = copy_to_postgres(path, args.database_url, base)
        load_before = os.getloadavg()
        rows, _plans, start, end = measure(pg_env, args.rounds, args.warmup)
        ref = reference_pg(args.database_url, start, end, args.rounds, args.warmup)
        report("PostgreSQL", counts, args, rows, ref, [], load_before)


def report(engine, counts, args, rows, ref, plans, load_before) -> None:
    load_after = os.getloadavg()

    print()
    print(f"{engine}   units: {counts['units']:,}   RMAs: {counts['rmas']:,}   items: "
          f"{counts['rma_items']:,}   rounds: {args.rounds}   cpus: {os.cpu_count()}   "
          f"load average before/after: {load_before[0]:.2f}/{load_after[0]:.2f}")
    print("SNAPSHOT = the page read from the precomputed snapshot (what readers get for "
          "the standard filters; the target applies to it)")
    print("LIVE     = computed on request (any other filter); JOB = one tick refreshing "
          "every standard snapshot")
    head = f"{'case':<60} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8}"
    print(head)
    print("-" * len(head))
    driver = "psycopg" if engine == "PostgreSQL" else "sqlite3"
    for name, times in [*rows, (f"REFERENCE raw {driver}: 1 pass returns + 1 pass units",
                                ref)]:
        print(f"{name:<60} {pct(times, 0.5):>8.1f} {pct(times, 0.99):>8.1f} "
              f"{statistics.mean(times):>8.1f}")
    print("-" * len(head))

    def worst(prefix: str) -> tuple[float, float]:
        chosen = [times for name, times in rows if name.startswith(prefix)]
        return (max(pct(t, 0.5) for t in chosen), max(pct(t, 0.99) for t in chosen))

    snap, live = worst("SNAPSHOT  GET"), worst("LIVE  GET")
    print(f"dashboard at the server, from the snapshot: p50 {snap[0]:.1f} ms, p99 "
          f"{snap[1]:.1f} ms   (target < {TARGET_MS:g} ms: "
          f"{'MET' if snap[0] < TARGET_MS else 'MISSED'})")
    print(f"dashboard at the server, computed live:     p50 {live[0]:.1f} ms, p99 "
          f"{live[1]:.1f} ms   (other filters; not the target's case)")
    print(f"raw {driver} reference of the live work:       p50 {pct(ref, 0.5):.1f} ms, p99 "
          f"{pct(ref, 0.99):.1f} ms")
    if not plans:
        return
    print()
    print("query plans of the page's statements on units and rma_items:")
    for sql, plan in plans:
        print("  " + " ".join(sql.split())[:160])
        for line in plan:
            mark = "  <- whole table" if line.startswith("SCAN ") and \
                line.split()[1] in BIG_TABLES and "COVERING INDEX" not in line else ""
            print(f"      {line}{mark}")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
