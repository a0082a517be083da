"""The security advisory API under ``/api/v1`` (issue 7; R-A1..R-A3).

Reading needs no token: anonymous callers see published advisories only (no customer
data). With a bearer token, a customer's users also see the advisories their customer
was noticed of, with the notice's ``opened_at``/``acknowledged_at`` (reading one marks
it opened, like the portal page); another customer's unpublished advisory answers 404
like an unknown number. Staff tokens (support, manager, admin) see every advisory
(``?status=``) with its notice counts and R-A2 due day, write advisories, notify the
affected customers and publish. A customer's users acknowledge their notice.

Errors are RFC 9457 problem documents: bad input 422 naming the field, a refused
publication 409 with ``possible_on`` (R-A3: the first day it may be published, or null
when the customers must be notified first), a staff action with a customer's token 403.
A refused action changes nothing.
"""

from __future__ import annotations

import functools
from datetime import date, datetime

from flask import Blueprint, g, jsonify, request, url_for
from flask_babel import force_locale
from flask_babel import gettext as _

from rma import clock
from rma.errors import problem
from rma.extensions import db
from rma.models import Advisory, AdvisoryNotice, AdvisoryStatus, Role
from rma.services import ServiceError
from rma.services import advisories as service
from rma.services.bearer import bearer_token, user_for_bearer
from rma.views.api import api_language, unauthorized
from rma.views.api_common import ProblemRaised, api_actor, invalid, json_body
from rma.views.api_warehouse import service_problem

bp = Blueprint("api_advisories", __name__, url_prefix="/api/v1")

FIELDS = ("title", "severity", "description", "solution", "references",
          "affected_versions", "model_codes", "vendor_found", "patch_released_on")


def advisory_api(view):
    """An optional bearer token (an invalid one is 401; none reads as anonymous, in
    ``g.api_user`` None); bad input and service refusals become problem documents."""

    @functools.wraps(view)
    def answered(*args, **kwargs):
        with force_locale(api_language()):
            g.api_user = None
            header = request.headers.get("Authorization")
            if header:
                raw = bearer_token(header)
                user = user_for_bearer(raw) if raw is not None else None
                if user is None:
                    return unauthorized(_("The API token is not valid, revoked, or its "
                                          "user is inactive."), token_given=True)
                g.api_user = user
            try:
                return view(*args, **kwargs)
            except ProblemRaised as bad:
                db.session.rollback()
                return bad.response
            except service.AdvisoryStateError as error:
                db.session.rollback()
                return problem(409, "Conflict", error.message,
                               possible_on=_iso(error.possible_on))
            except ServiceError as error:
                db.session.rollback()
                return service_problem(error)

    return answered


def _require_token() -> None:
    if g.api_user is None:
        raise ProblemRaised(unauthorized(
            _("Send an API token: Authorization: Bearer <token>."), token_given=False))


def _staff_only() -> None:
    _require_token()
    if not service.is_staff_user(g.api_user):
        raise ProblemRaised(problem(403, "Forbidden", _(
            "Only support, managers and administrators may do this.")))


def _not_found() -> ProblemRaised:
    return ProblemRaised(problem(404, "Not Found", _("No such advisory.")))


def _is_customer() -> bool:
    user = g.api_user
    return user is not None and user.role == Role.CUSTOMER and user.customer_id is not None


