"""The admin pages of issue 6: the office calendar (R-I7: days that win over the holiday
package, years declared complete, the warning for a year without holiday data) and the
escalation ladder (R-I4: the grid of hours, an invalid cell refused beside it, reset to
SPEC's table; role holders with deputies, account managers per customer).

Admins change these pages; managers may look; everyone else gets 403. The test clock
says 2026-11-25 12:00 China time: chinesecalendar has 2026's holidays, not 2027's.
"""

from __future__ import annotations

import re
from datetime import date
from html import unescape

import pytest
from sqlalchemy import func, select

from rma.extensions import db
from rma.models import AuditEvent, EscalationHolder, EscalationRung, OfficeCalendarYear, OfficeDay
from tests.conftest import TEST_PASSWORD
from warranty.policy import DEFAULT_ESCALATION_LADDER

PAGES = ["/admin/calendar", "/admin/escalation"]


@pytest.fixture
def people(app, make_customer, make_user):
    contract = make_customer("华东示范银行")
    ids = {}
    for email, role in [("adam@vendor.example", "admin"), ("mia@vendor.example", "manager"),
                        ("sam@vendor.example", "support"), ("wendy@vendor.example", "warehouse"),
                        ("fay@vendor.example", "finance"), ("lead@vendor.example", "support"),
                        ("deputy@vendor.example", "manager")]:
        ids[email] = make_user(email, role)
    ids["alice@a.example"] = make_user("alice@a.example", "customer", contract)
    ids["contract"] = contract
    return ids


@pytest.fixture
def as_user(app, people):
    clients = {}

    def _get(email: str):
        if email not in clients:
            client = app.test_client()
            response = client.post("/login", data={"email": email, "password": TEST_PASSWORD})
            assert response.status_code == 302, response.data
            clients[email] = client
        return clients[email]

    return _get


def _text(response) -> str:
    return unescape(response.get_data(as_text=True))


def _count(app, model, *where) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model).where(*where))


# -- roles ------------------------------------------------------------------------------
@pytest.mark.parametrize("path", PAGES)
def test_r_i4_r_i7_admin_pages_for_admin_and_manager_only(app, as_user, path):
    anonymous = app.test_client().get(path)
    assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]
    for email in ("adam@vendor.example", "mia@vendor.example"):
        assert as_user(email).get(path).status_code == 200, email
    for email in ("sam@vendor.example", "wendy@vendor.example", "fay@vendor.example",
                  "alice@a.example"):
        assert as_user(email).get(path).status_code == 403, email


def test_manager_sees_but_may_not_change(app, as_user):
    manager = as_user("mia@vendor.example")
    page = _text(manager.get("/admin/calendar"))
    assert 'id="day-form"' not in page
    assert manager.post("/admin/calendar/days", data={
        "day-day": "2027-01-01", "day-kind": "holiday"}).status_code == 403
    assert manager.post("/admin/escalation/ladder/reset").status_code == 403
    assert manager.post("/admin/escalation/holders", data={
        "role": "cto", "user_id": "1"}).status_code == 403
    assert _count(app, OfficeDay) == 0 and _count(app, EscalationHolder) == 0


def test_admin_nav_links_to_both_pages(as_user):
    page = _text(as_user("adam@vendor.example").get("/admin/"))
    assert 'href="/admin/calendar"' in page and 'href="/admin/escalation"' in page


# -- office calendar (R-I7) -------------------------------------------------------------
def test_r_i7_warning_for_next_year_without_data_until_confirmed(app, as_user):
    admin = as_user("adam@vendor.example")
    page = _text(admin.get("/admin/calendar"))
    assert 'class="flash error calendar-warning"' in page and 'data-years="2027"' in page
    assert "No holiday data for 2027" in page
    assert 'data-years="2026"' not in page  # the package has 2026

    response = admin.post("/admin/calendar/years", data={"year-year": "2027",
                                                         "year-note": "国务院办公厅通知"})
    assert response.status_code == 302
    page = _text(admin.get(response.headers["Location"]))
    assert "calendar-warning" not in page
    assert "国务院办公厅通知" in page
    assert _count(app, OfficeCalendarYear, OfficeCalendarYear.year == 2027) == 1

    response = admin.post("/admin/calendar/years/remove", data={"year": "2027"})
    assert response.status_code == 302
    assert 'data-years="2027"' in _text(admin.get("/admin/calendar"))
    assert _count(app, OfficeCalendarYear) == 0


def test_r_i7_add_and_remove_a_day(app, as_user):
    admin = as_user("adam@vendor.example")
    response = admin.post("/admin/calendar/days", data={
        "day-day": "2027-02-08", "day-kind": "workday", "day-note": "春节调休"})
    assert response.status_code == 302 and "year=2027" in response.headers["Location"]
    page = _text(admin.get("/admin/calendar?year=2027"))
    assert 'data-day="2027-02-08" data-kind="workday"' in page and "春节调休" in page
    with app.app_context():
        row = db.session.scalar(select(OfficeDay))
        assert row.day == date(2027, 2, 8) and str(row.kind) == "workday"
        assert db.session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "office_day.set")) == 1

    # the same day again changes it (upsert), never a duplicate
    admin.post("/admin/calendar/days", data={"day-day": "2027-02-08", "day-kind": "holiday"})
    assert _count(app, OfficeDay) == 1

    response = admin.post("/admin/calendar/days/remove", data={"day": "2027-02-08"})
    assert response.status_code == 302
    assert _count(app, OfficeDay) == 0
    assert 'id="office-days-empty"' in _text(admin.get("/admin/calendar?year=2027"))


