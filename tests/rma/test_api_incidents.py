"""The incident API (rma/views/api_incidents.py, issue 6): report through the API (a
customer's token for its own customer; staff for any, with ``reported_at`` honoured: every
deadline counts from it), every deadline with its clock, state, ``breached`` flag and
calendar warning, the escalation history for staff, each POST action, another
customer's incident answered 404, RFC 9457 problems naming the field for bad input and
409 for a wrong state. The test clock says 2026-11-25 12:00 in Shanghai (04:00 UTC), a
Wednesday; the default policy counts calendar hours (D-7)."""

from __future__ import annotations

import io

import pytest
from pypdf import PdfReader
from sqlalchemy import func, select

from rma.extensions import db
from rma.models import AuditEvent, Incident, User
from rma.services.audit import Actor
from rma.services.users import create_token
from tests.rma.test_rmas import build_world
from tests.rma.test_warehouse import at

EN = {"Accept-Language": "en"}
NOW = "2026-11-25T04:00:00+00:00"


@pytest.fixture
def world(app, make_model, make_customer, make_user):
    world = build_world(app, make_model, make_customer, make_user)
    make_user("mia@vendor.example", "manager")
    make_user("wendy@vendor.example", "warehouse")
    with app.app_context():
        for name, email in {"alice": "alice@a.example", "bob": "bob@b.example",
                            "sam": "sam@vendor.example", "mia": "mia@vendor.example",
                            "wendy": "wendy@vendor.example"}.items():
            person = db.session.scalar(select(User).where(User.email == email))
            world[name] = create_token(Actor.cli("test"), person, "test")
            world[f"{name}_id"] = person.id
    return world


def auth(world, who: str) -> dict:
    return {"Authorization": f"Bearer {world[who]}", **EN}


def is_problem(response, status: int) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["status"] == status and body["title"]
    return body


def field_of(body: dict) -> str:
    return body["errors"][0]["field"]


def report(client, world, who="alice", **fields):
    body = {"priority": "urgent", "title": "Authentication service down",
            "description": "No OTP is accepted since 11:40.", "serials": ["TK3-A0001"]}
    if who != "alice" and who != "bob":
        body["customer_contract"] = world["contract_a"]
    body.update(fields)
    return client.post("/api/v1/incidents", json=body, headers=auth(world, who))


def reported(client, world, who="alice", **fields) -> dict:
    response = report(client, world, who, **fields)
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()


def deadline(body: dict, target: str) -> dict:
    return next(d for d in body["deadlines"] if d["target"] == target)


def post(client, world, who, number, action, **body):
    return client.post(f"/api/v1/incidents/{number}/{action}", json=body,
                       headers=auth(world, who))


def count(app, model, *where) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model).where(*where))


# -- reporting --------------------------------------------------------------------------
def test_r_i1_r_i2_customer_reports_through_the_api_and_gets_every_deadline(client, world):
    response = report(client, world)
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["number"].startswith("INC-2026-")
    assert response.headers["Location"].endswith(f"/api/v1/incidents/{body['number']}")
    assert body["customer"]["contract_number"] == world["contract_a"]
    assert body["status"] == "new" and body["priority"] == "urgent"
    assert body["channel"] == "api" and body["serials"] == ["TK3-A0001"]
    assert body["reported_at"] == NOW
    contact = deadline(body, "contact")
    assert contact["due_at"] == "2026-11-25T04:30:00+00:00"  # R-I1: 30 minutes
    assert contact["clock"] == "calendar" and contact["state"] == "on_track"
    assert contact["breached"] is False and contact["calendar_warning"] is None
    assert deadline(body, "diagnosis")["due_at"] == "2026-11-26T04:00:00+00:00"  # R-I2
    assert deadline(body, "resolution")["due_at"] == "2026-11-26T04:00:00+00:00"  # urgent: 24 h
    assert "escalations" not in body  # internal: staff only
    assert body["timeline"] and all(entry["public"] for entry in body["timeline"])


