"""Schemathesis over ``/api/v1/openapi.json`` (issue 8, point 4): for every role that can
hold an API token, and with no token, every documented operation is called with
generated requests, and every answer must

* not be a server error (5xx),
* have a documented status code, a documented content type, documented headers, and a
  body that matches the documented schema,
* be an RFC 9457 problem document (``application/problem+json`` with ``type``, ``title``
  and a ``status`` equal to the HTTP status) when it is an error under ``/api/``.

The data is realistic (customers A and B, RMAs with items in several states, open
quotes, an invoice, incidents with on-site visits, advisories in each status). A fixed
"happy path" of well-formed requests runs first and must succeed exactly for the roles
allowed each step; then the generated requests, whose path parameters are drawn both
from that data and from the schema, so they reach the success answers and the refusals,
not only "not found". POSTs change the data as they go; every test has its own database.
The bugs the fuzzer found are pinned by the tests at the end of the module.

Examples are bounded and derandomised (repeatable in CI); the test clock says
2026-11-25 12:00 in Shanghai. The rate limiter runs with a limit the fuzzer never
reaches, so its headers are checked and no 429 comes from a counter the fuzzer filled.
"""

from __future__ import annotations

import json
import os

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import select

from rma import clock
from rma.extensions import db
from rma.models import OnsiteVisit, User
from rma.services import advisories as advisory_service
from rma.services import incidents as incident_service
from rma.services import quotes as quote_service
from rma.services import warehouse as wh
from rma.services.audit import Actor
from rma.services.users import create_token
from tests.rma.finance_helpers import build_finance_world, open_quote_for, paid_item
from tests.rma.incident_helpers import report
from tests.rma.test_rmas import submit
from tests.rma.test_warehouse import STAFF, give_credit_terms, to_state

# role → the e-mail of the user whose token the run sends; None: no token at all.
ROLES = {
    "anonymous": None,
    "customer": "alice@a.example",
    "support": STAFF["sam"][0],
    "warehouse": STAFF["wendy"][0],
    "finance": STAFF["fay"][0],
    "manager": STAFF["mia"][0],
    "admin": STAFF["adam"][0],
}
# Generated requests per operation and generation mode (positive, negative); PostgreSQL
# replays an evenly spread subset of them (each request costs more there).
EXAMPLES = int(os.environ.get("RMA_FUZZ_EXAMPLES", "10"))
PG_EXAMPLES = int(os.environ.get("RMA_FUZZ_PG_EXAMPLES", "5"))
# Derandomised (the same requests on every run) unless a seed is given, for a longer hunt:
# RMA_FUZZ_SEED=7 RMA_FUZZ_EXAMPLES=100 pytest tests/rma/test_api_fuzz.py
SEED = int(os.environ["RMA_FUZZ_SEED"]) if os.environ.get("RMA_FUZZ_SEED") else None
EN = {"Accept-Language": "en"}


@pytest.fixture
def app_config() -> dict:
    """The rate limiter runs (its headers are checked against the document) with a limit
    the fuzzer never reaches: a 429 here would be the fuzzer's own doing."""
    return {"RATELIMIT_ENABLED": True, "WARRANTY_RATE_LIMIT": "100000/minute"}


