"""Quotes (rma/services/quotes.py, issue 5): created on a paid decision (R-W4, R-W5) and
kept in step with the RMA's items (superseded, withdrawn on an override to free, D-6);
accepted (→ invoice), declined (unit returned or scrapped), expired once; who may answer
how; customer scoping (404, never 403); audit, timeline and e-mails in the quote's
language. The test clock says 2026-11-25 12:00 in Shanghai."""

from __future__ import annotations

import io
from datetime import date
from decimal import Decimal

import pytest
from PIL import Image
from sqlalchemy import func, select

from rma import cli
from rma.extensions import db
from rma.models import (
    AuditEvent,
    Customer,
    Invoice,
    ItemStatus,
    OutboxMessage,
    Quote,
    QuoteStatus,
    Rma,
    RmaEvent,
    RmaStatus,
    Unit,
    UnitStatus,
)
from rma.services import ConflictError, ForbiddenError, NotFoundError, ValidationError, quotes
from rma.services import warehouse as wh
from rma.services.audit import Actor
from rma.services.rmas import PhotoInput, timeline
from tests.conftest import FIXED_NOW
from tests.rma.finance_helpers import (
    ONE_ITEM_GROSS,
    build_finance_world,
    open_quote_for,
    paid_item,
    quotes_for,
)
from tests.rma.test_rmas import submit, user
from tests.rma.test_warehouse import NOW, actor, at, item, open_items


@pytest.fixture
def world(app, make_model, make_customer, make_user):
    return build_finance_world(app, make_model, make_customer, make_user)


@pytest.fixture
def ctx(app):
    with app.test_request_context(headers={"Accept-Language": "en"}):
        yield app


def customer(email: str = "alice@a.example") -> Actor:
    return Actor(user=user(email))


def count(model, *where) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def audits(action: str) -> list[AuditEvent]:
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == action)
                                   .order_by(AuditEvent.id)))


def mails(template: str) -> list[OutboxMessage]:
    return list(db.session.scalars(select(OutboxMessage).where(
        OutboxMessage.template == template).order_by(OutboxMessage.id)))


def events(kind: str) -> list[RmaEvent]:
    return list(db.session.scalars(select(RmaEvent).where(RmaEvent.kind == kind)
                                   .order_by(RmaEvent.id)))


def pdf_bytes() -> bytes:
    return b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (0, 0, 0)).save(buffer, "PNG")
    return buffer.getvalue()


def receive_and_inspect(number: str, item_id: int, serial: str, cause: str) -> None:
    assert wh.receive(actor("wendy"), number, serial).outcome == "received"
    wh.inspect(actor("wendy"), item_id, cause)


# -- created on a paid decision ---------------------------------------------------------------
def test_R_W4_misuse_in_warranty_issues_a_quote_per_rma(app, ctx, world):
    number, item_id = paid_item(app, world, "TK3-A0001", "misuse_drop")
    quote = open_quote_for(number)
    assert quote is not None and quote.number == "Q-2026-000001"
    assert (str(quote.kind), quote.language, quote.issued_on, quote.valid_until) == (
        "replacement", "en", date(2026, 11, 25), date(2026, 12, 25))
    assert quote.customer_id == world["a"] and quote.issued_at == NOW
    assert [(line.kind, line.item_id, line.serial, line.description, line.quantity,
             line.unit_price, line.vat_rate, line.net, line.vat, line.gross)
            for line in quote.lines] == [
        ("replacement", item_id, "TK3-A0001", "Replacement TK3 token for TK3-A0001 (dropped)",
         1, Decimal("300.00"), Decimal("0.1300"), Decimal("300.00"), Decimal("39.00"),
         Decimal("339.00")),
        ("shipping", None, None, "Shipping", 1, Decimal("20.00"), Decimal("0.1300"),
         Decimal("20.00"), Decimal("2.60"), Decimal("22.60")),
    ]
    assert (quote.net_total, quote.vat_total, quote.gross_total) == (
        Decimal("320.00"), Decimal("41.60"), ONE_ITEM_GROSS)
    # the timeline, the audit, the e-mail with the PDF
    (issued,) = audits("quote.issued")
    assert issued.entity_id == quote.number and issued.actor_label == "wendy@vendor.example"
    assert issued.after["gross_total"] == "361.60" and len(issued.after["lines"]) == 2
    texts = [entry.text for entry in timeline(quote.rma)]
    assert texts[-1] == ("Quote Q-2026-000001 for the paid replacement: 361.60 CNY including "
                         "VAT, valid until 2026-12-25. Accept or decline it in the portal.")
    (mail,) = mails("quote_issued")
    assert (mail.to_address, mail.language) == ("alice@a.example", "en")
    assert "Q-2026-000001" in mail.subject and "361.60" in mail.subject
    assert "http://127.0.0.1:8000/portal/quotes/Q-2026-000001" in mail.body_text
    assert "Replacement TK3 token for TK3-A0001 (dropped)" in mail.body_text
    (attachment,) = mail.attachments
    assert attachment.filename == "Q-2026-000001.pdf"
    assert attachment.content_type == "application/pdf" and attachment.data.startswith(b"%PDF")