def test_r_i7_bad_day_refused_beside_the_field(app, as_user):
    admin = as_user("adam@vendor.example")
    response = admin.post("/admin/calendar/days", data={"day-day": "2027-13-40",
                                                        "day-kind": "holiday"})
    assert response.status_code == 422
    page = _text(response)
    assert 'id="day-day-error"' in page
    # removing a day that has no entry: the service's refusal, nothing changed
    response = admin.post("/admin/calendar/days/remove", data={"day": "2027-03-03"})
    assert response.status_code == 422
    assert "2027-03-03 has no entry" in _text(response)
    response = admin.post("/admin/calendar/years", data={"year-year": "1999"})
    assert response.status_code == 422 and 'id="year-year-error"' in _text(response)
    assert _count(app, OfficeDay) == 0 and _count(app, OfficeCalendarYear) == 0


# -- escalation ladder (R-I4) -----------------------------------------------------------
def _grid(rows=DEFAULT_ESCALATION_LADDER, **changes) -> dict:
    data = {f"{priority}__{role}": str(hours) for hours, priority, role in rows}
    data.update(changes)
    return data


def test_r_i4_ladder_grid_shows_the_spec_table(as_user):
    page = _text(as_user("adam@vendor.example").get("/admin/escalation"))
    assert "This is the table of the service commitment" in page
    for hours, priority, role in DEFAULT_ESCALATION_LADDER:
        cell = re.search(rf'<input[^>]*name="{priority}__{role}"[^>]*>', page)
        assert cell is not None and f'value="{hours}"' in cell.group(0), (priority, role)
    empty = re.search(r'<input[^>]*name="serious__account_manager"[^>]*>', page)
    assert empty is not None and 'value="2"' in empty.group(0)
    empty = re.search(r'<input[^>]*name="general__cto"[^>]*>', page)
    assert 'value="48"' in empty.group(0)
    no_rung = re.search(r'<input[^>]*name="urgent__president"[^>]*>', page)
    assert 'value="24"' in no_rung.group(0)


def test_r_i4_ladder_edit_invalid_cell_refused_and_reset(app, as_user):
    admin = as_user("adam@vendor.example")
    response = admin.post("/admin/escalation/ladder", data=_grid(urgent__cto="0"))
    assert response.status_code == 422
    page = _text(response)
    assert 'id="urgent__cto-error"' in page and "Hours from 1 to 8760" in page
    response = admin.post("/admin/escalation/ladder", data=_grid(serious__president="abc"))
    assert response.status_code == 422 and 'id="serious__president-error"' in _text(response)
    assert _count(app, EscalationRung) == 0  # nothing saved

    response = admin.post("/admin/escalation/ladder", data=_grid(urgent__cto="10"))
    assert response.status_code == 302
    with app.app_context():
        from rma.services.escalation_setup import current_ladder

        assert (10, "urgent", "cto") in current_ladder()
    page = _text(admin.get("/admin/escalation"))
    assert "This table was edited" in page

    # every cell empty: the service refuses (a ladder needs a rung), shown on the page
    response = admin.post("/admin/escalation/ladder", data={})
    assert response.status_code == 422 and 'id="page-error"' in _text(response)
    assert _count(app, EscalationRung) == len(DEFAULT_ESCALATION_LADDER)

    response = admin.post("/admin/escalation/ladder/reset")
    assert response.status_code == 302
    assert _count(app, EscalationRung) == 0
    assert "This is the table of the service commitment" in _text(admin.get("/admin/escalation"))


def test_r_i4_holder_with_deputy_and_account_manager_per_customer(app, as_user, people):
    admin = as_user("adam@vendor.example")
    page = _text(admin.get("/admin/escalation"))
    assert 'data-role="cto"' in page and "Nobody holds the role CTO" in page
    response = admin.post("/admin/escalation/holders", data={
        "role": "cto", "user_id": str(people["lead@vendor.example"]),
        "deputy_id": str(people["deputy@vendor.example"]), "customer_id": ""})
    assert response.status_code == 302
    page = _text(admin.get("/admin/escalation"))
    assert "Nobody holds the role CTO" not in page
    assert "lead@vendor.example" in page and "deputy@vendor.example" in page

    with app.app_context():
        from rma.models import Customer

        customer_id = db.session.scalar(select(Customer.id))
    response = admin.post("/admin/escalation/holders", data={
        "role": "account_manager", "user_id": str(people["mia@vendor.example"]),
        "deputy_id": "", "customer_id": str(customer_id)})
    assert response.status_code == 302
    assert "华东示范银行" in _text(admin.get("/admin/escalation"))

    # refusals beside their fields: deputy = holder, a customer for a global role
    response = admin.post("/admin/escalation/holders", data={
        "role": "president", "user_id": str(people["lead@vendor.example"]),
        "deputy_id": str(people["lead@vendor.example"]), "customer_id": ""})
    assert response.status_code == 422 and 'id="deputy_id-error"' in _text(response)
    response = admin.post("/admin/escalation/holders", data={
        "role": "president", "user_id": str(people["lead@vendor.example"]),
        "customer_id": str(customer_id)})
    assert response.status_code == 422 and 'id="customer_id-error"' in _text(response)
    response = admin.post("/admin/escalation/holders", data={
        "role": "president", "user_id": str(people["alice@a.example"])})
    assert response.status_code == 422 and 'id="user_id-error"' in _text(response)
    assert _count(app, EscalationHolder) == 2

    with app.app_context():
        holder_id = db.session.scalar(select(EscalationHolder.id).where(
            EscalationHolder.role == "cto"))
    response = admin.post(f"/admin/escalation/holders/{holder_id}/remove")
    assert response.status_code == 302
    assert _count(app, EscalationHolder) == 1
