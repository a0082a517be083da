"""Issue 8: scale-out. Two gunicorn instances and two ``rma tick --loop`` processes share
one PostgreSQL database and one SMTP server, as two hosts would (``deploy/``). Incidents
reported through the API on both instances, hours back, climb the escalation ladder
(R-I4): every rung fires once and every e-mail arrives exactly once, though both loops
race for the same work every second. A session made on one instance works on the other
(one ``RMA_SECRET_KEY``), and both instances are ready (``/readyz``).

PostgreSQL only (``RMA_TEST_DATABASE_URL``): SQLite is one file on one host.
"""

from __future__ import annotations

import http.cookiejar
import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.e2e import conftest
from tests.e2e.conftest import RMA, Server

pytestmark = pytest.mark.skipif(not conftest.PG_URL,
                                reason="needs PostgreSQL (RMA_TEST_DATABASE_URL)")

PASSWORD = "scale-out-password"
DESK = "desk@scale.example"  # support: reports by API, logs in on the web
HOLDERS = {  # escalation role: (holder, deputy or None); managers
    "account_manager": ("am@scale.example", "am-deputy@scale.example"),
    "technical_lead": ("lead@scale.example", None),
    "service_director": ("director@scale.example", None),
}
CUSTOMER_USER = "ops@scale-bank.example"
# The server's clock is pinned to conftest.FIXED_NOW (2026-11-25 04:00 UTC).
URGENT_AT = "2026-11-24T23:00:00+00:00"  # 5 h back: rungs 1 h, 2 h, 4 h (R-I4)
SERIOUS_AT = "2026-11-24T15:00:00+00:00"  # 13 h back: rungs 2 h, 4 h, 12 h
RUNG_HOURS = {"urgent": {1, 2, 4}, "serious": {2, 4, 12}}
INCIDENTS_PER_PRIORITY = 4
SETTLE_TIMEOUT = 40.0
MESSAGE_ID = re.compile(r"<outbox-(\d+)\.")

SETUP = """
import json, sys
from rma import create_app
from rma.extensions import db
from rma.models import User
from rma.services.audit import Actor
from rma.services.catalog import create_customer
from rma.services.escalation_setup import set_holder
from rma.services.users import create_token, create_user

spec = json.loads(sys.argv[1])
app = create_app()
with app.app_context():
    actor = Actor.cli("scale-out test")
    customer = create_customer(actor, "Scale-out Bank", "2025-03-01", 12, "")
    create_user(actor, spec["customer_user"], "customer", spec["password"], customer, "en")
    ids = {}
    for email, role in spec["staff"]:
        ids[email] = create_user(actor, email, role, spec["password"], None, "en").id
    for role, (holder, deputy) in spec["holders"].items():
        set_holder(actor, role, ids[holder], ids[deputy] if deputy else None)
    desk = db.session.get(User, ids[spec["staff"][0][0]])
    print(customer.contract_number)
    print(create_token(actor, desk, "scale-out"))
"""


