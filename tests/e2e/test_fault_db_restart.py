"""Issue 8, point 3, third fault: the database restarts under load. Requests fail with a
503 and a retry hint, then succeed again without restarting the app.

The test starts a PostgreSQL cluster of its own (``initdb`` in a temporary folder, a free
port; the shared server is never touched), migrates it with ``rma init-db``, and serves it
with gunicorn (2 workers) while ``rma tick --loop`` runs beside it. Three client threads
send a steady mix of requests: the public warranty API (the fast read path), a token API
call (the session path), a logged-in portal page and ``/readyz``. Then ``pg_ctl stop -m
fast`` drops every connection, the cluster stays down for a few seconds and comes back.

While it is down every request answers at once with 503 and ``Retry-After``: a problem
document under ``/api/`` and for ``/readyz`` ("database unreachable"), the HTML error page
otherwise; never a 500, a dropped connection or a hang. Once it is back every request
succeeds, served by the same gunicorn processes, and the tick loop, which logged its
failures and kept going, sends the e-mail of an RMA submitted after the restart.

The figures (outage length, requests and statuses, time to the first success) are
printed: ``pytest -s tests/e2e/test_fault_db_restart.py``.
"""

from __future__ import annotations

import glob
import http.cookiejar
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e import conftest
from tests.e2e.conftest import GUNICORN, RMA, Server, run_cli

PASSWORD = "restart-password-1"
CUSTOMER = "ops@restart-bank.example"
SERIALS = [f"TK3-RS{n:06d}" for n in range(1, 6)]
OUTAGE_SECONDS = 2.5
AFTER_SECONDS = 4.0
CLIENT_TIMEOUT = 5.0  # a request that takes longer counts as a hang
CLIENTS = 3
PACE = 0.05  # seconds per request per client: ≈ 60 requests/s in all
EN = {"Accept-Language": "en"}
PAGE_TEXT = "The service is briefly unavailable. Please try again in a few seconds."


def _postgres_bin() -> Path | None:
    """The PostgreSQL server programs: ``pg_config --bindir``, else the newest
    /usr/lib/postgresql/*/bin that has initdb and pg_ctl."""
    candidates = []
    if shutil.which("pg_config"):
        done = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True,
                              check=False)
        if done.returncode == 0:
            candidates.append(Path(done.stdout.strip()))
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                                           key=lambda p: int(p.split("/")[-2]), reverse=True)
                   if p.split("/")[-2].isdigit()]
    for path in candidates:
        if (path / "initdb").is_file() and (path / "pg_ctl").is_file():
            return path
    return None


def _skip_reason() -> str | None:
    if _postgres_bin() is None:
        return "PostgreSQL server programs (initdb, pg_ctl) are not installed"
    if os.geteuid() == 0:
        import pwd

        if not shutil.which("runuser"):
            return "running as root needs runuser to start PostgreSQL as postgres"
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root needs a postgres user to own the test cluster"
    return None


pytestmark = pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason()))


# -- a private PostgreSQL cluster ------------------------------------------------------------
class Cluster:
    """``initdb`` in a short temporary folder (the socket path must stay short), run as
    ``postgres`` when the test runs as root."""

    def __init__(self) -> None:
        self.bin = _postgres_bin()
        self.root = Path(tempfile.mkdtemp(prefix="rma-pg-"))
        self.data = self.root / "data"
        self.port = conftest._free_port()
        self.log = self.root / "server.log"
        if os.geteuid() == 0:
            import pwd

            owner = pwd.getpwnam("postgres")
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
        self.root.chmod(0o700)

    def _run(self, *args: str, timeout: float = 60) -> None:
        command = [str(self.bin / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              check=False, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            server_log = self.log.read_text(errors="replace") if self.log.exists() else ""
            pytest.fail(f"{' '.join(args[:2])} failed ({done.returncode}):\n{done.stdout}"
                        f"{done.stderr}\n{server_log}", pytrace=False)

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "-N",
                  "-E", "UTF8", "--locale=C")

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c full_page_writes=off")
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.log), "-w",
                  "start")

    def stop(self) -> None:
        """A fast shutdown: every session is terminated, as in a restart."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def is_running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def destroy(self) -> None:
        if self.is_running():
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def dsn(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"


SETUP = """
import datetime as dt, json, sys
from rma import create_app
from rma.extensions import db
from rma.models import Unit
from rma.services.audit import Actor
from rma.services.catalog import create_customer, create_product_model
from rma.services.users import create_token, create_user

