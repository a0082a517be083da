"""The transactional e-mail outbox: ``enqueue`` adds a message in the caller's
transaction (so a rolled-back change sends nothing and a committed one is never lost);
``send_due`` (run by ``rma tick``) sends what is due.

Delivery is at least once, and exactly once unless the process dies in the window
between the mail server accepting a message and the ``sent`` mark being committed (a
few milliseconds per message): then the claim expires after ``CLAIM_LEASE`` and the
message is sent again, with the same Message-ID (``rma.mail.message_id``) so the
duplicate is recognisable. Two workers never send the same row at the same time: each
claims rows first (PostgreSQL ``FOR UPDATE SKIP LOCKED``; elsewhere a conditional
``UPDATE`` whose row count says who won) and sends outside any database transaction.

A failed send is retried with back-off (1, 2, 4, 8 ... minutes, at most 60); a message
is never given up or deleted. A sent message is recorded on its row (``sent_at``), not in
the audit trail, which would otherwise fill with one event per e-mail.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask import current_app, render_template
from flask_babel import force_locale
from sqlalchemy import and_, case, func, or_, select, update

from rma import clock, mail
from rma.extensions import db
from rma.models import OutboxAttachment, OutboxMessage, OutboxStatus
from rma.services import ValidationError
from rma.services.audit import Actor, record
from rma.services.users import normalize_email

log = logging.getLogger(__name__)

# A claim is a lease: a worker that dies leaves its rows to others after this long. It
# must outlast one batch; ``send_due`` stops a batch at half the lease to stay inside it.
CLAIM_LEASE = timedelta(minutes=5)
BACKOFF_FIRST = timedelta(minutes=1)
BACKOFF_MAX = timedelta(minutes=60)
_ERROR_MAX = 2000
_monotonic = time.monotonic  # elapsed time of a batch; tests replace it


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    data: bytes


def enqueue(
    *,
    to: str,
    language: str,
    template: str,
    context: dict | None = None,
    attachments: list[Attachment] | tuple[Attachment, ...] = (),
    dedupe_key: str | None = None,
) -> OutboxMessage | None:
    """Render ``templates/email/<template>.subject.txt`` and ``.txt`` in ``language``
    (``zh_CN`` or ``en``) and add the message to the session; the caller commits.

    With ``dedupe_key``, a message already queued under that key (committed, or added
    earlier in this session) is not added again (returns ``None``); the unique index on
    ``dedupe_key`` stops a concurrent duplicate at commit."""
    if dedupe_key is not None:
        pending = any(isinstance(obj, OutboxMessage) and obj.dedupe_key == dedupe_key
                      for obj in db.session.new)
        existing = pending or db.session.scalar(
            select(OutboxMessage.id).where(OutboxMessage.dedupe_key == dedupe_key)
        )
        if existing:
            return None
    context = dict(context or {})
    with force_locale(language):
        subject = render_template(f"email/{template}.subject.txt", **context)
        body = render_template(f"email/{template}.txt", **context)
    now = clock.now()
    message = OutboxMessage(
        created_at=now,
        template=template,
        to_address=to,
        language=language,
        subject=" ".join(subject.split())[:300],
        body_text=body,
        dedupe_key=dedupe_key,
        status=OutboxStatus.PENDING,
        attempts=0,
        next_attempt_at=now,
    )
    message.attachments = [
        OutboxAttachment(filename=a.filename, content_type=a.content_type, data=a.data)
        for a in attachments
    ]
    db.session.add(message)
    return message


def queue_test_message(actor: Actor, to: str, language: str = "zh_CN") -> OutboxMessage:
    """Queue the ``test`` e-mail to ``to`` (``rma send-test-mail``), audited; commits."""
    address = normalize_email(to)
    if language not in current_app.config["LANGUAGES"]:
        raise ValidationError(f"language {language!r} is not supported", field="language")
    message = enqueue(to=address, language=language, template="test")
    assert message is not None  # no dedupe key, so always queued
    db.session.flush()
    record(actor, "outbox.test_queued", "outbox_message", message.id,
           after={"to": address, "language": language})
    db.session.commit()
    return message


# -- sending -------------------------------------------------------------------------
@dataclass
class SendReport:
    """What one ``send_due`` run did. ``failed`` counts failed attempts (still pending)."""

    sent: int = 0
    failed: int = 0
    released: int = 0  # claimed but left for the next run (batch ran out of lease time)
    errors: list[tuple[int, str]] = field(default_factory=list)
    sent_ids: list[int] = field(default_factory=list)


def backoff(attempts: int) -> timedelta:
    """Delay before the next try after ``attempts`` failed ones: 1, 2, 4 ... 60 minutes."""
    if attempts < 1:
        return timedelta(0)
    return min(BACKOFF_FIRST * (2 ** min(attempts - 1, 16)), BACKOFF_MAX)


def default_worker_id() -> str:
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{secrets.token_hex(4)}"


def send_due(now: datetime | None = None, batch: int = 50,
             worker_id: str | None = None) -> SendReport:
    """Send up to ``batch`` due messages (pending, ``next_attempt_at <= now``, not under a
    live claim) and record each outcome.

    Raises ``mail.MailConfigError`` before claiming anything when the mail settings are
    unusable. Time comes from ``now`` (default ``clock.now()``); tests pass it."""
    backend = mail.backend_from_config(current_app.config)
    stamp: Callable[[], datetime] = (lambda: now) if now is not None else clock.now
    start = stamp()
    worker = (worker_id or default_worker_id())[:100]
    report = SendReport()
    ids = _claim(start, batch, worker)
    started = _monotonic()
    budget = CLAIM_LEASE.total_seconds() / 2
    try:
        for index, message_id in enumerate(ids):
            if _monotonic() - started > budget:
                report.released += _release(ids[index:], worker)
                break
            outgoing = _load(message_id, worker)
            if outgoing is None:  # gone or no longer ours: nothing to send
                continue
            try:
                backend.send(outgoing, now=stamp())
            except mail.TransportError as error:
                # The server is unreachable: every remaining message would fail the same
                # way, so record one failed attempt on each instead of waiting on each.
                for rest in ids[index:]:
                    if _mark_failed(rest, worker, str(error), stamp()):
                        report.failed += 1
                        report.errors.append((rest, str(error)))
                break
            except Exception as error:  # noqa: BLE001 - any failure is recorded and retried
                text = f"{type(error).__name__}: {error}"
                log.warning("outbox message %s not sent: %s", message_id, text)
                if _mark_failed(message_id, worker, text, stamp()):
                    report.failed += 1
                    report.errors.append((message_id, text))
                continue
            _mark_sent(message_id, worker, stamp())
            report.sent += 1
            report.sent_ids.append(message_id)
    finally:
        backend.close()
    return report


def _due(now: datetime):
    return and_(
        OutboxMessage.status == OutboxStatus.PENDING,
        OutboxMessage.next_attempt_at <= now,
        or_(OutboxMessage.claimed_until.is_(None), OutboxMessage.claimed_until < now),
    )


# The sending side works on its own connections, one short transaction each, so it never
# touches (or commits) whatever the caller's ORM session holds.
def _claim(now: datetime, batch: int, worker: str) -> list[int]:
    """Claim up to ``batch`` due rows for ``worker`` in one short committed transaction."""
    engine = db.engine
    until = now + CLAIM_LEASE
    candidates = (select(OutboxMessage.id).where(_due(now))
                  .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id).limit(batch))
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            ids = list(conn.scalars(candidates.with_for_update(skip_locked=True)))
            if ids:
                conn.execute(update(OutboxMessage).where(OutboxMessage.id.in_(ids))
                             .values(claimed_by=worker, claimed_until=until))
        return ids
    # No SKIP LOCKED: read candidates, then claim each with an UPDATE that repeats the due
    # condition; rowcount 0 means another worker claimed it first. The read ends before
    # the writing transaction starts, so SQLite's busy timeout (not a stale-snapshot
    # error) governs a concurrent writer.
    with engine.connect() as conn:
        found = list(conn.scalars(candidates))
    ids = []
    if found:
        with engine.begin() as conn:
            for candidate in found:
                result = conn.execute(
                    update(OutboxMessage).where(OutboxMessage.id == candidate, _due(now))
                    .values(claimed_by=worker, claimed_until=until)
                )
                if result.rowcount == 1:
                    ids.append(candidate)
    return ids


def _load(message_id: int, worker: str) -> mail.OutgoingMail | None:
    """Copy one claimed row into plain data; the connection is returned before sending, so
    no transaction stays open while the mail server talks. One row at a time keeps memory
    bounded when attachments are large (two queries per message)."""
    with db.engine.connect() as conn:
        row = conn.execute(
            select(OutboxMessage.id, OutboxMessage.created_at, OutboxMessage.to_address,
                   OutboxMessage.subject, OutboxMessage.body_text, OutboxMessage.body_html,
                   OutboxMessage.language)
            .where(OutboxMessage.id == message_id,
                   OutboxMessage.status == OutboxStatus.PENDING,
                   OutboxMessage.claimed_by == worker)
        ).one_or_none()
        if row is None:
            return None
        attachments = conn.execute(
            select(OutboxAttachment.filename, OutboxAttachment.content_type,
                   OutboxAttachment.data)
            .where(OutboxAttachment.message_id == message_id).order_by(OutboxAttachment.id)
        ).all()
    return mail.OutgoingMail(
        outbox_id=row.id,
        created_at=row.created_at,
        to=row.to_address,
        subject=row.subject,
        body_text=row.body_text,
        body_html=row.body_html,
        language=row.language,
        attachments=tuple(mail.MailAttachment(a.filename, a.content_type, bytes(a.data))
                          for a in attachments),
    )


def _mark_sent(message_id: int, worker: str, at: datetime) -> None:
    # Only ``status`` guards this: the message did go out, so that is recorded even if our
    # claim had lapsed (which the lease budget in ``send_due`` avoids).
    with db.engine.begin() as conn:
        result = conn.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message_id,
                   OutboxMessage.status == OutboxStatus.PENDING)
            .values(status=OutboxStatus.SENT, sent_at=at, claimed_by=None,
                    claimed_until=None, attempts=OutboxMessage.attempts + 1)
        )
    if result.rowcount != 1:
        log.warning("outbox message %s was sent by %s but was already marked sent: "
                    "it may have been delivered twice", message_id, worker)


def _mark_failed(message_id: int, worker: str, error: str, at: datetime) -> bool:
    """One more failed attempt: back off and release the claim. False if not ours."""
    with db.engine.begin() as conn:
        attempts = conn.scalar(
            select(OutboxMessage.attempts).where(OutboxMessage.id == message_id,
                                                 OutboxMessage.claimed_by == worker)
        )
        if attempts is None:
            return False
        result = conn.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == message_id,
                   OutboxMessage.status == OutboxStatus.PENDING,
                   OutboxMessage.claimed_by == worker)
            .values(attempts=attempts + 1, last_error=error[:_ERROR_MAX],
                    next_attempt_at=at + backoff(attempts + 1),
                    claimed_by=None, claimed_until=None)
        )
    return result.rowcount == 1


def _release(ids: list[int], worker: str) -> int:
    """Give claimed rows back untouched (no attempt counted)."""
    with db.engine.begin() as conn:
        result = conn.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(ids), OutboxMessage.claimed_by == worker,
                   OutboxMessage.status == OutboxStatus.PENDING)
            .values(claimed_by=None, claimed_until=None)
        )
    return result.rowcount


# -- reporting -----------------------------------------------------------------------
@dataclass(frozen=True)
class PendingSummary:
    pending: int
    failing: int  # pending with at least one failed attempt
    due: int
    oldest_created_at: datetime | None
    last_error: str | None  # of the pending message that failed most recently


def pending_summary(now: datetime | None = None) -> PendingSummary:
    """Counts of unsent messages for ``rma tick`` and monitoring (two queries)."""
    now = now or clock.now()
    pending = OutboxMessage.status == OutboxStatus.PENDING
    row = db.session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(case((OutboxMessage.attempts > 0, 1), else_=0)), 0),
            func.coalesce(func.sum(case((OutboxMessage.next_attempt_at <= now, 1), else_=0)),
                          0),
            func.min(OutboxMessage.created_at),
        ).where(pending)
    ).one()
    last_error = None
    if row[1]:
        last_error = db.session.scalar(
            select(OutboxMessage.last_error)
            .where(pending, OutboxMessage.attempts > 0)
            .order_by(OutboxMessage.next_attempt_at.desc(), OutboxMessage.id.desc()).limit(1)
        )
    return PendingSummary(pending=row[0], failing=int(row[1]), due=int(row[2]),
                          oldest_created_at=row[3], last_error=last_error)
