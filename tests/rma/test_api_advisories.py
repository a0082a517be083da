"""The advisory API (rma/views/api_advisories.py, issue 7): who sees what (anonymous:
published only; a customer's token: also its own notices; staff: all), the staff
actions, 409 with ``possible_on`` (R-A3), 422 naming the field, and the customer's
acknowledgement. The test clock says 2026-11-25 12:00 in Shanghai."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from rma.extensions import db
from rma.models import Advisory, AdvisoryNotice, AuditEvent, User
from rma.services.audit import Actor
from rma.services.users import create_token
from tests.rma.test_advisories import build_advisory_world
from tests.rma.test_warehouse import at

EN = {"Accept-Language": "en"}
BODY = {"title": "Seed disclosure", "severity": "high",
        "description": "A crafted request reads the token seed.",
        "solution": "Upgrade to 2.4.1.", "references": ["CVE-2026-0001"],
        "affected_versions": "firmware < 2.4.1", "model_codes": ["TK3"],
        "vendor_found": True, "patch_released_on": "2026-11-27"}


@pytest.fixture
def world(app, make_model, make_customer, make_user):
    world = build_advisory_world(app, make_model, make_customer, make_user)
    with app.app_context():
        for name, email in {"alice": "alice@a.example", "bob": "bob@b.example",
                            "sam": "sam@vendor.example", "wendy": "wendy@vendor.example",
                            "dora": "dora@d.example"}.items():
            person = db.session.scalar(select(User).where(User.email == email))
            world[name] = create_token(Actor.cli("test"), person, "test")
    return world


def auth(world, who: str | None) -> dict:
    return {**EN, **({"Authorization": f"Bearer {world[who]}"} if who else {})}


def is_problem(response, status: int) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    return response.get_json()


def create(client, world, **changes) -> dict:
    response = client.post("/api/v1/advisories", json={**BODY, **changes},
                           headers=auth(world, "sam"))
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()


def act(client, world, who, number, action, **body):
    return client.post(f"/api/v1/advisories/{number}/{action}", json=body,
                       headers=auth(world, who))


def numbers(client, world, who=None, query="") -> list[str]:
    response = client.get(f"/api/v1/advisories{query}", headers=auth(world, who))
    assert response.status_code == 200, response.get_data(as_text=True)
    return [a["number"] for a in response.get_json()["items"]]


def test_r_a1_staff_create_returns_the_advisory_with_its_r_a2_due_day(client, world):
    body = create(client, world)
    assert body["number"] == "SA-2026-0001" and body["status"] == "draft"
    assert body["notify_due_on"] == "2026-12-01"  # Friday + 2 working days
    assert body["product_models"] == ["TK3"] and body["references"] == ["CVE-2026-0001"]
    assert body["notices"] == {"sent": 0, "opened": 0, "acknowledged": 0}
    assert body["customers"] == [] and body["may_publish"] is False


@pytest.mark.parametrize(("change", "field"), [
    ({"severity": "critical"}, "severity"),
    ({"title": ""}, "title"),
    ({"model_codes": ["NOPE"]}, "model_codes"),
    ({"model_codes": [1]}, "model_codes"),
    ({"patch_released_on": "27/11/2026"}, "patch_released_on"),
    ({"patch_released_on": 20261127}, "patch_released_on"),
    ({"vendor_found": "yes"}, "vendor_found"),
    ({"colour": "red"}, "colour"),
])
def test_r_a1_bad_input_is_422_naming_the_field(app, client, world, change, field):
    response = client.post("/api/v1/advisories", json={**BODY, **change},
                           headers=auth(world, "sam"))
    body = is_problem(response, 422)
    assert body["errors"][0]["field"] == field
    with app.app_context():
        assert db.session.scalar(select(func.count(Advisory.id))) == 0


@pytest.mark.parametrize(("who", "status"), [(None, 401), ("alice", 403), ("wendy", 403)])
def test_staff_actions_need_a_staff_token(client, world, who, status):
    is_problem(client.post("/api/v1/advisories", json=BODY, headers=auth(world, who)), status)
    number = create(client, world)["number"]
    is_problem(act(client, world, who, number, "notify"), status)
    is_problem(act(client, world, who, number, "publish"), status)


def test_a_bad_token_is_401_even_on_the_public_list(client):
    response = client.get("/api/v1/advisories", headers={"Authorization": "Bearer nope"})
    is_problem(response, 401)


def test_visibility_anonymous_customer_and_staff(client, world):
    lic = create(client, world, model_codes=["LIC"], title="Licence flaw")["number"]
    draft = create(client, world, title="Draft")["number"]
    public = create(client, world, vendor_found=False, title="Public flaw")["number"]
    assert act(client, world, "sam", lic, "notify").status_code == 200
    assert act(client, world, "sam", public, "publish").status_code == 200
    # Anonymous: published only, no customer data.
    assert numbers(client, world) == [public]
    anonymous = client.get(f"/api/v1/advisories/{public}", headers=EN).get_json()
    assert "notice" not in anonymous and "customers" not in anonymous
    for hidden in (lic, draft, "SA-2026-9999"):
        is_problem(client.get(f"/api/v1/advisories/{hidden}", headers=EN), 404)
    # Customer A: its notice too; B cannot see A's unpublished notice (404).
    assert numbers(client, world, "alice") == [public, lic]
    assert numbers(client, world, "bob") == [public]
    is_problem(client.get(f"/api/v1/advisories/{lic}", headers=auth(world, "bob")), 404)
    is_problem(client.get(f"/api/v1/advisories/{draft}", headers=auth(world, "alice")), 404)
    # Staff: everything, filtered by status.
    assert sorted(numbers(client, world, "sam")) == sorted([lic, draft, public])
    assert numbers(client, world, "sam", "?status=draft") == [draft]
    bad = is_problem(client.get("/api/v1/advisories?status=gone", headers=auth(world, "sam")),
                     422)
    assert bad["errors"][0]["field"] == "status"
    staff_view = client.get(f"/api/v1/advisories/{lic}", headers=auth(world, "sam")).get_json()
    assert [c["name"] for c in staff_view["customers"]] == ["Acme Bank"]
    assert staff_view["customers"][0]["recipients"] == ["alice@a.example", "carol@a.example"]


def test_customer_reading_marks_opened_and_acknowledges_once(app, client, world):
    number = create(client, world)["number"]
    notified = act(client, world, "sam", number, "notify").get_json()
    assert notified["notices_created"] == 2 and notified["status"] == "notified"
    assert notified["notices"]["sent"] == 2
    listed = client.get("/api/v1/advisories", headers=auth(world, "alice")).get_json()
    assert listed["items"][0]["notice"]["opened_at"] is None
    at(app, "2026-11-25T05:00:00+00:00")
    read = client.get(f"/api/v1/advisories/{number}", headers=auth(world, "alice")).get_json()
    assert read["notice"]["opened_at"] == "2026-11-25T05:00:00+00:00"
    assert read["notice"]["acknowledged"] is False
    is_problem(act(client, world, "sam", number, "acknowledge"), 403)
    is_problem(act(client, world, "dora", number, "acknowledge"), 404)  # D has no notice
    at(app, "2026-11-25T06:00:00+00:00")
    ack = act(client, world, "alice", number, "acknowledge")
    assert ack.status_code == 200, ack.get_data(as_text=True)
    assert ack.get_json()["notice"]["acknowledged_at"] == "2026-11-25T06:00:00+00:00"
    at(app, "2026-11-25T07:00:00+00:00")
    again = act(client, world, "alice", number, "acknowledge").get_json()
    assert again["notice"]["acknowledged_at"] == "2026-11-25T06:00:00+00:00"
    staff_view = client.get(f"/api/v1/advisories/{number}", headers=auth(world, "sam")).get_json()
    assert staff_view["notices"] == {"sent": 2, "opened": 1, "acknowledged": 1}
    with app.app_context():
        actions = db.session.scalars(select(AuditEvent.action).where(
            AuditEvent.entity_type == "advisory_notice")).all()
        assert sorted(actions) == ["advisory_notice.acknowledged", "advisory_notice.opened"]
        assert db.session.scalar(select(func.count(AdvisoryNotice.id))) == 2


def test_r_a3_publish_too_early_is_409_with_possible_on(app, client, world):
    number = create(client, world)["number"]
    early = is_problem(act(client, world, "sam", number, "publish"), 409)
    assert early["possible_on"] is None and "notify" in early["detail"]
    act(client, world, "sam", number, "notify")
    refused = is_problem(act(client, world, "sam", number, "publish"), 409)
    assert refused["possible_on"] == "2026-12-09"
    assert "can be published from 2026-12-09" in refused["detail"]
    view = client.get(f"/api/v1/advisories/{number}", headers=auth(world, "sam")).get_json()
    assert view["status"] == "notified" and view["publish_possible_on"] == "2026-12-09"
    at(app, "2026-12-09T00:00:00+00:00")  # 08:00 in Shanghai on the boundary day
    published = act(client, world, "sam", number, "publish")
    assert published.status_code == 200, published.get_data(as_text=True)
    assert published.get_json()["status"] == "published"
    assert numbers(client, world) == [number]
    is_problem(act(client, world, "sam", number, "publish"), 409)


def test_unknown_advisory_actions_are_404(client, world):
    for action in ("notify", "publish", "acknowledge"):
        who = "alice" if action == "acknowledge" else "sam"
        is_problem(act(client, world, who, "SA-2026-0404", action), 404)


def test_openapi_lists_the_advisory_paths(client):
    paths = client.get("/api/v1/openapi.json").get_json()["paths"]
    assert set(paths["/api/v1/advisories"]) == {"get", "post"}
    for action in ("notify", "publish", "acknowledge"):
        assert "post" in paths[f"/api/v1/advisories/{{number}}/{action}"]
    publish = paths["/api/v1/advisories/{number}/publish"]["post"]
    assert "possible_on" in str(publish["responses"]["409"])