spec = json.loads(sys.argv[1])
app = create_app()
with app.app_context():
    actor = Actor.cli("restart test")
    model = create_product_model(actor, "TK3", "TK3 token", "hardware", 36, "ship", "80.00")
    customer = create_customer(actor, "Restart Bank", "2025-03-01", 12, "")
    user = create_user(actor, spec["email"], "customer", spec["password"], customer, "en")
    for serial in spec["serials"]:
        db.session.add(Unit(serial=serial, model_id=model.id, customer_id=customer.id,
                            shipped_on=dt.date(2026, 1, 10)))
    db.session.commit()
    print(create_token(actor, user, "restart test"))
"""


# -- the load -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Outcome:
    kind: str
    started: float
    ended: float
    status: int  # 0: no HTTP answer (refused, reset, timed out)
    content_type: str
    retry_after: str
    body: str


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


class Load:
    """``CLIENTS`` threads, each sending the request kinds in turn at ``PACE``."""

    def __init__(self, base: str, token: str, cookies: http.cookiejar.CookieJar) -> None:
        self.base = base
        self.opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPCookieProcessor(cookies),
            _NoRedirect())
        self.requests = {
            "warranty-api": (f"/api/v1/warranty/{SERIALS[0]}", {}),
            "token-api": ("/api/v1/rmas", {"Authorization": f"Bearer {token}"}),
            "portal-page": ("/portal/", {}),
            "readyz": ("/readyz", {}),
        }
        self.outcomes: list[Outcome] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, args=(n,), daemon=True)
                         for n in range(CLIENTS)]

    def _one(self, kind: str) -> Outcome:
        path, headers = self.requests[kind]
        request = urllib.request.Request(  # noqa: S310 - the test server's http URL
            self.base + path, headers={**EN, **headers})
        started = time.monotonic()
        try:
            with self.opener.open(request, timeout=CLIENT_TIMEOUT) as response:
                status, head, body = response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            status, head, body = error.code, error.headers, error.read()
        except (urllib.error.URLError, OSError) as error:
            return Outcome(kind, started, time.monotonic(), 0, "", "", repr(error))
        return Outcome(kind, started, time.monotonic(), status,
                       head.get("Content-Type", ""), head.get("Retry-After", ""),
                       body.decode("utf-8", "replace"))

    def _client(self, number: int) -> None:
        kinds = list(self.requests)
        turn = number
        while not self._stop.is_set():
            outcome = self._one(kinds[turn % len(kinds)])
            turn += 1
            with self._lock:
                self.outcomes.append(outcome)
            self._stop.wait(max(0.0, PACE - (outcome.ended - outcome.started)))

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> list[Outcome]:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=CLIENT_TIMEOUT + 5)
        with self._lock:
            return sorted(self.outcomes, key=lambda o: o.started)


# -- processes ------------------------------------------------------------------------------
def _children(pid: int) -> set[int]:
    found = set()
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            fields = Path(stat).read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.split("/")[2]))
    return found


def _spawn(command: list[str], log_path: Path, env: dict[str, str], stack: ExitStack):
    log = open(log_path, "wb")  # noqa: SIM115 - closed by the stack
    stack.callback(log.close)
    proc = subprocess.Popen(command, env=env, cwd=log_path.parent, stdin=subprocess.DEVNULL,
                            stdout=log, stderr=subprocess.STDOUT)
    stack.callback(conftest._stop, proc)
    return proc


def _wait_for(what: str, ready, proc: subprocess.Popen, log_path: Path,
              timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"{what} did not start:\n{log_path.read_text(errors='replace')}",
                        pytrace=False)
        time.sleep(0.1)


def _log_in(base: str) -> http.cookiejar.CookieJar:
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                         urllib.request.HTTPCookieProcessor(jar))
    login = urllib.request.Request(base + "/login", headers=EN)  # noqa: S310 - test server
    with opener.open(login, timeout=15) as page:
        csrf = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.read().decode())[1]
    form = urllib.parse.urlencode({"csrf_token": csrf, "email": CUSTOMER,
                                   "password": PASSWORD}).encode()
    login = urllib.request.Request(base + "/login", data=form, headers=EN)  # noqa: S310
    with opener.open(login, timeout=15) as response:
        assert urllib.parse.urlsplit(response.url).path == "/portal/"
        assert CUSTOMER in response.read().decode()
    return jar


def _submit_rma(base: str, token: str) -> str:
    body = {"contact": {"name": "Li Lei", "phone": "+86 10 1234 5678", "email": CUSTOMER},
            "ship_to": "北京市西城区金融大街 1 号",
            "items": [{"serial": SERIALS[1], "fault_description": "blank display",
                       "fault_category": "no_display"}]}
    request = urllib.request.Request(  # noqa: S310 - the test server's http URL
        base + "/api/v1/rmas", data=json.dumps(body).encode(), method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json", **EN})
    with conftest._DIRECT.open(request, timeout=15) as response:
        assert response.status == 201
        return json.load(response)["number"]


def _outbox(dsn: str) -> list[tuple[str, bool]]:
    import psycopg

    with psycopg.connect(dsn, connect_timeout=5) as conn:
        return [(template, sent) for template, sent in conn.execute(
            "SELECT template, sent_at IS NOT NULL FROM outbox_messages ORDER BY id")]


# -- the test -------------------------------------------------------------------------------
def _check_503(outcome: Outcome) -> None:
    what = f"{outcome.kind} answered {outcome.status} {outcome.content_type}: {outcome.body[:300]}"
    assert outcome.retry_after.isdigit() and int(outcome.retry_after) > 0, what
    if outcome.kind == "portal-page":
        assert outcome.content_type.startswith("text/html"), what
        assert "<h1>503</h1>" in outcome.body and PAGE_TEXT in outcome.body, what
        return
    assert outcome.content_type == "application/problem+json", what
    problem = json.loads(outcome.body)
    assert problem["status"] == 503 and problem["title"] == "Service Unavailable", what
    if outcome.kind == "readyz":
        assert problem["detail"] == "database unreachable", what
        assert problem["database"] == "unreachable", what


def test_database_restart_under_load_gives_503_then_recovers_in_the_same_processes(
        tmp_path: Path):
    with ExitStack() as stack:
        cluster = Cluster()
        stack.callback(cluster.destroy)
        cluster.init()
        cluster.start()
        import psycopg

        with psycopg.connect(cluster.dsn("postgres"), autocommit=True) as conn:
            conn.execute("CREATE DATABASE rma")
        env = conftest._base_env(tmp_path, cluster.url("rma"), 0)
        env.update({"RMA_MAIL_BACKEND": "console", "RMA_RATELIMIT_ENABLED": "false"})
        probe = Server("", env, tmp_path, "postgresql")
        migrated = run_cli(probe, "init-db")
        assert migrated.returncode == 0, migrated.stderr
        # gunicorn, the tick loop and the seeding start together (each takes seconds).
        port = conftest._free_port()
        base = f"http://127.0.0.1:{port}"
        gunicorn = _spawn([GUNICORN, "--no-control-socket", "--workers", "2", "--bind",
                           f"127.0.0.1:{port}", "rma:create_app()"],
                          tmp_path / "gunicorn.log", env, stack)
        tick = _spawn([RMA, "tick", "--loop", "--interval", "0.5"], tmp_path / "tick.log",
                      env, stack)
        seeded = subprocess.run(
            [sys.executable, "-c", SETUP,
             json.dumps({"email": CUSTOMER, "password": PASSWORD, "serials": SERIALS})],
            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)
        assert seeded.returncode == 0, seeded.stderr
        token = seeded.stdout.strip().splitlines()[-1]
        _wait_for("gunicorn", lambda: conftest._is_up(base)
                  and len(_children(gunicorn.pid)) == 2, gunicorn, tmp_path / "gunicorn.log")
        workers = _children(gunicorn.pid)
        _wait_for("rma tick --loop", lambda: "\ntick 2" in (tmp_path / "tick.log").read_text(),
                  tick, tmp_path / "tick.log")
        cookies = _log_in(base)

        load = Load(base, token, cookies)
        load.start()
        stack.callback(load.stop)
        time.sleep(1.5)
        stopping = time.monotonic()
        cluster.stop()
        down = time.monotonic()
        time.sleep(OUTAGE_SECONDS)
        starting = time.monotonic()
        cluster.start()
        up = time.monotonic()
        time.sleep(AFTER_SECONDS)
        outcomes = load.stop()

        # -- what the clients saw ----------------------------------------------------------
        statuses = Counter((o.kind, o.status) for o in outcomes)
        before = [o for o in outcomes if o.ended < stopping]
        during = [o for o in outcomes if o.started >= down and o.ended <= starting]
        after = [o for o in outcomes if o.started >= up]
        assert before and all(o.status == 200 for o in before), Counter(
            (o.kind, o.status) for o in before)
        for outcome in outcomes:  # never a 500, a dropped connection or a hang
            assert outcome.status in (200, 503), (outcome.kind, outcome.status, outcome.body)
            assert outcome.ended - outcome.started < CLIENT_TIMEOUT
            if outcome.status == 503:
                _check_503(outcome)
        # While the database is down every kind of request is answered, with a 503.
        assert {o.kind for o in during} == set(load.requests)
        assert all(o.status == 503 for o in during), Counter((o.kind, o.status) for o in during)
        # Once it is back (pg_ctl start -w returned), every request succeeds.
        assert {o.kind for o in after} == set(load.requests)
        failed_after = [(o.kind, o.status, round(o.started - up, 2)) for o in after
                        if o.status != 200]
        assert not failed_after, failed_after
        first_success = min(o.ended for o in outcomes if o.started >= down and o.status == 200)

        # -- the app was not restarted -----------------------------------------------------
        assert gunicorn.poll() is None
        assert _children(gunicorn.pid) == workers
        server_log = (tmp_path / "gunicorn.log").read_text(errors="replace")
        assert "unhandled error" not in server_log, server_log[-3000:]
        assert "Booting worker" not in server_log.split("database unavailable", 1)[-1]
        assert "database unavailable" in server_log

        # -- the tick loop survived and works again ----------------------------------------
        number = _submit_rma(base, token)
        deadline = time.monotonic() + 15
        while _outbox(cluster.dsn("rma")) != [("rma_submitted", True)]:
            assert tick.poll() is None, "the tick loop died"
            assert time.monotonic() < deadline, _outbox(cluster.dsn("rma"))
            time.sleep(0.2)
        assert tick.poll() is None
        conftest._stop(tick)
        ticks = (tmp_path / "tick.log").read_text(errors="replace")
        assert tick.returncode == 0, ticks[-3000:]
        assert "FAILED (database unavailable)" in ticks  # one line per job, no traceback
        assert "Traceback" not in ticks, ticks[-3000:]
        assert "mail: sent 1" in ticks.rsplit("FAILED", 1)[1]
        assert number in ticks  # the console backend printed the e-mail

        stop_start = [o for o in outcomes if stopping <= o.started < up and o not in during]
        slowest = max(o.ended - o.started for o in outcomes if o.status == 503)
        print(f"\nDB restart figures: outage {starting - stopping:.2f} s (pg_ctl stop "
              f"{down - stopping:.2f} s, down {starting - down:.2f} s, pg_ctl start "
              f"{up - starting:.2f} s); {len(outcomes)} requests; while down {len(during)}: "
              f"{dict(Counter(o.status for o in during))}; while stopping/starting "
              f"{len(stop_start)}: {dict(Counter(o.status for o in stop_start))}; first "
              f"success {first_success - up:+.3f} s after pg_ctl start returned; after "
              f"{len(after)}: {dict(Counter(o.status for o in after))}; slowest 503 "
              f"{slowest:.3f} s; per kind and status: {dict(sorted(statuses.items()))}")
