"""The security advisory pages (issue 7; R-A1..R-A3): the staff list (notice counts, the
R-A2 due day, overdue marked), the form (R-A1 severity guidance beside the field, product
models, vendor-found explained, patch date; errors beside their fields), an advisory's
page (affected customers with each notice's sent / opened / acknowledged times; "Notify
customers"; "Publish" refused with its date per R-A3, also when forced), the public
pages (published only, no customer data, references linked only when http(s)) and the
portal (own notices only; viewing marks opened; acknowledge).

The test clock says 2026-11-25 12:00 China time (04:00 UTC), a Wednesday. The world is
``tests.rma.incident_helpers.build_incident_world``: customers A (alice), B (bob) and C
(cora) hold TK3 units; here B alone also holds an AS-SRV appliance.
"""

from __future__ import annotations

import re
from datetime import date
from html import unescape

import pytest
from sqlalchemy import select

from rma.extensions import db
from rma.models import Advisory, AdvisoryNotice, AuditEvent, OutboxMessage, ProductModel, Unit
from tests.conftest import TEST_PASSWORD
from tests.rma.incident_helpers import actor, build_incident_world, customer, email_of

BASE = "/staff/advisories"
AUTHORS = ("sam", "mia", "adam")
OTHERS = ("wendy", "fay", "alice")


@pytest.fixture
def world(app):
    world = build_incident_world(app)
    with app.app_context():
        model = db.session.scalar(select(ProductModel).where(ProductModel.code == "AS-SRV"))
        db.session.add(Unit(serial="AS-B0001", model_id=model.id, customer_id=world["b"],
                            shipped_on=date(2026, 2, 1)))
        db.session.commit()
    return world


@pytest.fixture
def as_user(app, world):
    clients = {}

    def _get(name: str):
        if name not in clients:
            client = app.test_client()
            response = client.post("/login", data={"email": email_of(name),
                                                   "password": TEST_PASSWORD})
            assert response.status_code == 302, response.data
            clients[name] = client
        return clients[name]

    return _get


def _text(response) -> str:
    return unescape(response.get_data(as_text=True))


def _advisory(app, *, models=("TK3",), vendor_found=False, patch=date(2026, 11, 20),
              title="OTP seed disclosure", references="CVE-2026-0001", notify=False,
              publish=False) -> str:
    """An advisory written by sam through the service (optionally notified/published)."""
    from rma.services import advisories as service

    with app.test_request_context(headers={"Accept-Language": "en"}):
        advisory = service.create_advisory(
            actor("sam"), title=title, severity="high", description="Seeds can be read.",
            solution="Upgrade to 2.4.1.", references=references,
            affected_versions="firmware < 2.4.1", model_codes=list(models),
            vendor_found=vendor_found, patch_released_on=patch)
        if notify:
            service.notify_customers(actor("sam"), advisory)
        if publish:
            service.publish(actor("sam"), advisory, date(2026, 11, 25))
        return advisory.number


def _fresh(app, number: str) -> Advisory:
    return db.session.scalar(select(Advisory).where(Advisory.number == number)
                             .execution_options(populate_existing=True))


def _notice(app, number: str, key: str) -> AdvisoryNotice | None:
    with app.app_context():
        advisory = _fresh(app, number)
        return db.session.scalar(
            select(AdvisoryNotice).where(AdvisoryNotice.advisory_id == advisory.id,
                                         AdvisoryNotice.customer_id == customer(key).id)
            .execution_options(populate_existing=True))


def _row(page: str, attr: str, value: str) -> str:
    match = re.search(rf'<tr[^>]*{attr}="{re.escape(value)}"[^>]*>.*?</tr>', page, re.S)
    assert match is not None, (attr, value)
    return match.group(0)


FORM = {
    "title": "Token seed readable over USB", "severity": "high",
    "description": "An attacker with the token can read its seed.",
    "solution": "Upgrade the firmware to 2.4.1.", "references": "CVE-2026-1111",
    "affected_versions": "TK3 firmware before 2.4.1", "models": ["TK3"],
    "vendor_found": "y", "patch_released_on": "2026-11-20",
}