def test_R_W5_out_of_warranty_is_quoted(app, ctx, world):
    number, item_id = paid_item(app, world, "TK3-AOLD", "quality_defect")
    assert item(item_id).decision_rule == "R-W5"
    quote = open_quote_for(number)
    assert quote.lines[0].description == "Replacement TK3 token for TK3-AOLD (out of warranty)"


def test_R_W3_a_free_decision_is_not_quoted(ctx, world):
    number, (item_id,) = open_items("TK3-A0001", world=world)
    receive_and_inspect(number, item_id, "TK3-A0001", "quality_defect")
    assert item(item_id).status == ItemStatus.CONFIRMED
    assert count(Quote) == 0 and mails("quote_issued") == []


def test_D4_no_fault_found_is_not_quoted(ctx, world):
    number, (item_id,) = open_items("TK3-A0001", world=world)
    receive_and_inspect(number, item_id, "TK3-A0001", "no_fault_found")
    assert count(Quote) == 0


def test_quote_and_e_mail_in_the_rma_language_zh_CN(ctx, world):
    rma = submit(("TK3-A0003",), email="carol@a.example", world=world, language="zh_CN")
    receive_and_inspect(rma.number, rma.items[0].id, "TK3-A0003", "misuse_water")
    quote = open_quote_for(rma.number)
    assert quote.language == "zh_CN"
    (mail,) = mails("quote_issued")
    assert mail.language == "zh_CN" and mail.to_address == "alice@a.example"
    assert "Q-2026-000001" in mail.body_text and "/portal/quotes/Q-2026-000001" in mail.body_text


def test_remote_paid_confirmation_is_quoted(ctx, world):
    number, (item_id,) = open_items("TK3-A0001", world=world)
    wh.confirm_remote(actor("sam"), item_id, "misuse_heat")
    quote = open_quote_for(number)
    assert [line.item_id for line in quote.lines] == [item_id, None]
    assert "(high temperature)" in quote.lines[0].description


# -- kept in step with the items --------------------------------------------------------------
def test_a_second_paid_item_supersedes_the_open_quote(ctx, world):
    number, (first, second) = open_items("TK3-A0001", "TK3-A0002", world=world)
    receive_and_inspect(number, first, "TK3-A0001", "misuse_drop")
    old = open_quote_for(number)
    receive_and_inspect(number, second, "TK3-A0002", "misuse_physical")
    new = open_quote_for(number)
    old = db.session.get(Quote, old.id, populate_existing=True)
    assert (old.status, old.closed_at, old.superseded_by_id) == (
        QuoteStatus.SUPERSEDED, NOW, new.id)
    assert new.number == "Q-2026-000002"
    assert [line.item_id for line in new.lines] == [first, second, None]  # one shipping
    assert new.gross_total == Decimal("339.00") * 2 + Decimal("22.60")
    assert [a.entity_id for a in audits("quote.superseded")] == [old.number]
    assert "replaces quote Q-2026-000001" in timeline(new.rma)[-1].text
    assert len(mails("quote_issued")) == 2
    with pytest.raises(ConflictError, match="replaced by quote Q-2026-000002"):
        quotes.accept_quote(customer(), old.number, via="portal")


def test_the_same_set_of_items_changes_nothing(ctx, world):
    number, (first, second) = open_items("TK3-A0001", "TK3-A0002", world=world)
    receive_and_inspect(number, first, "TK3-A0001", "misuse_drop")
    quote = open_quote_for(number)
    receive_and_inspect(number, second, "TK3-A0002", "quality_defect")  # free
    assert open_quote_for(number).id == quote.id
    assert count(Quote) == 1


