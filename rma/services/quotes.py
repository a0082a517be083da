"""Quotes for paid replacements (R-W4, R-W5) and paid support (R-C3), issue 5.

A replacement quote belongs to one RMA: one line per item whose decision is paid and
that waits for payment, plus one shipping line, at the prices valid on the China date
of issue (``rma.services.pricing``), VAT per line and totals as sums of rounded lines
(``warranty.money``, D-5), in the RMA's language. The warehouse services keep it in step
with the items through :func:`sync_rma_quote` (no commit; called in their transaction):
a new paid item supersedes the open quote with a new one, an item that stops waiting
for payment (overridden to free, D-6; cancelled) supersedes it or, when nothing is left
to pay for, withdraws it.

The customer answers in the portal or the API (``via`` "portal"/"api"); finance records
an answer received by fax or e-mail (``via`` "fax"/"email") with the document attached.
Accepting issues the invoice in the same transaction (``invoices.issue_invoice_for_quote``);
declining sends the faulty units back (or scraps them on request) through
``warehouse.decline_item``. Open quotes past their last valid day expire once
(:func:`expire_quotes_job`, ``rma tick`` job "quote-expiry").

A customer user sees and answers only its own customer's quotes: another customer's
quote is "not found" (404), never "forbidden", so nothing leaks its existence.

This module does not import ``rma.services.warehouse`` at module level (warehouse imports
it); the few uses import it inside the function.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from flask import current_app
from flask_babel import force_locale, ngettext
from flask_babel import gettext as _
from sqlalchemy import func, select, update
from sqlalchemy.orm import joinedload, selectinload

from rma import clock
from rma.extensions import db
from rma.models import (
    Customer,
    ItemStatus,
    ProductModel,
    Quote,
    QuoteKind,
    QuoteLine,
    QuoteStatus,
    Rma,
    RmaEvent,
    RmaItem,
    Role,
    User,
)
from rma.policy import current_policy
from rma.services import ConflictError, ForbiddenError, NotFoundError, ValidationError
from rma.services.audit import Actor, record
from rma.services.numbers import next_value
from rma.services.outbox import Attachment, enqueue
from rma.services.pricing import (
    replacement_price_on,
    shipping_fee_on,
    support_price_on,
    vat_rate_on,
)
from rma.services.rmas import PER_PAGE_MAX, TIMELINE_TEXTS
from warranty.money import line_amounts, quote_valid_until, round_money, totals

if TYPE_CHECKING:  # the PDF renderer (reportlab) loads only when a document is made
    from rma.documents.finance import FinanceDocument

log = logging.getLogger(__name__)

CURRENCY = "CNY"
LANGUAGES = ("zh_CN", "en")
CUSTOMER_VIAS = ("portal", "api")
FINANCE_VIAS = ("fax", "email")
DISPOSITIONS = ("return", "scrap")
DOCUMENT_MAX_BYTES = 10 * 1024 * 1024
NOTE_MAX = 2000
SUPPORT_MONTHS_MAX = 36
SUPPORT_QUOTE_WINDOW_DAYS = 60  # R-C3: a renewal may be quoted this long before the end
EXPIRY_ACTOR = "tick:quote-expiry"
LIVE_STATUSES = (QuoteStatus.OPEN, QuoteStatus.ACCEPTED)
FINANCE_PAGES = frozenset({Role.FINANCE, Role.MANAGER, Role.ADMIN})


@dataclass(frozen=True)
class CheckedDocument:
    """A customer's answer received by fax or e-mail: PDF, JPEG or PNG by content."""

    filename: str
    content_type: str
    data: bytes


# -- small helpers ------------------------------------------------------------------------
def _local_today(now: datetime) -> date:
    return clock.to_local(now).date()


def _user_id(actor: Actor) -> int | None:
    return actor.user.id if actor.user is not None else None


def _language(value: str | None) -> str:
    return value if value in LANGUAGES else "zh_CN"


def _money(value: Decimal | None) -> str | None:
    return None if value is None else f"{value:.2f}"


def quote_url(quote: Quote) -> str:
    """The quote's portal page, for e-mails and documents (``PUBLIC_URL``)."""
    return f"{current_app.config['PUBLIC_URL'].rstrip('/')}/portal/quotes/{quote.number}"


def _new_number(today: date) -> str:
    """``Q-2026-000001``: gapless per year of the China issue date (taken in the caller's
    transaction, so a rollback gives the number back)."""
    return f"Q-{today.year}-{next_value('quote', today.year):06d}"


def _model_name(model: ProductModel) -> str:
    return model.name if model.name.startswith(model.code) else f"{model.code} {model.name}"


def _event(quote: Quote, kind: str, actor: Actor, now: datetime, **data) -> None:
    """A timeline event on the quote's RMA (replacement quotes; support quotes have no
    RMA and no timeline)."""
    if quote.rma_id is None:
        return
    db.session.add(RmaEvent(rma_id=quote.rma_id, at=now, kind=kind,
                            actor_id=_user_id(actor), actor_label=actor.label,
                            data={"number": quote.number, **data}))


def _audit(actor: Actor, action: str, quote: Quote, before: dict | None, **extra) -> None:
    after = quote.as_audit()
    after["lines"] = [line.as_audit() for line in quote.lines]
    record(actor, action, "quote", quote.number, before, {**after, **extra})


