"""The finance API under ``/api/v1`` (issue 5): invoices, payments, and the customer's
answer to a quote (R-W4, R-W5, R-C3, D-3, D-5).

Bearer tokens only, CSRF-exempt like ``rma.views.api``. A customer's token sees and
answers only its own customer's quotes and invoices: another customer's document is
answered like an unknown number (404, never 403). Finance, manager and admin tokens list
every invoice; only a finance token records a payment (403 for anyone else, whatever the
invoice). Amounts travel as strings with two decimals; a payment's amount may be sent as
a string or a JSON number, read exactly (``parse_float=Decimal``), never through a float.
Errors are RFC 9457 problem documents; messages are English unless Accept-Language asks
for Chinese.
"""

from __future__ import annotations

import functools

from flask import Blueprint, g, jsonify, request, url_for
from flask_babel import gettext as _

from rma.errors import problem
from rma.models import Role
from rma.services import NotFoundError, ServiceError
from rma.services import invoices as invoice_service
from rma.services import quotes as quote_service
from rma.services.catalog import customer_by_contract
from rma.views.api import token_required
from rma.views.api_common import (
    ProblemRaised,
    api_actor,
    invalid,
    json_body,
    whole_arg,
)
from rma.views.api_warehouse import service_problem

bp = Blueprint("api_finance", __name__, url_prefix="/api/v1")

DISPOSITIONS = ("return", "scrap")
PER_PAGE_MAX = 100


def finance_api(view):
    """A valid bearer token (401 otherwise); service refusals and bad input become
    problem documents."""

    @functools.wraps(view)
    def answered(*args, **kwargs):
        try:
            return view(*args, **kwargs)
        except ProblemRaised as bad:
            return bad.response
        except ServiceError as error:
            return service_problem(error)

    return token_required(answered)


def _forbidden(detail: str):
    return ProblemRaised(problem(403, "Forbidden", detail))


def _text(body: dict, name: str, default: str = "", maximum: int = 2000) -> str:
    value = body.get(name, default)
    if value is None:
        return default
    if not isinstance(value, str):
        raise invalid(name, _("%(name)s must be a text.", name=name))
    if len(value) > maximum:
        raise invalid(name, _("%(name)s is longer than %(max)d characters.", name=name,
                               max=maximum))
    return value.strip()


# -- invoices ---------------------------------------------------------------------------
@bp.get("/invoices")
@finance_api
def invoice_list():
    """A customer's token: its own invoices; a finance, manager or admin token: every
    customer's, filtered by ``status`` and ``customer`` (a contract number); a page at a
    time (``page``, ``per_page`` up to 100), newest first."""
    user = g.api_user
    page = whole_arg("page", 1)
    per_page = whole_arg("per_page", 20, PER_PAGE_MAX)
    status = request.args.get("status", "").strip() or None
    customer_id = None
    contract = request.args.get("customer", "").strip()
    if contract:
        try:
            customer_id = customer_by_contract(contract).id
        except NotFoundError:
            raise invalid("customer", _("%(value)s is not a known contract number.",
                                         value=repr(contract[:40]))) from None
        if not user.is_staff and customer_id != user.customer_id:
            # a customer's token names only its own contract (no existence leak either)
            raise invalid("customer", _("%(value)s is not a known contract number.",
                                         value=repr(contract[:40])))
    items, total = invoice_service.list_invoices(user, status=status, customer_id=customer_id,
                                                 page=page, per_page=per_page)
    return jsonify({
        "items": [_invoice_json(invoice) for invoice in items],
        "page": page,
        "per_page": per_page,
        "total": total,
        "pages": invoice_service.pages(total, per_page),
    })


def _invoice_json(invoice) -> dict:
    return {**invoice_service.invoice_json(invoice),
            "url": url_for("api_finance.invoice_detail", number=invoice.number,
                           _external=True)}


@bp.get("/invoices/<number>")
@finance_api
def invoice_detail(number: str):
    """One invoice or credit note: lines with VAT per line, totals, payments and what is
    outstanding; another customer's is a 404 like an unknown number."""
    return jsonify(_invoice_json(invoice_service.get_invoice(g.api_user, number)))