def _setup(probe: Server) -> tuple[str, str]:
    """The data, set up in one process: (the customer's contract, the desk's API token)."""
    staff = [(DESK, "support")] + [(email, "manager") for pair in HOLDERS.values()
                                   for email in pair if email]
    spec = {"customer_user": CUSTOMER_USER, "password": PASSWORD, "staff": staff,
            "holders": HOLDERS}
    done = subprocess.run([sys.executable, "-c", SETUP, json.dumps(spec)], env=probe.env,
                          cwd=probe.workdir, capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr
    contract, token = done.stdout.strip().splitlines()[-2:]
    return contract, token


def _tick_loop(probe: Server, name: str, stack: ExitStack) -> subprocess.Popen:
    log = open(probe.workdir / f"tick-{name}.log", "wb")  # noqa: SIM115 - closed by the stack
    stack.callback(log.close)
    proc = subprocess.Popen([RMA, "tick", "--loop", "--interval", "1"], env=probe.env,
                            cwd=probe.workdir, stdin=subprocess.DEVNULL, stdout=log,
                            stderr=subprocess.STDOUT)
    stack.callback(conftest._stop, proc)
    return proc


def _start_instance(workdir: Path, env: dict[str, str]):
    """Start one gunicorn (conftest's harness); (its URL, its context manager to exit)."""
    instance = conftest._gunicorn(workdir, env)
    return instance.__enter__(), instance


def _post_json(url: str, token: str, body: dict) -> dict:
    request = urllib.request.Request(  # noqa: S310 - the test server's http URL
        url, data=json.dumps(body).encode(), method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with conftest._DIRECT.open(request, timeout=15) as response:
        assert response.status == 201
        return json.load(response)


def _get(opener, url: str) -> tuple[int, dict, str]:
    try:
        with opener.open(url, timeout=15) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def _database_state(database_url: str) -> tuple[list, list]:
    """(outbox rows (id, template, to, sent?), escalation alerts (incident number, hours))."""
    import psycopg
    from sqlalchemy.engine import make_url

    dsn = make_url(database_url).set(drivername="postgresql").render_as_string(
        hide_password=False)
    with psycopg.connect(dsn) as conn:
        outbox = conn.execute("SELECT id, template, to_address, sent_at IS NOT NULL "
                              "FROM outbox_messages ORDER BY id").fetchall()
        alerts = conn.execute(
            "SELECT i.number, a.hours FROM incident_alerts a "
            "JOIN incidents i ON i.id = a.incident_id WHERE a.kind = 'escalation'").fetchall()
    return outbox, alerts


def test_two_instances_and_two_tick_loops_send_every_email_and_escalation_once(
        tmp_path: Path, mailbox, migrated):
    mail_mark = len(mailbox.messages)
    with ExitStack() as stack:
        # A database of its own, migrated by ``rma init-db`` (a copy of the session's).
        database_url = stack.enter_context(migrated.database("postgresql", tmp_path))
        env = conftest._base_env(tmp_path, database_url, mailbox.port)
        probe = Server("", env, tmp_path, "postgresql")
        # The instances start while the data is set up (each takes seconds on 2 CPUs).
        with ThreadPoolExecutor(max_workers=2) as pool:
            starting = [pool.submit(_start_instance, tmp_path, env) for _ in "AB"]
            contract, token = _setup(probe)
            started = [future.exception() or future.result() for future in starting]
        for outcome in started:
            if isinstance(outcome, tuple):
                stack.push(outcome[1])
        for outcome in started:
            if isinstance(outcome, BaseException):
                raise outcome
        instances = [url for url, _cm in started]
        assert instances[0] != instances[1]
        loops = [_tick_loop(probe, name, stack) for name in "AB"]

        # Both instances are ready: the database answers and is at the migrations head.
        for url in instances:
            status, _headers, body = _get(conftest._DIRECT, url + "/readyz")
            assert status == 200, body
            assert json.loads(body)["migrations"] == "head"

        # Incidents reported at once on both instances while both loops run.
        jobs = [(instances[n % 2], priority, at)
                for priority, at in (("urgent", URGENT_AT), ("serious", SERIOUS_AT))
                for n in range(INCIDENTS_PER_PRIORITY)]
        with ThreadPoolExecutor(max_workers=4) as pool:
            reported = list(pool.map(lambda job: _post_json(job[0] + "/api/v1/incidents", token, {
                "customer_contract": contract, "priority": job[1], "reported_at": job[2],
                "title": f"{job[1]} fault", "description": "Reported in the scale-out test.",
            }), jobs))
        priority_of = {body["number"]: body["priority"] for body in reported}
        assert len(priority_of) == len(jobs)  # distinct numbers from both instances

        # Wait until every rung has fired and every queued e-mail is marked sent.
        expected_alerts = sum(len(RUNG_HOURS[p]) for p in priority_of.values())
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while True:
            outbox, alerts = _database_state(database_url)
            settled = len(alerts) == expected_alerts and outbox and all(r[3] for r in outbox)
            if settled or time.monotonic() > deadline:
                break
            assert all(loop.poll() is None for loop in loops), "a tick loop died"
            time.sleep(0.5)
        time.sleep(2)  # two more ticks each: nothing may go out again
        for loop in loops:
            conftest._stop(loop)
            assert loop.returncode == 0
        outbox, alerts = _database_state(database_url)
        logs = "\n".join((tmp_path / f"tick-{n}.log").read_text(errors="replace") for n in "AB")
        assert "FAILED" not in logs, logs

        # Each rung of each incident fired once (R-I4).
        fired = Counter((number, hours) for number, hours in alerts)
        assert set(fired.values()) == {1}
        assert {key for key in fired} == {(number, hours) for number, p in priority_of.items()
                                          for hours in RUNG_HOURS[p]}
        # Every e-mail queued arrived exactly once (Message-ID names its outbox row).
        assert all(sent for *_rest, sent in outbox), "e-mail left unsent"
        arrived = Counter(int(MESSAGE_ID.match(str(m["Message-ID"])).group(1))
                          for m in mailbox.messages[mail_mark:])
        assert arrived == Counter(row[0] for row in outbox)
        # ... among them one escalation e-mail per rung and person told.
        escalated = Counter((to, number) for _id, template, to, _sent in outbox
                            if template == "incident_escalated"
                            for number in priority_of
                            if any(number in str(m["Subject"]) and to in str(m["To"])
                                   and int(MESSAGE_ID.match(str(m["Message-ID"])).group(1))
                                   == _id for m in mailbox.messages[mail_mark:]))
        per_rung = {"urgent": {1: 2, 2: 1, 4: 1}, "serious": {2: 2, 4: 1, 12: 1}}
        expected_mails = sum(sum(per_rung[p].values()) for p in priority_of.values())
        assert sum(escalated.values()) == expected_mails
        assert set(escalated.values()) == {1}

        # A session made on instance A works on instance B (one RMA_SECRET_KEY).
        jar = http.cookiejar.CookieJar()
        browser_a = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                                urllib.request.HTTPCookieProcessor(jar))
        _status, _headers, page = _get(browser_a, instances[0] + "/login")
        csrf = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
        form = urllib.parse.urlencode({"csrf_token": csrf, "email": DESK,
                                       "password": PASSWORD}).encode()
        with browser_a.open(instances[0] + "/login?next=/staff/support/", data=form,
                            timeout=15) as response:
            assert urllib.parse.urlsplit(response.url).path == "/staff/support/"
        cookie = "; ".join(f"{c.name}={c.value}" for c in jar)
        browser_b = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())
        browser_b.addheaders = [("Cookie", cookie)]
        status, _headers, page = _get(browser_b, instances[1] + "/staff/support/")
        assert status == 200, f"instance B answered {status}: the session did not carry over"
        assert DESK in page
        # ... and so does a CSRF token of A's page: B takes the log-out form from A.
        _status, _headers, page = _get(browser_a, instances[0] + "/staff/support/")
        csrf = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)
        logout = urllib.request.Request(  # noqa: S310 - the test server's http URL
            instances[1] + "/logout", method="POST",
            data=urllib.parse.urlencode({"csrf_token": csrf}).encode())
        try:
            browser_b.open(logout, timeout=15)
        except urllib.error.HTTPError as error:  # the redirect, not followed
            assert error.code in (302, 303), error.code
