"""E-mail outbox (issue 3 point 5) against a real SMTP server (aiosmtpd): a committed
message arrives exactly once, a rolled-back one never; failures back off and are retried
until delivered; claims keep two workers from sending the same row. Time is pinned by
passing ``now``; no test sleeps."""

from __future__ import annotations

import email
import os
import socket
import threading
from contextlib import contextmanager
from datetime import datetime, timedelta
from email import policy

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import event, func, select, update

from rma import mail
from rma.extensions import db
from rma.models import AuditEvent, OutboxMessage, OutboxStatus
from rma.services import ValidationError, outbox
from rma.services.audit import Actor
from rma.services.outbox import (
    Attachment,
    backoff,
    enqueue,
    pending_summary,
    queue_test_message,
    send_due,
)
from tests.conftest import FIXED_NOW, count_queries

NOW = datetime.fromisoformat(FIXED_NOW)
SENDER = "RMA 服务中心 <rma@rma.example.com>"


class Collector:
    """An aiosmtpd handler that keeps every envelope; refuses recipients on ``refuse``."""

    def __init__(self, refuse: tuple[str, ...] = ()):
        self.envelopes: list = []
        self.refuse = refuse
        self._lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self._lock:
            self.envelopes.append(envelope)
        return "250 OK"

    def messages(self) -> list[email.message.EmailMessage]:
        return [email.message_from_bytes(e.content, policy=policy.default)
                for e in self.envelopes]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def smtp_server(port: int, handler: Collector | None = None):
    handler = handler or Collector()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler
    finally:
        controller.stop()


@pytest.fixture
def smtp_port() -> int:
    return _free_port()


@pytest.fixture
def app_config(smtp_port) -> dict:
    return {"MAIL_BACKEND": "smtp", "SMTP_HOST": "127.0.0.1", "SMTP_PORT": smtp_port,
            "SMTP_TIMEOUT": 5, "SMTP_TLS": "none", "MAIL_FROM": SENDER}


@pytest.fixture
def smtp(smtp_port):
    with smtp_server(smtp_port) as handler:
        yield handler


def _queue(to="ops@example.com", language="en", commit=True, **kwargs) -> int | None:
    message = enqueue(to=to, language=language, template="test", **kwargs)
    db.session.flush()
    if commit:
        db.session.commit()
    return message.id if message is not None else None


def _row(message_id: int) -> OutboxMessage:
    db.session.expire_all()
    return db.session.get(OutboxMessage, message_id)


# -- delivery ------------------------------------------------------------------------
def test_committed_message_arrives_exactly_once_when_sent_twice(ctx, smtp):
    message_id = _queue()
    first = send_due(now=NOW)
    second = send_due(now=NOW + timedelta(hours=2))
    assert (first.sent, first.failed, second.sent) == (1, 0, 0)
    assert len(smtp.envelopes) == 1
    envelope = smtp.envelopes[0]
    assert envelope.mail_from == "rma@rma.example.com"
    assert envelope.rcpt_tos == ["ops@example.com"]
    received = smtp.messages()[0]
    created = _row(message_id).created_at
    assert received["Message-ID"] == (
        f"<outbox-{message_id}.{int(created.timestamp())}@rma.example.com>")
    assert received["To"] == "ops@example.com"
    assert received["Auto-Submitted"] == "auto-generated"
    row = _row(message_id)
    assert row.status == OutboxStatus.SENT and row.sent_at == NOW
    assert (row.attempts, row.claimed_by, row.claimed_until) == (1, None, None)


def test_rolled_back_enqueue_sends_nothing(ctx, smtp):
    assert _queue(commit=False) is not None
    db.session.rollback()
    report = send_due(now=NOW)
    assert report.sent == 0 and smtp.envelopes == []
    assert db.session.scalar(select(func.count()).select_from(OutboxMessage)) == 0