def test_D6_override_to_free_withdraws_the_quote(ctx, world):
    number, (item_id,) = open_items("TK3-A0001", world=world)
    receive_and_inspect(number, item_id, "TK3-A0001", "misuse_drop")
    quote = open_quote_for(number)
    wh.override_decision(actor("mia"), item_id, "free", "goodwill for a key account")
    quote = db.session.get(Quote, quote.id, populate_existing=True)
    assert (quote.status, quote.closed_at) == (QuoteStatus.WITHDRAWN, NOW)
    assert open_quote_for(number) is None
    assert [a.entity_id for a in audits("quote.withdrawn")] == [quote.number]
    assert timeline(quote.rma)[-1].text == (
        "Quote Q-2026-000001 was withdrawn: nothing is left to pay for.")
    with pytest.raises(ConflictError, match="withdrawn"):
        quotes.accept_quote(customer(), quote.number, via="portal")


def test_D6_override_of_one_of_two_items_supersedes_and_override_to_paid_quotes(ctx, world):
    number, (first, second) = open_items("TK3-A0001", "TK3-A0002", world=world)
    receive_and_inspect(number, first, "TK3-A0001", "misuse_drop")
    receive_and_inspect(number, second, "TK3-A0002", "misuse_drop")
    wh.override_decision(actor("mia"), first, "free", "goodwill")
    assert [line.item_id for line in open_quote_for(number).lines] == [second, None]
    wh.override_decision(actor("mia"), first, "paid", "goodwill withdrawn")
    assert [line.item_id for line in open_quote_for(number).lines] == [first, second, None]
    # first alone, first + second, second alone, both again
    assert [q.status for q in quotes_for(number)] == [QuoteStatus.SUPERSEDED] * 3 + [
        QuoteStatus.OPEN]


def test_cancelling_the_paid_item_withdraws_the_quote(ctx, world):
    number, item_id = paid_item(ctx, world)
    wh.cancel_item(actor("sam"), item_id, "customer withdrew")
    assert [q.status for q in quotes_for(number)] == [QuoteStatus.WITHDRAWN]


# -- accepting ----------------------------------------------------------------------------
def test_accept_in_the_portal_issues_the_invoice(ctx, world):
    number, item_id = paid_item(ctx, world)
    quote = open_quote_for(number)
    invoice = quotes.accept_quote(customer(), quote.number, via="portal", note="ok")
    assert isinstance(invoice, Invoice) and invoice.number == "INV-2026-000001"
    assert invoice.quote_id == quote.id and invoice.gross_total == ONE_ITEM_GROSS
    quote = db.session.get(Quote, quote.id, populate_existing=True)
    assert (quote.status, quote.answered_at, quote.answered_via, quote.answer_note) == (
        QuoteStatus.ACCEPTED, NOW, "portal", "ok")
    assert quote.answered_by_id == user("alice@a.example").id
    (accepted,) = audits("quote.accepted")
    assert (accepted.before["status"], accepted.after["status"]) == ("open", "accepted")
    assert accepted.after["invoice"] == "INV-2026-000001"
    assert "Quote Q-2026-000001 was accepted; invoice INV-2026-000001 was issued." in [
        entry.text[:len("Quote Q-2026-000001 was accepted; invoice INV-2026-000001 was "
                        "issued.")] for entry in timeline(quote.rma)]
    assert item(item_id).status == ItemStatus.WAITING_PAYMENT  # ships once paid (D-3)
    assert quotes.quote_json(quote)["invoice_number"] == "INV-2026-000001"
    with pytest.raises(ConflictError, match="already accepted"):
        quotes.accept_quote(customer(), quote.number, via="api")
    assert count(Invoice) == 1


def test_accepted_items_stay_off_a_new_quote(ctx, world):
    number, (first, second) = open_items("TK3-A0001", "TK3-A0002", world=world)
    receive_and_inspect(number, first, "TK3-A0001", "misuse_drop")
    quotes.accept_quote(customer(), open_quote_for(number).number, via="api")
    receive_and_inspect(number, second, "TK3-A0002", "misuse_drop")
    new = open_quote_for(number)
    assert [line.item_id for line in new.lines] == [second, None]
    assert [q.status for q in quotes_for(number)] == [QuoteStatus.ACCEPTED, QuoteStatus.OPEN]


