"""E-mail backends: turn one outbox message (plain data) into a MIME message and deliver it.

``MAIL_BACKEND`` picks the backend: ``console`` prints each message to standard output
(the default of ``make run``), ``smtp`` sends it with ``smtplib`` using the ``SMTP_*``
settings. ``backend_from_config`` checks every setting before anything is sent and raises
``MailConfigError`` with one clear line, so a typo stops ``rma tick`` at start instead of
failing mid-send.

This module knows nothing of the database: ``rma.services.outbox`` claims rows, copies
them into ``OutgoingMail`` and records the outcome.
"""

from __future__ import annotations

import os
import smtplib
import ssl
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from typing import Any, Protocol

BACKENDS = ("console", "smtp")
TLS_MODES = ("none", "starttls", "ssl")


class MailConfigError(Exception):
    """A ``MAIL_*``/``SMTP_*`` setting is unusable (unknown backend or TLS mode, bad port,
    sender without a domain). Raised before any message is claimed or sent."""


class TransportError(Exception):
    """The mail server could not be reached or refused the session (connection, TLS,
    log-in). Every message of the batch would fail the same way."""


@dataclass(frozen=True)
class MailAttachment:
    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class OutgoingMail:
    """One outbox row as plain data, copied out of the database session before sending."""

    outbox_id: int
    created_at: datetime
    to: str
    subject: str
    body_text: str
    body_html: str | None = None
    language: str = "zh_CN"
    attachments: Sequence[MailAttachment] = field(default_factory=tuple)


class Backend(Protocol):
    def send(self, mail: OutgoingMail, *, now: datetime) -> None: ...

    def close(self) -> None: ...


# -- settings ------------------------------------------------------------------------
def _text(config: Mapping[str, Any], key: str) -> str:
    """A text setting as typed. ``from_prefixed_env`` JSON-decodes ``RMA_*`` values, so a
    numeric password such as ``RMA_SMTP_PASSWORD=12345678`` arrives as an int: take the
    raw environment text then."""
    value = config.get(key)
    if isinstance(value, str):
        return value
    raw = os.environ.get(f"RMA_{key}")
    if raw is not None:
        return raw
    return "" if value is None else str(value)


def _number(config: Mapping[str, Any], key: str, low: float, high: float) -> float:
    value = config.get(key)
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise MailConfigError(f"{key} must be a number, not {value!r}") from None
    if not low <= number <= high:
        raise MailConfigError(f"{key} {value!r} is out of range ({low:g} to {high:g})")
    return number


def sender_address(config: Mapping[str, Any]) -> tuple[str, str]:
    """``MAIL_FROM`` as (header value, bare address); the address must have a domain."""
    header = _text(config, "MAIL_FROM").strip()
    address = parseaddr(header)[1]
    if "@" not in address or not address.rsplit("@", 1)[1]:
        raise MailConfigError(
            f"MAIL_FROM {header!r} is not an e-mail address (e.g. rma@example.com or "
            "'RMA Service <rma@example.com>')"
        )
    return header, address


def backend_from_config(config: Mapping[str, Any]) -> Backend:
    """The backend named by ``MAIL_BACKEND``, its settings checked.

    Raises ``MailConfigError`` for an unknown backend or TLS mode, a bad port or timeout,
    or a ``MAIL_FROM`` without a domain."""
    name = _text(config, "MAIL_BACKEND").strip().lower()
    if name not in BACKENDS:
        raise MailConfigError(
            f"MAIL_BACKEND {name!r} is unknown; use one of: {', '.join(BACKENDS)}"
        )
    sender, envelope_from = sender_address(config)
    if name == "console":
        return ConsoleBackend(sender)
    tls = _text(config, "SMTP_TLS").strip().lower() or "none"
    if tls not in TLS_MODES:
        raise MailConfigError(f"SMTP_TLS {tls!r} is unknown; use one of: {', '.join(TLS_MODES)}")
    host = _text(config, "SMTP_HOST").strip()
    if not host:
        raise MailConfigError("SMTP_HOST is empty")
    user = _text(config, "SMTP_USER")
    password = _text(config, "SMTP_PASSWORD")
    if password and not user:
        raise MailConfigError("SMTP_PASSWORD is set but SMTP_USER is empty")
    return SmtpBackend(
        sender=sender,
        envelope_from=envelope_from,
        host=host,
        port=int(_number(config, "SMTP_PORT", 1, 65535)),
        tls=tls,
        user=user,
        password=password,
        timeout=_number(config, "SMTP_TIMEOUT", 1, 600),
    )