# -- building a quote ---------------------------------------------------------------------
def _item_description(item: RmaItem) -> str:
    """"Replacement TK3 OTP token for TK3-0001 (dropped)", in the current locale."""
    from rma.services.warehouse import CAUSE_WORDS  # warehouse imports this module

    model = _model_name(item.unit.model)
    cause = item.cause or ""
    if cause.startswith("misuse_"):
        reason = str(CAUSE_WORDS.get(cause, cause))
    elif item.decision_rule == "R-W5":
        reason = _("out of warranty")
    else:
        reason = ""
    if reason:
        return _("Replacement %(model)s for %(serial)s (%(reason)s)", model=model,
                 serial=item.serial, reason=reason)
    return _("Replacement %(model)s for %(serial)s", model=model, serial=item.serial)


def _add_line(quote: Quote, no: int, kind: str, description: str, unit_price: Decimal,
              rate: Decimal, *, item: RmaItem | None = None, model_id: int | None = None
              ) -> None:
    amounts = line_amounts(1, unit_price, rate)
    quote.lines.append(QuoteLine(
        line_no=no, kind=kind, model_id=model_id, item_id=item.id if item else None,
        serial=item.serial if item else None, description=description,
        quantity=amounts.quantity, unit_price=amounts.unit_price, vat_rate=amounts.vat_rate,
        net=amounts.net, vat=amounts.vat, gross=amounts.gross))


def _set_totals(quote: Quote) -> None:
    figures = totals(line_amounts(line.quantity, line.unit_price, line.vat_rate)
                     for line in quote.lines)
    quote.net_total, quote.vat_total, quote.gross_total = figures.net, figures.vat, figures.gross


def _new_quote(kind: QuoteKind, customer_id: int, rma_id: int | None, language: str,
               actor: Actor, now: datetime) -> Quote:
    today = _local_today(now)
    quote = Quote(number=_new_number(today), kind=kind, customer_id=customer_id,
                  rma_id=rma_id, status=QuoteStatus.OPEN, language=_language(language),
                  issued_at=now, issued_on=today,
                  valid_until=quote_valid_until(today, current_policy().quote_valid_days),
                  issued_by_id=_user_id(actor))
    return quote


def _issue_replacement_quote(rma: Rma, items: Sequence[RmaItem], actor: Actor,
                             now: datetime, replaces: Quote | None = None) -> Quote:
    quote = _new_quote(QuoteKind.REPLACEMENT, rma.customer_id, rma.id, rma.language, actor,
                       now)
    on = quote.issued_on
    rate = vat_rate_on(on)
    with force_locale(quote.language):
        no = 0
        for no, item in enumerate(sorted(items, key=lambda i: (i.line_no, i.id)), start=1):
            model = item.unit.model
            _add_line(quote, no, "replacement", _item_description(item),
                      replacement_price_on(model, on), rate, item=item, model_id=model.id)
        fee = shipping_fee_on(on)
        if fee > 0:
            _add_line(quote, no + 1, "shipping", _("Shipping"), fee, rate)
    _set_totals(quote)
    db.session.add(quote)
    db.session.flush()
    if replaces is not None:
        replaces.superseded_by_id = quote.id
    _event(quote, "quote_issued", actor, now, gross=_money(quote.gross_total),
           currency=CURRENCY, valid_until=quote.valid_until.isoformat(),
           replaces=replaces.number if replaces is not None else None)
    _audit(actor, "quote.issued", quote, None,
           replaces=replaces.number if replaces is not None else None)
    _queue_issued(quote, [(rma.contact_email, rma.contact_name)])
    return quote


def _queue_issued(quote: Quote, recipients: Sequence[tuple[str, str]]) -> int:
    """E-mail ``quote_issued`` with the PDF to each (address, name), in the quote's
    language."""
    if not recipients:
        log.warning("quote %s issued but nobody to e-mail it to", quote.number)
        return 0
    pdf = render_quote_pdf(quote)
    queued = 0
    for address, name in recipients:
        message = enqueue(
            to=address, language=quote.language, template="quote_issued",
            context=_email_context(quote, name),
            attachments=[Attachment(f"{quote.number}.pdf", "application/pdf", pdf)])
        queued += message is not None
    return queued


def _email_context(quote: Quote, name: str) -> dict:
    return {
        "contact_name": name,
        "number": quote.number,
        "kind": str(quote.kind),
        "rma_number": quote.rma.number if quote.rma is not None else None,
        "customer_name": quote.customer.name,
        "contract_number": quote.customer.contract_number,
        "lines": [{"description": line.description, "gross": _money(line.gross)}
                  for line in quote.lines],
        "net": _money(quote.net_total),
        "vat": _money(quote.vat_total),
        "gross": _money(quote.gross_total),
        "currency": CURRENCY,
        "issued_on": quote.issued_on.isoformat(),
        "valid_until": quote.valid_until.isoformat(),
        "url": quote_url(quote),
        "vendor_name": current_app.config["VENDOR_NAME"],
    }


