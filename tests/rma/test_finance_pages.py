"""The staff finance pages (issue 5 point 6; R-C3, D-3, D-5): the dashboard with its
exports, the price list, quotes (answer by fax or e-mail, reissue), support renewals,
invoices (payments, credit notes), release on credit and billing details.

Roles are checked on the server: finance, managers and admins see the pages; support
and warehouse only a quote or an invoice (linked from an RMA); a customer none. Only
finance changes money. A refusal is shown beside its field and saves nothing.

The test clock says 2026-11-25 12:00 China time. A quote for one paid TK3 item is
300.00 + 39.00 VAT + shipping 20.00 + 2.60 VAT = 361.60 CNY (tests/rma/finance_helpers).
"""

from __future__ import annotations

import io
import re
from datetime import date
from decimal import Decimal
from html import unescape

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select

from rma.extensions import db
from rma.models import (
    AuditEvent,
    Customer,
    Invoice,
    InvoiceStatus,
    ItemStatus,
    Payment,
    PriceEntry,
    PriceKind,
    Quote,
    QuoteKind,
    QuoteStatus,
    RmaItem,
)
from tests.conftest import TEST_PASSWORD
from tests.rma.finance_helpers import (
    ONE_ITEM_GROSS,
    build_finance_world,
    open_quote_for,
    paid_item,
)
from tests.rma.test_warehouse import STAFF, actor

EN = {"Accept-Language": "en"}
ROLE_EMAILS = {role: email for email, role in STAFF.values()}
ROLE_EMAILS["customer"] = "alice@a.example"
VIEWERS = {"finance", "manager", "admin"}
OTHERS = {"support", "warehouse", "customer"}


# -- world and clients ------------------------------------------------------------------
@pytest.fixture
def world(app, make_model, make_customer, make_user):
    return build_finance_world(app, make_model, make_customer, make_user)


@pytest.fixture
def as_role(app, world):
    clients = {}

    def _get(role: str):
        if role not in clients:
            client = app.test_client()
            response = client.post("/login", data={"email": ROLE_EMAILS[role],
                                                   "password": TEST_PASSWORD})
            assert response.status_code == 302, response.data
            clients[role] = client
        return clients[role]

    return _get


def _text(response) -> str:
    return unescape(response.get_data(as_text=True))


def _count(app, model, *where) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model).where(*where))


def _quoted(app, world, serial: str = "TK3-A0001") -> tuple[str, int, str]:
    """A paid item with its open quote: (rma number, item id, quote number)."""
    number, item_id = paid_item(app, world, serial)
    with app.app_context():
        quote = open_quote_for(number)
        assert quote is not None, "the quote hook (quotes.sync_rma_quote) made no quote"
        return number, item_id, quote.number


def _invoiced(app, world, serial: str = "TK3-A0001") -> tuple[int, str, str]:
    """A paid item whose quote the customer accepted in the portal: (item id, quote
    number, invoice number)."""
    from rma.services import quotes

    _rma, item_id, quote_number = _quoted(app, world, serial)
    with app.test_request_context(headers=EN):
        invoice = quotes.accept_quote(actor("alice@a.example"), quote_number, via="portal")
        return item_id, quote_number, invoice.number


def _pdf_upload() -> tuple[io.BytesIO, str]:
    return io.BytesIO(b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"), "fax.pdf"


# -- roles ------------------------------------------------------------------------------
LIST_PAGES = ["/staff/finance/", "/staff/finance/prices", "/staff/finance/quotes",
              "/staff/finance/invoices", "/staff/finance/waiting",
              "/staff/finance/renewals"]


@pytest.mark.parametrize("path", LIST_PAGES)
def test_finance_pages_for_finance_manager_admin_only(app, world, as_role, path):
    anonymous = app.test_client().get(path)
    assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]
    for role in sorted(VIEWERS):
        response = as_role(role).get(path, headers=EN)
        assert response.status_code == 200, (role, path)
        assert 'id="nav-finance"' in _text(response)
    for role in sorted(OTHERS):
        assert as_role(role).get(path, headers=EN).status_code == 403, (role, path)