def test_accept_by_id_as_well_as_number(ctx, world):
    number, _ = paid_item(ctx, world)
    quote = open_quote_for(number)
    quotes.accept_quote(customer("carol@a.example"), str(quote.id), via="api")
    assert open_quote_for(number) is None


def test_accept_after_the_last_valid_day_is_refused(app, ctx, world):
    number, _ = paid_item(app, world)
    quote = open_quote_for(number)
    at(app, "2026-12-25T15:59:00+00:00")  # 23:59 on the last valid day in Shanghai
    at(app, "2026-12-25T16:00:00+00:00")  # 00:00 the day after
    with pytest.raises(ConflictError, match="Q-2026-000001 expired on 2026-12-26"):
        quotes.accept_quote(customer(), quote.number, via="portal")
    assert open_quote_for(number).status == QuoteStatus.OPEN and count(Invoice) == 0


def test_accept_on_the_last_valid_day_works(app, ctx, world):
    number, _ = paid_item(app, world)
    at(app, "2026-12-25T15:59:00+00:00")  # 23:59 in Shanghai on the last valid day
    invoice = quotes.accept_quote(customer(), open_quote_for(number).number, via="portal")
    assert invoice.number.startswith("INV-2026-")


# -- who may answer, and how -----------------------------------------------------------------
def test_another_customers_quote_is_not_found(ctx, world):
    number, _ = paid_item(ctx, world)
    quote = open_quote_for(number)
    bob = customer("bob@b.example")
    for call in (lambda: quotes.get_quote(bob.user, quote.number),
                 lambda: quotes.accept_quote(bob, quote.number, via="portal"),
                 lambda: quotes.decline_quote(bob, str(quote.id), via="api")):
        with pytest.raises(NotFoundError) as error:
            call()
        assert error.value.status == 404
    assert open_quote_for(number).status == QuoteStatus.OPEN
    with pytest.raises(NotFoundError):
        quotes.get_quote(bob.user, "Q-2026-999999")
    assert quotes.list_quotes(bob.user) == ([], 0)
    assert quotes.get_quote(user("carol@a.example"), quote.number).id == quote.id
    assert quotes.get_quote(user("wendy@vendor.example"), quote.number).id == quote.id


@pytest.mark.parametrize("who, via", [
    ("sam", "portal"), ("fay", "portal"), ("fay", "api"), ("sam", "fax"), ("mia", "email"),
    ("adam", "fax"), ("alice", "fax"), ("alice", "email"),
])
def test_fax_and_email_answers_are_finances_and_the_portal_the_customers(ctx, world, who,
                                                                          via):
    number, _ = paid_item(ctx, world)
    person = customer() if who == "alice" else actor(who)
    with pytest.raises(ForbiddenError):
        quotes.accept_quote(person, open_quote_for(number).number, via=via,
                            document=("answer.pdf", pdf_bytes()))
    assert open_quote_for(number) is not None


def test_finance_records_a_fax_acceptance_with_the_document(ctx, world):
    number, _ = paid_item(ctx, world)
    ref = open_quote_for(number).number
    with pytest.raises(ValidationError) as error:
        quotes.accept_quote(actor("fay"), ref, via="fax")
    assert error.value.field == "document"
    with pytest.raises(ValidationError, match="not a PDF, JPEG or PNG"):
        quotes.accept_quote(actor("fay"), ref, via="fax",
                            document=("answer.pdf", b"GIF89a not really"))
    with pytest.raises(ValidationError, match="larger than 10 MB"):
        quotes.accept_quote(actor("fay"), ref, via="email",
                            document=PhotoInput("big.pdf", b"%PDF-" + b"0" * (10 * 2**20)))
    with pytest.raises(ValidationError) as error:
        quotes.accept_quote(actor("fay"), ref, via="telegram", document=("a.pdf", pdf_bytes()))
    assert error.value.field == "via"
    assert count(Invoice) == 0
    invoice = quotes.accept_quote(actor("fay"), ref, via="fax", note="signed fax of 25 Nov",
                                  document=PhotoInput("C:\\scans\\answer", pdf_bytes()))
    quote = db.session.get(Quote, invoice.quote_id, populate_existing=True)
    assert (quote.answered_via, quote.document_filename, quote.document_content_type) == (
        "fax", "answer.pdf", "application/pdf")
    assert quote.document_data == pdf_bytes()
    assert quote.answered_by_id == user("fay@vendor.example").id
    assert audits("quote.accepted")[0].after["document"] == "answer.pdf"