# -- output -----------------------------------------------------------------------------
def _iso(value: date | datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def public_json(advisory: Advisory) -> dict:
    """What anyone may read (R-A1): no customer data."""
    return {
        "number": advisory.number,
        "title": advisory.title,
        "severity": str(advisory.severity),
        "status": str(advisory.status),
        "product_models": [m.code for m in advisory.product_models],
        "affected_versions": advisory.affected_versions,
        "description": advisory.description,
        "solution": advisory.solution,
        "references": [line.strip() for line in advisory.references.splitlines()
                       if line.strip()],
        "vendor_found": bool(advisory.vendor_found),
        "patch_released_on": _iso(advisory.patch_released_on),
        "published_at": _iso(advisory.published_at),
        "url": url_for("api_advisories.detail", number=advisory.number, _external=True),
    }


def notice_json(notice: AdvisoryNotice) -> dict:
    return {"queued_at": _iso(notice.queued_at), "opened_at": _iso(notice.opened_at),
            "acknowledged_at": _iso(notice.acknowledged_at),
            "acknowledged": notice.acknowledged_at is not None}


def staff_json(row: service.AdvisoryRow) -> dict:
    advisory = row.advisory
    allowed, possible_on = service.publish_check(advisory, clock.today())
    return {
        **public_json(advisory),
        "notify_due_on": _iso(row.notify_due_on),
        "notify_overdue": row.overdue,
        "notified_at": _iso(advisory.notified_at),
        "public_from_on": _iso(advisory.public_from_on),
        "may_publish": allowed,
        "publish_possible_on": _iso(possible_on),
        "notices": {"sent": row.sent, "opened": row.opened, "acknowledged": row.acknowledged},
        "created_at": _iso(advisory.created_at),
    }


def staff_detail_json(advisory: Advisory) -> dict:
    body = staff_json(service.staff_row(advisory))
    body["customers"] = [
        {"name": n.customer.name, "contract_number": n.customer.contract_number,
         "recipients": list(n.recipients or []), **notice_json(n)}
        for n in service.notices(advisory)]
    return body


def customer_json(advisory: Advisory, notice: AdvisoryNotice | None) -> dict:
    body = public_json(advisory)
    body["notice"] = notice_json(notice) if notice is not None else None
    return body


# -- input ------------------------------------------------------------------------------
def _fields(body: dict) -> dict:
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        raise invalid(unknown[0], _("Unknown member %(name)s.", name=unknown[0][:40]))
    values = {name: body.get(name) for name in FIELDS}
    if values["vendor_found"] is None:
        values["vendor_found"] = False
    codes = values["model_codes"]
    if codes is None:
        values["model_codes"] = []
    elif isinstance(codes, str):
        values["model_codes"] = [codes]
    elif not isinstance(codes, list) or not all(isinstance(c, str) for c in codes):
        raise invalid("model_codes", _("model_codes must be a list of product model codes."))
    if values["patch_released_on"] is not None and not isinstance(
            values["patch_released_on"], str):
        raise invalid("patch_released_on",
                      _("patch_released_on must be a date like 2026-11-25."))
    for name in ("title", "severity", "description"):
        if values[name] is None:
            values[name] = ""
    for name in ("solution", "references", "affected_versions"):
        value = values[name]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            values[name] = "\n".join(value)
        elif value is None:
            values[name] = ""
    return values


def _advisory(number: str) -> tuple[Advisory, AdvisoryNotice | None]:
    try:
        return service.visible_advisory(g.api_user, number)
    except service.AdvisoryNotFoundError:
        raise _not_found() from None


def _staff_advisory(number: str) -> Advisory:
    advisory = service.get_advisory(number)
    if advisory is None:
        raise _not_found()
    return advisory


# -- endpoints --------------------------------------------------------------------------
@bp.get("/advisories")
@advisory_api
def advisories():
    """Published advisories for anyone; a customer's also its noticed ones; staff all."""
    if service.is_staff_user(g.api_user):
        rows = service.staff_list(request.args.get("status"))
        return jsonify({"items": [staff_json(row) for row in rows], "total": len(rows)})
    if request.args.get("status") not in (None, "", str(AdvisoryStatus.PUBLISHED)):
        raise invalid("status", _("Only staff may list advisories by status."))
    items: dict[str, dict] = {}
    if _is_customer():
        for advisory, notice in service.customer_advisories(g.api_user.customer_id):
            items[advisory.number] = customer_json(advisory, notice)
    for advisory in service.public_advisories():
        if advisory.number not in items:
            items[advisory.number] = (customer_json(advisory, None) if _is_customer()
                                      else public_json(advisory))
    ordered = sorted(items.values(), key=lambda a: a["number"], reverse=True)
    return jsonify({"items": ordered, "total": len(ordered)})


@bp.get("/advisories/<number>")
@advisory_api
def detail(number: str):
    advisory, notice = _advisory(number)
    if service.is_staff_user(g.api_user):
        return jsonify(staff_detail_json(advisory))
    if notice is not None:
        service.mark_opened(g.api_user, advisory)
        notice = service.notice_for(g.api_user.customer_id, advisory)
    if _is_customer():
        return jsonify(customer_json(advisory, notice))
    return jsonify(public_json(advisory))


@bp.post("/advisories")
@advisory_api
def create():
    _staff_only()
    advisory = service.create_advisory(api_actor(), **_fields(json_body()))
    response = jsonify(staff_detail_json(advisory))
    response.status_code = 201
    response.headers["Location"] = url_for("api_advisories.detail", number=advisory.number,
                                           _external=True)
    return response


@bp.post("/advisories/<number>/notify")
@advisory_api
def notify(number: str):
    """R-A2: notice the affected customers not noticed yet; ``notices_created`` says how
    many were new (0 on a repeat)."""
    _staff_only()
    advisory = _staff_advisory(number)
    created = service.notify_customers(api_actor(), advisory)
    return jsonify({**staff_detail_json(advisory), "notices_created": created})


@bp.post("/advisories/<number>/publish")
@advisory_api
def publish(number: str):
    """R-A3: 409 with ``possible_on`` before a vendor-found advisory may be published."""
    _staff_only()
    advisory = _staff_advisory(number)
    service.publish(api_actor(), advisory, clock.today())
    return jsonify(staff_detail_json(advisory))


@bp.post("/advisories/<number>/acknowledge")
@advisory_api
def acknowledge(number: str):
    """A customer's user acknowledges its notice (once; a repeat changes nothing)."""
    _require_token()
    if not _is_customer():
        raise ProblemRaised(problem(403, "Forbidden", _(
            "Only the customer's users acknowledge an advisory.")))
    advisory, notice = _advisory(number)
    if notice is None:
        raise _not_found()
    notice = service.acknowledge(api_actor(), advisory)
    return jsonify(customer_json(advisory, notice))
