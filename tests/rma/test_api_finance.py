"""The finance API (rma/views/api_finance.py, issue 5): invoices listed and read with
customer scoping, payments recorded by finance only (D-3), the customer's answer to a
quote (accept issues the invoice; decline sends the unit back or scraps it), RFC 9457
problems for every refusal and 404 for another customer's documents. The test clock
says 2026-11-25 12:00 in Shanghai."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import func, select

from rma.extensions import db
from rma.models import (
    Invoice,
    ItemStatus,
    Payment,
    Quote,
    QuoteStatus,
    RmaItem,
    Unit,
    UnitStatus,
    User,
)
from rma.services.audit import Actor
from rma.services.users import create_token
from tests.rma.finance_helpers import (
    ONE_ITEM_GROSS,
    build_finance_world,
    open_quote_for,
    paid_item,
)
from tests.rma.test_warehouse import STAFF

EN = {"Accept-Language": "en"}
PEOPLE = {**{name: email for name, (email, _role) in STAFF.items()},
          "alice": "alice@a.example", "bob": "bob@b.example"}


@pytest.fixture
def world(app, make_model, make_customer, make_user):
    world = build_finance_world(app, make_model, make_customer, make_user)
    with app.app_context():
        for name, email in PEOPLE.items():
            person = db.session.scalar(select(User).where(User.email == email))
            world[name] = create_token(Actor.cli("test"), person, "test")
    return world


def auth(world, who: str) -> dict:
    return {"Authorization": f"Bearer {world[who]}", **EN}


def is_problem(response, status: int) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["status"] == status and body["title"]
    return body


def quote_of(app, rma_number: str) -> str:
    with app.app_context():
        quote = open_quote_for(rma_number)
        assert quote is not None, "no open quote: is quotes.sync_rma_quote hooked in?"
        return quote.number


def count(app, model, *where) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model).where(*where))


def invoiced(app, client, world, serial: str = "TK3-A0001") -> tuple[str, str, int]:
    """A paid item whose quote alice accepted through the API: (rma, invoice, item id)."""
    number, item_id = paid_item(app, world, serial)
    response = client.post(f"/api/v1/quotes/{quote_of(app, number)}/accept",
                           headers=auth(world, "alice"))
    assert response.status_code == 201, response.get_json()
    return number, response.get_json()["invoice"]["number"], item_id


def pay(client, world, invoice: str, amount, who: str = "fay", **extra):
    body = {"amount": amount, "received_on": "2026-11-25", "method": "bank_transfer",
            "reference": "BOC-0001", **extra}
    return client.post(f"/api/v1/invoices/{invoice}/payments", json=body,
                       headers=auth(world, who))


# -- authentication ---------------------------------------------------------------------
@pytest.mark.parametrize("method, path", [
    ("GET", "/api/v1/invoices"),
    ("GET", "/api/v1/invoices/INV-2026-000001"),
    ("POST", "/api/v1/invoices/INV-2026-000001/payments"),
    ("GET", "/api/v1/quotes/Q-2026-000001"),
    ("POST", "/api/v1/quotes/Q-2026-000001/accept"),
    ("POST", "/api/v1/quotes/Q-2026-000001/decline"),
])
def test_401_without_a_token(client, world, method, path):
    response = client.open(path, method=method, json={}, headers=EN)
    is_problem(response, 401)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


# -- quotes -----------------------------------------------------------------------------
def test_R_W4_the_customer_reads_its_quote_with_VAT_per_line(app, client, world):
    number, _item = paid_item(app, world)
    quote = quote_of(app, number)
    response = client.get(f"/api/v1/quotes/{quote}", headers=auth(world, "alice"))
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["number"] == quote and body["status"] == "open"
    assert body["valid_until"] == "2026-12-25"
    assert body["totals"]["gross"] == str(ONE_ITEM_GROSS)
    assert [(line["net"], line["vat"], line["gross"]) for line in body["lines"]] == [
        ("300.00", "39.00", "339.00"), ("20.00", "2.60", "22.60")]


def test_another_customers_quote_is_404_like_an_unknown_one(app, client, world):
    number, _item = paid_item(app, world)
    quote = quote_of(app, number)
    for path in (f"/api/v1/quotes/{quote}", f"/api/v1/quotes/{quote}/accept",
                 f"/api/v1/quotes/{quote}/decline"):
        method = "GET" if path.endswith(quote) else "POST"
        theirs = is_problem(client.open(path, method=method, json={},
                                        headers=auth(world, "bob")), 404)
        unknown = is_problem(client.open(path.replace(quote, "Q-2026-999999"), method=method,
                                         json={}, headers=auth(world, "bob")), 404)
        assert theirs["title"] == unknown["title"]
    assert count(app, Invoice) == 0
    with app.app_context():
        assert open_quote_for(number).status == QuoteStatus.OPEN


def test_D_3_accepting_through_the_api_issues_the_invoice(app, client, world):
    number, item_id = paid_item(app, world)
    quote = quote_of(app, number)
    response = client.post(f"/api/v1/quotes/{quote}/accept", json={"note": "PO 4711"},
                           headers=auth(world, "alice"))
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    invoice = body["invoice"]
    assert invoice["number"] == "INV-2026-000001"
    assert response.headers["Location"].endswith("/api/v1/invoices/INV-2026-000001")
    assert body["quote"]["status"] == "accepted"
    assert invoice["status"] == "unpaid" and invoice["outstanding"] == str(ONE_ITEM_GROSS)
    with app.app_context():
        answered = db.session.scalar(select(Quote).where(Quote.number == quote))
        assert answered.answered_via == "api" and answered.answer_note == "PO 4711"
        assert db.session.get(RmaItem, item_id).status == ItemStatus.WAITING_PAYMENT
    again = is_problem(client.post(f"/api/v1/quotes/{quote}/accept",
                                   headers=auth(world, "alice")), 409)
    assert "accepted" in again["detail"]
    assert count(app, Invoice) == 1


@pytest.mark.parametrize("who", ["fay", "mia", "adam", "wendy"])
def test_staff_tokens_do_not_answer_quotes(app, client, world, who):
    number, _item = paid_item(app, world)
    quote = quote_of(app, number)
    for action in ("accept", "decline"):
        is_problem(client.post(f"/api/v1/quotes/{quote}/{action}", json={},
                               headers=auth(world, who)), 403)
    assert count(app, Invoice) == 0


@pytest.mark.parametrize("disposition, status, unit_status, decision", [
    ("return", ItemStatus.CONFIRMED, UnitStatus.RETURNED, "return_unit"),
    ("scrap", ItemStatus.CLOSED, UnitStatus.SCRAPPED, "paid"),
])
def test_declining_sends_the_unit_back_or_scraps_it(app, client, world, disposition, status,
                                                     unit_status, decision):
    number, item_id = paid_item(app, world)
    quote = quote_of(app, number)
    response = client.post(f"/api/v1/quotes/{quote}/decline",
                           json={"disposition": disposition, "note": "too dear"},
                           headers=auth(world, "alice"))
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["status"] == "declined"
    with app.app_context():
        item = db.session.get(RmaItem, item_id)
        assert item.status == status and item.decision == decision
        unit = db.session.scalar(select(Unit).where(Unit.serial == "TK3-A0001"))
        assert unit.status == unit_status
        declined = db.session.scalar(select(Quote).where(Quote.number == quote))
        assert (declined.decline_disposition, declined.answered_via) == (disposition, "api")
    assert count(app, Invoice) == 0


def test_decline_with_an_unknown_disposition_is_422(app, client, world):
    number, _item = paid_item(app, world)
    quote = quote_of(app, number)
    body = is_problem(client.post(f"/api/v1/quotes/{quote}/decline",
                                  json={"disposition": "keep"}, headers=auth(world, "alice")),
                      422)
    assert body["errors"][0]["field"] == "disposition"
    with app.app_context():
        assert open_quote_for(number) is not None


def test_an_expired_quote_cannot_be_accepted(app, client, world):
    number, _item = paid_item(app, world)
    quote = quote_of(app, number)
    app.config["FIXED_NOW"] = "2026-12-26T04:00:00+00:00"  # valid until 2026-12-25
    body = is_problem(client.post(f"/api/v1/quotes/{quote}/accept",
                                  headers=auth(world, "alice")), 409)
    assert "expired" in body["detail"]
    assert count(app, Invoice) == 0


def test_a_body_that_is_not_json_is_400(app, client, world):
    number, _item = paid_item(app, world)
    quote = quote_of(app, number)
    response = client.post(f"/api/v1/quotes/{quote}/decline", data="{nope",
                           headers={**auth(world, "alice"), "Content-Type": "application/json"})
    is_problem(response, 400)


# -- invoices ---------------------------------------------------------------------------
def test_invoice_list_is_scoped_to_the_token(app, client, world):
    invoiced(app, client, world, "TK3-A0001")
    invoiced(app, client, world, "TK3-A0002")
    mine = client.get("/api/v1/invoices", headers=auth(world, "alice")).get_json()
    assert [i["number"] for i in mine["items"]] == ["INV-2026-000002", "INV-2026-000001"]
    assert (mine["total"], mine["page"], mine["pages"]) == (2, 1, 1)
    assert client.get("/api/v1/invoices", headers=auth(world, "bob")).get_json()["total"] == 0
    for who in ("fay", "mia", "adam"):
        assert client.get("/api/v1/invoices", headers=auth(world, who)).get_json()["total"] == 2
    for who in ("wendy", "sam"):
        is_problem(client.get("/api/v1/invoices", headers=auth(world, who)), 403)


def test_invoice_list_filters_and_pages(app, client, world):
    _rma, first, _item = invoiced(app, client, world, "TK3-A0001")
    invoiced(app, client, world, "TK3-A0002")
    assert pay(client, world, first, "100.00").status_code == 201
    fay = auth(world, "fay")
    partly = client.get("/api/v1/invoices?status=partially_paid", headers=fay).get_json()
    assert [i["number"] for i in partly["items"]] == [first]
    by_b = client.get(f"/api/v1/invoices?customer={world['contract_b']}", headers=fay)
    assert by_b.get_json()["total"] == 0
    by_a = client.get(f"/api/v1/invoices?customer={world['contract_a']}&per_page=1&page=2",
                      headers=fay).get_json()
    assert (by_a["total"], by_a["pages"], [i["number"] for i in by_a["items"]]) == (
        2, 2, [first])
    assert is_problem(client.get("/api/v1/invoices?status=lost", headers=fay),
                      422)["errors"][0]["field"] == "status"
    assert is_problem(client.get("/api/v1/invoices?per_page=0", headers=fay),
                      422)["errors"][0]["field"] == "per_page"
    assert is_problem(client.get("/api/v1/invoices?customer=NOPE", headers=fay),
                      422)["errors"][0]["field"] == "customer"
    # a customer's token names no other contract
    is_problem(client.get(f"/api/v1/invoices?customer={world['contract_b']}",
                          headers=auth(world, "alice")), 422)


def test_another_customers_invoice_is_404(app, client, world):
    _rma, invoice, _item = invoiced(app, client, world)
    assert client.get(f"/api/v1/invoices/{invoice}", headers=auth(world, "alice")
                      ).status_code == 200
    theirs = is_problem(client.get(f"/api/v1/invoices/{invoice}", headers=auth(world, "bob")),
                        404)
    unknown = is_problem(client.get("/api/v1/invoices/INV-2026-999999",
                                    headers=auth(world, "bob")), 404)
    assert theirs["title"] == unknown["title"]


# -- payments ---------------------------------------------------------------------------
@pytest.mark.parametrize("who", ["alice", "bob", "wendy", "sam", "mia", "adam"])
def test_only_finance_records_payments(app, client, world, who):
    _rma, invoice, _item = invoiced(app, client, world)
    body = is_problem(pay(client, world, invoice, "100.00", who=who), 403)
    assert "finance" in body["detail"]
    assert count(app, Payment) == 0


def test_D_3_two_partial_payments_settle_the_invoice_and_release_the_item(app, client, world):
    _rma, invoice, item_id = invoiced(app, client, world)
    first = pay(client, world, invoice, 200.5)  # a JSON number, read exactly
    assert first.status_code == 201, first.get_json()
    assert first.headers["Location"].endswith(f"/api/v1/invoices/{invoice}")
    body = first.get_json()
    assert body["payment"]["amount"] == "200.50"
    assert body["payment"]["method"] == "bank_transfer"
    assert body["invoice"]["status"] == "partially_paid"
    assert body["invoice"]["outstanding"] == "161.10"
    second = pay(client, world, invoice, "161.10", method="cash", reference="")
    assert second.status_code == 201, second.get_json()
    settled = second.get_json()["invoice"]
    assert (settled["status"], settled["outstanding"], settled["paid_total"]) == (
        "paid", "0.00", str(ONE_ITEM_GROSS))
    assert len(settled["payments"]) == 2
    with app.app_context():
        item = db.session.get(RmaItem, item_id)
        assert item.status == ItemStatus.RELEASED
        assert item.clock_started_at is not None
        amounts = db.session.scalars(select(Payment.amount).order_by(Payment.id)).all()
        assert amounts == [Decimal("200.50"), Decimal("161.10")]


def test_an_overpayment_is_a_422_problem_naming_the_amount(app, client, world):
    _rma, invoice, _item = invoiced(app, client, world)
    body = is_problem(pay(client, world, invoice, "600.00"), 422)
    assert body["detail"] == (f"The payment of 600.00 CNY is more than the 361.60 CNY still "
                              f"due on {invoice}; nothing was recorded.")
    assert [e["field"] for e in body["errors"]] == ["amount"]
    assert count(app, Payment) == 0


@pytest.mark.parametrize("amount", [100.005, "100.005", "-5", 0, "abc", True, None])
def test_an_amount_that_is_not_money_is_refused(app, client, world, amount):
    _rma, invoice, _item = invoiced(app, client, world)
    body = is_problem(pay(client, world, invoice, amount), 422)
    assert body["errors"][0]["field"] == "amount"
    assert count(app, Payment) == 0


@pytest.mark.parametrize("extra, field", [
    ({"received_on": "2026-11-26"}, "received_on"),  # in the future (China date)
    ({"received_on": "yesterday"}, "received_on"),
    ({"method": "barter"}, "method"),
])
def test_a_payment_with_a_bad_field_is_refused(app, client, world, extra, field):
    _rma, invoice, _item = invoiced(app, client, world)
    body = is_problem(pay(client, world, invoice, "10.00", **extra), 422)
    assert body["errors"][0]["field"] == field
    assert count(app, Payment) == 0


def test_a_payment_on_an_unknown_invoice_is_404_and_on_a_paid_one_409(app, client, world):
    is_problem(pay(client, world, "INV-2026-999999", "1.00"), 404)
    _rma, invoice, _item = invoiced(app, client, world)
    assert pay(client, world, invoice, str(ONE_ITEM_GROSS)).status_code == 201
    is_problem(pay(client, world, invoice, "1.00"), 409)


# -- the description --------------------------------------------------------------------
def test_openapi_describes_the_finance_endpoints(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    paths = spec["paths"]
    assert "get" in paths["/api/v1/invoices"]
    assert "get" in paths["/api/v1/invoices/{number}"]
    assert "get" in paths["/api/v1/quotes/{number}"]
    payments = paths["/api/v1/invoices/{number}/payments"]["post"]
    assert payments["security"] == [{"bearerAuth": []}]
    assert {"201", "401", "403", "404", "422"} <= set(payments["responses"])
    for action in ("accept", "decline"):
        operation = paths[f"/api/v1/quotes/{{number}}/{action}"]["post"]
        assert {"401", "403", "404", "409"} <= set(operation["responses"])
    schemas = spec["components"]["schemas"]
    assert {"Invoice", "InvoicePage", "Payment", "PaymentRequest", "Quote"} <= set(schemas)