def test_finance_records_an_e_mailed_decline_with_a_scan(ctx, world):
    number, item_id = paid_item(ctx, world)
    quote = quotes.decline_quote(actor("fay"), open_quote_for(number).number, via="email",
                                 document=("scan.png", png_bytes()))
    assert (quote.status, quote.answered_via, quote.document_content_type) == (
        QuoteStatus.DECLINED, "email", "image/png")


# -- declining --------------------------------------------------------------------------------
def test_decline_with_return_sends_the_unit_back_as_a_return(ctx, world):
    number, item_id = paid_item(ctx, world)
    quote = quotes.decline_quote(customer(), open_quote_for(number).number, via="portal",
                                 note="too expensive")
    assert (quote.status, quote.decline_disposition, quote.answer_note) == (
        QuoteStatus.DECLINED, "return", "too expensive")
    got = item(item_id)
    assert (got.status, got.decision, got.decision_rule, got.clock_started_at) == (
        ItemStatus.CONFIRMED, "return_unit", "quote_declined", None)
    assert got.computed_decision == "paid"
    (declined,) = audits("rma_item.declined")
    assert (declined.before["status"], declined.after["status"]) == (
        "waiting_payment", "confirmed")
    (answer,) = audits("quote.declined")
    assert answer.after["items"] == ["TK3-A0001"]
    texts = [entry.text for entry in timeline(quote.rma)]
    assert "Unit TK3-A0001 will be sent back to you unrepaired." in texts
    assert texts[-1] == ("Quote Q-2026-000001 was declined: the faulty units will be sent "
                         "back to you unrepaired.")
    assert "declined the quote" in wh.decision_text(got)
    shipment = wh.ship(actor("wendy"), item_id, None, "SF Express", "SF200")
    assert shipment.kind == "return" and shipment.unit.serial == "TK3-A0001"
    result = wh.deliver(actor("wendy"), item_id, NOW, "Li Lei")
    assert result.closed and item(item_id).status == ItemStatus.CLOSED
    assert db.session.get(Rma, quote.rma_id).status == RmaStatus.CLOSED
    assert count(Invoice) == 0 and mails("invoice_issued") == []


def test_decline_with_scrap_scraps_the_received_unit(ctx, world):
    number, item_id = paid_item(ctx, world)
    quote = quotes.decline_quote(customer(), open_quote_for(number).number,
                                 disposition="scrap", via="portal")
    assert quote.decline_disposition == "scrap"
    got = item(item_id)
    assert (got.status, got.closed_at) == (ItemStatus.CLOSED, NOW)
    unit = db.session.scalar(select(Unit).where(Unit.serial == "TK3-A0001")
                             .execution_options(populate_existing=True))
    assert unit.status == UnitStatus.SCRAPPED
    assert db.session.get(Rma, quote.rma_id, populate_existing=True).status == RmaStatus.CLOSED
    assert audits("rma_item.declined")[0].after["unit_after"]["status"] == "scrapped"
    assert "Unit TK3-A0001 was scrapped at your request." in [
        entry.text for entry in timeline(quote.rma)]


def test_decline_of_a_remote_confirmed_item_closes_it(ctx, world):
    number, (item_id,) = open_items("TK3-A0001", world=world)
    wh.confirm_remote(actor("sam"), item_id, "misuse_drop")
    quotes.decline_quote(customer(), open_quote_for(number).number, disposition="scrap",
                         via="api")
    got = item(item_id)
    assert got.status == ItemStatus.CLOSED and got.unit_received_at is None
    unit = db.session.scalar(select(Unit).where(Unit.serial == "TK3-A0001"))
    assert unit.status == UnitStatus.IN_SERVICE  # never came in: nothing to scrap


def test_decline_needs_a_known_disposition_and_an_open_quote(ctx, world):
    number, _ = paid_item(ctx, world)
    ref = open_quote_for(number).number
    with pytest.raises(ValidationError) as error:
        quotes.decline_quote(customer(), ref, disposition="burn", via="portal")
    assert error.value.field == "disposition"
    quotes.decline_quote(customer(), ref, via="portal")
    with pytest.raises(ConflictError, match="already declined"):
        quotes.decline_quote(customer(), ref, via="portal")
    with pytest.raises(ConflictError, match="already declined"):
        quotes.accept_quote(customer(), ref, via="portal")