def test_chinese_subject_body_and_sender_arrive_intact(app, ctx, smtp):
    app.config["VENDOR_NAME"] = "华东 RMA 服务中心（北京）"
    message_id = _queue(to="zhang.wei@example.com", language="zh_CN")
    row = _row(message_id)
    assert "华东 RMA 服务中心（北京）" in row.subject
    send_due(now=NOW)
    received = smtp.messages()[0]
    assert received["Subject"] == row.subject
    assert received["From"].addresses[0].display_name == "RMA 服务中心"
    body = received.get_body(preferencelist=("plain",))
    assert body.get_content_charset() == "utf-8"
    assert body.get_content().rstrip("\n") == row.body_text.rstrip("\n")
    assert "华东 RMA 服务中心（北京）" in body.get_content()
    assert received["Content-Language"] == "zh-CN"


def test_attachments_arrive_byte_identical_with_their_types(ctx, smtp):
    pdf = b"%PDF-1.7\n" + bytes(range(256)) * 300 + os.urandom(4096)
    csv_bytes = "serial,故障\r\nTK3-0001,按键失灵\r\n".encode()
    attachments = [Attachment("退货单 RMA-2026-0001.pdf", "application/pdf", pdf),
                   Attachment("items.csv", "text/csv", csv_bytes),
                   Attachment("photo.jpg", "image/jpeg", b"\xff\xd8\xff\xe0" + os.urandom(999))]
    _queue(attachments=attachments)
    send_due(now=NOW)
    parts = list(smtp.messages()[0].iter_attachments())
    assert [(p.get_filename(), p.get_content_type()) for p in parts] == [
        (a.filename, a.content_type) for a in attachments]
    assert [p.get_payload(decode=True) for p in parts] == [a.data for a in attachments]


def test_message_refused_by_the_server_is_retried_and_the_others_still_go(
        app, ctx, smtp_port):
    with smtp_server(smtp_port, Collector(refuse=("bad@example.com",))) as handler:
        bad = _queue(to="bad@example.com")
        good = _queue(to="good@example.com")
        report = send_due(now=NOW)
    assert (report.sent, report.failed) == (1, 1)
    assert [e.rcpt_tos for e in handler.envelopes] == [["good@example.com"]]
    refused = _row(bad)
    assert refused.status == OutboxStatus.PENDING and refused.attempts == 1
    assert "550" in refused.last_error
    assert _row(good).status == OutboxStatus.SENT


# -- failures and back-off -------------------------------------------------------------
@pytest.mark.parametrize(("attempts", "minutes"), [
    (0, 0), (1, 1), (2, 2), (3, 4), (4, 8), (5, 16), (6, 32), (7, 60), (8, 60), (500, 60)])
def test_backoff_doubles_from_one_minute_up_to_an_hour(attempts, minutes):
    assert backoff(attempts) == timedelta(minutes=minutes)


def test_smtp_down_backs_off_then_delivers_once_the_server_is_up(ctx, smtp_port):
    message_id = _queue()
    report = send_due(now=NOW)  # nothing listens on smtp_port
    assert (report.sent, report.failed) == (0, 1)
    row = _row(message_id)
    assert row.status == OutboxStatus.PENDING and row.attempts == 1
    assert f"127.0.0.1:{smtp_port}" in row.last_error
    assert row.next_attempt_at == NOW + timedelta(minutes=1)
    assert (row.claimed_by, row.claimed_until, row.sent_at) == (None, None, None)

    second = NOW + timedelta(minutes=1)
    send_due(now=second)
    row = _row(message_id)
    assert row.attempts == 2 and row.next_attempt_at == second + timedelta(minutes=2)

    with smtp_server(smtp_port) as handler:
        early = send_due(now=second + timedelta(minutes=1, seconds=59))
        assert early.sent == 0 and handler.envelopes == []
        due = send_due(now=second + timedelta(minutes=2))
    assert due.sent == 1 and len(handler.envelopes) == 1
    row = _row(message_id)
    assert row.status == OutboxStatus.SENT and row.attempts == 3
    assert row.sent_at == second + timedelta(minutes=2)