# -- the world --------------------------------------------------------------------------
def seed_world(app, make_model, make_customer, make_user) -> dict:
    """Customers, staff of every role, RMA items in several states, an open quote, an
    invoice, an incident with an open and an ended on-site visit, advisories in each
    status, and a token per role. Returns the real path parameters to draw from."""
    world = build_finance_world(app, make_model, make_customer, make_user)
    with app.test_request_context(headers=EN):
        items: list[tuple[str, str]] = []
        for serial, state in [("TK3-A0002", "awaiting_unit"), ("TK3-A0003", "received"),
                              ("TK3-A0004", "confirmed"), ("TK3-A0005", "shipped"),
                              ("TK3-A0006", "delivered"), ("TK3-A0007", "rejected"),
                              ("TK3-A0008", "submitted"), ("TK3-A0009", "submitted")]:
            number, _item_id = to_state(app, state, serial, world=world)
            items.append((number, serial))
        # paid items: one with its quote accepted (the invoice), two with their quote open
        invoiced, _ = paid_item(app, world, "TK3-A0010")
        quoted, _ = paid_item(app, world, "TK3-A0011")
        quoted_too, _ = paid_item(app, world, "TK3-A0012")
        items += [(invoiced, "TK3-A0010"), (quoted, "TK3-A0011"), (quoted_too, "TK3-A0012")]
        alice = Actor(user=_user("alice@a.example"))
        invoice = quote_service.accept_quote(alice, open_quote_for(invoiced).number,
                                             via="api").number
        quotes = [open_quote_for(quoted).number, open_quote_for(quoted_too).number]
        # customer B, with credit terms: its paid item may be released on credit (D-3)
        other = submit(("TK3-B0001",), email="bob@b.example", customer="b", world=world)
        wh.confirm_remote(Actor(user=_user(STAFF["sam"][0])), other.items[0].id, "misuse_drop")
        give_credit_terms(other.items[0].id)
        items.append((other.number, "TK3-B0001"))
        # an incident with an ended visit (its report PDF) and a second, open one
        sam = Actor(user=_user(STAFF["sam"][0]))
        incident = report("urgent", by="sam", serials=("TK3-A0001",))
        ended = incident_service.request_onsite(sam, incident, site_address="1 Bund Road")
        incident_service.record_arrival(sam, ended)
        incident_service.end_onsite(sam, ended, "Replaced the token; service restored.")
        open_visit = incident_service.request_onsite(sam, incident, kind="change")
        quiet = report("general", by="alice@a.example", title="Manual request")
        visits = [(incident.number, ended.id), (incident.number, open_visit.id)]
        incidents = [incident.number, quiet.number]
        # advisories: a draft, a notified one, a published one
        advisories = []
        for title, notify, publish in [("Draft", False, False), ("Noticed", True, False),
                                       ("Public", True, True)]:
            advisory = advisory_service.create_advisory(
                sam, title=f"{title} advisory", severity="high",
                description="A crafted request reads the seed.", model_codes=["TK3"],
                vendor_found=False, patch_released_on=None)
            if notify:
                advisory_service.notify_customers(sam, advisory)
            if publish:
                advisory_service.publish(sam, advisory, clock.today())
            advisories.append(advisory.number)
        tokens = {role: create_token(Actor.cli("test"), _user(email), "fuzz")
                  for role, email in ROLES.items() if email}
        visit_ids = db.session.scalars(select(OnsiteVisit.id)).all()
        assert sorted(visit_ids) == sorted(v for _, v in visits)
    rmas = sorted({number for number, _ in items})
    return {
        "tokens": tokens,
        "rmas": rmas,
        "items": items,
        "invoices": [invoice],
        "quotes": quotes,
        "incidents": incidents,
        "visits": visits,
        "advisories": advisories,
        "serials": ["TK3-A0001", "TK3-B0001", "TK3-SP0001", "TK3-AEDGE"],
        "contract_a": world["contract_a"],
    }


def _user(email: str) -> User:
    return db.session.scalar(select(User).where(User.email == email))


def real_path_parameters(path: str, world: dict) -> list[dict]:
    """The path parameters of ``path`` that name seeded rows."""
    if "{visit_id}" in path:
        return [{"number": n, "visit_id": v} for n, v in world["visits"]]
    if "{serial}" in path and "{number}" in path:
        return [{"number": n, "serial": s} for n, s in world["items"]]
    if path.startswith("/api/v1/warranty/"):
        return [{"serial": s} for s in world["serials"]]
    if "{number}" not in path:
        return []
    for prefix, key in [("/api/v1/rmas/", "rmas"), ("/rmas/", "rmas"),
                        ("/api/v1/invoices/", "invoices"), ("/api/v1/quotes/", "quotes"),
                        ("/api/v1/incidents/", "incidents"),
                        ("/api/v1/advisories/", "advisories")]:
        if path.startswith(prefix):
            return [{"number": n} for n in world[key]]
    raise AssertionError(f"no seeded values for {path}")


