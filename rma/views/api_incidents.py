"""The incident API under ``/api/v1`` (issue 6; R-I1..R-I6, R-C4, D-7).

Bearer tokens, CSRF-exempt like ``rma.views.api``. A customer's token reports and reads
only its own customer's incidents (another customer's number answers 404 like an unknown
one), asks for on-site help and adds notes; staff tokens (support, manager, admin) see
every incident, report on a customer's behalf (``customer_contract``, and ``reported_at``
for a call logged after the fact: every deadline counts from it) and run the actions.
An incident carries every deadline with ``due_at``, ``clock``, ``state``, ``breached``
and ``calendar_warning``, its escalation history (staff) and its on-site visits.

Errors are RFC 9457 problem documents: bad input 422 naming the field, a wrong state
409, a customer's token on a staff action 403. A refused action changes nothing.
"""

from __future__ import annotations

import functools
from datetime import UTC, date, datetime

from flask import Blueprint, g, jsonify, request, url_for
from flask_babel import gettext as _

from rma import clock
from rma.errors import problem
from rma.extensions import db
from rma.models import (
    Incident,
    IncidentChannel,
    IncidentPriority,
    IncidentStatus,
    OnsiteKind,
    OnsiteVisit,
    SupportMode,
)
from rma.services import NotFoundError, ServiceError
from rma.services import incidents as service
from rma.services.catalog import customer_by_contract
from rma.views.api import token_required
from rma.views.api_common import (
    ProblemRaised,
    api_actor,
    invalid,
    json_body,
    whole_arg,
)
from rma.views.api_warehouse import service_problem

bp = Blueprint("api_incidents", __name__, url_prefix="/api/v1")

PER_PAGE_MAX = 100
TEXT_MAX = 10000
PRIORITIES = tuple(p.value for p in IncidentPriority)
STATUSES = tuple(s.value for s in IncidentStatus)
SUPPORT_MODES = tuple(m.value for m in SupportMode)
VISIT_KINDS = tuple(k.value for k in OnsiteKind)
LANGUAGES = ("zh_CN", "en")


def incident_api(view):
    """A valid bearer token (401 otherwise); bad input and service refusals become
    problem documents (nothing is changed then)."""

    @functools.wraps(view)
    def answered(*args, **kwargs):
        try:
            return view(*args, **kwargs)
        except ProblemRaised as bad:
            db.session.rollback()
            return bad.response
        except ServiceError as error:  # IncidentError 422, IncidentStateError 409, …
            db.session.rollback()
            return service_problem(error)

    return token_required(answered)


def _forbidden(detail: str) -> ProblemRaised:
    return ProblemRaised(problem(403, "Forbidden", detail))


def _not_found() -> ProblemRaised:
    return ProblemRaised(problem(404, "Not Found", _("No such incident.")))


# -- input ------------------------------------------------------------------------------
def _text(body: dict, name: str, *, required: bool = False, maximum: int = TEXT_MAX) -> str:
    value = body.get(name)
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise invalid(name, _("%(name)s must be a text.", name=name))
    value = value.strip()
    if required and not value:
        raise invalid(name, _("%(name)s is required.", name=name))
    if len(value) > maximum:
        raise invalid(name, _("%(name)s is longer than %(max)d characters.", name=name,
                               max=maximum))
    return value


def _choice(body: dict, name: str, choices: tuple[str, ...], default: str | None = None) -> str:
    value = body.get(name)
    if value is None or value == "":
        if default is not None:
            return default
        raise invalid(name, _("%(name)s is required: one of %(choices)s.", name=name,
                              choices=", ".join(choices)))
    if value not in choices:
        raise invalid(name, _("%(name)s must be one of %(choices)s.", name=name,
                              choices=", ".join(choices)))
    return value


def _texts(body: dict, name: str) -> list[str]:
    """A list of texts, or one text with one value per line."""
    value = body.get(name)
    if value is None:
        return []
    if isinstance(value, str):
        value = value.splitlines()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise invalid(name, _("%(name)s must be a list of texts.", name=name))
    return [v.strip() for v in value if v.strip()]


def _instant(body: dict, name: str) -> datetime | None:
    """An ISO 8601 instant with its offset (``2026-11-25T09:30:00+08:00``), as UTC."""
    value = body.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise invalid(name, _("%(name)s must be an ISO 8601 date and time.", name=name))
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise invalid(name, _("%(name)s must be an ISO 8601 date and time, e.g. "
                              "2026-11-25T09:30:00+08:00.", name=name)) from None
    if moment.tzinfo is None:
        raise invalid(name, _("%(name)s needs its UTC offset, e.g. +08:00 for China time.",
                              name=name))
    try:
        return moment.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00+00:01: before the first instant Python holds
        raise invalid(name, _("%(name)s must be an ISO 8601 date and time, e.g. "
                              "2026-11-25T09:30:00+08:00.", name=name)) from None


