"""Staff finance pages under ``/staff/finance`` (issue 5): the dashboard (open quotes,
receivables with their ageing, payments per month, revenue from paid replacements, each
table exported to CSV and XLSX), the price list, quotes with a customer's answer received
by fax or e-mail, support renewals (R-C3), invoices with payments and credit notes, items
waiting for payment with release on credit (D-3), and a customer's billing details.

Finance, managers and admins see these pages; support and warehouse staff may open a
quote or an invoice linked from an RMA (and its PDF), nothing else. Only finance changes
money (``ACTION_ROLES``; admins also keep the price list and billing details): checked
here, on the server, and again by the services. Views translate: form → one service call
→ flash and redirect, or the page again with the refusal beside its field (nothing saved).
"""

from __future__ import annotations

import io
from datetime import date, timedelta
from decimal import Decimal

from flask import (
    Blueprint,
    abort,
    flash,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import joinedload
from wtforms.fields.choices import SelectChoice as C

from rma import clock
from rma.extensions import db
from rma.forms_finance import (
    DISPOSITION_WORDS,
    LANGUAGE_WORDS,
    METHOD_WORDS,
    PRICE_KIND_WORDS,
    VIA_WORDS,
    AnswerForm,
    BillingForm,
    CreditNoteForm,
    InvoiceFilterForm,
    PaymentForm,
    PriceForm,
    QuoteFilterForm,
    ReissueForm,
    ReleaseOnCreditForm,
    RevenueFilterForm,
    SupportQuoteForm,
)
from rma.models import (
    Customer,
    Invoice,
    InvoiceStatus,
    ItemStatus,
    ProductModel,
    Quote,
    QuoteKind,
    QuoteLine,
    QuoteStatus,
    Rma,
    RmaItem,
    Role,
)
from rma.services import NotFoundError, ServiceError, contracts, pricing
from rma.services.audit import Actor
from rma.services.rmas import PhotoInput
from rma.views import refused, roles_required
from warranty.money import MoneyError, parse_amount

bp = Blueprint("finance", __name__, url_prefix="/staff/finance")

#: Who sees the finance pages.
VIEW = (Role.FINANCE, Role.MANAGER, Role.ADMIN)
#: Who may open a quote or invoice page (linked from an RMA) and its PDF.
STAFF = (Role.SUPPORT, Role.WAREHOUSE, Role.FINANCE, Role.MANAGER, Role.ADMIN)
#: Who may change what (the services check again, and are the authority).
ACTION_ROLES: dict[str, tuple[Role, ...]] = {
    "payment": (Role.FINANCE,),
    "credit_note": (Role.FINANCE,),
    "release": (Role.FINANCE,),
    "answer": (Role.FINANCE,),
    "reissue": (Role.FINANCE,),
    "support_quote": (Role.FINANCE,),
    "price": (Role.FINANCE, Role.ADMIN),
    "billing": (Role.FINANCE, Role.ADMIN),
}
PER_PAGE = 50
RENEWAL_DAYS = 60  # R-C3: offer paid support when cover ends within this many days
EXPORT_FORMATS = ("csv", "xlsx")

QUOTE_STATUS_WORDS = {
    QuoteStatus.OPEN.value: _l("Awaiting answer"),
    QuoteStatus.ACCEPTED.value: _l("Accepted"),
    QuoteStatus.DECLINED.value: _l("Declined"),
    QuoteStatus.EXPIRED.value: _l("Expired"),
    QuoteStatus.SUPERSEDED.value: _l("Superseded"),
    QuoteStatus.WITHDRAWN.value: _l("Withdrawn"),
}
QUOTE_KIND_WORDS = {
    QuoteKind.REPLACEMENT.value: _l("Paid replacement"),
    QuoteKind.SUPPORT.value: _l("Paid support (R-C3)"),
}
INVOICE_STATUS_WORDS = {
    InvoiceStatus.UNPAID.value: _l("Unpaid"),
    InvoiceStatus.PARTIALLY_PAID.value: _l("Partially paid"),
    InvoiceStatus.PAID.value: _l("Paid"),
    InvoiceStatus.CREDITED.value: _l("Credited"),
    InvoiceStatus.ISSUED.value: _l("Credit note"),
}


# -- template helpers -------------------------------------------------------------------
@bp.app_template_global()
def fin_may(action: str) -> bool:
    """Whether the viewer may do ``action`` (``ACTION_ROLES``): pages offer only what the
    viewer can use; the server checks again."""
    return current_user.is_authenticated and current_user.has_role(*ACTION_ROLES[action])


@bp.app_template_global()
def fin_sees() -> bool:
    """Whether the viewer sees the finance pages (the staff navigation's link)."""
    return current_user.is_authenticated and current_user.has_role(*VIEW)


@bp.app_template_global()
def fin_money(amount) -> str:
    """An amount in CNY as printed: thousands separated, two decimals (already rounded
    by ``warranty.money``)."""
    if amount is None:
        return "—"
    return format(amount, ",.2f")


@bp.app_template_global()
def fin_rate(rate) -> str:
    """A VAT rate (a fraction) as a percentage: 0.13 → "13%"."""
    if rate is None:
        return "—"
    return f"{(rate * 100).normalize():f}%"


@bp.app_template_global()
def fin_word(kind: str, value) -> str:
    """A code in the reader's words: quote/invoice status, quote kind, payment method,
    price kind, language, answer channel, disposition, price source."""
    words = {
        "quote_status": QUOTE_STATUS_WORDS, "quote_kind": QUOTE_KIND_WORDS,
        "invoice_status": INVOICE_STATUS_WORDS, "method": METHOD_WORDS,
        "price_kind": PRICE_KIND_WORDS, "language": LANGUAGE_WORDS, "via": VIA_WORDS,
        "disposition": DISPOSITION_WORDS, "source": pricing.SOURCE_WORDS,
    }[kind]
    return str(words.get(str(value), value or ""))


@bp.app_template_global()
def fin_cell(value) -> str:
    """A report cell (str, int, Decimal or date) as text."""
    if value is None:
        return ""
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):  # money
        return format(value, ",.2f")
    return str(value)