def test_customer_page_roles(app, world, as_role):
    path = f"/staff/finance/customers/{world['a']}"
    for role in sorted(VIEWERS):
        assert as_role(role).get(path, headers=EN).status_code == 200, role
    for role in sorted(OTHERS):
        assert as_role(role).get(path, headers=EN).status_code == 403, role
    assert as_role("finance").get("/staff/finance/customers/99999").status_code == 404


def test_finance_link_in_navigation_only_for_finance_roles(app, world, as_role):
    for role in ("support", "warehouse"):
        assert 'id="nav-finance"' not in _text(as_role(role).get("/staff/wh/replacements",
                                                                  headers=EN))
    assert 'id="nav-finance"' in _text(as_role("finance").get("/staff/wh/replacements",
                                                              headers=EN))


def test_quote_and_invoice_pages_open_to_staff_from_an_rma(app, world, as_role):
    """Support and warehouse may open a quote or invoice linked from an RMA (and its
    PDF), never the lists; a customer user may not open the staff pages at all."""
    _item_id, quote_number, invoice_number = _invoiced(app, world)
    for path in (f"/staff/finance/quotes/{quote_number}",
                 f"/staff/finance/invoices/{invoice_number}",
                 f"/staff/finance/quotes/{quote_number}.pdf",
                 f"/staff/finance/invoices/{invoice_number}.pdf"):
        for role in ("support", "warehouse", "finance", "manager", "admin"):
            assert as_role(role).get(path, headers=EN).status_code == 200, (role, path)
        assert as_role("customer").get(path, headers=EN).status_code == 403, path
    assert as_role("finance").get("/staff/finance/quotes/Q-2026-999999").status_code == 404
    assert as_role("finance").get("/staff/finance/invoices/INV-2026-999999.pdf"
                                  ).status_code == 404


def test_money_actions_are_finance_only(app, world, as_role):
    """A manager sees the pages but changes no money: the forms are not offered and a
    post is refused (403) with nothing saved."""
    item_id, _quote, invoice_number = _invoiced(app, world)
    page = _text(as_role("manager").get(f"/staff/finance/invoices/{invoice_number}",
                                        headers=EN))
    assert 'id="payment-form"' not in page and 'id="credit-note-form"' not in page
    finance_page = _text(as_role("finance").get(f"/staff/finance/invoices/{invoice_number}",
                                                headers=EN))
    assert 'id="payment-form"' in finance_page and 'id="credit-note-form"' in finance_page
    posts = [
        (f"/staff/finance/invoices/{invoice_number}/payments",
         {"amount": "10.00", "received_on": "2026-11-25", "method": "cash"}),
        (f"/staff/finance/invoices/{invoice_number}/credit-notes",
         {"credit-reason": "goodwill"}),
        (f"/staff/finance/items/{item_id}/release", {f"release-{item_id}-reason": "x"}),
        ("/staff/finance/renewals/" + world["contract_a"], {}),
    ]
    for role in ("manager", "admin", "support"):
        for path, data in posts:
            assert as_role(role).post(path, data=data).status_code == 403, (role, path)
    assert _count(app, Payment) == 0
    assert _count(app, Invoice) == 1


# -- dashboard and exports --------------------------------------------------------------
def test_dashboard_shows_open_quotes_receivables_ageing_payments_revenue(app, world,
                                                                          as_role):
    _item_id, _quote, invoice_number = _invoiced(app, world)
    _rma, _item, open_quote = _quoted(app, world, "TK3-A0002")
    page = _text(as_role("finance").get("/staff/finance/", headers=EN))
    for key in ("open-quotes", "ageing", "receivables", "payments-by-month",
                "revenue-by-model"):
        assert f'id="report-{key}"' in page, key
        assert f'id="export-{key}-csv"' in page and f'id="export-{key}-xlsx"' in page
    assert open_quote in page and invoice_number in page
    assert 'data-label="' in page and 'class="table-scroll"' in page
    ageing = page[page.index('id="table-ageing"'):]
    ageing = ageing[:ageing.index("</table>")]
    assert re.search(r"0-30</td>\s*<td[^>]*>1</td>\s*<td[^>]*>361\.60</td>", ageing)
    revenue = page[page.index('id="table-revenue-by-model"'):]
    assert "TK3" in revenue[:revenue.index("</table>")]


@pytest.mark.parametrize("hostile", ['=HYPERLINK("http://x.example","pay")', "+1-2",
                                     "-cmd", "@SUM(A1)"])