def test_r_i4_staff_see_the_escalation_ladder_of_the_incident(client, world):
    number = reported(client, world)["number"]
    body = client.get(f"/api/v1/incidents/{number}", headers=auth(world, "sam")).get_json()
    rungs = [(rung["hours"], rung["role"], rung["fired"]) for rung in body["escalations"]]
    assert rungs == [(1, "account_manager", False), (2, "technical_lead", False),
                     (4, "service_director", False), (12, "cto", False),
                     (24, "president", False)]
    assert body["escalations"][0]["due_at"] == "2026-11-25T05:00:00+00:00"


def test_r_i1_staff_reported_at_is_honoured_and_deadlines_count_from_it(client, world):
    body = reported(client, world, "sam", reported_at="2026-11-25T10:00:00+08:00",
                    priority="serious", reporter_name="Li Lei", reporter_contact="+86 21 5555")
    assert body["reported_at"] == "2026-11-25T02:00:00+00:00"
    assert body["customer"]["contract_number"] == world["contract_a"]
    contact = deadline(body, "contact")
    assert contact["due_at"] == "2026-11-25T02:30:00+00:00"
    assert contact["state"] == "breached" and contact["breached"] is True
    assert deadline(body, "diagnosis")["due_at"] == "2026-11-26T02:00:00+00:00"
    assert deadline(body, "resolution")["due_at"] == "2026-11-27T02:00:00+00:00"  # 48 h


@pytest.mark.parametrize(("fields", "field"), [
    ({"priority": None}, "priority"),
    ({"priority": "critical"}, "priority"),
    ({"title": ""}, "title"),
    ({"description": 5}, "description"),
    ({"serials": "TK3-B0001"}, "serials"),  # customer B's unit
    ({"serials": {"a": 1}}, "serials"),
    ({"reported_at": "2026-11-25T10:00:00+08:00"}, "reported_at"),  # customers may not
    ({"language": "fr"}, "language"),
])
def test_bad_report_is_a_422_naming_the_field_and_saves_nothing(client, world, fields, field):
    body = is_problem(report(client, world, **fields), 422)
    assert field_of(body) == field
    assert count(client.application, Incident) == 0


@pytest.mark.parametrize(("fields", "field"), [
    ({"customer_contract": ""}, "customer_contract"),
    ({"customer_contract": "SC-NOPE"}, "customer_contract"),
    ({"reported_at": "2026-11-25T13:00:00+08:00"}, "reported_at"),  # in the future
    ({"reported_at": "2026-11-01T10:00:00+08:00"}, "reported_at"),  # more than 7 days back
    ({"reported_at": "2026-11-25T10:00:00"}, "reported_at"),  # no offset
    ({"reported_at": "yesterday"}, "reported_at"),
])
def test_bad_staff_report_is_a_422_naming_the_field(client, world, fields, field):
    body = is_problem(report(client, world, "sam", **fields), 422)
    assert field_of(body) == field
    assert count(client.application, Incident) == 0


def test_report_needs_a_token_and_json(client, world):
    assert client.post("/api/v1/incidents", json={}).status_code == 401
    response = client.post("/api/v1/incidents", data="{nope",
                           headers={**auth(world, "alice"), "Content-Type": "application/json"})
    is_problem(response, 400)


# -- scoping ----------------------------------------------------------------------------
def test_another_customers_incident_is_404_like_an_unknown_one(client, world):
    number = reported(client, world)["number"]
    for path, method in [(f"/api/v1/incidents/{number}", "get"),
                         (f"/api/v1/incidents/{number}/notes", "post"),
                         (f"/api/v1/incidents/{number}/onsite", "post"),
                         ("/api/v1/incidents/INC-2026-999999", "get")]:
        response = getattr(client, method)(path, json={"text": "hi"}, headers=auth(world, "bob"))
        is_problem(response, 404)
    own = client.get(f"/api/v1/incidents/{number}", headers=auth(world, "alice"))
    assert own.status_code == 200