# -- keeping the RMA's quote in step (called by the warehouse services) -------------------
def sync_rma_quote(rma: Rma, actor: Actor, now: datetime) -> Quote | None:
    """Bring the RMA's open replacement quote in line with its items; NO commit (called
    inside the warehouse services' transactions after a decision or state change).

    The items to quote are the RMA's items waiting for payment that are on no line of an
    accepted quote (plus those of the open quote that finance released on credit, D-3:
    they are still to be invoiced). The same set as the open quote's: nothing changes.
    Otherwise the open quote (if any) is ``superseded`` by a new one for the set, or
    ``withdrawn`` when the set is empty (e.g. its only item was overridden to free, D-6).
    A new quote writes a "quote_issued" timeline event, an audit event and queues the
    ``quote_issued`` e-mail with the PDF to the RMA's contact. Returns the open quote
    afterwards (or None)."""
    db.session.scalar(select(Rma.id).where(Rma.id == rma.id).with_for_update())
    live = list(db.session.scalars(
        select(Quote).where(Quote.rma_id == rma.id, Quote.status.in_(LIVE_STATUSES))
        .options(selectinload(Quote.lines)).order_by(Quote.id)
        .with_for_update(of=Quote).execution_options(populate_existing=True)))
    open_quotes = [q for q in live if q.status == QuoteStatus.OPEN]
    accepted_items = {line.item_id for q in live if q.status == QuoteStatus.ACCEPTED
                      for line in q.lines if line.item_id is not None}
    current = open_quotes[-1] if open_quotes else None
    quoted = {line.item_id for line in current.lines if line.item_id is not None} \
        if current is not None else set()
    # An item finance released on credit (D-3) stays on the open quote: it is still to
    # be invoiced once the customer accepts.
    wanted = [item for item in rma.items if item.id not in accepted_items and (
        item.status == ItemStatus.WAITING_PAYMENT
        or (item.id in quoted and item.released_at is not None and item.decision == "paid"))]
    for extra in open_quotes[:-1]:  # never expected; closed rather than left dangling
        _close(extra, QuoteStatus.SUPERSEDED, actor, now)
    if current is not None and quoted == {item.id for item in wanted}:
        return current
    if not wanted:
        if current is not None:
            _close(current, QuoteStatus.WITHDRAWN, actor, now)
            _event(current, "quote_withdrawn", actor, now)
        return None
    if current is not None:
        _close(current, QuoteStatus.SUPERSEDED, actor, now)
    return _issue_replacement_quote(rma, wanted, actor, now, replaces=current)


def _close(quote: Quote, status: QuoteStatus, actor: Actor, now: datetime) -> None:
    before = quote.as_audit()
    quote.status = status
    quote.closed_at = now
    db.session.flush()
    _audit(actor, f"quote.{status.value}", quote, before)


# -- finding and reading ------------------------------------------------------------------
def _viewer(viewer: User | Actor | None) -> User | None:
    return viewer.user if isinstance(viewer, Actor) else viewer


def _ref_filter(ref: object):
    text = str(ref).strip().upper() if isinstance(ref, str | int) and \
        not isinstance(ref, bool) else ""
    if not text:
        return None
    if text.isdigit() and len(text) <= 9:
        return Quote.id == int(text)
    return Quote.number == text[:32]


def _not_found(ref: object) -> NotFoundError:
    shown = str(ref).strip()[:40] if isinstance(ref, str | int) else "-"
    return NotFoundError(_("There is no quote %(number)s.", number=shown or "-"), "quote")


def _scoped(stmt, user: User | None):
    if user is not None and not user.is_staff:
        stmt = stmt.where(Quote.customer_id == (user.customer_id or -1))
    return stmt


def get_quote(viewer: User | Actor | None, ref: object) -> Quote:
    """The quote ``ref`` (its number ``Q-2026-000001`` or numeric id) with its lines,
    customer and RMA. A customer ``viewer`` sees only its own customer's quotes: any other
    is ``NotFoundError`` (404), like a number that does not exist. Staff see every quote
    (``viewer`` None is the system)."""
    where = _ref_filter(ref)
    if where is None:
        raise _not_found(ref)
    quote = db.session.scalar(_scoped(
        select(Quote).where(where)
        .options(selectinload(Quote.lines), joinedload(Quote.customer), joinedload(Quote.rma)),
        _viewer(viewer)))
    if quote is None:
        raise _not_found(ref)
    return quote


def list_quotes(viewer: User | Actor | None, *, status: str | None = None,
                customer_id: int | None = None, page: int = 1, per_page: int = 50
                ) -> tuple[list[Quote], int]:
    """Quotes newest first, a page at a time: ``(quotes, total)``. A customer viewer gets
    its own customer's only (``customer_id`` ignored); staff other than finance, manager
    and admin may not list quotes (``ForbiddenError``). ``status`` is a ``QuoteStatus``
    value (``ValidationError`` otherwise). Two queries."""
    user = _viewer(viewer)
    if user is not None and user.is_staff and Role(user.role) not in FINANCE_PAGES:
        raise ForbiddenError(_("Your role (%(role)s) may not see the finance pages.",
                               role=str(user.role)))
    stmt = _scoped(select(Quote), user)
    if status:
        try:
            stmt = stmt.where(Quote.status == QuoteStatus(str(status).strip().lower()))
        except ValueError:
            raise ValidationError(_("%(value)s is not a quote status; use one of: "
                                    "%(statuses)s.", value=repr(status)[:40],
                                    statuses=", ".join(s.value for s in QuoteStatus)),
                                  "status") from None
    if customer_id is not None and (user is None or user.is_staff):
        stmt = stmt.where(Quote.customer_id == customer_id)
    per_page = min(max(int(per_page), 1), PER_PAGE_MAX)
    page = max(int(page), 1)
    total = db.session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = db.session.scalars(
        stmt.options(joinedload(Quote.customer), joinedload(Quote.rma))
        .order_by(Quote.issued_at.desc(), Quote.id.desc())
        .offset((page - 1) * per_page).limit(per_page)).all()
    return list(rows), total


