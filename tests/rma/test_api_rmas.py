"""The RMA API (``/api/v1/rmas``) and the label download (``/rmas/<number>/label.pdf``):
bearer tokens, scoping between customers, problems instead of 500s (R-R1, R-R2, D-1)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from rma.extensions import db
from rma.models import ApiToken, OutboxMessage, Rma, RmaItem, User
from rma.services.audit import Actor
from rma.services.users import create_token
from tests.conftest import TEST_PASSWORD, count_queries
from tests.rma.test_rmas import build_world

EN = {"Accept-Language": "en"}
WARRANTY_FIELDS = {"serial", "product_model", "kind", "warranty_basis", "warranty_start",
                   "warranty_end", "in_warranty", "days_left", "replacement_of"}


@pytest.fixture
def world(app, make_model, make_customer, make_user):
    world = build_world(app, make_model, make_customer, make_user)
    with app.app_context():
        for email in ("alice@a.example", "bob@b.example", "sam@vendor.example"):
            person = db.session.scalar(select(User).where(User.email == email))
            world[email.split("@")[0]] = create_token(Actor.cli("test"), person, "test")
    return world


def auth(token: str, **extra) -> dict:
    return {"Authorization": f"Bearer {token}", **EN, **extra}


def body(*serials, **change) -> dict:
    payload = {
        "contact": {"name": "Alice Wang", "phone": "+86 21 5555 0101",
                    "email": "alice@a.example"},
        "ship_to": "Acme Bank IT, 1 Bund Road, Shanghai",
        "items": [{"serial": s, "fault_description": "No codes shown",
                   "fault_category": "no_display"} for s in serials],
        "language": "en",
    }
    payload.update(change)
    return payload


def post(client, token, payload):
    return client.post("/api/v1/rmas", json=payload, headers=auth(token))


def rows(app, model) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


# -- authentication ---------------------------------------------------------------------
@pytest.mark.parametrize("headers", [
    {},
    {"Authorization": "Bearer "},
    {"Authorization": "Bearer rma_not-a-real-token"},
    {"Authorization": "Basic YWxpY2U6cGFzc3dvcmQ="},
    {"Authorization": "Bearer " + "x" * 500},
])
@pytest.mark.parametrize("method, path", [
    ("GET", "/api/v1/rmas"), ("GET", "/api/v1/rmas/RMA-2026-000001"),
    ("POST", "/api/v1/rmas"),
])
def test_401_without_a_good_token(client, world, headers, method, path):
    response = client.open(path, method=method, headers={**headers, **EN}, json={})
    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.get_json()["status"] == 401


def test_401_for_a_revoked_token_and_an_inactive_user(app, client, world):
    assert client.get("/api/v1/rmas", headers=auth(world["alice"])).status_code == 200
    with app.app_context():
        token = db.session.scalar(select(ApiToken).join(User).where(
            User.email == "alice@a.example"))
        token.revoked_at = datetime.now(UTC)
        bob = db.session.scalar(select(User).where(User.email == "bob@b.example"))
        bob.is_active_flag = False
        db.session.commit()
    for name in ("alice", "bob"):
        response = client.get("/api/v1/rmas", headers=auth(world[name]))
        assert response.status_code == 401
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_the_cookie_session_never_authenticates_the_api(client, world):
    assert client.post("/login", data={"email": "alice@a.example",
                                       "password": TEST_PASSWORD}).status_code == 302
    assert client.get("/api/v1/rmas").status_code == 401
    assert client.post("/api/v1/rmas", json=body("TK3-A0001")).status_code == 401


def test_last_used_at_is_written_at_most_once_a_minute(app, client, world):
    def last_used():
        with app.app_context():
            return db.session.scalar(select(ApiToken.last_used_at).join(User).where(
                User.email == "alice@a.example"))

    assert last_used() is None
    client.get("/api/v1/rmas", headers=auth(world["alice"]))
    first = last_used()
    assert first == datetime(2026, 11, 25, 4, 0, tzinfo=UTC)
    app.config["FIXED_NOW"] = "2026-11-25T04:00:59+00:00"
    client.get("/api/v1/rmas", headers=auth(world["alice"]))
    assert last_used() == first
    app.config["FIXED_NOW"] = "2026-11-25T04:01:00+00:00"
    client.get("/api/v1/rmas", headers=auth(world["alice"]))
    assert last_used() == first + timedelta(minutes=1)


# -- submitting -------------------------------------------------------------------------
def test_R_R2_post_creates_the_rma_and_answers_its_number(app, client, world):
    response = post(client, world["alice"], body("tk3-a0001", "TK3-AOLD"))
    assert response.status_code == 201, response.get_json()
    answer = response.get_json()
    assert answer["number"] == "RMA-2026-000001" and answer["status"] == "open"
    assert response.headers["Location"].endswith("/api/v1/rmas/RMA-2026-000001")
    assert answer["label_url"] == "http://localhost/rmas/RMA-2026-000001/label.pdf"
    first, second = answer["items"]
    assert (first["serial"], first["status"]) == ("TK3-A0001", "submitted")
    assert set(first["coverage"]) >= WARRANTY_FIELDS
    assert first["coverage"] == {
        "serial": "TK3-A0001", "product_model": "TK3", "kind": "hardware",
        "warranty_basis": "ship", "warranty_start": "2025-01-10",
        "warranty_end": "2028-01-09", "in_warranty": True, "days_left": 411,
        "replacement_of": None, "judged_on": "2026-11-25",
        "meaning": first["coverage"]["meaning"],
    }
    assert first["coverage"]["meaning"].startswith("In warranty until 2028-01-09")
    assert second["coverage"]["in_warranty"] is False
    assert second["coverage"]["days_left"] == 0
    with app.app_context():
        message = db.session.scalar(select(OutboxMessage))
        assert message.to_address == "alice@a.example" and message.language == "en"
        assert message.attachments[0].data.startswith(b"%PDF")


@pytest.mark.parametrize("change, expected", [
    ({"items": []}, [(None, "items", "required")]),
    ({"ship_to": ""}, [(None, "ship_to", "required")]),
    ({"contact": {"name": "A", "phone": "+86 21 5555 0101", "email": "nope"}},
     [(None, "contact_email", "invalid")]),
    ({"contact": "Alice"}, [(None, "contact", "invalid"), (None, "contact_name", "required"),
                            (None, "contact_phone", "required"),
                            (None, "contact_email", "required")]),
    ({"items": "TK3-A0001"}, [(None, "items", "invalid")]),
    ({"items": ["TK3-A0001"]}, [(0, "item", "invalid")]),
    ({"items": [{"serial": 12345678, "fault_description": "x"}]},
     [(0, "serial", "malformed")]),
    ({"items": [{"serial": "TK3-A0001", "fault_description": ["x"]}]},
     [(0, "fault_description", "invalid")]),
    ({"items": [{"serial": "TK3-A0001", "fault_description": "x", "fault_category": 7}]},
     [(0, "fault_category", "unknown_category")]),
    ({"items": [{"fault_description": "x"}]}, [(0, "serial", "required")]),
    ({"ship_to": {"street": "x"}}, [(None, "ship_to", "invalid")]),
    ({"language": "de"}, [(None, "language", "invalid")]),
    ({"customer_contract": "SC-2026-00002"}, [(None, "customer_contract", "invalid")]),
    ({"ship_to": 5, "items": [7, {"serial": "NOPE-0001", "fault_description": "x"}]},
     [(None, "ship_to", "invalid"), (0, "item", "invalid"), (1, "serial", "unknown")]),
])
def test_R_R1_invalid_submission_is_a_422_problem_and_nothing_is_written(
        app, client, world, change, expected):
    response = post(client, world["alice"], body("TK3-A0001", **change))
    assert response.status_code == 422, response.get_json()
    assert response.mimetype == "application/problem+json"
    problem = response.get_json()
    assert problem["title"] == "RMA not valid"
    assert [(e["item"], e["field"], e["code"]) for e in problem["errors"]] == expected
    assert all(e["message"] for e in problem["errors"])
    assert rows(app, Rma) == rows(app, RmaItem) == rows(app, OutboxMessage) == 0


def test_R_R1_every_bad_item_is_reported_and_the_good_one_is_not_saved(app, client, world):
    payload = body("TK3-A0001", "bad#1", "NOPE-0001", "TK3-A0001")
    response = post(client, world["alice"], payload)
    assert response.status_code == 422
    errors = response.get_json()["errors"]
    assert [(e["item"], e["code"]) for e in errors] == [
        (1, "malformed"), (2, "unknown"), (3, "duplicate")]
    assert "'bad#1'" in errors[0]["message"]
    assert rows(app, Rma) == 0
    assert post(client, world["alice"], body("TK3-A0001")).get_json()["number"] == \
        "RMA-2026-000001"


@pytest.mark.parametrize("data, content_type, status", [
    (b"{not json", "application/json", 400),
    (b"", "application/json", 400),
    (b"[1, 2]", "application/json", 422),
    (b"\"text\"", "application/json", 422),
    (b"\xff\xfe", "application/json", 400),
    (b"contact=x", "application/x-www-form-urlencoded", 400),
])
def test_malformed_bodies_are_problems_not_500(client, world, data, content_type, status):
    response = client.post("/api/v1/rmas", data=data, headers={
        **auth(world["alice"]), "Content-Type": content_type})
    assert response.status_code == status
    assert response.mimetype == "application/problem+json"


def test_D_8_a_customer_cannot_submit_another_customers_serial(app, client, world):
    for serial in ("TK3-B0001", "TK3-SPARE1"):
        response = post(client, world["alice"], body(serial))
        assert response.status_code == 422
        [error] = response.get_json()["errors"]
        assert error["code"] == "foreign"
        assert error["message"] == f"Serial {serial} is not registered to your organisation."
    assert rows(app, Rma) == 0


def test_staff_token_submits_on_behalf_with_customer_contract(app, client, world):
    response = post(client, world["sam"], body("TK3-B0001",
                                               customer_contract=world["contract_b"]))
    assert response.status_code == 201, response.get_json()
    with app.app_context():
        rma = db.session.scalar(select(Rma))
        assert rma.customer_id == world["b"] and rma.submitted_by.email == "sam@vendor.example"
    missing = post(client, world["sam"], body("TK3-B0002"))
    assert [(e["field"], e["code"]) for e in missing.get_json()["errors"]] == [
        ("customer_contract", "required")]
    unknown = post(client, world["sam"], body("TK3-B0002", customer_contract="SC-1999-00001"))
    assert [(e["field"], e["code"]) for e in unknown.get_json()["errors"]] == [
        ("customer_contract", "unknown")]
    # Staff submit for the customer named, not a customer of the serial's choosing.
    wrong = post(client, world["sam"], body("TK3-A0001", customer_contract=world["contract_b"]))
    assert [e["code"] for e in wrong.get_json()["errors"]] == ["foreign"]


def test_R_R1_same_serial_twice_second_is_422_open_rma(client, world):
    assert post(client, world["alice"], body("TK3-A0001")).status_code == 201
    again = post(client, world["alice"], body("TK3-A0001"))
    assert again.status_code == 422
    [error] = again.get_json()["errors"]
    assert (error["item"], error["code"]) == (0, "open_rma")
    assert "RMA-2026-000001" in error["message"]


# -- reading ----------------------------------------------------------------------------
def test_get_one_rma_with_items_coverage_and_timeline(client, world):
    number = post(client, world["alice"], body("TK3-A0001", "LIC-A001")).get_json()["number"]
    response = client.get(f"/api/v1/rmas/{number.lower()}", headers=auth(world["alice"]))
    assert response.status_code == 200
    rma = response.get_json()
    assert rma["number"] == number and rma["status"] == "open"
    assert rma["customer"] == {"name": "Acme Bank", "contract_number": world["contract_a"]}
    assert rma["contact"]["email"] == "alice@a.example"
    assert rma["submitted_at"] == "2026-11-25T04:00:00+00:00"
    first, second = rma["items"]
    assert (first["line"], first["serial"], first["status"]) == (1, "TK3-A0001", "submitted")
    assert first["fault_category"] == "no_display" and first["photos"] == 0
    assert (first["decision"], first["due_at"], first["shipments"]) == (None, None, [])
    assert set(first["coverage"]) >= WARRANTY_FIELDS
    assert second["coverage"]["warranty_basis"] == "acceptance"
    assert second["coverage"]["warranty_end"] == "2027-03-10"
    assert [e["text"] for e in rma["timeline"]] == [
        "RMA submitted with 2 items by alice@a.example."]
    assert rma["label_url"].endswith(f"/rmas/{number}/label.pdf")


def test_customer_cannot_see_another_customers_rma(client, world):
    number_b = post(client, world["bob"], body(
        "TK3-B0001", contact={"name": "Bob", "phone": "+86 10 1234 5678",
                              "email": "bob@b.example"})).get_json()["number"]
    number_a = post(client, world["alice"], body("TK3-A0001")).get_json()["number"]
    alice = auth(world["alice"])
    foreign = client.get(f"/api/v1/rmas/{number_b}", headers=alice)
    unknown = client.get("/api/v1/rmas/RMA-2026-999999", headers=alice)
    assert foreign.status_code == unknown.status_code == 404
    assert foreign.mimetype == "application/problem+json"
    assert "Bob" not in foreign.get_data(as_text=True)
    listed = client.get("/api/v1/rmas", headers=alice).get_json()
    assert [r["number"] for r in listed["items"]] == [number_a] and listed["total"] == 1
    for query in ("serial=TK3-B0001", f"q={number_b}", "q=TK3-B0001"):
        found = client.get(f"/api/v1/rmas?{query}", headers=alice).get_json()
        assert found["items"] == [] and found["total"] == 0
    staff = client.get("/api/v1/rmas", headers=auth(world["sam"])).get_json()
    assert {r["number"] for r in staff["items"]} == {number_a, number_b}
    assert client.get(f"/api/v1/rmas/{number_b}", headers=auth(world["sam"])).status_code == 200


def test_list_pages_and_filters(client, world):
    numbers = [post(client, world["alice"], body(f"TK3-A{n:04d}")).get_json()["number"]
               for n in range(1, 6)]
    alice = auth(world["alice"])
    page = client.get("/api/v1/rmas?page=2&per_page=2", headers=alice).get_json()
    assert (page["page"], page["per_page"], page["total"], page["pages"]) == (2, 2, 5, 3)
    assert [r["number"] for r in page["items"]] == [numbers[2], numbers[1]]
    summary = page["items"][0]
    assert summary["items"] == [{"line": 1, "serial": "TK3-A0003", "status": "submitted"}]
    assert summary["item_count"] == 1 and summary["customer"]["name"] == "Acme Bank"
    by_serial = client.get("/api/v1/rmas?serial=tk3-a0004", headers=alice).get_json()
    assert [r["number"] for r in by_serial["items"]] == [numbers[3]]
    assert client.get("/api/v1/rmas?status=submitted", headers=alice).get_json()["total"] == 5
    assert client.get("/api/v1/rmas?status=closed", headers=alice).get_json()["total"] == 0
    assert client.get("/api/v1/rmas?per_page=1000", headers=alice).get_json()["per_page"] == 100


@pytest.mark.parametrize("query, field", [
    ("page=0", "page"), ("page=x", "page"), ("per_page=-1", "per_page"),
    ("status=bogus", "status"), ("serial=bad%23", "serial"),
])
def test_bad_list_queries_are_422(client, world, query, field):
    response = client.get(f"/api/v1/rmas?{query}", headers=auth(world["alice"]))
    assert response.status_code == 422
    assert response.get_json()["errors"][0]["field"] == field


def test_list_runs_the_same_queries_for_1_and_20_rmas(app, client, world):
    post(client, world["alice"], body("TK3-A0001"))
    with count_queries(app) as one:
        assert client.get("/api/v1/rmas", headers=auth(world["alice"])).status_code == 200
    for n in range(2, 21):
        assert post(client, world["alice"], body(f"TK3-A{n:04d}")).status_code == 201
    with count_queries(app) as many:
        listed = client.get("/api/v1/rmas", headers=auth(world["alice"])).get_json()
    assert listed["total"] == 20 and len(one) == len(many)


def test_detail_runs_the_same_queries_for_1_and_20_items(app, client, world):
    small = post(client, world["alice"], body("TK3-A0001")).get_json()["number"]
    large = post(client, world["alice"], body(*[f"TK3-A{n:04d}" for n in range(2, 22)]))
    assert large.status_code == 201
    large = large.get_json()["number"]
    counts = []
    for number in (small, large):
        with count_queries(app) as statements:
            assert client.get(f"/api/v1/rmas/{number}",
                              headers=auth(world["alice"])).status_code == 200
        counts.append(len(statements))
    assert counts[0] == counts[1]


def test_api_speaks_english_by_default_and_chinese_on_request(app):
    from rma.views.api import api_language

    for header, expected in [(None, "en"), ("en-US", "en"), ("zh-CN,zh;q=0.9", "zh_CN"),
                             ("zh", "zh_CN"), ("fr", "en")]:
        headers = {"Accept-Language": header} if header else {}
        with app.test_request_context(headers=headers):
            assert api_language() == expected


# -- the label download -----------------------------------------------------------------
def _login(client, email):
    assert client.post("/login", data={"email": email, "password": TEST_PASSWORD}
                       ).status_code == 302


def test_R_R2_label_download_for_the_owner(client, world):
    number = post(client, world["alice"], body("TK3-A0001")).get_json()["number"]
    _login(client, "alice@a.example")
    for size in ("a4", "thermal"):
        response = client.get(f"/rmas/{number}/label.pdf?size={size}")
        assert response.status_code == 200 and response.mimetype == "application/pdf"
        assert response.data.startswith(b"%PDF")
        assert response.headers["Content-Disposition"] == \
            f"attachment; filename={number}-label.pdf"
        assert "no-store" in response.headers["Cache-Control"]
    inline = client.get(f"/rmas/{number}/label.pdf?download=0")
    assert inline.headers["Content-Disposition"].startswith("inline")
    bad = client.get(f"/rmas/{number}/label.pdf?size=a3")
    assert bad.status_code == 400 and bad.mimetype == "text/html"


def test_label_of_another_customer_is_404(client, world):
    number_b = post(client, world["bob"], body(
        "TK3-B0001", contact={"name": "Bob", "phone": "+86 10 1234 5678",
                              "email": "bob@b.example"})).get_json()["number"]
    assert client.get(f"/rmas/{number_b}/label.pdf",
                      headers=auth(world["alice"])).status_code == 404
    _login(client, "alice@a.example")
    assert client.get(f"/rmas/{number_b}/label.pdf").status_code == 404
    assert client.get("/rmas/RMA-2026-999999/label.pdf").status_code == 404


def test_label_with_a_bearer_token_staff_session_and_anonymous(app, client, world, make_user):
    number = post(client, world["alice"], body("TK3-A0001")).get_json()["number"]
    by_token = client.get(f"/rmas/{number}/label.pdf", headers=auth(world["alice"]))
    assert by_token.status_code == 200 and by_token.data.startswith(b"%PDF")
    assert client.get(f"/rmas/{number}/label.pdf", headers=auth(world["sam"])).status_code == 200
    bad = client.get(f"/rmas/{number}/label.pdf", headers=auth("rma_wrong"))
    assert bad.status_code == 401 and bad.headers["WWW-Authenticate"].startswith("Bearer")
    anonymous = client.get(f"/rmas/{number}/label.pdf")
    assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]
    make_user("wendy@vendor.example", "warehouse")
    _login(client, "wendy@vendor.example")
    assert client.get(f"/rmas/{number}/label.pdf").status_code == 200


# -- the description --------------------------------------------------------------------
def test_openapi_describes_the_rma_endpoints(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    paths = spec["paths"]
    assert set(paths["/api/v1/rmas"]) == {"get", "post"}
    assert "get" in paths["/api/v1/rmas/{number}"]
    assert "get" in paths["/rmas/{number}/label.pdf"]
    post_op = paths["/api/v1/rmas"]["post"]
    assert post_op["security"] == [{"bearerAuth": []}]
    assert set(post_op["responses"]) >= {"201", "400", "401", "422"}
    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {**schemes["bearerAuth"], "type": "http", "scheme": "bearer"}
    schemas = spec["components"]["schemas"]
    assert "errors" in schemas["ValidationProblem"]["allOf"][1]["properties"]
    assert set(schemas["Coverage"]["required"]) >= WARRANTY_FIELDS
    assert {"RmaRequest", "RmaCreated", "Rma", "RmaPage"} <= set(schemas)
    # the warranty endpoint stays public
    assert paths["/api/v1/warranty/{serial}"]["get"]["security"] == []
