"""Benchmark ``rma import-units`` against raw ``sqlite3.executemany`` on the same rows.

    .venv/bin/python bench/import_units.py [--rows N] [--repeat R] [--keep]

Targets (issue): import rows/s >= 50 % of raw executemany rows/s; peak RSS < 300 MB.
See bench/README.md for how to read the table.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import multiprocessing
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import common

IMPORT_TIMEOUT = 1800  # seconds: an import still running then is killed


def pristine_copy(base: Path, keep: Path) -> None:
    """Keep a copy of a freshly set-up database file (no WAL left after the CLI exits)."""
    db = common.db_path(base)
    for extra in ("-wal", "-shm"):
        if Path(f"{db}{extra}").exists() and Path(f"{db}{extra}").stat().st_size:
            sys.exit(f"{db}{extra} is not empty after setup")
    shutil.copyfile(db, keep)


def restore(keep: Path, db: Path) -> None:
    for extra in ("", "-wal", "-shm"):
        Path(f"{db}{extra}").unlink(missing_ok=True)
    shutil.copyfile(keep, db)


def run_import(env: dict[str, str], csv_path: Path, log: Path) -> dict:
    """Run ``rma import-units`` as a child: wall and CPU seconds, peak RSS MB, stdout.

    ``os.wait4`` returns the resource usage of exactly that child, so the peak RSS is
    the import process's own (not the setup commands' nor this script's)."""
    out_path = log.with_suffix(".out")
    with open(out_path, "w") as out, open(log, "w") as err:
        started = time.perf_counter()
        proc = subprocess.Popen([common.RMA, "import-units", str(csv_path)], env=env,
                                cwd=common.REPO, stdout=out, stderr=err,
                                start_new_session=True)
        timer = threading.Timer(IMPORT_TIMEOUT, lambda: os.killpg(proc.pid, signal.SIGKILL))
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:  # Ctrl-C: the child has its own session, so stop it here
            common.stop(proc)
            raise
        finally:
            timer.cancel()
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
    stdout = out_path.read_text().strip()
    if proc.returncode != 0:
        sys.exit(f"import failed ({proc.returncode}):\n{stdout}\n{log.read_text()[-3000:]}")
    return {"wall": seconds, "cpu": usage.ru_utime + usage.ru_stime,
            "rss": usage.ru_maxrss / 1024, "stdout": stdout}  # ru_maxrss: KiB on Linux


def own_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def timed_raw(db: Path, csv_path: Path, prebuilt: bool) -> dict:
    """Run ``_timed_raw`` in a child process: the million pre-built tuples then never
    inflate this process. (Linux carries a process's peak RSS over fork and exec, so the
    import child's ru_maxrss can never be below this script's RSS when it is started.)"""
    context = multiprocessing.get_context("fork")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        return pool.submit(_timed_raw, db, csv_path, prebuilt).result()


def _timed_raw(db: Path, csv_path: Path, prebuilt: bool) -> dict:
    """One executemany + commit into ``db``: of pre-built tuples (building them is not
    timed) or straight from the CSV (reading and resolving timed too)."""
    conn = common.connect(db)
    try:
        models, customers = common.lookups(conn)
        rows = common.resolved(common.read_csv(csv_path), models, customers,
                               common.stamp_now())
        if prebuilt:
            rows = list(rows)
        os.sync()
        started, cpu = time.perf_counter(), time.process_time()
        common.insert_all(conn, rows)
        return {"wall": time.perf_counter() - started, "cpu": time.process_time() - cpu}
    finally:
        conn.close()


