"""The transactional e-mail outbox: ``enqueue`` adds a message in the caller's
transaction (so a rolled-back change sends nothing and a committed one is never lost);
``rma tick`` sends what is due."""

from __future__ import annotations

from dataclasses import dataclass

from flask import render_template
from flask_babel import force_locale
from sqlalchemy import select

from rma import clock
from rma.extensions import db
from rma.models import OutboxAttachment, OutboxMessage


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

    With ``dedupe_key``, a message already queued under that key is not added again
    (returns ``None``)."""
    if dedupe_key is not None:
        existing = db.session.scalar(
            select(OutboxMessage.id).where(OutboxMessage.dedupe_key == dedupe_key)
        )
        if existing is not None:
            return None
    context = dict(context or {})
    with force_locale(language):
        subject = render_template(f"email/{template}.subject.txt", **context)
        body = render_template(f"email/{template}.txt", **context)
    message = OutboxMessage(
        created_at=clock.now(),
        template=template,
        to_address=to,
        language=language,
        subject=" ".join(subject.split())[:300],
        body_text=body,
        dedupe_key=dedupe_key,
        next_attempt_at=clock.now(),
    )
    message.attachments = [
        OutboxAttachment(filename=a.filename, content_type=a.content_type, data=a.data)
        for a in attachments
    ]
    db.session.add(message)
    return message