def test_exports_neutralise_formula_injection_in_customer_text(app, world, as_role, hostile):
    """Issue 8: a customer name a user typed that starts with =, +, - or @ reaches the
    receivables export as text with a leading apostrophe, in CSV and XLSX alike."""
    with app.app_context():
        customer = db.session.get(Customer, world["a"])
        customer.name = customer.billing_name = hostile
        db.session.commit()
    _invoiced(app, world)
    client = as_role("finance")
    csv = client.get("/staff/finance/?export=csv&table=receivables").data.decode("utf-8-sig")
    row = next(line for line in csv.splitlines() if "INV-2026-000001" in line)
    assert "'" + hostile.replace('"', '""') in row and f",{hostile}" not in row
    xlsx = client.get("/staff/finance/?export=xlsx&table=receivables")
    sheet = load_workbook(io.BytesIO(xlsx.data)).active
    cells = [cell for row in sheet.iter_rows() for cell in row
             if isinstance(cell.value, str) and hostile in cell.value]
    assert [(cell.value, cell.data_type) for cell in cells] == [("'" + hostile, "s")]


def test_dashboard_revenue_date_range(app, world, as_role):
    _invoiced(app, world)
    client = as_role("finance")
    page = _text(client.get("/staff/finance/?date_from=2026-12-01&date_to=2026-12-31",
                            headers=EN))
    assert 'id="report-revenue-by-model-empty"' in page
    assert 'value="2026-12-01"' in page
    inverted = _text(client.get("/staff/finance/?date_from=2026-12-01&date_to=2026-01-01",
                                headers=EN))
    assert "The end is before the start." in inverted


def test_exports_csv_with_bom_and_xlsx(app, world, as_role):
    """Issue point 6: CSV in UTF-8 with a BOM (Excel reads Chinese), XLSX by openpyxl
    with numbers as numbers; the download is named after the table and today."""
    _invoiced(app, world)
    client = as_role("finance")
    csv = client.get("/staff/finance/?export=csv&table=receivables")
    assert csv.status_code == 200
    assert csv.mimetype == "text/csv"
    assert csv.data.startswith(b"\xef\xbb\xbf")
    assert "receivables-2026-11-25.csv" in csv.headers["Content-Disposition"]
    text = csv.data.decode("utf-8-sig")
    assert "\r\n" in text and "361.60" in text and "INV-2026-000001" in text
    xlsx = client.get("/staff/finance/?export=xlsx&table=ageing")
    assert xlsx.status_code == 200
    assert xlsx.mimetype == ("application/vnd.openxmlformats-officedocument."
                             "spreadsheetml.sheet")
    sheet = load_workbook(io.BytesIO(xlsx.data)).active
    values = [[cell.value for cell in row] for row in sheet.iter_rows()]
    assert values[1][0] == "0-30" and values[1][1] == 1
    assert Decimal(str(values[1][2])) == ONE_ITEM_GROSS
    for key in ("open-quotes", "payments-by-month", "revenue-by-model"):
        for fmt in ("csv", "xlsx"):
            assert client.get(f"/staff/finance/?export={fmt}&table={key}"
                              ).status_code == 200, (key, fmt)
    assert client.get("/staff/finance/?export=pdf&table=ageing").status_code == 404
    assert client.get("/staff/finance/?export=csv&table=nope").status_code == 404
    assert as_role("support").get("/staff/finance/?export=csv&table=ageing"
                                  ).status_code == 403


# -- price list (D-5) -------------------------------------------------------------------
def test_price_list_shows_today_and_history(app, world, as_role):
    page = _text(as_role("finance").get("/staff/finance/prices", headers=EN))
    assert 'id="prices-today"' in page and 'id="price-history"' in page
    assert 'data-kind="replacement" data-model="TK3"' in page
    assert "300.00 CNY" in page and "13%" in page
    assert 'id="price-form"' in page
    assert 'id="price-form"' not in _text(as_role("manager").get("/staff/finance/prices",
                                                                 headers=EN))


