"""The staff API of the warehouse journey under ``/api/v1`` (issue 4): receive a unit,
confirm a fault (remotely or on inspection), override, release, ship, deliver, and the
open replacements with their 72-hour clocks (R-R3, D-1..D-4, D-6).

Bearer tokens of staff only: a customer's token gets 403, and each action checks the
token user's role again in ``rma.services.warehouse`` (403). Errors are RFC 9457 problem
documents with a 4xx status; a refused action changes nothing (an unexpected unit is
still recorded: that is what receiving it means). CSRF-exempt like ``rma.views.api``;
messages are English unless Accept-Language asks for Chinese.
"""

from __future__ import annotations

import functools
from datetime import UTC, date, datetime

from flask import Blueprint, g, jsonify, request, url_for
from flask_babel import gettext as _

from rma import clock
from rma.errors import problem
from rma.models import RmaItem
from rma.services import NotFoundError, ServiceError
from rma.services import warehouse as wh
from rma.services.catalog import customer_by_contract
from rma.views.api import token_required
from rma.views.api_common import (
    ProblemRaised,
    api_actor,
    invalid,
    json_body,
    whole_arg,
)

bp = Blueprint("api_warehouse", __name__, url_prefix="/api/v1")

_TITLES = {400: "Bad Request", 403: "Forbidden", 404: "Not Found", 409: "Conflict",
           422: "Unprocessable Content"}
_OK_SCANS = ("received", "already_received")


def staff_token_required(view):
    """A valid bearer token (401 otherwise) of a staff user (403 for a customer's)."""

    @functools.wraps(view)
    def staff_only(*args, **kwargs):
        if not g.api_user.is_staff:
            return problem(403, "Forbidden", _("This endpoint is for staff tokens only."))
        try:
            return view(*args, **kwargs)
        except ProblemRaised as bad:
            return bad.response
        except ServiceError as error:
            return service_problem(error)

    return token_required(staff_only)


def service_problem(error: ServiceError):
    """A service refusal as a problem document: its status (403/404/409/422), the message,
    the field it concerns and, for a refused transition, the item's state."""
    extra: dict = {}
    if error.field:
        extra["errors"] = [{"item": None, "field": error.field, "code": _code(error),
                            "message": error.message}]
    if isinstance(error, wh.TransitionError):
        extra["state"] = error.state
        extra["action"] = error.action
    status = error.status if error.status in _TITLES else 400
    return problem(status, _TITLES[status], error.message, **extra)


def _code(error: ServiceError) -> str:
    return {403: "forbidden", 404: "unknown", 409: "conflict"}.get(error.status, "invalid")


