"""JSON API under ``/api/v1``. Errors are RFC 9457 problem documents."""

from __future__ import annotations

from flask import Blueprint, jsonify

from rma import ratelimit
from rma.errors import problem
from rma.openapi import spec
from rma.services import NotFoundError
from rma.services.warranty_check import check_warranty
from warranty import SerialError

bp = Blueprint("api", __name__, url_prefix="/api/v1")


@bp.get("/warranty/<path:serial>")
@ratelimit.limit("WARRANTY_RATE_LIMIT")
def warranty(serial: str):
    """Public warranty answer for one serial; no customer data (R-W1, R-W2)."""
    try:
        answer = check_warranty(serial)
    except SerialError as error:
        return problem(422, "Malformed serial", str(error), serial=serial)
    except NotFoundError as error:
        return problem(404, "Unknown serial", error.message, serial=serial)
    return jsonify(answer.as_public_json())


@bp.get("/openapi.json")
def openapi():
    return jsonify(spec())