def test_list_is_scoped_to_the_customer_and_staff_filter(client, world):
    mine = reported(client, world)["number"]
    other = reported(client, world, "bob", serials=["TK3-B0001"], priority="general")["number"]
    numbers = [i["number"] for i in client.get("/api/v1/incidents",
                                               headers=auth(world, "alice")).get_json()["items"]]
    assert numbers == [mine]
    staff = client.get("/api/v1/incidents", headers=auth(world, "sam")).get_json()
    assert {i["number"] for i in staff["items"]} == {mine, other} and staff["total"] == 2
    general = client.get("/api/v1/incidents?priority=general", headers=auth(world, "sam"))
    assert [i["number"] for i in general.get_json()["items"]] == [other]
    new = client.get("/api/v1/incidents?status=new&customer=" + world["contract_a"],
                     headers=auth(world, "sam"))
    assert [i["number"] for i in new.get_json()["items"]] == [mine]
    open_ = client.get("/api/v1/incidents?status=open", headers=auth(world, "sam")).get_json()
    assert open_["total"] == 2
    body = is_problem(client.get("/api/v1/incidents?status=closed", headers=auth(world, "sam")),
                      422)
    assert field_of(body) == "status"


# -- actions ----------------------------------------------------------------------------
def test_r_i1_r_i2_contact_then_diagnosis(client, world):
    number = reported(client, world)["number"]
    at(client.application, "2026-11-25T04:20:00+00:00")
    response = post(client, world, "sam", number, "contact", note="Called Alice back")
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["status"] == "contacted" and body["engineer"]["id"] == world["sam_id"]
    assert deadline(body, "contact")["state"] == "met"
    body = is_problem(post(client, world, "sam", number, "diagnosis", diagnosis=""), 422)
    assert field_of(body) == "diagnosis"
    response = post(client, world, "sam", number, "diagnosis",
                    diagnosis="Expired HSM certificate")
    body = response.get_json()
    assert response.status_code == 200 and body["status"] == "diagnosed"
    assert body["diagnosis"] == "Expired HSM certificate"
    assert deadline(body, "diagnosis")["state"] == "met"
    assert count(client.application, AuditEvent, AuditEvent.entity_type.ilike("%incident%")) >= 3


def test_staff_actions_are_refused_to_a_customer_token(client, world):
    number = reported(client, world)["number"]
    for action, body in [("contact", {}), ("diagnosis", {"diagnosis": "x"}),
                         ("priority", {"priority": "general", "reason": "x"}),
                         ("support-mode", {"mode": "remote"}), ("resolve", {"resolution": "x"})]:
        is_problem(post(client, world, "alice", number, action, **body), 403)
    detail = client.get(f"/api/v1/incidents/{number}", headers=auth(world, "alice")).get_json()
    assert detail["status"] == "new"


def test_d7_priority_change_recomputes_deadlines_from_the_report_time(client, world):
    number = reported(client, world)["number"]
    at(client.application, "2026-11-25T06:00:00+00:00")
    body = is_problem(post(client, world, "sam", number, "priority", priority="general"), 422)
    assert field_of(body) == "reason"
    body = is_problem(post(client, world, "sam", number, "priority", priority="low",
                           reason="x"), 422)
    assert field_of(body) == "priority"
    response = post(client, world, "sam", number, "priority", priority="general",
                    reason="Only one branch affected")
    body = response.get_json()
    assert response.status_code == 200 and body["priority"] == "general"
    assert deadline(body, "resolution")["due_at"] == "2026-11-28T04:00:00+00:00"  # +72 h
    assert deadline(body, "contact")["due_at"] == "2026-11-25T04:30:00+00:00"
    assert [r["hours"] for r in body["escalations"]] == [4, 12, 24, 48, 72]


def test_r_i5_support_mode(client, world):
    created = reported(client, world, priority="general")
    number = created["number"]
    assert created["support_mode"] == "phone"  # R-I5: suggested for a general incident
    body = is_problem(post(client, world, "sam", number, "support-mode", mode="fax"), 422)
    assert field_of(body) == "mode"
    body = post(client, world, "sam", number, "support-mode", mode="remote").get_json()
    assert body["support_mode"] == "remote"


