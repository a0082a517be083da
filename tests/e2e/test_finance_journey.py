"""Journey 4: finance (issue 5). A token in warranty comes back dropped: the warehouse
receives it by scanning on a 390 px handheld and inspects it (misuse, paid, R-W4); a
quote is issued and e-mailed with its PDF; the customer opens it in the portal (lines
with VAT per line, D-5) and accepts; the invoice page follows and its PDF names the
invoice and the customer in Chinese; finance records a partial payment, is refused an
overpayment beside the amount, and records the rest; the paid invoice releases the item
and starts its 72-hour clock (D-3, R-R3); the warehouse ships a spare and records the
delivery; the item closes and the customer's invoice shows paid.

The server's clock is pinned to 2026-11-25 12:00 China time. Finance adds a shipping fee
through the price list page first, so the quote has a replacement line (the model's
default price, 300.00 CNY) and a shipping line (20.00 CNY): 320.00 + 41.60 VAT = 361.60.
Selectors are ids and data attributes; the e-mails and PDFs are checked by their content.
"""

from __future__ import annotations

import io
import json
import re
import urllib.request
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, expect
from pypdf import PdfReader

from tests.e2e.conftest import ON_SQLITE, Server, cli_session, run_cli

PASSWORD = "e2e-finance-password"
CUSTOMER_NAME = "华东支付银行"
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
QUOTE_NUMBER = re.compile(r"Q-2026-\d{6}")
INVOICE_NUMBER = re.compile(r"INV-2026-\d{6}")
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy
pytestmark = ON_SQLITE  # the PostgreSQL half is test_finance_journey_pg.py (its own worker)


def _cli(server: Server, *args: str, input: str | None = None) -> str:
    result = run_cli(server, *args, input=input)
    assert result.returncode == 0, f"rma {' '.join(args)}:\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def fin(server: Server, tmp_path_factory) -> dict:
    """A model priced 300.00 CNY, a customer with a Chinese name and a token in warranty,
    two spares in stock, a customer user with an API token, warehouse and finance users."""
    with cli_session(server) as rma:  # the setup commands in one process
        rma.ok("add-model", "TK3F", "--name", "TK3F token", "--kind", "hardware",
               "--life-months", "36", "--basis", "ship", "--price", "300")
        contract = rma.ok("add-customer", CUSTOMER_NAME, "--accepted-on", "2025-01-10",
                          "--address", "上海市浦东新区世纪大道 100 号").strip().splitlines()[-1]
        csv_path = tmp_path_factory.mktemp("finance") / "units.csv"
        rows = [f"TK3F-C0001,TK3F,{contract},L1,2025-06-01,"]  # in warranty until 2028-05-31
        rows += [f"TK3F-S000{n},TK3F,,L9,," for n in range(1, 3)]  # spare stock
        csv_path.write_text("serial,model,customer_contract,lot,shipped_on,activated_on\n"
                            + "\n".join(rows) + "\n", encoding="utf-8")
        rma.ok("import-units", str(csv_path))
        users = {"customer": "buyer@east-pay.example", "warehouse": "warehouse@fin.example",
                 "finance": "finance@fin.example"}
        for role, email in users.items():
            extra = ["--customer", contract] if role == "customer" else []
            rma.ok("create-user", email, "--role", role, "--language", "en", *extra,
                   input=PASSWORD + "\n")
        token = rma.ok("create-token", users["customer"]).strip().splitlines()[-1]
    return {"contract": contract, "users": users, "token": token}


def _submit(base: str, fin: dict, serial: str) -> str:
    """The customer submits an RMA through the API; returns its number."""
    body = {"contact": {"name": "Chen Jing", "phone": "+86 21 6666 0000",
                        "email": fin["users"]["customer"]},
            "ship_to": "上海市浦东新区世纪大道 100 号", "language": "en",
            "items": [{"serial": serial, "fault_description": "Dropped on the floor, "
                                                              "screen cracked"}]}
    request = urllib.request.Request(  # noqa: S310 - the test server's loopback http URL
        base + "/api/v1/rmas", data=json.dumps(body).encode(), method="POST",
        headers={"Authorization": f"Bearer {fin['token']}",
                 "Content-Type": "application/json", "Accept-Language": "en"})
    with _DIRECT.open(request, timeout=20) as response:
        assert response.status == 201, response.status
        return json.loads(response.read())["number"]