def test_add_a_dated_price(app, world, as_role):
    response = as_role("finance").post("/staff/finance/prices", data={
        "kind": "replacement", "model_code": "TK3", "amount": "320.00",
        "valid_from": "2027-01-01", "note": "2027 list"}, headers=EN)
    assert response.status_code == 302
    with app.app_context():
        entries = db.session.scalars(select(PriceEntry).where(
            PriceEntry.kind == PriceKind.REPLACEMENT).order_by(PriceEntry.valid_from)).all()
        assert [(e.amount, e.valid_from, e.valid_to) for e in entries] == [
            (Decimal("300.00"), date(2026, 1, 1), date(2026, 12, 31)),
            (Decimal("320.00"), date(2027, 1, 1), None)]


def test_price_errors_beside_their_fields(app, world, as_role):
    client = as_role("finance")
    response = client.post("/staff/finance/prices", data={
        "kind": "replacement", "model_code": "TK3", "amount": "1.234",
        "valid_from": "2027-01-01"}, headers=EN)
    assert response.status_code == 422
    assert re.search(r'id="amount-error"', _text(response))
    response = client.post("/staff/finance/prices", data={
        "kind": "replacement", "model_code": "TK3", "amount": "310.00",
        "valid_from": "2026-01-01"}, headers=EN)
    assert response.status_code == 409
    assert 'id="valid_from-error"' in _text(response)
    response = client.post("/staff/finance/prices", data={
        "kind": "vat", "rate": "130%", "valid_from": "2027-01-01"}, headers=EN)
    assert response.status_code == 422 and 'id="rate-error"' in _text(response)
    assert _count(app, PriceEntry) == 3


# -- quotes -----------------------------------------------------------------------------
def test_quotes_list_and_quote_page(app, world, as_role):
    rma_number, _item, quote_number = _quoted(app, world)
    client = as_role("finance")
    listing = _text(client.get("/staff/finance/quotes", headers=EN))
    assert quote_number in listing and 'class="table-scroll"' in listing
    assert quote_number not in _text(client.get("/staff/finance/quotes?status=accepted",
                                                headers=EN))
    page = _text(client.get(f"/staff/finance/quotes/{quote_number}", headers=EN))
    assert 'id="quote-status" class="status-word" data-status="open"' in page
    assert rma_number in page and "TK3-A0001" in page
    assert "361.60 CNY" in page and "300.00" in page and "39.00" in page
    assert 'id="answer-form"' in page
    pdf = client.get(f"/staff/finance/quotes/{quote_number}.pdf")
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
    assert pdf.data.startswith(b"%PDF")


def test_record_acceptance_by_fax_issues_the_invoice(app, world, as_role):
    _rma, _item, quote_number = _quoted(app, world)
    response = as_role("finance").post(f"/staff/finance/quotes/{quote_number}/answer", data={
        "answer": "accept", "via": "fax", "note": "signed fax",
        "document": _pdf_upload()}, content_type="multipart/form-data", headers=EN)
    assert response.status_code == 302
    assert "/staff/finance/invoices/INV-2026-000001" in response.headers["Location"]
    with app.app_context():
        quote = db.session.scalar(select(Quote).where(Quote.number == quote_number))
        assert quote.status == QuoteStatus.ACCEPTED and quote.answered_via == "fax"


def test_answer_without_document_is_refused_and_saves_nothing(app, world, as_role):
    _rma, _item, quote_number = _quoted(app, world)
    response = as_role("finance").post(f"/staff/finance/quotes/{quote_number}/answer", data={
        "answer": "accept", "via": "email"}, content_type="multipart/form-data",
        headers=EN)
    assert response.status_code == 422
    page = _text(response)
    assert 'role="alert"' in page
    assert _count(app, Invoice) == 0
    with app.app_context():
        assert db.session.scalar(select(Quote.status).where(Quote.number == quote_number)
                                 ) == QuoteStatus.OPEN


def test_record_decline_by_email_with_scrap(app, world, as_role):
    _rma, item_id, quote_number = _quoted(app, world)
    response = as_role("finance").post(f"/staff/finance/quotes/{quote_number}/answer", data={
        "answer": "decline", "via": "email", "disposition": "scrap",
        "document": _pdf_upload()}, content_type="multipart/form-data", headers=EN)
    assert response.status_code == 302
    with app.app_context():
        quote = db.session.scalar(select(Quote).where(Quote.number == quote_number))
        assert quote.status == QuoteStatus.DECLINED
        assert quote.decline_disposition == "scrap"
        assert db.session.get(RmaItem, item_id).status == ItemStatus.CLOSED


