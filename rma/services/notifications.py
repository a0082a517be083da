"""In-app notices to staff users (issue 6): escalations (R-I4), breach warnings, overdue
daily briefs (R-I6) and new incidents.

A ``Notification`` stores its ``kind`` and plain ``data`` (incident number, role code,
target code, China-time strings); it is put into words in the reader's language when
shown (``notification_text``), never when stored. ``notify`` only adds the row to the
session: the use case that raises the notice commits it with its own change, so a
rolled-back change leaves no notice behind.
"""

from __future__ import annotations

from collections.abc import Iterable

from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select, update
from sqlalchemy.orm import joinedload

from rma import clock
from rma.extensions import db
from rma.models import Incident, Notification, User
from rma.services import ForbiddenError
from rma.services.audit import Actor, record

#: kind -> text; ``%(name)s`` parameters come from ``Notification.data`` after
#: ``notification_text`` has put role, target and priority codes into words.
NOTIFICATION_TEXTS = {
    "incident_reported": _l("New %(priority)s incident %(number)s: %(title)s"),
    "escalation": _l("Incident %(number)s is not resolved %(hours)s h after the report: "
                     "escalated to you as %(role)s."),
    "escalation_deputy": _l("Incident %(number)s is not resolved %(hours)s h after the "
                            "report: escalated to the %(role)s; you are the deputy."),
    "escalation_unassigned": _l("Incident %(number)s reached the %(role)s rung (%(hours)s h) "
                                "but nobody holds that role, so nobody was told. Set a "
                                "holder on the escalation page."),
    "warning": _l("Incident %(number)s: the %(target)s target is due at %(due)s."),
    "warning_breached": _l("Incident %(number)s: the %(target)s target was due at %(due)s "
                           "and is breached."),
    "brief_overdue": _l("Incident %(number)s: the daily brief for %(day)s is missing."),
    # issue 7 (helper P1): R-A2, from the tick job "advisory-deadline"
    "advisory_due": _l("Advisory %(number)s (%(title)s) had to go to the affected customers "
                       "by %(due)s (R-A2) and no customer has been notified yet."),
}

#: R-I4 roles in words.
ESCALATION_ROLE_TEXTS = {
    "account_manager": _l("account manager"),
    "technical_lead": _l("technical lead"),
    "service_director": _l("service director"),
    "cto": _l("CTO"),
    "president": _l("president"),
}

#: The targets an incident is measured against (R-I1, R-I2, R-I4, R-I6), in words.
TARGET_TEXTS = {
    "contact": _l("contact"),
    "diagnosis": _l("diagnosis"),
    "resolution": _l("resolution"),
    "onsite_arrival": _l("on-site arrival"),
}

#: R-I3 priorities in words.
PRIORITY_TEXTS = {
    "urgent": _l("urgent"),
    "serious": _l("serious"),
    "general": _l("general"),
}


def notify(user: User, kind: str, data: dict, incident: Incident | None = None
           ) -> Notification:
    """Add an in-app notice for ``user`` to the session; the caller commits. ``data``
    holds the parameters of ``NOTIFICATION_TEXTS[kind]`` (plain JSON values)."""
    notification = Notification(
        user_id=user.id,
        incident_id=incident.id if incident is not None else None,
        kind=kind,
        data=dict(data),
        created_at=clock.now(),
    )
    db.session.add(notification)
    return notification


def unread_count(user: User) -> int:
    """How many of ``user``'s notices are unread (for the nav badge)."""
    return db.session.scalar(
        select(func.count()).select_from(Notification)
        .where(Notification.user_id == user.id, Notification.read_at.is_(None))
    ) or 0


def for_user(user: User, limit: int = 100) -> list[Notification]:
    """``user``'s latest notices, newest first, with their incidents loaded."""
    return list(db.session.scalars(
        select(Notification)
        .where(Notification.user_id == user.id)
        .options(joinedload(Notification.incident))
        .order_by(Notification.created_at.desc(), Notification.id.desc())
        .limit(limit)
    ))


def mark_read(actor: Actor, user: User, ids: Iterable[int] | None = None) -> int:
    """Mark ``user``'s unread notices read (all of them with ``ids`` None, else those
    among ``ids``); another user's ids are ignored. Only the user may mark their own
    notices (``ForbiddenError``). Audited when something changed; commits. Returns how
    many were marked."""
    if actor.user is None or actor.user.id != user.id:
        raise ForbiddenError("only the addressee can mark notifications read")
    conditions = [Notification.user_id == user.id, Notification.read_at.is_(None)]
    wanted: list[int] | None = None
    if ids is not None:
        wanted = sorted({int(i) for i in ids})
        if not wanted:
            return 0
        conditions.append(Notification.id.in_(wanted))
    now = clock.now()
    marked = db.session.execute(
        update(Notification).where(*conditions).values(read_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    if not marked:
        db.session.rollback()
        return 0
    record(actor, "notification.read", "user", user.id,
           after={"marked": marked, "ids": wanted if wanted is not None else "all"})
    db.session.commit()
    return marked


def notification_text(notification: Notification) -> str:
    """The notice in words, in the current language. A kind or parameter this version
    does not know gives a general sentence, never an error."""
    data = dict(notification.data) if isinstance(notification.data, dict) else {}
    for name, texts in (("role", ESCALATION_ROLE_TEXTS), ("target", TARGET_TEXTS),
                        ("priority", PRIORITY_TEXTS)):
        if name in data:
            data[name] = str(texts.get(str(data[name]), data[name]))
    text = NOTIFICATION_TEXTS.get(notification.kind)
    if text is not None:
        try:
            return str(text) % data
        except (KeyError, TypeError, ValueError):
            pass
    number = data.get("number") or (
        notification.incident.number if notification.incident is not None else "")
    return str(_l("Notice about incident %(number)s.", number=number)) if number else str(
        _l("Notice."))


__all__ = ["ESCALATION_ROLE_TEXTS", "NOTIFICATION_TEXTS", "PRIORITY_TEXTS", "TARGET_TEXTS",
           "for_user", "mark_read", "notification_text", "notify", "unread_count"]