# -- checks -----------------------------------------------------------------------------
class NotAProblemDocument(Failure):
    """An error under ``/api/`` that is not an RFC 9457 problem document."""

    kind_title = "Not an RFC 9457 problem document"

    @property
    def _unique_key(self) -> str:
        return self.message


def problem_document(ctx, response, case) -> None:
    """RFC 9457: an API error is ``application/problem+json`` with type, title and the
    same status as the response."""
    if response.status_code < 400 or not case.operation.path.startswith("/api/"):
        return None
    content_type = (response.headers.get("content-type") or [""])[0]
    problem = None
    if content_type.split(";")[0].strip() == "application/problem+json":
        try:
            problem = json.loads(response.content)
        except ValueError:
            problem = None
    if (not isinstance(problem, dict) or problem.get("status") != response.status_code
            or not isinstance(problem.get("type"), str)
            or not isinstance(problem.get("title"), str) or not problem["title"]):
        raise NotAProblemDocument(
            operation=case.operation.label,
            message=f"{response.status_code} {content_type}: {response.content[:300]!r}")
    return None


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance, problem_document]


# -- the happy path ----------------------------------------------------------------------
CUSTOMER = {"customer"}
INCIDENT_STAFF = {"support", "manager", "admin"}  # also triage (D-1): ask, reject, cancel
CONTACT = {"name": "Alice Wang", "phone": "+86 21 5555 0101", "email": "alice@a.example"}


def happy_path(world: dict) -> list[tuple[str, dict, object, set[str]]]:
    """Well-formed requests on the seeded rows, in a workflow's order, sent before the
    generated ones: (operationId, path parameters, body or None, the roles expected to
    succeed). Generated bodies seldom name a real serial or a valid state change, so
    without these the success answers (and their schemas) would hardly be checked."""
    rma = {serial: number for number, serial in world["items"]}

    def item(serial: str) -> dict:
        return {"number": rma[serial], "serial": serial}

    incident, quiet = world["incidents"]
    visit = {"number": incident, "visit_id": world["visits"][1][1]}
    draft, noticed, _public = world["advisories"]
    accepted_quote, declined_quote = world["quotes"]
    rma_body = {"contact": CONTACT, "ship_to": "Acme Bank IT, 1 Bund Road, Shanghai",
                "items": [{"serial": "TK3-A0020", "fault_description": "No display"}]}
    staff_rma = {**rma_body, "customer_contract": world["contract_a"],
                 "items": [{"serial": "TK3-A0021", "fault_description": "Buttons stuck"}]}
    incident_body = {"priority": "serious", "title": "VPN tokens rejected",
                     "description": "Since 09:00 no OTP is accepted.", "serials": ["TK3-A0001"]}
    staff_incident = {**incident_body, "customer_contract": world["contract_a"],
                      "reported_at": "2026-11-25T10:00:00+08:00"}
    return [
        ("createRma", {}, rma_body, CUSTOMER),
        ("createRma", {}, staff_rma, {"support", "warehouse", "finance", "manager", "admin"}),
        ("receiveUnit", {"number": rma["TK3-A0002"]}, {"serial": "TK3-A0002"},
         {"warehouse", "manager", "admin"}),
        ("itemConfirm", item("TK3-A0002"), {"cause": "quality_defect", "notes": "Dead LCD"},
         {"warehouse", "manager", "admin"}),
        ("itemConfirm", item("TK3-A0003"), {"cause": "misuse_drop"},
         {"support", "warehouse", "manager", "admin"}),
        ("itemOverride", item("TK3-A0003"), {"decision": "free", "reason": "Goodwill"},
         {"manager"}),
        ("itemRequestUnit", item("TK3-A0008"), {"notes": "Send it back"}, INCIDENT_STAFF),
        ("itemReject", item("TK3-A0009"), {"reason": "Not our product"}, INCIDENT_STAFF),
        ("itemRelease", item("TK3-A0011"), {"reason": "Pays monthly"}, set()),  # no terms
        ("itemRelease", item("TK3-B0001"), {"reason": "Pays monthly"}, {"finance"}),
        ("itemShip", item("TK3-A0004"), {"replacement_serial": "TK3-SP0003",
                                         "carrier": "SF Express", "tracking_number": "SF200"},
         {"warehouse", "manager", "admin"}),
        ("itemDeliver", item("TK3-A0005"), {"delivered_at": "2026-11-25T12:00:00+08:00",
                                            "received_by": "Li Lei"},
         {"warehouse", "support", "manager", "admin"}),
        ("recordPayment", {"number": world["invoices"][0]},
         {"amount": "100.00", "received_on": "2026-11-25", "method": "bank_transfer",
          "reference": "TT-0001"}, {"finance"}),
        ("acceptQuote", {"number": accepted_quote}, {"note": "Go ahead"}, CUSTOMER),
        ("declineQuote", {"number": declined_quote}, {"disposition": "scrap"}, CUSTOMER),
        ("reportIncident", {}, incident_body, CUSTOMER),
        ("reportIncident", {}, staff_incident, INCIDENT_STAFF),
        ("incidentContact", {"number": quiet}, {"note": "Called back"}, {"support", "manager"}),
        ("incidentDiagnosis", {"number": quiet}, {"diagnosis": "A manual question"},
         INCIDENT_STAFF),
        ("incidentResolve", {"number": quiet}, {"resolution": "Manual sent"}, INCIDENT_STAFF),
        ("visitArrival", visit, {}, INCIDENT_STAFF),
        ("visitBriefs", visit, {"day": "2026-11-25", "text": "On site, token replaced."},
         INCIDENT_STAFF),
        ("visitEnd", visit, {"final_report": "Token replaced; service restored."},
         INCIDENT_STAFF),
        ("createAdvisory", {}, {"title": "Seed disclosure", "severity": "medium",
                                "description": "A crafted request reads the seed.",
                                "model_codes": ["TK3"], "references": ["CVE-2026-0002"],
                                "patch_released_on": "2026-11-24"}, INCIDENT_STAFF),
        ("notifyAdvisoryCustomers", {"number": draft}, None, INCIDENT_STAFF),
        ("acknowledgeAdvisory", {"number": noticed}, None, CUSTOMER),
        ("publishAdvisory", {"number": noticed}, None, INCIDENT_STAFF),
    ]


