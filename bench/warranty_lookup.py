"""Benchmark ``GET /api/v1/warranty/<serial>`` under gunicorn against a bare Flask app.

    .venv/bin/python bench/warranty_lookup.py [--rows N] [--seconds S] [--rounds R]
        [--concurrency C] [--worker-class sync|gthread] [--threads T]
        [--client auto|wrk|python] [--app SPEC --pythonpath DIR] [--keep]

Target (issue): the app serves >= 60 % of the bare app's requests/s under the same
gunicorn settings. See bench/README.md for how to read the table.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import http.client
import json
import multiprocessing
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import common

GUNICORN = str(common.BIN / "gunicorn")
PATH = "/api/v1/warranty/"
SAMPLE = 20_000  # random serials the load generator picks from
CLK_TCK = os.sysconf("SC_CLK_TCK")


# -- database ---------------------------------------------------------------------------
def build_database(base: Path, n: int) -> tuple[dict[str, str], list[str]]:
    """A database made by ``rma init-db`` (+ models, customers) with ``n`` units inserted
    by raw sqlite3 (the fast path); returns the instance env and a sample of serials."""
    env, contracts = common.fresh_instance(base)
    conn = common.connect(common.db_path(base))
    try:
        models, customers = common.lookups(conn)
        started = time.perf_counter()
        common.insert_all(conn, common.resolved(common.generate_rows(n, contracts), models,
                                                customers, common.stamp_now()))
        print(f"  inserted {n:,} units in {time.perf_counter() - started:.1f} s", flush=True)
        ids = random.Random(7).sample(range(1, n + 1), min(n, SAMPLE))
        serials: list[str] = []
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            serials += [s for (s,) in conn.execute(
                f"SELECT serial FROM units WHERE id IN ({','.join('?' * len(chunk))})", chunk)]
    finally:
        conn.close()
    random.Random(8).shuffle(serials)
    return env, serials


# -- servers ----------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One gunicorn master (in its own process group) and its workers."""

    def __init__(self, name: str, app: str, args: argparse.Namespace, env: dict[str, str],
                 log: Path, extra: list[str]):
        self.name = name
        self.port = free_port()
        cmd = [GUNICORN, "--no-control-socket", "--workers", str(args.workers),
               "--worker-class", args.worker_class, "--threads", str(args.threads),
               "--bind", f"127.0.0.1:{self.port}", *extra, app]
        self.command = " ".join(cmd)
        self.log = log
        with open(log, "w") as out:
            self.proc = subprocess.Popen(cmd, env=env, cwd=common.REPO, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, serial: str, timeout: float = 60.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                sys.exit(f"{self.name}: gunicorn exited:\n{self.log.read_text()[-3000:]}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", PATH + serial)
                response = conn.getresponse()
                body = response.read()
                conn.close()
                if response.status == 200:
                    return json.loads(body)
                sys.exit(f"{self.name}: GET {PATH}{serial} answered {response.status}: {body!r}")
            except OSError:
                time.sleep(0.2)
        sys.exit(f"{self.name}: not ready after {timeout:.0f} s:\n{self.log.read_text()[-3000:]}")

    def workers(self) -> list[int]:
        pids = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    stat = Path(f"/proc/{entry}/stat").read_text()
                except OSError:
                    continue
                if int(stat.rsplit(")", 1)[1].split()[1]) == self.proc.pid:
                    pids.append(int(entry))
        return pids

    def cpu_seconds(self) -> float:
        """User + system CPU of the master and its workers so far."""
        total = 0
        for pid in [self.proc.pid, *self.workers()]:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
        return total / CLK_TCK

    def stop(self) -> None:
        common.stop(self.proc)


# -- load generators --------------------------------------------------------------------
WRK_SCRIPT = """
local serials = {%s}
local n = #serials
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("id", counter)
end
function init(args)
  math.randomseed(id * 7919)
end
request = function()
  return wrk.format("GET", "%s" .. serials[math.random(n)])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT %%d %%d %%d %%d %%d %%d %%d %%d %%d\\n", summary.requests, summary.duration,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def run_wrk(port: int, seconds: float, concurrency: int, script: Path) -> dict:
    cmd = ["wrk", "-t2", f"-c{concurrency}", f"-d{seconds:g}s", "--timeout", "10s",
           "-s", str(script), f"http://127.0.0.1:{port}"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60,
                          check=False)
    line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
    if done.returncode != 0 or line is None:
        sys.exit(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    requests, duration_us, *errors, p50, p99 = (int(x) for x in line.split()[1:])
    return {"requests": requests, "seconds": duration_us / 1e6, "errors": sum(errors),
            "p50_ms": p50 / 1000, "p99_ms": p99 / 1000}


def _client_process(port: int, serials: list[str], start_at: float, seconds: float,
                    threads: int, seed: int) -> tuple[list[float], int]:
    """One client process: ``threads`` threads, each one HTTP/1.1 connection at a time
    (reopened when the server closes it), until ``start_at + seconds``."""
    end_at = start_at + seconds
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()

    def loop(k: int) -> None:
        rng = random.Random(seed * 1000 + k)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        mine: list[float] = []
        failed = 0
        while time.time() < start_at:
            time.sleep(0.001)
        while True:
            t0 = time.perf_counter()
            try:
                conn.request("GET", PATH + rng.choice(serials))
                response = conn.getresponse()
                response.read()
                ok = response.status == 200
                if response.will_close:
                    conn.close()
            except (OSError, http.client.HTTPException):
                ok = False
                conn.close()
            if time.time() > end_at:
                break
            mine.append(time.perf_counter() - t0)
            failed += not ok
        conn.close()
        with lock:
            latencies.extend(mine)
            errors[0] += failed

    pool = [threading.Thread(target=loop, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return latencies, errors[0]


def run_python(port: int, seconds: float, concurrency: int, serials: list[str]) -> dict:
    processes = min(2, concurrency)
    start_at = time.time() + 0.5
    context = multiprocessing.get_context("fork")
    with concurrent.futures.ProcessPoolExecutor(processes, mp_context=context) as pool:
        futures = [pool.submit(_client_process, port, serials, start_at, seconds,
                               concurrency // processes + (k < concurrency % processes), k)
                   for k in range(processes)]
        results = [f.result(timeout=seconds + 60) for f in futures]
    latencies = sorted(x for lat, _ in results for x in lat)
    if not latencies:
        return {"requests": 0, "seconds": seconds, "errors": 0, "p50_ms": 0, "p99_ms": 0}
    return {"requests": len(latencies), "seconds": seconds,
            "errors": sum(e for _, e in results),
            "p50_ms": latencies[len(latencies) // 2] * 1000,
            "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000}


# -- main -------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=15, help="per measured run")
    parser.add_argument("--warmup", type=float, default=3, help="unmeasured, before each run")
    parser.add_argument("--rounds", type=int, default=2,
                        help="each round measures both apps, order alternating (default 2)")
    parser.add_argument("--concurrency", type=int, default=12)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--worker-class", default="sync", choices=["sync", "gthread"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--client", default="auto", choices=["auto", "wrk", "python"])
    parser.add_argument("--app", default="rma:create_app()",
                        help="gunicorn app spec of the app under test (to compare a variant)")
    parser.add_argument("--pythonpath", default="",
                        help="extra import path for --app (gunicorn --pythonpath)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    common.exit_cleanly_on_signals()

    client = args.client
    if client == "auto":
        client = "wrk" if shutil.which("wrk") else "python"
        if client == "python":
            print("wrk not found: using the Python load generator (threads in 2 processes, "
                  "http.client); it needs more CPU than wrk, so figures are lower")
    if client == "wrk" and not shutil.which("wrk"):
        sys.exit("wrk not found (apt-get install wrk), or use --client python")

    tmp = Path(tempfile.mkdtemp(prefix="rma-bench-lookup-"))
    servers: list[Server] = []
    load_before = os.getloadavg()
    try:
        print(f"work dir: {tmp}")
        print(f"building a database of {args.rows:,} units (rma init-db + raw inserts) ...",
              flush=True)
        env, serials = build_database(tmp / "app", args.rows)
        env["RMA_WARRANTY_RATE_LIMIT"] = "1000000000/minute"  # the limiter runs, never bites
        script = tmp / "lookup.lua"
        script.write_text(WRK_SCRIPT % (",".join(f'"{s}"' for s in serials), PATH))

        servers = [
            Server("bare", "bare_app:create_app()", args, env, tmp / "bare.log",
                   ["--pythonpath", str(Path(__file__).resolve().parent)]),
            Server("app", args.app, args, env, tmp / "app.log",
                   ["--pythonpath", args.pythonpath] if args.pythonpath else []),
        ]
        for server in servers:
            answer = server.wait_ready(serials[0])
            print(f"{server.name}: {server.command}\n  GET {PATH}{serials[0]} -> "
                  f"{json.dumps(answer)[:120]}", flush=True)

        def drive(server: Server, seconds: float) -> dict:
            if client == "wrk":
                return run_wrk(server.port, seconds, args.concurrency, script)
            return run_python(server.port, seconds, args.concurrency, serials)

        runs: dict[str, list[dict]] = {"bare": [], "app": []}
        for r in range(args.rounds):
            order = servers if r % 2 == 0 else servers[::-1]
            for server in order:
                if args.warmup > 0:
                    drive(server, args.warmup)
                cpu_before = server.cpu_seconds()
                result = drive(server, args.seconds)
                result["server_cpu"] = server.cpu_seconds() - cpu_before
                result["rps"] = result["requests"] / result["seconds"]
                runs[server.name].append(result)
                print(f"round {r + 1} {server.name:<4}: {result['rps']:8.1f} req/s  p50 "
                      f"{result['p50_ms']:6.2f} ms  p99 {result['p99_ms']:6.2f} ms  errors "
                      f"{result['errors']}", flush=True)
        report(args, client, runs, load_before)
    finally:
        for server in servers:
            server.stop()
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def report(args, client: str, runs: dict[str, list[dict]], load_before) -> None:
    load_after = os.getloadavg()
    print()
    print(f"units: {args.rows:,}   gunicorn: {args.workers} workers, {args.worker_class}"
          f"{f', {args.threads} threads' if args.worker_class == 'gthread' else ''}   "
          f"client: {client}, {args.concurrency} connections   {args.rounds} x "
          f"{args.seconds:g} s per app   cpus: {os.cpu_count()}   load average before/after: "
          f"{load_before[0]:.2f}/{load_after[0]:.2f}")
    head = (f"{'app':<6} {'req/s (mean)':>12} {'best':>8} {'p50 ms':>7} {'p99 ms':>7} "
            f"{'errors':>7} {'requests':>9} {'server CPU ms/req':>18}")
    print(head)
    print("-" * len(head))
    summary = {}
    for name in ("bare", "app"):
        rs = runs[name]
        requests = sum(r["requests"] for r in rs)
        summary[name] = {
            "mean": statistics.mean(r["rps"] for r in rs),
            "best": max(r["rps"] for r in rs),
            "cpu": 1000 * sum(r["server_cpu"] for r in rs) / max(requests, 1),
        }
        print(f"{name:<6} {summary[name]['mean']:>12.1f} {summary[name]['best']:>8.1f} "
              f"{statistics.median(r['p50_ms'] for r in rs):>7.2f} "
              f"{statistics.median(r['p99_ms'] for r in rs):>7.2f} "
              f"{sum(r['errors'] for r in rs):>7} {requests:>9} {summary[name]['cpu']:>18.2f}")
    print("-" * len(head))
    ratio = summary["app"]["mean"] / summary["bare"]["mean"]
    best_ratio = summary["app"]["best"] / summary["bare"]["best"]
    print(f"ratio app / bare requests/s:  mean {ratio:6.1%}   best {best_ratio:6.1%}   "
          f"(target >= 60 %: {'MET' if ratio >= 0.6 else 'MISSED'})")
    print(f"ratio of server CPU per request (bare / app): "
          f"{summary['bare']['cpu'] / max(summary['app']['cpu'], 1e-9):6.1%}")
    print("p50/p99: medians over the rounds; the load generator shares the 2 CPUs.")


if __name__ == "__main__":
    main()
