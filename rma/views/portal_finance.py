"""The customer portal's quotes and invoices (issue 5; R-W4, R-W5, R-C3, D-3, D-5).

Routes of the ``portal`` blueprint (``rma.views.portal`` imports this module): the
customer's quotes, open first, with Accept and Decline; its invoices with payments and
what is outstanding; both as PDF. ``get_quote``/``get_invoice`` scope to the user's
customer, so another customer's number answers 404 like an unknown one. Staff may open
the same pages (e.g. from an RMA) but answer nothing here: finance records an answer
received by fax or e-mail on its own pages.
"""

from __future__ import annotations

import io
from datetime import timedelta

from flask import abort, flash, redirect, render_template, send_file, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import select

from rma import clock
from rma.extensions import db
from rma.forms_portal_finance import AcceptQuoteForm, DeclineQuoteForm
from rma.models import Quote, QuoteLine, QuoteStatus
from rma.services import (
    ForbiddenError,
    NotFoundError,
    ServiceError,
    contracts,
    invoices,
    quotes,
)
from rma.services.audit import Actor
from rma.views import refused
from rma.views.portal import PER_PAGE, _page, bp

QUOTE_STATUS_WORDS = {
    "open": _l("Waiting for your answer"),
    "accepted": _l("Accepted"),
    "declined": _l("Declined"),
    "expired": _l("Expired"),
    "superseded": _l("Replaced by a newer quote"),
    "withdrawn": _l("Withdrawn"),
}
INVOICE_STATUS_WORDS = {
    "unpaid": _l("Unpaid"),
    "partially_paid": _l("Partly paid"),
    "paid": _l("Paid"),
    "credited": _l("Credited"),
    "issued": _l("Issued"),
}
PAYMENT_METHOD_WORDS = {
    "bank_transfer": _l("Bank transfer"),
    "cheque": _l("Cheque"),
    "cash": _l("Cash"),
    "online": _l("Online payment"),
}


@bp.app_template_global()
def quote_status_word(value) -> str:
    return str(QUOTE_STATUS_WORDS.get(str(value), value))


@bp.app_template_global()
def invoice_status_word(value) -> str:
    return str(INVOICE_STATUS_WORDS.get(str(value), value))


@bp.app_template_global()
def payment_method_word(value) -> str:
    return str(PAYMENT_METHOD_WORDS.get(str(value), value))


@bp.app_template_filter("cny")
def cny(amount) -> str:
    """An amount as printed on the documents: two decimals and the currency."""
    return f"{amount:,.2f} CNY" if amount is not None else ""


@bp.app_template_filter("percent")
def percent(rate) -> str:
    """A VAT rate (a fraction, 0.13) as 13 %; never rounded away (0.065 → 6.5 %)."""
    value = (rate * 100).normalize()
    return f"{value:f} %"


@bp.app_template_global()
def open_quotes_of_items(items) -> dict[int, Quote]:
    """The OPEN quote each item (by id) waits on, in one query: the RMA page links an
    item waiting for payment to the quote the customer is to accept."""
    ids = [item.id for item in items]
    if not ids:
        return {}
    rows = db.session.execute(
        select(QuoteLine.item_id, Quote)
        .join(Quote, Quote.id == QuoteLine.quote_id)
        .where(QuoteLine.item_id.in_(ids), Quote.status == QuoteStatus.OPEN)
    ).all()
    return {item_id: quote for item_id, quote in rows}


def is_expired(quote: Quote) -> bool:
    """Expired, or open past its last valid day before the expiry job has run."""
    return quote.status == QuoteStatus.EXPIRED or (
        quote.status == QuoteStatus.OPEN and clock.today() > quote.valid_until)


def support_facts(customer) -> dict | None:
    """The customer's contract cover today, for the portal home (R-C2, R-C3): its state
    (``project_term``, ``paid_support``, ``expired``, ``before_term``, ``not_accepted``)
    and the dates to show."""
    if customer is None:
        return None
    today = clock.today()
    status = contracts.support_status(customer, today)
    facts = {"reason": status.reason, "covered": status.covered,
             "until": status.term.end_on if status.term is not None else None,
             "since": None, "starts": None}
    if status.reason == "expired":
        ends = contracts.cover_ends_on(customer)
        facts["since"] = ends + timedelta(days=1) if ends else None
    elif status.reason == "before_term" and customer.accepted_on is not None:
        facts["starts"] = customer.accepted_on + timedelta(days=1)
    return facts


def home_facts(user) -> dict:
    """What the portal home adds for finance: open quotes and the contract's cover."""
    if user.is_staff:
        return {"open_quotes": [], "support": None}
    open_quotes, _total = quotes.list_quotes(user, status=QuoteStatus.OPEN.value, per_page=20)
    return {"open_quotes": open_quotes, "support": support_facts(user.customer)}


