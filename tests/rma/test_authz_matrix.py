"""The authorisation matrix (issue 8, point 4): every URL rule of the app, requested as
anonymous, as a user of every role, as a second customer (B) on customer A's objects,
and with customer B's API token.

What must hold, rule by rule:

* anonymous: the log-in page for pages (302 to ``/login``), 401 for the API, except the
  public routes of ``PUBLIC``;
* a role outside a rule's audience (``AUDIENCE`` by blueprint, ``ENDPOINT_AUDIENCE``
  where one endpoint differs): 403 (customers on staff areas, staff without the role);
* customer B on an URL naming an object of customer A: 403 or 404, never 2xx;
* a browser session never authenticates the JSON API (401);
* no answer is ever a 500.

Every rule must be covered by the tables below: a new route fails
``test_every_rule_is_in_the_tables`` until someone says who may use it. The data (one RMA
with a paid item, its quote and invoice, a photo, an incident with a visit, an advisory
with its notice, a sent service report, an invitation, an application...) is built once
per module and database; each role's requests run in their own test.
"""

from __future__ import annotations

import io
import shutil
from datetime import UTC, date, datetime

import pytest
from PIL import Image
from sqlalchemy import select

from rma.extensions import db
from rma.models import Invitation, ProductModel, RegistrationApplication, User
from rma.services.audit import Actor
from tests.conftest import (
    DATABASES,
    PG_URL,
    TEST_PASSWORD,
    _reset_postgres,
    _sqlite_schema,
    make_app,
)

EN = {"Accept-Language": "en"}
NOW = datetime(2026, 11, 25, 4, 0, tzinfo=UTC)

CUSTOMER_A, CUSTOMER_B = "customer_a", "customer_b"
SUPPORT, WAREHOUSE, FINANCE, MANAGER, ADMIN = "support", "warehouse", "finance", "manager", "admin"
STAFF = frozenset({SUPPORT, WAREHOUSE, FINANCE, MANAGER, ADMIN})
CUSTOMERS = frozenset({CUSTOMER_A, CUSTOMER_B})
EVERYONE = STAFF | CUSTOMERS
ROLES = [CUSTOMER_A, CUSTOMER_B, SUPPORT, WAREHOUSE, FINANCE, MANAGER, ADMIN]
EMAILS = {
    CUSTOMER_A: "alice@a.example", CUSTOMER_B: "bob@b.example",
    SUPPORT: "sam@vendor.example", WAREHOUSE: "wendy@vendor.example",
    FINANCE: "fay@vendor.example", MANAGER: "mia@vendor.example",
    ADMIN: "adam@vendor.example",
}

