"""Quotes, invoices and credit notes as A4 PDFs, rendered in memory from plain data
(STYLE habit 10; issue 5, D-5).

The data classes below are the contract between the finance services (which fill them
from the database) and the renderer. Amounts are ``Decimal`` already rounded by
``warranty.money`` (per line; totals are sums of lines): the renderer prints them, it
never computes or rounds money.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

DOCUMENT_KINDS = ("quote", "invoice", "credit_note")


@dataclass(frozen=True)
class DocumentLine:
    """One line: ``description`` (already in the document's language), the serial it is
    for (replacement lines), quantity, unit price, VAT rate (a fraction, 0.13), and the
    rounded net, VAT and gross amounts."""

    line_no: int
    description: str
    serial: str | None
    quantity: int
    unit_price: Decimal
    vat_rate: Decimal
    net: Decimal
    vat: Decimal
    gross: Decimal


@dataclass(frozen=True)
class FinanceDocument:
    """What a quote, invoice or credit note shows.

    ``kind`` is one of ``DOCUMENT_KINDS``; ``language`` ``zh_CN`` or ``en`` (the
    renderer uses it for every caption). ``vendor_*`` come from the config
    (``VENDOR_NAME``, ``RETURN_ADDRESS``). ``customer_*`` are the billing details
    (copied onto an invoice when issued). ``rma_number`` is set for replacement
    quotes/invoices. ``valid_until`` is set on quotes; ``due_on`` on invoices;
    ``references`` on a credit note (the invoice number it corrects) and ``reason`` its
    reason. ``notes`` are extra paragraphs already in the document's language (e.g. the
    support period bought, how to accept a quote)."""

    kind: str
    number: str
    language: str
    issued_on: date
    vendor_name: str
    vendor_address: str
    customer_name: str
    customer_address: str
    tax_id: str
    contract_number: str
    lines: tuple[DocumentLine, ...]
    net_total: Decimal
    vat_total: Decimal
    gross_total: Decimal
    currency: str = "CNY"
    rma_number: str | None = None
    valid_until: date | None = None
    due_on: date | None = None
    references: str | None = None
    reason: str = ""
    notes: tuple[str, ...] = ()
