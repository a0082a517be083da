"""Service report pages (issue 7, R-R4): the staff page per role, its figures and PDF,
and the customer portal's list of sent reports with their downloads (own only). The
world is ``test_service_reports.build_world``: November 2026 for customer A
("华东示范银行", users alice and alan) and B (bob); the clock says 2026-12-01 09:00
China time."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from rma.extensions import db
from rma.models import Customer, ServiceReport
from rma.services import service_reports as sr
from tests.conftest import TEST_PASSWORD
from tests.rma.test_service_reports import A_NAME, DEC_1, build_world, pdf_text


@pytest.fixture
def world(app):
    return build_world(app)


def log_in(client, email: str):
    response = client.post("/login", data={"email": email, "password": TEST_PASSWORD})
    assert response.status_code == 302, response.data
    return client


def send_november(app, world) -> dict[str, int]:
    """Run the job for November; returns the sent reports' ids by customer key."""
    with app.test_request_context(headers={"Accept-Language": "en"}):
        assert sr.send_due_reports_job(DEC_1).items == 2
        return {key: sr.sent_report(world[key], "2026-11").id for key in ("a", "b")}


# -- staff ---------------------------------------------------------------------------------
@pytest.mark.parametrize("role", ["support", "manager", "admin"])
def test_r_r4_staff_see_the_report_page_and_the_nav_link(client, world, make_user, role):
    make_user(f"{role}1@vendor.example", role)
    log_in(client, f"{role}1@vendor.example")
    page = client.get("/staff/reports/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'id="nav-service-reports"' in html and 'value="2026-11"' in html
    assert 'id="no-sent-reports"' in html


@pytest.mark.parametrize("role", ["warehouse", "finance"])
def test_r_r4_other_staff_are_refused(client, world, make_user, role):
    make_user(f"{role}1@vendor.example", role)
    log_in(client, f"{role}1@vendor.example")
    assert client.get("/staff/reports/").status_code == 403
    assert client.get(f"/staff/reports/{world['a']}/2026-11.pdf").status_code == 403
    assert 'id="nav-service-reports"' not in client.get("/").get_data(as_text=True)


def test_r_r4_customers_get_403_on_staff_pages_and_anonymous_the_login(client, world):
    assert client.get("/staff/reports/").status_code == 302  # to the log-in page
    log_in(client, "alice@a.example")
    assert client.get("/staff/reports/").status_code == 403
    assert client.get(f"/staff/reports/{world['a']}/2026-11.pdf").status_code == 403


def test_r_r4_staff_page_shows_an_unsent_periods_figures_and_pdf(client, world):
    log_in(client, "sam@vendor.example")
    page = client.get(f"/staff/reports/?customer={world['a']}&period=2026-11")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert A_NAME in html and "Not sent yet" in html
    assert "RMA-2026-00005" in html and "INC-2026-000003" in html and "SA-2026-0003" in html
    assert "RMA-2026-00100" not in html  # B's
    assert "75.0 %" in html and "3 met, 1 missed, 1 open" in html
    pdf = client.get(f"/staff/reports/{world['a']}/2026-11.pdf")
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
    assert "服务报告" in pdf_text(pdf.data)
    with client.application.app_context():  # rendered on demand, nothing stored
        assert db.session.scalar(select(ServiceReport.id)) is None


def test_r_r4_staff_page_shows_the_stored_report_once_sent(app, client, world):
    ids = send_november(app, world)
    log_in(client, "sam@vendor.example")
    html = client.get(f"/staff/reports/?customer={world['a']}&period=2026-11").get_data(
        as_text=True)
    assert "Sent on 2026-12-01 09:00" in html and f'id="sent-report-{ids["a"]}"' in html
    with app.app_context():
        stored = db.session.get(ServiceReport, ids["a"]).pdf
    assert client.get(f"/staff/reports/{world['a']}/2026-11.pdf").data == stored
    listing = client.get("/staff/reports/").get_data(as_text=True)
    assert f'id="sent-report-{ids["a"]}"' in listing and f'id="sent-report-{ids["b"]}"' in listing


@pytest.mark.parametrize("period", ["2026-13", "November", "2026-Q7"])
def test_r_r4_a_bad_period_is_shown_beside_the_field(client, world, period):
    log_in(client, "sam@vendor.example")
    page = client.get(f"/staff/reports/?customer={world['a']}&period={period}")
    assert page.status_code == 422
    html = page.get_data(as_text=True)
    assert 'id="period-error"' in html and 'id="service-report"' not in html
    assert client.get(f"/staff/reports/{world['a']}/{period}.pdf").status_code == 404


def test_r_r4_an_unknown_customer_is_refused(client, world):
    log_in(client, "sam@vendor.example")
    page = client.get("/staff/reports/?customer=999999&period=2026-11")
    assert page.status_code == 422 and 'id="customer-error"' in page.get_data(as_text=True)
    assert client.get("/staff/reports/999999/2026-11.pdf").status_code == 404


def test_r_r4_staff_page_for_a_quarter(client, world):
    log_in(client, "sam@vendor.example")
    html = client.get(f"/staff/reports/?customer={world['a']}&period=2026-q4").get_data(
        as_text=True)
    assert "2026-Q4" in html and "RMA-2026-00090" in html and "RMA-2026-00091" in html


# -- portal ---------------------------------------------------------------------------------
def test_r_r4_portal_lists_and_downloads_only_own_sent_reports(app, client, world):
    ids = send_november(app, world)
    log_in(client, "alice@a.example")
    home = client.get("/portal/").get_data(as_text=True)
    assert 'id="portal-reports"' in home
    html = client.get("/portal/reports/").get_data(as_text=True)
    assert f'id="report-{ids["a"]}"' in html and f'id="report-{ids["b"]}"' not in html
    download = client.get(f"/portal/reports/{ids['a']}.pdf")
    assert download.status_code == 200 and download.mimetype == "application/pdf"
    assert A_NAME in pdf_text(download.data)
    assert client.get(f"/portal/reports/{ids['b']}.pdf").status_code == 404
    assert client.get("/portal/reports/999999.pdf").status_code == 404


def test_r_r4_portal_does_not_offer_unsent_reports(app, client, world):
    with app.test_request_context(headers={"Accept-Language": "en"}):
        report = sr.build_report(db.session.get(Customer, world["a"]), "2026-11", DEC_1)
        report_id = report.id
    log_in(client, "alice@a.example")
    assert 'id="no-reports"' in client.get("/portal/reports/").get_data(as_text=True)
    assert client.get(f"/portal/reports/{report_id}.pdf").status_code == 404


def test_r_r4_portal_reports_need_a_login_and_send_staff_to_their_page(client, world):
    assert client.get("/portal/reports/").status_code == 302
    log_in(client, "sam@vendor.example")
    response = client.get("/portal/reports/")
    assert response.status_code == 302 and response.location.endswith("/staff/reports/")


def test_r_r4_pages_fit_a_phone(client, world):
    log_in(client, "sam@vendor.example")
    html = client.get(f"/staff/reports/?customer={world['a']}&period=2026-11").get_data(
        as_text=True)
    assert 'name="viewport"' in html and 'class="table-scroll"' in html
    assert 'data-label="RMA"' in html
