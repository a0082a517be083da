"""Use cases: the only code that commits. Each writes its audit event in the same
transaction (R-R4) and commits once; an error rolls back (STYLE habit 4)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from flask_babel import gettext as _

from rma.extensions import db


class ServiceError(Exception):
    """A refusal a user can understand. ``field`` names the form field or CSV column."""

    status = 400

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


class ValidationError(ServiceError):
    status = 422


class NotFoundError(ServiceError):
    status = 404


class ConflictError(ServiceError):
    status = 409


class ForbiddenError(ServiceError):
    status = 403


def clean_text(raw: object, field: str, limit: int, *, required: str | None = None,
               error: type[ServiceError] = ValidationError) -> str:
    """``raw`` stripped: ``None`` counts as empty, anything but text is refused; empty is
    refused with the message ``required`` when one is given, and at most ``limit``
    characters are accepted. Refusals raise ``error(message, field)``."""
    if raw is None:
        raw = ""
    if not isinstance(raw, str):
        raise error(_("This value must be text."), field)
    text = raw.strip()
    if required is not None and not text:
        raise error(required, field)
    if len(text) > limit:
        raise error(_("At most %(max)d characters.", max=limit), field)
    return text


@contextmanager
def transaction() -> Iterator[None]:
    """One unit of work: commit at the end, roll back on any error (and re-raise it)."""
    try:
        yield
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
