"""Quotes, invoices and credit notes as A4 PDFs, rendered in memory from plain data
(STYLE habit 10; issue 5, D-5).

The data classes below are the contract between the finance services (which fill them
from the database) and the renderer. Amounts are ``Decimal`` already rounded by
``warranty.money`` (per line; totals are sums of lines): the renderer prints them, it
never computes or rounds money.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from flask_babel import force_locale
from flask_babel import gettext as _
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfgen.canvas import Canvas

from rma.documents.label import (
    CAPTION_GREY,
    CODE_FONT,
    CODE_FONT_BOLD,
    PAGE_HEADER_HEIGHT,
    PAGE_MARGIN,
    TEXT_FONT,
    caption,
    code_font,
    draw_lines,
    fitted_size,
    page_header,
    register_fonts,
    wrap,
)

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



# --- rendering ----------------------------------------------------------------------

MARGIN = PAGE_MARGIN
GUTTER = 8 * mm
HEADER_HEIGHT = PAGE_HEADER_HEIGHT
TABLE_HEAD = 7 * mm
ROW_PAD = 1.6 * mm
CELL_PAD = 1.2 * mm
BODY = 10  # pt: addresses, facts
CELL = 8.5  # pt: table cells
CELL_LEADING = 3.7 * mm
LEADING = 4.6 * mm
NOTE_LEADING = 4.3 * mm
DESCRIPTION_LINES = 30  # a longer description is cut with an ellipsis (one page at most)
ADDRESS_LINES = 8
REASON_LINES = 8
# Table columns after the description, as (key, width); the description takes the rest.
NO_WIDTH = 8 * mm
NUMBER_COLUMNS = (("quantity", 10 * mm), ("unit_price", 23 * mm), ("vat_rate", 13 * mm),
                  ("net", 24 * mm), ("vat", 21 * mm), ("gross", 24 * mm))


def render_finance_document(doc: FinanceDocument) -> bytes:
    """A quote, invoice or credit note (issue 5, D-5) as an A4 PDF.

    Every page: the vendor, "page n of m", the document's title by kind and its number.
    The first page: the vendor's address, the document's date and references (RMA,
    valid until for a quote, due date for an invoice, the corrected invoice and the
    reason for a credit note) and the customer's billing block (name, address, tax id,
    contract). Then a table of the lines (no., description with the serial, quantity,
    unit price, VAT rate, net, VAT and gross: VAT per line, D-5), continued on as many
    pages as needed under a repeated table head; the totals in figures with the
    currency; the notes. Amounts are printed as given (two decimals, thousands
    separators): the renderer never computes money.

    Captions are in ``doc.language`` (``flask_babel.force_locale``; outside an app
    context they stay English). Equal data gives equal bytes: the PDF dates are the date
    of issue. Raises ``ValueError`` for an unknown ``kind``."""
    if doc.kind not in DOCUMENT_KINDS:
        raise ValueError(f"Unknown finance document kind {doc.kind!r}: use one of "
                         f"{', '.join(DOCUMENT_KINDS)}.")
    register_fonts()
    with force_locale(doc.language):
        buffer = io.BytesIO()
        # invariant: no wall-clock time or random id in the file.
        canvas = Canvas(buffer, pagesize=A4, invariant=True, pageCompression=1)
        stamp = doc.issued_on.strftime("D:%Y%m%d000000+00'00'")
        canvas.setDateFormatter(lambda *_ts: stamp)
        canvas.setTitle(f"{_title(doc)} {doc.number}")
        canvas.setAuthor(doc.vendor_name)
        canvas.setSubject(_title(doc))
        canvas.setCreator("rma-service")
        _draw(canvas, doc)
        canvas.save()
        return buffer.getvalue()


def format_amount(amount: Decimal) -> str:
    """``1234.5`` → ``"1,234.50"``: two decimals, thousands separators."""
    return f"{amount:,.2f}"


def format_rate(rate: Decimal) -> str:
    """A VAT rate fraction as a percentage: ``0.13`` → ``"13%"``, ``0.065`` → ``"6.5%"``."""
    return f"{(rate * 100).normalize():f}%"


def _title(doc: FinanceDocument) -> str:
    if doc.kind == "quote":
        return _("Quote")
    if doc.kind == "invoice":
        return _("Invoice")
    return _("Credit note")


# --- layout -------------------------------------------------------------------------

@dataclass(frozen=True)
class _Block:
    """A piece of the flow below the first page's details: a table row, the totals, or
    a line of the notes. ``draw`` draws it with its top at the given y."""

    height: float
    draw: Callable[[Canvas, float], None]
    row: bool = False  # a table row: its page shows the table head above it


@dataclass(frozen=True)
class _Columns:
    left: float
    description_x: float
    description_width: float
    right_edges: dict[str, float]  # a number column's key → its right edge
    widths: dict[str, float]


def _columns() -> _Columns:
    content = A4[0] - 2 * MARGIN
    fixed = NO_WIDTH + sum(width for _key, width in NUMBER_COLUMNS)
    description_width = content - fixed
    x = MARGIN + NO_WIDTH + description_width
    edges, widths = {}, {}
    for key, width in NUMBER_COLUMNS:
        x += width
        edges[key], widths[key] = x, width
    return _Columns(MARGIN, MARGIN + NO_WIDTH, description_width, edges, widths)


def _draw(canvas: Canvas, doc: FinanceDocument) -> None:
    columns = _columns()
    page_height = A4[1]
    details_height, draw_details = _details(doc)
    blocks = ([_row(line, columns) for line in doc.lines] + [_totals(doc)]
              + _notes(doc))
    body_top = page_height - MARGIN - HEADER_HEIGHT
    first_room = body_top - details_height - MARGIN
    next_room = body_top - MARGIN
    pages = _paginate(blocks, first_room, next_room)
    for number, page in enumerate(pages, start=1):
        y = page_header(canvas, doc.vendor_name, _title(doc), doc.number, number, len(pages))
        if number == 1:
            y = draw_details(canvas, y)
        head_drawn = False
        for block in page:
            if block.row and not head_drawn:
                y = _table_head(canvas, columns, y)
                head_drawn = True
            block.draw(canvas, y)
            y -= block.height
        canvas.showPage()


def _paginate(blocks: list[_Block], first_room: float, next_room: float) -> list[list[_Block]]:
    """The blocks of each page, at least one page. A page takes blocks while they fit
    (a row counts the table head when it is the page's first row); a block never splits,
    and one taller than a page still gets a page of its own."""
    pages: list[list[_Block]] = [[]]
    room, used, head = first_room, 0.0, False
    for block in blocks:
        need = block.height + (TABLE_HEAD if block.row and not head else 0.0)
        if used + need > room and (pages[-1] or room < next_room):
            pages.append([])
            room, used, head = next_room, 0.0, False
            need = block.height + (TABLE_HEAD if block.row else 0.0)
        pages[-1].append(block)
        used += need
        head = head or block.row
    return pages


def _facts(doc: FinanceDocument) -> list[tuple[str, str]]:
    facts = [(_("Number"), doc.number), (_("Date"), doc.issued_on.isoformat())]
    if doc.rma_number:
        facts.append((_("RMA"), doc.rma_number))
    if doc.kind == "quote" and doc.valid_until is not None:
        facts.append((_("Valid until"), doc.valid_until.isoformat()))
    if doc.kind == "invoice" and doc.due_on is not None:
        facts.append((_("Due date"), doc.due_on.isoformat()))
    if doc.kind == "credit_note" and doc.references:
        facts.append((_("Credits invoice"), doc.references))
    facts.append((_("Currency"), doc.currency))
    return facts


def _details(doc: FinanceDocument) -> tuple[float, Callable[[Canvas, float], float]]:
    """The first page's blocks: seller and document facts side by side, the customer's
    billing block, a credit note's reason. Returns the height (needed to paginate) and a
    function drawing them below a given y."""
    content = A4[0] - 2 * MARGIN
    column = (content - GUTTER) / 2
    seller = (wrap(doc.vendor_name, TEXT_FONT, BODY, column, max_lines=2)
              + wrap(doc.vendor_address, TEXT_FONT, BODY, column, max_lines=ADDRESS_LINES))
    facts = _facts(doc)
    label_width = max(pdfmetrics.stringWidth(label, TEXT_FONT, 9) for label, _v in facts)
    label_width = min(label_width + 3 * mm, column / 2)
    top_height = 5 * mm + max(len(seller), len(facts)) * LEADING
    name = wrap(doc.customer_name, TEXT_FONT, 12, content, max_lines=3)
    billing = wrap(doc.customer_address, TEXT_FONT, BODY, content, max_lines=ADDRESS_LINES)
    if doc.tax_id:
        billing += wrap(_("Tax ID: %(tax_id)s", tax_id=doc.tax_id), TEXT_FONT, BODY, content,
                        max_lines=1)
    billing += wrap(_("Contract: %(number)s", number=doc.contract_number), TEXT_FONT, BODY,
                    content, max_lines=1)
    bill_height = 5 * mm + len(name) * 5.2 * mm + len(billing) * LEADING
    reason = (wrap(doc.reason, TEXT_FONT, BODY, content, max_lines=REASON_LINES)
              if doc.kind == "credit_note" and doc.reason.strip() else [])
    reason_height = 5 * mm + len(reason) * LEADING + 2 * mm if reason else 0.0
    height = 2 * mm + top_height + 3 * mm + bill_height + reason_height + 3 * mm

    def draw(canvas: Canvas, y: float) -> float:
        left = MARGIN
        right_x = left + column + GUTTER
        y -= 2 * mm
        caption(canvas, left, y - 3 * mm, _("Seller"), 9)
        draw_lines(canvas, left, y - 5 * mm - 3.3 * mm, seller, TEXT_FONT, BODY, LEADING)
        baseline = y - 5 * mm - 3.3 * mm
        for label, value in facts:
            caption(canvas, right_x, baseline, label, 9)
            font = code_font(value, bold=True)
            canvas.setFont(font, fitted_size(value, font, BODY, column - label_width, 6))
            canvas.drawString(right_x + label_width, baseline, value)
            baseline -= LEADING
        y -= top_height + 3 * mm
        canvas.setLineWidth(0.4)
        canvas.line(left, y + 1.5 * mm, left + content, y + 1.5 * mm)
        caption(canvas, left, y - 3 * mm, _("Bill to"), 9)
        below = draw_lines(canvas, left, y - 5 * mm - 4 * mm, name, TEXT_FONT, 12, 5.2 * mm)
        draw_lines(canvas, left, below, billing, TEXT_FONT, BODY, LEADING)
        y -= bill_height
        if reason:
            caption(canvas, left, y - 3 * mm, _("Reason"), 9)
            draw_lines(canvas, left, y - 5 * mm - 3.3 * mm, reason, TEXT_FONT, BODY, LEADING)
            y -= reason_height
        return y - 3 * mm

    return height, draw


def _right_caption(canvas: Canvas, right: float, y: float, text: str, width: float) -> None:
    canvas.setFillGray(CAPTION_GREY)
    canvas.setFont(TEXT_FONT, fitted_size(text, TEXT_FONT, 8, width, 5))
    canvas.drawRightString(right, y, text)
    canvas.setFillGray(0)


def _table_head(canvas: Canvas, columns: _Columns, y: float) -> float:
    baseline = y - 4.5 * mm
    caption(canvas, columns.left, baseline, _("No."), 8)
    caption(canvas, columns.description_x, baseline, _("Description"), 8)
    captions = {"quantity": _("Qty"), "unit_price": _("Unit price"),
                "vat_rate": _("VAT rate"), "net": _("Net"), "vat": _("VAT"),
                "gross": _("Gross")}
    for key, text in captions.items():
        _right_caption(canvas, columns.right_edges[key] - CELL_PAD, baseline, text,
                       columns.widths[key] - CELL_PAD)
    canvas.setLineWidth(0.6)
    right = columns.right_edges["gross"]
    canvas.line(columns.left, y - TABLE_HEAD + 1 * mm, right, y - TABLE_HEAD + 1 * mm)
    return y - TABLE_HEAD


def _row(line: DocumentLine, columns: _Columns) -> _Block:
    text_width = columns.description_width - CELL_PAD
    description = wrap(line.description, TEXT_FONT, CELL, text_width,
                       max_lines=DESCRIPTION_LINES)
    serial = (wrap(_("Serial: %(serial)s", serial=line.serial), TEXT_FONT, CELL, text_width,
                   max_lines=2) if line.serial else [])
    height = max(1, len(description) + len(serial)) * CELL_LEADING + 2 * ROW_PAD
    cells = {"quantity": str(line.quantity), "unit_price": format_amount(line.unit_price),
             "vat_rate": format_rate(line.vat_rate), "net": format_amount(line.net),
             "vat": format_amount(line.vat), "gross": format_amount(line.gross)}

    def draw(canvas: Canvas, top: float) -> None:
        baseline = top - ROW_PAD - 2.8 * mm
        canvas.setFont(CODE_FONT, CELL)
        canvas.drawString(columns.left, baseline, str(line.line_no))
        below = draw_lines(canvas, columns.description_x, baseline, description, TEXT_FONT,
                           CELL, CELL_LEADING)
        if serial:
            canvas.setFillGray(CAPTION_GREY)
            draw_lines(canvas, columns.description_x, below, serial, TEXT_FONT, CELL,
                       CELL_LEADING)
            canvas.setFillGray(0)
        for key, value in cells.items():
            width = columns.widths[key] - CELL_PAD
            canvas.setFont(CODE_FONT, fitted_size(value, CODE_FONT, CELL, width, 5))
            canvas.drawRightString(columns.right_edges[key] - CELL_PAD, baseline, value)
        canvas.setLineWidth(0.3)
        canvas.setStrokeGray(0.6)
        canvas.line(columns.left, top - height, columns.right_edges["gross"], top - height)
        canvas.setStrokeGray(0)

    return _Block(height, draw, row=True)


def _totals(doc: FinanceDocument) -> _Block:
    """Net, VAT and total in figures, right-aligned under the table, with the currency."""
    rows = [(_("Net total"), doc.net_total, False), (_("VAT total"), doc.vat_total, False),
            (_("Total"), doc.gross_total, True)]
    row_height = 5.5 * mm
    height = 3 * mm + len(rows) * row_height + 4 * mm

    def draw(canvas: Canvas, top: float) -> None:
        right = A4[0] - MARGIN
        label_right = right - 42 * mm
        baseline = top - 3 * mm - 3.8 * mm
        for label, amount, bold in rows:
            canvas.setFont(TEXT_FONT, 11 if bold else BODY)
            canvas.drawRightString(label_right, baseline, label)
            value = f"{format_amount(amount)} {doc.currency}"
            font = CODE_FONT_BOLD if bold else CODE_FONT
            canvas.setFont(font, fitted_size(value, font, 11 if bold else BODY, 40 * mm, 6))
            canvas.drawRightString(right - CELL_PAD, baseline, value)
            if bold:
                canvas.setLineWidth(0.6)
                canvas.line(label_right - 30 * mm, baseline + 4.2 * mm, right,
                            baseline + 4.2 * mm)
            baseline -= row_height

    return _Block(height, draw)


def _notes(doc: FinanceDocument) -> list[_Block]:
    """The notes, a block per line so long notes continue on the next page; the
    caption travels with the first line."""
    content = A4[0] - 2 * MARGIN
    blocks: list[_Block] = []
    for index, paragraph in enumerate(p for p in doc.notes if p.strip()):
        lines = wrap(paragraph, TEXT_FONT, 9, content)
        for number, text in enumerate(lines):
            gap = 2 * mm if number == 0 else 0.0
            with_caption = index == 0 and number == 0
            height = NOTE_LEADING + gap + (5 * mm if with_caption else 0.0)
            blocks.append(_Block(height, _note_drawer(text, gap, with_caption)))
    return blocks


def _note_drawer(text: str, gap: float, with_caption: bool) -> Callable[[Canvas, float], None]:
    def draw(canvas: Canvas, top: float) -> None:
        y = top - gap
        if with_caption:
            caption(canvas, MARGIN, y - 3.5 * mm, _("Notes"), 9)
            y -= 5 * mm
        canvas.setFont(TEXT_FONT, 9)
        canvas.drawString(MARGIN, y - 3.2 * mm, text)

    return draw
