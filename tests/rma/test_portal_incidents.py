"""The customer portal's incidents (rma/views/portal_incidents.py, issue 6): report with
the R-I3 definitions as help text, bad input shown beside its field, the incident page
(status, engineer, contact and diagnosis targets with due times in China time, public
timeline, on-site visits with their arrival deadline and briefs), request on-site help,
add a note, the final emergency response report as PDF once the visit ended, and
another customer's incident answered 404. The test clock says 2026-11-25 12:00 in
Shanghai (04:00 UTC)."""

from __future__ import annotations

import io
import re
from datetime import date

import pytest
from pypdf import PdfReader
from sqlalchemy import func, select

from rma.extensions import db
from rma.models import Incident, User
from rma.services import incidents
from rma.services.audit import Actor
from tests.conftest import TEST_PASSWORD
from tests.rma.test_rmas import build_world
from tests.rma.test_warehouse import at

EN = {"Accept-Language": "en"}


@pytest.fixture
def world(app, make_model, make_customer, make_user):
    return build_world(app, make_model, make_customer, make_user)


def log_in(client, email: str):
    response = client.post("/login", data={"email": email, "password": TEST_PASSWORD})
    assert response.status_code == 302, response.data
    return client


def page(response) -> str:
    return re.sub(r"\s+", " ", response.get_data(as_text=True))


def report(client, headers=EN, **fields):
    data = {"priority": "urgent", "title": "Authentication service down",
            "description": "No OTP is accepted since 11:40.", "serials": "TK3-A0001\nTK3-A0002",
            "reporter_name": "Alice Wang", "reporter_contact": "+86 21 5555 0101"}
    data.update(fields)
    return client.post("/portal/incidents/new", data=data, headers=headers)


def reported(client, headers=EN) -> str:
    response = report(client, headers)
    assert response.status_code == 302, page(response)
    return response.headers["Location"].rsplit("/", 1)[-1]


def user(email: str) -> User:
    return db.session.scalar(select(User).where(User.email == email))


def staff_does(app, action, number: str, *args, **kwargs):
    with app.test_request_context(headers=EN):
        incident = incidents.get_incident(number, user("sam@vendor.example"))
        return action(Actor(user=user("sam@vendor.example")), incident, *args, **kwargs)


def incident_count(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Incident))


def test_r_i3_report_form_shows_priority_definitions(client, world):
    log_in(client, "alice@a.example")
    html = page(client.get("/portal/incidents/new", headers=EN))
    assert "a regional uplink is down" in html  # urgent
    assert "part of a service is down" in html  # serious
    assert "consultation, documentation" in html  # general


def test_r_i1_customer_reports_through_the_portal(client, world):
    log_in(client, "alice@a.example")
    number = reported(client)
    assert number.startswith("INC-2026-")
    html = page(client.get(f"/portal/incidents/{number}", headers=EN))
    assert number in html and "Authentication service down" in html
    assert "Not assigned yet" in html
    assert "TK3-A0001" in html and "TK3-A0002" in html
    # R-I1: 30 minutes, R-I2: 24 hours, shown in China time
    assert re.search(r'id="target-contact".*?2026-11-25 12:30', html)
    assert re.search(r'id="target-diagnosis".*?2026-11-26 12:00', html)
    assert "Incident reported" in html
    listing = page(client.get("/portal/incidents", headers=EN))
    assert f'id="incident-{number}"' in listing
    with client.application.app_context():
        incident = db.session.scalar(select(Incident).where(Incident.number == number))
        assert str(incident.channel) == "portal" and incident.reporter_name == "Alice Wang"


@pytest.mark.parametrize(("fields", "field", "message"), [
    ({"priority": ""}, "priority", "Choose a priority"),
    ({"title": ""}, "title", "short summary"),
    ({"description": ""}, "description", "Describe the fault"),
    ({"serials": "TK3-B0001"}, "serials", "not registered to Acme Bank"),
    ({"serials": "??"}, "serials", "not a valid serial"),
])
def test_bad_report_shows_the_error_beside_the_field(client, world, fields, field, message):
    log_in(client, "alice@a.example")
    response = report(client, **fields)
    assert response.status_code == 422
    html = page(response)
    error = re.search(rf'<p class="error" id="{field}-error" role="alert">([^<]*)</p>', html)
    assert error and message in error.group(1), html
    assert incident_count(client.application) == 0