# -- who may use what ----------------------------------------------------------------
# Routes anyone may open without logging in (endpoint or "blueprint.*").
PUBLIC = {
    "public.*", "public_advisories.*", "static", "health.*",
    "auth.login", "auth.language", "auth.logout",
    "accounts.register", "accounts.register_thanks", "accounts.accept",
    "api.openapi", "api.warranty",
    # published advisories are public; a customer's token adds its own noticed ones
    "api_advisories.advisories", "api_advisories.detail",
}
# Public routes whose normal answer may be a 5xx (readiness: no migrations in tests).
MAY_BE_UNAVAILABLE = {"health.readyz"}
# Blueprint → roles past its gate; every other logged-in role gets 403. Object-level
# scoping (customer A's RMA is not customer B's) is checked separately.
# "redirect" blueprints send a staff user to the staff pages instead of a 403.
AUDIENCE: dict[str, frozenset[str]] = {
    "portal": EVERYONE,  # staff may look at a customer's RMA from the portal side
    "portal_incidents": EVERYONE,  # staff may add a public note from the portal side
    "portal_advisories": CUSTOMERS,
    "portal_reports": CUSTOMERS,
    "labels": EVERYONE,
    "admin": frozenset({ADMIN}),
    "admin_incidents": frozenset({ADMIN, MANAGER}),
    "advisories": frozenset({SUPPORT, MANAGER, ADMIN}),
    "analytics": frozenset({SUPPORT, FINANCE, MANAGER, ADMIN}),
    "finance": STAFF,
    "service_reports": frozenset({SUPPORT, MANAGER, ADMIN}),
    "support": frozenset({SUPPORT, MANAGER, ADMIN}),
    "warehouse": STAFF,
}
# Endpoints whose audience differs from their blueprint's.
ENDPOINT_AUDIENCE: dict[str, frozenset[str]] = {
    "accounts.colleagues": CUSTOMERS,
    "accounts.colleague_active": CUSTOMERS,
    "accounts.colleague_admin": CUSTOMERS,
    "accounts.colleague_revoke": CUSTOMERS,
    "accounts.colleague_invite": CUSTOMERS,
    "accounts.applications": frozenset({SUPPORT, MANAGER, ADMIN}),
    "accounts.application": frozenset({SUPPORT, MANAGER, ADMIN}),
    "accounts.staff_customers": frozenset({SUPPORT, MANAGER, ADMIN}),
    "accounts.staff_users": frozenset({SUPPORT, MANAGER, ADMIN}),
    "accounts.staff_invite": frozenset({SUPPORT, MANAGER, ADMIN}),
    "accounts.staff_revoke": frozenset({SUPPORT, MANAGER, ADMIN}),
    "admin_incidents.add_day": frozenset({ADMIN}),
    "admin_incidents.remove_day": frozenset({ADMIN}),
    "admin_incidents.confirm_year": frozenset({ADMIN}),
    "admin_incidents.unconfirm_year": frozenset({ADMIN}),
    "admin_incidents.set_holder": frozenset({ADMIN}),
    "admin_incidents.remove_holder": frozenset({ADMIN}),
    "admin_incidents.save_ladder": frozenset({ADMIN}),
    "admin_incidents.reset_ladder": frozenset({ADMIN}),
    "analytics.recompute": frozenset({MANAGER, ADMIN}),
    "support.notifications": STAFF,
}
# Staff pages of these blueprints send customers elsewhere (a redirect) rather than 403.
REDIRECTS_STAFF = {"portal_advisories", "portal_reports"}
# API endpoints only staff tokens may use (customer B's token: 403).
API_STAFF_ONLY = {
    "api_advisories.create", "api_advisories.notify", "api_advisories.publish",
    "api_finance.record_payment",
    "api_incidents.incident_contact", "api_incidents.incident_diagnosis",
    "api_incidents.incident_priority", "api_incidents.incident_resolve",
    "api_incidents.incident_support_mode", "api_incidents.visit_arrival",
    "api_incidents.visit_brief", "api_incidents.visit_end",
    "api_warehouse.replacements", "api_warehouse.replacement_report",
    "api_warehouse.cancel", "api_warehouse.confirm", "api_warehouse.deliver",
    "api_warehouse.override", "api_warehouse.reject", "api_warehouse.release",
    "api_warehouse.request_unit", "api_warehouse.ship", "api_warehouse.receive",
}


def is_public(endpoint: str) -> bool:
    return endpoint in PUBLIC or f"{endpoint.split('.')[0]}.*" in PUBLIC


def is_api(rule) -> bool:
    return rule.rule.startswith("/api/")


def audience(endpoint: str) -> frozenset[str]:
    if is_public(endpoint):
        return EVERYONE
    if endpoint in ENDPOINT_AUDIENCE:
        return ENDPOINT_AUDIENCE[endpoint]
    return AUDIENCE[endpoint.split(".")[0]]


# -- the data --------------------------------------------------------------------------
def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 200, 30)).save(buffer, "PNG")
    return buffer.getvalue()


