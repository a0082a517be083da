"""Invoices, payments, credit notes and release on credit (issue 5: R-C3, D-3, D-5).

An invoice is issued when its quote is accepted (:func:`issue_invoice_for_quote`, called
by ``quotes.accept_quote`` in its transaction). Its number ``INV-2026-000123`` is taken
from ``numbers.next_value`` in the same transaction that inserts it: gapless per year
(the China date of issue), a rolled-back transaction gives its number back, concurrent
issuers serialise on the counter's row lock. An issued invoice is never edited: its
billing details and lines are copied onto it, and a mistake is corrected by a credit
note (``CN-2026-000007``) that references it. Payments and credit notes change only its
settled figures and its status:

    unpaid → partially_paid → paid        (payments; a credit note may complete it)
    unpaid → credited                     (credit notes cover everything, nothing paid)

Paid in full (D-3): each item on its lines still waiting for payment is released for
shipping and its 72-hour clock starts at that moment (``warehouse._release_item``); a
support invoice (R-C3) creates its ``SupportPeriod``. Finance may release an item on
credit before payment (:func:`release_on_credit`) for a customer with credit terms.

Every change: one transaction, an ``AuditEvent`` (R-R4), the customer's timeline event
for replacement invoices (``RmaEvent``), e-mail through the outbox, one commit. Only
``finance`` records payments, credit notes and releases on credit; an actor without a
user (the CLI) is the system and may act.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from decimal import Decimal

from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import func, select
from sqlalchemy.orm import joinedload, selectinload

from rma import clock
from rma.documents import finance as finance_documents
from rma.documents.finance import DocumentLine, FinanceDocument
from rma.extensions import db
from rma.models import (
    Customer,
    Invoice,
    InvoiceKind,
    InvoiceLine,
    InvoiceStatus,
    ItemStatus,
    Payment,
    PaymentMethod,
    Quote,
    QuoteKind,
    RmaEvent,
    RmaItem,
    Role,
    SupportPeriod,
    User,
)
from rma.services import (
    ConflictError,
    ForbiddenError,
    NotFoundError,
    ValidationError,
    clean_text,
    transaction,
)
from rma.services import warehouse as wh
from rma.services.audit import Actor, record
from rma.services.contracts import cover_ends_on
from rma.services.numbers import next_value
from rma.services.outbox import Attachment, enqueue
from rma.services.rmas import PER_PAGE_MAX, TIMELINE_TEXTS
from warranty.contract import renewal_term_from
from warranty.money import MoneyError, parse_amount, round_money

FINANCE_ROLES = frozenset({Role.FINANCE})
# Who sees the finance pages (lists); other staff may open an invoice linked from an RMA.
FINANCE_VIEW_ROLES = frozenset({Role.FINANCE, Role.MANAGER, Role.ADMIN})
REASON_MAX = 2000
NOTE_MAX = 2000
REFERENCE_MAX = 100  # Payment.reference
_NUMBER_MAX = 32
SETTLED_STATUSES = (InvoiceStatus.PAID, InvoiceStatus.CREDITED)
OPEN_STATUSES = (InvoiceStatus.UNPAID, InvoiceStatus.PARTIALLY_PAID)
_ONE_DAY = timedelta(days=1)


# -- small helpers ------------------------------------------------------------------------
def _ensure_finance(actor: Actor, what: str) -> None:
    """``ForbiddenError`` unless the actor is finance (or the system)."""
    user = actor.user
    if user is None:
        return
    if not user.is_active or user.role not in FINANCE_ROLES:
        raise ForbiddenError(_("Your role (%(role)s) may not %(action)s.",
                               role=str(user.role), action=what))


def _user_id(actor: Actor) -> int | None:
    return actor.user.id if actor.user is not None else None


def _money(value: Decimal) -> str:
    return f"{round_money(value)}"


def _iso(value: date | datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _clean_number(number: object) -> str:
    return number.strip().upper()[:_NUMBER_MAX] if isinstance(number, str) else ""


def _no_invoice(text: str) -> NotFoundError:
    return NotFoundError(_("There is no invoice %(number)s.", number=text or "-"), "number")


def _locked_invoice(number: object) -> Invoice:
    """The invoice (or credit note) ``number``, locked for this transaction (PostgreSQL
    ``FOR UPDATE``) and read fresh: two payments on one invoice run one after the other."""
    text = _clean_number(number)
    invoice = None
    if text:
        invoice = db.session.scalar(
            select(Invoice).where(Invoice.number == text).with_for_update(of=Invoice)
            .execution_options(populate_existing=True))
    if invoice is None:
        raise _no_invoice(text)
    return invoice


def _snapshot(invoice: Invoice) -> dict:
    return {**invoice.as_audit(), "status": str(invoice.status),
            "settled_at": _iso(invoice.settled_at)}


def _event(invoice: Invoice, kind: str, actor: Actor, now: datetime, /, **data) -> None:
    """A timeline event on the invoice's RMA (replacement invoices only)."""
    quote = invoice.quote
    if quote is None or quote.rma_id is None:
        return
    db.session.add(RmaEvent(rma_id=quote.rma_id, item_id=None, at=now, kind=kind,
                            actor_id=_user_id(actor), actor_label=actor.label,
                            data={"number": invoice.number, **data}))


