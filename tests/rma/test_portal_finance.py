"""The customer portal's quotes and invoices (rma/views/portal_finance.py, issue 5):
quotes open first, the quote page with VAT per line and its PDF, Accept (the invoice is
issued at once) and Decline (the unit sent back or scrapped, R-W4, D-3), an expired quote
that offers nothing, invoices with payments and what is outstanding, the open quote
linked from the home and the RMA page, the contract's support status (R-C2, R-C3), and
another customer's quote or invoice answering 404 like an unknown number. The test clock
says 2026-11-25 12:00 in Shanghai."""

from __future__ import annotations

from html import unescape

import pytest
from sqlalchemy import func, select

from rma.extensions import db
from rma.models import (
    Invoice,
    InvoiceStatus,
    ItemStatus,
    Quote,
    QuoteStatus,
    RmaItem,
    Unit,
    UnitStatus,
)
from rma.services import invoices
from rma.services.catalog import customer_by_contract
from tests.conftest import TEST_PASSWORD
from tests.rma.finance_helpers import ONE_ITEM_GROSS, build_finance_world, open_quote_for, paid_item
from tests.rma.test_warehouse import actor

EN = {"Accept-Language": "en"}


@pytest.fixture
def world(app, make_model, make_customer, make_user):
    return build_finance_world(app, make_model, make_customer, make_user)


def signed_in(app, email: str):
    client = app.test_client()
    response = client.post("/login", data={"email": email, "password": TEST_PASSWORD})
    assert response.status_code == 302, response.data
    return client


@pytest.fixture
def alice(app, world):
    return signed_in(app, "alice@a.example")


@pytest.fixture
def bob(app, world):
    return signed_in(app, "bob@b.example")


def page(response) -> str:
    assert response.status_code == 200, response.get_data(as_text=True)[:2000]
    return unescape(response.get_data(as_text=True))


def quote_of(app, rma_number: str) -> str:
    with app.app_context():
        quote = open_quote_for(rma_number)
        assert quote is not None, "no open quote: is quotes.sync_rma_quote hooked in?"
        return quote.number


def fresh(app, model, *where):
    with app.app_context():
        found = db.session.scalar(select(model).where(*where)
                                  .execution_options(populate_existing=True))
        if found is not None:
            db.session.expunge(found)
        return found


def count(app, model) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


def accept(app, client, quote: str) -> str:
    response = client.post(f"/portal/quotes/{quote}/accept", data={"accept-note": ""})
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    return response.headers["Location"].rsplit("/", 1)[-1]


# -- quotes -----------------------------------------------------------------------------
def test_R_W4_the_quote_page_shows_lines_VAT_per_line_totals_and_validity(app, world, alice):
    number, _item = paid_item(app, world)
    quote = quote_of(app, number)
    html = page(alice.get(f"/portal/quotes/{quote}"))
    assert quote in html and number in html
    assert "39.00 CNY" in html and "2.60 CNY" in html and "13 %" in html
    assert f"{ONE_ITEM_GROSS} CNY" in html
    assert "2026-12-25" in html  # valid 30 days
    assert 'id="accept-form"' in html and 'id="decline-form"' in html
    assert "send it back" in html.lower() and "scrap" in html.lower()
    assert f"/portal/quotes/{quote}.pdf" in html


def test_the_quote_list_shows_open_quotes_first(app, world, alice):
    first, _one = paid_item(app, world, "TK3-A0001")
    second, _two = paid_item(app, world, "TK3-A0002")
    old, new = quote_of(app, first), quote_of(app, second)
    alice.post(f"/portal/quotes/{new}/decline", data={"decline-send_back": "x"},
               follow_redirects=True)  # the flash naming it is shown there
    html = page(alice.get("/portal/quotes"))
    assert html.index(old) < html.index(new)  # open first, although older
    assert "Waiting for your answer" in html and "Declined" in html