# -- helpers ----------------------------------------------------------------------------
def _page() -> int:
    try:
        return max(1, int(request.args.get("page", 1)))
    except ValueError:
        return 1


def _invalid(form) -> int:
    """A posted form that did not validate: the page again with the errors beside the
    fields (a form with no field error failed its CSRF check: 400)."""
    if not form.errors:
        abort(400)
    return 422


def _amount(form, name: str = "amount", *, required: bool = True):
    """The form's amount as ``Decimal`` (``parse_amount``), or None with the error beside
    the field. Empty and not required → ``""``."""
    field = getattr(form, name)
    text = (field.data or "").strip()
    if not text and not required:
        return ""
    try:
        return parse_amount(text, str(field.label.text))
    except MoneyError as problem:
        field.errors = [*list(field.errors), str(problem)]
        return None


def _customers() -> list[Customer]:
    return list(db.session.scalars(select(Customer).order_by(Customer.name)))


def _customer_choices(customers) -> list[C]:
    return [C("", _l("Any customer")),
            *(C(str(c.id), f"{c.name} · {c.contract_number}") for c in customers)]


def _customer_id(value) -> int | None:
    return int(value) if (value or "").isdigit() else None


def _pdf(data: bytes, name: str):
    response = send_file(io.BytesIO(data), mimetype="application/pdf", as_attachment=False,
                         download_name=name, max_age=0)
    response.headers["Cache-Control"] = "private, no-store"
    return response


