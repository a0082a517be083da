"""Pieces the staff and finance APIs share: a problem raised from deep in a view, the
JSON body, and query-string whole numbers. Errors are RFC 9457 problem documents."""

from __future__ import annotations

import json
from decimal import Decimal

from flask import g, request
from flask_babel import gettext as _

from rma.errors import problem
from rma.services.audit import Actor

UNPROCESSABLE = "Unprocessable Content"


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
        raise ProblemRaised(problem(422, UNPROCESSABLE,
                                    _("The request body must be a JSON object.")))
    return body


def whole_arg(name: str, default: int, maximum: int | None = None) -> int:
    """Query argument ``name`` as a whole number ≥ 1 (≤ ``maximum``), else a 422."""
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if maximum is not None and not 1 <= value <= maximum:
        raise invalid(name, _("%(name)s must be a whole number from 1 to %(max)d.",
                              name=name, max=maximum))
    if value < 1:
        raise invalid(name, _("%(name)s must be a whole number of 1 or more.", name=name))
    return value


def api_actor() -> Actor:
    return Actor(user=g.api_user)