def invoice_url(invoice: Invoice) -> str:
    """The invoice's portal page, for e-mails (``PUBLIC_URL``)."""
    return f"{current_app.config['PUBLIC_URL'].rstrip('/')}/portal/invoices/{invoice.number}"


def invoice_filename(invoice: Invoice) -> str:
    return f"{invoice.number}.pdf"


def _recipients(invoice: Invoice) -> list[str]:
    """Where the customer's invoice e-mails go: its billing e-mail; else the contact of
    the RMA the invoice is for; else the customer's admin users."""
    customer = invoice.customer
    if customer.billing_email:
        return [customer.billing_email]
    quote = invoice.quote
    if quote is not None and quote.rma is not None and quote.rma.contact_email:
        return [quote.rma.contact_email]
    return list(db.session.scalars(
        select(User.email).where(User.customer_id == customer.id,
                                 User.is_customer_admin.is_(True),
                                 User.is_active_flag.is_(True))
        .order_by(User.id)))


def _mail_context(invoice: Invoice) -> dict:
    quote = invoice.quote
    return {
        "invoice": invoice, "number": invoice.number, "customer_name": invoice.billing_name,
        "contract_number": invoice.contract_number,
        "rma_number": quote.rma.number if quote is not None and quote.rma else None,
        "gross_total": _money(invoice.gross_total), "currency": "CNY",
        "issued_on": invoice.issued_on.isoformat(), "due_on": invoice.due_on.isoformat(),
        "paid_total": _money(invoice.paid_total), "outstanding": _money(invoice.outstanding),
        "url": invoice_url(invoice), "vendor_name": current_app.config["VENDOR_NAME"],
    }


# -- issuing ------------------------------------------------------------------------------
def _number(kind: InvoiceKind, year: int) -> tuple[int, str]:
    name, prefix = ("invoice", "INV") if kind == InvoiceKind.INVOICE else ("credit_note", "CN")
    sequence = next_value(name, year)
    return sequence, f"{prefix}-{year}-{sequence:06d}"


def issue_invoice_for_quote(quote: Quote, actor: Actor, now: datetime) -> Invoice:
    """Issue the invoice of an accepted quote (D-5), inside the caller's transaction (NO
    commit; ``quotes.accept_quote`` commits). Number ``INV-YYYY-NNNNNN`` of the China
    year of issue, gapless; the customer's billing details (or its name and address) and
    the quote's lines and totals are copied onto it; due ``payment_terms_days`` after
    the issue date; status ``unpaid``. Audited (``invoice.issued``), a timeline event
    ``invoice_issued`` for a replacement quote, and the e-mail ``invoice_issued`` with
    the PDF, in the quote's language."""
    customer: Customer = quote.customer
    issued_on = clock.to_local(now).date()
    sequence, number = _number(InvoiceKind.INVOICE, issued_on.year)
    lines = [
        InvoiceLine(line_no=line.line_no, kind=line.kind, model_id=line.model_id,
                    serial=line.serial, description=line.description,
                    quantity=line.quantity, unit_price=line.unit_price,
                    vat_rate=line.vat_rate, net=line.net, vat=line.vat, gross=line.gross,
                    item_id=line.item_id)
        for line in quote.lines
    ]
    with db.session.no_autoflush:  # not flushed half-built (the quote's backref loads)
        invoice = Invoice(
            number=number, kind=InvoiceKind.INVOICE, year=issued_on.year, sequence=sequence,
            customer=customer, quote=quote, status=InvoiceStatus.UNPAID,
            language=quote.language, issued_at=now, issued_on=issued_on,
            due_on=issued_on + timedelta(days=customer.payment_terms_days or 0),
            issued_by_id=_user_id(actor),
            billing_name=customer.billing_name or customer.name,
            billing_address=customer.billing_address or customer.address or "",
            tax_id=customer.tax_id or "", contract_number=customer.contract_number,
            net_total=quote.net_total, vat_total=quote.vat_total, gross_total=quote.gross_total,
            paid_total=Decimal("0.00"), credited_total=Decimal("0.00"), lines=lines,
        )
        db.session.add(invoice)
    db.session.flush()
    record(actor, "invoice.issued", "invoice", invoice.number, None,
           {**_snapshot(invoice), "quote": quote.number,
            "lines": [line.as_audit() for line in invoice.lines]})
    _event(invoice, "invoice_issued", actor, now, gross=_money(invoice.gross_total),
           due_on=invoice.due_on.isoformat())
    _queue_invoice_issued(invoice)
    return invoice