# -- dashboard --------------------------------------------------------------------------
def _revenue_range(form: RevenueFilterForm, today: date) -> tuple[date, date]:
    """The revenue table's dates: this year through today unless chosen; an inverted
    range is refused beside "Through"."""
    date_from = form.date_from.data or date(today.year, 1, 1)
    date_to = form.date_to.data or today
    if date_to < date_from:
        form.date_to.errors = [*list(form.date_to.errors),
                               _("The end is before the start.")]
        date_to = date_from
    if not form.date_from.errors:
        form.date_from.data = date_from
    if not form.date_to.errors:
        form.date_to.data = date_to
    return date_from, date_to


@bp.get("/")
@roles_required(*VIEW)
def dashboard():
    """Open quotes, receivables with their ageing (0–30, 31–60, 61–90, 90+ days),
    payments received per month and revenue from paid replacements per product model;
    ``?export=csv|xlsx&table=<key>`` downloads one table."""
    from rma.exports import export_response
    from rma.services import finance_reports as reports

    today = clock.today()
    form = RevenueFilterForm(request.args)
    form.validate()
    date_from, date_to = _revenue_range(form, today)
    builders = {  # by ``Table.key``: one query each
        "open-quotes": lambda: reports.open_quotes_table(today),
        "receivables": lambda: reports.receivables_table(today),
        "ageing": lambda: reports.ageing_table(today),
        "payments-by-month": lambda: reports.payments_by_month_table(today),
        "revenue-by-model": lambda: reports.revenue_by_model_table(date_from, date_to),
    }
    fmt = request.args.get("export")
    if fmt is not None:
        key = request.args.get("table", "")
        if fmt not in EXPORT_FORMATS or key not in builders:
            abort(404)
        return export_response(builders[key](), fmt)
    tables = {key: build() for key, build in builders.items()}
    export_args = {"date_from": date_from.isoformat(), "date_to": date_to.isoformat()}
    return render_template("finance/dashboard.html", tables=tables, form=form,
                           date_from=date_from, date_to=date_to, export_args=export_args,
                           today=today)


# -- price list -------------------------------------------------------------------------
def _price_form(formdata=None) -> PriceForm:
    form = PriceForm(formdata=formdata) if formdata is not None else PriceForm()
    models = db.session.scalars(select(ProductModel).order_by(ProductModel.code))
    form.model_code.choices = [C("", _l("— none —")),
                               *(C(m.code, f"{m.code} · {m.name}") for m in models)]
    return form


def _render_prices(form: PriceForm, error: str | None = None, status: int = 200):
    today = clock.today()
    return render_template("finance/prices.html", form=form, error=error, today=today,
                           rows=pricing.price_list(today),
                           history=pricing.price_history()), status


@bp.get("/prices")
@roles_required(*VIEW)
def prices():
    """What applies today, the history of dated entries, and a form to add one."""
    form = _price_form()
    if not form.is_submitted():
        form.valid_from.data = clock.today()
    return _render_prices(form)


@bp.post("/prices")
@roles_required(*ACTION_ROLES["price"])
def add_price():
    """Add a dated price or VAT entry (``pricing.add_price``)."""
    form = _price_form()
    error = None
    if not form.validate_on_submit():
        status = _invalid(form)
    else:
        try:
            entry = pricing.add_price(
                Actor.current(), kind=form.kind.data, valid_from=form.valid_from.data,
                amount=(form.amount.data or "").strip() or None,
                rate=(form.rate.data or "").strip() or None,
                model_code=form.model_code.data or None, valid_to=form.valid_to.data,
                note=form.note.data or "")
        except ServiceError as refusal:
            error, status = refused(form, refusal)
        else:
            flash(_("Price entry added: %(what)s from %(date)s.",
                    what=fin_word("price_kind", entry.kind),
                    date=entry.valid_from.isoformat()), "success")
            return redirect(url_for("finance.prices"))
    return _render_prices(form, error, status)