def payment_json(payment) -> dict:
    return {
        "amount": str(payment.amount),
        "received_on": payment.received_on.isoformat(),
        "method": str(payment.method),
        "reference": payment.reference,
        "note": payment.note,
        "recorded_at": payment.recorded_at.isoformat() if payment.recorded_at else None,
    }


@bp.post("/invoices/<number>/payments")
@finance_api
def record_payment(number: str):
    """Finance records money received (D-3): ``amount`` (a string or number with at most
    two decimals), ``received_on`` (not in the future), ``method``, ``reference``,
    ``note``; the service checks each. Partial payments add up; one more than what is outstanding
    is refused (422, nothing recorded). Paid in full, the invoice releases its items
    for shipping and their 72-hour clock starts."""
    if not g.api_user.has_role(Role.FINANCE):
        raise _forbidden(_("Only finance may record payments."))
    body = json_body()
    payment = invoice_service.record_payment(
        api_actor(), number, amount=body.get("amount"), received_on=body.get("received_on"),
        method=body.get("method"), reference=body.get("reference", ""),
        note=body.get("note", ""))
    invoice = invoice_service.get_invoice(g.api_user, payment.invoice.number)
    response = jsonify({"payment": payment_json(payment), "invoice": _invoice_json(invoice)})
    response.status_code = 201
    response.headers["Location"] = url_for("api_finance.invoice_detail", number=invoice.number)
    return response


# -- quotes -----------------------------------------------------------------------------
def _quote_json(quote) -> dict:
    return {**quote_service.quote_json(quote),
            "url": url_for("api_finance.quote_detail", number=quote.number, _external=True)}


@bp.get("/quotes/<number>")
@finance_api
def quote_detail(number: str):
    """One quote: lines with VAT per line, totals, valid until, its status and, once
    accepted, the invoice's number; another customer's is a 404."""
    return jsonify(_quote_json(quote_service.get_quote(g.api_user, number)))


def _customer_answer(number: str):
    """The quote the customer's token answers (404 for another customer's); a staff token
    is refused: finance records answers received by fax or e-mail on its pages."""
    quote = quote_service.get_quote(g.api_user, number)
    if g.api_user.is_staff:
        raise _forbidden(_("Only the customer answers a quote through the API; finance "
                           "records an answer received by fax or e-mail on the quote's "
                           "page."))
    return quote


@bp.post("/quotes/<number>/accept")
@finance_api
def quote_accept(number: str):
    """The customer accepts an open quote before it expires: an invoice is issued at once
    (201, its number in ``Location``); the replacements ship once it is paid (D-3)."""
    _customer_answer(number)
    body = json_body()
    invoice = quote_service.accept_quote(api_actor(), number, via="api",
                                         note=_text(body, "note"))
    quote = quote_service.get_quote(g.api_user, number)
    response = jsonify({"quote": _quote_json(quote), "invoice": _invoice_json(invoice)})
    response.status_code = 201
    response.headers["Location"] = url_for("api_finance.invoice_detail", number=invoice.number)
    return response


@bp.post("/quotes/<number>/decline")
@finance_api
def quote_decline(number: str):
    """The customer declines an open quote: ``disposition`` ``return`` (default: the
    faulty unit is sent back) or ``scrap`` (the vendor disposes of it); either way the
    items close without a replacement. ``note`` is optional."""
    _customer_answer(number)
    body = json_body()
    disposition = body.get("disposition", "return")
    if disposition is None or disposition == "":
        disposition = "return"
    if disposition not in DISPOSITIONS:
        raise invalid("disposition", _("disposition must be \"return\" (send the faulty "
                                        "unit back) or \"scrap\"."))
    quote = quote_service.decline_quote(api_actor(), number, disposition=disposition, via="api",
                                        note=_text(body, "note"))
    return jsonify(_quote_json(quote_service.get_quote(g.api_user, quote.number)))