def test_smtp_down_counts_one_attempt_on_each_message_of_the_batch(ctx, smtp_port):
    ids = [_queue(to=f"u{i}@example.com") for i in range(3)]
    report = send_due(now=NOW)
    assert (report.sent, report.failed) == (0, 3)
    rows = [_row(i) for i in ids]
    assert {(r.attempts, r.next_attempt_at) for r in rows} == {(1, NOW + timedelta(minutes=1))}
    summary = pending_summary(NOW)
    assert (summary.pending, summary.failing, summary.due) == (3, 3, 0)
    assert summary.oldest_created_at == NOW
    assert "Connection refused" in summary.last_error or "refused" in summary.last_error


@pytest.mark.parametrize(("settings", "error"), [
    ({"SMTP_TLS": "starttls"}, "STARTTLS extension not supported by server"),
    ({"SMTP_USER": "rma", "SMTP_PASSWORD": "secret"}, "SMTP AUTH extension not supported"),
])
def test_server_refusing_tls_or_login_is_a_failed_attempt(app, ctx, smtp, settings, error):
    app.config.update(settings)
    message_id = _queue()
    report = send_due(now=NOW)
    assert (report.sent, report.failed) == (0, 1) and smtp.envelopes == []
    row = _row(message_id)
    assert row.attempts == 1 and error in row.last_error


def test_bad_mail_settings_fail_before_anything_is_claimed(app, ctx):
    message_id = _queue()
    app.config["SMTP_TLS"] = "tls"
    with pytest.raises(mail.MailConfigError, match="SMTP_TLS 'tls' is unknown"):
        send_due(now=NOW)
    row = _row(message_id)
    assert (row.claimed_by, row.attempts) == (None, 0)


@pytest.mark.parametrize(("setting", "value", "error"), [
    ("MAIL_BACKEND", "pigeon", "MAIL_BACKEND 'pigeon' is unknown; use one of: console, smtp"),
    ("SMTP_TLS", "tls", "SMTP_TLS 'tls' is unknown; use one of: none, starttls, ssl"),
    ("SMTP_PORT", "smtp", "SMTP_PORT must be a number, not 'smtp'"),
    ("SMTP_PORT", 70000, "SMTP_PORT 70000 is out of range"),
    ("SMTP_TIMEOUT", 0, "SMTP_TIMEOUT 0 is out of range"),
    ("MAIL_FROM", "nobody", "MAIL_FROM 'nobody' is not an e-mail address"),
    ("SMTP_HOST", "", "SMTP_HOST is empty"),
])
def test_config_errors_are_one_clear_line(app_config, setting, value, error):
    config = {**app_config, setting: value}
    with pytest.raises(mail.MailConfigError) as raised:
        mail.backend_from_config(config)
    assert str(raised.value).startswith(error)


def test_numeric_smtp_password_from_the_environment_stays_text(app_config, monkeypatch):
    # from_prefixed_env turns RMA_SMTP_PASSWORD=00123456 into the int 123456.
    monkeypatch.setenv("RMA_SMTP_PASSWORD", "00123456")
    backend = mail.backend_from_config({**app_config, "SMTP_USER": "rma",
                                        "SMTP_PASSWORD": 123456})
    assert backend.password == "00123456"


# -- exactly once: dedupe, claims ------------------------------------------------------
def test_dedupe_key_prevents_a_duplicate(ctx, smtp):
    first = _queue(dedupe_key="rma:RMA-2026-00001:received", commit=False)
    again_same_transaction = _queue(dedupe_key="rma:RMA-2026-00001:received", commit=False)
    db.session.commit()
    again_later = _queue(dedupe_key="rma:RMA-2026-00001:received")
    assert first is not None and again_same_transaction is None and again_later is None
    send_due(now=NOW)
    after_sending = _queue(dedupe_key="rma:RMA-2026-00001:received")
    assert after_sending is None
    assert db.session.scalar(select(func.count()).select_from(OutboxMessage)) == 1
    assert len(smtp.envelopes) == 1