# -- quotes -----------------------------------------------------------------------------
@bp.get("/quotes")
@roles_required(*VIEW)
def quotes():
    from rma.services import quotes as quote_service

    customers = _customers()
    form = QuoteFilterForm(request.args)
    form.status.choices = [C("", _l("Any status")),
                           *(C(k, w) for k, w in QUOTE_STATUS_WORDS.items())]
    form.customer.choices = _customer_choices(customers)
    status = form.status.data if form.status.data in QUOTE_STATUS_WORDS else None
    customer_id = _customer_id(form.customer.data)
    page = _page()
    items, total = quote_service.list_quotes(current_user, status=status,
                                             customer_id=customer_id, page=page,
                                             per_page=PER_PAGE)
    return render_template("finance/quotes.html", form=form, quotes=items, total=total,
                           page=page, has_more=page * PER_PAGE < total,
                           filters={"status": status or "", "customer": customer_id or ""})


def _quote_or_404(number: str) -> Quote:
    from rma.services import quotes as quote_service

    try:
        return quote_service.get_quote(current_user, number)
    except NotFoundError:
        abort(404)


def _render_quote(quote: Quote, answer_form: AnswerForm | None = None,
                  error: str | None = None, status: int = 200):
    from rma.services import quotes as quote_service

    successor = (db.session.get(Quote, quote.superseded_by_id)
                 if quote.superseded_by_id else None)
    return render_template("finance/quote.html", quote=quote, successor=successor,
                           answerable=quote_service.is_answerable(quote),
                           answer_form=answer_form or AnswerForm(formdata=None),
                           reissue_form=ReissueForm(formdata=None), error=error), status


@bp.get("/quotes/<number>")
@roles_required(*STAFF)
def quote(number: str):
    """One quote: lines, totals, status, its RMA and invoice; finance records an answer
    received by fax or e-mail, or reissues an expired quote."""
    return _render_quote(_quote_or_404(number))


@bp.get("/quotes/<number>.pdf")
@roles_required(*STAFF)
def quote_pdf(number: str):
    from rma.services import quotes as quote_service

    found = _quote_or_404(number)
    return _pdf(quote_service.render_quote_pdf(found), f"{found.number}.pdf")


@bp.get("/quotes/<number>/document")
@roles_required(*VIEW)
def quote_document(number: str):
    """The customer's answer received by fax or e-mail, as it was uploaded."""
    found = _quote_or_404(number)
    if not found.document_filename or found.document_data is None:
        abort(404)
    response = send_file(io.BytesIO(found.document_data), download_name=found.document_filename,
                         mimetype=found.document_content_type or "application/octet-stream",
                         as_attachment=True)
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.post("/quotes/<number>/answer")
@roles_required(*ACTION_ROLES["answer"])
def answer_quote(number: str):
    """Record the customer's answer received by fax or e-mail, with the document: an
    acceptance issues the invoice; a decline sends the units back or scraps them."""
    from rma.services import quotes as quote_service

    form = AnswerForm()
    error = None
    if not form.validate_on_submit():
        status = _invalid(form)
    else:
        upload = form.document.data
        document = None
        if upload is not None and getattr(upload, "filename", ""):
            document = PhotoInput(filename=upload.filename, data=upload.read())
        via, note = form.via.data or "", form.note.data or ""
        try:
            if form.answer.data == "accept":
                invoice = quote_service.accept_quote(Actor.current(), number, via=via,
                                                     note=note, document=document)
            else:
                declined = quote_service.decline_quote(
                    Actor.current(), number, disposition=form.disposition.data or "return",
                    via=via, note=note, document=document)
        except ServiceError as refusal:
            error, status = refused(form, refusal)
        else:
            if form.answer.data == "accept":
                flash(_("Quote %(quote)s accepted: invoice %(invoice)s issued.",
                        quote=number, invoice=invoice.number), "success")
                return redirect(url_for("finance.invoice", number=invoice.number))
            flash(_("Quote %(quote)s declined.", quote=declined.number), "success")
            return redirect(url_for("finance.quote", number=declined.number))
    return _render_quote(_quote_or_404(number), form, error, status)


