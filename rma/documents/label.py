"""The RMA parcel label (R-R2) as PDF bytes, rendered in memory from plain data
(STYLE habit 10): an A4 sheet that lists every item, and a 100 x 150 mm thermal label.

The RMA number and each serial are Code128 barcodes drawn as vector bars
(``rma.documents.barcodes``). Text is in reportlab's built-in CID font STSong-Light, so
Chinese names and addresses print without embedding a font file; codes (RMA, serial,
contract numbers) are in Helvetica. The strings on the label go through Flask-Babel:
call ``render_label`` inside ``flask_babel.force_locale(...)`` for the language wanted
(outside an app context they stay English). The output depends on the data alone: equal
data gives equal bytes (the PDF dates are the submission date).
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from functools import cache

from flask_babel import gettext as _
from flask_babel import ngettext
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfgen.canvas import Canvas

from rma.documents.barcodes import (
    DEFAULT_MODULE,
    QUIET_ZONE_MODULES,
    BarcodeTooWideError,
    code128_modules,
    draw_code128,
    fit_module_width,
)

TEXT_FONT = "STSong-Light"  # built into reportlab (Adobe-GB1): Chinese and Latin
CODE_FONT = "Helvetica"
CODE_FONT_BOLD = "Helvetica-Bold"
THERMAL = (100 * mm, 150 * mm)
SIZES = ("a4", "thermal")
ELLIPSIS = "\u2026"
CAPTION_GREY = 0.35


@dataclass(frozen=True)
class LabelItem:
    """One unit in the parcel: its serial (D-8), product model code and the fault."""

    serial: str
    model_code: str
    fault: str = ""


@dataclass(frozen=True)
class LabelData:
    """What a label shows; ``return_address`` may hold several lines (newlines)."""

    rma_number: str
    customer_name: str
    contract_number: str
    return_address: str
    vendor_name: str
    submitted_on: date
    contact_name: str = ""
    contact_phone: str = ""
    items: tuple[LabelItem, ...] = ()


def render_label(data: LabelData, size: str = "a4") -> bytes:
    """R-R2: the parcel label of an RMA as a PDF.

    ``size="a4"``: an A4 sheet with the RMA number as a large barcode and text, the
    return address, customer, contract and contact, then a table of the items (line
    number, serial as barcode and text, model and fault), continued over as many pages
    as needed; every page repeats the RMA barcode and number with "page n of m".

    ``size="thermal"``: a 100 x 150 mm label with the RMA barcode and number, the
    return address, customer and contract, the item count and as many item serial
    barcodes as fit, then "n more items, see the A4 sheet". A serial too long for a
    barcode across the label is printed as text.

    Raises ``ValueError`` for an unknown size, an RMA number or serial Code128 cannot
    encode, and ``BarcodeTooWideError`` (a ``ValueError``) when the RMA number (or on A4,
    a serial) is too long to print at 0.33 mm modules; serials of D-8 (32 characters at
    most) always fit on A4."""
    if size not in _LAYOUTS:
        raise ValueError(f"Unknown label size {size!r}: use one of {', '.join(SIZES)}.")
    page_size, draw = _LAYOUTS[size]
    _register_fonts()
    buffer = io.BytesIO()
    # invariant: no wall-clock time or random id in the file; the dates come from the data.
    canvas = Canvas(buffer, pagesize=page_size, invariant=True, pageCompression=1)
    stamp = data.submitted_on.strftime("D:%Y%m%d000000+00'00'")
    canvas.setDateFormatter(lambda *_ts: stamp)
    canvas.setTitle(data.rma_number)
    canvas.setAuthor(data.vendor_name)
    canvas.setSubject(_("RMA parcel label"))
    canvas.setCreator("rma-service")
    draw(canvas, data)
    canvas.save()
    return buffer.getvalue()


@cache
def _register_fonts() -> None:
    """Register the CID font once per process (reportlab keeps a global registry)."""
    pdfmetrics.registerFont(UnicodeCIDFont(TEXT_FONT))


# --- text ---------------------------------------------------------------------------

_CJK = "\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef"
# A token is a run of spaces, one CJK character (a line may break after any of them),
# or a word of anything else.
_TOKEN = re.compile(rf"\s+|[{_CJK}]|[^\s{_CJK}]+")


def _code_font(text: str, bold: bool = False) -> str:
    """Helvetica for ASCII codes, the CID font when a code holds anything else."""
    if text.isascii():
        return CODE_FONT_BOLD if bold else CODE_FONT
    return TEXT_FONT


def _width(text: str, font: str, size: float) -> float:
    return pdfmetrics.stringWidth(text, font, size)


def wrap(text: str, font: str, size: float, width: float,
         max_lines: int | None = None) -> list[str]:
    """``text`` broken into lines no wider than ``width`` points: at spaces, between
    CJK characters, and inside a word only when the word alone is too wide. Newlines
    start a new line; blank lines are dropped, runs of spaces become one. With
    ``max_lines``, the last line kept ends in an ellipsis when text was cut."""
    _register_fonts()
    lines: list[str] = []
    space = _width(" ", font, size)
    for paragraph in text.splitlines():
        # The line so far (no trailing space), its width, and whether a space is pending.
        line, used, gap = "", 0.0, False
        for token in _TOKEN.findall(paragraph):
            if token.isspace():
                gap = bool(line)
                continue
            token_width = _width(token, font, size)
            extra = space if gap else 0.0
            if used + extra + token_width <= width:
                line = line + (" " if gap else "") + token
                used, gap = used + extra + token_width, False
                continue
            if line:
                lines.append(line)
            line, used, gap = "", 0.0, False
            if token_width <= width:
                line, used = token, token_width
                continue
            for char in token:  # a word too wide for a line: break it anywhere
                char_width = _width(char, font, size)
                if line and used + char_width > width:
                    lines.append(line)
                    line, used = "", 0.0
                line, used = line + char, used + char_width
        if line:
            lines.append(line)
    if max_lines is not None and len(lines) > max_lines:
        lines = lines[:max_lines]
        last = lines[-1]
        while last and _width(last + ELLIPSIS, font, size) > width:
            last = last[:-1]
        lines[-1] = last.rstrip() + ELLIPSIS
    return lines


def _fitted_size(text: str, font: str, size: float, width: float, smallest: float) -> float:
    """The largest font size up to ``size`` at which one line of ``text`` fits."""
    natural = _width(text, font, size)
    if natural <= width:
        return size
    return max(smallest, size * width / natural)


def _caption(canvas: Canvas, x: float, y: float, text: str, size: float) -> None:
    canvas.setFillGray(CAPTION_GREY)
    canvas.setFont(TEXT_FONT, size)
    canvas.drawString(x, y, text)
    canvas.setFillGray(0)


def _lines(canvas: Canvas, x: float, y: float, lines: list[str], font: str, size: float,
           leading: float) -> float:
    """Draw ``lines`` with the first baseline at ``y``, in one text object; returns
    the baseline after the last line."""
    text = canvas.beginText(x, y)
    text.setFont(font, size, leading)
    for line in lines:
        text.textLine(line)
    canvas.drawText(text)
    return y - len(lines) * leading


# --- page header of the A4 documents (finance documents, on-site reports) ---------------

PAGE_MARGIN = 15 * mm
PAGE_HEADER_HEIGHT = 19 * mm


def page_header(canvas: Canvas, vendor_name: str, title: str, number: str, page: int,
                pages: int) -> float:
    """Vendor, page n of m, title and number at the top of an A4 page with
    ``PAGE_MARGIN`` margins, ruled off under ``PAGE_HEADER_HEIGHT``. Returns the y under
    it."""
    page_width, page_height = A4
    left, right = PAGE_MARGIN, page_width - PAGE_MARGIN
    top = page_height - PAGE_MARGIN
    canvas.setFont(TEXT_FONT, 9)
    vendor = wrap(vendor_name, TEXT_FONT, 9, (right - left) * 0.65, max_lines=1)
    canvas.drawString(left, top - 3.5 * mm, vendor[0] if vendor else "")
    canvas.drawRightString(right, top - 3.5 * mm,
                           _("Page %(page)d of %(pages)d", page=page, pages=pages))
    number_font = _code_font(number, bold=True)
    number_size = _fitted_size(number, number_font, 14, (right - left) / 2, 8)
    number_width = _width(number, number_font, number_size)
    canvas.setFont(TEXT_FONT, _fitted_size(title, TEXT_FONT, 18,
                                           right - left - number_width - 8 * mm, 10))
    canvas.drawString(left, top - 12.5 * mm, title)
    canvas.setFont(number_font, number_size)
    canvas.drawRightString(right, top - 12.5 * mm, number)
    bottom = top - PAGE_HEADER_HEIGHT
    canvas.setLineWidth(0.8)
    canvas.line(left, bottom + 3 * mm, right, bottom + 3 * mm)
    return bottom


def _contact(data: LabelData) -> str:
    return "  ".join(part for part in (data.contact_name, data.contact_phone) if part)


# --- A4 sheet -----------------------------------------------------------------------

A4_MARGIN = 15 * mm
A4_RMA_BAR_HEIGHT = 16 * mm
A4_ITEM_BAR_HEIGHT = 10 * mm
A4_NO_WIDTH = 10 * mm
A4_MIN_MODEL_WIDTH = 32 * mm
A4_ROW_PAD = 2.5 * mm
A4_SERIAL_TEXT = 9.5  # pt
A4_FAULT_SIZE = 8.5
A4_FAULT_LEADING = 3.6 * mm
A4_FAULT_LINES = 4
A4_TABLE_HEAD = 7 * mm
A4_ADDRESS_SIZE = 13
A4_ADDRESS_LEADING = 5.8 * mm
A4_ADDRESS_LINES = 10


@dataclass(frozen=True)
class _Row:
    line_no: int
    item: LabelItem
    module: float
    fault_lines: list[str]
    height: float


def _draw_a4(canvas: Canvas, data: LabelData) -> None:
    page_width, page_height = A4
    left = A4_MARGIN
    content = page_width - 2 * A4_MARGIN
    rma_module = fit_module_width(data.rma_number, content)
    rows, serial_width = _a4_rows(data.items, content)
    details_height, draw_details = _a4_details(data, content)
    head_bottom = page_height - A4_MARGIN - _a4_header_height()
    first_room = head_bottom - details_height - A4_TABLE_HEAD - A4_MARGIN
    next_room = head_bottom - A4_TABLE_HEAD - A4_MARGIN
    pages = _paginate([row.height for row in rows], first_room, next_room)
    for number, (start, stop) in enumerate(pages, start=1):
        y = _a4_header(canvas, data, rma_module, number, len(pages))
        if number == 1:
            y = draw_details(canvas, y)
        if stop > start:
            y = _a4_table_head(canvas, y, left, serial_width, content)
            for row in rows[start:stop]:
                _a4_row(canvas, row, y, left, serial_width, content)
                y -= row.height
        canvas.showPage()


def _a4_header_height() -> float:
    return 5 * mm + A4_RMA_BAR_HEIGHT + 13 * mm


def _a4_header(canvas: Canvas, data: LabelData, module: float, page: int, pages: int) -> float:
    """The block repeated on every page; returns the y under it."""
    page_width, page_height = A4
    left, right = A4_MARGIN, page_width - A4_MARGIN
    top = page_height - A4_MARGIN
    caption_y = top - 3.5 * mm
    canvas.setFont(TEXT_FONT, 9)
    vendor = wrap(data.vendor_name, TEXT_FONT, 9, (right - left) * 0.6, max_lines=1)
    canvas.drawString(left, caption_y, vendor[0] if vendor else "")
    canvas.drawRightString(right, caption_y, _("Page %(page)d of %(pages)d", page=page,
                                                 pages=pages))
    bars_bottom = top - 5 * mm - A4_RMA_BAR_HEIGHT
    draw_code128(canvas, left, bars_bottom, data.rma_number, module, A4_RMA_BAR_HEIGHT)
    font = _code_font(data.rma_number, bold=True)
    size = _fitted_size(data.rma_number, font, 26, right - left, 10)
    canvas.setFont(font, size)
    canvas.drawString(left + QUIET_ZONE_MODULES * module, bars_bottom - 9 * mm, data.rma_number)
    bottom = top - _a4_header_height()
    canvas.setLineWidth(0.8)
    canvas.line(left, bottom + 1.5 * mm, right, bottom + 1.5 * mm)
    return bottom - 3 * mm


def _a4_details(data: LabelData, content: float) -> tuple[float, Callable[[Canvas, float], float]]:
    """The first page's return address and customer block: its height and a function
    that draws it below a given y (the height is needed before drawing, to paginate)."""
    pad = 4 * mm
    inner = content - 2 * pad
    vendor = wrap(data.vendor_name, TEXT_FONT, A4_ADDRESS_SIZE, inner, max_lines=2)
    address = wrap(data.return_address, TEXT_FONT, A4_ADDRESS_SIZE, inner,
                   max_lines=A4_ADDRESS_LINES)
    box_height = pad + 5 * mm + (len(vendor) + len(address)) * A4_ADDRESS_LEADING + pad / 2
    customer = wrap(data.customer_name, TEXT_FONT, 12, content, max_lines=3)
    facts = [_("Contract: %(number)s", number=data.contract_number)]
    if _contact(data):
        facts.append(_("Contact: %(contact)s", contact=_contact(data)))
    facts.append(_("Submitted on: %(date)s", date=data.submitted_on.isoformat()))
    facts.append(ngettext("%(num)d item", "%(num)d items", len(data.items)))
    facts = [line for fact in facts for line in wrap(fact, TEXT_FONT, 11, content)]
    block_height = 5 * mm + len(customer) * 5.2 * mm + len(facts) * 5 * mm
    height = box_height + 4 * mm + block_height + 3 * mm

    def draw(canvas: Canvas, y: float) -> float:
        left = A4_MARGIN
        canvas.setLineWidth(1.2)
        canvas.rect(left, y - box_height, content, box_height, stroke=1, fill=0)
        _caption(canvas, left + pad, y - pad - 1 * mm, _("Return to"), 10)
        _lines(canvas, left + pad, y - pad - 5 * mm - 2.5 * mm, vendor + address, TEXT_FONT,
               A4_ADDRESS_SIZE, A4_ADDRESS_LEADING)
        y = y - box_height - 4 * mm
        _caption(canvas, left, y - 3 * mm, _("From"), 9)
        below = _lines(canvas, left, y - 5 * mm - 3.5 * mm, customer, TEXT_FONT, 12, 5.2 * mm)
        below = _lines(canvas, left, below, facts, TEXT_FONT, 11, 5 * mm)
        return y - block_height - 3 * mm

    return height, draw


def _a4_rows(items: tuple[LabelItem, ...], content: float) -> tuple[list[_Row], float]:
    """Measure every item row. The serial column is as wide as the widest serial needs
    at the preferred module, leaving at least ``A4_MIN_MODEL_WIDTH`` for model and fault;
    a serial wider than that at 0.33 mm raises ``BarcodeTooWideError``."""
    widest = max((_bars(item.serial, DEFAULT_MODULE) for item in items), default=0.0)
    serial_width = min(widest + 2 * mm, content - A4_NO_WIDTH - A4_MIN_MODEL_WIDTH)
    model_width = content - A4_NO_WIDTH - serial_width - 2 * mm
    bar_block = A4_ITEM_BAR_HEIGHT + 5 * mm
    rows = []
    for line_no, item in enumerate(items, start=1):
        module = fit_module_width(item.serial, serial_width - 2 * mm)
        fault = wrap(item.fault, TEXT_FONT, A4_FAULT_SIZE, model_width,
                     max_lines=A4_FAULT_LINES)
        text_block = 5 * mm + len(fault) * A4_FAULT_LEADING
        rows.append(_Row(line_no, item, module, fault,
                         max(bar_block, text_block) + 2 * A4_ROW_PAD))
    return rows, serial_width


def _paginate(heights: list[float], first_room: float, next_room: float) -> list[tuple[int, int]]:
    """Rows per page as ``(start, stop)`` index ranges, at least one page. A page takes
    rows while they fit and a row never splits; the first page may hold no row when its
    details fill it, and a row taller than a whole page still gets a page of its own."""
    pages: list[tuple[int, int]] = []
    start, room, used = 0, first_room, 0.0
    for index, height in enumerate(heights):
        if used + height > room and (index > start or room < next_room):
            pages.append((start, index))
            start, room, used = index, next_room, 0.0
        used += height
    pages.append((start, len(heights)))
    return pages


def _a4_table_head(canvas: Canvas, y: float, left: float, serial_width: float,
                   content: float) -> float:
    baseline = y - 4.5 * mm
    _caption(canvas, left, baseline, _("No."), 9)
    _caption(canvas, left + A4_NO_WIDTH, baseline, _("Serial"), 9)
    _caption(canvas, left + A4_NO_WIDTH + serial_width, baseline, _("Model and fault"), 9)
    canvas.setLineWidth(0.6)
    canvas.line(left, y - A4_TABLE_HEAD, left + content, y - A4_TABLE_HEAD)
    return y - A4_TABLE_HEAD


def _a4_row(canvas: Canvas, row: _Row, top: float, left: float, serial_width: float,
            content: float) -> None:
    inner_top = top - A4_ROW_PAD
    canvas.setFont(CODE_FONT, 10)
    canvas.drawString(left, inner_top - 4 * mm, str(row.line_no))
    serial_x = left + A4_NO_WIDTH
    bars_bottom = inner_top - A4_ITEM_BAR_HEIGHT
    draw_code128(canvas, serial_x, bars_bottom, row.item.serial, row.module,
                 A4_ITEM_BAR_HEIGHT)
    canvas.setFont(_code_font(row.item.serial), A4_SERIAL_TEXT)
    canvas.drawString(serial_x + QUIET_ZONE_MODULES * row.module, bars_bottom - 4 * mm,
                      row.item.serial)
    model_x = serial_x + serial_width
    font = _code_font(row.item.model_code, bold=True)
    canvas.setFont(font, _fitted_size(row.item.model_code, font, 10, content - model_x + left, 6))
    canvas.drawString(model_x, inner_top - 4 * mm, row.item.model_code)
    _lines(canvas, model_x, inner_top - 4 * mm - A4_FAULT_LEADING - 0.5 * mm, row.fault_lines,
           TEXT_FONT, A4_FAULT_SIZE, A4_FAULT_LEADING)
    canvas.setLineWidth(0.3)
    canvas.setStrokeGray(0.6)
    canvas.line(left, top - row.height, left + content, top - row.height)
    canvas.setStrokeGray(0)


# --- thermal label ------------------------------------------------------------------

THERMAL_MARGIN = 4 * mm
THERMAL_RMA_BAR_HEIGHT = 18 * mm
THERMAL_ITEM_BAR_HEIGHT = 8 * mm
THERMAL_ITEM_HEIGHT = THERMAL_ITEM_BAR_HEIGHT + 6 * mm  # text under the bars, then a gap
THERMAL_TEXT_ITEM_HEIGHT = 8.5 * mm  # the serial, then a note
THERMAL_MORE_HEIGHT = 5 * mm


def _draw_thermal(canvas: Canvas, data: LabelData) -> None:
    page_width, page_height = THERMAL
    left, right = THERMAL_MARGIN, page_width - THERMAL_MARGIN
    content = right - left
    top = page_height - THERMAL_MARGIN
    bottom = THERMAL_MARGIN

    module = fit_module_width(data.rma_number, content)
    bars_bottom = top - THERMAL_RMA_BAR_HEIGHT
    draw_code128(canvas, left + (content - _bars(data.rma_number, module)) / 2, bars_bottom,
                 data.rma_number, module, THERMAL_RMA_BAR_HEIGHT)
    font = _code_font(data.rma_number, bold=True)
    size = _fitted_size(data.rma_number, font, 20, content, 9)
    canvas.setFont(font, size)
    canvas.drawCentredString(page_width / 2, bars_bottom - 7 * mm, data.rma_number)
    y = bars_bottom - 9.5 * mm
    canvas.setLineWidth(0.8)
    canvas.line(left, y, right, y)

    _caption(canvas, left, y - 3.5 * mm, _("Return to"), 7.5)
    address = (wrap(data.vendor_name, TEXT_FONT, 10, content, max_lines=2)
               + wrap(data.return_address, TEXT_FONT, 10, content, max_lines=6))
    y = _lines(canvas, left, y - 3.5 * mm - 4.2 * mm, address, TEXT_FONT, 10, 4.2 * mm)
    y += 4.2 * mm - 2.5 * mm
    canvas.setLineWidth(0.5)
    canvas.line(left, y, right, y)

    _caption(canvas, left, y - 3.5 * mm, _("From"), 7.5)
    customer = wrap(data.customer_name, TEXT_FONT, 9.5, content, max_lines=2)
    facts = [_("Contract: %(number)s", number=data.contract_number)]
    if _contact(data):
        facts.append(_("Contact: %(contact)s", contact=_contact(data)))
    facts = [line for fact in facts for line in wrap(fact, TEXT_FONT, 8.5, content,
                                                     max_lines=1)]
    y = _lines(canvas, left, y - 3.5 * mm - 4 * mm, customer, TEXT_FONT, 9.5, 4 * mm)
    y = _lines(canvas, left, y, facts, TEXT_FONT, 8.5, 3.6 * mm)
    count = ngettext("%(num)d item", "%(num)d items", len(data.items))
    submitted = _("Submitted on: %(date)s", date=data.submitted_on.isoformat())
    canvas.setFont(TEXT_FONT, 8.5)
    canvas.drawString(left, y, count)
    canvas.drawRightString(right, y, submitted)
    y -= 2 * mm
    canvas.setLineWidth(0.5)
    canvas.line(left, y, right, y)
    y -= 1.5 * mm

    rows = []
    for item in data.items:
        try:
            rows.append((item, fit_module_width(item.serial, content)))
        except BarcodeTooWideError:
            rows.append((item, None))  # too long for this label: text only
    heights = [THERMAL_ITEM_HEIGHT if module else THERMAL_TEXT_ITEM_HEIGHT
               for _item, module in rows]
    shown = _thermal_rows_that_fit(heights, y - bottom)
    for item, item_module in rows[:shown]:
        if item_module is None:
            font = _code_font(item.serial, bold=True)
            canvas.setFont(font, _fitted_size(item.serial, font, 9, content, 5))
            canvas.drawCentredString(page_width / 2, y - 3.5 * mm, item.serial)
            note = _("barcode on the A4 sheet")
            _caption(canvas, (page_width - _width(note, TEXT_FONT, 7)) / 2, y - 6.5 * mm,
                     note, 7)
            y -= THERMAL_TEXT_ITEM_HEIGHT
            continue
        width = _bars(item.serial, item_module)
        bars_bottom = y - THERMAL_ITEM_BAR_HEIGHT
        draw_code128(canvas, left + (content - width) / 2, bars_bottom, item.serial,
                     item_module, THERMAL_ITEM_BAR_HEIGHT)
        canvas.setFont(_code_font(item.serial), 8)
        canvas.drawCentredString(page_width / 2, bars_bottom - 3.2 * mm, item.serial)
        y -= THERMAL_ITEM_HEIGHT
    hidden = len(rows) - shown
    if hidden:
        canvas.setFont(TEXT_FONT, 9)
        canvas.drawString(left, y - 4 * mm, ngettext(
            "%(num)d more item, see the A4 sheet", "%(num)d more items, see the A4 sheet",
            hidden))
    canvas.showPage()


def _bars(text: str, module: float) -> float:
    """The width of the barcode of ``text``, quiet zones included."""
    return len(code128_modules(text)) * module


def _thermal_rows_that_fit(heights: list[float], room: float) -> int:
    """How many item rows to draw: all when they fit, else as many as fit above the
    "n more items" line."""
    if sum(heights) <= room:
        return len(heights)
    room -= THERMAL_MORE_HEIGHT
    shown, used = 0, 0.0
    for height in heights:
        if used + height > room:
            break
        used += height
        shown += 1
    return shown


_LAYOUTS = {"a4": (A4, _draw_a4), "thermal": (THERMAL, _draw_thermal)}


# Shared with the other A4 documents (rma.documents.packing_slip): one font set-up and
# one way to wrap, caption and size text on every document.
register_fonts = _register_fonts
code_font = _code_font
fitted_size = _fitted_size
caption = _caption
draw_lines = _lines
barcode_width = _bars