def _log_in(page: Page, email: str, to: str) -> None:
    page.goto(f"/login?next={to}")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.locator("main input[type=submit]").click()
    expect(page).to_have_url(re.compile(re.escape(to.split("?")[0])))


def _scan(page: Page, code: str, outcome: str) -> None:
    """What a USB scanner does: type the code, press Enter; wait for the answer."""
    expect(page.locator("#code")).to_be_focused()
    page.keyboard.type(code)
    page.keyboard.press("Enter")
    expect(page.locator("#scan-banner")).to_have_attribute("data-outcome", outcome)


def _pdf_text(data: bytes) -> str:
    assert data.startswith(b"%PDF"), data[:20]
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def _mails_to(mailbox, address: str, since: int) -> list:
    """Messages to ``address`` that arrived after the first ``since`` (the mailbox is shared
    by every server of the session: each database's run numbers its documents afresh)."""
    return [m for m in mailbox.messages[since:] if address in str(m["To"])]


def _pay(page: Page, amount: str, reference: str) -> None:
    page.fill("#amount", amount)
    expect(page.locator("#received_on")).to_have_value("2026-11-25")  # today, China time
    page.select_option("#method", "bank_transfer")
    page.fill("#reference", reference)
    page.click("#record-payment")


def test_D3_dropped_token_quoted_accepted_invoiced_paid_in_two_parts_shipped_delivered(
        server: Server, fin: dict, new_page, mailbox, tmp_path, refused_posts):
    mail_mark = len(mailbox.messages)
    contact = fin["users"]["customer"]

    # Finance sets a shipping fee on the price list page, valid from today.
    money = new_page()
    _log_in(money, fin["users"]["finance"], "/staff/finance/prices")
    money.select_option("#kind", "shipping")
    expect(money.locator("#valid_from")).to_have_value("2026-11-25")
    money.fill("#amount", "20.00")
    money.click("#add-price")
    expect(money.locator(".flash.success")).to_contain_text("2026-11-25")
    expect(money.locator('#prices-today tr[data-kind="shipping"]')).to_contain_text("20.00")
    expect(money.locator('#prices-today tr[data-model="TK3F"]')).to_contain_text("300.00")

    number = _submit(server.url, fin, "TK3F-C0001")

    # Warehouse, on a 390 px handheld: the parcel arrives; scan the label, then the unit.
    wh = new_page(**PHONE)
    _log_in(wh, fin["users"]["warehouse"], "/staff/wh/scan")
    _scan(wh, number, "opened_rma")
    _scan(wh, "TK3F-C0001", "received")
    expect(wh.locator('li[data-serial="TK3F-C0001"]')).to_have_attribute("data-received",
                                                                            "yes")
    href = wh.locator('li[data-serial="TK3F-C0001"] a.serial').get_attribute("href")
    item = re.search(r"/staff/wh/items/(\d+)", href).group(1)

    # Inspection: dropped, in warranty → paid (R-W4); the item waits for payment (D-3).
    wh.goto(f"/staff/wh/items/{item}/inspect")
    wh.select_option("#cause", "misuse_drop")
    wh.fill("#notes", "Housing cracked, drop marks on the corner")
    wh.click("#inspect-save")
    expect(wh.locator("#item-decision")).to_have_attribute("data-decision", "paid")
    expect(wh.locator("#item-rule")).to_have_text("R-W4")
    expect(wh.locator("#item-status")).to_have_attribute("data-status", "waiting_payment")
    wh.goto(f"/staff/wh/items/{item}")
    expect(wh.locator("#item-status")).to_have_attribute("data-status", "waiting_payment")
    expect(wh.locator("#action-ship")).to_have_count(0)  # not before payment (D-3)
    expect(wh.locator(".item-line .clock")).to_have_count(0)  # no clock runs yet

    # The quote e-mail reaches the customer's contact when rma tick runs, PDF attached.
    _cli(server, "tick")
    quote_mails = [m for m in _mails_to(mailbox, contact, mail_mark)
                   if QUOTE_NUMBER.search(str(m["Subject"]))]
    assert len(quote_mails) == 1, [str(m["Subject"]) for m in mailbox.messages[mail_mark:]]
    quote_mail = quote_mails[0]
    quote_number = QUOTE_NUMBER.search(str(quote_mail["Subject"])).group(0)
    assert number in str(quote_mail["Subject"])
    assert "361.60" in str(quote_mail["Subject"])
    body = quote_mail.get_body(preferencelist=("plain",)).get_content()
    assert f"/portal/quotes/{quote_number}" in body
    attachments = list(quote_mail.iter_attachments())
    assert [a.get_filename() for a in attachments] == [f"{quote_number}.pdf"]
    assert quote_number in _pdf_text(attachments[0].get_content())

    # The customer: from the RMA page to the quote; lines with VAT per line and totals.
    customer = new_page()
    _log_in(customer, fin["users"]["customer"], "/portal/")
    customer.goto(f"/portal/rmas/{number}")
    customer.locator('tr[data-serial="TK3F-C0001"] a.item-quote').click()
    expect(customer).to_have_url(re.compile(re.escape(f"/portal/quotes/{quote_number}")))
    expect(customer.locator("#quote-status")).to_have_text("Waiting for your answer")
    expect(customer.locator("#lines tbody tr")).to_have_count(2)
    replacement = customer.locator("#line-1")
    expect(replacement.locator(".serial")).to_have_text("TK3F-C0001")
    expect(replacement).to_contain_text("13 %")
    expect(replacement.locator(".line-vat")).to_have_text("39.00 CNY")
    expect(replacement.locator(".line-gross")).to_have_text("339.00 CNY")
    shipping = customer.locator("#line-2")
    expect(shipping.locator(".line-vat")).to_have_text("2.60 CNY")
    expect(shipping.locator(".line-gross")).to_have_text("22.60 CNY")
    expect(customer.locator("#net-total")).to_have_text("320.00 CNY")
    expect(customer.locator("#vat-total")).to_have_text("41.60 CNY")
    expect(customer.locator("#gross-total")).to_have_text("361.60 CNY")
    customer.click("#accept")

    # The invoice page: unpaid, everything outstanding; its PDF names it and the customer.
    expect(customer).to_have_url(re.compile(r"/portal/invoices/INV-2026-\d{6}$"))
    invoice_number = INVOICE_NUMBER.search(customer.url).group(0)
    expect(customer.locator(".flash.success")).to_contain_text(quote_number)
    expect(customer.locator("#invoice-number")).to_contain_text(invoice_number)
    expect(customer.locator("#invoice-status")).to_have_text("Unpaid")
    expect(customer.locator("#invoice-facts")).to_contain_text(CUSTOMER_NAME)
    expect(customer.locator("#gross-total")).to_have_text("361.60 CNY")
    expect(customer.locator("#outstanding")).to_have_text("361.60 CNY")
    expect(customer.locator("#no-payments")).to_be_visible()
    with customer.expect_download() as download_info:
        customer.click("#invoice-pdf")
    download = download_info.value
    assert download.suggested_filename == f"{invoice_number}.pdf"
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    text = _pdf_text(saved.read_bytes())
    assert invoice_number in text
    assert CUSTOMER_NAME in text
    assert "361.60" in text

    # Finance: a first, partial payment.
    money.goto("/staff/finance/invoices")
    money.locator(f'#invoices tr[data-invoice="{invoice_number}"] a').click()
    expect(money.locator("#invoice-number")).to_have_text(invoice_number)
    expect(money.locator("#invoice-status")).to_have_attribute("data-status", "unpaid")
    expect(money.locator("#outstanding")).to_have_text("361.60 CNY")
    _pay(money, "200.00", "BOC-0001")
    expect(money.locator(".flash.success")).to_contain_text("200.00")
    expect(money.locator("#invoice-status")).to_have_attribute("data-status",
                                                               "partially_paid")
    expect(money.locator("#invoice-status")).to_have_text("Partially paid")
    expect(money.locator("#paid-total")).to_have_text("200.00 CNY")
    expect(money.locator("#outstanding")).to_have_text("161.60 CNY")
    expect(money.locator("#payments tbody tr")).to_have_count(1)

    # More than is still due: refused beside the amount (422); nothing recorded.
    payments = f"/staff/finance/invoices/{invoice_number}/payments"
    refused_posts.add(payments)
    with money.expect_response(lambda r: r.request.method == "POST"
                               and urlsplit(r.url).path == payments) as answer:
        _pay(money, "500.00", "BOC-0002")
    assert answer.value.status == 422
    error = money.locator("#amount-error")
    expect(error).to_contain_text("500.00")
    expect(error).to_contain_text("161.60")
    expect(error).to_contain_text("nothing was recorded")
    expect(money.locator("#amount")).to_have_attribute("aria-invalid", "true")
    expect(money.locator("#invoice-status")).to_have_attribute("data-status",
                                                               "partially_paid")
    expect(money.locator("#outstanding")).to_have_text("161.60 CNY")
    expect(money.locator("#payments tbody tr")).to_have_count(1)

    # The rest: the invoice is paid and releases the item (D-3).
    _pay(money, "161.60", "BOC-0003")
    expect(money.locator(".flash.success")).to_contain_text("161.60")
    expect(money.locator("#invoice-status")).to_have_attribute("data-status", "paid")
    expect(money.locator("#invoice-status")).to_have_text("Paid")
    expect(money.locator("#paid-total")).to_have_text("361.60 CNY")
    expect(money.locator("#outstanding")).to_have_text("0.00 CNY")
    expect(money.locator("#payments tbody tr")).to_have_count(2)
    expect(money.locator("#payment-form")).to_have_count(0)  # nothing left to pay

    # The item is released, its 72-hour clock started now (R-R3): due in 72 hours.
    wh.goto(f"/staff/wh/items/{item}")
    expect(wh.locator("#item-status")).to_have_attribute("data-status", "released")
    expect(wh.locator("#item-released")).to_contain_text(invoice_number)
    expect(wh.locator(".item-line .clock")).to_have_attribute("data-clock", "on_track")
    expect(wh.locator("#item-due")).to_contain_text("2026-11-28 12:00")

    # The warehouse ships a spare and records the delivery.
    wh.locator("#action-ship").click()
    expect(wh.locator("#replacement_serial")).to_be_focused()
    wh.fill("#replacement_serial", "TK3F-S0001")
    wh.fill("#carrier", "SF Express")
    wh.fill("#tracking_number", "SF5005006007")
    wh.click("#ship-submit")
    expect(wh.locator("#shipped-serial")).to_have_text("TK3F-S0001")
    wh.goto(f"/staff/wh/items/{item}/deliver")
    expect(wh.locator("#delivered_at")).to_have_value("2026-11-25T12:00")
    wh.fill("#received_by", "陈静")
    wh.click("#deliver-submit")
    expect(wh.locator(".flash")).to_contain_text("within the 72-hour target")
    expect(wh.locator("#item-status")).to_have_attribute("data-status", "closed")
    expect(wh.locator(".item-line .clock")).to_have_attribute("data-clock", "met")
    expect(wh.locator("#item-delivered")).to_contain_text("陈静")
    width = wh.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"{wh.url} scrolls sideways: {width}px wide"

    # The customer: the invoice shows paid with both payments; the RMA shows delivered.
    customer.goto(f"/portal/invoices/{invoice_number}")
    expect(customer.locator("#invoice-status")).to_have_text("Paid")
    expect(customer.locator("#paid-total")).to_have_text("361.60 CNY")
    expect(customer.locator("#outstanding")).to_have_text("0.00 CNY")
    expect(customer.locator("#payments tbody tr")).to_have_count(2)
    customer.goto(f"/portal/rmas/{number}")
    row = customer.locator('tr[data-serial="TK3F-C0001"]')
    expect(row.locator(".clock")).to_have_attribute("data-clock", "met")
    expect(row).to_contain_text("SF5005006007")
    expect(row.locator("a.item-quote")).to_have_count(0)  # nothing left to accept

    # The invoice and both payment e-mails go out on the next tick.
    _cli(server, "tick")
    about_invoice = [m for m in _mails_to(mailbox, contact, mail_mark)
                     if invoice_number in str(m["Subject"])]
    assert len(about_invoice) == 3, [str(m["Subject"]) for m in about_invoice]
    invoice_mail = next(m for m in about_invoice if "due" in str(m["Subject"]))
    assert [a.get_filename() for a in invoice_mail.iter_attachments()] == [
        f"{invoice_number}.pdf"]
