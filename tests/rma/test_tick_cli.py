"""``rma tick`` (issue 3 point 5): runs the periodic jobs once or in a loop, one summary
line per run; a failing job does not stop the others; a bad setting stops it at start
with one clear line. ``rma send-test-mail`` checks the mail settings end to end."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select

from rma import cli
from rma.extensions import db
from rma.models import AuditEvent, OutboxMessage, OutboxStatus
from rma.services.outbox import Attachment, enqueue
from tests.conftest import FIXED_NOW, make_app

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def app_config() -> dict:
    return {"MAIL_BACKEND": "console", "MAIL_FROM": "rma@rma.example.com"}


def _queue(app, to="ops@example.com", **kwargs) -> int:
    with app.app_context():
        message = enqueue(to=to, language="en", template="test", **kwargs)
        db.session.commit()
        return message.id


def _status(app, message_id: int) -> OutboxMessage:
    with app.app_context():
        row = db.session.get(OutboxMessage, message_id)
        db.session.expunge(row)
        return row


def _unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_tick_once_prints_the_message_with_the_console_backend(app, runner):
    message_id = _queue(app, attachments=[Attachment("RMA-2026-00001.pdf", "application/pdf",
                                                     b"%PDF" + b"x" * 1230)])
    result = runner.invoke(args=["tick"])
    assert result.exit_code == 0, result.output
    assert f"----- e-mail (outbox #{message_id}) -----" in result.output
    assert "To: ops@example.com" in result.output
    assert "Subject: Test message from OTP Security Ltd. RMA Service Centre" in result.output
    assert "This is a test message from" in result.output
    assert "[attachment: RMA-2026-00001.pdf (application/pdf, 1234 bytes)]" in result.output
    assert result.output.strip().splitlines()[-1].endswith(
        "mail: sent 1, failed 0, pending 0")
    assert _status(app, message_id).status == OutboxStatus.SENT

    again = runner.invoke(args=["tick"])
    assert again.exit_code == 0
    assert "e-mail (outbox" not in again.output
    assert "mail: sent 0, failed 0, pending 0" in again.output


@pytest.mark.parametrize(("setting", "value", "line"), [
    ("MAIL_BACKEND", "pigeon",
     "configuration error (mail): MAIL_BACKEND 'pigeon' is unknown; use one of: console, smtp"),
    ("SMTP_TLS", "tls",
     "configuration error (mail): SMTP_TLS 'tls' is unknown; use one of: none, starttls, ssl"),
])
def test_tick_bad_setting_exits_1_with_one_line_and_sends_nothing(app, runner, setting, value,
                                                                  line):
    message_id = _queue(app)
    app.config["MAIL_BACKEND"] = "smtp"
    app.config[setting] = value
    for args in (["tick"], ["tick", "--loop"]):
        result = runner.invoke(args=args)
        assert result.exit_code == 1
        assert result.output.strip() == f"Error: {line}"
    row = _status(app, message_id)
    assert (row.status, row.attempts, row.claimed_by) == (OutboxStatus.PENDING, 0, None)


def test_tick_smtp_unreachable_is_a_failed_send_not_a_failed_job(app, runner):
    message_id = _queue(app)
    app.config.update(MAIL_BACKEND="smtp", SMTP_HOST="127.0.0.1", SMTP_PORT=_unused_port(),
                      SMTP_TIMEOUT=5)
    result = runner.invoke(args=["tick"])
    assert result.exit_code == 0, result.output
    assert "mail: sent 0, failed 1, pending 1 (last error: SMTP 127.0.0.1:" in result.output
    assert _status(app, message_id).attempts == 1


def test_tick_failing_job_is_logged_and_the_others_still_run(app, runner, monkeypatch,
                                                              caplog):
    def broken(now):
        raise RuntimeError("escalation table missing")

    monkeypatch.setattr(cli, "TICK_JOBS", [cli.TickJob("escalations", broken), *cli.TICK_JOBS])
    message_id = _queue(app)
    with caplog.at_level(logging.ERROR):
        result = runner.invoke(args=["tick"])
    assert result.exit_code == 1
    line = result.output.strip().splitlines()[-1]
    assert "escalations: FAILED (RuntimeError: escalation table missing); " in line
    assert line.endswith("mail: sent 1, failed 0, pending 0")
    assert any("tick job escalations failed" in r.getMessage() for r in caplog.records)
    assert _status(app, message_id).status == OutboxStatus.SENT


def test_jobs_receive_the_clock_now(app, runner, monkeypatch):
    seen = []
    monkeypatch.setattr(cli, "TICK_JOBS", [
        cli.TickJob("probe", lambda now: seen.append(now) or cli.TickResult("probe: ok"))])
    result = runner.invoke(args=["tick"])
    assert result.exit_code == 0
    assert [moment.isoformat() for moment in seen] == [FIXED_NOW]
    assert result.output.strip() == "tick 2026-11-25 12:00:00 CST: probe: ok"


def test_send_test_mail_prints_and_audits(app, runner):
    result = runner.invoke(args=["send-test-mail", "ops@example.com", "--language", "en"])
    assert result.exit_code == 0, result.output
    assert "To: ops@example.com" in result.output
    assert result.output.strip().splitlines()[-1] == "test message #1 sent to ops@example.com"
    with app.app_context():
        audit = db.session.scalar(select(AuditEvent).where(
            AuditEvent.action == "outbox.test_queued"))
        assert audit.actor_label == "cli:send-test-mail"


def test_send_test_mail_reports_the_smtp_error_and_keeps_the_message(app, runner):
    app.config.update(MAIL_BACKEND="smtp", SMTP_PORT=_unused_port(), SMTP_TIMEOUT=5)
    result = runner.invoke(args=["send-test-mail", "ops@example.com"])
    assert result.exit_code == 1
    assert "Error: test message #1 not sent: SMTP 127.0.0.1:" in result.output
    assert _status(app, 1).status == OutboxStatus.PENDING


def test_send_test_mail_bad_address_names_the_field(app, runner):
    result = runner.invoke(args=["send-test-mail", "not-an-address"])
    assert result.exit_code == 1
    assert result.output.strip().startswith(
        "Error: email: e-mail 'not-an-address' is not valid:")
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(OutboxMessage)) == 0


def test_tick_loop_prints_busy_runs_and_stays_quiet_on_idle_repeats(app, runner,
                                                                    monkeypatch):
    results = iter([cli.TickResult("probe: sent 1", busy=True),
                    cli.TickResult("probe: sent 0", busy=False),
                    cli.TickResult("probe: sent 0", busy=False),
                    cli.TickResult("probe: sent 0", busy=False)])
    runs = []

    def probe(now):
        runs.append(now)
        if len(runs) == 4:
            os.kill(os.getpid(), signal.SIGTERM)  # handled by the loop: stop after this run
        return next(results)

    monkeypatch.setattr(cli, "TICK_JOBS", [cli.TickJob("probe", probe)])
    before = signal.getsignal(signal.SIGTERM)
    result = runner.invoke(args=["tick", "--loop", "--interval", "0.1"])
    assert result.exit_code == 0, result.output
    assert len(runs) == 4
    assert result.output.splitlines() == [
        "tick loop: probe every 0.1 s (Ctrl-C or SIGTERM stops)",
        "tick 2026-11-25 12:00:00 CST: probe: sent 1",
        "tick 2026-11-25 12:00:00 CST: probe: sent 0",
        "tick loop stopped",
    ]
    assert signal.getsignal(signal.SIGTERM) is before


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_tick_loop_sends_then_stops_cleanly_on_a_signal(tmp_path, stop):
    """``rma tick --loop`` in its own process against a file SQLite database."""
    url = f"sqlite:///{tmp_path / 'loop.sqlite3'}"
    app = make_app(url, tmp_path, MAIL_BACKEND="console")
    with app.app_context():
        db.create_all()
    message_id = _queue(app, to="loop@example.com")
    env = {**os.environ, "RMA_DATABASE_URL": url, "RMA_INSTANCE_PATH": str(tmp_path / "i"),
           "RMA_SECRET_KEY": "loop-test", "RMA_FIXED_NOW": FIXED_NOW,
           "RMA_MAIL_BACKEND": "console", "PYTHONUNBUFFERED": "1"}
    env.pop("RMA_TEST_DATABASE_URL", None)
    process = subprocess.Popen(
        [sys.executable, "-c", "from rma.cli import main; main()", "tick", "--loop",
         "--interval", "0.2"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    watchdog = threading.Timer(10, process.kill)
    watchdog.start()
    lines = []
    try:
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            if "mail: sent 1" in line:
                break
        process.send_signal(stop)
        rest, _ = process.communicate(timeout=5)
    finally:
        watchdog.cancel()
    output = "\n".join(lines) + "\n" + rest
    assert process.returncode == 0, output
    assert "To: loop@example.com" in output
    assert output.strip().splitlines()[-1] == "tick loop stopped"
    assert "Traceback" not in output
    assert _status(app, message_id).status == OutboxStatus.SENT