# -- expiry -------------------------------------------------------------------------------------
def test_expiry_job_expires_exactly_once(app, ctx, world):
    number, item_id = paid_item(app, world)
    ref = open_quote_for(number).number
    assert quotes.expire_quotes_job(NOW).busy is False
    later = NOW.replace(month=12, day=26)  # 12:00 on 2026-12-26 in Shanghai
    at(app, later)
    first = quotes.expire_quotes_job(later)
    second = quotes.expire_quotes_job(later)
    assert (first.items, first.emails, first.busy) == (1, 1, True)
    assert "expired 1" in first.summary
    assert (second.items, second.busy, second.summary) == (0, False, "quote-expiry: none")
    quote = quotes.get_quote(None, ref)
    assert (quote.status, quote.closed_at) == (QuoteStatus.EXPIRED, later)
    (expired,) = audits("quote.expired")
    assert expired.actor_label == "tick:quote-expiry" and expired.at == later
    (mail,) = mails("quote_expired")
    assert (mail.to_address, mail.language) == ("alice@a.example", "en")
    assert ref in mail.subject and f"/portal/quotes/{ref}" in mail.body_text
    assert len(events("quote_expired")) == 1
    assert item(item_id).status == ItemStatus.WAITING_PAYMENT
    with pytest.raises(ConflictError, match=f"{ref} expired on 2026-12-26"):
        quotes.accept_quote(customer(), ref, via="portal")
    with pytest.raises(ConflictError):
        quotes.decline_quote(customer(), ref, via="portal")


def test_the_expiry_job_runs_in_rma_tick():
    assert "quote-expiry" in [job.name for job in cli.TICK_JOBS]
    names = [job.name for job in cli.TICK_JOBS]
    assert names.index("quote-expiry") < names.index("mail")


def test_finance_reissues_an_expired_quote_at_todays_prices(app, ctx, world):
    from rma.services.pricing import add_price

    number, item_id = paid_item(app, world)
    old_ref = open_quote_for(number).number
    later = NOW.replace(month=12, day=26)
    at(app, later)
    quotes.expire_quotes_job(later)
    add_price(actor("fay"), kind="replacement", model_code="TK3", valid_from="2026-12-01",
              amount="310.00")
    with pytest.raises(ForbiddenError):
        quotes.reissue_quote(actor("mia"), old_ref)
    new = quotes.reissue_quote(actor("fay"), old_ref)
    assert new.status == QuoteStatus.OPEN and new.issued_on == date(2026, 12, 26)
    assert new.lines[0].unit_price == Decimal("310.00") and new.lines[0].item_id == item_id
    old = quotes.get_quote(None, old_ref)
    assert (old.status, old.superseded_by_id) == (QuoteStatus.EXPIRED, new.id)
    with pytest.raises(ConflictError):
        quotes.reissue_quote(actor("fay"), old_ref)  # the RMA has an open quote now
    with pytest.raises(ConflictError, match="Only an expired quote"):
        quotes.reissue_quote(actor("fay"), new.number)


# -- paid support (R-C3) ----------------------------------------------------------------------
def test_R_C3_support_quote_when_the_term_ends_within_60_days(ctx, world):
    # Beta Bank: accepted 2026-01-05, term through 2027-01-05 (41 days from today)
    beta = db.session.get(Customer, world["b"])
    beta.billing_email = "ap@b.example"
    db.session.commit()
    quote = quotes.create_support_quote(actor("fay"), world["contract_b"])
    assert (str(quote.kind), quote.rma_id, quote.support_months, quote.language) == (
        "support", None, 12, "zh_CN")
    (line,) = quote.lines
    assert (line.kind, line.unit_price, line.vat, line.gross) == (
        "support", Decimal("5000.00"), Decimal("650.00"), Decimal("5650.00"))
    assert quote.gross_total == Decimal("5650.00")
    (mail,) = mails("quote_issued")
    assert (mail.to_address, mail.language) == ("ap@b.example", "zh_CN")
    with pytest.raises(ConflictError, match="already has the open support quote"):
        quotes.create_support_quote(actor("fay"), world["contract_b"])
    invoice = quotes.accept_quote(customer("bob@b.example"), quote.number, via="portal")
    assert invoice.gross_total == Decimal("5650.00")