# -- generating and sending -------------------------------------------------------------
# The requests depend only on the schema and the seeded rows (the same on every database:
# numbers and ids restart with each test's data), so they are generated once per session
# and replayed for each role and database: generating costs more than sending.
_GENERATED: dict[str, object] = {}


def _draw(strategy, examples: int) -> list:
    drawn: list = []

    @settings(max_examples=examples, deadline=None, derandomize=SEED is None, database=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def collect(case):
        drawn.append(case)

    if SEED is not None:
        collect = hypothesis_seed(SEED)(collect)

    collect()
    return drawn


def generated_cases(app, world: dict) -> tuple[list, dict[str, list]]:
    """The happy path's cases, and per operation and generation mode up to ``EXAMPLES``
    generated ones (about half on seeded path parameters), by Schemathesis from the
    document the app serves at ``/api/v1/openapi.json``."""
    seeded = {k: v for k, v in world.items() if k != "tokens"}
    served = app.test_client().get("/api/v1/openapi.json").get_json()
    if _GENERATED:
        assert (_GENERATED["document"], _GENERATED["world"]) == (served, seeded), \
            "the generated cases no longer fit the seeded data"
        return _GENERATED["happy"], _GENERATED["groups"]
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    happy = []
    for operation_id, parameters, body, succeed in happy_path(world):
        operation = schema.find_operation_by_id(operation_id)
        fixed = {"path_parameters": parameters} if body is None else {
            "path_parameters": parameters, "body": body}
        (case,) = _draw(operation.as_strategy(**fixed), 1)
        happy.append((case, succeed))
    groups: dict[str, list] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        reals = real_path_parameters(operation.path, world)
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            strategies = [operation.as_strategy(generation_mode=mode)]
            strategies += [operation.as_strategy(generation_mode=mode, path_parameters=p)
                           for p in reals]
            groups[f"{mode} {operation.label}"] = _draw(st.one_of(strategies), EXAMPLES)
    _GENERATED.update(document=served, world=seeded, happy=happy, groups=groups)
    return happy, groups


def send(app, case, headers: dict, role: str, failures: dict, statuses: dict) -> int:
    """Send ``case`` and run the checks; a failure is kept once per operation."""
    response = case.call(headers=headers, app=app)
    statuses.setdefault(case.operation.label, set()).add(response.status_code)
    try:
        case.validate_response(response, checks=CHECKS, headers=headers)
    except (AssertionError, BaseExceptionGroup) as error:
        failures.setdefault(case.operation.label, f"{role} {case.operation.label}:\n{error}")
    return response.status_code


@pytest.mark.parametrize("role", list(ROLES))
def test_fuzz_every_operation_for_every_role(app, database_url, make_model, make_customer,
                                             make_user, role):
    """No 5xx; documented status, content type, headers and body; RFC 9457 errors. The
    happy path succeeds exactly for the roles allowed to do each step."""
    world = seed_world(app, make_model, make_customer, make_user)
    happy, groups = generated_cases(app, world)
    token = world["tokens"].get(role)
    headers = {**EN, **({"Authorization": f"Bearer {token}"} if token else {})}
    failures: dict[str, str] = {}
    statuses: dict[str, set[int]] = {}
    unexpected = []
    for case, succeed in happy:
        status = send(app, case, headers, role, failures, statuses)
        if (status < 300) != (role in succeed):
            unexpected.append(f"{case.operation.definition.raw.get('operationId')} "
                              f"{case.path_parameters}: {status}")
    examples = EXAMPLES if database_url.startswith("sqlite") else PG_EXAMPLES
    for cases in groups.values():
        stride = max(1, len(cases) // examples)
        for case in cases[::stride][:examples]:
            send(app, case, headers, role, failures, statuses)
    if os.environ.get("RMA_FUZZ_REPORT"):
        for label, codes in sorted(statuses.items()):
            print(f"{role:10} {label:60} {sorted(codes)}")
    assert not failures, "\n\n".join(failures.values())
    assert not unexpected, f"{role}: happy path steps answered otherwise: {unexpected}"


# -- what the fuzzer found, pinned ------------------------------------------------------
def _api(app, client, make_model, make_customer, make_user):
    world = seed_world(app, make_model, make_customer, make_user)

    def call(role: str, method: str, url: str, body=None):
        headers = {**EN, "Authorization": f"Bearer {world['tokens'][role]}"}
        return client.open(url, method=method, json=body, headers=headers)

    return world, call


def _refused(response, status: int, field: str | None = None) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["status"] == status and body["title"]
    if field is not None:
        assert body["errors"][0]["field"] == field, body
    return body


def test_a_page_too_far_for_the_database_is_422_not_500(app, client, make_model,
                                                         make_customer, make_user):
    """A page of 13466030524879108096 overflowed the query's offset (SQLite: "Python int
    too large to convert to SQLite INTEGER"): every paged list now answers 422 naming
    ``page`` past the documented maximum, and still serves the maximum itself."""
    _world, call = _api(app, client, make_model, make_customer, make_user)
    for url in ("/api/v1/rmas", "/api/v1/incidents", "/api/v1/invoices",
                "/api/v1/replacements"):
        _refused(call("manager", "GET", f"{url}?page=13466030524879108096"), 422, "page")
        _refused(call("manager", "GET", f"{url}?page=1000001"), 422, "page")
        last = call("manager", "GET", f"{url}?page=1000000")
        assert last.status_code == 200 and last.get_json()["items"] == []
    _refused(call("manager", "GET", "/api/v1/rmas?page=0"), 422, "page")


def test_a_body_that_is_not_an_object_names_the_body(app, client, make_model, make_customer,
                                                      make_user):
    """A JSON body that is not an object (``true``, ``10.0``, ``"á"``) is a validation
    problem like any other: ``errors`` names ``body`` (it had no ``errors`` at all)."""
    world, call = _api(app, client, make_model, make_customer, make_user)
    incident = world["incidents"][0]
    for role, url in [("customer", f"/api/v1/quotes/{world['quotes'][0]}/accept"),
                      ("support", f"/api/v1/incidents/{incident}/diagnosis"),
                      ("support", "/api/v1/advisories")]:
        for body in (True, 10.0, "á", [1]):
            _refused(call(role, "POST", url, body), 422, "body")


def test_a_malformed_scan_is_a_validation_problem_naming_the_serial(app, client, make_model,
                                                                    make_customer, make_user):
    """The scan station's 422 keeps its scan fields and now lists the error too."""
    world, call = _api(app, client, make_model, make_customer, make_user)
    number = world["rmas"][0]
    body = _refused(call("warehouse", "POST", f"/api/v1/rmas/{number}/receive",
                         {"serial": "public/advisory.html"}), 422, "serial")
    assert body["outcome"] == "malformed" and body["errors"][0]["code"] == "malformed"
    assert body["rma"] == number


def test_u0000_never_reaches_the_database(app, client, make_model, make_customer, make_user):
    """PostgreSQL text cannot hold U+0000 (psycopg raised DataError: a 500, on PostgreSQL
    only; found with ``model_codes`` of a new advisory). A path holding it is a 404, a
    query argument or a JSON member holding it a 422 naming it; on both databases."""
    world, call = _api(app, client, make_model, make_customer, make_user)
    rma = world["rmas"][0]
    assert call("manager", "GET", f"/api/v1/rmas/{rma}%00").status_code == 404
    assert call("manager", "GET", f"/rmas/{rma}%00/label.pdf").status_code == 404
    _refused(call("manager", "GET", f"/api/v1/rmas/{rma}%00"), 404)
    _refused(call("manager", "GET", "/api/v1/rmas?q=RMA%00"), 422, "q")
    _refused(call("finance", "GET", "/api/v1/invoices?customer=A%00"), 422, "customer")
    _refused(call("support", "POST", "/api/v1/advisories", {
        "title": "Seed", "severity": "low", "description": "d", "model_codes": ["TK\x003"]}),
        422, "model_codes")
    _refused(call("support", "POST", "/api/v1/incidents", {
        "priority": "urgent", "title": "Down\x00", "description": "d",
        "customer_contract": world["contract_a"]}), 422, "title")
    _refused(call("customer", "POST", "/api/v1/rmas", {
        "contact": {"name": "Alice\x00"}, "ship_to": "x", "items": []}), 422, "contact")


@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00+00:01", "9999-12-31T23:59:59-00:01"])
def test_an_instant_python_cannot_hold_is_422(app, client, make_model, make_customer,
                                              make_user, moment):
    """ISO 8601 texts whose instant falls outside years 1..9999 in UTC overflowed when
    converted (OverflowError: a 500): now 422 naming the field. A patch date of
    9999-12-31 overflowed the advisory's R-A2 due day the same way."""
    world, call = _api(app, client, make_model, make_customer, make_user)
    rma = {serial: number for number, serial in world["items"]}
    incident = world["incidents"][0]
    visit = world["visits"][1][1]
    _refused(call("warehouse", "POST", f"/api/v1/rmas/{rma['TK3-A0005']}/items/TK3-A0005"
                  "/deliver", {"delivered_at": moment, "received_by": "Li Lei"}),
             422, "delivered_at")
    _refused(call("support", "POST", f"/api/v1/incidents/{incident}/visits/{visit}/arrival",
                  {"arrived_at": moment}), 422, "arrived_at")
    _refused(call("customer", "POST", f"/api/v1/incidents/{incident}/onsite",
                  {"requested_at": moment}), 422, "requested_at")
    _refused(call("support", "POST", "/api/v1/incidents", {
        "priority": "urgent", "title": "Down", "description": "d",
        "customer_contract": world["contract_a"], "reported_at": moment}), 422, "reported_at")
    _refused(call("support", "POST", "/api/v1/advisories", {
        "title": "Seed", "severity": "low", "description": "d", "model_codes": ["TK3"],
        "patch_released_on": "9999-12-31"}), 422, "patch_released_on")