def test_D_3_accepting_in_the_portal_issues_the_invoice(app, world, alice):
    number, item_id = paid_item(app, world)
    quote = quote_of(app, number)
    response = alice.post(f"/portal/quotes/{quote}/accept", data={"accept-note": "PO 4711"})
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/portal/invoices/INV-2026-000001")
    html = page(alice.get(response.headers["Location"]))
    assert "INV-2026-000001" in html and "issued" in html
    assert "Unpaid" in html and f"{ONE_ITEM_GROSS} CNY" in html
    assert "No payment received yet." in html
    accepted = fresh(app, Quote, Quote.number == quote)
    assert (accepted.status, accepted.answered_via, accepted.answer_note) == (
        QuoteStatus.ACCEPTED, "portal", "PO 4711")
    assert fresh(app, RmaItem, RmaItem.id == item_id).status == ItemStatus.WAITING_PAYMENT
    # answered: the quote page now links the invoice and offers nothing
    html = page(alice.get(f"/portal/quotes/{quote}"))
    assert "INV-2026-000001" in html and 'id="accept-form"' not in html


@pytest.mark.parametrize("button, item_status, unit_status", [
    ("decline-send_back", ItemStatus.CONFIRMED, UnitStatus.RETURNED),
    ("decline-scrap", ItemStatus.CLOSED, UnitStatus.SCRAPPED),
])
def test_declining_sends_the_unit_back_or_scraps_it(app, world, alice, button, item_status,
                                                     unit_status):
    number, item_id = paid_item(app, world)
    quote = quote_of(app, number)
    response = alice.post(f"/portal/quotes/{quote}/decline",
                          data={button: "x", "decline-note": "too dear"})
    assert response.status_code == 302
    html = page(alice.get(response.headers["Location"]))
    assert "Declined" in html and "you pay nothing" in html
    declined = fresh(app, Quote, Quote.number == quote)
    assert declined.decline_disposition == ("scrap" if "scrap" in button else "return")
    assert fresh(app, RmaItem, RmaItem.id == item_id).status == item_status
    assert fresh(app, Unit, Unit.serial == "TK3-A0001").status == unit_status
    assert count(app, Invoice) == 0


def test_declining_before_the_unit_came_in_just_closes_the_item(app, world, alice):
    from tests.rma.test_warehouse import to_state

    with app.test_request_context(headers=EN):
        number, item_id = to_state(app, "waiting_payment", world=world)  # confirmed remotely
    quote = quote_of(app, number)
    html = page(alice.get(f"/portal/quotes/{quote}"))
    assert "We have not received your faulty unit" in html
    assert 'id="decline-scrap"' not in html and 'id="decline-return"' in html
    response = alice.post(f"/portal/quotes/{quote}/decline", data={"decline-send_back": "x"})
    assert response.status_code == 302
    assert fresh(app, RmaItem, RmaItem.id == item_id).status == ItemStatus.CLOSED


def test_an_expired_quote_says_so_and_offers_nothing(app, world, alice):
    number, _item = paid_item(app, world)
    quote = quote_of(app, number)
    app.config["FIXED_NOW"] = "2026-12-26T04:00:00+00:00"  # valid until 2026-12-25
    html = page(alice.get(f"/portal/quotes/{quote}"))
    assert "expired on 2026-12-25" in html
    assert 'id="accept-form"' not in html and 'id="decline-form"' not in html
    refused = alice.post(f"/portal/quotes/{quote}/accept", data={})
    assert refused.status_code == 409
    assert "expired" in unescape(refused.get_data(as_text=True))
    assert count(app, Invoice) == 0


def test_home_and_rma_page_link_the_quote_to_accept(app, world, alice):
    number, _item = paid_item(app, world)
    quote = quote_of(app, number)
    link = f'href="/portal/quotes/{quote}"'
    home = page(alice.get("/portal/"))
    assert f"Quote {quote} to accept" in home and link in home
    detail = page(alice.get(f"/portal/rmas/{number}"))
    assert f"Quote {quote} to accept" in detail and link in detail
    accept(app, alice, quote)
    assert f"Quote {quote} to accept" not in page(alice.get("/portal/"))