@bp.post("/quotes/<number>/reissue")
@roles_required(*ACTION_ROLES["reissue"])
def reissue_quote(number: str):
    """A new quote at today's prices for an expired one whose items still wait."""
    from rma.services import quotes as quote_service

    form = ReissueForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        new = quote_service.reissue_quote(Actor.current(), number)
    except ServiceError as refusal:
        error, status = refused(form, refusal)
        return _render_quote(_quote_or_404(number), None, error, status)
    flash(_("Quote %(new)s issued in place of %(old)s.", new=new.number, old=number),
          "success")
    return redirect(url_for("finance.quote", number=new.number))


# -- support renewals (R-C3) ------------------------------------------------------------
def _renewals(today: date) -> list[dict]:
    """Customers whose cover ended or ends within ``RENEWAL_DAYS`` days, soonest first,
    with their open support quote if any."""
    horizon = today + timedelta(days=RENEWAL_DAYS)
    open_quotes = {q.customer_id: q for q in db.session.scalars(
        select(Quote).where(Quote.kind == QuoteKind.SUPPORT,
                            Quote.status == QuoteStatus.OPEN))}
    rows = []
    for customer in _customers():
        ends_on = contracts.cover_ends_on(customer)
        if ends_on is None or ends_on > horizon:
            continue
        rows.append({"customer": customer, "ends_on": ends_on,
                     "days": (ends_on - today).days, "ended": ends_on < today,
                     "quote": open_quotes.get(customer.id)})
    rows.sort(key=lambda row: (row["ends_on"], row["customer"].name))
    return rows


def _render_renewals(error: str | None = None, status: int = 200):
    today = clock.today()
    return render_template("finance/renewals.html", rows=_renewals(today), today=today,
                           days=RENEWAL_DAYS, form=SupportQuoteForm(formdata=None),
                           error=error), status


@bp.get("/renewals")
@roles_required(*VIEW)
def renewals():
    """Customers to offer 12 months of paid support (R-C3)."""
    return _render_renewals()


@bp.post("/renewals/<contract_number>")
@roles_required(*ACTION_ROLES["support_quote"])
def support_quote(contract_number: str):
    from rma.services import quotes as quote_service

    form = SupportQuoteForm()
    if not form.validate_on_submit():
        abort(400)
    try:
        new = quote_service.create_support_quote(Actor.current(), contract_number)
    except ServiceError as refusal:
        db.session.rollback()
        status = refusal.status if 400 <= refusal.status < 500 else 422
        return _render_renewals(refusal.message, status)
    flash(_("Quote %(quote)s issued: 12 months of paid support.", quote=new.number),
          "success")
    return redirect(url_for("finance.quote", number=new.number))


# -- invoices ---------------------------------------------------------------------------
@bp.get("/invoices")
@roles_required(*VIEW)
def invoices():
    from rma.services import invoices as invoice_service

    customers = _customers()
    form = InvoiceFilterForm(request.args)
    form.status.choices = [C("", _l("Any status")),
                           *(C(k, w) for k, w in INVOICE_STATUS_WORDS.items())]
    form.customer.choices = _customer_choices(customers)
    status = form.status.data if form.status.data in INVOICE_STATUS_WORDS else None
    customer_id = _customer_id(form.customer.data)
    page = _page()
    items, total = invoice_service.list_invoices(current_user, status=status,
                                                 customer_id=customer_id, page=page,
                                                 per_page=PER_PAGE)
    return render_template("finance/invoices.html", form=form, invoices=items, total=total,
                           page=page, has_more=page * PER_PAGE < total,
                           filters={"status": status or "", "customer": customer_id or ""})


def _invoice_or_404(number: str) -> Invoice:
    from rma.services import invoices as invoice_service

    try:
        return invoice_service.get_invoice(current_user, number)
    except NotFoundError:
        abort(404)