def _queue_invoice_issued(invoice: Invoice) -> None:
    pdf = render_invoice_pdf(invoice)
    for address in _recipients(invoice):
        enqueue(to=address, language=invoice.language, template="invoice_issued",
                context=_mail_context(invoice),
                attachments=[Attachment(invoice_filename(invoice), "application/pdf", pdf)],
                dedupe_key=f"invoice_issued:{invoice.number}:{address}"[:200])


# -- payments (D-3) -----------------------------------------------------------------------
def _amount(raw: object) -> Decimal:
    try:
        return parse_amount(raw, "amount")
    except MoneyError:
        raise ValidationError(_("Enter the amount in CNY, more than zero, with at most two "
                                "decimals (e.g. 452.00)."), "amount") from None


def _received_on(raw: object, today: date) -> date:
    value = raw
    if isinstance(raw, str):
        try:
            value = date.fromisoformat(raw.strip())
        except ValueError:
            value = None
    if isinstance(value, datetime) or not isinstance(value, date):
        raise ValidationError(_("Enter the date the payment was received (YYYY-MM-DD)."),
                              "received_on")
    if value > today:
        raise ValidationError(_("The payment date %(date)s is in the future (today is "
                                "%(today)s, China time).", date=value.isoformat(),
                                today=today.isoformat()), "received_on")
    return value


def _method(raw: object) -> PaymentMethod:
    text = raw.strip().lower() if isinstance(raw, str) else ""
    try:
        return PaymentMethod(text)
    except ValueError:
        raise ValidationError(_("Choose how the payment was made: %(methods)s.",
                                methods=", ".join(m.value for m in PaymentMethod)),
                              "method") from None


def _open_invoice(invoice: Invoice) -> None:
    """A credit note or a settled invoice takes no payment and no credit note."""
    if invoice.kind == InvoiceKind.CREDIT_NOTE:
        raise ConflictError(_("%(number)s is a credit note: payments and credits apply to "
                              "invoices.", number=invoice.number))
    if invoice.status in SETTLED_STATUSES or invoice.outstanding <= 0:
        raise ConflictError(_("%(number)s is already settled: nothing more is due on it.",
                              number=invoice.number))