def test_expired_claim_of_a_dead_worker_is_reclaimed(ctx, smtp):
    message_id = _queue()
    db.session.execute(update(OutboxMessage).values(
        claimed_by="dead-host:1:abcd", claimed_until=NOW - timedelta(seconds=1)))
    db.session.commit()
    report = send_due(now=NOW, worker_id="live")
    assert report.sent == 1 and len(smtp.envelopes) == 1
    assert _row(message_id).status == OutboxStatus.SENT


def test_live_claim_of_another_worker_is_skipped(ctx, smtp):
    message_id = _queue()
    db.session.execute(update(OutboxMessage).values(
        claimed_by="busy-host:2:beef", claimed_until=NOW + timedelta(minutes=5)))
    db.session.commit()
    assert send_due(now=NOW).sent == 0
    assert smtp.envelopes == []
    row = _row(message_id)
    assert (row.status, row.claimed_by, row.attempts) == (OutboxStatus.PENDING,
                                                          "busy-host:2:beef", 0)
    assert send_due(now=NOW + timedelta(minutes=5, seconds=1)).sent == 1


def test_crash_between_send_and_mark_resends_with_the_same_message_id(ctx, smtp, monkeypatch):
    """The documented at-least-once window: the claim lapses and the row is sent again,
    recognisable by its Message-ID."""
    message_id = _queue()
    real_mark = outbox._mark_sent

    def crash(*args, **kwargs):
        raise RuntimeError("process died")

    monkeypatch.setattr(outbox, "_mark_sent", crash)
    with pytest.raises(RuntimeError):
        send_due(now=NOW, worker_id="crashed")
    assert _row(message_id).claimed_by == "crashed"
    monkeypatch.setattr(outbox, "_mark_sent", real_mark)
    assert send_due(now=NOW + timedelta(minutes=1)).sent == 0  # claim still live
    assert send_due(now=NOW + outbox.CLAIM_LEASE + timedelta(seconds=1)).sent == 1
    first, second = smtp.messages()
    assert first["Message-ID"] == second["Message-ID"]
    assert _row(message_id).status == OutboxStatus.SENT


def test_batch_running_out_of_lease_time_releases_the_rest(ctx, smtp, monkeypatch):
    ids = [_queue(to=f"u{i}@example.com") for i in range(3)]
    ticks = iter([0.0, 0.0, outbox.CLAIM_LEASE.total_seconds()])
    monkeypatch.setattr(outbox, "_monotonic", lambda: next(ticks))
    report = send_due(now=NOW)
    assert (report.sent, report.released) == (1, 2)
    rest = [_row(i) for i in ids[1:]]
    assert {(r.status, r.attempts, r.claimed_by) for r in rest} == {
        (OutboxStatus.PENDING, 0, None)}
    monkeypatch.undo()
    assert send_due(now=NOW).sent == 2
    assert len(smtp.envelopes) == 3


def test_send_due_leaves_the_callers_session_alone(ctx, smtp):
    _queue()
    pending = enqueue(to="later@example.com", language="en", template="test")
    send_due(now=NOW)
    assert pending in db.session.new  # neither committed nor discarded by send_due
    db.session.commit()
    assert send_due(now=NOW).sent == 1
    assert len(smtp.envelopes) == 2


def test_two_workers_at_once_deliver_every_message_exactly_once(app, smtp):
    workers = 2
    with app.app_context():
        for i in range(20):
            _queue(to=f"user{i}@example.com")
    start = threading.Barrier(workers)
    reports: list = []
    errors: list = []

    def worker(name: str) -> None:
        try:
            with app.app_context():
                start.wait(timeout=10)
                while True:  # small batches so the two interleave
                    report = send_due(now=NOW, batch=3, worker_id=name)
                    reports.append(report)
                    if not report.sent:
                        break
                db.session.remove()
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    recipients = sorted(e.rcpt_tos[0] for e in smtp.envelopes)
    assert recipients == sorted(f"user{i}@example.com" for i in range(20))
    assert sum(r.sent for r in reports) == 20
    with app.app_context():
        states = db.session.execute(select(OutboxMessage.status, func.count())
                                    .group_by(OutboxMessage.status)).all()
    assert states == [(OutboxStatus.SENT, 20)]