def _render_invoice(invoice: Invoice, payment_form: PaymentForm | None = None,
                    credit_form: CreditNoteForm | None = None, error: str | None = None,
                    status: int = 200):
    if payment_form is None:
        payment_form = PaymentForm(formdata=None)
        payment_form.received_on.data = clock.today()
    if credit_form is None:
        credit_form = CreditNoteForm(formdata=None, prefix="credit")
    return render_template("finance/invoice.html", invoice=invoice,
                           payment_form=payment_form, credit_form=credit_form,
                           error=error), status


@bp.get("/invoices/<number>")
@roles_required(*STAFF)
def invoice(number: str):
    """One invoice or credit note: lines, payments, credit notes, what is outstanding;
    finance records payments and issues credit notes."""
    return _render_invoice(_invoice_or_404(number))


@bp.get("/invoices/<number>.pdf")
@roles_required(*STAFF)
def invoice_pdf(number: str):
    from rma.services import invoices as invoice_service

    found = _invoice_or_404(number)
    return _pdf(invoice_service.render_invoice_pdf(found), f"{found.number}.pdf")


@bp.post("/invoices/<number>/payments")
@roles_required(*ACTION_ROLES["payment"])
def record_payment(number: str):
    """Record a payment; an overpayment is refused beside the amount, nothing saved."""
    from rma.services import invoices as invoice_service

    form = PaymentForm()
    error = None
    if not form.validate_on_submit():
        status = _invalid(form)
    elif (amount := _amount(form)) is None:
        status = 200
    else:
        try:
            payment = invoice_service.record_payment(
                Actor.current(), number, amount=amount, received_on=form.received_on.data,
                method=form.method.data or "", reference=form.reference.data or "",
                note=form.note.data or "")
        except ServiceError as refusal:
            error, status = refused(form, refusal)
        else:
            flash(_("Payment of %(amount)s CNY recorded on %(number)s.",
                    amount=fin_money(payment.amount), number=number), "success")
            return redirect(url_for("finance.invoice", number=number))
    return _render_invoice(_invoice_or_404(number), form, None, error, status)


@bp.post("/invoices/<number>/credit-notes")
@roles_required(*ACTION_ROLES["credit_note"])
def issue_credit_note(number: str):
    """Issue a credit note against the invoice (an issued invoice is never edited)."""
    from rma.services import invoices as invoice_service

    form = CreditNoteForm(prefix="credit")
    error = None
    if not form.validate_on_submit():
        status = _invalid(form)
    elif (amount := _amount(form, required=False)) is None:
        status = 200
    else:
        try:
            note = invoice_service.issue_credit_note(
                Actor.current(), number, amount=amount or None,
                reason=form.reason.data or "")
        except ServiceError as refusal:
            error, status = refused(form, refusal)
        else:
            flash(_("Credit note %(note)s issued against %(number)s.", note=note.number,
                    number=number), "success")
            return redirect(url_for("finance.invoice", number=number))
    return _render_invoice(_invoice_or_404(number), None, form, error, status)


# -- items waiting for payment (D-3) ----------------------------------------------------
def _waiting_items() -> list[RmaItem]:
    return list(db.session.scalars(
        select(RmaItem).where(RmaItem.status == ItemStatus.WAITING_PAYMENT)
        .options(joinedload(RmaItem.rma).joinedload(Rma.customer),
                 joinedload(RmaItem.unit))
        .order_by(RmaItem.id)))


def _quotes_of(items: list[RmaItem]) -> dict[int, Quote]:
    """Each item's newest quote (by item id), in one query."""
    ids = [item.id for item in items]
    if not ids:
        return {}
    rows = db.session.execute(
        select(QuoteLine.item_id, Quote).join(Quote, Quote.id == QuoteLine.quote_id)
        .where(QuoteLine.item_id.in_(ids)).order_by(Quote.id)).all()
    return {item_id: found for item_id, found in rows}