def _builders(app):
    """The conftest's ``make_model``/``make_customer``/``make_user``, for a module app."""
    from rma.services.catalog import create_customer, create_product_model, customer_by_contract
    from rma.services.users import create_user

    def make_model(code="TK3", life_months=36, basis="ship", kind="hardware", price="80.00"):
        with app.app_context():
            return create_product_model(Actor.cli("test"), code, f"{code} token", kind,
                                        life_months, basis, price).id

    def make_customer(name, accepted_on, months=12):
        with app.app_context():
            return create_customer(Actor.cli("test"), name, accepted_on, months).contract_number

    def make_user(email, role, contract=None, password=TEST_PASSWORD, language="en"):
        with app.app_context():
            customer = customer_by_contract(contract) if contract else None
            return create_user(Actor.cli("test"), email, role, password, customer, language).id

    return make_model, make_customer, make_user


def build_objects(app) -> dict:
    """Customer A's objects of every kind, plus an API token of customer B (and of A, to
    show that the URLs name real objects)."""
    from rma.services import advisories, incidents, invitations, quotes, registration
    from rma.services import service_reports as sr
    from rma.services.escalation_setup import set_holder
    from rma.services.incidents import request_onsite
    from rma.services.rmas import ItemInput, PhotoInput
    from rma.services.users import create_token
    from tests.rma.finance_helpers import build_finance_world, open_quote_for, paid_item
    from tests.rma.incident_helpers import report
    from tests.rma.test_rmas import submit

    world = build_finance_world(app, *_builders(app))
    rma_number, item_id = paid_item(app, world)
    with app.test_request_context(headers=EN):
        alice = db.session.scalar(select(User).where(User.email == EMAILS[CUSTOMER_A]))
        bob = db.session.scalar(select(User).where(User.email == EMAILS[CUSTOMER_B]))
        sam = db.session.scalar(select(User).where(User.email == EMAILS[SUPPORT]))
        mia = db.session.scalar(select(User).where(User.email == EMAILS[MANAGER]))
        alice.is_customer_admin = True
        db.session.commit()
        quote = open_quote_for(rma_number).number
        invoice = quotes.accept_quote(Actor(user=alice), quote, via="portal").number
        photo_rma = submit([ItemInput("TK3-A0002", "Cracked case", None,
                                      (PhotoInput("case.png", _png()),))], world=world)
        photo_id = photo_rma.items[0].photos[0].id
        incident = report(by="sam", customer_key="a", serials=("TK3-A0003",))
        visit = request_onsite(Actor(user=sam), incident, kind="emergency")
        # an ended visit, so that its final report exists (R-I6)
        incidents.record_arrival(Actor(user=sam), visit)
        incidents.file_daily_brief(Actor(user=sam), visit, date(2026, 11, 25), "Replaced PSU")
        incidents.end_onsite(Actor(user=sam), visit, "Root cause: power supply failure.")
        # Only customer A holds a LIC unit: the notice is A's alone, and it stays unpublished.
        advisory = advisories.create_advisory(
            Actor(user=sam), title="Licence key disclosure", severity="high",
            description="Keys can be read.", model_codes=["LIC"], vendor_found=True,
            patch_released_on=date(2026, 11, 20))
        assert advisories.notify_customers(Actor(user=sam), advisory) == 1
        sr.send_report(world["a"], "2026-10", NOW)
        report_id = sr.sent_report(world["a"], "2026-10").id
        holder = set_holder(Actor.cli("test"), "account_manager", mia.id, None, world["a"])
        invitations.invite(Actor.cli("test"), "new@a.example", "customer", world["a"],
                           language="en")
        invitation_id = db.session.scalar(select(Invitation.id).where(
            Invitation.email == "new@a.example"))
        registration.submit_application("Delta Bank", "1 Road", "Dee", "dee@d.example",
                                        "+86 21 5555 0000", language="en")
        application_id = db.session.scalar(select(RegistrationApplication.id))
        return {
            "rma": rma_number, "item_id": item_id, "serial": "TK3-A0001", "quote": quote,
            "invoice": invoice, "photo_rma": photo_rma.number, "photo_id": photo_id,
            "incident": incident.number, "visit_id": visit.id, "advisory": advisory.number,
            "report_id": report_id, "customer_id": world["a"], "user_id": alice.id,
            "model_id": db.session.scalar(select(ProductModel.id)
                                          .where(ProductModel.code == "TK3")),
            "holder_id": holder.id, "invitation_id": invitation_id,
            "application_id": application_id, "contract_number": world["contract_a"],
            "period": "2026-10", "token": "not-a-real-token", "filename": "css/app.css",
            "token_a": create_token(Actor.cli("test"), alice, "matrix"),
            "token_b": create_token(Actor.cli("test"), bob, "matrix"),
        }