# -- roles ------------------------------------------------------------------------------
def test_r_a1_staff_advisory_pages_per_role(app, world, as_user):
    number = _advisory(app)
    pages = [f"{BASE}/", f"{BASE}/new", f"{BASE}/{number}", f"{BASE}/{number}/edit"]
    for path in pages:
        anonymous = app.test_client().get(path)
        assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]
    for name in AUTHORS:
        for path in pages:
            assert as_user(name).get(path).status_code == 200, (name, path)
    for name in OTHERS:
        for path in pages:
            assert as_user(name).get(path).status_code == 403, (name, path)
        for action in ("notify", "publish"):
            assert as_user(name).post(f"{BASE}/{number}/{action}").status_code == 403
        assert as_user(name).post(f"{BASE}/new", data=FORM).status_code == 403
    with app.app_context():
        assert _fresh(app, number).status == "draft"
        assert db.session.scalar(select(AdvisoryNotice)) is None
        assert len(db.session.scalars(select(Advisory)).all()) == 1
    assert as_user("sam").get(f"{BASE}/SA-2026-9999").status_code == 404


def test_nav_links_per_audience(app, world, as_user):
    assert 'id="nav-advisories"' in _text(as_user("sam").get(f"{BASE}/"))
    assert 'id="nav-advisories"' not in _text(as_user("wendy").get("/portal/"))
    home = _text(as_user("alice").get("/portal/"))
    assert 'id="portal-advisories"' in home and 'id="nav-advisories"' not in home
    assert 'id="nav-public-advisories"' in _text(app.test_client().get("/"))


# -- the form (R-A1, R-A2, R-A3) --------------------------------------------------------
def test_r_a1_form_shows_severity_guidance_models_and_vendor_found(as_user):
    page = _text(as_user("sam").get(f"{BASE}/new"))
    guidance = page[page.index('id="severity-guidance"'):page.index('id="models-field"')]
    assert "Customers should patch at once." in guidance  # high
    assert "next maintenance window" in guidance  # medium
    assert "next regular upgrade" in guidance  # low
    assert 'aria-describedby="severity-guidance"' in page
    assert 'value="TK3"' in page and 'value="AS-SRV"' in page
    assert 'type="checkbox"' in page
    assert "no earlier than 14 days after their notices (R-A3)" in page
    assert "within 2 working days of this date" in page
    assert 'type="date"' in page


def test_r_a1_create_errors_beside_fields_change_nothing(app, world, as_user):
    data = {**FORM, "title": "", "models": []}
    response = as_user("sam").post(f"{BASE}/new", data=data)
    assert response.status_code == 422
    page = _text(response)
    assert 'id="title-error"' in page
    # the title is checked by the form, the models by the service (one at a time)
    response = as_user("sam").post(f"{BASE}/new", data={**FORM, "models": []})
    assert response.status_code == 422
    page = _text(response)
    assert 'id="models-error"' in page and "at least one affected product model" in page
    response = as_user("sam").post(f"{BASE}/new", data={**FORM, "models": ["NOPE"]})
    assert response.status_code == 422
    assert "Unknown product model(s): NOPE." in _text(response)
    response = as_user("sam").post(f"{BASE}/new", data={**FORM, "severity": "critical"})
    assert response.status_code == 422
    assert 'id="severity-error"' in _text(response)
    with app.app_context():
        assert db.session.scalar(select(Advisory)) is None


