"""Faults (issue 8 point 3): the SMTP server down for an hour loses nothing, and
everything goes out once it is back, each message exactly once.

Thirty e-mails of four kinds are queued through the real flows (RMA submitted with its
PDF label, registration received, invitation, test mail; English and Chinese). Then
``rma tick`` runs every 5 simulated minutes (``RMA_FIXED_NOW`` moved forward; nothing
sleeps) while the mail server is down, either with nothing listening on its port or with
a server that answers ``421`` and hangs up. After an hour a real SMTP server (aiosmtpd)
starts on that port and the ticks go on. The outbox's documented behaviour (README,
"E-mail"; rma/services/outbox.py): a failed send is retried after 1, 2, 4 ... at most 60
minutes and is never dropped, so every message arrives within 60 minutes of the recovery.

Also a server that drops the connection in the middle of a batch, after a message's
data but before its reply: the messages it had accepted stay sent, the rest are retried
and arrive once each.
"""

from __future__ import annotations

import email
import re
import socketserver
import threading
from collections import Counter
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from email import policy

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import func, select

from rma import mail
from rma.extensions import db
from rma.models import OutboxAttachment, OutboxMessage, OutboxStatus, Unit, User
from rma.services import invitations, registration
from rma.services.audit import Actor
from rma.services.catalog import customer_by_contract
from rma.services.outbox import queue_test_message
from rma.services.rmas import ContactInput, ItemInput, open_rma
from tests.conftest import FIXED_NOW
from tests.rma.test_outbox import Collector, _free_port

T0 = datetime.fromisoformat(FIXED_NOW)
SENDER_ADDRESS = "rma@rma.example.com"
TICK = timedelta(minutes=5)
OUTAGE = timedelta(minutes=60)
MAX_BACKOFF = timedelta(minutes=60)
# The documented back-off after the n-th failed attempt (n = 1, 2, ...), in minutes.
DOCUMENTED_BACKOFF = [1, 2, 4, 8, 16, 32, 60]
MAIL_LINE = re.compile(r"mail: sent (\d+), failed (\d+), pending (\d+)")


@pytest.fixture
def smtp_port() -> int:
    return _free_port()


@pytest.fixture
def app_config(smtp_port) -> dict:
    return {"MAIL_BACKEND": "smtp", "SMTP_HOST": "127.0.0.1", "SMTP_PORT": smtp_port,
            "SMTP_TIMEOUT": 5, "SMTP_TLS": "none",
            "MAIL_FROM": f"RMA 服务中心 <{SENDER_ADDRESS}>"}


# -- servers -------------------------------------------------------------------------
@contextmanager
def real_server(port: int):
    handler = Collector()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler
    finally:
        controller.stop()


class _FaultyServer(socketserver.TCPServer):
    allow_reuse_address = True

    def __init__(self, port: int, mode: str, accept_first: int = 0):
        self.mode = mode  # "421": refuse every session; "drop": hang up mid-batch
        self.accept_first = accept_first
        self.accepted: list[bytes] = []  # messages answered 250 (delivered)
        self.dropped: list[bytes] = []  # messages whose data came in, then no reply
        self.sessions = 0
        super().__init__(("127.0.0.1", port), _FaultyHandler)


class _FaultyHandler(socketserver.StreamRequestHandler):
    """Just enough SMTP for smtplib: EHLO, MAIL, RCPT, DATA, RSET, NOOP, QUIT."""

    def handle(self) -> None:
        server: _FaultyServer = self.server  # type: ignore[assignment]
        server.sessions += 1
        if server.mode == "421":
            self.wfile.write(b"421 4.3.2 mail.example busy, try again later\r\n")
            return
        self.wfile.write(b"220 mail.example ESMTP\r\n")
        while True:
            line = self.rfile.readline()
            if not line:
                return
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                self.wfile.write(b"250-mail.example\r\n250 8BITMIME\r\n")
            elif verb in (b"MAIL", b"RCPT", b"RSET", b"NOOP"):
                self.wfile.write(b"250 OK\r\n")
            elif verb == b"DATA":
                self.wfile.write(b"354 go ahead\r\n")
                data = b""
                while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                    data += chunk
                if len(server.accepted) >= server.accept_first:
                    server.dropped.append(data)
                    return  # hang up before the reply: not delivered (RFC 5321)
                server.accepted.append(data)
                self.wfile.write(b"250 2.0.0 queued\r\n")
            elif verb == b"QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            else:
                self.wfile.write(b"502 not implemented\r\n")


@contextmanager
def faulty_server(port: int, mode: str, accept_first: int = 0):
    server = _FaultyServer(port, mode, accept_first)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@contextmanager
def outage(port: int, kind: str):
    if kind == "refused":  # nothing listens on the port
        yield None
        return
    with faulty_server(port, "421") as server:
        yield server