# -- invoices ---------------------------------------------------------------------------
def test_the_invoice_page_shows_payments_and_what_is_outstanding(app, world, alice):
    number, _item = paid_item(app, world)
    invoice = accept(app, alice, quote_of(app, number))
    with app.test_request_context(headers=EN):
        invoices.record_payment(actor("fay"), invoice, amount="200.00",
                                received_on="2026-11-25", method="bank_transfer",
                                reference="BOC-0001")
    html = page(alice.get(f"/portal/invoices/{invoice}"))
    assert "Partly paid" in html and "BOC-0001" in html and "Bank transfer" in html
    assert "161.60 CNY" in html  # outstanding
    listing = page(alice.get("/portal/invoices"))
    assert invoice in listing and "161.60 CNY" in listing
    assert fresh(app, Invoice, Invoice.number == invoice).status == InvoiceStatus.PARTIALLY_PAID


def test_quote_and_invoice_pdfs_download_as_pdf(app, world, alice):
    number, _item = paid_item(app, world)
    quote = quote_of(app, number)
    for path, name in ((f"/portal/quotes/{quote}.pdf", f"{quote}.pdf"),):
        response = alice.get(path)
        assert response.status_code == 200
        assert response.mimetype == "application/pdf" and response.data.startswith(b"%PDF")
        assert name in response.headers["Content-Disposition"]
    invoice = accept(app, alice, quote)
    response = alice.get(f"/portal/invoices/{invoice}.pdf")
    assert response.status_code == 200
    assert response.mimetype == "application/pdf" and response.data.startswith(b"%PDF")
    assert f"{invoice}.pdf" in response.headers["Content-Disposition"]


def test_another_customers_quote_and_invoice_are_404_like_unknown_numbers(app, world, alice,
                                                                         bob):
    number, _item = paid_item(app, world)
    quote = quote_of(app, number)
    invoice_quote = quote
    paths = [f"/portal/quotes/{quote}", f"/portal/quotes/{quote}.pdf"]
    for path in paths:
        assert bob.get(path).status_code == 404
        assert bob.get(path.replace(quote, "Q-2026-999999")).status_code == 404
    for action in ("accept", "decline"):
        assert bob.post(f"/portal/quotes/{quote}/{action}",
                        data={"decline-send_back": "x"}).status_code == 404
    assert fresh(app, Quote, Quote.number == quote).status == QuoteStatus.OPEN
    invoice = accept(app, alice, invoice_quote)
    for path in (f"/portal/invoices/{invoice}", f"/portal/invoices/{invoice}.pdf"):
        assert bob.get(path).status_code == 404
        assert bob.get(path.replace(invoice, "INV-2026-999999")).status_code == 404
    assert quote not in page(bob.get("/portal/quotes"))
    assert invoice not in page(bob.get("/portal/invoices"))


# -- the contract's support status on the home page (R-C2, R-C3) -------------------------
def test_R_C2_home_shows_cover_by_the_project_term(app, world, alice):
    html = page(alice.get("/portal/"))  # Acme: accepted 2026-03-10
    assert "covered by the project service term until 2027-03-10" in html


def test_R_C3_home_shows_not_covered_since_with_contact_us(app, world, make_customer,
                                                         make_user):
    contract = make_customer("Old Bank", "2025-06-15")  # term through 2026-06-15
    make_user("olga@old.example", "customer", contract)
    html = page(signed_in(app, "olga@old.example").get("/portal/"))
    assert "not covered since 2026-06-16" in html and "Contact us to renew" in html


def test_R_C3_home_shows_paid_support(app, world, make_customer, make_user):
    from datetime import date

    from rma.models import SupportPeriod

    contract = make_customer("Renewed Bank", "2025-06-15")
    make_user("rita@renewed.example", "customer", contract)
    with app.app_context():
        customer = customer_by_contract(contract)
        invoice = Invoice(number="INV-2026-000900", kind="invoice", year=2026, sequence=900,
                          customer_id=customer.id, status="paid", issued_on=date(2026, 6, 1),
                          due_on=date(2026, 6, 1), billing_name="Renewed Bank",
                          contract_number=contract, net_total=1, vat_total=0, gross_total=1,
                          paid_total=1, credited_total=0)
        db.session.add(invoice)
        db.session.flush()
        db.session.add(SupportPeriod(customer_id=customer.id, starts_on=date(2026, 6, 16),
                                     ends_on=date(2027, 6, 15), months=12,
                                     invoice_id=invoice.id))
        db.session.commit()
    html = page(signed_in(app, "rita@renewed.example").get("/portal/"))
    assert "paid support until 2027-06-15" in html