def test_R_C3_no_support_quote_while_covered_beyond_60_days(ctx, world):
    with pytest.raises(ConflictError, match="covered until 2027-03-10"):
        quotes.create_support_quote(actor("fay"), world["contract_a"])
    with pytest.raises(ForbiddenError):
        quotes.create_support_quote(actor("mia"), world["contract_b"])
    with pytest.raises(NotFoundError):
        quotes.create_support_quote(actor("fay"), "SC-1999-00001")
    assert count(Quote) == 0


def test_R_C3_support_quote_needs_a_support_price(ctx, world):
    from rma.models import PriceEntry, PriceKind

    db.session.execute(db.delete(PriceEntry).where(PriceEntry.kind == PriceKind.SUPPORT))
    db.session.commit()
    with pytest.raises(ValidationError, match="Set a support price in the price list first."):
        quotes.create_support_quote(actor("fay"), world["contract_b"])
    assert count(Quote) == 0


# -- reading --------------------------------------------------------------------------------
def test_list_quotes_is_scoped_and_for_finance_pages(ctx, world):
    number, _ = paid_item(ctx, world)
    quotes.create_support_quote(actor("fay"), world["contract_b"])
    rows, total = quotes.list_quotes(user("fay@vendor.example"))
    assert total == 2 and len(rows) == 2
    rows, total = quotes.list_quotes(user("alice@a.example"), customer_id=world["b"])
    assert total == 1 and rows[0].rma.number == number
    rows, total = quotes.list_quotes(user("mia@vendor.example"), status="open",
                                     customer_id=world["b"])
    assert total == 1 and str(rows[0].kind) == "support"
    with pytest.raises(ForbiddenError):
        quotes.list_quotes(user("sam@vendor.example"))
    with pytest.raises(ValidationError):
        quotes.list_quotes(user("fay@vendor.example"), status="lost")


def test_quote_json_and_document_carry_strings_and_rounded_figures(ctx, world):
    number, _ = paid_item(ctx, world)
    quote = open_quote_for(number)
    data = quotes.quote_json(quote)
    assert (data["number"], data["status"], data["rma_number"], data["contract_number"],
            data["currency"], data["issued_on"], data["valid_until"]) == (
        "Q-2026-000001", "open", number, world["contract_a"], "CNY", "2026-11-25",
        "2026-12-25")
    assert data["totals"] == {"net": "320.00", "vat": "41.60", "gross": "361.60"}
    assert data["lines"][0] == {
        "line_no": 1, "kind": "replacement", "serial": "TK3-A0001",
        "description": "Replacement TK3 token for TK3-A0001 (dropped)", "quantity": 1,
        "unit_price": "300.00", "vat_rate": "0.1300", "net": "300.00", "vat": "39.00",
        "gross": "339.00"}
    assert data["invoice_number"] is None
    doc = quotes.quote_document(quote)
    assert (doc.kind, doc.number, doc.rma_number, doc.valid_until, doc.gross_total) == (
        "quote", "Q-2026-000001", number, date(2026, 12, 25), Decimal("361.60"))
    assert sum((line.gross for line in doc.lines), Decimal("0")) == doc.gross_total
    assert quotes.render_quote_pdf(quote).startswith(b"%PDF")


def test_quote_numbers_follow_the_china_year(app, ctx, world):
    at(app, "2026-12-31T16:30:00+00:00")  # 00:30 on 2027-01-01 in Shanghai
    number, _ = paid_item(app, world)
    assert open_quote_for(number).number == "Q-2027-000001"
    assert FIXED_NOW  # the default clock is restored by the next test's app


def test_D3_an_item_released_on_credit_stays_on_the_quote(ctx, world):
    acme = db.session.get(Customer, world["a"])
    acme.credit_terms = True
    db.session.commit()
    number, (first, second) = open_items("TK3-A0001", "TK3-A0002", world=world)
    receive_and_inspect(number, first, "TK3-A0001", "misuse_drop")
    wh.release(actor("fay"), first, "key account, pays monthly")
    assert item(first).status == ItemStatus.RELEASED
    assert [line.item_id for line in open_quote_for(number).lines] == [first, None]
    receive_and_inspect(number, second, "TK3-A0002", "misuse_drop")
    assert [line.item_id for line in open_quote_for(number).lines] == [first, second, None]