def test_reissue_an_expired_quote(app, world, as_role):
    from tests.rma.test_warehouse import at

    _rma, _item, quote_number = _quoted(app, world)
    at(app, "2027-01-10T04:00:00+00:00")  # the 30 days are over
    with app.test_request_context(headers=EN):
        from rma import clock
        from rma.services import quotes

        quotes.expire_quotes_job(clock.now())
    client = as_role("finance")
    page = _text(client.get(f"/staff/finance/quotes/{quote_number}", headers=EN))
    assert 'data-status="expired"' in page and 'id="reissue-form"' in page
    response = client.post(f"/staff/finance/quotes/{quote_number}/reissue", headers=EN)
    assert response.status_code == 302
    with app.app_context():
        new = db.session.scalar(select(Quote).where(Quote.status == QuoteStatus.OPEN))
        assert new is not None and new.number != quote_number
        assert new.number in response.headers["Location"]


# -- support renewals (R-C3) ------------------------------------------------------------
def test_R_C3_renewals_list_and_support_quote(app, world, as_role):
    """Customer A's project term (accepted 2026-03-10, 12 months) ends 2027-03-10, more
    than 60 days away; Beta Bank's (2026-01-05) ends within 60 days: only it is listed,
    with the button; the quote is for 12 months of paid support."""
    client = as_role("finance")
    page = _text(client.get("/staff/finance/renewals", headers=EN))
    assert f'data-contract="{world["contract_b"]}"' in page
    assert f'data-contract="{world["contract_a"]}"' not in page
    response = client.post(f"/staff/finance/renewals/{world['contract_b']}", headers=EN)
    assert response.status_code == 302
    with app.app_context():
        quote = db.session.scalar(select(Quote).where(Quote.kind == QuoteKind.SUPPORT))
        assert quote.customer_id == world["b"] and quote.support_months == 12
        assert quote.gross_total == Decimal("5650.00")  # 5000.00 + 13 % VAT
    again = client.post(f"/staff/finance/renewals/{world['contract_b']}", headers=EN)
    assert again.status_code == 409 and 'id="action-error"' in _text(again)
    assert _count(app, Quote, Quote.kind == QuoteKind.SUPPORT) == 1


# -- invoices, payments, credit notes ---------------------------------------------------
def test_invoice_list_filters_and_page(app, world, as_role):
    _item, quote_number, invoice_number = _invoiced(app, world)
    client = as_role("finance")
    listing = _text(client.get("/staff/finance/invoices", headers=EN))
    assert invoice_number in listing
    assert invoice_number in _text(client.get(
        f"/staff/finance/invoices?status=unpaid&customer={world['a']}", headers=EN))
    assert invoice_number not in _text(client.get("/staff/finance/invoices?status=paid",
                                                  headers=EN))
    assert invoice_number not in _text(client.get(
        f"/staff/finance/invoices?customer={world['b']}", headers=EN))
    page = _text(client.get(f"/staff/finance/invoices/{invoice_number}", headers=EN))
    assert 'data-status="unpaid"' in page and quote_number in page
    assert re.search(r'id="outstanding"><strong>361\.60 CNY', page)
    assert 'id="billing-link"' in page
    pdf = client.get(f"/staff/finance/invoices/{invoice_number}.pdf")
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")


def test_D3_two_partial_payments_release_the_item(app, world, as_role):
    item_id, _quote, number = _invoiced(app, world)
    client = as_role("finance")
    first = client.post(f"/staff/finance/invoices/{number}/payments", data={
        "amount": "200.00", "received_on": "2026-11-24", "method": "bank_transfer",
        "reference": "BANK-1"}, headers=EN)
    assert first.status_code == 302
    page = _text(client.get(f"/staff/finance/invoices/{number}", headers=EN))
    assert 'data-status="partially_paid"' in page and "161.60 CNY" in page
    second = client.post(f"/staff/finance/invoices/{number}/payments", data={
        "amount": "161.60", "received_on": "2026-11-25", "method": "cash"}, headers=EN)
    assert second.status_code == 302
    page = _text(client.get(f"/staff/finance/invoices/{number}", headers=EN))
    assert 'data-status="paid"' in page and 'id="payment-form"' not in page
    assert "BANK-1" in page
    with app.app_context():
        assert db.session.get(RmaItem, item_id).status == ItemStatus.RELEASED


