"""The staff incident pages (issue 6): the engineer's queue sorted by time to the next
breach, recording a phone call (every deadline counts from ``reported_at``, R-I1, R-I2),
the incident page (clocks in China time, office-hours clocks explained, the calendar
warning beside a deadline, escalation history R-I4, on-site visits R-I6, timeline) with
its action forms, the manager's board, the monthly compliance table and its CSV, and the
notifications.

Support, managers and admins see the incident pages; managers and admins the board and
compliance; every staff user their notifications; a customer none. The test clock says
2026-11-25 12:00 China time (04:00 UTC), a Wednesday and a working day.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta
from html import unescape

import pytest
from sqlalchemy import func, select

from rma.extensions import db
from rma.models import Incident, IncidentEvent, Notification, OnsiteVisit
from tests.conftest import TEST_PASSWORD, count_queries
from tests.rma.incident_helpers import build_incident_world, email_of, incident, report

NOW = datetime(2026, 11, 25, 4, 0, tzinfo=UTC)
BASE = "/staff/support"
VIEWERS = ("sam", "mia", "adam")
MANAGERS = ("mia", "adam")
OTHERS = ("wendy", "fay", "alice")


@pytest.fixture
def world(app):
    return build_incident_world(app)


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


def _reported(app, priority="urgent", **kw) -> str:
    with app.test_request_context(headers={"Accept-Language": "en"}):
        return report(priority, **kw).number


def _row(page: str, attr: str, value: str) -> str:
    """The ``<tr>`` whose ``attr`` is ``value``."""
    match = re.search(rf'<tr[^>]*{attr}="{re.escape(value)}"[^>]*>.*?</tr>', page, re.S)
    assert match is not None, (attr, value)
    return match.group(0)


def _row_visit(page: str, visit_id: int) -> str:
    start = page.index(f'id="visit-{visit_id}"')
    return page[start:page.index("</section>", start)]


def _set_policy(app, **overrides) -> None:
    app.config["POLICY"] = overrides
    app.extensions.pop("rma_policy", None)


# -- roles ------------------------------------------------------------------------------
def test_incident_pages_per_role(app, world, as_user):
    number = _reported(app)
    pages = [f"{BASE}/", f"{BASE}/incidents/new", f"{BASE}/incidents/{number}"]
    for path in [*pages, f"{BASE}/board", f"{BASE}/compliance", f"{BASE}/notifications"]:
        anonymous = app.test_client().get(path)
        assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]
    for name in VIEWERS:
        for path in pages:
            assert as_user(name).get(path).status_code == 200, (name, path)
    for name in MANAGERS:
        for path in (f"{BASE}/board", f"{BASE}/compliance"):
            assert as_user(name).get(path).status_code == 200, (name, path)
    for path in (f"{BASE}/board", f"{BASE}/compliance"):
        assert as_user("sam").get(path).status_code == 403, path
    for name in OTHERS:
        for path in [*pages, f"{BASE}/board", f"{BASE}/compliance"]:
            assert as_user(name).get(path).status_code == 403, (name, path)
        assert as_user(name).post(f"{BASE}/incidents/{number}/contact",
                                  data={}).status_code == 403, name
    # notifications: any staff user (an escalation role may be held by anyone on staff)
    for name in ("sam", "wendy", "fay", "mia"):
        assert as_user(name).get(f"{BASE}/notifications").status_code == 200, name
    assert as_user("alice").get(f"{BASE}/notifications").status_code == 403


def test_nav_shows_incidents_to_support_only(app, world, as_user):
    assert 'id="nav-incidents"' in _text(as_user("sam").get(f"{BASE}/"))
    warehouse = _text(as_user("wendy").get(f"{BASE}/notifications"))
    assert 'id="nav-incidents"' not in warehouse and 'id="nav-notifications"' in warehouse
    assert 'id="nav-notifications"' not in _text(as_user("alice").get("/portal/"))


def test_unknown_incident_is_404(as_user):
    assert as_user("sam").get(f"{BASE}/incidents/INC-2026-999999").status_code == 404


# -- recording a phone call (R-I1, R-I2, R-I3) ------------------------------------------
def _call(world, **changes) -> dict:
    data = {"contract": world["contract_a"], "priority": "urgent", "title": "Core switch down",
            "description": "The branch network is down.", "serials": "TK3-A0001\nTK3-A0002",
            "models": "TK3", "reporter_name": "Li Lei", "reporter_contact": "+86 21 5555 0000",
            "reported_at": "2026-11-25 10:00", "channel": "phone"}
    data.update(changes)
    return data


def test_r_i3_priority_select_shows_the_definitions(as_user):
    page = _text(as_user("sam").get(f"{BASE}/incidents/new"))
    assert "regional uplink is down" in page
    assert "part of a service is down" in page
    assert "consultation, documentation" in page


def test_r_i1_r_i2_phone_call_with_reported_at_counts_deadlines_from_it(app, world, as_user):
    response = as_user("sam").post(f"{BASE}/incidents/new", data=_call(world))
    assert response.status_code == 302, _text(response)
    with app.app_context():
        found = db.session.scalar(select(Incident))
        assert found.reported_at == datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
        assert found.contact_due_at == datetime(2026, 11, 25, 2, 30, tzinfo=UTC)  # R-I1
        assert found.diagnosis_due_at == datetime(2026, 11, 26, 2, 0, tzinfo=UTC)  # R-I2
        assert str(found.channel) == "phone" and [u.serial for u in found.units] == [
            "TK3-A0001", "TK3-A0002"]
        assert response.headers["Location"].endswith(f"/incidents/{found.number}")
        number = found.number
    page = _text(as_user("sam").get(f"{BASE}/incidents/{number}"))
    assert "2026-11-25 10:00" in page  # reported, China time
    contact = _row(page, "data-target", "contact")
    assert 'data-state="breached"' in contact and "2026-11-25 10:30" in contact
    assert "1 h 30 min overdue" in contact
    diagnosis = _row(page, "data-target", "diagnosis")
    assert 'data-state="on_track"' in diagnosis and "2026-11-26 10:00" in diagnosis
    assert "22 h 00 min left" in diagnosis
    assert "calendar hours (7×24)" in diagnosis


def test_phone_call_errors_beside_fields_and_nothing_saved(app, world, as_user):
    sam = as_user("sam")
    cases = [
        ({"contract": "NO-SUCH"}, "contract"),
        ({"serials": "TK3-B0001"}, "serials"),  # another customer's unit
        ({"reported_at": "2026-11-25 18:00"}, "reported_at"),  # in the future
        ({"reported_at": "2026-11-10 09:00"}, "reported_at"),  # more than 7 days back
        ({"reported_at": "yesterday"}, "reported_at"),
        ({"title": ""}, "title"),
    ]
    for changes, field in cases:
        response = sam.post(f"{BASE}/incidents/new", data=_call(world, **changes))
        assert response.status_code == 422, changes
        page = _text(response)
        assert f'id="{field}-error"' in page, (changes, page[-3000:])
        assert 'aria-invalid="true"' in page
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Incident)) == 0


# -- the incident page ------------------------------------------------------------------
def test_incident_page_actions_through_the_forms(app, world, as_user):
    number = _reported(app, "serious", reported_at=NOW - timedelta(minutes=10))
    sam = as_user("sam")
    url = f"{BASE}/incidents/{number}"

    response = sam.post(f"{url}/contact", data={"contact-engineer": "", "contact-note": "Called"})
    assert response.status_code == 302 and response.headers["Location"].endswith(
        f"{url}#action-contact")
    page = _text(sam.get(url))
    assert 'data-status="contacted"' in page and "sam@vendor.example" in page
    assert 'data-state="met"' in _row(page, "data-target", "contact")

    response = sam.post(f"{url}/assign", data={"assign-engineer": str(world["users"]["sue"])})
    assert response.status_code == 302
    assert "sue@vendor.example" in _text(sam.get(url))

    response = sam.post(f"{url}/support-mode", data={"support_mode-mode": "remote"})
    assert response.status_code == 422  # R-I5: serious already suggests remote login
    assert 'id="support_mode-mode-error"' in _text(response)
    response = sam.post(f"{url}/support-mode", data={"support_mode-mode": "phone"})
    assert response.status_code == 302
    assert 'data-mode="phone"' in _text(sam.get(url))

    response = sam.post(f"{url}/diagnose", data={"diagnose-diagnosis": "A failed PSU."})
    assert response.status_code == 302
    page = _text(sam.get(url))
    assert 'data-status="diagnosed"' in page and "A failed PSU." in page

    response = sam.post(f"{url}/note", data={"note-text": "Spare on its way.",
                                             "note-public": "y"})
    assert response.status_code == 302
    assert "Spare on its way." in _text(sam.get(url))

    # on site: request, arrive, file today's brief, end with the final report (R-I6)
    response = sam.post(f"{url}/onsite", data={"onsite-kind": "emergency",
                                               "onsite-site_address": "1 Bund Road"})
    assert response.status_code == 302
    with app.app_context():
        visit = db.session.scalar(select(OnsiteVisit))
        visit_id = visit.id
        assert visit.arrival_due_at == NOW + timedelta(hours=8)
    page = _text(sam.get(url))
    assert f'id="visit-{visit_id}"' in page and "2026-11-25 20:00" in page
    assert 'data-mode="onsite"' in page

    # resolving while on site: refused (409), the message on the page
    response = sam.post(f"{url}/resolve", data={"resolve-resolution": "Fixed."})
    assert response.status_code == 409 and 'id="page-error"' in _text(response)

    visit_url = f"{url}/visits/{visit_id}"
    assert sam.post(f"{visit_url}/arrival", data={
        f"arrival-{visit_id}-arrived_at": "2026-11-25T12:00"}).status_code == 302
    assert sam.post(f"{visit_url}/brief", data={
        f"brief-{visit_id}-day": "2026-11-25",
        f"brief-{visit_id}-text": "Replaced the PSU."}).status_code == 302
    page = _text(sam.get(url))
    assert "Replaced the PSU." in page and "2026-11-25 12:00" in _row_visit(page, visit_id)

    response = sam.post(f"{visit_url}/end", data={f"end_visit-{visit_id}-final_report": ""})
    assert response.status_code == 422
    assert f'id="end_visit-{visit_id}-final_report-error"' in _text(response)
    response = sam.post(f"{visit_url}/end", data={
        f"end_visit-{visit_id}-final_report": "Root cause: PSU. Replaced; monitored 2 h."})
    assert response.status_code == 302
    page = _text(sam.get(url))
    assert f'id="report-pdf-{visit_id}"' in page
    pdf = sam.get(f"{BASE}/visits/{visit_id}/report.pdf")
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
    assert pdf.data.startswith(b"%PDF")

    response = sam.post(f"{url}/resolve", data={"resolve-resolution": "PSU replaced."})
    assert response.status_code == 302
    page = _text(sam.get(url))
    assert 'data-status="resolved"' in page and 'id="action-resolve"' not in page
    with app.app_context():
        kinds = [e.kind for e in db.session.scalars(select(IncidentEvent)
                                                    .order_by(IncidentEvent.id))]
    for kind in ("reported", "contacted", "engineer_assigned", "support_mode_changed",
                 "diagnosed", "note", "onsite_requested", "onsite_arrived", "brief_filed",
                 "onsite_ended", "resolved"):
        assert kind in kinds, kind
    timeline = page[page.index('id="timeline"'):]
    assert "PSU replaced." in timeline and "Replaced the PSU." in timeline


def test_wrong_state_is_409_with_message(app, world, as_user):
    number = _reported(app, "general")
    sam = as_user("sam")
    url = f"{BASE}/incidents/{number}"
    assert sam.post(f"{url}/diagnose", data={"diagnose-diagnosis": "Config."}).status_code == 302
    response = sam.post(f"{url}/diagnose", data={"diagnose-diagnosis": "Again."})
    assert response.status_code == 409
    assert 'id="page-error"' in _text(response)
    with app.app_context():
        assert incident(number).diagnosis == "Config."


def test_action_errors_beside_fields(app, world, as_user):
    number = _reported(app, "serious")
    sam = as_user("sam")
    url = f"{BASE}/incidents/{number}"
    response = sam.post(f"{url}/priority", data={"priority-priority": "general",
                                                 "priority-reason": ""})
    assert response.status_code == 422 and 'id="priority-reason-error"' in _text(response)
    response = sam.post(f"{url}/diagnose", data={"diagnose-diagnosis": ""})
    assert response.status_code == 422 and 'id="diagnose-diagnosis-error"' in _text(response)
    response = sam.post(f"{url}/assign", data={"assign-engineer": str(world["users"]["wendy"])})
    assert response.status_code == 422
    assert 'id="assign-engineer-error"' in _text(response)
    with app.app_context():
        found = incident(number)
        assert str(found.priority) == "serious" and found.engineer_id is None


def test_d_7_priority_change_recomputes_from_the_report(app, world, as_user):
    reported_at = NOW - timedelta(hours=2)
    number = _reported(app, "urgent", reported_at=reported_at)
    sam = as_user("sam")
    url = f"{BASE}/incidents/{number}"
    response = sam.post(f"{url}/priority", data={"priority-priority": "general",
                                                 "priority-reason": "Only one user affected."})
    assert response.status_code == 302
    with app.app_context():
        found = incident(number)
        assert str(found.priority) == "general"
        assert found.resolution_due_at == reported_at + timedelta(hours=72)
        assert found.contact_due_at == reported_at + timedelta(minutes=30)
    page = _text(sam.get(url))
    assert "2026-11-28 10:00" in _row(page, "data-target", "resolution")
    assert "Only one user affected." in page


def test_r_i7_office_clock_explained_and_calendar_warning_beside_deadline(app, world,
                                                                          as_user):
    _set_policy(app, target_clock={"escalation": "office", "contact": "office"})
    app.config["FIXED_NOW"] = "2026-12-30T04:00:00+00:00"  # Wed 30 Dec, 12:00 China time
    number = _reported(app, "general")  # resolution: 72 office hours, into 2027
    page = _text(as_user("sam").get(f"{BASE}/incidents/{number}"))
    resolution = _row(page, "data-target", "resolution")
    assert 'data-clock="office"' in resolution
    assert "office hours: counts only Mon–Fri 9:00–18:00 on China working days" in resolution
    assert "no holiday data for that year" in resolution and "2027" in resolution
    assert 'class="flash error calendar-warning"' in page
    # 30 office minutes stay in 2026, which has data: explained, no warning
    contact = _row(page, "data-target", "contact")
    assert 'data-clock="office"' in contact and "office hours: counts" in contact
    assert "2026-12-30 12:30" in contact and "no holiday data" not in contact
    diagnosis = _row(page, "data-target", "diagnosis")
    assert 'data-clock="calendar"' in diagnosis and "office hours: counts" not in diagnosis


# -- escalation, queue, board -----------------------------------------------------------
def _escalate(app, now: datetime) -> None:
    from rma.services.incident_jobs import escalation_job

    with app.test_request_context(headers={"Accept-Language": "en"}):
        escalation_job(now)


def test_r_i4_escalation_history_on_the_page_and_the_board(app, world, as_user):
    number = _reported(app, "urgent", reported_at=NOW - timedelta(hours=3))
    _escalate(app, NOW)
    page = _text(as_user("sam").get(f"{BASE}/incidents/{number}"))
    manager = _row(page, "data-role", "account_manager")
    assert 'data-fired="yes"' in manager and "amy@vendor.example" in manager
    assert "ann@vendor.example (deputy)" in manager
    lead = _row(page, "data-role", "technical_lead")
    assert 'data-fired="yes"' in lead and "tom@vendor.example" in lead
    director = _row(page, "data-role", "service_director")
    assert 'data-fired="no"' in director and "not yet" in director
    assert "2026-11-25 13:00" in director  # 10:00 + 4 h, China time

    board = _text(as_user("mia").get(f"{BASE}/board"))
    urgent = board[board.index('id="board-urgent"'):board.index('id="board-serious"')]
    assert number in urgent and 'data-role="technical_lead"' in urgent
    assert "Technical lead" in urgent


def test_queue_sorted_by_time_to_next_breach_with_states(app, world, as_user):
    general = _reported(app, "general", title="Docs question")
    breached = _reported(app, "urgent", title="Uplink down",
                         reported_at=NOW - timedelta(hours=1))
    warning = _reported(app, "serious", title="Part down",
                        reported_at=NOW - timedelta(minutes=26))
    page = _text(as_user("sam").get(f"{BASE}/"))
    order = [page.index(f'data-number="{n}"') for n in (breached, warning, general)]
    assert order == sorted(order)
    assert 'data-state="breached"' in _row(page, "data-number", breached)
    assert "30 min overdue" in _row(page, "data-number", breached)
    assert 'data-state="warning"' in _row(page, "data-number", warning)
    assert "4 min left" in _row(page, "data-number", warning)
    assert 'data-state="on_track"' in _row(page, "data-number", general)

    as_user("sam").post(f"{BASE}/incidents/{general}/contact", data={"contact-engineer": ""})
    mine = _text(as_user("sam").get(f"{BASE}/?mine=1"))
    assert general in mine and breached not in mine


def test_queue_runs_a_constant_number_of_queries(app, world, as_user):
    sam = as_user("sam")
    _reported(app, "urgent")
    _reported(app, "general")
    sam.get(f"{BASE}/")  # warm up
    with count_queries(app) as few:
        assert sam.get(f"{BASE}/").status_code == 200
    for n in range(6):
        number = _reported(app, ("urgent", "serious", "general")[n % 3],
                           serials=(f"TK3-A000{n % 5 + 1}",))
        if n % 2:
            sam.post(f"{BASE}/incidents/{number}/contact", data={"contact-engineer": ""})
    with count_queries(app) as many:
        assert sam.get(f"{BASE}/").status_code == 200
    assert len(many) == len(few), (len(few), len(many))
    mia = as_user("mia")
    with count_queries(app) as board:
        assert mia.get(f"{BASE}/board").status_code == 200
    assert len(board) <= len(many) + 2


# -- compliance -------------------------------------------------------------------------
def test_monthly_compliance_table_and_csv(app, world, as_user):
    met = _reported(app, "urgent", reported_at=NOW - timedelta(minutes=20))
    _reported(app, "urgent", reported_at=NOW - timedelta(hours=1))  # contact missed
    _reported(app, "general", customer_key="b", serials=("TK3-B0001",))
    as_user("sam").post(f"{BASE}/incidents/{met}/contact", data={"contact-engineer": ""})
    _escalate(app, NOW)  # the hour-old one reaches the account manager (R-I4)

    page = _text(as_user("mia").get(f"{BASE}/compliance?month=2026-11"))
    row = _row(page, "data-priority", "urgent")
    assert "Acme Bank" in row and '<td data-label="Incidents" class="num">2</td>' in row
    contact = re.search(r'data-target="contact".*?</td>', row, re.S).group(0)
    assert "1 met" in contact and "1 missed" in contact and "0 open" in contact

    response = as_user("mia").get(f"{BASE}/compliance?month=2026-11&format=csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(response.data.decode("utf-8-sig"))))
    header = rows[0]
    assert header[:4] == ["Customer", "Contract", "Priority", "Incidents"]
    assert header[-1] == "Escalations"
    acme = next(r for r in rows[1:] if r[0] == "Acme Bank")
    assert acme[2] == "Urgent" and acme[3] == "2"
    contact_met = header.index("Contact and engineer assigned: met")
    assert acme[contact_met:contact_met + 3] == ["1", "1", "0"]
    assert acme[-1] == "1"
    beta = next(r for r in rows[1:] if r[0] == "Beta Bank")
    assert beta[2] == "General" and beta[3] == "1"

    xlsx = as_user("mia").get(f"{BASE}/compliance?month=2026-11&format=xlsx")
    assert xlsx.status_code == 200 and xlsx.data[:2] == b"PK"
    assert as_user("mia").get(f"{BASE}/compliance?format=pdf").status_code == 404
    empty = _text(as_user("mia").get(f"{BASE}/compliance?month=2026-10"))
    assert 'id="compliance-empty"' in empty
    bad = as_user("mia").get(f"{BASE}/compliance?month=2026-13")
    assert bad.status_code == 200 and 'id="month-error"' in _text(bad)
    assert "Incident compliance, 2026-11" in _text(bad)  # falls back to this month


# -- notifications ----------------------------------------------------------------------
def test_notifications_listed_and_marked_read(app, world, as_user):
    number = _reported(app, "urgent", reported_at=NOW - timedelta(hours=2, minutes=5))
    _escalate(app, NOW)
    tom = as_user("tom")
    page = _text(tom.get(f"{BASE}/notifications"))
    assert number in page and 'class="notice unread"' in page
    assert 'id="nav-unread"' in page
    with app.app_context():
        ids = list(db.session.scalars(select(Notification.id).where(
            Notification.user_id == world["users"]["tom"])))
    assert ids
    response = tom.post(f"{BASE}/notifications", data={"id": str(ids[0])})
    assert response.status_code == 302
    response = tom.post(f"{BASE}/notifications", data={})
    assert response.status_code == 302
    page = _text(tom.get(f"{BASE}/notifications"))
    assert 'class="notice unread"' not in page and 'id="nav-unread"' not in page
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Notification).where(
            Notification.user_id == world["users"]["tom"],
            Notification.read_at.is_(None))) == 0


def test_r_i6_overdue_brief_marked_and_r_c4_second_change_visit_chargeable(app, world,
                                                                           as_user):
    number = _reported(app, "urgent", reported_at=NOW - timedelta(days=1))
    sam = as_user("sam")
    url = f"{BASE}/incidents/{number}"
    assert sam.post(f"{url}/onsite", data={
        "onsite-kind": "emergency", "onsite-requested_at": "2026-11-24 13:00"}).status_code == 302
    with app.app_context():
        visit_id = db.session.scalar(select(OnsiteVisit.id))
    assert sam.post(f"{url}/visits/{visit_id}/arrival", data={
        f"arrival-{visit_id}-arrived_at": "2026-11-24 15:00"}).status_code == 302
    section = _row_visit(_text(sam.get(url)), visit_id)
    assert "Daily brief overdue for: 2026-11-24" in section
    assert sam.post(f"{url}/visits/{visit_id}/brief", data={
        f"brief-{visit_id}-day": "2026-11-24",
        f"brief-{visit_id}-text": "Diagnosed on site."}).status_code == 302
    section = _row_visit(_text(sam.get(url)), visit_id)
    assert "overdue" not in section and "Diagnosed on site." in section
    assert sam.post(f"{url}/visits/{visit_id}/end", data={
        f"end_visit-{visit_id}-final_report": "Done."}).status_code == 302

    # R-C4: customer-side change visits; the second in the contract year is chargeable
    other = _reported(app, "general", serials=("TK3-A0002",))
    for _n in range(2):
        response = sam.post(f"{BASE}/incidents/{other}/onsite", data={"onsite-kind": "change"})
        assert response.status_code == 302
        with app.app_context():
            open_visit = db.session.scalar(select(OnsiteVisit).where(
                OnsiteVisit.ended_at.is_(None)))
            open_id = open_visit.id
        sam.post(f"{BASE}/incidents/{other}/visits/{open_id}/arrival", data={})
        sam.post(f"{BASE}/incidents/{other}/visits/{open_id}/end",
                 data={f"end_visit-{open_id}-final_report": "Changed."})
    page = _text(sam.get(f"{BASE}/incidents/{other}"))
    assert page.count("Chargeable (R-C4)") == 1
