"""The packing slip that goes in the parcel with a replacement (or with the customer's own
unit sent back), as an A4 PDF rendered in memory from plain data (STYLE habit 10).

It carries three Code128 barcodes drawn as vector bars (``rma.documents.barcodes``): the
RMA number, the serial of the unit in the parcel and the serial of the faulty unit it
replaces, so the customer's goods-in and the service centre's scan station read the same
codes. Fonts, wrapping and captions are those of the parcel label
(``rma.documents.label``): Chinese names and addresses print in the built-in CID font
STSong-Light, codes in Helvetica. Strings go through Flask-Babel: call
``render_packing_slip`` inside ``flask_babel.force_locale(...)`` for the language wanted.
Equal data gives equal bytes (the PDF dates are the ship date).

Everything fits one page: long texts are wrapped and cut with an ellipsis at a fixed
number of lines, so the barcodes never move off the page or under other text.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date

from flask_babel import gettext as _
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas

from rma.documents.barcodes import QUIET_ZONE_MODULES, draw_code128, fit_module_width
from rma.documents.label import (
    TEXT_FONT,
    caption,
    code_font,
    draw_lines,
    fitted_size,
    register_fonts,
    wrap,
)

KINDS = ("replacement", "return")
MARGIN = 15 * mm
GUTTER = 6 * mm
RMA_BAR_HEIGHT = 15 * mm
UNIT_BAR_HEIGHT = 12 * mm
SIGNATURE_HEIGHT = 24 * mm
NAME_LINES = 2
ADDRESS_LINES = 6
STATUS_LINES = 3
NOTES_LINES = 6
BODY = 10.5  # pt: addresses
SMALL = 9.5  # pt: unit status, notes
LEADING = 4.6 * mm
SMALL_LEADING = 4.2 * mm


@dataclass(frozen=True)
class PackingSlipData:
    """What a packing slip shows. ``kind`` is ``"replacement"`` (a spare unit replaces
    the faulty one) or ``"return"`` (no replacement: the customer's own unit goes back;
    ``replacement_serial`` is then empty or equal to ``returned_serial`` and
    ``replacement_model`` is the model of that unit). ``ship_to`` and ``return_address``
    may hold several lines. ``unit_due_back_on`` is set for an advance replacement whose
    faulty unit is still awaited (D-1, D-2): the slip asks for it back by that date."""

    rma_number: str
    customer_name: str
    contract_number: str
    ship_to: str
    contact_name: str
    contact_phone: str
    vendor_name: str
    return_address: str
    shipped_on: date
    carrier: str
    tracking_number: str
    replacement_serial: str
    replacement_model: str
    returned_serial: str
    kind: str
    notes: str = ""
    unit_due_back_on: date | None = None


def render_packing_slip(data: PackingSlipData) -> bytes:
    """The packing slip of one shipment as a one-page A4 PDF (issue 4, replacement).

    From the top: vendor and ship date; the title; the RMA number as a barcode and in
    large text; ship-to (customer, address, contact, contract) beside the sender's
    address; carrier and tracking number; the unit in the parcel (model, serial barcode)
    and, for a replacement, the faulty unit it replaces (serial barcode, and when it is
    still awaited the date it must be back by, D-2); notes; a box for the recipient's
    name, signature and the delivery time (which stops the 72-hour clock, R-R3).

    Barcodes use modules of 0.4 mm, narrower only to fit, never under 0.33 mm.

    Raises ``ValueError`` for an unknown ``kind``, a missing serial, a return whose
    ``replacement_serial`` differs from ``returned_serial``, or an RMA number or serial
    that Code128 cannot encode; ``BarcodeTooWideError`` (a ``ValueError``) when a code is
    too long for the page at 0.33 mm (serials of D-8, 32 characters at most, fit)."""
    _check(data)
    register_fonts()
    buffer = io.BytesIO()
    canvas = Canvas(buffer, pagesize=A4, invariant=True, pageCompression=1)
    stamp = data.shipped_on.strftime("D:%Y%m%d000000+00'00'")
    canvas.setDateFormatter(lambda *_ts: stamp)
    canvas.setTitle(_("Packing slip %(number)s", number=data.rma_number))
    canvas.setAuthor(data.vendor_name)
    canvas.setSubject(_("Packing slip"))
    canvas.setCreator("rma-service")
    _draw(canvas, data)
    canvas.showPage()
    canvas.save()
    return buffer.getvalue()


def _check(data: PackingSlipData) -> None:
    if data.kind not in KINDS:
        raise ValueError(f"Unknown packing slip kind {data.kind!r}: use one of "
                         f"{', '.join(KINDS)}.")
    if not data.returned_serial:
        raise ValueError("A packing slip needs the returned (faulty) unit's serial.")
    if data.kind == "replacement" and not data.replacement_serial:
        raise ValueError("A replacement packing slip needs the replacement unit's serial.")
    if data.kind == "return" and data.replacement_serial not in ("", data.returned_serial):
        raise ValueError(
            f"A return ships the customer's own unit {data.returned_serial!r}, not "
            f"{data.replacement_serial!r}.")


def _draw(canvas: Canvas, data: PackingSlipData) -> None:
    page_width, page_height = A4
    left, right = MARGIN, page_width - MARGIN
    content = right - left
    y = page_height - MARGIN

    # Vendor and ship date, then the title.
    canvas.setFont(TEXT_FONT, 9)
    vendor = wrap(data.vendor_name, TEXT_FONT, 9, content * 0.6, max_lines=1)
    canvas.drawString(left, y - 3.5 * mm, vendor[0] if vendor else "")
    canvas.drawRightString(right, y - 3.5 * mm,
                           _("Shipped on: %(date)s", date=data.shipped_on.isoformat()))
    title = (_("Packing slip: replacement unit") if data.kind == "replacement"
             else _("Packing slip: your unit returned"))
    canvas.setFont(TEXT_FONT, fitted_size(title, TEXT_FONT, 16, content, 10))
    canvas.drawString(left, y - 11 * mm, title)
    y -= 14 * mm

    # The RMA number: barcode and large text.
    module = fit_module_width(data.rma_number, content)
    bars_bottom = y - RMA_BAR_HEIGHT
    draw_code128(canvas, left, bars_bottom, data.rma_number, module, RMA_BAR_HEIGHT)
    font = code_font(data.rma_number, bold=True)
    canvas.setFont(font, fitted_size(data.rma_number, font, 20, content, 10))
    canvas.drawString(left + QUIET_ZONE_MODULES * module, bars_bottom - 7.5 * mm,
                      data.rma_number)
    y = bars_bottom - 10 * mm
    _rule(canvas, left, right, y, 0.8)

    y = _addresses(canvas, data, left, content, y - 2 * mm)
    _rule(canvas, left, right, y, 0.5)
    y = _shipment(canvas, data, left, content, y - 2 * mm)
    _rule(canvas, left, right, y, 0.5)

    if data.kind == "replacement":
        y = _unit(canvas, left, content, y - 2 * mm,
                  _("Replacement unit, in this parcel"), data.replacement_model,
                  data.replacement_serial, [])
        y = _unit(canvas, left, content, y - 2 * mm, _("Faulty unit it replaces"), "",
                  data.returned_serial, _faulty_status(data))
    else:
        y = _unit(canvas, left, content, y - 2 * mm, _("Your unit, in this parcel"),
                  data.replacement_model, data.returned_serial,
                  [_("Your own unit is returned to you.")])

    if data.notes.strip():
        caption(canvas, left, y - 5 * mm, _("Notes"), 9)
        notes = wrap(data.notes, TEXT_FONT, SMALL, content, max_lines=NOTES_LINES)
        draw_lines(canvas, left, y - 9.5 * mm, notes, TEXT_FONT, SMALL, SMALL_LEADING)

    _signature_box(canvas, left, content)


def _rule(canvas: Canvas, left: float, right: float, y: float, width: float) -> None:
    canvas.setLineWidth(width)
    canvas.line(left, y, right, y)


def _addresses(canvas: Canvas, data: PackingSlipData, left: float, content: float,
               top: float) -> float:
    """Ship-to on the left, the sender on the right; returns the y under the taller."""
    column = (content - GUTTER) / 2
    name = wrap(data.customer_name, TEXT_FONT, 12, column, max_lines=NAME_LINES)
    address = wrap(data.ship_to, TEXT_FONT, BODY, column, max_lines=ADDRESS_LINES)
    facts = []
    contact = "  ".join(part for part in (data.contact_name, data.contact_phone) if part)
    if contact:
        facts += wrap(_("Contact: %(contact)s", contact=contact), TEXT_FONT, BODY, column,
                      max_lines=2)
    facts += wrap(_("Contract: %(number)s", number=data.contract_number), TEXT_FONT, BODY,
                  column, max_lines=1)
    caption(canvas, left, top - 3.5 * mm, _("Ship to"), 9)
    below = draw_lines(canvas, left, top - 8.5 * mm, name, TEXT_FONT, 12, 5.2 * mm)
    below = draw_lines(canvas, left, below, address + facts, TEXT_FONT, BODY, LEADING)

    sender = (wrap(data.vendor_name, TEXT_FONT, BODY, column, max_lines=NAME_LINES)
              + wrap(data.return_address, TEXT_FONT, BODY, column, max_lines=ADDRESS_LINES))
    x = left + column + GUTTER
    caption(canvas, x, top - 3.5 * mm, _("From"), 9)
    beside = draw_lines(canvas, x, top - 8.5 * mm, sender, TEXT_FONT, BODY, LEADING)
    # draw_lines returns the baseline after the last line: one leading below the text.
    return min(below, beside) + LEADING - 3 * mm


def _shipment(canvas: Canvas, data: PackingSlipData, left: float, content: float,
              top: float) -> float:
    column = (content - GUTTER) / 2
    for x, label, value in ((left, _("Carrier"), data.carrier),
                            (left + column + GUTTER, _("Tracking number"),
                             data.tracking_number)):
        caption(canvas, x, top - 3.5 * mm, label, 9)
        font = code_font(value, bold=True)
        line = wrap(value, font, 12, column, max_lines=1)
        canvas.setFont(font, 12)
        canvas.drawString(x, top - 9 * mm, line[0] if line else "-")
    return top - 12 * mm


def _faulty_status(data: PackingSlipData) -> list[str]:
    if data.unit_due_back_on is None:
        return [_("This replacement takes the place of the faulty unit.")]
    return [_("Not yet returned. Please send the faulty unit back by %(date)s with a copy "
              "of this slip, the RMA number on the parcel. After that date the replacement "
              "may become chargeable.", date=data.unit_due_back_on.isoformat())]


def _unit(canvas: Canvas, left: float, content: float, top: float, heading: str,
          model: str, serial: str, status: list[str]) -> float:
    """One unit: heading, model, serial barcode and text, status lines; returns the y
    under it."""
    caption(canvas, left, top - 3.5 * mm, heading, 9)
    y = top - 5 * mm
    if model:
        font = code_font(model, bold=True)
        canvas.setFont(font, fitted_size(model, font, 11, content, 7))
        canvas.drawString(left, y - 4 * mm, model)
        y -= 6 * mm
    module = fit_module_width(serial, content)
    bars_bottom = y - 1 * mm - UNIT_BAR_HEIGHT
    draw_code128(canvas, left, bars_bottom, serial, module, UNIT_BAR_HEIGHT)
    font = code_font(serial, bold=True)
    canvas.setFont(font, fitted_size(serial, font, 11, content, 7))
    canvas.drawString(left + QUIET_ZONE_MODULES * module, bars_bottom - 4.5 * mm, serial)
    y = bars_bottom - 5.5 * mm
    lines = [line for text in status
             for line in wrap(text, TEXT_FONT, SMALL, content, max_lines=STATUS_LINES)]
    if lines:
        y = draw_lines(canvas, left, y - 4 * mm, lines, TEXT_FONT, SMALL, SMALL_LEADING)
        y += SMALL_LEADING - 3 * mm
    return y


def _signature_box(canvas: Canvas, left: float, content: float) -> None:
    """At the foot of the page: who received the parcel, and when."""
    bottom = MARGIN
    canvas.setLineWidth(0.8)
    canvas.rect(left, bottom, content, SIGNATURE_HEIGHT, stroke=1, fill=0)
    caption(canvas, left + 3 * mm, bottom + SIGNATURE_HEIGHT - 5 * mm,
            _("Received in good condition"), 9)
    half = content / 2
    canvas.setLineWidth(0.4)
    for x, label in ((left + 3 * mm, _("Name and signature")),
                     (left + half + 3 * mm, _("Date and time"))):
        canvas.line(x, bottom + 8 * mm, x + half - 9 * mm, bottom + 8 * mm)
        caption(canvas, x, bottom + 3.5 * mm, label, 8)