def test_overpayment_message_beside_amount_and_nothing_saved(app, world, as_role):
    _item, _quote, number = _invoiced(app, world)
    response = as_role("finance").post(f"/staff/finance/invoices/{number}/payments", data={
        "amount": "600.00", "received_on": "2026-11-25", "method": "bank_transfer"},
        headers=EN)
    assert response.status_code == 422
    page = _text(response)
    error = re.search(r'<p class="error" id="amount-error" role="alert">([^<]*)</p>', page)
    assert error is not None
    assert error.group(1) == ("The payment of 600.00 CNY is more than the 361.60 CNY still "
                              f"due on {number}; nothing was recorded.")
    assert 'value="600.00"' in page  # the typed amount is kept
    assert _count(app, Payment) == 0
    with app.app_context():
        assert db.session.scalar(select(Invoice.status).where(Invoice.number == number)
                                 ) == InvoiceStatus.UNPAID


def test_payment_amount_not_money_and_future_date(app, world, as_role):
    _item, _quote, number = _invoiced(app, world)
    client = as_role("finance")
    bad = client.post(f"/staff/finance/invoices/{number}/payments", data={
        "amount": "12.345", "received_on": "2026-11-25", "method": "cash"}, headers=EN)
    assert bad.status_code == 200 and 'id="amount-error"' in _text(bad)
    future = client.post(f"/staff/finance/invoices/{number}/payments", data={
        "amount": "10.00", "received_on": "2026-12-25", "method": "cash"}, headers=EN)
    assert future.status_code == 422 and 'id="received_on-error"' in _text(future)
    assert _count(app, Payment) == 0


def test_credit_note_needs_a_reason_and_credits_the_invoice(app, world, as_role):
    _item, _quote, number = _invoiced(app, world)
    client = as_role("finance")
    missing = client.post(f"/staff/finance/invoices/{number}/credit-notes",
                          data={"credit-amount": "10.00"}, headers=EN)
    assert missing.status_code == 422 and 'id="credit-reason-error"' in _text(missing)
    too_much = client.post(f"/staff/finance/invoices/{number}/credit-notes",
                           data={"credit-amount": "400.00", "credit-reason": "x"},
                           headers=EN)
    assert too_much.status_code == 422 and 'id="credit-amount-error"' in _text(too_much)
    assert _count(app, Invoice) == 1
    done = client.post(f"/staff/finance/invoices/{number}/credit-notes",
                       data={"credit-amount": "20.00",
                             "credit-reason": "Shipping waived"}, headers=EN)
    assert done.status_code == 302
    page = _text(client.get(f"/staff/finance/invoices/{number}", headers=EN))
    assert "CN-2026-000001" in page and "341.60 CNY" in page
    note = _text(client.get("/staff/finance/invoices/CN-2026-000001", headers=EN))
    assert 'id="credited-invoice"' in note and "Shipping waived" in note
    assert 'id="payment-form"' not in note


# -- release on credit (D-3) ------------------------------------------------------------
def test_D3_waiting_items_and_release_on_credit(app, world, as_role):
    item_id, _quote, number = _invoiced(app, world)
    client = as_role("finance")
    page = _text(client.get("/staff/finance/waiting", headers=EN))
    assert f'id="waiting-{item_id}"' in page and number in page
    assert f'id="release-form-{item_id}"' not in page  # no credit terms
    assert "No credit terms" in page
    refused = client.post(f"/staff/finance/items/{item_id}/release",
                          data={f"release-{item_id}-reason": "trusted"}, headers=EN)
    assert refused.status_code == 409 and "has no credit terms" in _text(refused)
    with app.app_context():
        db.session.get(Customer, world["a"]).credit_terms = True
        db.session.commit()
    page = _text(client.get("/staff/finance/waiting", headers=EN))
    assert f'id="release-form-{item_id}"' in page
    empty = client.post(f"/staff/finance/items/{item_id}/release",
                        data={f"release-{item_id}-reason": ""}, headers=EN)
    assert empty.status_code == 422
    assert f'id="release-{item_id}-reason-error"' in _text(empty)
    done = client.post(f"/staff/finance/items/{item_id}/release",
                       data={f"release-{item_id}-reason": "Long-standing customer"},
                       headers=EN)
    assert done.status_code == 302
    with app.app_context():
        assert db.session.get(RmaItem, item_id).status == ItemStatus.RELEASED
        assert db.session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "rma_item.released_on_credit")) == 1