def url_values(endpoint: str, arguments: set[str], objects: dict) -> dict:
    """Concrete values naming customer A's objects for a rule's arguments."""
    values = {}
    for name in arguments:
        if name == "number":
            if "quote" in endpoint:
                values[name] = objects["quote"]
            elif any(word in endpoint for word in ("invoice", "payment", "credit")):
                values[name] = objects["invoice"]
            elif "incident" in endpoint or endpoint.startswith("support."):
                values[name] = objects["incident"]
            elif "advisor" in endpoint:
                values[name] = objects["advisory"]
            elif endpoint == "portal.rma_photo":
                values[name] = objects["photo_rma"]
            else:
                values[name] = objects["rma"]
        else:
            values[name] = objects[name]
    return values


def routes(app, objects: dict) -> list[tuple[str, str, str, bool]]:
    """(endpoint, method, path, names an object of customer A) for every rule."""
    adapter = app.url_map.bind("localhost")
    rows = []
    for rule in app.url_map.iter_rules():
        method = "GET" if "GET" in rule.methods else "POST"
        values = url_values(rule.endpoint, set(rule.arguments), objects)
        path = adapter.build(rule.endpoint, values, method=method)
        owned = bool(set(rule.arguments) - {"filename", "token", "period"}) and not (
            is_public(rule.endpoint))
        rows.append((rule.endpoint, method, path, owned))
    return sorted(rows, key=lambda row: row[2])


@pytest.fixture(scope="module", params=DATABASES)
def matrix(request, tmp_path_factory):
    """One app and one set of objects per database for the whole module."""
    tmp_path = tmp_path_factory.mktemp("matrix")
    if request.param == "sqlite":
        path = tmp_path / "matrix.sqlite3"
        shutil.copyfile(_sqlite_schema(tmp_path_factory), path)
        url = f"sqlite:///{path}"
    else:
        url = PG_URL
    app = make_app(url, tmp_path)
    with app.app_context():
        if request.param == "sqlite":
            db.create_all()
        else:
            _reset_postgres()
    objects = build_objects(app)
    yield app, objects, routes(app, objects)
    with app.app_context():
        db.session.remove()
        for engine in db.engines.values():
            engine.dispose()


def request(client, method: str, path: str, headers=None):
    headers = {**EN, **(headers or {})}
    if method == "GET":
        response = client.get(path, headers=headers)
    else:
        response = client.post(path, data={}, headers=headers)
    response.close()  # a static file's handle
    return response


def logged_in(app, role: str):
    client = app.test_client()
    response = client.post("/login", data={"email": EMAILS[role], "password": TEST_PASSWORD},
                           headers=EN)
    assert response.status_code == 302, (role, response.status_code)
    return client


def no_500(failures: list, who: str, endpoint: str, method: str, path: str,
           response) -> None:
    if response.status_code >= 500 and endpoint not in MAY_BE_UNAVAILABLE:
        failures.append(f"{who} {method} {path}: {response.status_code}")


# -- the tests ---------------------------------------------------------------------------
def test_every_rule_is_in_the_tables(matrix):
    app, _, _ = matrix
    unknown = [rule.endpoint for rule in app.url_map.iter_rules()
               if not is_public(rule.endpoint) and not is_api(rule)
               and rule.endpoint not in ENDPOINT_AUDIENCE
               and rule.endpoint.split(".")[0] not in AUDIENCE]
    assert unknown == []