def record_payment(actor: Actor, number: str, *, amount: object, received_on: object,
                   method: object, reference: str = "", note: str = "") -> Payment:
    """Record money received against invoice ``number`` (finance only). Partial payments
    add up (``partially_paid``); the one that completes it settles the invoice (``paid``):
    its items still waiting for payment are released and their 72-hour clock starts now
    (D-3), a support invoice creates its support period (R-C3). E-mail
    ``payment_received``; audited (``payment.recorded``).

    Refused, with nothing recorded: more than is still due (``ValidationError`` on
    ``amount``), a credit note or a settled invoice (``ConflictError``), a date in the
    future (``received_on``), an unknown method; ``NotFoundError`` for an unknown number."""
    _ensure_finance(actor, _("record payments"))
    value = _amount(amount)
    on = _received_on(received_on, clock.today())
    how = _method(method)
    reference = clean_text(reference, "reference", REFERENCE_MAX)
    note = clean_text(note, "note", NOTE_MAX)
    with transaction():
        invoice = _locked_invoice(number)
        _open_invoice(invoice)
        due = invoice.outstanding
        if value > due:
            raise ValidationError(_(
                "The payment of %(amount)s CNY is more than the %(due)s CNY still due on "
                "%(number)s; nothing was recorded.", amount=_money(value), due=_money(due),
                number=invoice.number), "amount")
        now = clock.now()
        before = _snapshot(invoice)
        payment = Payment(invoice=invoice, amount=value, received_on=on, method=how,
                          reference=reference, note=note, recorded_at=now,
                          recorded_by_id=_user_id(actor))
        db.session.add(payment)
        invoice.paid_total = invoice.paid_total + value
        db.session.flush()
        record(actor, "payment.recorded", "payment", payment.id, None,
               {**payment.as_audit(), "invoice": invoice.number})
        _event(invoice, "payment_received", actor, now, amount=_money(value),
               outstanding=_money(invoice.outstanding))
        if invoice.outstanding == 0:
            _settle(invoice, actor, now, InvoiceStatus.PAID)
        else:
            invoice.status = InvoiceStatus.PARTIALLY_PAID
        record(actor, "invoice.payment_applied", "invoice", invoice.number, before,
               _snapshot(invoice))
        _queue_payment_received(invoice, payment)
    return payment


def _settle(invoice: Invoice, actor: Actor, now: datetime, status: InvoiceStatus) -> None:
    """The invoice is covered: ``paid`` releases its items still waiting for payment (D-3,
    their clock starts ``now``) and creates a support invoice's period (R-C3);
    ``credited`` (nothing was paid) only closes it."""
    invoice.status = status
    invoice.settled_at = now
    if status != InvoiceStatus.PAID:
        return
    _event(invoice, "invoice_paid", actor, now)
    for line in invoice.lines:
        if line.item_id is None:
            continue
        item = wh._locked_item(line.item_id)
        if item.status == ItemStatus.WAITING_PAYMENT:
            wh._release_item(actor, item, now, note=f"paid: {invoice.number}")
    quote = invoice.quote
    if quote is not None and quote.kind == QuoteKind.SUPPORT:
        _start_support(invoice, quote, actor, now)


def _start_support(invoice: Invoice, quote: Quote, actor: Actor, now: datetime) -> None:
    """R-C3: the paid period starts on the later of China today and the day after the
    current cover ends, for the quote's months."""
    customer = invoice.customer
    today = clock.to_local(now).date()
    ends = cover_ends_on(customer)
    start = max(today, ends + _ONE_DAY) if ends is not None else today
    term = renewal_term_from(start, quote.support_months or 12)
    period = SupportPeriod(customer_id=customer.id, starts_on=term.start_on,
                           ends_on=term.end_on, months=quote.support_months or 12,
                           invoice_id=invoice.id, created_at=now)
    db.session.add(period)
    db.session.flush()
    record(actor, "support_period.created", "support_period", period.id, None,
           {"customer_id": customer.id, "starts_on": term.start_on.isoformat(),
            "ends_on": term.end_on.isoformat(), "months": period.months,
            "invoice": invoice.number})


def _queue_payment_received(invoice: Invoice, payment: Payment) -> None:
    context = {**_mail_context(invoice), "amount": _money(payment.amount),
               "received_on": payment.received_on.isoformat(),
               "settled": invoice.status == InvoiceStatus.PAID}
    for address in _recipients(invoice):
        enqueue(to=address, language=invoice.language, template="payment_received",
                context=context,
                dedupe_key=f"payment_received:{payment.id}:{address}"[:200])