def _pdf(data: bytes, filename: str):
    response = send_file(io.BytesIO(data), mimetype="application/pdf", as_attachment=True,
                         download_name=filename, max_age=0)
    response.headers["Cache-Control"] = "private, no-store"
    return response


# -- quotes -----------------------------------------------------------------------------
def _quote_or_404(number: str) -> Quote:
    try:
        return quotes.get_quote(current_user, number)
    except NotFoundError:
        abort(404)


@bp.get("/quotes")
def quote_list():
    """The customer's quotes, those waiting for an answer first."""
    try:
        items, total = quotes.list_quotes(current_user, page=_page(), per_page=PER_PAGE)
    except ForbiddenError:  # support and warehouse see a quote from its RMA only
        abort(403)
    items = sorted(items, key=lambda q: q.status != QuoteStatus.OPEN)  # stable: keeps order
    return render_template("portal/quotes.html", quotes=items, total=total, page=_page(),
                           has_more=_page() * PER_PAGE < total)


def _render_quote(quote: Quote, accept_form=None, decline_form=None, error=None,
                  status: int = 200):
    answerable = quotes.is_answerable(quote) and not current_user.is_staff
    return render_template(
        "portal/quote.html", quote=quote, answerable=answerable, expired=is_expired(quote),
        accept_form=accept_form or AcceptQuoteForm(prefix="accept", formdata=None),
        decline_form=decline_form or DeclineQuoteForm(prefix="decline", formdata=None),
        items_received={line.item_id: line.item.unit_received_at is not None
                        for line in quote.lines if line.item is not None},
        error=error,
    ), status


@bp.get("/quotes/<number>")
def quote_detail(number: str):
    return _render_quote(_quote_or_404(number))


@bp.get("/quotes/<number>.pdf")
def quote_pdf(number: str):
    quote = _quote_or_404(number)
    return _pdf(quotes.render_quote_pdf(quote), f"{quote.number}.pdf")


@bp.post("/quotes/<number>/accept")
def quote_accept(number: str):
    """Accept: the invoice is issued at once; the replacements ship once it is paid."""
    quote = _quote_or_404(number)
    form = AcceptQuoteForm(prefix="accept")
    if not form.validate_on_submit():
        return _render_quote(quote, accept_form=form, status=200 if form.errors else 400)
    try:
        invoice = quotes.accept_quote(Actor.current(), quote.number, via="portal",
                                      note=form.note.data or "")
    except ServiceError as refusal:
        error, status = refused(form, refusal)
        return _render_quote(_quote_or_404(number), accept_form=form, error=error,
                             status=status)
    flash(_("Thank you: quote %(quote)s is accepted and invoice %(invoice)s was issued.",
            quote=quote.number, invoice=invoice.number), "success")
    return redirect(url_for("portal.invoice_detail", number=invoice.number))


@bp.post("/quotes/<number>/decline")
def quote_decline(number: str):
    """Decline, saying what becomes of the faulty unit: sent back, or scrapped."""
    quote = _quote_or_404(number)
    form = DeclineQuoteForm(prefix="decline")
    if not form.validate_on_submit():
        return _render_quote(quote, decline_form=form, status=200 if form.errors else 400)
    try:
        quotes.decline_quote(Actor.current(), quote.number, disposition=form.disposition,
                             via="portal", note=form.note.data or "")
    except ServiceError as refusal:
        error, status = refused(form, refusal)
        return _render_quote(_quote_or_404(number), decline_form=form, error=error,
                             status=status)
    if form.disposition == "scrap":
        flash(_("Quote %(quote)s is declined. We will scrap your unit; no replacement is "
                "sent and you pay nothing.", quote=quote.number), "success")
    else:
        flash(_("Quote %(quote)s is declined. No replacement is sent and you pay nothing; a "
                "unit we hold is sent back to you.", quote=quote.number), "success")
    return redirect(url_for("portal.quote_detail", number=quote.number))


# -- invoices ---------------------------------------------------------------------------
def _invoice_or_404(number: str):
    try:
        return invoices.get_invoice(current_user, number)
    except NotFoundError:
        abort(404)


@bp.get("/invoices")
def invoice_list():
    try:
        items, total = invoices.list_invoices(current_user, page=_page(), per_page=PER_PAGE)
    except ForbiddenError:
        abort(403)
    return render_template("portal/invoices.html", invoices=items, total=total, page=_page(),
                           has_more=_page() * PER_PAGE < total)


@bp.get("/invoices/<number>")
def invoice_detail(number: str):
    return render_template("portal/invoice.html", invoice=_invoice_or_404(number))


@bp.get("/invoices/<number>.pdf")
def invoice_pdf(number: str):
    invoice = _invoice_or_404(number)
    return _pdf(invoices.render_invoice_pdf(invoice), f"{invoice.number}.pdf")

