"""JSON API under ``/api/v1``. Errors are RFC 9457 problem documents.

The warranty look-up is public. The RMA endpoints authenticate with a bearer token only
(``Authorization: Bearer <token>``, from ``rma create-token``): the API never reads the
cookie session (``security.ApiSkipsSession``) and is CSRF-exempt. A customer's token acts
for its own customer; a staff token sees every customer and submits on behalf of one
named by ``customer_contract``. Messages are English unless Accept-Language asks for
Chinese.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from datetime import date, datetime

from flask import Blueprint, g, jsonify, request, url_for
from flask_babel import force_locale
from flask_babel import gettext as _

from rma import ratelimit
from rma.errors import problem
from rma.models import Rma, RmaItem, User
from rma.openapi import spec
from rma.services import ForbiddenError, NotFoundError, ServiceError
from rma.services.audit import Actor
from rma.services.bearer import bearer_token, user_for_bearer
from rma.services.catalog import customer_by_contract
from rma.services.rmas import (
    ContactInput,
    ItemCoverage,
    ItemInput,
    ItemProblem,
    RmaInvalid,
    get_rma,
    list_rmas,
    open_rma,
    stored_coverage,
    timeline,
    validate_rma,
)
from rma.services.warehouse import item_json, preload_shipments
from rma.services.warranty_check import check_warranty
from rma.views.api_common import (  # api_language: also imported from here
    ProblemRaised,
    api_language,
    nul_member,
    nul_problem,
    whole_arg,
)
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


# -- authentication and language ---------------------------------------------------------
def unauthorized(detail: str, token_given: bool):
    response = problem(401, "Unauthorized", detail)
    challenge = 'Bearer realm="rma"'
    if token_given:
        challenge += ', error="invalid_token"'
    response.headers["WWW-Authenticate"] = challenge
    return response


def token_required(view):
    """Authenticate with the bearer token (never the cookie) into ``g.api_user`` and run
    the view in the API's language."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        with force_locale(api_language()):
            raw = bearer_token(request.headers.get("Authorization"))
            if raw is None:
                return unauthorized(_("Send an API token: Authorization: Bearer <token>."),
                                    token_given=False)
            user = user_for_bearer(raw)
            if user is None:
                return unauthorized(_("The API token is not valid, revoked, or its user is "
                                      "inactive."), token_given=True)
            g.api_user = user
            return view(*args, **kwargs)

    return wrapper