# -- credit notes ------------------------------------------------------------------------
def issue_credit_note(actor: Actor, number: str, *, amount: object = None,
                      reason: str) -> Invoice:
    """Correct invoice ``number`` with a credit note ``CN-YYYY-NNNNNN`` (finance only; an
    issued invoice is never edited). ``amount`` (default: all that is still due) must not
    exceed what is due; one line credits it, split at the VAT rate of the invoice's first
    line (net = amount / (1 + rate) rounded, VAT the rest). The invoice's credited total
    grows; once nothing is due it is ``credited`` when nothing was paid (its items stay
    unreleased), else ``paid`` (and it settles: D-3, R-C3). A ``reason`` is required.
    Audited (``credit_note.issued``)."""
    _ensure_finance(actor, _("issue credit notes"))
    reason = clean_text(reason, "reason", REASON_MAX,
                        required=_("Give the reason for the credit note."))
    value = None if amount is None or (isinstance(amount, str) and not amount.strip()) \
        else _amount(amount)
    with transaction():
        invoice = _locked_invoice(number)
        _open_invoice(invoice)
        due = invoice.outstanding
        value = due if value is None else value
        if value > due:
            raise ValidationError(_(
                "The credit of %(amount)s CNY is more than the %(due)s CNY still due on "
                "%(number)s; nothing was recorded.", amount=_money(value), due=_money(due),
                number=invoice.number), "amount")
        now = clock.now()
        before = _snapshot(invoice)
        note = _credit_note(invoice, value, reason, actor, now)
        invoice.credited_total = invoice.credited_total + value
        if invoice.outstanding == 0:
            status = InvoiceStatus.CREDITED if invoice.paid_total == 0 else InvoiceStatus.PAID
            _settle(invoice, actor, now, status)
        record(actor, "credit_note.issued", "invoice", note.number, None,
               {**_snapshot(note), "credits": invoice.number,
                "lines": [line.as_audit() for line in note.lines]})
        record(actor, "invoice.credited", "invoice", invoice.number, before,
               _snapshot(invoice))
    return note


def _credit_note(invoice: Invoice, value: Decimal, reason: str, actor: Actor,
                 now: datetime) -> Invoice:
    issued_on = clock.to_local(now).date()
    sequence, number = _number(InvoiceKind.CREDIT_NOTE, issued_on.year)
    rate = invoice.lines[0].vat_rate if invoice.lines else Decimal("0")
    net = round_money(value / (1 + rate))
    with force_locale(invoice.language):
        description = _("Credit on invoice %(number)s: %(reason)s", number=invoice.number,
                        reason=reason)
    lines = [InvoiceLine(line_no=1, kind="credit", description=description, quantity=1,
                         unit_price=net, vat_rate=rate, net=net, vat=value - net,
                         gross=value)]
    with db.session.no_autoflush:  # not flushed half-built (the backref loads)
        note = Invoice(
            number=number, kind=InvoiceKind.CREDIT_NOTE, year=issued_on.year,
            sequence=sequence, customer_id=invoice.customer_id, credited_invoice=invoice,
            status=InvoiceStatus.ISSUED, language=invoice.language, issued_at=now,
            issued_on=issued_on, due_on=issued_on, issued_by_id=_user_id(actor),
            billing_name=invoice.billing_name, billing_address=invoice.billing_address,
            tax_id=invoice.tax_id, contract_number=invoice.contract_number,
            net_total=net, vat_total=value - net, gross_total=value,
            paid_total=Decimal("0.00"), credited_total=Decimal("0.00"), reason=reason,
            lines=lines,
        )
        db.session.add(note)
    db.session.flush()
    return note


# -- release on credit (D-3) --------------------------------------------------------------
def release_on_credit(actor: Actor, item_id: int, reason: str) -> RmaItem:
    """Finance releases a paid replacement before its invoice is paid, for a customer
    with credit terms, with a reason (D-3); audited ``rma_item.released_on_credit``; its
    72-hour clock starts now. ``ConflictError`` "<name> has no credit terms ..." for a
    customer without. The same use case as ``warehouse.release``."""
    return wh.release(actor, item_id, reason)


# -- reading ------------------------------------------------------------------------------
def _is_finance_viewer(viewer: User) -> bool:
    return viewer.is_staff and viewer.role in FINANCE_VIEW_ROLES


def _load_options():
    return (
        joinedload(Invoice.customer),
        joinedload(Invoice.quote).joinedload(Quote.rma),
        selectinload(Invoice.lines),
        selectinload(Invoice.payments),
        selectinload(Invoice.credit_notes),
        joinedload(Invoice.credited_invoice),
    )


def get_invoice(viewer: User, number: str) -> Invoice:
    """The invoice or credit note ``number`` with its lines, payments and credit notes.
    Staff see any (support and warehouse open it from an RMA); a customer user only its
    own customer's: another's is ``NotFoundError``, exactly as an unknown number."""
    text = _clean_number(number)
    invoice = None
    if text:
        invoice = db.session.scalar(
            select(Invoice).where(Invoice.number == text).options(*_load_options()))
    if invoice is None or (not viewer.is_staff and invoice.customer_id != viewer.customer_id):
        raise _no_invoice(text)
    return invoice