def _render_waiting(bound: dict[int, ReleaseOnCreditForm] | None = None,
                    error: str | None = None, status: int = 200):
    from rma.services import invoices as invoice_service

    items = _waiting_items()
    quotes_by_item = _quotes_of(items)
    invoices_by_item = invoice_service.invoices_for_items(item.id for item in items)
    bound = bound or {}
    forms = {item.id: bound.get(item.id)
             or ReleaseOnCreditForm(formdata=None, prefix=f"release-{item.id}")
             for item in items}
    return render_template("finance/waiting.html", items=items, forms=forms,
                           quotes=quotes_by_item, invoices=invoices_by_item,
                           error=error), status


@bp.get("/waiting")
@roles_required(*VIEW)
def waiting():
    """Paid replacements waiting for payment; release on credit for a customer with
    credit terms (D-3)."""
    return _render_waiting()


@bp.post("/items/<int:item_id>/release")
@roles_required(*ACTION_ROLES["release"])
def release_on_credit(item_id: int):
    from rma.services import invoices as invoice_service

    form = ReleaseOnCreditForm(prefix=f"release-{item_id}")
    error = None
    if not form.validate_on_submit():
        status = _invalid(form)
    else:
        try:
            item = invoice_service.release_on_credit(Actor.current(), item_id,
                                                     form.reason.data or "")
        except ServiceError as refusal:
            error, status = refused(form, refusal)
        else:
            flash(_("%(serial)s released on credit: its 72-hour clock runs from now.",
                    serial=item.serial), "success")
            return redirect(url_for("finance.waiting"))
    return _render_waiting({item_id: form}, error, status)


# -- customers: billing details and support status --------------------------------------
def _customer_or_404(customer_id: int) -> Customer:
    customer = db.session.get(Customer, customer_id)
    if customer is None:
        abort(404)
    return customer


def _billing_form(customer: Customer) -> BillingForm:
    form = BillingForm(formdata=None)
    for name in ("billing_name", "billing_address", "tax_id", "billing_email", "language",
                 "credit_terms", "payment_terms_days"):
        getattr(form, name).data = getattr(customer, name)
    return form


def _render_customer(customer: Customer, form: BillingForm, error: str | None = None,
                     status: int = 200):
    today = clock.today()
    return render_template(
        "finance/customer.html", customer=customer, form=form, error=error,
        support=contracts.support_status(customer, today),
        cover_ends_on=contracts.cover_ends_on(customer), today=today,
        invoices=db.session.scalars(
            select(Invoice).where(Invoice.customer_id == customer.id)
            .order_by(Invoice.issued_on.desc(), Invoice.id.desc()).limit(20)).all(),
        quotes=db.session.scalars(
            select(Quote).where(Quote.customer_id == customer.id)
            .order_by(Quote.id.desc()).limit(20)).all(),
    ), status


@bp.get("/customers/<int:customer_id>")
@roles_required(*VIEW)
def customer(customer_id: int):
    """A customer's billing details, support cover (R-C2, R-C3), quotes and invoices."""
    found = _customer_or_404(customer_id)
    return _render_customer(found, _billing_form(found))


@bp.post("/customers/<int:customer_id>")
@roles_required(*ACTION_ROLES["billing"])
def set_billing(customer_id: int):
    found = _customer_or_404(customer_id)
    form = BillingForm()
    error = None
    if not form.validate_on_submit():
        status = _invalid(form)
    else:
        try:
            contracts.set_billing(
                Actor.current(), customer_id, billing_name=form.billing_name.data or "",
                billing_address=form.billing_address.data or "",
                tax_id=form.tax_id.data or "", billing_email=form.billing_email.data or "",
                language=form.language.data or "", credit_terms=bool(form.credit_terms.data),
                payment_terms_days=form.payment_terms_days.data)
        except ServiceError as refusal:
            error, status = refused(form, refusal)
            found = _customer_or_404(customer_id)
        else:
            flash(_("Billing details of %(name)s saved.", name=found.name), "success")
            return redirect(url_for("finance.customer", customer_id=customer_id))
    return _render_customer(found, form, error, status)