def _iso(value: date | datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _item_url(item: RmaItem) -> str:
    return url_for("api.rma_detail", number=item.rma.number, _external=True)


def item_state_json(item: RmaItem) -> dict:
    """The item after an action, for staff: state, decision (and its rule), clock,
    shipment, and the internal notes."""
    wh.preload_shipments([item])
    return {
        "rma": item.rma.number,
        "line": item.line_no,
        "serial": item.serial,
        "status": str(item.status),
        "cause": item.cause,
        "cause_notes": item.cause_notes,
        "decision": item.decision,
        "computed_decision": item.computed_decision,
        "confirmed_at": _iso(item.confirmed_at),
        "due_at": _iso(item.due_at),
        **wh.item_json(item),
        "override_reason": item.override_reason,
        "overridden_at": _iso(item.overridden_at),
        "release_note": item.release_note,
        "breach_reason": item.breach_reason,
        "url": _item_url(item),
    }


def _item(number: str, serial: str, action: str) -> RmaItem:
    """The role check first (403 whatever the item), then the item (404)."""
    wh.ensure_allowed(api_actor(), action)
    return wh.find_item(number, serial)


# -- receiving --------------------------------------------------------------------------
def scan_json(result: wh.ScanResult) -> dict:
    return {
        "outcome": result.outcome,
        "message": result.message,
        "rma": result.rma.number if result.rma is not None else None,
        "serial": result.serial,
        "line": result.item.line_no if result.item is not None else None,
        "item_status": str(result.item.status) if result.item is not None else None,
        "unit_received_at": _iso(result.item.unit_received_at)
        if result.item is not None else None,
    }


@bp.post("/rmas/<number>/receive")
@staff_token_required
def receive(number: str):
    """Receive a unit of this RMA by its serial (the scan station's check-off): 200 for
    received and already received (nothing changes then); 409 for a unit not on this RMA
    (recorded as unexpected) or an item that cannot be received; 422 for a malformed
    serial."""
    wh.ensure_allowed(api_actor(), "receive")
    serial = json_body().get("serial")
    if not isinstance(serial, str) or not serial.strip():
        raise invalid("serial", _("Send the serial number: {\"serial\": \"...\"}."))
    result = wh.receive(api_actor(), number, serial)
    payload = scan_json(result)
    if result.outcome in _OK_SCANS:
        return jsonify(payload)
    status = 422 if result.outcome == "malformed" else 409
    detail = payload.pop("message")
    if status == 422:  # a validation problem: ``errors`` names the field, like any other
        payload["errors"] = [{"item": None, "field": "serial", "code": "malformed",
                              "message": detail}]
    return problem(status, _TITLES[status], detail, **payload)


# -- triage and inspection --------------------------------------------------------------
@bp.post("/rmas/<number>/items/<serial>/confirm")
@staff_token_required
def confirm(number: str, serial: str):
    """Confirm the fault: ``remote`` true → remotely (D-1, support), else on inspection of
    the received unit. The decision comes from the cause and the coverage at the report
    date; ``due_at`` is set where the 72-hour clock runs (R-R3)."""
    body = json_body()
    remote = body.get("remote", False)
    if not isinstance(remote, bool):
        raise invalid("remote", _("remote must be true or false."))
    notes = body.get("notes", "")
    item = _item(number, serial, "confirm_remote" if remote else "inspect")
    if remote:
        item = wh.confirm_remote(api_actor(), item.id, body.get("cause"), notes)
    else:
        item = wh.inspect(api_actor(), item.id, body.get("cause"), notes)
    return jsonify(item_state_json(item))


@bp.post("/rmas/<number>/items/<serial>/request-unit")
@staff_token_required
def request_unit(number: str, serial: str):
    """Ask the customer to send the unit back (D-1); ``notes`` are internal."""
    body = json_body()
    item = _item(number, serial, "request_unit")
    return jsonify(item_state_json(wh.request_unit(api_actor(), item.id, body.get("notes", ""))))


@bp.post("/rmas/<number>/items/<serial>/reject")
@staff_token_required
def reject(number: str, serial: str):
    """Reject the item with a ``reason`` the customer reads."""
    body = json_body()
    item = _item(number, serial, "reject")
    return jsonify(item_state_json(wh.reject_item(api_actor(), item.id, body.get("reason"))))


@bp.post("/rmas/<number>/items/<serial>/cancel")
@staff_token_required
def cancel(number: str, serial: str):
    """Cancel the item (e.g. the paid quote was declined) with a ``reason``."""
    body = json_body()
    item = _item(number, serial, "cancel")
    return jsonify(item_state_json(wh.cancel_item(api_actor(), item.id, body.get("reason"))))


@bp.post("/rmas/<number>/items/<serial>/override")
@staff_token_required
def override(number: str, serial: str):
    """A manager overrides the decision free ↔ paid with a ``reason`` (D-6)."""
    body = json_body()
    item = _item(number, serial, "override")
    item = wh.override_decision(api_actor(), item.id, body.get("decision"), body.get("reason"))
    return jsonify(item_state_json(item))


@bp.post("/rmas/<number>/items/<serial>/release")
@staff_token_required
def release(number: str, serial: str):
    """Finance releases a paid replacement on credit, with a ``reason``, for a customer
    with credit terms (409 otherwise); its 72-hour clock starts (D-3)."""
    body = json_body()
    item = _item(number, serial, "release")
    return jsonify(item_state_json(wh.release(api_actor(), item.id, body.get("reason"))))


# -- shipping and delivery --------------------------------------------------------------
@bp.post("/rmas/<number>/items/<serial>/ship")
@staff_token_required
def ship(number: str, serial: str):
    """Ship a spare in stock (same model or an allowed successor) as the replacement; for
    no fault found, the customer's own unit goes back (``replacement_serial`` may be
    omitted). 409 when the spare was just shipped elsewhere or the item is not ready
    (paid and not released, D-3)."""
    body = json_body()
    item = _item(number, serial, "ship")
    shipment = wh.ship(api_actor(), item.id, body.get("replacement_serial"), body.get("carrier"),
                       body.get("tracking_number"))
    item = shipment.item
    return jsonify({"shipment": wh.shipment_json(shipment), "item": item_state_json(item)})


def _instant(raw: object, field: str) -> datetime:
    if not isinstance(raw, str) or not raw.strip():
        raise invalid(field, _("Send %(field)s as an ISO 8601 date and time with its "
                                "offset, e.g. 2026-11-25T14:30:00+08:00.", field=field))
    try:
        moment = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise invalid(field, _("%(value)s is not an ISO 8601 date and time.",
                                value=repr(raw[:40]))) from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise invalid(field, _("%(value)s has no time zone offset: add one, e.g. +08:00.",
                                value=repr(raw[:40])))
    try:  # 0001-01-01T00:00+00:01 is a valid ISO 8601 text but no instant Python holds
        moment.astimezone(UTC)
    except OverflowError:
        raise invalid(field, _("%(value)s is not an ISO 8601 date and time.",
                                value=repr(raw[:40]))) from None
    return moment


@bp.post("/rmas/<number>/items/<serial>/deliver")
@staff_token_required
def deliver(number: str, serial: str):
    """Record the delivery on site (``delivered_at`` with offset, ``received_by``): the
    72-hour clock stops; answers whether it was within target and the hours taken."""
    body = json_body()
    item = _item(number, serial, "deliver")
    delivered_at = _instant(body.get("delivered_at"), "delivered_at")
    result = wh.deliver(api_actor(), item.id, delivered_at, body.get("received_by"),
                        body.get("late_reason", ""))
    return jsonify({"within_target": result.within_target, "hours": result.hours,
                    "closed": result.closed, "item": item_state_json(result.item)})


# -- the 72-hour clock ------------------------------------------------------------------
def replacement_json(row: wh.ReplacementRow) -> dict:
    item = row.item
    return {
        "rma": row.rma.number,
        "line": item.line_no,
        "serial": item.serial,
        "product_model": item.unit.model.code,
        "customer": {"name": row.customer.name,
                     "contract_number": row.customer.contract_number},
        "status": str(item.status),
        "decision": item.decision,
        "remote_confirmation": bool(item.remote_confirmation),
        "clock_started_at": _iso(item.clock_started_at),
        "due_at": _iso(row.due_at),
        "clock_state": row.clock_state.value,
        "hours_left": row.hours_left,
        "url": url_for("api.rma_detail", number=row.rma.number, _external=True),
    }


@bp.get("/replacements")
@staff_token_required
def replacements():
    """Open replacements whose 72-hour clock runs, least time left first; filters
    ``state`` (on_track, at_risk, breached), ``customer`` (contract number) and
    ``status`` (confirmed, released, shipped); a page at a time."""
    wh.ensure_allowed(api_actor(), "view")
    page = whole_arg("page", 1)
    per_page = whole_arg("per_page", 50)
    customer_id = None
    contract = request.args.get("customer", "").strip()
    if contract:
        try:
            customer_id = customer_by_contract(contract).id
        except NotFoundError:
            raise invalid("customer", _("%(value)s is not a known contract number.",
                                         value=repr(contract[:40]))) from None
    result = wh.replacements_page(state=request.args.get("state") or None,
                                  customer_id=customer_id,
                                  item_status=request.args.get("status") or None,
                                  page=page, per_page=per_page)
    return jsonify({
        "items": [replacement_json(row) for row in result.rows],
        "page": result.page, "per_page": result.per_page, "total": result.total,
        "pages": result.pages, "now": _iso(clock.now()),
    })


@bp.get("/replacements/report")
@staff_token_required
def replacement_report():
    """Monthly R-R3 figures (China months the clocks started in) and every breach with
    its reason, over the last ``months`` months (12 by default)."""
    wh.ensure_allowed(api_actor(), "view")
    report = wh.monthly_report(months=whole_arg("months", 12, wh.REPORT_MONTHS_MAX))
    return jsonify({
        "since": _iso(report.since),
        "months": [{
            "month": f.month, "started": f.started, "delivered": f.delivered,
            "within_target": f.within_target, "share_within": f.share_within,
            "median_hours": f.median_hours, "p90_hours": f.p90_hours,
            "breached": f.breached,
        } for f in report.figures],
        "breaches": [{
            "rma": b.item.rma.number, "serial": b.item.serial,
            "customer": b.item.rma.customer.name, "due_at": _iso(b.item.due_at),
            "delivered": b.delivered, "hours_late": b.hours_late, "reason": b.reason,
        } for b in report.breaches],
    })