def test_r_a2_create_then_detail_shows_deadline_and_affected_customers(app, world, as_user):
    response = as_user("sam").post(f"{BASE}/new", data=FORM)
    assert response.status_code == 302, _text(response)
    number = response.headers["Location"].rsplit("/", 1)[-1]
    assert number == "SA-2026-0001"
    with app.app_context():
        advisory = _fresh(app, number)
        assert advisory.status == "draft" and advisory.vendor_found is True
        assert [m.code for m in advisory.product_models] == ["TK3"]
        # patch on Friday 2026-11-20 + 2 working days → Tuesday 2026-11-24 (R-A2)
        assert advisory.notify_due_on == date(2026, 11, 24)
    page = _text(as_user("sam").get(f"{BASE}/{number}"))
    due = page[page.index('id="notify-due"'):page.index('id="notified-at"')]
    assert "2026-11-24" in due and 'id="notify-overdue"' in due
    for key in ("a", "b", "c"):
        row = _row(page, "data-contract", world[f"contract_{key}"])
        assert 'data-noticed="0"' in row
    assert "Acme Bank" in page and "Beta Bank" in page and "Gamma Securities" in page
    # vendor-found and not notified: publishing waits for the notices (R-A3)
    assert 'id="publish"' in page and "disabled" in page[page.index('id="publish"') - 200:
                                                            page.index('id="publish-when"')]
    assert "Notify the customers first" in page
    listing = _text(as_user("sam").get(f"{BASE}/"))
    row = _row(listing, "data-number", number)
    assert 'data-overdue="1"' in row and "overdue: not notified" in row


def test_edit_a_draft_and_refuse_a_published_one(app, world, as_user):
    number = _advisory(app)
    page = _text(as_user("mia").get(f"{BASE}/{number}/edit"))
    assert 'value="OTP seed disclosure"' in page
    assert re.search(r'<input[^>]*checked[^>]*value="TK3"|<input[^>]*value="TK3"[^>]*checked',
                     page)
    data = {**FORM, "title": "OTP seed disclosure (corrected)", "models": ["TK3", "AS-SRV"],
            "vendor_found": ""}
    response = as_user("mia").post(f"{BASE}/{number}/edit", data=data)
    assert response.status_code == 302
    with app.app_context():
        advisory = _fresh(app, number)
        assert advisory.title == "OTP seed disclosure (corrected)"
        assert [m.code for m in advisory.product_models] == ["AS-SRV", "TK3"]
    published = _advisory(app, title="Old", notify=True, publish=True)
    response = as_user("mia").post(f"{BASE}/{published}/edit", data=data)
    assert response.status_code == 409
    assert "can no longer be changed" in _text(response)
    with app.app_context():
        assert _fresh(app, published).title == "Old"


# -- notify (R-A2) ----------------------------------------------------------------------
def test_r_a2_notify_customers_records_each_notice(app, world, as_user):
    number = _advisory(app)
    response = as_user("sam").post(f"{BASE}/{number}/notify")
    assert response.status_code == 302
    page = _text(as_user("sam").get(response.headers["Location"]))
    assert "3 customer(s) notified." in page
    for key, email in (("a", "alice@a.example"), ("b", "bob@b.example"),
                       ("c", "cora@c.example")):
        row = _row(page, "data-contract", world[f"contract_{key}"])
        assert 'data-noticed="1"' in row and "2026-11-25 12:00" in row and email in row
    assert 'id="notify-overdue"' not in page
    with app.app_context():
        advisory = _fresh(app, number)
        assert advisory.status == "notified"
        sent = sorted(db.session.scalars(select(OutboxMessage.to_address)
                                         .where(OutboxMessage.template == "advisory_notice")))
        assert sent == ["alice@a.example", "bob@b.example", "cora@c.example"]
    # again: nobody new is affected, nobody is e-mailed twice
    response = as_user("sam").post(f"{BASE}/{number}/notify")
    assert "0 customer(s) notified." in _text(as_user("sam").get(response.headers["Location"]))
    with app.app_context():
        assert len(db.session.scalars(select(OutboxMessage).where(
            OutboxMessage.template == "advisory_notice")).all()) == 3
    row = _row(_text(as_user("sam").get(f"{BASE}/")), "data-number", number)
    assert 'data-overdue' not in row
    assert re.search(r'class="num sent">3<', row) and re.search(r'class="num opened">0<', row)


