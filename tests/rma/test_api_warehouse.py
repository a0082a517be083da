"""The staff warehouse API (rma/views/api_warehouse.py): receive, confirm, request-unit,
reject, cancel, override, release, ship, deliver, the replacements with their 72-hour
clocks and the monthly report (R-R3, D-1..D-4, D-6); staff tokens only, problems with a
4xx status for anything a client can send, and two stations shipping the same spare at
the same moment (exactly one wins)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from rma.extensions import db
from rma.models import (
    AuditEvent,
    ItemStatus,
    RmaEvent,
    RmaItem,
    ScanEvent,
    Shipment,
    Unit,
    UnitStatus,
    User,
)
from rma.services import warehouse as wh
from rma.services.audit import Actor
from rma.services.users import create_token
from tests.conftest import count_queries
from tests.rma.test_warehouse import STAFF, build_warehouse_world, to_state

NOW = datetime(2026, 11, 25, 4, 0, tzinfo=UTC)
EN = {"Accept-Language": "en"}


@pytest.fixture
def world(app, make_model, make_customer, make_user):
    world = build_warehouse_world(app, make_model, make_customer, make_user)
    with app.app_context():
        for name, (email, _role) in [*STAFF.items(), ("alice", ("alice@a.example", ""))]:
            person = db.session.scalar(select(User).where(User.email == email))
            world[name] = create_token(Actor.cli("test"), person, "test")
    return world


def auth(token: str) -> dict:
    return {"Authorization": f"Bearer {token}", **EN}


def setup(app, state: str, serial: str = "TK3-A0001", world=None) -> tuple[str, int]:
    with app.test_request_context(headers=EN):
        return to_state(app, state, serial, world=world)


def fetch(app, item_id: int) -> RmaItem:
    with app.app_context():
        found = db.session.get(RmaItem, item_id)
        db.session.expunge(found)
        return found


def count(app, model, *where) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model).where(*where))


def item_path(number: str, action: str, serial: str = "TK3-A0001") -> str:
    return f"/api/v1/rmas/{number}/items/{serial}/{action}"


def is_problem(response, status: int) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["status"] == status and body["title"]
    return body


PATHS = [
    ("POST", "/api/v1/rmas/RMA-2026-000001/receive"),
    *[("POST", item_path("RMA-2026-000001", a)) for a in (
        "confirm", "request-unit", "reject", "cancel", "override", "release", "ship",
        "deliver")],
    ("GET", "/api/v1/replacements"),
    ("GET", "/api/v1/replacements/report"),
]


# -- authentication and roles -----------------------------------------------------------
@pytest.mark.parametrize("method, path", PATHS)
def test_401_without_a_token_and_403_for_a_customers_token(client, world, method, path):
    response = client.open(path, method=method, json={}, headers=EN)
    is_problem(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    bad = client.open(path, method=method, json={},
                      headers={"Authorization": "Bearer rma_nope", **EN})
    is_problem(bad, 401)
    body = is_problem(client.open(path, method=method, json={}, headers=auth(world["alice"])),
                      403)
    assert "staff" in body["detail"]


@pytest.mark.parametrize("path, payload, who", [
    ("receive", {"serial": "TK3-A0001"}, "sam"),
    ("receive", {"serial": "TK3-A0001"}, "fay"),
    ("confirm", {"cause": "quality_defect", "remote": True}, "wendy"),
    ("confirm", {"cause": "quality_defect"}, "fay"),
    ("ship", {"replacement_serial": "TK3-SP0001", "carrier": "SF", "tracking_number": "1"},
     "sam"),
    ("deliver", {"delivered_at": "2026-11-25T11:00:00+08:00", "received_by": "Li"}, "fay"),
    ("override", {"decision": "free", "reason": "x"}, "adam"),
    ("release", {}, "wendy"),
    ("release", {"reason": "on credit"}, "mia"),
    ("request-unit", {}, "wendy"),
    ("reject", {"reason": "x"}, "wendy"),
])
def test_403_for_a_staff_role_that_may_not_act(app, client, world, path, payload, who):
    number, item_id = setup(app, "submitted", world=world)
    url = f"/api/v1/rmas/{number}/receive" if path == "receive" else item_path(number, path)
    audits = count(app, AuditEvent)
    body = is_problem(client.post(url, json=payload, headers=auth(world[who])), 403)
    assert "may not" in body["detail"]
    assert fetch(app, item_id).status == ItemStatus.SUBMITTED
    assert count(app, AuditEvent) == audits and count(app, ScanEvent) == 0


# -- receiving --------------------------------------------------------------------------
def test_receive_once_then_already_received(app, client, world):
    number, item_id = setup(app, "submitted", world=world)
    url = f"/api/v1/rmas/{number.lower()}/receive"
    first = client.post(url, json={"serial": " tk3-a0001"}, headers=auth(world["wendy"]))
    assert first.status_code == 200, first.get_json()
    body = first.get_json()
    assert (body["outcome"], body["rma"], body["serial"], body["line"], body["item_status"]) == (
        "received", number, "TK3-A0001", 1, "received")
    assert body["unit_received_at"] == "2026-11-25T04:00:00+00:00"
    again = client.post(url, json={"serial": "TK3-A0001"}, headers=auth(world["mia"]))
    assert again.status_code == 200
    assert again.get_json()["outcome"] == "already_received"
    assert again.get_json()["message"] == ("TK3-A0001 was already received at 12:00 by "
                                           "wendy@vendor.example. Nothing was changed.")
    assert count(app, AuditEvent, AuditEvent.action == "rma_item.received") == 1


def test_receive_an_unexpected_unit_is_a_recorded_409(app, client, world):
    number, item_id = setup(app, "submitted", world=world)
    response = client.post(f"/api/v1/rmas/{number}/receive", json={"serial": "TK3-B0002"},
                           headers=auth(world["wendy"]))
    body = is_problem(response, 409)
    assert (body["outcome"], body["serial"], body["rma"]) == ("unexpected", "TK3-B0002", number)
    assert "NOT on" in body["detail"]
    assert count(app, RmaEvent, RmaEvent.kind == "unexpected_unit") == 1
    assert fetch(app, item_id).status == ItemStatus.SUBMITTED


@pytest.mark.parametrize("payload, status, field", [
    ({"serial": "ab#12"}, 422, None),  # malformed: recorded as a malformed scan
    ({"serial": ""}, 422, "serial"),
    ({"serial": 42}, 422, "serial"),
    ({}, 422, "serial"),
])
def test_receive_refusals(app, client, world, payload, status, field):
    number, item_id = setup(app, "submitted", world=world)
    body = is_problem(client.post(f"/api/v1/rmas/{number}/receive", json=payload,
                                  headers=auth(world["wendy"])), status)
    if field:
        assert body["errors"][0]["field"] == field
    else:
        assert body["outcome"] == "malformed" and "'ab#12'" in body["detail"]
    assert fetch(app, item_id).status == ItemStatus.SUBMITTED


def test_receive_for_an_unknown_rma_is_404(client, world):
    body = is_problem(client.post("/api/v1/rmas/RMA-2026-999999/receive",
                                  json={"serial": "TK3-A0001"}, headers=auth(world["wendy"])),
                      404)
    assert "RMA-2026-999999" in body["detail"]


@pytest.mark.parametrize("data, status", [(b"{not json", 400), (b"[1, 2]", 422),
                                          (b'"text"', 422)])
def test_bodies_that_are_not_json_objects(app, client, world, data, status):
    number, _item_id = setup(app, "submitted", world=world)
    for url in (f"/api/v1/rmas/{number}/receive", item_path(number, "confirm")):
        is_problem(client.post(url, data=data, content_type="application/json",
                               headers=auth(world["mia"])), status)


# -- confirm (D-1, R-W3..R-W5, D-4) -----------------------------------------------------
def test_confirm_remotely_answers_the_decision_and_due_at(app, client, world):
    number, item_id = setup(app, "submitted", world=world)
    response = client.post(item_path(number, "confirm"),
                           json={"cause": "quality_defect", "notes": "diag ok", "remote": True},
                           headers=auth(world["sam"]))
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert (body["status"], body["decision"], body["decision_rule"], body["cause"]) == (
        "confirmed", "free", "R-W3", "quality_defect")
    assert body["due_at"] == "2026-11-28T04:00:00+00:00"
    assert (body["clock_state"], body["hours_left"], body["remote_confirmation"]) == (
        "on_track", 72.0, True)
    assert "R-W3" in body["decision_reason"] and body["cause_notes"] == "diag ok"


def test_confirm_on_inspection_and_the_paid_decision(app, client, world):
    number, item_id = setup(app, "received", "TK3-AOLD", world=world)
    response = client.post(item_path(number, "confirm", "TK3-AOLD"),
                           json={"cause": "quality_defect"}, headers=auth(world["wendy"]))
    body = response.get_json()
    assert (body["status"], body["decision"], body["decision_rule"], body["due_at"]) == (
        "waiting_payment", "paid", "R-W5", None)


@pytest.mark.parametrize("payload, status, field", [
    ({"cause": "broken", "remote": True}, 422, "cause"),
    ({"remote": True}, 422, "cause"),
    ({"cause": "quality_defect", "remote": "yes"}, 422, "remote"),
    ({"cause": "no_fault_found", "remote": True}, 422, "cause"),
    ({"cause": "quality_defect", "remote": True, "notes": 5}, 422, "notes"),
    ({"cause": "quality_defect", "remote": True, "notes": "x" * 2001}, 422, "notes"),
])
def test_confirm_validation(app, client, world, payload, status, field):
    number, item_id = setup(app, "submitted", world=world)
    body = is_problem(client.post(item_path(number, "confirm"), json=payload,
                                  headers=auth(world["mia"])), status)
    assert body["errors"][0]["field"] == field
    assert fetch(app, item_id).status == ItemStatus.SUBMITTED


def test_confirm_on_inspection_before_the_unit_is_back_is_409_naming_the_state(app, client,
                                                                               world):
    number, _item_id = setup(app, "awaiting_unit", world=world)
    body = is_problem(client.post(item_path(number, "confirm"), json={"cause": "misuse_drop"},
                                  headers=auth(world["wendy"])), 409)
    assert (body["state"], body["action"]) == ("awaiting_unit", "confirm")
    assert "while the item is waiting for the unit" in body["detail"]


@pytest.mark.parametrize("number, serial", [("RMA-2026-000001", "TK3-A0099"),
                                            ("RMA-2026-000077", "TK3-A0001"),
                                            ("RMA-2026-000001", "bad#serial")])
def test_unknown_item_is_404(app, client, world, number, serial):
    setup(app, "submitted", world=world)
    is_problem(client.post(item_path(number, "confirm", serial),
                           json={"cause": "quality_defect", "remote": True},
                           headers=auth(world["sam"])), 404)


# -- triage: request-unit, reject, cancel -----------------------------------------------
def test_request_unit_reject_and_cancel(app, client, world):
    number, ids = None, []
    for serial in ("TK3-A0001", "TK3-A0002", "TK3-A0003"):
        number, item_id = setup(app, "submitted", serial, world=world)
        ids.append((number, serial))
    (n1, s1), (n2, s2), (n3, s3) = ids
    ok = client.post(item_path(n1, "request-unit", s1), headers=auth(world["sam"]))
    assert ok.status_code == 200 and ok.get_json()["status"] == "awaiting_unit"
    again = client.post(item_path(n1, "request-unit", s1), headers=auth(world["sam"]))
    assert is_problem(again, 409)["state"] == "awaiting_unit"
    assert is_problem(client.post(item_path(n2, "reject", s2), json={},
                                  headers=auth(world["sam"])), 422)["errors"][0]["field"] == \
        "reason"
    rejected = client.post(item_path(n2, "reject", s2), json={"reason": "Not our product"},
                           headers=auth(world["sam"])).get_json()
    assert (rejected["status"], rejected["rejected_reason"]) == ("rejected", "Not our product")
    cancelled = client.post(item_path(n3, "cancel", s3), json={"reason": "Withdrawn"},
                            headers=auth(world["mia"])).get_json()
    assert cancelled["status"] == "cancelled"


# -- override (D-6) and release (D-3) ---------------------------------------------------
def test_D_6_override_by_a_manager(app, client, world):
    number, item_id = setup(app, "waiting_payment", world=world)
    body = is_problem(client.post(item_path(number, "override"), json={"decision": "free"},
                                  headers=auth(world["mia"])), 422)
    assert body["errors"][0]["field"] == "reason"
    response = client.post(item_path(number, "override"),
                           json={"decision": "free", "reason": "Goodwill"},
                           headers=auth(world["mia"]))
    body = response.get_json()
    assert (body["status"], body["decision"], body["computed_decision"]) == (
        "confirmed", "free", "paid")
    assert (body["override_reason"], body["overridden"]) == ("Goodwill", True)
    assert body["due_at"] == "2026-11-28T04:00:00+00:00"
    again = client.post(item_path(number, "override"),
                        json={"decision": "free", "reason": "Goodwill"},
                        headers=auth(world["mia"]))
    assert "already free" in is_problem(again, 409)["detail"]


def test_D_3_release_on_credit_by_finance_starts_the_clock(app, client, world):
    number, item_id = setup(app, "waiting_payment", world=world)
    shipped = client.post(item_path(number, "ship"), json={
        "replacement_serial": "TK3-SP0001", "carrier": "SF", "tracking_number": "1"},
        headers=auth(world["wendy"]))
    body = is_problem(shipped, 409)
    assert body["state"] == "waiting_payment" and "(D-3)" in body["detail"]
    # A reason is required; a customer without credit terms waits for payment (409).
    no_reason = client.post(item_path(number, "release"), json={},
                            headers=auth(world["fay"]))
    assert is_problem(no_reason, 422)["errors"][0]["field"] == "reason"
    refused = client.post(item_path(number, "release"), json={"reason": "trusted"},
                          headers=auth(world["fay"]))
    assert is_problem(refused, 409)["detail"] == (
        "Acme Bank has no credit terms: the item ships once its invoice is paid (D-3).")
    assert fetch(app, item_id).status == ItemStatus.WAITING_PAYMENT
    with app.app_context():
        db.session.get(RmaItem, item_id).rma.customer.credit_terms = True
        db.session.commit()
    app.config["FIXED_NOW"] = "2026-11-26T04:00:00+00:00"
    released = client.post(item_path(number, "release"), json={"reason": "credit terms"},
                           headers=auth(world["fay"])).get_json()
    assert (released["status"], released["released_at"], released["due_at"]) == (
        "released", "2026-11-26T04:00:00+00:00", "2026-11-29T04:00:00+00:00")
    assert released["release_note"] == "credit terms"


# -- ship and deliver -------------------------------------------------------------------
def test_ship_then_deliver_within_target(app, client, world):
    number, item_id = setup(app, "confirmed", world=world)
    response = client.post(item_path(number, "ship"), json={
        "replacement_serial": "tk3-sp0002", "carrier": "SF Express",
        "tracking_number": "SF100"}, headers=auth(world["wendy"]))
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["shipment"] == {
        "kind": "replacement", "serial": "TK3-SP0002", "product_model": "TK3",
        "carrier": "SF Express", "tracking_number": "SF100",
        "shipped_at": "2026-11-25T04:00:00+00:00", "delivered_at": None, "received_by": None}
    assert body["item"]["status"] == "shipped"
    assert body["item"]["unit_due_back_on"] == "2026-12-09"  # D-2: advance replacement
    app.config["FIXED_NOW"] = "2026-11-27T04:00:00+00:00"
    delivered = client.post(item_path(number, "deliver"), json={
        "delivered_at": "2026-11-27T05:30:00+08:00", "received_by": "Li Lei"},
        headers=auth(world["sam"]))
    assert delivered.status_code == 200, delivered.get_json()
    body = delivered.get_json()
    assert (body["within_target"], body["hours"], body["closed"]) == (True, 41.5, False)
    assert body["item"]["clock_state"] == "met"
    assert body["item"]["shipments"][0]["received_by"] == "Li Lei"


def test_deliver_late_answers_false(app, client, world):
    number, _item_id = setup(app, "shipped", world=world)
    app.config["FIXED_NOW"] = "2026-12-01T04:00:00+00:00"
    body = client.post(item_path(number, "deliver"), json={
        "delivered_at": "2026-11-28T06:00:00Z", "received_by": "Li",
        "late_reason": "Address was wrong"}, headers=auth(world["wendy"])).get_json()
    assert (body["within_target"], body["hours"]) == (False, 74.0)
    assert body["item"]["breach_reason"] == "Address was wrong"


@pytest.mark.parametrize("payload, status, field", [
    ({"delivered_at": "2026-11-25T11:00:00", "received_by": "Li"}, 422, "delivered_at"),
    ({"delivered_at": "yesterday", "received_by": "Li"}, 422, "delivered_at"),
    ({"delivered_at": 1700000000, "received_by": "Li"}, 422, "delivered_at"),
    ({"received_by": "Li"}, 422, "delivered_at"),
    ({"delivered_at": "2026-11-25T13:00:00+08:00", "received_by": "Li"}, 422,
     "delivered_at"),  # in the future
    ({"delivered_at": "2026-11-25T12:00:00+08:00", "received_by": ""}, 422, "received_by"),
    ({"delivered_at": "2026-11-25T12:00:00+08:00", "received_by": ["Li"]}, 422,
     "received_by"),
])
def test_deliver_validation(app, client, world, payload, status, field):
    number, item_id = setup(app, "shipped", world=world)
    body = is_problem(client.post(item_path(number, "deliver"), json=payload,
                                  headers=auth(world["wendy"])), status)
    assert body["errors"][0]["field"] == field
    assert fetch(app, item_id).status == ItemStatus.SHIPPED


def test_deliver_before_shipping_is_409(app, client, world):
    number, _item_id = setup(app, "confirmed", world=world)
    body = is_problem(client.post(item_path(number, "deliver"), json={
        "delivered_at": "2026-11-25T12:00:00+08:00", "received_by": "Li"},
        headers=auth(world["wendy"])), 409)
    assert body["state"] == "confirmed"


@pytest.mark.parametrize("payload, status, field", [
    ({"replacement_serial": "TK9-SP0001", "carrier": "SF", "tracking_number": "1"}, 422,
     "replacement_serial"),
    ({"replacement_serial": "TK3-NOPE", "carrier": "SF", "tracking_number": "1"}, 422,
     "replacement_serial"),
    ({"replacement_serial": ["TK3-SP0001"], "carrier": "SF", "tracking_number": "1"}, 422,
     "replacement_serial"),
    ({"replacement_serial": "TK3-SP0001", "tracking_number": "1"}, 422, "carrier"),
    ({"replacement_serial": "TK3-SP0001", "carrier": "SF", "tracking_number": {}}, 422,
     "tracking_number"),
])
def test_ship_validation(app, client, world, payload, status, field):
    number, item_id = setup(app, "confirmed", world=world)
    body = is_problem(client.post(item_path(number, "ship"), json=payload,
                                  headers=auth(world["wendy"])), status)
    assert body["errors"][0]["field"] == field
    assert count(app, Shipment) == 0 and fetch(app, item_id).status == ItemStatus.CONFIRMED


def test_two_stations_ship_the_same_spare_exactly_one_wins(app, client, world, monkeypatch):
    """Real concurrent requests, each thread with its own test client and app context:
    both read the spare as in stock (a barrier holds them there), both try to claim it;
    the conditional UPDATE lets exactly one through, the other gets 409 naming the RMA the
    spare went to. 20 rounds."""
    rounds = 20
    with app.app_context():
        db.session.add_all(
            [Unit(serial=f"TK3-CS{r:04d}", model_id=world["tk3"], status=UnitStatus.IN_STOCK)
             for r in range(rounds)]
            + [Unit(serial=f"TK3-CU{n:04d}", model_id=world["tk3"], customer_id=world["a"],
                    shipped_on=NOW.date() - timedelta(days=100)) for n in range(2 * rounds)])
        db.session.commit()
    pairs = [[setup(app, "confirmed", f"TK3-CU{2 * r + k:04d}", world=world)
              + (f"TK3-CU{2 * r + k:04d}",) for k in (0, 1)] for r in range(rounds)]
    postgres = app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql")

    barrier = threading.Barrier(2, timeout=10)
    original = wh._allowed_models

    def both_have_read_the_spare(model):
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            pass
        return original(model)

    lost = []

    class CountedSpareLost(wh._SpareLost):
        def __init__(self, unit_id, serial):
            super().__init__(unit_id, serial)
            lost.append(serial)

    monkeypatch.setattr(wh, "_allowed_models", both_have_read_the_spare)
    monkeypatch.setattr(wh, "_SpareLost", CountedSpareLost)
    for r, pair in enumerate(pairs):
        barrier.reset()
        spare = f"TK3-CS{r:04d}"
        answers: dict[str, tuple[int, dict]] = {}

        def station(number, serial, spare=spare, answers=answers):
            response = app.test_client().post(
                item_path(number, "ship", serial),
                json={"replacement_serial": spare, "carrier": "SF", "tracking_number": serial},
                headers=auth(world["wendy"]))
            answers[number] = (response.status_code, response.get_json())

        threads = [threading.Thread(target=station, args=(number, serial))
                   for number, _item_id, serial in pair]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        statuses = sorted(status for status, _body in answers.values())
        assert statuses == [200, 409], (r, answers)
        winner = next(n for n, (status, _b) in answers.items() if status == 200)
        loser = next(body for status, body in answers.values() if status == 409)
        expected = {f"{spare} was just shipped for {winner}. Scan another spare."}
        if not postgres:  # SQLite may refuse the second writer outright instead
            expected.add("Another station was saving at the same moment: try again.")
        assert loser["detail"] in expected, loser
        with app.app_context():
            unit = db.session.scalar(select(Unit).where(Unit.serial == spare))
            shipments = db.session.scalars(select(Shipment).where(
                Shipment.unit_id == unit.id)).all()
            assert len(shipments) == 1 and unit.status == UnitStatus.IN_SERVICE
            winning_item = db.session.get(RmaItem, shipments[0].item_id)
            assert unit.replaces_id == winning_item.unit_id
            losing = [i for number, i, _s in pair if number != winner]
            assert db.session.get(RmaItem, losing[0]).status == ItemStatus.CONFIRMED
    # Each round was a real race: the loser had read the spare as in stock, and only the
    # conditional UPDATE stopped it.
    if postgres:
        assert len(lost) == rounds


# -- the replacements and the report ----------------------------------------------------
def test_replacements_list_with_state_filter_and_pages(app, client, world):
    started = [NOW - timedelta(hours=5), NOW + timedelta(hours=10), NOW + timedelta(hours=40)]
    for n, moment in enumerate(started):
        app.config["FIXED_NOW"] = moment.isoformat()
        setup(app, "confirmed", f"TK3-A{n + 1:04d}", world=world)
    app.config["FIXED_NOW"] = (NOW + timedelta(hours=72)).isoformat()
    with count_queries(app) as statements:
        response = client.get("/api/v1/replacements", headers=auth(world["sam"]))
    body = response.get_json()
    assert response.status_code == 200
    assert [(r["serial"], r["clock_state"], r["hours_left"]) for r in body["items"]] == [
        ("TK3-A0001", "breached", -5.0), ("TK3-A0002", "at_risk", 10.0),
        ("TK3-A0003", "on_track", 40.0)]
    assert body["items"][0]["customer"]["name"] == "Acme Bank"
    assert (body["total"], body["page"], body["pages"]) == (3, 1, 1)
    assert len(statements) <= 5, statements  # token, count, rows (no query per row)
    for state, serials in [("breached", ["TK3-A0001"]), ("at_risk", ["TK3-A0002"]),
                           ("on_track", ["TK3-A0003"])]:
        got = client.get(f"/api/v1/replacements?state={state}", headers=auth(world["wendy"]))
        assert [r["serial"] for r in got.get_json()["items"]] == serials
    paged = client.get("/api/v1/replacements?per_page=2&page=2",
                       headers=auth(world["fay"])).get_json()
    assert [r["serial"] for r in paged["items"]] == ["TK3-A0003"] and paged["pages"] == 2
    by_customer = client.get(f"/api/v1/replacements?customer={world['contract_b']}",
                             headers=auth(world["sam"])).get_json()
    assert by_customer["items"] == []


@pytest.mark.parametrize("query, field", [("state=late", "state"), ("status=closed",
                                                                    "item_status"),
                                          ("customer=SC-NOPE", "customer"),
                                          ("page=0", "page"), ("per_page=x", "per_page")])
def test_replacements_query_validation(client, world, query, field):
    body = is_problem(client.get(f"/api/v1/replacements?{query}", headers=auth(world["sam"])),
                      422)
    assert body["errors"][0]["field"] == field


def test_monthly_report(app, client, world):
    number, item_id = setup(app, "shipped", world=world)
    app.config["FIXED_NOW"] = "2026-12-01T04:00:00+00:00"
    client.post(item_path(number, "deliver"), json={
        "delivered_at": "2026-11-29T04:00:00Z", "received_by": "Li", "late_reason": "Snow"},
        headers=auth(world["wendy"]))
    body = client.get("/api/v1/replacements/report?months=3",
                      headers=auth(world["mia"])).get_json()
    assert body["months"] == [{"month": "2026-11", "started": 1, "delivered": 1,
                               "within_target": 0, "share_within": 0.0,
                               "median_hours": 96.0, "p90_hours": 96.0, "breached": 1}]
    assert body["breaches"] == [{"rma": number, "serial": "TK3-A0001", "customer": "Acme Bank",
                                 "due_at": "2026-11-28T04:00:00+00:00", "delivered": True,
                                 "hours_late": 24.0, "reason": "Snow"}]
    is_problem(client.get("/api/v1/replacements/report?months=500",
                          headers=auth(world["mia"])), 422)


# -- the RMA as the customer reads it ---------------------------------------------------
def test_rma_detail_shows_shipments_and_the_clock_without_staff_notes(app, client, world):
    number, item_id = setup(app, "received", world=world)
    with app.test_request_context(headers=EN):
        wh.inspect(Actor(user=db.session.scalar(select(User).where(
            User.email == "wendy@vendor.example"))), item_id, "quality_defect", "INTERNAL")
    client.post(item_path(number, "ship"), json={
        "replacement_serial": "TK3-SP0001", "carrier": "SF", "tracking_number": "SF1"},
        headers=auth(world["wendy"]))
    body = client.get(f"/api/v1/rmas/{number}", headers=auth(world["alice"])).get_json()
    first = body["items"][0]
    assert (first["status"], first["decision"], first["decision_rule"]) == (
        "shipped", "free", "R-W3")
    assert (first["clock_state"], first["due_at"], first["hours_left"]) == (
        "on_track", "2026-11-28T04:00:00+00:00", 72.0)
    assert first["shipments"] == [{
        "kind": "replacement", "serial": "TK3-SP0001", "product_model": "TK3", "carrier": "SF",
        "tracking_number": "SF1", "shipped_at": "2026-11-25T04:00:00+00:00",
        "delivered_at": None, "received_by": None}]
    assert "INTERNAL" not in str(body) and "cause_notes" not in first


def test_rma_detail_has_no_query_per_shipment(app, client, world):
    def shipped_rma(serials):
        with app.test_request_context(headers=EN):
            from tests.rma.test_warehouse import actor, open_items

            number, ids = open_items(*serials, world=world)
            for item_id in ids:
                wh.confirm_remote(actor("sam"), item_id, "quality_defect")
                spare = db.session.scalar(select(Unit.serial).where(
                    Unit.status == UnitStatus.IN_STOCK, Unit.serial.like("TK3-SP%")).limit(1))
                wh.ship(actor("wendy"), item_id, spare, "SF", "1")
            return number

    one = shipped_rma(["TK3-A0010"])
    four = shipped_rma(["TK3-A0011", "TK3-A0012", "TK3-A0013", "TK3-A0014"])
    client.get(f"/api/v1/rmas/{one}", headers=auth(world["sam"]))  # notes the token's use
    sizes = []
    for number in (one, four):
        with count_queries(app) as statements:
            assert client.get(f"/api/v1/rmas/{number}",
                              headers=auth(world["sam"])).status_code == 200
        sizes.append(len(statements))
    assert sizes[0] == sizes[1], sizes


# -- never a 500 ------------------------------------------------------------------------
@pytest.mark.parametrize("payload", [
    {"serial": None, "cause": None, "remote": None, "reason": None, "decision": None,
     "replacement_serial": None, "carrier": None, "tracking_number": None,
     "delivered_at": None, "received_by": None, "note": None, "notes": None},
    {"serial": [], "cause": {}, "remote": 1, "reason": 3, "decision": [], "note": [],
     "notes": {}, "replacement_serial": 7, "delivered_at": [], "received_by": 5},
    {"serial": "x" * 10000, "cause": "x" * 10000, "reason": "x" * 10000,
     "decision": "x" * 10000, "carrier": "x" * 10000, "delivered_at": "x" * 10000},
])
@pytest.mark.parametrize("state", ["submitted", "confirmed", "shipped"])
def test_nothing_a_client_sends_gives_a_500(app, client, world, payload, state):
    number, _item_id = setup(app, state, world=world)
    for method, path in PATHS:
        path = path.replace("RMA-2026-000001", number)
        for who in ("mia", "adam"):
            response = client.open(path, method=method, json=payload, headers=auth(world[who]))
            assert 400 <= response.status_code < 500 or response.status_code == 200, (
                path, response.get_json())


def test_openapi_describes_the_warehouse_endpoints(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    paths = spec["paths"]
    for action in ("confirm", "request-unit", "reject", "cancel", "override", "release",
                   "ship", "deliver"):
        operation = paths[f"/api/v1/rmas/{{number}}/items/{{serial}}/{action}"]["post"]
        assert operation["security"] == [{"bearerAuth": []}]
        assert {"401", "403", "404"} <= set(operation["responses"])
    assert "post" in paths["/api/v1/rmas/{number}/receive"]
    assert "get" in paths["/api/v1/replacements"]
    assert "get" in paths["/api/v1/replacements/report"]
    schemas = spec["components"]["schemas"]
    assert {"WarehouseItem", "Shipment", "ScanAnswer", "ReplacementPage"} <= set(schemas)
