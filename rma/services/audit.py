"""Audit trail (R-R4): who, what, when, before/after, in the caller's transaction."""

from __future__ import annotations

from typing import Any

from flask import has_request_context
from flask_login import current_user

from rma import clock
from rma.extensions import db
from rma.models import AuditEvent, User


class Actor:
    """Who performs a change: a logged-in user, or a named system actor (the CLI)."""

    def __init__(self, user: User | None = None, label: str | None = None):
        if user is None and not label:
            raise ValueError("an actor needs a user or a label")
        self.user = user
        self.label = label or user.email  # type: ignore[union-attr]

    @classmethod
    def cli(cls, command: str) -> Actor:
        return cls(label=f"cli:{command}")

    @classmethod
    def current(cls) -> Actor:
        if has_request_context() and current_user and current_user.is_authenticated:
            return cls(user=current_user._get_current_object())
        return cls(label="anonymous")


def record(
    actor: Actor,
    action: str,
    entity_type: str,
    entity_id: object,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEvent:
    """Add an audit event to the current session; the caller commits."""
    event = AuditEvent(
        at=clock.now(),
        actor_id=actor.user.id if actor.user is not None else None,
        actor_label=actor.label,
        action=action,
        entity_type=entity_type,
        entity_id=str(entity_id),
        before=before,
        after=after,
    )
    db.session.add(event)
    return event
