"""Log-in, log-out and the language switch."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import (
    Blueprint,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_login import login_user, logout_user

from rma import ratelimit
from rma.forms import LanguageForm, LoginForm
from rma.services.users import authenticate

bp = Blueprint("auth", __name__)


def _safe_next(target: str | None) -> str | None:
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


@bp.route("/login", methods=["GET", "POST"])
@ratelimit.limit("LOGIN_RATE_LIMIT", methods=("POST",))
def login():
    form = LoginForm()
    if form.validate_on_submit():
        user = authenticate(form.email.data, form.password.data)
        if user is None:
            form.password.errors = [_("E-mail or password is not right.")]
        else:
            session.clear()
            login_user(user)
            home = url_for("portal.home") if not user.is_staff else url_for("public.index")
            return redirect(_safe_next(request.args.get("next")) or home)
    return render_template("auth/login.html", form=form)


@bp.route("/logout", methods=["POST"])
def logout():
    logout_user()
    session.clear()
    flash(_("You are logged out."), "info")
    return redirect(url_for("public.index"))


@bp.route("/language", methods=["POST"])
def language():
    form = LanguageForm()
    if form.validate_on_submit():
        session["lang"] = form.lang.data
    back = _safe_next(request.form.get("next")) or url_for("public.index")
    return redirect(back)
