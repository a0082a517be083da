"""Invoices, payments, credit notes, release on credit and paid support
(rma/services/invoices.py, rma/services/contracts.py; issue 5: R-C3, D-3, D-5).

Quotes go through the real paths: a paid item (``finance_helpers.paid_item``) is quoted
by the warehouse services, the customer accepts in the portal (``quotes.accept_quote``),
which issues the invoice. The test clock says 2026-11-25 12:00 in Shanghai; one paid TK3
item is quoted 361.60 CNY (300.00 + 39.00 VAT, shipping 20.00 + 2.60 VAT)."""

from __future__ import annotations

import io
import threading
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from pypdf import PdfReader
from sqlalchemy import func, select

from rma.extensions import db
from rma.models import (
    AuditEvent,
    Customer,
    Invoice,
    InvoiceKind,
    InvoiceStatus,
    ItemStatus,
    NumberSequence,
    OutboxMessage,
    Payment,
    Quote,
    QuoteStatus,
    Rma,
    RmaEvent,
    SupportPeriod,
)
from rma.services import (
    ConflictError,
    ForbiddenError,
    NotFoundError,
    ValidationError,
    contracts,
    invoices,
    quotes,
)
from rma.services import warehouse as wh
from rma.services.rmas import timeline
from tests.conftest import PG_URL
from tests.rma.finance_helpers import (
    ONE_ITEM_GROSS,
    build_finance_world,
    open_quote_for,
    paid_item,
)
from tests.rma.test_warehouse import actor, at, item, png, user

NOW = datetime(2026, 11, 25, 4, 0, tzinfo=UTC)
ALICE = "alice@a.example"  # customer A (Acme Bank), English
BOB = "bob@b.example"  # customer B (Beta Bank), English

needs_postgres = pytest.mark.parametrize("database_url", [
    pytest.param("postgresql", marks=pytest.mark.skipif(not PG_URL, reason="needs PostgreSQL"))
], indirect=True)


@pytest.fixture
def world(app, make_model, make_customer, make_user):
    return build_finance_world(app, make_model, make_customer, make_user)


@pytest.fixture
def ctx(app):
    """A request context in English: messages are compared as written."""
    with app.test_request_context(headers={"Accept-Language": "en"}):
        yield app


def count(model, *where) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def audits(action: str) -> list[AuditEvent]:
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == action)
                                   .order_by(AuditEvent.id)))


def fresh(number: str) -> Invoice:
    return db.session.scalar(select(Invoice).where(Invoice.number == number)
                             .execution_options(populate_existing=True))


def accept(rma_number: str, who: str = ALICE) -> Invoice:
    """The customer accepts the RMA's open quote in the portal: the invoice."""
    quote = open_quote_for(rma_number)
    assert quote is not None, f"no open quote for {rma_number}"
    return quotes.accept_quote(actor(who), quote.number, via="portal")


def invoiced(app, world, serial: str = "TK3-A0001") -> tuple[str, int, str]:
    """A paid item of customer A, quoted and accepted: (rma number, item id, invoice)."""
    number, item_id = paid_item(app, world, serial)
    return number, item_id, accept(number).number


def pay(number: str, amount: str, who: str = "fay", **kw):
    kw.setdefault("received_on", date(2026, 11, 25))
    kw.setdefault("method", "bank_transfer")
    return invoices.record_payment(actor(who), number, amount=amount, **kw)


def pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def texts(rma_number: str) -> list[str]:
    rma = db.session.scalar(select(Rma).where(Rma.number == rma_number)
                            .execution_options(populate_existing=True))
    return [entry.text for entry in timeline(rma, user(ALICE))]