def list_invoices(viewer: User, *, status: str | None = None, customer_id: int | None = None,
                  kind: str | None = None, page: int = 1, per_page: int = 50
                  ) -> tuple[list[Invoice], int]:
    """Invoices and credit notes, newest first, a page at a time: ``(items, total)``.
    Finance, managers and admins see all (optionally of ``customer_id``); a customer user
    only its own customer's; other staff may not list them (``ForbiddenError``).
    ``status`` is an invoice status, ``kind`` invoice or credit_note."""
    stmt = select(Invoice)
    if not viewer.is_staff:
        stmt = stmt.where(Invoice.customer_id == viewer.customer_id)
    elif not _is_finance_viewer(viewer):
        raise ForbiddenError(_("Your role (%(role)s) may not see the finance pages.",
                               role=str(viewer.role)))
    elif customer_id is not None:
        stmt = stmt.where(Invoice.customer_id == customer_id)
    if status:
        if status not in {s.value for s in InvoiceStatus}:
            raise ValidationError(_("%(value)s is not an invoice status; use one of: "
                                    "%(statuses)s.", value=wh._shown(str(status)),
                                    statuses=", ".join(s.value for s in InvoiceStatus)),
                                  "status")
        stmt = stmt.where(Invoice.status == InvoiceStatus(status))
    if kind:
        if kind not in {k.value for k in InvoiceKind}:
            raise ValidationError(_("%(value)s is not a kind of invoice; use one of: "
                                    "%(kinds)s.", value=wh._shown(str(kind)),
                                    kinds=", ".join(k.value for k in InvoiceKind)), "kind")
        stmt = stmt.where(Invoice.kind == InvoiceKind(kind))
    per_page = min(max(int(per_page), 1), PER_PAGE_MAX)
    page = max(int(page), 1)
    total = db.session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    items = db.session.scalars(
        stmt.options(*_load_options())
        .order_by(Invoice.issued_at.desc(), Invoice.id.desc())
        .offset((page - 1) * per_page).limit(per_page)
    ).unique().all()
    return list(items), total


def pages(total: int, per_page: int) -> int:
    return max(1, math.ceil(total / max(per_page, 1)))


def _rma_number(invoice: Invoice) -> str | None:
    source = invoice.credited_invoice if invoice.kind == InvoiceKind.CREDIT_NOTE else invoice
    quote = source.quote if source is not None else None
    return quote.rma.number if quote is not None and quote.rma is not None else None


def invoice_document(invoice: Invoice) -> FinanceDocument:
    """The plain data of the invoice's (or credit note's) PDF, in its language: billing
    details as copied onto it, lines with VAT per line (D-5), totals."""
    config = current_app.config
    credit = invoice.kind == InvoiceKind.CREDIT_NOTE
    with force_locale(invoice.language):
        if credit:
            notes = (_("This credit note corrects invoice %(number)s.",
                       number=invoice.credited_invoice.number),)
        else:
            notes = (_("Please pay by %(date)s, quoting the invoice number %(number)s.",
                       date=invoice.due_on.isoformat(), number=invoice.number),)
    return FinanceDocument(
        kind="credit_note" if credit else "invoice",
        number=invoice.number,
        language=invoice.language,
        issued_on=invoice.issued_on,
        vendor_name=config["VENDOR_NAME"],
        vendor_address=config["RETURN_ADDRESS"],
        customer_name=invoice.billing_name,
        customer_address=invoice.billing_address,
        tax_id=invoice.tax_id,
        contract_number=invoice.contract_number,
        lines=tuple(_document_line(line) for line in invoice.lines),
        net_total=invoice.net_total,
        vat_total=invoice.vat_total,
        gross_total=invoice.gross_total,
        rma_number=_rma_number(invoice),
        due_on=None if credit else invoice.due_on,
        references=invoice.credited_invoice.number if credit else None,
        reason=invoice.reason if credit else "",
        notes=notes,
    )


def _document_line(line: InvoiceLine) -> DocumentLine:
    return DocumentLine(line_no=line.line_no, description=line.description,
                        serial=line.serial, quantity=line.quantity,
                        unit_price=line.unit_price, vat_rate=line.vat_rate, net=line.net,
                        vat=line.vat, gross=line.gross)


