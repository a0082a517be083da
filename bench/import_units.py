"""Benchmark ``rma import-units`` against raw ``sqlite3.executemany`` on the same rows.

    .venv/bin/python bench/import_units.py [--rows N] [--keep]

Targets (issue): import rows/s >= 50 % of raw executemany rows/s; peak RSS < 300 MB.
See bench/README.md for how to read the table.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import common

TIMEOUT = 1800  # seconds: the whole import is killed after this


def run_import(env: dict[str, str], csv_path: Path, log: Path) -> tuple[float, float, str]:
    """Run ``rma import-units`` as a child; return (wall seconds, peak RSS MB, stdout).

    ``os.wait4`` returns the resource usage of exactly that child, so the peak RSS is
    the import process's own (not the setup commands' nor ours)."""
    out_path = log.with_suffix(".out")
    with open(out_path, "w") as out, open(log, "w") as err:
        started = time.perf_counter()
        proc = subprocess.Popen([common.RMA, "import-units", str(csv_path)], env=env,
                                cwd=common.REPO, stdout=out, stderr=err,
                                start_new_session=True)
        timer = threading.Timer(TIMEOUT, lambda: os.killpg(proc.pid, signal.SIGKILL))
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
    stdout = out_path.read_text()
    if proc.returncode != 0:
        sys.exit(f"import failed ({proc.returncode}):\n{stdout}\n{log.read_text()[-3000:]}")
    return seconds, usage.ru_maxrss / 1024, stdout.strip()  # ru_maxrss is in KiB on Linux


def count_units(base: Path) -> int:
    conn = common.connect(common.db_path(base))
    try:
        return conn.execute("SELECT count(*) FROM units").fetchone()[0]
    finally:
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    n = args.rows
    tmp = Path(tempfile.mkdtemp(prefix="rma-bench-import-"))
    try:
        print(f"work dir: {tmp}")
        print("setting up a fresh database for the import (rma init-db, add-model, "
              "add-customer) ...", flush=True)
        env, contracts = common.fresh_instance(tmp / "import")
        csv_path = tmp / "units.csv"
        print(f"generating {n:,} rows into {csv_path.name} ...", flush=True)
        common.write_csv(csv_path, n, contracts)
        size_mb = csv_path.stat().st_size / 1e6

        print("running rma import-units ...", flush=True)
        imp_s, imp_rss, imp_out = run_import(env, csv_path, tmp / "import.log")
        print(f"  {imp_out}")
        if count_units(tmp / "import") != n:
            sys.exit("the import did not write every row")

        print("raw sqlite3: pre-built tuples, one executemany + commit ...", flush=True)
        common.fresh_instance(tmp / "raw")
        conn = common.connect(common.db_path(tmp / "raw"))
        models, customers = common.lookups(conn)
        stamp = common.stamp_now()
        tuples = list(common.resolved(common.read_csv(csv_path), models, customers, stamp))
        started = time.perf_counter()
        common.insert_all(conn, tuples)
        raw_s = time.perf_counter() - started
        conn.close()
        del tuples
        if count_units(tmp / "raw") != n:
            sys.exit("the raw insert did not write every row")

        print("raw sqlite3: csv read + resolve + executemany + commit ...", flush=True)
        common.fresh_instance(tmp / "raw_csv")
        conn = common.connect(common.db_path(tmp / "raw_csv"))
        models, customers = common.lookups(conn)
        started = time.perf_counter()
        common.insert_all(conn, common.resolved(common.read_csv(csv_path), models, customers,
                                                common.stamp_now()))
        raw_csv_s = time.perf_counter() - started
        conn.close()
        if count_units(tmp / "raw_csv") != n:
            sys.exit("the raw csv insert did not write every row")

        own_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        imp_rate, raw_rate, raw_csv_rate = n / imp_s, n / raw_s, n / raw_csv_s
        ratio = imp_rate / raw_rate
        print()
        print(f"rows: {n:,}   csv: {size_mb:.0f} MB   SQLite {common.sqlite3.sqlite_version}   "
              f"cpus: {os.cpu_count()}")
        print(f"{'measurement':<44} {'rows':>10} {'seconds':>8} {'rows/s':>10} {'peak RSS':>9}")
        print("-" * 85)
        print(f"{'rma import-units FILE (subprocess, wall)':<44} {n:>10,} {imp_s:>8.2f} "
              f"{imp_rate:>10,.0f} {imp_rss:>6.0f} MB")
        print(f"{'raw executemany+commit (pre-built tuples)':<44} {n:>10,} {raw_s:>8.2f} "
              f"{raw_rate:>10,.0f} {'':>9}")
        print(f"{'raw csv read + executemany+commit':<44} {n:>10,} {raw_csv_s:>8.2f} "
              f"{raw_csv_rate:>10,.0f} {'':>9}")
        print("-" * 85)
        print(f"ratio import / raw executemany:  {ratio:6.1%}   (target >= 50 %: "
              f"{'MET' if ratio >= 0.5 else 'MISSED'})")
        print(f"ratio import / raw csv+insert:   {imp_rate / raw_csv_rate:6.1%}")
        print(f"peak RSS of the import:          {imp_rss:6.0f} MB (target < 300 MB: "
              f"{'MET' if imp_rss < 300 else 'MISSED'})")
        print(f"(this script's own peak RSS, holding the pre-built tuples: {own_rss:.0f} MB)")
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
