"""Invitations (a one-time link to set a password and join a customer) and the
colleagues a customer admin manages.

Only the SHA-256 of an invitation token is stored: a token is looked up by its hash, so
comparing it is constant-time by construction and a database leak gives no usable link.
Every change writes its audit event in the same transaction (R-R4).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app, has_request_context
from flask_babel import gettext
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from rma import clock
from rma.extensions import db
from rma.models import Customer, Invitation, Role, User
from rma.services import ConflictError, ForbiddenError, NotFoundError, ServiceError, ValidationError
from rma.services.audit import Actor, record
from rma.services.outbox import enqueue
from rma.services.users import check_password_rules, hash_password, normalize_email

# secrets.token_urlsafe(32) gives 43 characters of [A-Za-z0-9_-]; anything else is unknown.
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{20,100}$")
LANGUAGES = ("zh_CN", "en")


def _(message: str, **variables) -> str:
    """gettext in a request (the reader's language); the English text elsewhere (CLI,
    service tests), where Flask-Babel's locale selector has no session to read."""
    if has_request_context():
        return gettext(message, **variables)
    return message % variables if variables else message


class InvitationUnusableError(ServiceError):
    """The link cannot be used. ``reason`` is ``unknown`` (404), ``expired``, ``used`` or
    ``revoked`` (410); ``invitation`` is set for the last three."""

    def __init__(self, reason: str, invitation: Invitation | None = None):
        messages = {
            "unknown": _("This invitation link is not known. Check that you copied the whole "
                         "link, or ask for a new invitation."),
            "expired": _("This invitation has expired. Ask the person who invited you to send "
                         "a new one."),
            "used": _("This invitation has already been used. Log in with your e-mail and "
                      "password."),
            "revoked": _("This invitation was withdrawn. Ask the person who invited you to send "
                         "a new one."),
        }
        super().__init__(messages[reason])
        self.reason = reason
        self.invitation = invitation
        self.status = 404 if reason == "unknown" else 410


def token_digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def invitation_link(raw: str) -> str:
    return f"{current_app.config['PUBLIC_URL'].rstrip('/')}/invite/{raw}"


def is_live(invitation: Invitation, now: datetime | None = None) -> bool:
    """Neither accepted, revoked nor expired."""
    moment = now or clock.now()
    return (invitation.accepted_at is None and invitation.revoked_at is None
            and invitation.expires_at > moment)


def _language(raw: str | None) -> str:
    if raw in (None, ""):
        return "zh_CN"
    if raw not in LANGUAGES:
        raise ValidationError(_("Choose Chinese or English."), "language")
    return raw


def _role(raw) -> Role:
    try:
        return Role(str(raw).strip().lower())
    except ValueError:
        raise ValidationError(_("Unknown role."), "role") from None


def _live_for_email(email: str) -> list[Invitation]:
    return list(db.session.scalars(
        select(Invitation).where(
            Invitation.email == email,
            Invitation.accepted_at.is_(None),
            Invitation.revoked_at.is_(None),
            Invitation.expires_at > clock.now(),
        ).with_for_update()
    ))


def add_invitation(
    actor: Actor,
    email: str,
    role: str | Role,
    customer_id: int | None,
    is_customer_admin: bool,
    language: str | None,
) -> tuple[Invitation, str]:
    """``invite`` inside the caller's transaction, without its e-mail (registration
    approval sends its own). Returns the invitation and the raw token (shown once)."""
    address = normalize_email(email)
    role_value = _role(role)
    customer = None
    if role_value == Role.CUSTOMER:
        customer = db.session.get(Customer, customer_id) if customer_id is not None else None
        if customer is None:
            raise NotFoundError(_("No such customer."), "customer")
    elif customer_id is not None or is_customer_admin:
        raise ValidationError(_("Only customer users belong to a customer."), "role")
    lang = _language(language)
    if db.session.scalar(select(User.id).where(User.email == address)) is not None:
        raise ConflictError(
            _("%(email)s already has an account: that person can log in.", email=address),
            "email")
    actor_customer = actor.user.customer_id if actor.user is not None else None
    for older in _live_for_email(address):
        if actor_customer is not None and older.customer_id != actor_customer:
            # A customer admin never withdraws another organisation's invitation.
            raise ConflictError(
                _("%(email)s already has a pending invitation from another organisation.",
                  email=address), "email")
        before = older.as_audit()
        older.revoked_at = clock.now()
        record(actor, "invitation.revoked", "invitation", older.id, before, older.as_audit())
    raw = secrets.token_urlsafe(32)
    invitation = Invitation(
        email=address,
        role=role_value,
        customer_id=customer.id if customer is not None else None,
        is_customer_admin=bool(is_customer_admin) and customer is not None,
        language=lang,
        token_hash=token_digest(raw),
        invited_by_id=actor.user.id if actor.user is not None else None,
        created_at=clock.now(),
        expires_at=clock.now() + timedelta(days=int(current_app.config["INVITATION_DAYS"])),
    )
    db.session.add(invitation)
    db.session.flush()
    record(actor, "invitation.created", "invitation", invitation.id, None, invitation.as_audit())
    return invitation, raw


