"""Bearer-token authentication for API clients (``Authorization: Bearer <token>``).

Tokens are made by ``rma.services.users.create_token``; only their SHA-256 is stored.
A revoked token, or one whose user is inactive, authenticates nobody.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import joinedload

from rma import clock
from rma.extensions import db
from rma.models import ApiToken, User

# last_used_at is a hint for administrators, not a log: write it at most once a minute,
# so a busy client does not turn every read into a write.
TOUCH_EVERY = timedelta(minutes=1)
_TOKEN_MAX = 200


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header; ``""`` for another
    scheme or an empty token; ``None`` when there is no header."""
    if header is None:
        return None
    scheme, _sep, token = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return ""
    return token.strip()


def user_for_bearer(raw: str | None) -> User | None:
    """The active user owning the unrevoked token ``raw``, or ``None``.

    Notes the token's use (``last_used_at``) when the last note is a minute old or more,
    on its own connection and transaction, so the caller's session is left untouched."""
    if not raw or len(raw) > _TOKEN_MAX:
        return None
    digest = hashlib.sha256(raw.encode()).hexdigest()
    token = db.session.scalar(
        select(ApiToken).options(joinedload(ApiToken.user)).where(ApiToken.token_hash == digest)
    )
    if token is None or token.revoked_at is not None or not token.user.is_active:
        return None
    now = clock.now()
    if token.last_used_at is None or now - token.last_used_at >= TOUCH_EVERY:
        table = ApiToken.__table__
        with db.engine.begin() as connection:
            connection.execute(
                update(table)
                .where(table.c.id == token.id)
                .where(or_(table.c.last_used_at.is_(None),
                           table.c.last_used_at <= now - TOUCH_EVERY))
                .values(last_used_at=now)
            )
    return token.user
