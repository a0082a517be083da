"""Blueprints, one per audience. Views translate: input → one service call → response."""

from __future__ import annotations

from functools import wraps

from flask import abort
from flask_login import current_user

from rma.extensions import db, login_manager
from rma.models import Role, User


@login_manager.user_loader
def _load_user(user_id: str) -> User | None:
    try:
        user = db.session.get(User, int(user_id))
    except (TypeError, ValueError):
        return None
    return user if user is not None and user.is_active else None


login_manager.login_view = "auth.login"
login_manager.login_message = None


def roles_required(*roles: Role):
    """Server-side role check: anonymous → log-in page; wrong role → 403."""

    def decorator(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            if not current_user.is_authenticated:
                return login_manager.unauthorized()
            if not current_user.has_role(*roles):
                abort(403)
            return view(*args, **kwargs)

        return wrapper

    return decorator


def form_errors(form, error) -> None:
    """Put a service error next to its form field (or on the form when it has none)."""
    field = getattr(form, getattr(error, "field", None) or "", None)
    if field is not None and hasattr(field, "errors"):
        field.errors = [*list(field.errors), error.message]
    else:
        form.form_errors.append(error.message)


def refused(form, error) -> tuple[str | None, int]:
    """A service refusal on a page, after rolling back the session: beside its field when
    the form has that field (never the CSRF token), else a message for the top of the
    page (the form may be gone, e.g. after a 409 the state no longer offers it).
    Returns (page message or None, the 4xx status to answer)."""
    db.session.rollback()
    status = error.status if 400 <= error.status < 500 else 422
    field = getattr(form, error.field or "", None)
    if field is not None and hasattr(field, "errors") and error.field != "csrf_token":
        field.errors = [*list(field.errors), error.message]
        return None, status
    return error.message, status