def expiry_text(invitation: Invitation) -> str:
    """The expiry instant in the service's zone (China time), for e-mails and pages."""
    return clock.to_local(invitation.expires_at).strftime("%Y-%m-%d %H:%M")


def invite(
    actor: Actor,
    email: str,
    role: str | Role,
    customer_id: int | None,
    is_customer_admin: bool = False,
    language: str | None = "zh_CN",
) -> tuple[Invitation, str]:
    """Invite someone to set a password and join ``customer_id`` (or the staff).

    The token comes from ``secrets.token_urlsafe(32)``; only its SHA-256 is kept. The
    link expires after ``INVITATION_DAYS``. One live invitation per e-mail: inviting
    again withdraws the older one. Raises ``ConflictError`` when the e-mail already has a
    user (or, for a customer admin, a live invitation of another organisation).
    """
    try:
        invitation, raw = add_invitation(actor, email, role, customer_id, is_customer_admin,
                                         language)
        customer = invitation.customer
        inviter = actor.user
        enqueue(
            to=invitation.email,
            language=invitation.language,
            template="invitation",
            context={
                "organisation": customer.name if customer is not None else "",
                "contract_number": customer.contract_number if customer is not None else "",
                "inviter": (inviter.full_name or inviter.email) if inviter is not None else "",
                "is_customer_admin": invitation.is_customer_admin,
                "link": invitation_link(raw),
                "expires": expiry_text(invitation),
                "vendor": current_app.config["VENDOR_NAME"],
            },
        )
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return invitation, raw


def invitation_for_token(raw: str, lock: bool = False) -> Invitation:
    """The live invitation behind a link; raises ``InvitationUnusableError`` saying why
    it cannot be used (unknown, expired, used, revoked)."""
    if not raw or not _TOKEN.match(raw):
        raise InvitationUnusableError("unknown")
    stmt = select(Invitation).where(Invitation.token_hash == token_digest(raw))
    if lock:
        stmt = stmt.with_for_update()
    invitation = db.session.scalar(stmt)
    if invitation is None:
        raise InvitationUnusableError("unknown")
    if invitation.accepted_at is not None:
        raise InvitationUnusableError("used", invitation)
    if invitation.revoked_at is not None:
        raise InvitationUnusableError("revoked", invitation)
    if invitation.expires_at <= clock.now():
        raise InvitationUnusableError("expired", invitation)
    return invitation


def password_hint() -> str:
    return _("At least %(n)d characters, at least 4 different ones, not only digits.",
             n=int(current_app.config["PASSWORD_MIN_LENGTH"]))


def check_password(password: str) -> None:
    """``users.check_password_rules`` with its refusal in the reader's language."""
    try:
        check_password_rules(password)
    except ValidationError:
        raise ValidationError(
            _("This password is too weak.") + " " + password_hint(), "password") from None


def _text(raw: str | None, field: str, limit: int, required: bool = True) -> str:
    value = " ".join((raw or "").split())
    if required and not value:
        raise ValidationError(_("This field is required."), field)
    if len(value) > limit:
        raise ValidationError(_("At most %(n)d characters.", n=limit), field)
    return value


def accept_invitation(
    raw: str,
    full_name: str,
    phone: str,
    password: str,
    password_confirm: str,
    language: str | None,
) -> User:
    """Create the invited user (role, customer and admin flag as invited), mark the
    invitation accepted and record the first log-in; the caller logs the user in.

    Raises ``InvitationUnusableError`` for a link that cannot be used, and
    ``ValidationError`` (with ``field``) for the form."""
    try:
        invitation = invitation_for_token(raw, lock=True)
        name = _text(full_name, "full_name", 200)
        tel = _text(phone, "phone", 64)
        lang = _language(language)
        check_password(password)
        if password != password_confirm:
            raise ValidationError(_("The two passwords are not the same."), "password_confirm")
        if db.session.scalar(select(User.id).where(User.email == invitation.email)):
            raise ConflictError(
                _("%(email)s already has an account: log in instead.", email=invitation.email))
        now = clock.now()
        user = User(
            email=invitation.email,
            role=invitation.role,
            customer_id=invitation.customer_id,
            is_customer_admin=invitation.is_customer_admin,
            full_name=name,
            phone=tel,
            language=lang,
            password_hash=hash_password(password),
            created_at=now,
            last_login_at=now,
        )
        db.session.add(user)
        db.session.flush()
        actor = Actor(user=user)
        record(actor, "user.created", "user", user.id, None,
               {**user.as_audit(), "invitation_id": invitation.id})
        before = invitation.as_audit()
        invitation.accepted_at = now
        invitation.user_id = user.id
        record(actor, "invitation.accepted", "invitation", invitation.id, before,
               invitation.as_audit())
        record(actor, "user.logged_in", "user", user.id)
        db.session.commit()
    except IntegrityError:
        # Two tabs accepting at once: the e-mail's unique index decides.
        db.session.rollback()
        raise InvitationUnusableError("used") from None
    except Exception:
        db.session.rollback()
        raise
    return user


