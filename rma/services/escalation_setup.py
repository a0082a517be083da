"""The escalation ladder (R-I4) as data, and who holds each role.

The ladder is the ``escalation_rungs`` table when it has rows, else the policy's
(SPEC's table, ``warranty.DEFAULT_ESCALATION_LADDER``). The holders are
``escalation_holders``: the account manager per customer (a row without a customer is
the fallback for customers without their own), the other roles global; each with an
optional deputy who is told too.

Changes are for administrators only (``ForbiddenError``; the CLI may act), validated by
the ``warranty.Policy`` ladder rules, audited before/after (R-R4) and committed once;
bad input raises ``SetupError`` (422) naming the field.
"""

from __future__ import annotations

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload

from rma.extensions import db
from rma.models import Customer, EscalationHolder, EscalationRung, Role, User
from rma.policy import current_policy
from rma.services import ForbiddenError, ValidationError, transaction
from rma.services.audit import Actor, record
from warranty.errors import PolicyError
from warranty.policy import PRIORITIES, ROLES, Policy

EDIT_ROLES = frozenset({Role.ADMIN})
HOURS_MAX = 8760  # the table's CHECK
ACCOUNT_MANAGER = "account_manager"
# Staff roles that may hold an escalation role (any active staff user).
HOLDER_ROLES = frozenset(Role) - {Role.CUSTOMER}

ROLE_LABELS = {
    "account_manager": _l("Account manager"),
    "technical_lead": _l("Technical lead"),
    "service_director": _l("Service director"),
    "cto": _l("CTO"),
    "president": _l("President"),
}