def _day(body: dict, name: str) -> date:
    value = body.get(name)
    if not isinstance(value, str) or not value.strip():
        raise invalid(name, _("%(name)s is required: a date like 2026-11-25.", name=name))
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise invalid(name, _("%(name)s must be a date like 2026-11-25.", name=name)) from None


def _is_staff() -> bool:
    return service.is_staff_user(g.api_user)


def _staff_only() -> None:
    if not _is_staff():
        raise _forbidden(_("Only the support centre may do this."))


def _incident(number: str) -> Incident:
    incident = service.get_incident(number, g.api_user)
    if incident is None:
        raise _not_found()
    return incident


def _visit(incident: Incident, visit_id: int) -> OnsiteVisit:
    visit = next((v for v in incident.visits if v.id == visit_id), None)
    if visit is None:
        raise ProblemRaised(problem(404, "Not Found", _("No such on-site visit.")))
    return visit


# -- output -----------------------------------------------------------------------------
def _iso(value: date | datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _person(user) -> dict | None:
    if user is None:
        return None
    return {"id": user.id, "name": user.full_name or user.email}


def deadline_json(target) -> dict:
    state = str(target.state)
    return {
        "target": target.target,
        "due_at": _iso(target.due_at),
        "done_at": _iso(target.done_at),
        "clock": target.clock,
        "state": state,
        "breached": state in ("breached", "missed"),
        "remaining_seconds": int(target.remaining.total_seconds()),
        "calendar_warning": target.missing.message() if target.missing else None,
    }


def _recipients(recipients) -> list:
    out = []
    for entry in recipients or ():
        if isinstance(entry, dict):
            out.append(entry)
        elif isinstance(entry, (tuple, list)) and len(entry) == 2:
            user, role = entry
            out.append({"user_id": getattr(user, "id", None),
                        "email": getattr(user, "email", str(user)), "as": role})
        else:
            out.append(str(entry))
    return out


def rung_json(rung) -> dict:
    return {"hours": rung.hours, "role": rung.role, "due_at": _iso(rung.due_at),
            "fired_at": _iso(rung.fired_at), "fired": rung.fired_at is not None,
            "recipients": _recipients(getattr(rung, "recipients", ()))}


def visit_json(visit: OnsiteVisit) -> dict:
    return {
        "id": visit.id,
        "kind": str(visit.kind),
        "requested_at": _iso(visit.requested_at),
        "arrival_due_at": _iso(visit.arrival_due_at),
        "arrived_at": _iso(visit.arrived_at),
        "ended_at": _iso(visit.ended_at),
        "engineer": _person(visit.engineer),
        "site_address": visit.site_address,
        "note": visit.note,
        "chargeable": bool(visit.chargeable),
        "contract_year_start": _iso(visit.contract_year_start),
        "briefs": [{"day": _iso(brief.day), "text": brief.text, "filed_at": _iso(brief.filed_at)}
                   for brief in visit.briefs],
        "final_report": visit.final_report,
        "report_url": (url_for("api_incidents.visit_report", number=visit.incident.number,
                               visit_id=visit.id, _external=True)
                       if visit.ended_at is not None else None),
    }


def summary_json(incident: Incident) -> dict:
    return {
        "number": incident.number,
        "customer": {"name": incident.customer.name,
                     "contract_number": incident.customer.contract_number},
        "priority": str(incident.priority),
        "status": str(incident.status),
        "support_mode": str(incident.support_mode),
        "title": incident.title,
        "reported_at": _iso(incident.reported_at),
        "engineer": _person(incident.engineer),
        "next_due_at": _iso(incident.next_due_at),
        "url": url_for("api_incidents.incident_detail", number=incident.number,
                       _external=True),
    }


def incident_json(incident: Incident) -> dict:
    """Everything about one incident; staff also get the escalation history and the
    internal timeline entries."""
    staff = _is_staff()
    clocks = service.incident_clocks(incident, clock.now())
    body = {
        **summary_json(incident),
        "channel": str(incident.channel),
        "description": incident.description,
        "reporter_name": incident.reporter_name,
        "reporter_contact": incident.reporter_contact,
        "language": incident.language,
        "serials": [unit.serial for unit in incident.units],
        "product_models": [model.code for model in incident.product_models],
        "contacted_at": _iso(incident.contacted_at),
        "diagnosed_at": _iso(incident.diagnosed_at),
        "diagnosis": incident.diagnosis,
        "resolved_at": _iso(incident.resolved_at),
        "resolution": incident.resolution,
        "deadlines": [deadline_json(target) for target in clocks.targets],
        "calendar_warnings": [warning.message() for warning in clocks.warnings],
        "visits": [visit_json(visit) for visit in incident.visits],
        "timeline": [{"at": _iso(entry.at), "kind": entry.kind, "text": entry.text,
                      "actor": entry.actor, "public": entry.public}
                     for entry in service.timeline(incident, g.api_user)],
    }
    if staff:
        body["escalated_role"] = incident.escalated_role
        body["escalations"] = [rung_json(rung) for rung in clocks.rungs]
    return body


def _answer(incident: Incident, status: int = 200, location: bool = False):
    db.session.expire_all()
    incident = _incident(incident.number)
    response = jsonify(incident_json(incident))
    response.status_code = status
    if location:
        response.headers["Location"] = url_for("api_incidents.incident_detail",
                                               number=incident.number)
    return response


# -- list and report --------------------------------------------------------------------
@bp.get("/incidents")
@incident_api
def incident_list():
    """A customer's token: its own incidents; a staff token: every customer's, filtered
    by ``status``, ``priority`` and ``customer`` (a contract number). Newest first."""
    user = g.api_user
    page = whole_arg("page", 1)
    per_page = whole_arg("per_page", 20, PER_PAGE_MAX)
    status = request.args.get("status", "").strip() or None
    priority = request.args.get("priority", "").strip() or None
    if status is not None and status not in (*STATUSES, "open"):
        raise invalid("status", _("status must be open or one of %(choices)s.",
                                  choices=", ".join(STATUSES)))
    if priority is not None and priority not in PRIORITIES:
        raise invalid("priority", _("priority must be one of %(choices)s.",
                                    choices=", ".join(PRIORITIES)))
    customer_id = None
    contract = request.args.get("customer", "").strip()
    if contract and _is_staff():
        try:
            customer_id = customer_by_contract(contract).id
        except NotFoundError:
            raise invalid("customer", _("%(value)s is not a known contract number.",
                                         value=repr(contract[:40]))) from None
    result = service.list_incidents(user, status=status, priority=priority,
                                    customer_id=customer_id, page=page, per_page=per_page)
    return jsonify({"items": [summary_json(incident) for incident in result.rows],
                    "page": result.page, "per_page": result.per_page, "total": result.total,
                    "pages": result.pages})


@bp.post("/incidents")
@incident_api
def incident_report():
    """Report a fault (R-I1..R-I3). Staff name the customer (``customer_contract``) and
    may give ``reported_at`` (not in the future, at most 7 days back); a customer's token
    reports for its own customer, now. 201 with the incident and its deadlines."""
    user = g.api_user
    body = json_body()
    if _is_staff():
        contract = _text(body, "customer_contract", required=True, maximum=64)
        try:
            customer = customer_by_contract(contract)
        except NotFoundError:
            raise invalid("customer_contract", _("%(value)s is not a known contract number.",
                                                  value=repr(contract[:40]))) from None
    else:
        customer = user.customer
        if customer is None:
            raise _forbidden(_("Only customers and the support centre report incidents."))
        if body.get("customer_contract") not in (None, "", customer.contract_number):
            raise invalid("customer_contract",
                          _("A customer's token reports for its own contract only."))
        if body.get("reported_at") not in (None, ""):
            raise invalid("reported_at", _("Only the support centre may give reported_at."))
    priority = _choice(body, "priority", PRIORITIES)
    language = body.get("language") or (user.language if not _is_staff() else None)
    if language is not None and language not in LANGUAGES:
        raise invalid("language", _("language must be zh_CN or en."))
    incident = service.report_incident(
        api_actor(), customer=customer, priority=priority,
        title=_text(body, "title", required=True, maximum=200),
        description=_text(body, "description", required=True),
        serials=_texts(body, "serials"), model_codes=_texts(body, "model_codes"),
        channel=IncidentChannel.API.value,
        reporter_name=_text(body, "reporter_name", maximum=200),
        reporter_contact=_text(body, "reporter_contact", maximum=254),
        reported_at=_instant(body, "reported_at"), language=language)
    return _answer(incident, 201, location=True)


@bp.get("/incidents/<number>")
@incident_api
def incident_detail(number: str):
    return jsonify(incident_json(_incident(number)))


# -- actions ----------------------------------------------------------------------------
@bp.post("/incidents/<number>/contact")
@incident_api
def incident_contact(number: str):
    """R-I1: the customer was contacted; ``engineer_id`` (default: the token's user) is
    assigned."""
    incident = _incident(number)
    _staff_only()
    body = json_body()
    engineer_id = body.get("engineer_id")
    if engineer_id is not None and (isinstance(engineer_id, bool)
                                    or not isinstance(engineer_id, int)):
        raise invalid("engineer_id", _("engineer_id must be a user id (a whole number)."))
    service.contact_customer(api_actor(), incident, engineer_id=engineer_id,
                             note=_text(body, "note"))
    return _answer(incident)


@bp.post("/incidents/<number>/diagnosis")
@incident_api
def incident_diagnosis(number: str):
    """R-I2: the diagnosis given to the customer."""
    incident = _incident(number)
    _staff_only()
    body = json_body()
    service.record_diagnosis(api_actor(), incident, _text(body, "diagnosis", required=True))
    return _answer(incident)


@bp.post("/incidents/<number>/priority")
@incident_api
def incident_priority(number: str):
    """D-7: a new priority with its reason; every deadline is recomputed from the report
    time."""
    incident = _incident(number)
    _staff_only()
    body = json_body()
    service.change_priority(api_actor(), incident, _choice(body, "priority", PRIORITIES),
                            _text(body, "reason", required=True, maximum=2000))
    return _answer(incident)


@bp.post("/incidents/<number>/support-mode")
@incident_api
def incident_support_mode(number: str):
    """R-I5: phone / remote / onsite."""
    incident = _incident(number)
    _staff_only()
    body = json_body()
    service.set_support_mode(api_actor(), incident, _choice(body, "mode", SUPPORT_MODES),
                             _text(body, "note", maximum=2000))
    return _answer(incident)


@bp.post("/incidents/<number>/onsite")
@incident_api
def incident_onsite(number: str):
    """R-I6: on-site help requested (the customer, or staff for it); the arrival clock
    starts. ``kind`` ``emergency`` (default) or ``change`` (R-C4: the second change visit
    in a contract year is chargeable). Staff may give ``requested_at``."""
    incident = _incident(number)
    body = json_body()
    requested_at = _instant(body, "requested_at")
    if requested_at is not None and not _is_staff():
        raise invalid("requested_at", _("Only the support centre may give requested_at."))
    visit = service.request_onsite(
        api_actor(), incident, kind=_choice(body, "kind", VISIT_KINDS, "emergency"),
        requested_at=requested_at, site_address=_text(body, "site_address", maximum=2000),
        note=_text(body, "note"))
    response = _answer(incident, 201)
    response.headers["Location"] = url_for("api_incidents.incident_detail",
                                           number=incident.number) + f"#visit-{visit.id}"
    return response


@bp.post("/incidents/<number>/visits/<int:visit_id>/arrival")
@incident_api
def visit_arrival(number: str, visit_id: int):
    """The engineer arrived on site (``arrived_at``, default now)."""
    incident = _incident(number)
    _staff_only()
    visit = _visit(incident, visit_id)
    body = json_body()
    service.record_arrival(api_actor(), visit, _instant(body, "arrived_at"))
    return _answer(incident)


@bp.post("/incidents/<number>/visits/<int:visit_id>/briefs")
@incident_api
def visit_brief(number: str, visit_id: int):
    """R-I6: the daily brief of one China-time ``day`` of the visit."""
    incident = _incident(number)
    _staff_only()
    visit = _visit(incident, visit_id)
    body = json_body()
    service.file_daily_brief(api_actor(), visit, _day(body, "day"),
                             _text(body, "text", required=True))
    return _answer(incident, 201)


@bp.post("/incidents/<number>/visits/<int:visit_id>/end")
@incident_api
def visit_end(number: str, visit_id: int):
    """R-I6: the response ends with the final report (sent to the customer as PDF)."""
    incident = _incident(number)
    _staff_only()
    visit = _visit(incident, visit_id)
    body = json_body()
    service.end_onsite(api_actor(), visit, _text(body, "final_report", required=True))
    return _answer(incident)


@bp.get("/incidents/<number>/visits/<int:visit_id>/report.pdf")
@incident_api
def visit_report(number: str, visit_id: int):
    """The final emergency response report as PDF, once the visit ended."""
    from rma.views.portal_incidents import report_pdf_response

    visit = _visit(_incident(number), visit_id)
    if visit.ended_at is None:
        raise ProblemRaised(problem(409, "Conflict", _("The visit has not ended yet.")))
    return report_pdf_response(visit)


@bp.post("/incidents/<number>/resolve")
@incident_api
def incident_resolve(number: str):
    incident = _incident(number)
    _staff_only()
    body = json_body()
    service.resolve_incident(api_actor(), incident, _text(body, "resolution", required=True))
    return _answer(incident)


@bp.post("/incidents/<number>/notes")
@incident_api
def incident_note(number: str):
    """A note on the timeline: a customer's is public; staff choose (``public``, default
    false: internal)."""
    incident = _incident(number)
    body = json_body()
    public = body.get("public", False)
    if not isinstance(public, bool):
        raise invalid("public", _("public must be true or false."))
    service.add_note(api_actor(), incident, _text(body, "text", required=True),
                     public=public or not _is_staff())
    return _answer(incident, 201)