# -- issuing (D-5) ----------------------------------------------------------------------
def test_D_5_accepting_a_quote_issues_the_invoice_with_billing_lines_and_pdf(ctx, world):
    contracts.set_billing(actor("fay"), world["a"], billing_name="Acme Bank Ltd. 财务部",
                          billing_address="1 Bund Road\nShanghai", tax_id="91310000X",
                          billing_email="ap@a.example", language="en", credit_terms=False,
                          payment_terms_days=45)
    rma_number, item_id = paid_item(ctx, world)
    quote_number = open_quote_for(rma_number).number
    got = accept(rma_number)
    invoice = fresh(got.number)
    quote = db.session.scalar(select(Quote).where(Quote.number == quote_number))
    assert (invoice.number, invoice.kind, invoice.status, invoice.year, invoice.sequence) == (
        "INV-2026-000001", InvoiceKind.INVOICE, InvoiceStatus.UNPAID, 2026, 1)
    assert invoice.quote_id == quote.id and quote.status == QuoteStatus.ACCEPTED
    assert (invoice.issued_on, invoice.due_on) == (date(2026, 11, 25), date(2027, 1, 9))
    assert (invoice.billing_name, invoice.billing_address, invoice.tax_id) == (
        "Acme Bank Ltd. 财务部", "1 Bund Road\nShanghai", "91310000X")
    assert invoice.contract_number == world["contract_a"]
    assert (invoice.net_total, invoice.vat_total, invoice.gross_total, invoice.outstanding) == (
        Decimal("320.00"), Decimal("41.60"), ONE_ITEM_GROSS, ONE_ITEM_GROSS)
    assert [line.as_audit() for line in invoice.lines] == [
        line.as_audit() for line in quote.lines]
    assert [line.item_id for line in invoice.lines] == [item_id, None]
    # The billing details are copied: a later change leaves the issued invoice alone.
    contracts.set_billing(actor("fay"), world["a"], billing_name="Renamed", billing_address="",
                          tax_id="", billing_email="", language="en", credit_terms=False,
                          payment_terms_days=30)
    assert fresh("INV-2026-000001").billing_name == "Acme Bank Ltd. 财务部"
    # Audit, the customer's timeline, and the e-mail with the PDF in the invoice's language.
    (audit,) = audits("invoice.issued")
    assert audit.entity_id == "INV-2026-000001" and audit.after["quote"] == quote_number
    assert audit.after["gross_total"] == "361.60" and len(audit.after["lines"]) == 2
    assert ("Invoice INV-2026-000001: 361.60 CNY including VAT, to pay by 2027-01-09."
            in texts(rma_number))
    mail = db.session.scalar(select(OutboxMessage)
                             .where(OutboxMessage.template == "invoice_issued"))
    assert (mail.to_address, mail.language) == ("ap@a.example", "en")
    assert "INV-2026-000001" in mail.subject and "361.60 CNY" in mail.subject
    assert "http://127.0.0.1:8000/portal/invoices/INV-2026-000001" in mail.body_text
    assert f"RMA {rma_number}" in mail.body_text
    (attachment,) = mail.attachments
    assert (attachment.filename, attachment.content_type) == (
        "INV-2026-000001.pdf", "application/pdf")
    text = pdf_text(attachment.data)
    assert "INV-2026-000001" in text and "Acme Bank Ltd. 财务部" in text
    assert "361.60" in text and rma_number in text


def test_D_5_invoice_e_mail_in_chinese_to_the_rma_contact_without_a_billing_e_mail(
        ctx, world):
    rma_number, _item_id = paid_item(ctx, world)
    rma = db.session.scalar(select(Rma).where(Rma.number == rma_number))
    rma.language = "zh_CN"
    db.session.commit()
    quote = open_quote_for(rma_number)
    quote.language = "zh_CN"  # as if quoted for a Chinese RMA
    db.session.commit()
    invoice = accept(rma_number)
    assert invoice.language == "zh_CN"
    mail = db.session.scalar(select(OutboxMessage)
                             .where(OutboxMessage.template == "invoice_issued"))
    assert (mail.to_address, mail.language) == (rma.contact_email, "zh_CN")
    assert "/portal/invoices/INV-2026-000001" in mail.body_text


def test_D_5_invoice_numbers_are_gapless_per_china_year(ctx, world):
    first = invoiced(ctx, world, "TK3-A0001")[2]
    second = invoiced(ctx, world, "TK3-A0002")[2]
    assert (first, second) == ("INV-2026-000001", "INV-2026-000002")
    # 2027-01-01 00:30 in Shanghai is still 2026-12-31 in UTC: China decides the year.
    at(ctx, "2026-12-31T16:30:00+00:00")
    third = invoiced(ctx, world, "TK3-A0003")[2]
    fourth = invoiced(ctx, world, "TK3-A0004")[2]
    assert (third, fourth) == ("INV-2027-000001", "INV-2027-000002")
    assert fresh(third).issued_on == date(2027, 1, 1) and fresh(third).year == 2027
    assert db.session.scalars(select(NumberSequence.last_value).where(
        NumberSequence.name == "invoice").order_by(NumberSequence.year)).all() == [2, 2]