def pages(total: int, per_page: int) -> int:
    return max(1, math.ceil(total / max(per_page, 1)))


def rma_quotes(rma: Rma) -> list[Quote]:
    """Every quote of the RMA, newest first (for the RMA pages)."""
    return list(db.session.scalars(
        select(Quote).where(Quote.rma_id == rma.id).order_by(Quote.id.desc())))


def open_quote(rma: Rma) -> Quote | None:
    """The RMA's open quote, or None."""
    return db.session.scalar(select(Quote).where(
        Quote.rma_id == rma.id, Quote.status == QuoteStatus.OPEN).order_by(Quote.id.desc())
        .limit(1))


def is_answerable(quote: Quote, today: date | None = None) -> bool:
    """True when the customer may still accept the quote: open and not past its last
    valid day (China date)."""
    today = today or clock.today()
    return quote.status == QuoteStatus.OPEN and today <= quote.valid_until


# -- answering ------------------------------------------------------------------------------
def _check_document(document: object) -> CheckedDocument:
    from rma.services.photos import _pillow_format, _signature_format, display_name

    if isinstance(document, tuple | list) and len(document) == 2:
        filename, data = document
    else:
        filename = getattr(document, "filename", None)
        data = getattr(document, "data", None)
    if not isinstance(data, bytes | bytearray | memoryview) or not data:
        raise ValidationError(_("Attach the customer's answer (PDF, JPEG or PNG)."),
                              "document")
    data = bytes(data)
    name = display_name(filename if isinstance(filename, str) else None)
    if len(data) > DOCUMENT_MAX_BYTES:
        raise ValidationError(_("%(name)s is larger than %(mb)d MB.", name=name,
                                mb=DOCUMENT_MAX_BYTES // (1024 * 1024)), "document")
    if data.startswith(b"%PDF-"):
        if not name.lower().endswith(".pdf"):
            name = (name.rsplit(".", 1)[0] if "." in name else name) + ".pdf"
        return CheckedDocument(name[:200], "application/pdf", data)
    expected = _signature_format(data)
    if expected is not None and _pillow_format(data) == expected:
        return CheckedDocument(display_name(filename if isinstance(filename, str) else None,
                                            expected)[:200],
                               "image/jpeg" if expected == "JPEG" else "image/png", data)
    raise ValidationError(_("%(name)s is not a PDF, JPEG or PNG file.", name=name),
                          "document")


def _answer_rules(actor: Actor, via: object, note: object, document: object
                  ) -> tuple[str, str, CheckedDocument | None]:
    """Who may answer how: the customer in the portal or the API; finance for an answer
    received by fax or e-mail, with the document. Returns (via, note, document)."""
    text = via.strip().lower() if isinstance(via, str) else ""
    if text not in CUSTOMER_VIAS + FINANCE_VIAS:
        raise ValidationError(_("How was the answer given? Use one of: %(vias)s.",
                                vias=", ".join(CUSTOMER_VIAS + FINANCE_VIAS)), "via")
    if note is None:
        note = ""
    if not isinstance(note, str):
        raise ValidationError(_("This value must be text."), "note")
    note = note.strip()
    if len(note) > NOTE_MAX:
        raise ValidationError(_("At most %(max)d characters.", max=NOTE_MAX), "note")
    user = actor.user
    if text in CUSTOMER_VIAS:
        if user is None or user.is_staff or not user.is_active:
            raise ForbiddenError(_("Only the customer answers a quote in the portal; finance "
                                   "records an answer received by fax or e-mail."))
        return text, note, None
    if user is not None and (not user.is_active or Role(user.role) != Role.FINANCE):
        raise ForbiddenError(_("Only finance records a customer's answer received by fax or "
                               "e-mail."))
    if document is None:
        raise ValidationError(_("Attach the customer's answer (PDF, JPEG or PNG)."),
                              "document")
    return text, note, _check_document(document)


def _locked_quote(actor: Actor, ref: object) -> Quote:
    """The quote, scoped to the actor's customer, locked in the order the warehouse
    services lock (items, then the RMA, then the quote) so the two never deadlock."""
    quote = get_quote(actor.user, ref)
    if quote.rma_id is not None:
        item_ids = sorted({line.item_id for line in quote.lines if line.item_id is not None})
        if item_ids:
            db.session.scalars(select(RmaItem.id).where(RmaItem.id.in_(item_ids))
                               .order_by(RmaItem.id).with_for_update()).all()
        db.session.scalar(select(Rma.id).where(Rma.id == quote.rma_id).with_for_update())
    return db.session.scalar(
        select(Quote).where(Quote.id == quote.id).with_for_update(of=Quote)
        .execution_options(populate_existing=True))


def _ensure_open(quote: Quote, today: date) -> None:
    number = quote.number
    if quote.status == QuoteStatus.OPEN and today <= quote.valid_until:
        return
    if quote.status in (QuoteStatus.OPEN, QuoteStatus.EXPIRED):
        raise ConflictError(_("Quote %(number)s expired on %(date)s (it was valid until "
                              "%(until)s).", number=number,
                              date=(quote.valid_until + timedelta(days=1)).isoformat(),
                              until=quote.valid_until.isoformat()))
    if quote.status == QuoteStatus.ACCEPTED:
        raise ConflictError(_("Quote %(number)s was already accepted.", number=number))
    if quote.status == QuoteStatus.DECLINED:
        raise ConflictError(_("Quote %(number)s was already declined.", number=number))
    if quote.status == QuoteStatus.SUPERSEDED:
        newer = db.session.get(Quote, quote.superseded_by_id) \
            if quote.superseded_by_id is not None else None
        raise ConflictError(_("Quote %(number)s was replaced by quote %(newer)s.",
                              number=number, newer=newer.number if newer else "-"))
    raise ConflictError(_("Quote %(number)s was withdrawn: there is nothing left to pay "
                          "for.", number=number))


def _mark_answered(quote: Quote, status: QuoteStatus, actor: Actor, now: datetime, via: str,
                   note: str, document: CheckedDocument | None) -> None:
    quote.status = status
    quote.answered_at = now
    quote.answered_by_id = _user_id(actor)
    quote.answered_via = via
    quote.answer_note = note
    if document is not None:
        quote.document_filename = document.filename
        quote.document_content_type = document.content_type
        quote.document_data = document.data


def accept_quote(actor: Actor, ref: object, *, via: str, note: str = "",
                 document: object = None):
    """Accept quote ``ref`` and issue its invoice (one transaction, commits once).

    ``via`` "portal"/"api": a customer user of the quote's customer (another customer's
    quote → ``NotFoundError``); "fax"/"email": finance only, with ``document`` (a
    ``(filename, data)`` pair or ``PhotoInput``: PDF, JPEG or PNG by content, at most
    10 MB). The quote must be open and China today on or before its last valid day
    (``ConflictError`` "Quote Q-… expired on …" / "… was already accepted"). Writes the
    answer, calls ``invoices.issue_invoice_for_quote``, a "quote_accepted" timeline
    event and an audit event. Returns the invoice."""
    from rma.services import invoices

    via, note, checked = _answer_rules(actor, via, note, document)
    try:
        quote = _locked_quote(actor, ref)
        now = clock.now()
        _ensure_open(quote, _local_today(now))
        before = quote.as_audit()
        _mark_answered(quote, QuoteStatus.ACCEPTED, actor, now, via, note, checked)
        db.session.flush()
        invoice = invoices.issue_invoice_for_quote(quote, actor, now)
        _event(quote, "quote_accepted", actor, now, via=via,
               invoice=getattr(invoice, "number", None))
        _audit(actor, "quote.accepted", quote, before,
               invoice=getattr(invoice, "number", None),
               document=checked.filename if checked is not None else None)
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    return invoice


def decline_quote(actor: Actor, ref: object, *, disposition: str = "return", via: str,
                  note: str = "", document: object = None) -> Quote:
    """Decline quote ``ref`` (same actor rules as :func:`accept_quote`); commits once.

    A replacement quote: every item on it still waiting for payment is declined through
    ``warehouse.decline_item``: ``disposition`` "scrap" with the unit at the warehouse →
    the unit is scrapped and the item closes; otherwise the unit goes back to the customer
    (item confirmed with the decision ``return_unit``, shipped by the warehouse like a
    return) or, when it never came in, the item closes. A support quote is just declined.
    The quote must be open (``ConflictError`` otherwise). Timeline event
    "quote_declined" and an audit event; no e-mail."""
    from rma.services import warehouse

    wanted = disposition.strip().lower() if isinstance(disposition, str) else ""
    if wanted not in DISPOSITIONS:
        raise ValidationError(_("Choose what happens to the faulty units: return or scrap."),
                              "disposition")
    via, note, checked = _answer_rules(actor, via, note, document)
    try:
        quote = _locked_quote(actor, ref)
        now = clock.now()
        if quote.status != QuoteStatus.OPEN:
            _ensure_open(quote, _local_today(now))
        before = quote.as_audit()
        _mark_answered(quote, QuoteStatus.DECLINED, actor, now, via, note, checked)
        declined = []
        if quote.kind == QuoteKind.REPLACEMENT:
            quote.decline_disposition = wanted
            seen = set()
            for line in quote.lines:
                item = line.item
                if item is None or item.id in seen:
                    continue
                seen.add(item.id)
                db.session.refresh(item)
                if item.status == ItemStatus.WAITING_PAYMENT:
                    warehouse.decline_item(actor, item, wanted, now)
                    declined.append(item.serial)
        db.session.flush()
        _event(quote, "quote_declined", actor, now, via=via, disposition=wanted,
               serials=declined)
        _audit(actor, "quote.declined", quote, before, items=declined,
               document=checked.filename if checked is not None else None)
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    return quote


# -- expiry ---------------------------------------------------------------------------------
def expiry_candidates(now: datetime) -> list[int]:
    """Ids of the open quotes past their last valid day at ``now`` (China date)."""
    return list(db.session.scalars(
        select(Quote.id).where(Quote.status == QuoteStatus.OPEN,
                               Quote.valid_until < _local_today(now)).order_by(Quote.id)))


def expire_quotes_job(now: datetime):
    """``rma tick`` job "quote-expiry": every open quote whose last valid day is before
    China today becomes ``expired`` exactly once (a conditional UPDATE claims it, also
    with two ticks at once), with an audit event, a "quote_expired" timeline event and
    the ``quote_expired`` e-mail (dedupe key ``quote-expired:<id>``). One transaction per
    quote; a failure is logged and left for the next run. Returns a ``JobResult``."""
    from rma.services.replacement_jobs import JobResult

    ids = expiry_candidates(now)
    if not ids:
        return JobResult("quote-expiry: none", busy=False)
    db.session.rollback()
    expired = emails = failed = 0
    for quote_id in ids:
        try:
            queued = expire_quote(quote_id, now)
        except Exception:  # noqa: BLE001 - logged; the quote is retried on the next run
            db.session.rollback()
            log.exception("expiring quote %s failed", quote_id)
            failed += 1
            continue
        if queued is None:
            continue
        expired += 1
        emails += queued
    text = f"quote-expiry: expired {expired}, e-mails {emails}"
    if failed:
        text += f", failed {failed}"
    return JobResult(text, busy=bool(expired or failed), items=expired, emails=emails,
                     failed=failed)


def expire_quote(quote_id: int, now: datetime) -> int | None:
    """Claim and expire one quote; commits. Returns the e-mails queued, or ``None`` when
    it was no longer open (answered, or expired by another run)."""
    today = _local_today(now)
    claimed = db.session.execute(
        update(Quote).where(Quote.id == quote_id, Quote.status == QuoteStatus.OPEN,
                            Quote.valid_until < today)
        .values(status=QuoteStatus.EXPIRED, closed_at=now)
        .execution_options(synchronize_session=False)).rowcount
    if claimed != 1:
        db.session.rollback()
        return None
    quote = db.session.scalar(
        select(Quote).where(Quote.id == quote_id)
        .options(selectinload(Quote.lines), joinedload(Quote.customer), joinedload(Quote.rma))
        .execution_options(populate_existing=True))
    system = Actor(label=EXPIRY_ACTOR)
    _event(quote, "quote_expired", system, now, valid_until=quote.valid_until.isoformat())
    event = record(system, "quote.expired", "quote", quote.number,
                   {"status": QuoteStatus.OPEN.value},
                   {"status": QuoteStatus.EXPIRED.value,
                    "valid_until": quote.valid_until.isoformat()})
    event.at = now
    queued = 0
    for address, name in _recipients(quote):
        message = enqueue(to=address, language=quote.language, template="quote_expired",
                          context=_email_context(quote, name),
                          dedupe_key=f"quote-expired:{quote.id}:{address}"[:200])
        queued += message is not None
    db.session.commit()
    return queued


def _recipients(quote: Quote) -> list[tuple[str, str]]:
    """Who hears about the quote: the RMA's contact; for a support quote the customer's
    billing e-mail, else its active customer administrators."""
    if quote.rma is not None:
        return [(quote.rma.contact_email, quote.rma.contact_name)]
    customer = quote.customer
    if customer.billing_email:
        return [(customer.billing_email, customer.billing_name or customer.name)]
    admins = db.session.scalars(
        select(User).where(User.customer_id == customer.id, User.role == Role.CUSTOMER,
                           User.is_customer_admin.is_(True), User.is_active_flag.is_(True))
        .order_by(User.email)).all()
    return [(u.email, u.full_name or u.email) for u in admins]


# -- finance: reissue, paid support (R-C3) --------------------------------------------------
def _ensure_finance(actor: Actor, what: str) -> None:
    user = actor.user
    if user is not None and (not user.is_active or Role(user.role) != Role.FINANCE):
        raise ForbiddenError(_("Your role (%(role)s) may not %(what)s.", role=str(user.role),
                               what=what))


def reissue_quote(actor: Actor, ref: object) -> Quote:
    """Finance issues a new quote at today's prices for an EXPIRED replacement quote whose
    items still wait for payment; the expired quote points to it (``superseded_by_id``,
    its status stays expired). ``ConflictError`` when the quote is not expired, is a
    support quote, nothing on it waits for payment, or the RMA already has an open
    quote. Commits once."""
    _ensure_finance(actor, _("reissue a quote"))
    try:
        old = _locked_quote(actor, ref)
        if old.status != QuoteStatus.EXPIRED:
            raise ConflictError(_("Only an expired quote can be reissued; %(number)s is "
                                  "%(status)s.", number=old.number, status=str(old.status)))
        if old.kind != QuoteKind.REPLACEMENT or old.rma is None:
            raise ConflictError(_("%(number)s is a support quote: create a new support "
                                  "quote instead.", number=old.number))
        existing = open_quote(old.rma)
        if existing is not None:
            raise ConflictError(_("RMA %(rma)s already has the open quote %(number)s.",
                                  rma=old.rma.number, number=existing.number))
        waiting = [line.item for line in old.lines if line.item is not None
                   and line.item.status == ItemStatus.WAITING_PAYMENT]
        if not waiting:
            raise ConflictError(_("Nothing on %(number)s waits for payment any more.",
                                  number=old.number))
        now = clock.now()
        quote = sync_rma_quote(old.rma, actor, now)
        if quote is None:  # the lines' items are all on an accepted quote
            raise ConflictError(_("Nothing on %(number)s waits for payment any more.",
                                  number=old.number))
        before = old.as_audit()
        old.superseded_by_id = quote.id
        record(actor, "quote.reissued", "quote", old.number, before,
               {**old.as_audit(), "new_quote": quote.number})
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    return quote


def create_support_quote(actor: Actor, contract_number: str, *, months: int = 12,
                         language: str | None = None) -> Quote:
    """Finance quotes paid support after the term (R-C3) for the customer with
    ``contract_number``: one line "Paid support, 12 months (R-C3)" at the support price
    valid today (pro rata for another number of months), ``support_months = months``, in
    ``language`` (default the customer's). Allowed when the customer's cover (project
    term and paid support periods, ``contracts.cover_ends_on``) ends within 60 days or
    has ended. ``ConflictError`` when covered beyond that ("covered until …"), when the
    contract has no acceptance date, or when an open support quote exists;
    ``ValidationError`` without a support price. E-mails ``quote_issued`` to the billing
    e-mail or, when empty, the customer's administrators. Audited; commits once."""
    from rma.services import contracts
    from rma.services.catalog import customer_by_contract

    _ensure_finance(actor, _("quote paid support"))
    if isinstance(months, bool) or not isinstance(months, int) \
            or not 1 <= months <= SUPPORT_MONTHS_MAX:
        raise ValidationError(_("Months must be a whole number from 1 to %(max)d.",
                                max=SUPPORT_MONTHS_MAX), "months")
    if language is not None and language not in LANGUAGES:
        raise ValidationError(_("Choose the language of the quote: %(languages)s.",
                                languages=", ".join(LANGUAGES)), "language")
    text = contract_number.strip().upper() if isinstance(contract_number, str) else ""
    customer = customer_by_contract(text) if text else None
    if customer is None:
        raise NotFoundError(_("There is no contract %(number)s.", number=text[:40] or "-"),
                            "contract_number")
    try:
        db.session.scalar(select(Customer.id).where(Customer.id == customer.id)
                          .with_for_update())
        now = clock.now()
        today = _local_today(now)
        if customer.accepted_on is None:
            raise ConflictError(_("%(name)s has no acceptance date yet: its project term "
                                  "has not started (R-C2).", name=customer.name))
        ends = contracts.cover_ends_on(customer)
        if ends is not None and ends > today + timedelta(days=SUPPORT_QUOTE_WINDOW_DAYS):
            raise ConflictError(_("%(name)s is covered until %(date)s: paid support can be "
                                  "quoted from %(from)s (R-C3).", name=customer.name,
                                  date=ends.isoformat(),
                                  **{"from": (ends - timedelta(
                                      days=SUPPORT_QUOTE_WINDOW_DAYS)).isoformat()}))
        existing = db.session.scalar(select(Quote).where(
            Quote.customer_id == customer.id, Quote.kind == QuoteKind.SUPPORT,
            Quote.status == QuoteStatus.OPEN).limit(1))
        if existing is not None:
            raise ConflictError(_("%(name)s already has the open support quote %(number)s.",
                                  name=customer.name, number=existing.number))
        price = support_price_on(today)
        if price is None:
            raise ValidationError(_("Set a support price in the price list first."), "price")
        quote = _new_quote(QuoteKind.SUPPORT, customer.id, None,
                           language or customer.language, actor, now)
        quote.support_months = months
        unit_price = price if months == 12 else round_money(price * months / 12)
        with force_locale(quote.language):
            description = ngettext("Paid support, %(num)d month (R-C3)",
                                   "Paid support, %(num)d months (R-C3)", months)
        _add_line(quote, 1, "support", description, unit_price, vat_rate_on(today))
        _set_totals(quote)
        db.session.add(quote)
        db.session.flush()
        _audit(actor, "quote.issued", quote, None, cover_ends_on=ends.isoformat()
               if ends is not None else None)
        _queue_issued(quote, _recipients(quote))
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    return quote


# -- documents and JSON ---------------------------------------------------------------------
def quote_document(quote: Quote) -> FinanceDocument:
    """The plain data of the quote's PDF (``rma.documents.finance``), notes in the
    quote's language."""
    from rma.documents.finance import DocumentLine, FinanceDocument

    customer = quote.customer
    config = current_app.config
    with force_locale(quote.language):
        notes = [_("Valid until %(date)s. Accept or decline this quote in the portal: "
                   "%(url)s", date=quote.valid_until.isoformat(), url=quote_url(quote))]
        if quote.kind == QuoteKind.SUPPORT:
            notes.append(_("Paid support after the project term covers support and software "
                           "upgrades, not the hardware warranty (R-C3). It starts when the "
                           "invoice is paid, or the day after the current cover ends."))
        else:
            notes.append(_("The replacements ship once the invoice is paid; a declined "
                           "quote sends the faulty units back to you."))
    return FinanceDocument(
        kind="quote", number=quote.number, language=quote.language,
        issued_on=quote.issued_on, vendor_name=config["VENDOR_NAME"],
        vendor_address=config["RETURN_ADDRESS"],
        customer_name=customer.billing_name or customer.name,
        customer_address=customer.billing_address or customer.address or "",
        tax_id=customer.tax_id or "", contract_number=customer.contract_number,
        lines=tuple(DocumentLine(
            line_no=line.line_no, description=line.description, serial=line.serial,
            quantity=line.quantity, unit_price=line.unit_price, vat_rate=line.vat_rate,
            net=line.net, vat=line.vat, gross=line.gross) for line in quote.lines),
        net_total=quote.net_total, vat_total=quote.vat_total, gross_total=quote.gross_total,
        currency=CURRENCY, rma_number=quote.rma.number if quote.rma is not None else None,
        valid_until=quote.valid_until, notes=tuple(notes))


def render_quote_pdf(quote: Quote) -> bytes:
    """The quote as an A4 PDF (``rma.documents.finance.render_finance_document``)."""
    from rma.documents.finance import render_finance_document

    return render_finance_document(quote_document(quote))


def quote_filename(quote: Quote) -> str:
    return f"{quote.number}.pdf"


def quote_json(quote: Quote) -> dict:
    """The quote for the API: amounts as strings with two decimals (rates with four)."""
    invoice = getattr(quote, "invoice", None)
    return {
        "number": quote.number,
        "id": quote.id,
        "kind": str(quote.kind),
        "status": str(quote.status),
        "contract_number": quote.customer.contract_number,
        "customer": quote.customer.name,
        "rma_number": quote.rma.number if quote.rma is not None else None,
        "language": quote.language,
        "issued_on": quote.issued_on.isoformat(),
        "valid_until": quote.valid_until.isoformat(),
        "currency": CURRENCY,
        "support_months": quote.support_months,
        "lines": [{
            "line_no": line.line_no,
            "kind": line.kind,
            "serial": line.serial,
            "description": line.description,
            "quantity": line.quantity,
            "unit_price": _money(line.unit_price),
            "vat_rate": f"{line.vat_rate:.4f}",
            "net": _money(line.net),
            "vat": _money(line.vat),
            "gross": _money(line.gross),
        } for line in quote.lines],
        "totals": {"net": _money(quote.net_total), "vat": _money(quote.vat_total),
                   "gross": _money(quote.gross_total)},
        "answered_at": quote.answered_at.isoformat() if quote.answered_at else None,
        "answered_via": quote.answered_via,
        "decline_disposition": quote.decline_disposition,
        "invoice_number": invoice.number if invoice is not None else None,
    }


# -- the customer's timeline, in plain words ------------------------------------------------
def _issued_text(data: dict, actor: str) -> str:
    values = {"number": data["number"], "gross": data.get("gross", ""),
              "currency": data.get("currency", CURRENCY), "date": data.get("valid_until", "")}
    if data.get("replaces"):
        return _("Quote %(number)s replaces quote %(old)s: %(gross)s %(currency)s including "
                 "VAT, valid until %(date)s. Accept or decline it in the portal.",
                 old=data["replaces"], **values)
    return _("Quote %(number)s for the paid replacement: %(gross)s %(currency)s including "
             "VAT, valid until %(date)s. Accept or decline it in the portal.", **values)


def _accepted_text(data: dict, actor: str) -> str:
    if data.get("invoice"):
        return _("Quote %(number)s was accepted; invoice %(invoice)s was issued. The "
                 "replacement ships once it is paid.", number=data["number"],
                 invoice=data["invoice"])
    return _("Quote %(number)s was accepted.", number=data["number"])


def _declined_text(data: dict, actor: str) -> str:
    if data.get("disposition") == "scrap":
        return _("Quote %(number)s was declined: the faulty units will be scrapped as you "
                 "asked (a unit that never reached us stays with you).", number=data["number"])
    return _("Quote %(number)s was declined: the faulty units will be sent back to you "
             "unrepaired.", number=data["number"])


TIMELINE_TEXTS.update({
    "quote_issued": _issued_text,
    "quote_accepted": _accepted_text,
    "quote_declined": _declined_text,
    "quote_expired": lambda d, a: _(
        "Quote %(number)s expired without an answer (it was valid until %(date)s). "
        "Contact us to have it issued again.", number=d["number"],
        date=d.get("valid_until", "")),
    "quote_withdrawn": lambda d, a: _(
        "Quote %(number)s was withdrawn: nothing is left to pay for.", number=d["number"]),
    "returned_unrepaired": lambda d, a: _(
        "Unit %(serial)s will be sent back to you unrepaired.", serial=d["serial"]),
    "unit_scrapped": lambda d, a: _("Unit %(serial)s was scrapped at your request.",
                                    serial=d["serial"]),
})


__all__ = [
    "CUSTOMER_VIAS", "DISPOSITIONS", "FINANCE_VIAS", "CheckedDocument", "accept_quote",
    "create_support_quote", "decline_quote", "expire_quote", "expire_quotes_job",
    "expiry_candidates", "get_quote", "is_answerable", "list_quotes", "open_quote", "pages",
    "quote_document", "quote_filename", "quote_json", "quote_url", "reissue_quote",
    "render_quote_pdf", "rma_quotes", "sync_rma_quote",
]