# -- JSON shapes ------------------------------------------------------------------------
def _iso(value: date | datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def coverage_json(cov: ItemCoverage) -> dict:
    """The warranty API's fields, plus the date judged on and its meaning in words."""
    return {
        "serial": cov.serial,
        "product_model": cov.model_code,
        "kind": cov.kind,
        "warranty_basis": cov.basis_used,
        "warranty_start": _iso(cov.warranty_start),
        "warranty_end": _iso(cov.warranty_end),
        "in_warranty": cov.in_warranty,
        "days_left": cov.days_left,
        "replacement_of": cov.replacement_of,
        "judged_on": _iso(cov.judged_on),
        "meaning": cov.meaning,
    }


def _urls(rma: Rma) -> dict:
    return {
        "url": url_for("api.rma_detail", number=rma.number, _external=True),
        "label_url": url_for("labels.label", number=rma.number, _external=True),
    }


def _item_json(item: RmaItem) -> dict:
    return {
        "line": item.line_no,
        "serial": item.serial,
        "product_model": item.unit.model.code,
        "product_name": item.unit.model.name,
        "status": str(item.status),
        "fault_description": item.fault_description,
        "fault_category": item.fault_category,
        "photos": len(item.photos),
        "coverage": coverage_json(stored_coverage(item)),
        "cause": item.cause,
        "decision": item.decision,
        "confirmed_at": _iso(item.confirmed_at),
        "due_at": _iso(item.due_at),
        **item_json(item),  # issue 4: decision rule, 72-hour clock, shipments
    }


def _detail_json(rma: Rma, viewer=None) -> dict:
    return {
        "number": rma.number,
        "status": str(rma.status),
        "customer": {"name": rma.customer.name,
                     "contract_number": rma.customer.contract_number},
        "contact": {"name": rma.contact_name, "phone": rma.contact_phone,
                    "email": rma.contact_email},
        "ship_to": rma.ship_to,
        "language": rma.language,
        "submitted_at": _iso(rma.submitted_at),
        "items": [_item_json(item) for item in preload_shipments(rma.items)],
        "timeline": [
            {"at": _iso(entry.at), "text": entry.text, "serial": entry.serial,
             "actor": entry.actor}
            for entry in timeline(rma, viewer)
        ],
        **_urls(rma),
    }


def _summary_json(rma: Rma) -> dict:
    return {
        "number": rma.number,
        "status": str(rma.status),
        "customer": {"name": rma.customer.name,
                     "contract_number": rma.customer.contract_number},
        "contact_name": rma.contact_name,
        "submitted_at": _iso(rma.submitted_at),
        "item_count": len(rma.items),
        "items": [{"line": i.line_no, "serial": i.serial, "status": str(i.status)}
                  for i in rma.items],
        **_urls(rma),
    }


def _errors(problems: list[ItemProblem]) -> list[dict]:
    return [{"item": p.item, "field": p.field, "code": p.code, "message": p.message}
            for p in problems]


def _problem_order(p: ItemProblem) -> tuple[int, int]:
    return (0, 0) if p.item is None else (1, p.item)


def _invalid(problems: list[ItemProblem]):
    return problem(
        422, "RMA not valid",
        _("The RMA was not submitted; nothing was saved. Correct every error and send "
          "it again."),
        errors=_errors(problems),
    )


# -- RMAs -------------------------------------------------------------------------------
@dataclass
class Submission:
    customer_id: int | None
    contact: ContactInput
    ship_to: object
    items: list[ItemInput]
    language: object
    problems: list[ItemProblem]
    positions: list[int]

    def in_request_terms(self, problems: list[ItemProblem]) -> list[ItemProblem]:
        """Service problems with ``item`` as the index in the request's ``items``."""
        return [replace(p, item=self.positions[p.item]) if p.item is not None else p
                for p in problems]


def _read_submission(body: dict, user: User) -> Submission:
    """The JSON body as service inputs, or the structural problems found."""
    problems: list[ItemProblem] = []
    contact = body.get("contact")
    if contact is None:
        contact = {}
    if not isinstance(contact, dict):
        problems.append(ItemProblem(None, "contact", "invalid", _(
            "contact must be an object with name, phone and email.")))
        contact = {}
    raw_items = body.get("items")
    items: list[ItemInput] = []
    positions: list[int] = []  # index in the request of each item passed on
    if raw_items is None:
        raw_items = []
    if not isinstance(raw_items, list):
        problems.append(ItemProblem(None, "items", "invalid", _(
            "items must be a list of objects with serial and fault_description.")))
        raw_items = []
    for index, raw in enumerate(raw_items):
        if not isinstance(raw, dict):
            problems.append(ItemProblem(index, "item", "invalid", _(
                "Each item must be an object with serial and fault_description.")))
            continue
        positions.append(index)
        items.append(ItemInput(raw.get("serial"), raw.get("fault_description"),
                               raw.get("fault_category")))
    language = body.get("language")
    if language is None:
        language = user.language if not user.is_staff else "zh_CN"
    customer_id = None
    contract = body.get("customer_contract")
    if user.is_staff:
        if not isinstance(contract, str) or not contract.strip():
            problems.append(ItemProblem(None, "customer_contract", "required", _(
                "Staff tokens must name the customer: customer_contract.")))
        else:
            try:
                customer_id = customer_by_contract(contract).id
            except NotFoundError:
                problems.append(ItemProblem(None, "customer_contract", "unknown", _(
                    "%(value)s is not a known contract number.", value=contract.strip())))
    elif contract is not None:
        problems.append(ItemProblem(None, "customer_contract", "invalid", _(
            "customer_contract is only for staff tokens: a customer's token submits for "
            "its own organisation.")))
    else:
        customer_id = user.customer_id
    contact_input = ContactInput(contact.get("name"), contact.get("phone"),
                                 contact.get("email"))
    return Submission(customer_id, contact_input, body.get("ship_to"), items, language,
                      problems, positions)


@bp.post("/rmas")
@token_required
def rma_create():
    """R-R1, R-R2, D-1: submit an RMA; its number and label come back at once."""
    body = request.get_json(force=True, silent=True)
    if body is None:
        return problem(400, "Malformed JSON", _("The request body is not valid JSON."))
    if not isinstance(body, dict):
        return problem(422, "RMA not valid", _("The request body must be a JSON object."),
                       errors=[])
    if (holding_nul := nul_member(body)) is not None:
        return nul_problem(holding_nul)
    user = g.api_user
    sub = _read_submission(body, user)
    if sub.problems or sub.customer_id is None:
        # Report the service's findings too, so one answer lists every error.
        found = sub.in_request_terms(validate_rma(
            sub.customer_id, sub.contact, sub.ship_to, sub.items, sub.language))
        if any(q.field in ("items", "item") for q in sub.problems):
            found = [p for p in found if p.field != "items"]
        return _invalid(sorted(sub.problems + found, key=_problem_order))
    try:
        rma = open_rma(Actor(user=user), sub.customer_id, sub.contact, sub.ship_to, sub.items,
                       sub.language)
    except RmaInvalid as error:
        return _invalid(sub.in_request_terms(error.problems))
    except ForbiddenError as error:
        return problem(403, "Forbidden", error.message)
    rma = get_rma(user, rma.number)
    answer = {
        "number": rma.number,
        "status": str(rma.status),
        "items": [{"line": i.line_no, "serial": i.serial, "status": str(i.status),
                   "coverage": coverage_json(stored_coverage(i))} for i in rma.items],
        **_urls(rma),
    }
    response = jsonify(answer)
    response.status_code = 201
    response.headers["Location"] = url_for("api.rma_detail", number=rma.number)
    return response


@bp.get("/rmas")
@token_required
def rma_list():
    """RMAs the token may see, newest first, a page at a time (``per_page`` over 100
    reads as 100)."""
    try:
        page = whole_arg("page", 1)
        per_page = whole_arg("per_page", 20)
    except ProblemRaised as bad:
        return bad.response
    try:
        result = list_rmas(g.api_user, q=request.args.get("q", ""),
                           status=request.args.get("status") or None,
                           serial=request.args.get("serial") or None,
                           page=page, per_page=per_page)
    except ServiceError as error:
        return problem(422, "Invalid query", error.message,
                       errors=[{"item": None, "field": error.field, "code": "invalid",
                                "message": error.message}])
    return jsonify({
        "items": [_summary_json(rma) for rma in result.items],
        "page": result.page,
        "per_page": result.per_page,
        "total": result.total,
        "pages": result.pages,
    })


@bp.get("/rmas/<number>")
@token_required
def rma_detail(number: str):
    """One RMA with items, coverage, decisions, deadlines and the timeline; another
    customer's RMA is answered like an unknown one (404)."""
    try:
        rma = get_rma(g.api_user, number)
    except NotFoundError as error:
        return problem(404, "Not Found", error.message)
    return jsonify(_detail_json(rma, g.api_user))