class SetupError(ValidationError, ValueError):
    """Bad input for the ladder or its holders (422); ``field`` names the form field."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message, field)


def _ensure_admin(actor: Actor) -> None:
    user = actor.user
    if user is not None and (not user.is_active or user.role not in EDIT_ROLES):
        raise ForbiddenError(_("Only an administrator may change the escalation setup."))


# -- the ladder -------------------------------------------------------------------------
def _ordered(rows) -> tuple[tuple[int, str, str], ...]:
    rank_p = {p: i for i, p in enumerate(PRIORITIES)}
    rank_r = {r: i for i, r in enumerate(ROLES)}
    return tuple(sorted(((int(h), p, r) for h, p, r in rows),
                        key=lambda row: (row[0], rank_p.get(row[1], 99), rank_r.get(row[2], 99))))


def current_ladder() -> tuple[tuple[int, str, str], ...]:
    """R-I4: the ladder's rows ``(hours, priority, role)``, by hours: the admin's table,
    or the policy's (SPEC's table) when the table is empty."""
    rows = db.session.execute(
        select(EscalationRung.hours, EscalationRung.priority, EscalationRung.role)).all()
    if not rows:
        return tuple(current_policy().escalation_ladder)
    return _ordered(tuple(row) for row in rows)


def ladder_is_default() -> bool:
    """True when no admin table is set (SPEC's ladder applies)."""
    return db.session.scalar(select(EscalationRung.id).limit(1)) is None


def _checked_rows(rows) -> tuple[tuple[int, str, str], ...]:
    try:
        raw = [tuple(row) for row in rows]
    except TypeError:
        raise SetupError(_("The ladder must be rows of hours, priority and role."),
                         "ladder") from None
    if not raw:
        raise SetupError(_("The ladder needs at least one rung; reset it to go back to the "
                           "table of the service commitment."), "ladder")
    cleaned = []
    for row in raw:
        if len(row) != 3:
            raise SetupError(_("The ladder must be rows of hours, priority and role."),
                             "ladder")
        hours, priority, role = row
        if isinstance(hours, str) and hours.strip().isdigit():
            hours = int(hours.strip())
        if isinstance(hours, bool) or not isinstance(hours, int) or not 1 <= hours <= HOURS_MAX:
            raise SetupError(_("%(role)s (%(priority)s): the hours must be a whole number "
                               "from 1 to %(max)d.", role=str(role), priority=str(priority),
                               max=HOURS_MAX), "ladder")
        cleaned.append((hours, str(priority).strip().lower(), str(role).strip().lower()))
    try:
        checked = Policy().with_overrides(escalation_ladder=cleaned).escalation_ladder
    except PolicyError as error:
        raise SetupError(_("The ladder is not valid: %(reason)s", reason=str(error)),
                         "ladder") from None
    return _ordered(checked)


def save_ladder(actor: Actor, rows: list[tuple[int, str, str]]) -> None:
    """Replace the ladder (R-I4) with ``rows`` of ``(hours, priority, role)``: hours
    1..8760, a known priority and role, each role at most once per priority. Audited with
    the ladder before and after; commits."""
    _ensure_admin(actor)
    checked = _checked_rows(rows)
    before = [list(row) for row in current_ladder()]
    default_before = ladder_is_default()
    with transaction():
        db.session.execute(delete(EscalationRung))
        db.session.add_all([EscalationRung(hours=h, priority=p, role=r) for h, p, r in checked])
        db.session.flush()
        record(actor, "escalation_ladder.saved", "escalation_ladder", "ladder",
               {"default": default_before, "rows": before},
               {"default": False, "rows": [list(row) for row in checked]})


def reset_ladder(actor: Actor) -> None:
    """Empty the table: SPEC's ladder (the policy's) applies again. Audited; commits."""
    _ensure_admin(actor)
    before = [list(row) for row in current_ladder()]
    default_before = ladder_is_default()
    with transaction():
        db.session.execute(delete(EscalationRung))
        record(actor, "escalation_ladder.reset", "escalation_ladder", "ladder",
               {"default": default_before, "rows": before},
               {"default": True, "rows": [list(row) for row in current_policy().escalation_ladder]})


# -- holders ------------------------------------------------------------------------------
def holders() -> list[EscalationHolder]:
    """Every holder row with its user, deputy and customer, in ladder role order (global
    rows before per-customer account managers, those by customer name)."""
    rows = db.session.scalars(
        select(EscalationHolder).options(
            joinedload(EscalationHolder.user), joinedload(EscalationHolder.deputy),
            joinedload(EscalationHolder.customer))).all()
    rank = {r: i for i, r in enumerate(ROLES)}
    return sorted(rows, key=lambda h: (rank.get(h.role, 99), h.customer_id is not None,
                                       h.customer.name if h.customer else "", h.id))


def _staff_user(user_id: object, field: str) -> User:
    try:
        key = int(user_id)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        key = None
    user = db.session.get(User, key) if key is not None and not isinstance(user_id, bool) else None
    if user is None:
        raise SetupError(_("Choose a staff user."), field)
    if not user.is_active or user.role not in HOLDER_ROLES:
        raise SetupError(_("%(email)s is not an active staff user.", email=user.email), field)
    return user


def set_holder(actor: Actor, role: str, user_id: int, deputy_id: int | None = None,
               customer_id: int | None = None) -> EscalationHolder:
    """Set who holds ``role`` (R-I4) and their deputy: an active staff user each, the
    deputy not the holder. Only the account manager may be per customer
    (``customer_id``); without one the row is the role's global holder (for the account
    manager: the fallback). Replaces the existing row for (role, customer). Audited;
    commits."""
    _ensure_admin(actor)
    role = str(role or "").strip().lower()
    if role not in ROLES:
        raise SetupError(_("Choose an escalation role."), "role")
    user = _staff_user(user_id, "user_id")
    deputy = _staff_user(deputy_id, "deputy_id") if deputy_id not in (None, "", 0) else None
    if deputy is not None and deputy.id == user.id:
        raise SetupError(_("The deputy must be someone other than the holder."), "deputy_id")
    customer = None
    if customer_id not in (None, "", 0):
        if role != ACCOUNT_MANAGER:
            raise SetupError(_("Only the account manager is set per customer."), "customer_id")
        try:
            customer = db.session.get(Customer, int(customer_id))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            customer = None
        if customer is None:
            raise SetupError(_("There is no such customer."), "customer_id")
    cid = customer.id if customer is not None else None
    try:
        with transaction():
            row = db.session.scalar(select(EscalationHolder).where(
                EscalationHolder.role == role,
                EscalationHolder.customer_id == cid if cid is not None
                else EscalationHolder.customer_id.is_(None)).with_for_update())
            before = row.as_audit() if row is not None else None
            if row is None:
                row = EscalationHolder(role=role, customer_id=cid)
                db.session.add(row)
            row.user_id = user.id
            row.deputy_id = deputy.id if deputy is not None else None
            db.session.flush()
            record(actor, "escalation_holder.set", "escalation_holder", row.id, before,
                   row.as_audit())
    except IntegrityError:
        raise SetupError(_("This role was changed at the same moment; try again."),
                         "role") from None
    return row


def remove_holder(actor: Actor, holder_id: int) -> None:
    """Remove a holder row (``SetupError``, field ``holder``, when there is none).
    Audited; commits."""
    _ensure_admin(actor)
    try:
        row = db.session.get(EscalationHolder, int(holder_id))
    except (TypeError, ValueError):
        row = None
    if row is None:
        raise SetupError(_("There is no such holder."), "holder")
    with transaction():
        before = row.as_audit()
        db.session.delete(row)
        record(actor, "escalation_holder.removed", "escalation_holder", holder_id, before, None)


def recipients_for(role: str, customer_id: int) -> list[tuple[User, str]]:
    """Who is told when an incident of ``customer_id`` reaches ``role`` (R-I4):
    ``[(holder, "holder"), (deputy, "deputy")]``, active users only. The account manager
    is the customer's own row, else the global one; other roles are global. ``[]`` when
    nobody holds the role."""
    stmt = select(EscalationHolder).options(
        joinedload(EscalationHolder.user), joinedload(EscalationHolder.deputy)
    ).where(EscalationHolder.role == role)
    row = None
    if role == ACCOUNT_MANAGER and customer_id is not None:
        row = db.session.scalar(stmt.where(EscalationHolder.customer_id == customer_id))
    if row is None:
        row = db.session.scalar(stmt.where(EscalationHolder.customer_id.is_(None)))
    if row is None:
        return []
    found: list[tuple[User, str]] = []
    if row.user is not None and row.user.is_active:
        found.append((row.user, "holder"))
    if row.deputy is not None and row.deputy.is_active and row.deputy.id != row.user_id:
        found.append((row.deputy, "deputy"))
    return found


__all__ = ["ROLE_LABELS", "SetupError", "current_ladder", "holders", "ladder_is_default",
           "recipients_for", "remove_holder", "reset_ladder", "save_ladder", "set_holder"]