# -- message -------------------------------------------------------------------------
def message_id(mail: OutgoingMail, sender_address: str) -> str:
    """Stable per outbox row, so a resend after a crash carries the same Message-ID and
    mail clients and servers can recognise the duplicate."""
    domain = sender_address.rsplit("@", 1)[1]
    return f"<outbox-{mail.outbox_id}.{int(mail.created_at.timestamp())}@{domain}>"


def build_message(mail: OutgoingMail, sender: str, *, now: datetime) -> EmailMessage:
    """A UTF-8 MIME message: text body (plus HTML alternative when present) and the
    attachments with their content types, byte for byte."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = mail.to
    message["Subject"] = mail.subject
    message["Date"] = format_datetime(now)
    message["Message-ID"] = message_id(mail, parseaddr(sender)[1])
    # Transactional mail: tells auto-responders not to answer (RFC 3834).
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(mail.body_text, charset="utf-8")
    if mail.body_html:
        message.add_alternative(mail.body_html, subtype="html", charset="utf-8")
    for attachment in mail.attachments:
        maintype, _, subtype = attachment.content_type.partition("/")
        if not maintype or not subtype:
            maintype, subtype = "application", "octet-stream"
        message.add_attachment(attachment.data, maintype=maintype, subtype=subtype,
                               filename=attachment.filename)
    # Set last: set_content and add_attachment move Content-* headers into the parts.
    message["Content-Language"] = mail.language.replace("_", "-")
    return message


# -- backends ------------------------------------------------------------------------
class ConsoleBackend:
    """Prints each message, readable (decoded text, attachments by name and size)."""

    def __init__(self, sender: str):
        self.sender = sender

    def send(self, mail: OutgoingMail, *, now: datetime) -> None:
        message = build_message(mail, self.sender, now=now)  # same checks as SMTP
        lines = [
            f"----- e-mail (outbox #{mail.outbox_id}) -----",
            f"From: {self.sender}",
            f"To: {mail.to}",
            f"Subject: {mail.subject}",
            f"Message-ID: {message['Message-ID']}",
            "",
            mail.body_text.rstrip("\n"),
        ]
        for attachment in mail.attachments:
            lines.append(f"[attachment: {attachment.filename} ({attachment.content_type}, "
                         f"{len(attachment.data)} bytes)]")
        lines.append("----- end of e-mail -----")
        # sys.stdout looked up per call, so a CLI test runner captures it.
        print("\n".join(lines), file=sys.stdout, flush=True)

    def close(self) -> None:
        pass


class SmtpBackend:
    """One SMTP connection per batch, opened on the first message and reused.

    Connection, TLS and log-in failures raise ``TransportError`` (the whole batch would
    fail); a refusal of one message (recipient refused, data rejected) raises the
    ``smtplib`` error for that message only."""

    def __init__(self, *, sender: str, envelope_from: str, host: str, port: int, tls: str,
                 user: str, password: str, timeout: float):
        self.sender = sender
        self.envelope_from = envelope_from
        self.host = host
        self.port = port
        self.tls = tls
        self.user = user
        self.password = password
        self.timeout = timeout
        self._smtp: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        try:
            if self.tls == "ssl":
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                    self.host, self.port, timeout=self.timeout,
                    context=ssl.create_default_context())
            else:
                smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            try:
                smtp.ehlo()
                if self.tls == "starttls":
                    smtp.starttls(context=ssl.create_default_context())
                    smtp.ehlo()
                if self.user:
                    smtp.login(self.user, self.password)
            except BaseException:
                smtp.close()
                raise
        except (OSError, smtplib.SMTPException) as error:
            raise TransportError(
                f"SMTP {self.host}:{self.port} ({self.tls}): {_describe(error)}"
            ) from error
        return smtp

    def send(self, mail: OutgoingMail, *, now: datetime) -> None:
        message = build_message(mail, self.sender, now=now)
        if self._smtp is None:
            self._smtp = self._connect()
        try:
            self._smtp.send_message(message, from_addr=self.envelope_from, to_addrs=[mail.to])
        except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused,
                smtplib.SMTPDataError, smtplib.SMTPNotSupportedError):
            self._reset()
            raise
        except (OSError, smtplib.SMTPException) as error:
            self.close()
            raise TransportError(
                f"SMTP {self.host}:{self.port}: {_describe(error)}"
            ) from error

    def _reset(self) -> None:
        # After a refused message the session may be mid-transaction: RSET before reuse.
        try:
            self._smtp.rset()  # type: ignore[union-attr]
        except (OSError, smtplib.SMTPException):
            self.close()

    def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        try:
            smtp.quit()
        except (OSError, smtplib.SMTPException):
            smtp.close()


def _describe(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return f"{type(error).__name__}: {text}" if type(error).__name__ not in text else text