# -- billing details --------------------------------------------------------------------
def test_billing_details_form(app, world, as_role):
    path = f"/staff/finance/customers/{world['a']}"
    client = as_role("finance")
    page = _text(client.get(path, headers=EN))
    assert 'id="billing-form"' in page and 'id="support-status"' in page
    assert 'id="save-billing"' not in _text(as_role("manager").get(path, headers=EN))
    bad = client.post(path, data={"billing_email": "not-an-address",
                                  "payment_terms_days": "400", "language": "en"},
                      headers=EN)
    assert bad.status_code == 422
    assert 'id="billing_email-error"' in _text(bad)
    assert 'id="payment_terms_days-error"' in _text(bad)
    done = client.post(path, data={
        "billing_name": "Acme Bank Finance", "billing_address": "1 Bund Road",
        "tax_id": "91310000MA1K", "billing_email": "ap@a.example", "language": "en",
        "credit_terms": "y", "payment_terms_days": "45"}, headers=EN)
    assert done.status_code == 302
    with app.app_context():
        customer = db.session.get(Customer, world["a"])
        assert (customer.billing_name, customer.credit_terms, customer.payment_terms_days,
                customer.language) == ("Acme Bank Finance", True, 45, "en")
    assert as_role("manager").post(path, data={"payment_terms_days": "10"}
                                   ).status_code == 403


def test_pages_render_in_chinese(app, world, as_role):
    """Every page renders in the other language too (captions through gettext)."""
    _item, quote_number, invoice_number = _invoiced(app, world)
    client = as_role("finance")
    client.post("/language", data={"lang": "zh_CN", "next": "/"})
    for path in [*LIST_PAGES, f"/staff/finance/quotes/{quote_number}",
                 f"/staff/finance/invoices/{invoice_number}",
                 f"/staff/finance/customers/{world['a']}"]:
        response = client.get(path)
        assert response.status_code == 200, path
        assert '<html lang="zh-CN">' in _text(response), path


def test_lists_make_no_query_per_row(app, world, as_role):
    """The lists load their rows at once: three more rows, no more queries."""
    from tests.conftest import count_queries

    _invoiced(app, world, "TK3-A0001")
    client = as_role("finance")
    paths = ["/staff/finance/quotes", "/staff/finance/invoices", "/staff/finance/waiting",
             "/staff/finance/"]
    before = {}
    for path in paths:
        with count_queries(app) as statements:
            assert client.get(path, headers=EN).status_code == 200
        before[path] = len(statements)
    for serial in ("TK3-A0002", "TK3-A0003", "TK3-A0004"):
        _invoiced(app, world, serial)
    for path in paths:
        with count_queries(app) as statements:
            assert client.get(path, headers=EN).status_code == 200
        assert len(statements) == before[path], path



def test_the_answer_document_received_by_fax_downloads_for_finance_viewers(app, world,
                                                                           as_role):
    """The fax finance attached to an acceptance is kept as uploaded and opens from the
    quote page; support gets 403; a quote answered without a document has none (404)."""
    _rma, _item, quote_number = _quoted(app, world)
    url = f"/staff/finance/quotes/{quote_number}/document"
    assert as_role("finance").get(url).status_code == 404  # not answered yet
    data, name = _pdf_upload()
    sent = data.getvalue()
    response = as_role("finance").post(f"/staff/finance/quotes/{quote_number}/answer", data={
        "answer": "accept", "via": "fax", "document": (data, name)},
        content_type="multipart/form-data", headers=EN)
    assert response.status_code == 302
    page = _text(as_role("manager").get(f"/staff/finance/quotes/{quote_number}", headers=EN))
    assert f'id="quote-document" href="{url}"' in page
    download = as_role("manager").get(url)
    assert download.status_code == 200 and download.data == sent
    assert download.mimetype == "application/pdf"
    assert "attachment" in download.headers["Content-Disposition"]
    assert as_role("support").get(url).status_code == 403