# -- the mail to send ------------------------------------------------------------------
@pytest.fixture
def queued(app, make_model, make_customer, make_user) -> dict[int, str]:
    """30 messages through the real flows; returns {outbox id: template}."""
    tk3 = make_model("TK3", 36, "ship")
    contract = make_customer("Acme Bank", "2026-03-10")
    make_user("alice@a.example", "customer", contract, language="en")
    make_user("admin@vendor.example", "admin")
    with app.app_context():
        customer_id = customer_by_contract(contract).id
        db.session.add_all([Unit(serial=f"TK3-A{n:04d}", model_id=tk3, customer_id=customer_id,
                                 shipped_on=date(2025, 1, 10)) for n in range(10)])
        db.session.commit()
    with app.test_request_context(headers={"Accept-Language": "en"}):
        alice = db.session.scalar(select(User).where(User.email == "alice@a.example"))
        admin = db.session.scalar(select(User).where(User.email == "admin@vendor.example"))
        for n in range(10):  # the RMA e-mail with its PDF label attached
            open_rma(Actor(user=alice), customer_id,
                     ContactInput("Alice Wang", "+86 21 5555 0101", f"it{n}@a.example"),
                     "Acme Bank IT, 1 Bund Road, Shanghai",
                     [ItemInput(f"TK3-A{n:04d}", "No codes shown")],
                     ("en", "zh_CN")[n % 2])
        for n in range(8):
            registration.submit_application(f"Bank {n}", f"{n} Road", f"Contact {n}",
                                            f"apply{n}@bank{n}.example", "+86 21 5555 0000",
                                            language=("zh_CN", "en")[n % 2])
        for n in range(6):
            invitations.invite(Actor(user=admin), f"new{n}@a.example", "customer",
                               customer_id, language=("en", "zh_CN")[n % 2])
        for n in range(6):
            queue_test_message(Actor.cli("send-test-mail"), f"ops{n}@vendor.example",
                               ("zh_CN", "en")[n % 2])
        rows = dict(db.session.execute(select(OutboxMessage.id, OutboxMessage.template)).all())
    assert Counter(rows.values()) == {"rma_submitted": 10, "registration_received": 8,
                                      "invitation": 6, "test": 6}
    return rows


# -- helpers ---------------------------------------------------------------------------
def _tick(app, runner, at: datetime) -> tuple[int, int, int]:
    """``rma tick`` at the simulated instant ``at``; returns (sent, failed, pending)."""
    app.config["FIXED_NOW"] = at.isoformat()
    result = runner.invoke(args=["tick"])
    assert result.exit_code == 0, result.output
    found = MAIL_LINE.search(result.output)
    assert found, result.output
    return int(found[1]), int(found[2]), int(found[3])


def _rows(app) -> list[OutboxMessage]:
    with app.app_context():
        rows = db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()
        db.session.expunge_all()
        return rows


def _attachment_count(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(OutboxAttachment))


def _message_id(row: OutboxMessage) -> str:
    outgoing = mail.OutgoingMail(outbox_id=row.id, created_at=row.created_at,
                                 to=row.to_address, subject=row.subject, body_text="")
    return mail.message_id(outgoing, SENDER_ADDRESS)