# -- colleagues: a customer admin manages the users of their own customer ---------------
def _admin_of(actor: Actor) -> User:
    user = actor.user
    if (user is None or user.role != Role.CUSTOMER or not user.is_customer_admin
            or not user.is_active):
        raise ForbiddenError(_("Only your organisation's administrators manage its users."))
    return user


def _lock_customer(customer_id: int) -> None:
    # Serialises admin changes of one customer, so two admins removing each other at the
    # same moment cannot leave it without an active admin.
    db.session.execute(select(Customer.id).where(Customer.id == customer_id).with_for_update())


def _colleague(admin: User, user_id: int) -> User:
    user = db.session.get(User, user_id)
    if user is None or user.role != Role.CUSTOMER or user.customer_id != admin.customer_id:
        raise NotFoundError(_("No such user in your organisation."))
    return user


def _other_active_admins(user: User) -> int:
    return db.session.scalar(
        select(func.count(User.id)).where(
            User.customer_id == user.customer_id,
            User.role == Role.CUSTOMER,
            User.is_customer_admin.is_(True),
            User.is_active_flag.is_(True),
            User.id != user.id,
        )
    ) or 0


def _apply(actor: Actor, user: User, change) -> User:
    before = user.as_audit()
    change()
    after = user.as_audit()
    if after != before:
        record(actor, "user.updated", "user", user.id, before, after)
    db.session.commit()
    return user


def set_colleague_active(actor: Actor, user_id: int, active: bool) -> User:
    """Deactivate or reactivate a colleague. Never yourself; never the organisation's
    last active admin. A user of another customer is ``NotFoundError``."""
    try:
        admin = _admin_of(actor)
        _lock_customer(admin.customer_id)
        user = _colleague(admin, user_id)
        if user.id == admin.id:
            raise ValidationError(_("You cannot deactivate yourself."), "user")
        if (not active and user.is_customer_admin and user.is_active
                and _other_active_admins(user) == 0):
            raise ConflictError(_("%(email)s is the last active administrator.",
                                  email=user.email), "user")

        def change():
            user.is_active_flag = bool(active)

        return _apply(actor, user, change)
    except Exception:
        db.session.rollback()
        raise


def set_colleague_admin(actor: Actor, user_id: int, admin_flag: bool) -> User:
    """Make a colleague an administrator of the organisation or not. The organisation
    always keeps at least one active admin."""
    try:
        admin = _admin_of(actor)
        _lock_customer(admin.customer_id)
        user = _colleague(admin, user_id)
        if (not admin_flag and user.is_customer_admin and user.is_active
                and _other_active_admins(user) == 0):
            raise ConflictError(
                _("The organisation needs at least one active administrator."), "user")

        def change():
            user.is_customer_admin = bool(admin_flag)

        return _apply(actor, user, change)
    except Exception:
        db.session.rollback()
        raise


def revoke_invitation(actor: Actor, invitation_id: int, customer_id: int) -> Invitation:
    """Withdraw a pending invitation of ``customer_id``. A customer admin may only name
    their own customer; an invitation of another customer is ``NotFoundError``."""
    try:
        if actor.user is not None and actor.user.role == Role.CUSTOMER:
            admin = _admin_of(actor)
            if admin.customer_id != customer_id:
                raise NotFoundError(_("No such invitation."))
        invitation = db.session.scalar(
            select(Invitation).where(Invitation.id == invitation_id).with_for_update())
        if invitation is None or invitation.customer_id != customer_id:
            raise NotFoundError(_("No such invitation."))
        if invitation.accepted_at is not None or invitation.revoked_at is not None:
            raise ConflictError(_("This invitation is no longer pending."))
        before = invitation.as_audit()
        invitation.revoked_at = clock.now()
        record(actor, "invitation.revoked", "invitation", invitation.id, before,
               invitation.as_audit())
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return invitation


def invite_colleague(actor: Actor, email: str, is_admin: bool, language: str | None
                     ) -> tuple[Invitation, str]:
    """A customer admin invites a colleague into their own organisation."""
    admin = _admin_of(actor)
    return invite(actor, email, Role.CUSTOMER, admin.customer_id, is_admin, language)


@dataclass(frozen=True)
class Organisation:
    """A customer's users and pending invitations, for the colleagues page."""

    customer: Customer
    users: list[User]
    pending: list[Invitation]


def organisation(customer_id: int) -> Organisation:
    """Two queries whatever the number of users (no N+1)."""
    customer = db.session.get(Customer, customer_id)
    if customer is None:
        raise NotFoundError(_("No such customer."))
    users = list(db.session.scalars(
        select(User).where(User.customer_id == customer_id, User.role == Role.CUSTOMER)
        .order_by(User.is_active_flag.desc(), User.email)
    ))
    pending = list(db.session.scalars(
        select(Invitation).where(
            Invitation.customer_id == customer_id,
            Invitation.accepted_at.is_(None),
            Invitation.revoked_at.is_(None),
            Invitation.expires_at > clock.now(),
        ).order_by(Invitation.created_at.desc())
    ))
    return Organisation(customer, users, pending)