# -- publish (R-A3) ---------------------------------------------------------------------
def test_r_a3_publish_refused_with_date_then_allowed(app, world, as_user):
    number = _advisory(app, vendor_found=True, notify=True)  # notified 2026-11-25
    page = _text(as_user("adam").get(f"{BASE}/{number}"))
    assert "Publishing is possible from 2026-12-09 (R-A3)." in page
    button = re.search(r'<input[^>]*id="publish"[^>]*>', page).group(0)
    assert "disabled" in button
    # a forced request is refused by the server, with the date beside the button
    response = as_user("adam").post(f"{BASE}/{number}/publish")
    assert response.status_code == 409
    page = _text(response)
    start = page.index('id="publish-form"')
    form = page[start:page.index("</form>", start)]
    assert "it can be published from 2026-12-09" in form
    with app.app_context():
        advisory = _fresh(app, number)
        assert advisory.status == "notified" and advisory.published_at is None
        assert db.session.scalar(select(AuditEvent).where(
            AuditEvent.action == "advisory.published")) is None
    assert app.test_client().get(f"/advisories/{number}").status_code == 404
    app.config["FIXED_NOW"] = "2026-12-09T04:00:00+00:00"  # 12:00 China time, day 14
    page = _text(as_user("adam").get(f"{BASE}/{number}"))
    button = re.search(r'<input[^>]*id="publish"[^>]*>', page).group(0)
    assert "disabled" not in button
    response = as_user("adam").post(f"{BASE}/{number}/publish")
    assert response.status_code == 302
    with app.app_context():
        advisory = _fresh(app, number)
        assert advisory.status == "published" and advisory.published_at is not None
    page = _text(as_user("adam").get(f"{BASE}/{number}"))
    assert 'id="publish-form"' not in page and 'id="published-at"' in page
    assert app.test_client().get(f"/advisories/{number}").status_code == 200


def test_r_a3_third_party_advisory_may_publish_at_once(app, world, as_user):
    number = _advisory(app, vendor_found=False)
    page = _text(as_user("sam").get(f"{BASE}/{number}"))
    assert "disabled" not in re.search(r'<input[^>]*id="publish"[^>]*>', page).group(0)
    assert as_user("sam").post(f"{BASE}/{number}/publish").status_code == 302
    assert app.test_client().get(f"/advisories/{number}").status_code == 200


# -- public pages -----------------------------------------------------------------------
def test_r_a3_public_list_shows_published_only_without_customer_data(app, world):
    draft = _advisory(app, title="Draft one")
    notified = _advisory(app, title="Notified one", vendor_found=True, notify=True)
    published = _advisory(app, title="Published one", notify=True, publish=True)
    client = app.test_client()
    page = _text(client.get("/advisories"))
    assert published in page and "Published one" in page
    assert draft not in page and notified not in page
    assert 'data-severity="high"' in page
    for number in (draft, notified, "SA-2026-9999"):
        assert client.get(f"/advisories/{number}").status_code == 404
    detail = _text(client.get(f"/advisories/{published}"))
    assert "Seeds can be read." in detail and "Upgrade to 2.4.1." in detail
    assert "TK3" in detail and "firmware < 2.4.1" in detail
    for secret in ("Acme Bank", "Beta Bank", "alice@a.example", world["contract_a"]):
        assert secret not in detail
    assert client.get(f"/advisories/{published.lower()}").status_code == 200


def test_public_references_link_http_only(app, world):
    references = "\n".join(["https://example.com/sa-1?x=1&y=2", "javascript:alert(1)",
                            "CVE-2026-1234", "ftp://example.com/f", "http://",
                            "data:text/html,<b>x</b>"])
    number = _advisory(app, references=references, publish=True)
    response = app.test_client().get(f"/advisories/{number}")
    page = _text(response)
    links = re.findall(r'<a href="([^"]*)" rel="noopener noreferrer nofollow">', page)
    assert links == ["https://example.com/sa-1?x=1&y=2"]
    assert "javascript:alert(1)" in page and "CVE-2026-1234" in page
    assert "ftp://example.com/f" in page
    raw = response.get_data(as_text=True)
    assert "&lt;b&gt;x&lt;/b&gt;" in raw and "<b>x</b>" not in raw