def count_units(db: Path) -> int:
    conn = common.connect(db)
    try:
        return conn.execute("SELECT count(*) FROM units").fetchone()[0]
    finally:
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3,
                        help="rounds of the three measurements, interleaved (default 3)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    common.exit_cleanly_on_signals()
    n = args.rows
    tmp = Path(tempfile.mkdtemp(prefix="rma-bench-import-"))
    load_before = os.getloadavg()
    try:
        print(f"work dir: {tmp}")
        print("setting up a fresh database for the import (rma init-db, add-model x"
              f"{len(common.MODELS)}, add-customer x{len(common.CUSTOMERS)}) ...", flush=True)
        env, contracts = common.fresh_instance(tmp / "import")
        pristine_copy(tmp / "import", tmp / "import-pristine.sqlite3")
        print("setting up another one, the same way, for the raw inserts ...", flush=True)
        common.fresh_instance(tmp / "raw")
        pristine_copy(tmp / "raw", tmp / "raw-pristine.sqlite3")
        csv_path = tmp / "units.csv"
        print(f"generating {n:,} rows into {csv_path.name} ...", flush=True)
        common.write_csv(csv_path, n, contracts)
        size_mb = csv_path.stat().st_size / 1e6

        runs: dict[str, list[dict]] = {"import": [], "raw": [], "raw_csv": []}
        import_db, raw_db = common.db_path(tmp / "import"), common.db_path(tmp / "raw")
        for r in range(1, args.repeat + 1):
            print(f"round {r}/{args.repeat}", flush=True)
            restore(tmp / "import-pristine.sqlite3", import_db)
            os.sync()
            own_rss = own_rss_mb()
            result = run_import(env, csv_path, tmp / "import.log")
            if result["rss"] <= own_rss * 1.05:
                print(f"  warning: peak RSS {result['rss']:.0f} MB may be this script's "
                      f"({own_rss:.0f} MB when the import started), not the import's")
            print(f"  rma import-units: {result['wall']:6.2f} s  ({result['stdout']})",
                  flush=True)
            if count_units(import_db) != n:
                sys.exit("the import did not write every row")
            runs["import"].append(result)
            for key, prebuilt, label in (("raw", True, "pre-built tuples"),
                                         ("raw_csv", False, "csv read + insert")):
                restore(tmp / "raw-pristine.sqlite3", raw_db)
                result = timed_raw(raw_db, csv_path, prebuilt)
                if count_units(raw_db) != n:
                    sys.exit("a raw insert did not write every row")
                print(f"  raw executemany, {label}: {result['wall']:6.2f} s", flush=True)
                runs[key].append(result)
        for db in (import_db, raw_db):
            restore(tmp / "import-pristine.sqlite3", db)  # free the disk space early
        report(n, size_mb, runs, load_before)
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def report(n: int, size_mb: float, runs: dict[str, list[dict]], load_before) -> None:
    def best(key: str, what: str = "wall") -> float:
        return min(r[what] for r in runs[key])

    def median(key: str) -> float:
        return statistics.median(r["wall"] for r in runs[key])

    rss = max(r["rss"] for r in runs["import"])
    load_after = os.getloadavg()
    rounds = len(runs["import"])
    print()
    print(f"rows: {n:,}   csv: {size_mb:.0f} MB   SQLite {common.sqlite3.sqlite_version}   "
          f"cpus: {os.cpu_count()}   rounds: {rounds}   load average before/after: "
          f"{load_before[0]:.2f}/{load_after[0]:.2f}")
    head = (f"{'measurement':<43} {'best s':>7} {'rows/s':>9} {'median s':>9} {'rows/s':>9} "
            f"{'cpu s':>6} {'peak RSS':>9}")
    print(head)
    print("-" * len(head))
    labels = {"import": "rma import-units FILE (subprocess, wall)",
              "raw": "raw executemany+commit, pre-built tuples",
              "raw_csv": "raw csv read + resolve + executemany+commit"}
    for key, label in labels.items():
        rss_text = f"{rss:6.0f} MB" if key == "import" else ""
        print(f"{label:<43} {best(key):>7.2f} {n / best(key):>9,.0f} {median(key):>9.2f} "
              f"{n / median(key):>9,.0f} {best(key, 'cpu'):>6.2f} {rss_text:>9}")
    print("-" * len(head))
    ratio = best("raw") / best("import")
    ratio_median = median("raw") / median("import")
    print(f"ratio import / raw executemany rows/s:  best {ratio:6.1%}   median "
          f"{ratio_median:6.1%}   (target >= 50 %: {'MET' if ratio >= 0.5 else 'MISSED'})")
    print(f"ratio import / raw csv+insert rows/s:   best {best('raw_csv') / best('import'):6.1%}"
          f"   median {median('raw_csv') / median('import'):6.1%}")
    cpu_ratio = best("raw", "cpu") / best("import", "cpu")
    print(f"ratio on CPU seconds (import / raw):    {cpu_ratio:6.1%}"
          "   (less sensitive to other load on the machine)")
    print(f"peak RSS of the import (max of {rounds}):     {rss:4.0f} MB   (target < 300 MB: "
          f"{'MET' if rss < 300 else 'MISSED'})")
    print("import wall time includes starting the CLI (Python, Flask app: about 1 s).")


if __name__ == "__main__":
    main()
