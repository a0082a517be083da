"""Pieces the staff and finance APIs share: a problem raised from deep in a view, the
JSON body, and query-string whole numbers. Errors are RFC 9457 problem documents."""

from __future__ import annotations

import json
from decimal import Decimal

from flask import g, request
from flask_babel import force_locale
from flask_babel import gettext as _
from werkzeug.exceptions import BadRequest, NotFound

from rma.errors import problem
from rma.services.audit import Actor

UNPROCESSABLE = "Unprocessable Content"
# The largest whole number a query argument (a page, a page size) may be: far past any
# real page, and small enough that the page's offset fits the database's integers
# (a page of 10**19 was a 500: "Python int too large to convert to SQLite INTEGER").
WHOLE_MAX = 1_000_000
NUL = "\x00"


def api_language() -> str:
    """English unless the request's Accept-Language prefers Chinese."""
    best = request.accept_languages.best_match(["zh_CN", "zh", "en"])
    return "zh_CN" if best in ("zh_CN", "zh") else "en"


class ProblemRaised(Exception):
    """Carries a ready problem response out of a helper; the view's wrapper returns it."""

    def __init__(self, response):
        super().__init__("bad request")
        self.response = response


def invalid(field: str, message: str) -> ProblemRaised:
    """A 422 naming the field, in the shape of the RMA API's ``errors``."""
    return ProblemRaised(problem(422, UNPROCESSABLE, message, errors=[
        {"item": None, "field": field, "code": "invalid", "message": message}]))


def json_body() -> dict:
    """The JSON object sent (``{}`` for an empty body). Numbers with a fraction are read
    as ``Decimal``, so an amount never passes through a float."""
    raw = request.get_data(as_text=True)
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw, parse_float=Decimal)
    except ValueError:
        raise ProblemRaised(problem(400, "Malformed JSON",
                                    _("The request body is not valid JSON."))) from None
    if not isinstance(body, dict):
        message = _("The request body must be a JSON object.")
        raise ProblemRaised(problem(422, UNPROCESSABLE, message, errors=[
            {"item": None, "field": "body", "code": "invalid", "message": message}]))
    field = nul_member(body)
    if field is not None:
        raise ProblemRaised(nul_problem(field))
    return body


# -- U+0000 ---------------------------------------------------------------------------
# PostgreSQL text cannot hold U+0000: psycopg refuses the query (a 500, on PostgreSQL only),
# even a mere look-up. So no text holding it reaches a query.
def _holds_nul(value: object) -> bool:
    if isinstance(value, str):
        return NUL in value
    if isinstance(value, list):
        return any(_holds_nul(item) for item in value)
    if isinstance(value, dict):
        return any(NUL in key or _holds_nul(item) for key, item in value.items())
    return False


def nul_member(body: dict) -> str | None:
    """The member of a JSON object whose name or value holds U+0000 anywhere, or None."""
    return next((key for key, value in body.items() if NUL in key or _holds_nul(value)), None)


def nul_problem(field: str):
    """A 422 naming ``field`` (U+0000 shown as ``\\u0000``)."""
    shown = field.replace(NUL, "\\u0000")[:60]
    message = _("%(name)s must not contain the NUL character (U+0000).", name=shown)
    return problem(422, UNPROCESSABLE, message, errors=[
        {"item": None, "field": shown, "code": "invalid", "message": message}])


def refuse_nul():
    """The app's ``before_request``: a path holding U+0000 names nothing (404: a problem
    document under ``/api/``, the error page elsewhere); under ``/api/`` a query argument
    holding it is a 422 naming the argument. JSON bodies are checked where they are read
    (:func:`json_body`). On the pages, a query argument or form field holding it is a 400
    (PostgreSQL refuses U+0000 in text, and no field has a use for it)."""
    if NUL in request.path:
        raise NotFound()
    if request.path.startswith("/api/"):
        for name, value in request.args.items(multi=True):
            if NUL in name or NUL in value:
                with force_locale(api_language()):
                    return nul_problem(name)
        return None
    for source in (request.args, request.form):
        for name, value in source.items(multi=True):
            if NUL in name or NUL in value:
                refusal = BadRequest()
                refusal.page_message = _(  # type: ignore[attr-defined]
                    "A field holds the NUL character (U+0000), which no field accepts. "
                    "Remove it and send the form again.")
                raise refusal
    return None


def whole_arg(name: str, default: int, maximum: int = WHOLE_MAX) -> int:
    """Query argument ``name`` as a whole number ≥ 1 (≤ ``maximum``), else a 422."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1 and maximum == WHOLE_MAX:
        raise invalid(name, _("%(name)s must be a whole number of 1 or more.", name=name))
    if not 1 <= value <= maximum:
        raise invalid(name, _("%(name)s must be a whole number from 1 to %(max)d.",
                              name=name, max=maximum))
    return value


def api_actor() -> Actor:
    return Actor(user=g.api_user)