def test_r_i6_onsite_request_arrival_brief_end_report_and_resolve(client, world):
    number = reported(client, world)["number"]
    post(client, world, "sam", number, "contact")
    response = post(client, world, "alice", number, "onsite",
                    site_address="1 Bund Road, Shanghai", note="Server room B2")
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["support_mode"] == "onsite"
    visit = body["visits"][0]
    assert visit["kind"] == "emergency" and visit["chargeable"] is False
    assert visit["arrival_due_at"] == "2026-11-25T12:00:00+00:00"  # R-I6: +8 h
    assert deadline(body, "onsite_arrival")["due_at"] == visit["arrival_due_at"]
    assert visit["report_url"] is None
    is_problem(post(client, world, "alice", number, "onsite"), 409)  # one open visit
    vid = visit["id"]
    is_problem(post(client, world, "alice", number, f"visits/{vid}/arrival"), 403)
    is_problem(post(client, world, "sam", number, "visits/999999/arrival"), 404)

    at(client.application, "2026-11-25T09:00:00+00:00")
    body = post(client, world, "sam", number, f"visits/{vid}/arrival").get_json()
    assert body["visits"][0]["arrived_at"] == "2026-11-25T09:00:00+00:00"
    assert deadline(body, "onsite_arrival")["state"] == "met"
    body = is_problem(post(client, world, "sam", number, f"visits/{vid}/briefs",
                           day="25.11.2026", text="x"), 422)
    assert field_of(body) == "day"
    response = post(client, world, "sam", number, f"visits/{vid}/briefs", day="2026-11-25",
                    text="Replaced the PSU; monitoring overnight")
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["visits"][0]["briefs"][0]["day"] == "2026-11-25"

    is_problem(post(client, world, "sam", number, "resolve", resolution="Fixed"), 409)
    body = is_problem(post(client, world, "sam", number, f"visits/{vid}/end",
                           final_report=" "), 422)
    assert field_of(body) == "final_report"
    pdf_path = f"/api/v1/incidents/{number}/visits/{vid}/report.pdf"
    is_problem(client.get(pdf_path, headers=auth(world, "alice")), 409)
    body = post(client, world, "sam", number, f"visits/{vid}/end",
                final_report="PSU failure; replaced; service restored.").get_json()
    assert body["visits"][0]["ended_at"] and body["visits"][0]["report_url"]
    pdf = client.get(pdf_path, headers=auth(world, "alice"))
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.data)).pages)
    assert number in text and "Acme Bank" in text
    is_problem(client.get(pdf_path, headers=auth(world, "bob")), 404)

    body = post(client, world, "sam", number, "resolve", resolution="Fixed on site").get_json()
    assert body["status"] == "resolved" and body["resolution"] == "Fixed on site"
    is_problem(post(client, world, "sam", number, "resolve", resolution="again"), 409)


def test_notes_customer_public_staff_internal(client, world):
    number = reported(client, world)["number"]
    body = is_problem(post(client, world, "alice", number, "notes", text=""), 422)
    assert field_of(body) == "text"
    response = post(client, world, "alice", number, "notes", text="Branch 12 also affected")
    assert response.status_code == 201
    response = post(client, world, "sam", number, "notes", text="Check HSM firmware",
                    public=False)
    assert response.status_code == 201
    body = is_problem(post(client, world, "sam", number, "notes", text="x", public="yes"), 422)
    assert field_of(body) == "public"
    staff = client.get(f"/api/v1/incidents/{number}", headers=auth(world, "sam")).get_json()
    mine = client.get(f"/api/v1/incidents/{number}", headers=auth(world, "alice")).get_json()
    notes = [e for e in staff["timeline"] if e["kind"] == "note"]
    assert [e["public"] for e in notes] == [True, False]
    assert [e["kind"] for e in mine["timeline"]].count("note") == 1


def test_openapi_lists_the_incident_paths(client):
    paths = client.get("/api/v1/openapi.json").get_json()["paths"]
    assert {"get", "post"} <= set(paths["/api/v1/incidents"])
    assert "get" in paths["/api/v1/incidents/{number}"]
    for action in ("contact", "diagnosis", "priority", "support-mode", "onsite", "resolve",
                   "notes", "visits/{visit_id}/arrival", "visits/{visit_id}/briefs",
                   "visits/{visit_id}/end"):
        operation = paths[f"/api/v1/incidents/{{number}}/{action}"]["post"]
        assert operation["security"] == [{"bearerAuth": []}]
        assert {"401", "404", "409", "422"} <= set(operation["responses"])
    rules = {rule.rule for rule in client.application.url_map.iter_rules()}
    for path in paths:
        if path.startswith("/api/v1/incidents"):
            flask_path = (path.replace("{number}", "<number>")
                          .replace("{visit_id}", "<int:visit_id>"))
            assert flask_path in rules, path