def test_the_urls_name_real_objects_of_customer_a(matrix):
    """Customer A reaches its own objects: B's 404s below are about ownership, not typos."""
    app, objects, _ = matrix
    client = logged_in(app, CUSTOMER_A)
    for path in (f"/portal/rmas/{objects['rma']}", f"/portal/quotes/{objects['quote']}",
                 f"/portal/invoices/{objects['invoice']}",
                 f"/portal/incidents/{objects['incident']}",
                 f"/portal/advisories/{objects['advisory']}",
                 f"/portal/reports/{objects['report_id']}.pdf",
                 f"/portal/rmas/{objects['photo_rma']}/photos/{objects['photo_id']}",
                 f"/portal/visits/{objects['visit_id']}/report.pdf",
                 f"/rmas/{objects['rma']}/label.pdf"):
        assert client.get(path, headers=EN).status_code == 200, path
    token = {"Authorization": f"Bearer {objects['token_a']}", **EN}
    for path in (f"/api/v1/rmas/{objects['rma']}", f"/api/v1/quotes/{objects['quote']}",
                 f"/api/v1/invoices/{objects['invoice']}",
                 f"/api/v1/incidents/{objects['incident']}",
                 f"/api/v1/advisories/{objects['advisory']}"):
        assert client.get(path, headers=token).status_code == 200, path


def test_anonymous_gets_the_login_page_or_401_except_public_routes(matrix):
    app, _, rows = matrix
    client = app.test_client()
    failures: list[str] = []
    for endpoint, method, path, _owned in rows:
        response = request(client, method, path)
        no_500(failures, "anonymous", endpoint, method, path, response)
        if is_public(endpoint):
            if response.status_code in (401, 403):
                failures.append(f"public {method} {path}: {response.status_code}")
        elif path.startswith("/api/"):
            if response.status_code != 401:
                failures.append(f"anonymous {method} {path}: {response.status_code}, not 401")
        elif not (response.status_code == 302
                  and "/login" in response.headers.get("Location", "")):
            failures.append(f"anonymous {method} {path}: {response.status_code}, "
                            f"not the log-in page")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("role", ROLES)
def test_each_role_reaches_its_audience_only(matrix, role):
    """Outside a rule's audience: 403 (or, for staff on customer-only pages, a redirect
    to their own pages); customer B on customer A's objects: 403/404; a browser session
    on the API: 401; never a 500."""
    app, _, rows = matrix
    client = logged_in(app, role)
    failures: list[str] = []
    for endpoint, method, path, owned in rows:
        if endpoint == "auth.logout":
            continue
        response = request(client, method, path)
        status = response.status_code
        no_500(failures, role, endpoint, method, path, response)
        if path.startswith("/api/"):
            if not is_public(endpoint) and status != 401:
                failures.append(f"{role} session {method} {path}: {status}, not 401")
            continue
        if role not in audience(endpoint):
            allowed = {403}
            if role in STAFF and endpoint.split(".")[0] in REDIRECTS_STAFF:
                allowed = {302, 403, 404}
            if status not in allowed:
                failures.append(f"{role} {method} {path}: {status}, not {sorted(allowed)}")
        elif role == CUSTOMER_B and owned and status not in (403, 404):
            failures.append(f"customer B {method} {path} (A's): {status}, not 403/404")
    assert not failures, "\n".join(failures)


def test_customer_b_token_never_reaches_customer_a(matrix):
    """Customer B's bearer token on every API rule (and the label, which takes one too):
    A's objects are 403/404 (a staff-only action on one of them may be either), other
    staff-only endpoints 403, and never a 500."""
    app, objects, rows = matrix
    client = app.test_client()
    token = {"Authorization": f"Bearer {objects['token_b']}"}
    failures: list[str] = []
    for endpoint, method, path, owned in rows:
        if not path.startswith("/api/") and endpoint != "labels.label":
            continue
        response = request(client, method, path, token)
        status = response.status_code
        no_500(failures, "token B", endpoint, method, path, response)
        if owned and status not in (403, 404):
            failures.append(f"token B {method} {path} (A's): {status}, not 403/404")
        elif not owned and endpoint in API_STAFF_ONLY and status != 403:
            failures.append(f"token B {method} {path}: {status}, not 403")
    assert not failures, "\n".join(failures)