def test_D_5_a_number_taken_in_a_rolled_back_transaction_is_reused(ctx, world):
    rma_number, _item_id = paid_item(ctx, world)
    quote = open_quote_for(rma_number)
    taken = invoices.issue_invoice_for_quote(quote, actor("fay"), NOW)
    assert taken.number == "INV-2026-000001"
    db.session.rollback()  # e.g. the acceptance failed after the number was taken
    assert count(Invoice) == 0 and count(OutboxMessage, OutboxMessage.template ==
                                         "invoice_issued") == 0
    assert accept(rma_number).number == "INV-2026-000001"  # no gap
    assert invoiced(ctx, world, "TK3-A0002")[2] == "INV-2026-000002"


def test_D_5_a_failed_acceptance_leaves_no_gap(ctx, world):
    rma_number, _item_id = paid_item(ctx, world)
    quote_number = open_quote_for(rma_number).number
    at(ctx, NOW + timedelta(days=31))  # the quote expired: refused after the lock
    with pytest.raises(ConflictError):
        quotes.accept_quote(actor(ALICE), quote_number, via="portal")
    assert count(Invoice) == 0
    at(ctx, NOW)
    assert accept(rma_number).number == "INV-2026-000001"


def _race(app, quote_numbers: list[str]) -> list:
    """Each thread (own app context, own session) accepts one quote at the same moment."""
    barrier = threading.Barrier(len(quote_numbers))
    results: list = [None] * len(quote_numbers)

    def run(index: int, number: str) -> None:
        with app.test_request_context(headers={"Accept-Language": "en"}):
            try:
                who = actor(ALICE)
                barrier.wait()
                results[index] = quotes.accept_quote(who, number, via="portal").number
            except Exception as error:  # noqa: BLE001 - the test reports any error
                results[index] = ("crash", repr(error))
            finally:
                db.session.remove()

    threads = [threading.Thread(target=run, args=(i, n)) for i, n in enumerate(quote_numbers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return results


@needs_postgres
@pytest.mark.parametrize("issuers", [2, 8])
def test_D_5_concurrent_invoices_get_consecutive_numbers_no_gap_no_duplicate(
        app, world, issuers):
    quote_numbers = []
    for n in range(1, issuers + 1):
        rma_number, _item_id = paid_item(app, world, f"TK3-A{n:04d}")
        with app.app_context():
            quote_numbers.append(open_quote_for(rma_number).number)
    results = _race(app, quote_numbers)
    assert sorted(results) == [f"INV-2026-{n:06d}" for n in range(1, issuers + 1)], results
    with app.app_context():
        rows = db.session.execute(select(Invoice.sequence, Quote.number)
                                  .join(Quote, Quote.id == Invoice.quote_id)).all()
        assert sorted(seq for seq, _q in rows) == list(range(1, issuers + 1))
        assert dict((q, f"INV-2026-{s:06d}") for s, q in rows) == dict(
            zip(quote_numbers, results, strict=True))
        assert db.session.scalar(select(NumberSequence.last_value).where(
            NumberSequence.name == "invoice", NumberSequence.year == 2026)) == issuers


# -- payments (D-3) ---------------------------------------------------------------------
def test_D_3_partial_payments_add_up_and_full_payment_releases_and_starts_the_clock(
        ctx, world):
    rma_number, item_id, number = invoiced(ctx, world)
    first = pay(number, "200.00", reference="BOC-1")
    invoice = fresh(number)
    assert (invoice.status, invoice.paid_total, invoice.outstanding) == (
        InvoiceStatus.PARTIALLY_PAID, Decimal("200.00"), Decimal("161.60"))
    assert (first.amount, first.method, first.reference) == (
        Decimal("200.00"), "bank_transfer", "BOC-1")
    assert item(item_id).status == ItemStatus.WAITING_PAYMENT
    assert item(item_id).clock_started_at is None  # D-3: no clock before payment
    paid_at = NOW + timedelta(days=2, hours=3)
    at(ctx, paid_at)
    pay(number, "161.60", method="online", received_on="2026-11-27")
    invoice = fresh(number)
    assert (invoice.status, invoice.paid_total, invoice.outstanding, invoice.settled_at) == (
        InvoiceStatus.PAID, ONE_ITEM_GROSS, Decimal("0.00"), paid_at)
    released = item(item_id)
    assert released.status == ItemStatus.RELEASED
    assert released.released_at == released.clock_started_at == paid_at
    assert released.due_at == paid_at + timedelta(hours=72)  # D-3 + R-R3
    assert released.release_note == f"paid: {number}"
    assert [p.amount for p in invoice.payments] == [Decimal("200.00"), Decimal("161.60")]
    # Audit rows, timeline and e-mails.
    assert [a.after["amount"] for a in audits("payment.recorded")] == ["200.00", "161.60"]
    applied = audits("invoice.payment_applied")
    assert [(a.before["status"], a.after["status"]) for a in applied] == [
        ("unpaid", "partially_paid"), ("partially_paid", "paid")]
    (release_audit,) = audits("rma_item.released")
    assert release_audit.after["release_note"] == f"paid: {number}"
    shown = texts(rma_number)
    assert (f"A payment of 200.00 CNY was received for invoice {number}; 161.60 CNY is "
            "still due.") in shown
    assert f"A payment of 161.60 CNY was received for invoice {number}." in shown
    assert f"Invoice {number} is paid in full." in shown
    assert any(t.startswith("The paid replacement for TK3-A0001 was released for shipping; "
                            "it is due on site by 2026-11-30 15:00") for t in shown)
    mails = db.session.scalars(select(OutboxMessage).where(
        OutboxMessage.template == "payment_received").order_by(OutboxMessage.id)).all()
    assert [m.subject for m in mails] == [
        f"Payment received for invoice {number}", f"Invoice {number} is paid: thank you"]
    assert "Still due: 161.60 CNY" in mails[0].body_text
    assert "The invoice is paid in full." in mails[1].body_text
    assert f"/portal/invoices/{number}" in mails[1].body_text
    # The released item now ships (D-3).
    wh.ship(actor("wendy"), item_id, "TK3-SP0001", "SF", "SF1")
    assert item(item_id).status == ItemStatus.SHIPPED


def test_D_3_overpayment_is_refused_with_the_exact_message_and_nothing_written(ctx, world):
    _rma, item_id, number = invoiced(ctx, world)
    pay(number, "100.00")
    before = (count(Payment), count(AuditEvent), count(OutboxMessage), count(RmaEvent))
    with pytest.raises(ValidationError) as error:
        pay(number, "600.00")
    assert error.value.field == "amount"
    assert error.value.message == (
        "The payment of 600.00 CNY is more than the 261.60 CNY still due on "
        "INV-2026-000001; nothing was recorded.")
    assert (count(Payment), count(AuditEvent), count(OutboxMessage), count(RmaEvent)) == before
    invoice = fresh(number)
    assert (invoice.paid_total, invoice.status) == (Decimal("100.00"),
                                                    InvoiceStatus.PARTIALLY_PAID)
    assert item(item_id).status == ItemStatus.WAITING_PAYMENT


def test_D_3_a_payment_on_a_settled_invoice_or_a_credit_note_is_refused(ctx, world):
    _rma, _item_id, number = invoiced(ctx, world)
    pay(number, "361.60")
    with pytest.raises(ConflictError) as error:
        pay(number, "0.01")
    assert error.value.message == f"{number} is already settled: nothing more is due on it."
    _rma2, _item2, second = invoiced(ctx, world, "TK3-A0002")
    note = invoices.issue_credit_note(actor("fay"), second, amount="10.00", reason="discount")
    with pytest.raises(ConflictError) as error:
        pay(note.number, "1.00")
    assert "is a credit note" in error.value.message
    assert count(Payment) == 1


@pytest.mark.parametrize("field, kwargs, fragment", [
    ("amount", {"amount": "0"}, "more than zero"),
    ("amount", {"amount": "-5"}, "more than zero"),
    ("amount", {"amount": "1.234"}, "at most two decimals"),
    ("amount", {"amount": "abc"}, "Enter the amount"),
    ("amount", {"amount": 1.5}, "Enter the amount"),  # never a float
    ("received_on", {"received_on": "2026-11-26"}, "2026-11-26 is in the future"),
    ("received_on", {"received_on": "yesterday"}, "YYYY-MM-DD"),
    ("method", {"method": "barter"}, "bank_transfer, cheque, cash, online"),
    ("reference", {"reference": "x" * 101}, "At most 100 characters"),
])
def test_payment_input_is_checked_before_anything_is_written(ctx, world, field, kwargs,
                                                               fragment):
    _rma, _item_id, number = invoiced(ctx, world)
    values = {"amount": "10.00", **kwargs}
    before = count(AuditEvent)
    with pytest.raises(ValidationError) as error:
        pay(number, **values)
    assert error.value.field == field and fragment in error.value.message
    assert (count(Payment), count(AuditEvent)) == (0, before)


def test_a_payment_on_an_unknown_invoice_is_404(ctx, world):
    with pytest.raises(NotFoundError) as error:
        pay("INV-2026-999999", "1.00")
    assert error.value.message == "There is no invoice INV-2026-999999."


# -- roles ------------------------------------------------------------------------------
@pytest.mark.parametrize("who", ["sam", "wendy", "mia", "adam", ALICE])
def test_only_finance_records_payments_credit_notes_and_releases_on_credit(ctx, world, who):
    _rma, item_id, number = invoiced(ctx, world)
    contracts.set_billing(actor("fay"), world["a"], billing_name="", billing_address="",
                          tax_id="", billing_email="", language="en", credit_terms=True,
                          payment_terms_days=30)
    before = count(AuditEvent)
    with pytest.raises(ForbiddenError):
        pay(number, "10.00", who=who)
    with pytest.raises(ForbiddenError):
        invoices.issue_credit_note(actor(who), number, amount="10.00", reason="x")
    with pytest.raises(ForbiddenError):
        invoices.release_on_credit(actor(who), item_id, "trusted")
    assert count(AuditEvent) == before and count(Payment) == 0
    assert count(Invoice, Invoice.kind == InvoiceKind.CREDIT_NOTE) == 0
    assert item(item_id).status == ItemStatus.WAITING_PAYMENT


# -- credit notes -----------------------------------------------------------------------
def test_credit_notes_partial_then_full_credit_the_invoice_and_release_nothing(ctx, world):
    _rma, item_id, number = invoiced(ctx, world)
    with pytest.raises(ValidationError) as error:
        invoices.issue_credit_note(actor("fay"), number, amount="10.00", reason="  ")
    assert error.value.field == "reason"
    with pytest.raises(ValidationError) as error:
        invoices.issue_credit_note(actor("fay"), number, amount="400.00", reason="x")
    assert error.value.field == "amount" and "361.60 CNY still due" in error.value.message
    assert count(Invoice) == 1

    note = invoices.issue_credit_note(actor("fay"), number, amount="100.00",
                                      reason="Goodwill discount")
    assert (note.number, note.kind, note.status, note.reason) == (
        "CN-2026-000001", InvoiceKind.CREDIT_NOTE, InvoiceStatus.ISSUED, "Goodwill discount")
    assert note.credited_invoice.number == number and note.quote_id is None
    (line,) = note.lines
    # net = 100.00 / 1.13 = 88.495... → 88.50 (half up); VAT = the rest.
    assert (line.kind, line.vat_rate, line.net, line.vat, line.gross) == (
        "credit", Decimal("0.1300"), Decimal("88.50"), Decimal("11.50"), Decimal("100.00"))
    assert (note.net_total, note.vat_total, note.gross_total, note.outstanding) == (
        Decimal("88.50"), Decimal("11.50"), Decimal("100.00"), Decimal("0.00"))
    assert line.description == f"Credit on invoice {number}: Goodwill discount"
    invoice = fresh(number)
    assert (invoice.status, invoice.credited_total, invoice.outstanding) == (
        InvoiceStatus.UNPAID, Decimal("100.00"), Decimal("261.60"))

    rest = invoices.issue_credit_note(actor("fay"), number, reason="Quote withdrawn")
    assert (rest.number, rest.gross_total) == ("CN-2026-000002", Decimal("261.60"))
    invoice = fresh(number)
    assert (invoice.status, invoice.credited_total, invoice.outstanding) == (
        InvoiceStatus.CREDITED, ONE_ITEM_GROSS, Decimal("0.00"))
    assert invoice.settled_at == NOW
    assert [n.number for n in invoice.credit_notes] == ["CN-2026-000001", "CN-2026-000002"]
    assert item(item_id).status == ItemStatus.WAITING_PAYMENT  # credited: nothing ships
    assert [a.entity_id for a in audits("credit_note.issued")] == [
        "CN-2026-000001", "CN-2026-000002"]
    assert [(a.before["status"], a.after["status"]) for a in audits("invoice.credited")] == [
        ("unpaid", "unpaid"), ("unpaid", "credited")]
    with pytest.raises(ConflictError):
        invoices.issue_credit_note(actor("fay"), number, amount="1.00", reason="x")
    # The credit note's PDF references the invoice and gives the reason.
    text = pdf_text(invoices.render_invoice_pdf(fresh("CN-2026-000001")))
    assert "CN-2026-000001" in text and number in text and "Goodwill discount" in text


def test_D_3_a_credit_note_that_completes_a_part_paid_invoice_settles_it(ctx, world):
    _rma, item_id, number = invoiced(ctx, world)
    pay(number, "300.00")
    invoices.issue_credit_note(actor("fay"), number, reason="Shipping waived")
    invoice = fresh(number)
    assert (invoice.status, invoice.paid_total, invoice.credited_total) == (
        InvoiceStatus.PAID, Decimal("300.00"), Decimal("61.60"))
    assert item(item_id).status == ItemStatus.RELEASED and item(item_id).due_at == (
        NOW + timedelta(hours=72))


# -- release on credit (D-3) ------------------------------------------------------------
def test_D_3_release_on_credit_needs_credit_terms(ctx, world):
    _rma, item_id, _number = invoiced(ctx, world)
    before = (wh._snapshot(item(item_id)), count(AuditEvent), count(RmaEvent))
    with pytest.raises(ConflictError) as error:
        invoices.release_on_credit(actor("fay"), item_id, "Trusted customer")
    assert error.value.message == (
        "Acme Bank has no credit terms: the item ships once its invoice is paid (D-3).")
    assert (wh._snapshot(item(item_id)), count(AuditEvent), count(RmaEvent)) == before
    with pytest.raises(ValidationError) as error:
        invoices.release_on_credit(actor("fay"), item_id, "")
    assert error.value.field == "reason"


def test_D_3_release_on_credit_starts_the_clock_and_payment_later_releases_nothing_more(
        ctx, world):
    rma_number, item_id, number = invoiced(ctx, world)
    contracts.set_billing(actor("fay"), world["a"], billing_name="", billing_address="",
                          tax_id="", billing_email="", language="en", credit_terms=True,
                          payment_terms_days=30)
    later = NOW + timedelta(hours=5)
    at(ctx, later)
    got = invoices.release_on_credit(actor("fay"), item_id, "Framework agreement, 60 days")
    assert got.status == ItemStatus.RELEASED
    assert got.released_at == got.clock_started_at == later
    assert got.due_at == later + timedelta(hours=72)
    assert got.release_note == "Framework agreement, 60 days"
    (audit,) = audits("rma_item.released_on_credit")
    assert audit.after["release_note"] == "Framework agreement, 60 days"
    assert audit.before["status"] == "waiting_payment" and audit.after["status"] == "released"
    assert audit.actor_label == "fay@vendor.example"
    assert ("The paid replacement for TK3-A0001 was released for shipping on credit; it is "
            "due on site by 2026-11-28 17:00 (China time).") in texts(rma_number)
    # Paid later: the invoice settles; the item is not released again, its clock stays.
    at(ctx, later + timedelta(days=1))
    pay(number, "361.60")
    assert fresh(number).status == InvoiceStatus.PAID
    assert item(item_id).clock_started_at == later and audits("rma_item.released") == []


# -- paid support after the term (R-C3) -------------------------------------------------
def test_R_C3_a_paid_support_invoice_extends_the_cover_only_once_paid(ctx, world):
    beta = db.session.get(Customer, world["b"])  # term 2026-01-06 .. 2027-01-05
    assert contracts.cover_ends_on(beta) == date(2027, 1, 5)
    after_term = date(2027, 3, 1)
    assert contracts.support_status(beta, after_term).covered is False
    quote = quotes.create_support_quote(actor("fay"), world["contract_b"])
    invoice = quotes.accept_quote(actor(BOB), quote.number, via="portal")
    assert invoice.gross_total == Decimal("5650.00")  # 5000.00 + 13 % VAT
    assert count(RmaEvent) == 0  # no RMA, no timeline
    pay(invoice.number, "5000.00")
    assert count(SupportPeriod) == 0  # not before it is paid in full
    assert contracts.support_status(beta, after_term).covered is False
    pay(invoice.number, "650.00", who="fay")
    period = db.session.scalar(select(SupportPeriod))
    # Continues the term without a gap (renewal_term_from, Month rule).
    assert (period.starts_on, period.ends_on, period.months) == (
        date(2027, 1, 6), date(2028, 1, 5), 12)
    assert period.invoice_id == fresh(invoice.number).id
    status = contracts.support_status(beta, after_term)
    assert (status.covered, status.reason, status.rule) == (True, "paid_support", "R-C3")
    assert contracts.support_status(beta, date(2028, 1, 6)).covered is False
    assert contracts.cover_ends_on(beta) == date(2028, 1, 5)
    (audit,) = audits("support_period.created")
    assert audit.after["starts_on"] == "2027-01-06" and audit.after["invoice"] == \
        invoice.number


def test_R_C3_support_bought_after_a_gap_starts_on_the_day_it_is_paid(ctx, world,
                                                                    make_customer):
    contract = make_customer("Old Bank", "2024-01-01")  # term ended 2025-01-01
    old = db.session.scalar(select(Customer).where(Customer.contract_number == contract))
    quote = quotes.create_support_quote(actor("fay"), contract)
    invoice = quotes.accept_quote(actor("fay"), quote.number, via="email",
                                  document=("answer.png", png()))
    at(ctx, NOW + timedelta(days=3))
    pay(invoice.number, str(invoice.gross_total), received_on="2026-11-28")
    period = db.session.scalar(select(SupportPeriod))
    assert (period.starts_on, period.ends_on) == (date(2026, 11, 28), date(2027, 11, 27))
    assert contracts.support_status(old, date(2026, 11, 27)).covered is False
    assert contracts.support_status(old, date(2026, 11, 28)).covered is True


def test_R_C3_support_status_without_acceptance_is_not_covered(ctx, world, make_customer):
    contract = make_customer("New Bank", None)
    customer = db.session.scalar(select(Customer).where(Customer.contract_number == contract))
    assert contracts.cover_ends_on(customer) is None
    assert contracts.support_status(customer, date(2026, 11, 25)).reason == "not_accepted"


# -- billing details --------------------------------------------------------------------
def test_set_billing_is_for_finance_and_admin_and_audited(ctx, world):
    values = dict(billing_name="Acme Bank AP", billing_address="PO Box 1", tax_id="T-1",
                  billing_email=" AP@A.Example ", language="zh_CN", credit_terms=True,
                  payment_terms_days=60)
    for who in ("sam", "wendy", "mia", ALICE):
        with pytest.raises(ForbiddenError):
            contracts.set_billing(actor(who), world["a"], **values)
    customer = contracts.set_billing(actor("adam"), world["a"], **values)
    assert (customer.billing_email, customer.language, customer.credit_terms,
            customer.payment_terms_days) == ("ap@a.example", "zh_CN", True, 60)
    (audit,) = audits("customer.billing_updated")
    assert audit.before["credit_terms"] is False and audit.after["credit_terms"] is True
    assert audit.after["billing_name"] == "Acme Bank AP"


@pytest.mark.parametrize("field, value", [
    ("billing_email", "not-an-address"),
    ("language", "fr"),
    ("payment_terms_days", 366),
    ("payment_terms_days", -1),
    ("credit_terms", "yes"),
    ("billing_name", "x" * 201),
])
def test_set_billing_refuses_bad_values_naming_the_field(ctx, world, field, value):
    values = dict(billing_name="", billing_address="", tax_id="", billing_email="",
                  language="en", credit_terms=False, payment_terms_days=30)
    values[field] = value
    with pytest.raises(ValidationError) as error:
        contracts.set_billing(actor("fay"), world["a"], **values)
    assert error.value.field == field
    assert count(AuditEvent, AuditEvent.action == "customer.billing_updated") == 0
    with pytest.raises(NotFoundError):
        contracts.set_billing(actor("fay"), 999999, **{**values, field: "" if field in (
            "billing_email", "billing_name") else {"language": "en",
                                                   "payment_terms_days": 30,
                                                   "credit_terms": False}[field]})


# -- reading ----------------------------------------------------------------------------
def test_invoices_are_scoped_to_the_customer_and_listed_for_finance(ctx, world):
    _rma, _item_id, number = invoiced(ctx, world)
    pay(number, "61.60", reference="R-9")
    note = invoices.issue_credit_note(actor("fay"), number, amount="0.10", reason="Rounding")
    assert invoices.get_invoice(user(ALICE), number.lower()).number == number
    for who in ("sam@vendor.example", "wendy@vendor.example"):  # linked from an RMA
        assert invoices.get_invoice(user(who), number).number == number
    with pytest.raises(NotFoundError) as foreign:
        invoices.get_invoice(user(BOB), number)
    with pytest.raises(NotFoundError) as unknown:
        invoices.get_invoice(user(BOB), "INV-2026-999999")
    assert foreign.value.message.replace(number, "N") == unknown.value.message.replace(
        "INV-2026-999999", "N")  # no existence leak
    items, total = invoices.list_invoices(user("fay@vendor.example"))
    assert total == 2 and [i.number for i in items] == [note.number, number]
    assert invoices.list_invoices(user("mia@vendor.example"), status="partially_paid")[1] == 1
    assert invoices.list_invoices(user(ALICE), kind="invoice")[1] == 1
    assert invoices.list_invoices(user(BOB)) == ([], 0)
    assert invoices.list_invoices(user("fay@vendor.example"), customer_id=world["b"])[1] == 0
    with pytest.raises(ForbiddenError):
        invoices.list_invoices(user("sam@vendor.example"))
    with pytest.raises(ValidationError) as error:
        invoices.list_invoices(user("fay@vendor.example"), status="lost")
    assert error.value.field == "status"
    body = invoices.invoice_json(invoices.get_invoice(user(ALICE), number))
    assert {k: body[k] for k in ("number", "kind", "status", "customer_contract", "issued_on",
                                 "due_on", "paid_total", "credited_total", "outstanding",
                                 "credit_notes")} == {
        "number": number, "kind": "invoice", "status": "partially_paid",
        "customer_contract": world["contract_a"], "issued_on": "2026-11-25",
        "due_on": "2026-12-25", "paid_total": "61.60", "credited_total": "0.10",
        "outstanding": "299.90", "credit_notes": [note.number]}
    assert body["quote_number"].startswith("Q-2026-")
    assert body["totals"] == {"net": "320.00", "vat": "41.60", "gross": "361.60"}
    assert body["payments"] == [{"amount": "61.60", "received_on": "2026-11-25",
                                 "method": "bank_transfer", "reference": "R-9"}]
    assert body["lines"][0]["serial"] == "TK3-A0001"
    assert (body["lines"][0]["unit_price"], body["lines"][0]["vat"]) == ("300.00", "39.00")
    credit = invoices.invoice_json(invoices.get_invoice(user(ALICE), note.number))
    assert (credit["kind"], credit["credits"], credit["reason"], credit["due_on"]) == (
        "credit_note", number, "Rounding", None)


def test_invoice_document_in_the_invoice_language(ctx, world):
    _rma, _item_id, number = invoiced(ctx, world)
    invoice = fresh(number)
    doc = invoices.invoice_document(invoice)
    assert (doc.kind, doc.number, doc.language, doc.due_on, doc.references) == (
        "invoice", number, "en", date(2026, 12, 25), None)
    assert doc.gross_total == ONE_ITEM_GROSS and len(doc.lines) == 2
    assert doc.notes == (f"Please pay by 2026-12-25, quoting the invoice number {number}.",)
    invoice.language = "zh_CN"
    text = pdf_text(invoices.render_invoice_pdf(invoice))
    assert number in text and "361.60" in text
    db.session.rollback()