def render_invoice_pdf(invoice: Invoice) -> bytes:
    """The invoice's (or credit note's) A4 PDF (``rma.documents.finance``)."""
    return finance_documents.render_finance_document(invoice_document(invoice))


def _line_json(line: InvoiceLine) -> dict:
    return {"line_no": line.line_no, "kind": line.kind, "serial": line.serial,
            "description": line.description, "quantity": line.quantity,
            "unit_price": _money(line.unit_price), "vat_rate": str(line.vat_rate),
            "net": _money(line.net), "vat": _money(line.vat), "gross": _money(line.gross)}


def invoice_json(invoice: Invoice) -> dict:
    """The invoice (or credit note) for the API: amounts as strings in CNY."""
    credit = invoice.kind == InvoiceKind.CREDIT_NOTE
    return {
        "number": invoice.number,
        "kind": str(invoice.kind),
        "status": str(invoice.status),
        "customer_contract": invoice.contract_number,
        "billing_name": invoice.billing_name,
        "quote_number": invoice.quote.number if invoice.quote is not None else None,
        "rma_number": _rma_number(invoice),
        "language": invoice.language,
        "issued_on": invoice.issued_on.isoformat(),
        "due_on": None if credit else invoice.due_on.isoformat(),
        "currency": "CNY",
        "lines": [_line_json(line) for line in invoice.lines],
        "totals": {"net": _money(invoice.net_total), "vat": _money(invoice.vat_total),
                   "gross": _money(invoice.gross_total)},
        "paid_total": _money(invoice.paid_total),
        "credited_total": _money(invoice.credited_total),
        "outstanding": _money(invoice.outstanding),
        "settled_at": _iso(invoice.settled_at),
        "payments": [{"amount": _money(p.amount), "received_on": p.received_on.isoformat(),
                      "method": str(p.method), "reference": p.reference}
                     for p in invoice.payments],
        "credit_notes": [note.number for note in invoice.credit_notes],
        "credits": invoice.credited_invoice.number if credit else None,
        "reason": invoice.reason if credit else "",
    }


def invoices_for_items(item_ids: Iterable[int]) -> dict[int, Invoice]:
    """The latest invoice of each item (by its lines), for RMA pages; one query."""
    ids = list(item_ids)
    if not ids:
        return {}
    rows = db.session.execute(
        select(InvoiceLine.item_id, Invoice).join(Invoice, Invoice.id == InvoiceLine.invoice_id)
        .where(InvoiceLine.item_id.in_(ids), Invoice.kind == InvoiceKind.INVOICE)
        .order_by(Invoice.id)).all()
    return {item_id: invoice for item_id, invoice in rows}


# -- the customer's timeline (R-R4), in plain words ---------------------------------------
def _payment_text(data: dict, actor: str) -> str:
    due = data.get("outstanding", "")
    if due in ("", "0.00"):
        return _("A payment of %(amount)s CNY was received for invoice %(number)s.",
                 amount=data.get("amount", ""), number=data["number"])
    return _("A payment of %(amount)s CNY was received for invoice %(number)s; %(due)s CNY "
             "is still due.", amount=data.get("amount", ""), number=data["number"], due=due)


TIMELINE_TEXTS.update({
    "invoice_issued": lambda d, a: _(
        "Invoice %(number)s: %(gross)s CNY including VAT, to pay by %(date)s.",
        number=d["number"], gross=d.get("gross", ""), date=d.get("due_on", "")),
    "payment_received": _payment_text,
    "invoice_paid": lambda d, a: _("Invoice %(number)s is paid in full.", number=d["number"]),
    "released_on_credit": lambda d, a: _(
        "The paid replacement for %(serial)s was released for shipping on credit; it is "
        "due on site by %(due)s (China time).", serial=d["serial"], due=wh._due(d)),
})


__all__ = ["FINANCE_ROLES", "FINANCE_VIEW_ROLES", "get_invoice", "invoice_document",
           "invoice_filename", "invoice_json", "invoice_url", "invoices_for_items",
           "issue_credit_note", "issue_invoice_for_quote", "list_invoices", "pages",
           "record_payment", "release_on_credit", "render_invoice_pdf"]