# -- portal -----------------------------------------------------------------------------
def test_r_a2_portal_shows_own_notices_only(app, world, as_user):
    only_b = _advisory(app, models=("AS-SRV",), title="Appliance issue", notify=True)
    everyone = _advisory(app, title="Token issue", notify=True)
    public_only = _advisory(app, models=("AS-SRV",), title="Public", publish=True)
    page = _text(as_user("alice").get("/portal/advisories/"))
    assert everyone in page and only_b not in page and public_only not in page
    for path in (f"/portal/advisories/{only_b}", f"/portal/advisories/{public_only}",
                 "/portal/advisories/SA-2026-9999"):
        assert as_user("alice").get(path).status_code == 404, path
    assert as_user("alice").post(f"/portal/advisories/{only_b}/acknowledge").status_code == 404
    assert _notice(app, only_b, "a") is None
    assert _notice(app, only_b, "b").opened_at is None
    page = _text(as_user("bob").get("/portal/advisories/"))
    assert only_b in page and everyone in page
    assert as_user("sam").get("/portal/advisories/").status_code == 302
    assert app.test_client().get("/portal/advisories/").status_code == 302


def test_r_a2_portal_view_marks_opened_then_acknowledge(app, world, as_user):
    number = _advisory(app, models=("AS-SRV",), notify=True)
    page = _text(as_user("bob").get(f"/portal/advisories/{number}"))
    assert "Seeds can be read." in page and 'id="acknowledge"' in page
    notice = _notice(app, number, "b")
    assert notice.opened_at is not None and notice.acknowledged_at is None
    opened = notice.opened_at
    as_user("bob").get(f"/portal/advisories/{number}")
    assert _notice(app, number, "b").opened_at == opened  # only the first view counts
    staff = _text(as_user("sam").get(f"{BASE}/{number}"))
    row = _row(staff, "data-contract", world["contract_b"])
    assert re.search(r'class="opened"><time', row)
    assert re.search(r'class="acknowledged"><span class="muted">', row)
    response = as_user("bob").post(f"/portal/advisories/{number}/acknowledge")
    assert response.status_code == 302
    page = _text(as_user("bob").get(response.headers["Location"]))
    assert "is acknowledged" in page and 'id="acknowledge"' not in page
    notice = _notice(app, number, "b")
    assert notice.acknowledged_at is not None
    with app.app_context():
        assert db.session.scalar(select(AuditEvent).where(
            AuditEvent.action == "advisory_notice.acknowledged")) is not None
    staff = _text(as_user("sam").get(f"{BASE}/{number}"))
    assert re.search(r'class="acknowledged"><time',
                     _row(staff, "data-contract", world["contract_b"]))
    row = _row(_text(as_user("sam").get(f"{BASE}/")), "data-number", number)
    assert re.search(r'class="num acknowledged">1<', row)
    listing = _text(as_user("bob").get("/portal/advisories/"))
    assert "unacknowledged" not in _row(listing, "data-number", number)


# -- phone-sized pages ------------------------------------------------------------------
def test_advisory_tables_stack_on_a_phone(app, world, as_user):
    """Every table cell carries its column label, so the 390 px layout (app.css stacks
    ``table.results`` rows) keeps each value named."""
    number = _advisory(app, notify=True, publish=True)
    pages = [as_user("sam").get(f"{BASE}/"), as_user("sam").get(f"{BASE}/{number}"),
             as_user("alice").get("/portal/advisories/"), app.test_client().get("/advisories")]
    for response in pages:
        page = _text(response)
        assert 'class="results"' in page
        cells = re.findall(r"<td[^>]*>", page)
        assert cells and all("data-label=" in cell for cell in cells)
