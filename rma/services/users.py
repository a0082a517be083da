"""Users, passwords, log-in and API tokens."""

from __future__ import annotations

import hashlib
import secrets

from email_validator import EmailNotValidError, validate_email
from flask import current_app
from sqlalchemy import select
from werkzeug.security import check_password_hash, generate_password_hash

from rma import clock
from rma.extensions import db
from rma.models import ApiToken, Customer, Role, User
from rma.services import ConflictError, NotFoundError, ValidationError
from rma.services.audit import Actor, record

# Checked with a dummy hash when the e-mail is unknown, so timing does not tell which
# e-mails exist.
_DUMMY_HASH: str | None = None


def normalize_email(raw: str) -> str:
    try:
        info = validate_email((raw or "").strip(), check_deliverability=False)
    except EmailNotValidError as error:
        raise ValidationError(f"e-mail '{raw}' is not valid: {error}", "email") from None
    return info.normalized.lower()


def check_password_rules(password: str) -> None:
    """Password rules: long enough, not a repeated character, not only digits."""
    minimum = current_app.config["PASSWORD_MIN_LENGTH"]
    if len(password or "") < minimum:
        raise ValidationError(f"password must be at least {minimum} characters", "password")
    if len(password) > 256:
        raise ValidationError("password must be at most 256 characters", "password")
    if len(set(password)) < 4 or password.isdigit():
        raise ValidationError(
            "password is too simple: use at least 4 different characters, not only digits",
            "password",
        )


def hash_password(password: str) -> str:
    return generate_password_hash(password, method=current_app.config["PASSWORD_HASH_METHOD"])


def generate_password() -> str:
    return secrets.token_urlsafe(12)


def _role(raw) -> Role:
    try:
        return Role(str(raw).strip().lower())
    except ValueError:
        allowed = ", ".join(r.value for r in Role)
        raise ValidationError(f"role '{raw}' is not one of: {allowed}", "role") from None


def _language(raw: str | None, role: Role) -> str:
    if not raw:
        # Chinese is the default for customers; staff too unless they choose English.
        return "zh_CN"
    if raw not in current_app.config["LANGUAGES"]:
        raise ValidationError(f"language '{raw}' is not one of: zh_CN, en", "language")
    return raw


def create_user(
    actor: Actor,
    email: str,
    role: str | Role,
    password: str,
    customer: Customer | None = None,
    language: str | None = None,
    is_customer_admin: bool = False,
) -> User:
    """Create a user. A customer user belongs to exactly one customer; staff to none.
    ``is_customer_admin`` (customer users only) lets the user invite colleagues."""
    address = normalize_email(email)
    role_value = _role(role)
    if role_value == Role.CUSTOMER and customer is None:
        raise ValidationError("a customer user needs a customer contract", "customer")
    if role_value != Role.CUSTOMER and customer is not None:
        raise ValidationError(f"a {role_value} user cannot belong to a customer", "customer")
    if is_customer_admin and role_value != Role.CUSTOMER:
        raise ValidationError("only a customer user can be its organisation's admin",
                              "is_customer_admin")
    check_password_rules(password)
    if db.session.scalar(select(User.id).where(User.email == address)):
        raise ConflictError(f"a user with e-mail {address} already exists", "email")
    user = User(
        email=address,
        role=role_value,
        customer_id=customer.id if customer is not None else None,
        language=_language(language, role_value),
        password_hash=hash_password(password),
        is_customer_admin=bool(is_customer_admin),
    )
    try:
        db.session.add(user)
        db.session.flush()
        record(actor, "user.created", "user", user.id, None, user.as_audit())
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return user


def update_user(
    actor: Actor,
    user_id: int,
    role: str | None = None,
    customer: Customer | None = None,
    language: str | None = None,
    is_active: bool | None = None,
    password: str | None = None,
) -> User:
    user = db.session.get(User, user_id)
    if user is None:
        raise NotFoundError("no such user")
    before = user.as_audit()
    try:
        if role is not None:
            user.role = _role(role)
            user.customer_id = customer.id if (user.role == Role.CUSTOMER and customer) else None
            if user.role == Role.CUSTOMER and user.customer_id is None:
                raise ValidationError("a customer user needs a customer contract", "customer")
        if language is not None:
            user.language = _language(language, user.role)
        if is_active is not None:
            if not is_active and actor.user is not None and actor.user.id == user.id:
                raise ValidationError("you cannot deactivate yourself", "is_active")
            user.is_active_flag = is_active
        if password:
            check_password_rules(password)
            user.password_hash = hash_password(password)
        after = user.as_audit()
        if password:
            after = {**after, "password": "changed"}
        if after != before:
            record(actor, "user.updated", "user", user.id, before, after)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return user


def authenticate(email: str, password: str) -> User | None:
    """The active user with this e-mail and password, or None. Records the log-in."""
    global _DUMMY_HASH
    address = (email or "").strip().lower()
    user = db.session.scalar(select(User).where(User.email == address)) if address else None
    if user is None or not user.is_active:
        if _DUMMY_HASH is None:
            _DUMMY_HASH = hash_password(secrets.token_hex(8))
        check_password_hash(_DUMMY_HASH, password or "")
        return None
    if not check_password_hash(user.password_hash, password or ""):
        return None
    user.last_login_at = clock.now()
    record(Actor(user=user), "user.logged_in", "user", user.id)
    db.session.commit()
    return user


def _token_digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def create_token(actor: Actor, user: User, name: str = "") -> str:
    """A new bearer token for ``user``; only its SHA-256 is kept, so show it once."""
    raw = "rma_" + secrets.token_urlsafe(32)
    token = ApiToken(user_id=user.id, token_hash=_token_digest(raw), name=name[:100])
    try:
        db.session.add(token)
        db.session.flush()
        record(actor, "api_token.created", "user", user.id, None,
               {"token_id": token.id, "name": token.name})
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return raw


def user_for_token(raw: str) -> User | None:
    """The active user owning an unrevoked token, or None."""
    if not raw or len(raw) > 200:
        return None
    token = db.session.scalar(
        select(ApiToken).where(ApiToken.token_hash == _token_digest(raw))
    )
    if token is None or token.revoked_at is not None or not token.user.is_active:
        return None
    return token.user


def user_by_email(email: str) -> User:
    user = db.session.scalar(select(User).where(User.email == (email or "").strip().lower()))
    if user is None:
        raise NotFoundError(f"no user with e-mail '{email}'", "email")
    return user