def test_a_claim_in_progress_is_never_claimed_twice(app):
    """Worker A is paused right after reading its candidates (on PostgreSQL holding the
    row locks of FOR UPDATE SKIP LOCKED) while worker B claims: the two claims are
    disjoint, and every claimed row belongs to the worker that claimed it."""
    with app.app_context():
        for i in range(8):
            _queue(to=f"user{i}@example.com")
        engine = db.engine
    a_has_read = threading.Event()
    b_done = threading.Event()
    claims: dict[str, list[int]] = {}
    errors: list = []
    b_finished_first: list[bool] = []

    def pause_a_after_its_read(conn, cursor, statement, parameters, context, many):
        if (threading.current_thread().name == "A" and not a_has_read.is_set()
                and statement.lstrip().upper().startswith("SELECT")
                and "outbox_messages" in statement):
            a_has_read.set()
            b_finished_first.append(b_done.wait(timeout=5))

    def claim(name: str, wait_for: threading.Event | None) -> None:
        try:
            with app.app_context():
                if wait_for is not None:
                    assert wait_for.wait(timeout=10)
                claims[name] = outbox._claim(NOW, 5, name)
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)
        finally:
            if name == "B":
                b_done.set()

    event.listen(engine, "after_cursor_execute", pause_a_after_its_read)
    try:
        a = threading.Thread(target=claim, args=("A", None), name="A")
        b = threading.Thread(target=claim, args=("B", a_has_read), name="B")
        a.start()
        b.start()
        a.join(timeout=30)
        b.join(timeout=30)
    finally:
        event.remove(engine, "after_cursor_execute", pause_a_after_its_read)
    assert errors == []
    assert b_finished_first == [True], "B waited for A's locks instead of skipping them"
    assert claims["B"]
    assert not set(claims["A"]) & set(claims["B"])
    with app.app_context():
        owners = dict(db.session.execute(
            select(OutboxMessage.id, OutboxMessage.claimed_by)
            .where(OutboxMessage.claimed_by.is_not(None))).all())
    assert owners == {**dict.fromkeys(claims["A"], "A"), **dict.fromkeys(claims["B"], "B")}


def test_queries_per_message_do_not_grow_with_attachments(app, smtp):
    """Each message costs the same few statements however many attachments it has."""

    def statements_for(attachments: int) -> int:
        with app.app_context():
            for i in range(4):
                _queue(to=f"u{i}@example.com", attachments=[
                    Attachment(f"a{n}.bin", "application/octet-stream", b"x" * 10)
                    for n in range(attachments)])
        with app.app_context(), count_queries(app) as statements:
            assert send_due(now=NOW).sent == 4
        return len(statements)

    plain = statements_for(0)
    with_attachments = statements_for(5)
    assert plain == with_attachments
    assert plain <= 2 + 4 * 4


# -- rma send-test-mail's service --------------------------------------------------------
def test_queue_test_message_is_audited_and_refuses_bad_input(ctx, smtp):
    message = queue_test_message(Actor.cli("send-test-mail"), "ops@example.com", "en")
    audit = db.session.scalar(select(AuditEvent).where(AuditEvent.action ==
                                                       "outbox.test_queued"))
    assert audit.entity_id == str(message.id) and audit.after["to"] == "ops@example.com"
    with pytest.raises(ValidationError) as raised:
        queue_test_message(Actor.cli("send-test-mail"), "not an address", "en")
    assert raised.value.field == "email"
    with pytest.raises(ValidationError):
        queue_test_message(Actor.cli("send-test-mail"), "ops@example.com", "fr")
    assert db.session.scalar(select(func.count()).select_from(OutboxMessage)) == 1