def _parse(data: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(data, policy=policy.default)


def _schedule(queued_at: datetime, ticks: list[datetime]
              ) -> dict[datetime, tuple[int, datetime]]:
    """What the documentation promises for a message queued at ``queued_at`` whose every
    attempt fails: after each tick, (failed attempts so far, next attempt time)."""
    attempts, due, after = 0, queued_at, {}
    for at in ticks:
        if at >= queued_at:
            if at >= due:
                attempts += 1
                step = DOCUMENTED_BACKOFF[min(attempts, len(DOCUMENTED_BACKOFF)) - 1]
                due = at + timedelta(minutes=step)
            after[at] = (attempts, due)
    return after


def _assert_delivered_once(app, queued: dict, received: list[bytes]) -> None:
    """Every outbox row marked sent, and the server got each one exactly once: the same
    Message-ID, recipient, subject and attachments as the row."""
    rows = _rows(app)
    assert {r.id for r in rows} == set(queued)
    assert all(r.status == OutboxStatus.SENT and r.sent_at is not None for r in rows)
    messages = [_parse(data) for data in received]
    counts = Counter(m["Message-ID"] for m in messages)
    assert all(n == 1 for n in counts.values()), [k for k, n in counts.items() if n > 1]
    by_id = {m["Message-ID"]: m for m in messages}
    assert set(by_id) == {_message_id(r) for r in rows}
    with app.app_context():
        for row in rows:
            got = by_id[_message_id(row)]
            assert got["To"] == row.to_address and got["Subject"] == row.subject
            stored = db.session.scalars(select(OutboxAttachment).where(
                OutboxAttachment.message_id == row.id)).all()
            assert [(p.get_filename(), p.get_content()) for p in got.iter_attachments()] == [
                (a.filename, a.data) for a in stored]


# -- the tests -------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["refused", "421"])
def test_smtp_down_for_an_hour_loses_nothing_and_sends_everything_once_after(
        app, runner, queued, smtp_port, kind):
    """30 messages queued at 0 min, 2 more at 30 min (mail keeps coming during the
    outage); the server is down from 0 to 60 min and ``rma tick`` runs every 5 min."""
    assert _attachment_count(app) == 10
    ticks = [T0 + k * TICK for k in range(OUTAGE // TICK + 1)]  # 0, 5, ... 60 minutes
    late_at = T0 + timedelta(minutes=30)
    schedules = {T0: _schedule(T0, ticks), late_at: _schedule(late_at, ticks)}
    born = dict.fromkeys(queued, T0)  # outbox id -> queued at
    busy_ticks = 0
    with outage(smtp_port, kind) as refusing:
        for at in ticks:
            if at == late_at:
                app.config["FIXED_NOW"] = at.isoformat()
                with app.app_context():
                    for n in range(2):
                        message = queue_test_message(Actor.cli("send-test-mail"),
                                                     f"late{n}@vendor.example", "en")
                        born[message.id] = late_at
            due_now = sum(1 for q in born.values()
                          if schedules[q][at][0] > schedules[q].get(at - TICK, (0,))[0])
            # Every due message gets one failed attempt; the others wait their turn.
            assert _tick(app, runner, at) == (0, due_now, len(born)), at
            busy_ticks += due_now > 0
            rows = _rows(app)
            assert {r.id for r in rows} == set(born)  # nothing dropped
            assert _attachment_count(app) == 10
            for row in rows:
                assert row.status == OutboxStatus.PENDING and row.sent_at is None
                assert (row.attempts, row.next_attempt_at) == schedules[born[row.id]][at], (
                    at, row.id)
                assert (row.claimed_by, row.claimed_until) == (None, None)
                assert f"127.0.0.1:{smtp_port}" in row.last_error
                assert kind != "421" or "421" in row.last_error
    # After an hour down: the first 30 failed 6 times (at 0, 5, 10, 15, 25, 45 min) and
    # are next tried at 77 min; the 2 late ones 5 times (30, 35, 40, 45, 55), next at 71.
    assert schedules[T0][ticks[-1]] == (6, T0 + timedelta(minutes=77))
    assert schedules[late_at][ticks[-1]] == (5, T0 + timedelta(minutes=71))
    assert busy_ticks == 10  # 0, 5, 10, 15, 25, 30, 35, 40, 45 and 55 min
    if refusing is not None:  # one session per tick with due mail, not one per message
        assert refusing.sessions == busy_ticks

    recovered = ticks[-1]
    sent_at: dict[datetime, int] = {}
    with real_server(smtp_port) as server:
        at = recovered
        while any(r.status == OutboxStatus.PENDING for r in _rows(app)):
            at += TICK
            assert at - recovered <= MAX_BACKOFF, "not all sent within 60 min of recovery"
            sent, failed, _pending = _tick(app, runner, at)
            assert failed == 0
            if sent:
                sent_at[at] = sent
        for later in (at + TICK, at + 2 * MAX_BACKOFF):  # nothing goes out twice
            assert _tick(app, runner, later) == (0, 0, 0)
        received = [envelope.content for envelope in server.envelopes]
    # Each goes out at the first tick after its next attempt time: 75 and 80 min.
    assert sent_at == {T0 + timedelta(minutes=75): 2, T0 + timedelta(minutes=80): 30}
    rows = _rows(app)
    assert {(born[r.id], r.sent_at, r.attempts) for r in rows} == {
        (late_at, T0 + timedelta(minutes=75), 6), (T0, T0 + timedelta(minutes=80), 7)}
    _assert_delivered_once(app, born, received)


def test_server_hanging_up_mid_batch_resends_only_what_it_did_not_accept(
        app, runner, queued, smtp_port):
    """The server accepts 12 messages, takes the 13th's data and drops the connection
    before replying. The 12 stay sent; the 13th and the rest back off one minute and go
    out once each at the next tick."""
    with faulty_server(smtp_port, "drop", accept_first=12) as flaky:
        assert _tick(app, runner, T0) == (12, 18, 18)
    assert len(flaky.accepted) == 12 and len(flaky.dropped) == 1
    rows = _rows(app)
    sent = [r for r in rows if r.status == OutboxStatus.SENT]
    waiting = [r for r in rows if r.status == OutboxStatus.PENDING]
    assert {_parse(d)["Message-ID"] for d in flaky.accepted} == {_message_id(r) for r in sent}
    dropped_id = _parse(flaky.dropped[0])["Message-ID"]
    assert dropped_id in {_message_id(r) for r in waiting}
    assert {(r.attempts, r.next_attempt_at) for r in waiting} == {
        (1, T0 + timedelta(minutes=1))}
    assert all("SMTPServerDisconnected" in r.last_error for r in waiting)

    with real_server(smtp_port) as server:
        assert _tick(app, runner, T0 + TICK) == (18, 0, 0)
        assert _tick(app, runner, T0 + 2 * TICK) == (0, 0, 0)
        received = [envelope.content for envelope in server.envelopes]
    assert dropped_id in {_parse(d)["Message-ID"] for d in received}
    _assert_delivered_once(app, queued, flaky.accepted + received)