def test_another_customers_incident_is_404(client, world):
    log_in(client, "alice@a.example")
    number = reported(client)
    staff_does(client.application, incidents.contact_customer, number)
    with client.application.test_request_context(headers=EN):
        incident = incidents.get_incident(number, user("sam@vendor.example"))
        visit_id = incidents.request_onsite(Actor(user=user("sam@vendor.example")), incident).id
    client.post("/logout")
    log_in(client, "bob@b.example")
    assert client.get(f"/portal/incidents/{number}").status_code == 404
    response = client.post(f"/portal/incidents/{number}/notes", data={"note-text": "hi"})
    assert response.status_code == 404
    assert client.post(f"/portal/incidents/{number}/onsite", data={}).status_code == 404
    assert client.get(f"/portal/visits/{visit_id}/report.pdf").status_code == 404
    assert f"incident-{number}" not in page(client.get("/portal/incidents"))


def test_r_i6_customer_requests_onsite_help_and_sees_the_arrival_deadline(client, world):
    log_in(client, "alice@a.example")
    number = reported(client)
    response = client.post(f"/portal/incidents/{number}/onsite", headers=EN, data={
        "onsite-kind": "emergency", "onsite-site_address": "1 Bund Road, Shanghai",
        "onsite-note": "Server room B2"})
    assert response.status_code == 302, page(response)
    html = page(client.get(f"/portal/incidents/{number}", headers=EN))
    assert re.search(r'class="arrival-due">2026-11-25 20:00', html)  # +8 h, China time
    assert "1 Bund Road, Shanghai" in html
    assert 'id="onsite-form"' not in html  # one open visit at a time
    response = client.post(f"/portal/incidents/{number}/onsite", headers=EN,
                           data={"onsite-kind": "emergency"})
    assert response.status_code == 409
    assert "already open" in page(response)


def test_onsite_request_with_bad_kind_is_shown_beside_the_field(client, world):
    log_in(client, "alice@a.example")
    number = reported(client)
    response = client.post(f"/portal/incidents/{number}/onsite", headers=EN,
                           data={"onsite-kind": "holiday"})
    assert response.status_code == 422
    assert 'id="onsite-kind-error"' in page(response)


def test_customer_adds_a_note_to_the_public_timeline(client, world):
    log_in(client, "alice@a.example")
    number = reported(client)
    response = client.post(f"/portal/incidents/{number}/notes", headers=EN,
                           data={"note-text": ""})
    assert response.status_code == 422 and 'id="note-text-error"' in page(response)
    response = client.post(f"/portal/incidents/{number}/notes", headers=EN,
                           data={"note-text": "Branch 12 is affected too"})
    assert response.status_code == 302
    staff_does(client.application, incidents.add_note, number, "internal remark", public=False)
    html = page(client.get(f"/portal/incidents/{number}", headers=EN))
    assert "Branch 12 is affected too" in html
    assert "internal remark" not in html


def test_r_i6_final_report_pdf_only_after_the_visit_ended(client, world):
    app = client.application
    log_in(client, "carol@a.example")  # a Chinese-speaking user: the report is in Chinese
    number = reported(client)
    staff_does(app, incidents.contact_customer, number)
    client.post(f"/portal/incidents/{number}/onsite", data={"onsite-kind": "emergency"})
    with app.app_context():
        incident = db.session.scalar(select(Incident).where(Incident.number == number))
        visit_id = incident.visits[0].id
    pdf_path = f"/portal/visits/{visit_id}/report.pdf"
    assert client.get(pdf_path).status_code == 404
    at(app, "2026-11-25T08:00:00+00:00")
    with app.test_request_context(headers=EN):
        sam = Actor(user=user("sam@vendor.example"))
        visit = incidents.get_visit(visit_id, sam.user)
        incidents.record_arrival(sam, visit)
        incidents.file_daily_brief(sam, incidents.get_visit(visit_id, sam.user),
                                   date(2026, 11, 25), "更换电源 replaced the PSU")
        incidents.end_onsite(sam, incidents.get_visit(visit_id, sam.user),
                             "Root cause: power supply failure.")
    html = page(client.get(f"/portal/incidents/{number}"))
    assert f'id="report-pdf-{visit_id}"' in html and "replaced the PSU" in html
    response = client.get(pdf_path)
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    text = re.sub(r"\s+", "", "".join(
        p.extract_text() for p in PdfReader(io.BytesIO(response.data)).pages))
    assert "紧急响应报告" in text
    assert "AcmeBank" in text and number in text and "更换电源" in text


def test_portal_home_and_nav_link_to_incidents_for_customers(client, world):
    log_in(client, "alice@a.example")
    html = page(client.get("/portal/", headers=EN))
    assert 'id="portal-incidents"' in html
    assert html.count('href="/portal/incidents"') >= 2  # home and main navigation


def test_staff_are_sent_to_the_support_pages(client, world):
    log_in(client, "alice@a.example")
    number = reported(client)
    client.post("/logout")
    log_in(client, "sam@vendor.example")
    response = client.get(f"/portal/incidents/{number}")
    assert response.status_code == 302 and "/staff/support/" in response.headers["Location"]
    assert client.get("/portal/incidents").status_code == 302
