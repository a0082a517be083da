"""The RMA parcel label as a PDF download (R-R2): ``GET /rmas/<number>/label.pdf``.

A logged-in user (a customer for its own RMAs, staff for all) or an API client with
``Authorization: Bearer <token>``. Another customer's RMA is a 404, like an unknown one.
"""

from __future__ import annotations

import io

from flask import Blueprint, abort, make_response, render_template, request, send_file
from flask_babel import force_locale
from flask_babel import gettext as _
from flask_login import current_user

from rma.extensions import login_manager
from rma.services import NotFoundError
from rma.services.bearer import bearer_token, user_for_bearer
from rma.services.rmas import LABEL_SIZES, get_rma, label_filename, render_rma_label

bp = Blueprint("labels", __name__)


def _unauthorized():
    message = _("The API token is not valid, revoked, or its user is inactive.")
    response = make_response(render_template("errors/error.html", code=401, message=message),
                             401)
    response.headers["WWW-Authenticate"] = 'Bearer realm="rma", error="invalid_token"'
    return response


@bp.get("/rmas/<number>/label.pdf")
def label(number: str):
    """``?size=a4`` (default) or ``thermal``; ``?download=0`` shows it in the browser."""
    raw = bearer_token(request.headers.get("Authorization"))
    if raw is not None:
        user = user_for_bearer(raw)
        if user is None:
            return _unauthorized()
        from rma.views.api import api_language

        language = api_language()
    elif current_user.is_authenticated:
        user, language = current_user, None
    else:
        return login_manager.unauthorized()
    size = request.args.get("size", "a4")
    if size not in LABEL_SIZES:
        abort(400, description=_("Label size %(size)s is not one of: a4, thermal.",
                                 size=size[:20]))
    try:
        rma = get_rma(user, number)
    except NotFoundError:
        abort(404)
    if language is None:
        pdf = render_rma_label(rma, size)
    else:
        with force_locale(language):
            pdf = render_rma_label(rma, size)
    response = send_file(
        io.BytesIO(pdf),
        mimetype="application/pdf",
        as_attachment=request.args.get("download") != "0",
        download_name=label_filename(rma),
        max_age=0,
    )
    response.headers["Cache-Control"] = "private, no-store"
    return response
