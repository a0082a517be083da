"""Finance reports (issue 5, point 6): open quotes, receivables with ageing, payments
received per month and revenue from paid replacements per product model.

Each report is a :class:`Table` of plain cells (``str``, ``int``, ``Decimal``, ``date``)
that a page renders and ``rma.exports`` turns into CSV or XLSX. Every table is read with
ONE query (no lazy loading), amounts stay ``Decimal`` (D-5), and titles and column
headers are translated when the function is called (in the viewer's language). Reads
only: nothing here commits.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from flask_babel import gettext as _
from sqlalchemy import extract, func, select

from rma.extensions import db
from rma.models import (
    Customer,
    Invoice,
    InvoiceKind,
    InvoiceLine,
    InvoiceStatus,
    Payment,
    PaymentMethod,
    ProductModel,
    Quote,
    QuoteKind,
    QuoteStatus,
    Rma,
)
from rma.services import ValidationError
from warranty.money import AGEING_BUCKETS, ZERO, ageing_bucket, round_money

Cell = str | int | Decimal | date | None
RECEIVABLE_STATUSES = (InvoiceStatus.UNPAID, InvoiceStatus.PARTIALLY_PAID)


@dataclass(frozen=True)
class Table:
    """A report: ``key`` names it in URLs and download file names, ``title`` and
    ``columns`` are translated text, ``rows`` tuples of cells in column order."""

    key: str
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]


def _quote_kind_label(kind: QuoteKind) -> str:
    return _("Paid support") if kind == QuoteKind.SUPPORT else _("Replacement")


def open_quotes_table(today: date) -> Table:
    """Quotes waiting for the customer's answer (status open), the soonest to expire
    first: number, kind, customer, RMA, issued on, valid until, days left (negative when
    it lapsed and the expiry job has not run yet), total (CNY)."""
    statement = (
        select(Quote.number, Quote.kind, Customer.name, Rma.number.label("rma_number"),
               Quote.issued_on, Quote.valid_until, Quote.gross_total)
        .join(Customer, Customer.id == Quote.customer_id)
        .outerjoin(Rma, Rma.id == Quote.rma_id)
        .where(Quote.status == QuoteStatus.OPEN)
        .order_by(Quote.valid_until, Quote.number)
    )
    rows = tuple(
        (row.number, _quote_kind_label(row.kind), row.name, row.rma_number or "",
         row.issued_on, row.valid_until, (row.valid_until - today).days,
         round_money(row.gross_total))
        for row in db.session.execute(statement)
    )
    return Table("open-quotes", _("Open quotes"),
                 (_("Quote"), _("Kind"), _("Customer"), _("RMA"), _("Issued on"),
                  _("Valid until"), _("Days left"), _("Total (CNY)")), rows)


@dataclass(frozen=True)
class _Receivable:
    number: str
    customer: str
    issued_on: date
    due_on: date
    days: int
    bucket: str
    gross: Decimal
    paid: Decimal
    outstanding: Decimal


def _receivables(today: date) -> list[_Receivable]:
    """Unpaid and partially paid invoices (never credit notes), oldest first, with what
    is still due: gross − paid − credited. One query."""
    statement = (
        select(Invoice.number, Customer.name, Invoice.issued_on, Invoice.due_on,
               Invoice.gross_total, Invoice.paid_total, Invoice.credited_total)
        .join(Customer, Customer.id == Invoice.customer_id)
        .where(Invoice.kind == InvoiceKind.INVOICE,
               Invoice.status.in_(RECEIVABLE_STATUSES))
        .order_by(Invoice.issued_on, Invoice.number)
    )
    receivables = []
    for row in db.session.execute(statement):
        gross, paid = round_money(row.gross_total), round_money(row.paid_total)
        outstanding = gross - paid - round_money(row.credited_total)
        receivables.append(_Receivable(
            row.number, row.name, row.issued_on, row.due_on,
            max((today - row.issued_on).days, 0), ageing_bucket(row.issued_on, today),
            gross, paid, outstanding))
    return receivables


def receivables_table(today: date) -> Table:
    """Unpaid and partially paid invoices with their age on ``today``: number, customer,
    issued on, due on, days since issue, ageing bucket (0-30, 31-60, 61-90, 90+), gross,
    paid, outstanding (gross − paid − credited)."""
    rows = tuple(
        (r.number, r.customer, r.issued_on, r.due_on, r.days, r.bucket, r.gross, r.paid,
         r.outstanding)
        for r in _receivables(today)
    )
    return Table("receivables", _("Unpaid invoices"),
                 (_("Invoice"), _("Customer"), _("Issued on"), _("Due on"), _("Days"),
                  _("Ageing (days)"), _("Total (CNY)"), _("Paid (CNY)"),
                  _("Outstanding (CNY)")), rows)


def ageing_summary(today: date) -> list[tuple[str, int, Decimal]]:
    """For each ageing bucket in order ("0-30", "31-60", "61-90", "90+"; empty ones
    too): how many invoices are unpaid or partially paid and what is outstanding on
    them. One query."""
    counts: dict[str, int] = defaultdict(int)
    amounts: dict[str, Decimal] = defaultdict(lambda: ZERO)
    for receivable in _receivables(today):
        counts[receivable.bucket] += 1
        amounts[receivable.bucket] += receivable.outstanding
    return [(label, counts[label], amounts[label]) for label, _first, _last in AGEING_BUCKETS]


def ageing_table(today: date) -> Table:
    """:func:`ageing_summary` as a table (bucket, invoices, outstanding) with a total
    row. One query."""
    summary = ageing_summary(today)
    rows = [(label, count, amount) for label, count, amount in summary]
    rows.append((_("Total"), sum(count for _label, count, _amount in summary),
                 sum((amount for _label, _count, amount in summary), ZERO)))
    return Table("ageing", _("Receivables by age"),
                 (_("Ageing (days)"), _("Invoices"), _("Outstanding (CNY)")), tuple(rows))


def _method_label(method: PaymentMethod) -> str:
    return {
        PaymentMethod.BANK_TRANSFER: _("Bank transfer"),
        PaymentMethod.CHEQUE: _("Cheque"),
        PaymentMethod.CASH: _("Cash"),
        PaymentMethod.ONLINE: _("Online"),
    }[method]


def payments_by_month_table(today: date, months: int = 12) -> Table:
    """Payments received per calendar month, the ``months`` months up to and including
    the month of ``today``, oldest first (months without payments too): month
    (``YYYY-MM``), number of payments, the amount per payment method, and the total.
    One query (grouped by year, month and method in the database)."""
    if months < 1:
        raise ValidationError(_("Show at least one month."), "months")
    last = today.year * 12 + today.month - 1
    first = last - months + 1
    start = date(first // 12, first % 12 + 1, 1)
    following = last + 1
    end = date(following // 12, following % 12 + 1, 1)  # exclusive
    year = extract("year", Payment.received_on)
    month = extract("month", Payment.received_on)
    statement = (
        select(year.label("year"), month.label("month"), Payment.method,
               func.count(Payment.id).label("count"),
               func.sum(Payment.amount).label("amount"))
        .where(Payment.received_on >= start, Payment.received_on < end)
        .group_by(year, month, Payment.method)
    )
    methods = list(PaymentMethod)
    counts: dict[int, int] = defaultdict(int)
    amounts: dict[tuple[int, PaymentMethod], Decimal] = defaultdict(lambda: ZERO)
    for row in db.session.execute(statement):
        index = int(row.year) * 12 + int(row.month) - 1
        counts[index] += int(row.count)
        amounts[index, PaymentMethod(row.method)] += round_money(row.amount)
    rows = []
    for index in range(first, last + 1):
        by_method = [amounts[index, method] for method in methods]
        rows.append((f"{index // 12:04d}-{index % 12 + 1:02d}", counts[index], *by_method,
                     sum(by_method, ZERO)))
    columns = (_("Month"), _("Payments"),
               *(_("%(method)s (CNY)", method=_method_label(m)) for m in methods),
               _("Total (CNY)"))
    return Table("payments-by-month", _("Payments received per month"), columns, tuple(rows))


def revenue_by_model_table(date_from: date, date_to: date) -> Table:
    """Revenue from paid replacements per product model: the replacement lines of the
    invoices (not credit notes, nothing subtracted) issued from ``date_from`` through
    ``date_to``: model code, model name, units, net, VAT, gross; the largest gross
    first. One query (summed in the database)."""
    if date_from > date_to:
        raise ValidationError(_("The start date is after the end date."), "date_from")
    statement = (
        select(ProductModel.code, ProductModel.name,
               func.sum(InvoiceLine.quantity).label("units"),
               func.sum(InvoiceLine.net).label("net"),
               func.sum(InvoiceLine.vat).label("vat"),
               func.sum(InvoiceLine.gross).label("gross"))
        .join(Invoice, Invoice.id == InvoiceLine.invoice_id)
        .join(ProductModel, ProductModel.id == InvoiceLine.model_id)
        .where(InvoiceLine.kind == "replacement", Invoice.kind == InvoiceKind.INVOICE,
               Invoice.issued_on >= date_from, Invoice.issued_on <= date_to)
        .group_by(ProductModel.id, ProductModel.code, ProductModel.name)
    )
    rows = sorted(
        ((row.code, row.name, int(row.units), round_money(row.net), round_money(row.vat),
          round_money(row.gross)) for row in db.session.execute(statement)),
        key=lambda row: (-row[5], row[0]),
    )
    return Table("revenue-by-model", _("Revenue from replacements per product model"),
                 (_("Model"), _("Name"), _("Units"), _("Net (CNY)"), _("VAT (CNY)"),
                  _("Total (CNY)")), tuple(rows))
