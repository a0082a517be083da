"""The final emergency response report of an on-site visit (R-I6) as an A4 PDF, rendered
in memory from plain data (STYLE habit 10; issue 6).

``OnsiteReportDocument`` is the contract between the incident services (which fill it
from the database, times already converted to China time and formatted) and the
renderer: the renderer prints what it is given and never reads the clock.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date

from flask_babel import force_locale
from flask_babel import gettext as _
from reportlab.lib.pagesizes import A4
from reportlab.lib.units import mm
from reportlab.pdfgen.canvas import Canvas

from rma.documents.label import (
    PAGE_HEADER_HEIGHT,
    PAGE_MARGIN,
    TEXT_FONT,
    caption,
    draw_lines,
    page_header,
    register_fonts,
    wrap,
)

VISIT_KINDS = ("emergency", "change")

# The title is printed in the document's language whether or not the catalogue has it
# (the customer's copy must carry the Chinese title, SPEC R-I6 "emergency response report").
TITLES = {
    "emergency": {"zh_CN": "紧急响应报告", "en": "Emergency response report"},
    "change": {"zh_CN": "现场服务报告", "en": "On-site service report"},
}


@dataclass(frozen=True)
class OnsiteReportDocument:
    """What the final report of an on-site visit shows.

    ``language`` is ``zh_CN`` or ``en`` (captions and title). ``visit_kind`` is
    ``emergency`` (R-I6) or ``change`` (R-C4). ``requested``, ``arrived`` and ``ended``
    are local China-time strings ("2026-03-02 14:05"), empty when not applicable;
    ``engineer`` the engineer's display name. ``briefs`` are the daily briefs as
    ``(day, text)`` pairs, day a ``date`` or an ISO string, in order. ``final_report`` is
    the engineer's final report text. ``generated_on`` dates the PDF (equal data gives
    equal bytes)."""

    number: str
    customer_name: str
    contract_number: str
    language: str
    visit_kind: str
    requested: str
    arrived: str
    ended: str
    engineer: str
    site_address: str
    briefs: Sequence[tuple[date | str, str]]
    final_report: str
    generated_on: date
    incident_title: str = ""
    vendor_name: str = ""
    chargeable: bool = False


# --- rendering ----------------------------------------------------------------------

MARGIN = PAGE_MARGIN
HEADER_HEIGHT = PAGE_HEADER_HEIGHT
BODY = 10  # pt
LEADING = 4.8 * mm
LABEL_WIDTH = 38 * mm
FACT_LINES = 4  # a fact's value (the site address) wraps to at most this many lines


def render_onsite_report(doc: OnsiteReportDocument) -> bytes:
    """The final report of an on-site visit (R-I6) as an A4 PDF.

    Every page: the vendor (when given), "page n of m", the title (紧急响应报告 /
    "Emergency response report" for an emergency visit) and the incident number. The
    first page: the customer, contract, incident, visit kind, requested / arrived / ended
    times, engineer and site address. Then each daily brief under its day, and the final
    report; long text continues on further pages. Captions are in ``doc.language``.
    Raises ``ValueError`` for an unknown ``visit_kind``."""
    if doc.visit_kind not in VISIT_KINDS:
        raise ValueError(f"Unknown visit kind {doc.visit_kind!r}: use one of "
                         f"{', '.join(VISIT_KINDS)}.")
    register_fonts()
    with force_locale(doc.language):
        buffer = io.BytesIO()
        canvas = Canvas(buffer, pagesize=A4, invariant=True, pageCompression=1)
        stamp = doc.generated_on.strftime("D:%Y%m%d000000+00'00'")
        canvas.setDateFormatter(lambda *_ts: stamp)
        title = report_title(doc)
        canvas.setTitle(f"{title} {doc.number}")
        canvas.setAuthor(doc.vendor_name or "rma-service")
        canvas.setSubject(title)
        canvas.setCreator("rma-service")
        _draw(canvas, doc)
        canvas.save()
        return buffer.getvalue()


def report_title(doc: OnsiteReportDocument) -> str:
    """The title in the document's language (Chinese unless ``language`` is ``en``)."""
    titles = TITLES.get(doc.visit_kind, TITLES["emergency"])
    return titles["en"] if doc.language == "en" else titles["zh_CN"]


# --- layout -------------------------------------------------------------------------

@dataclass(frozen=True)
class _Block:
    height: float
    draw: Callable[[Canvas, float], None]


def _draw(canvas: Canvas, doc: OnsiteReportDocument) -> None:
    blocks = _facts(doc) + _section(_("Daily briefs"), _brief_paragraphs(doc)) + _section(
        _("Final report"), [("", doc.final_report or "-")])
    room = A4[1] - 2 * MARGIN - HEADER_HEIGHT
    pages: list[list[_Block]] = [[]]
    used = 0.0
    for block in blocks:
        if pages[-1] and used + block.height > room:
            pages.append([])
            used = 0.0
        pages[-1].append(block)
        used += block.height
    for number, page in enumerate(pages, start=1):
        y = page_header(canvas, doc.vendor_name, report_title(doc), doc.number, number, len(pages))
        for block in page:
            block.draw(canvas, y)
            y -= block.height
        canvas.showPage()


def _kind_label(kind: str) -> str:
    if kind == "change":
        return _("On-site visit for a customer-side change")
    return _("Emergency on-site response")


def _facts(doc: OnsiteReportDocument) -> list[_Block]:
    content = A4[0] - 2 * MARGIN
    facts = [
        (_("Customer"), doc.customer_name),
        (_("Contract"), doc.contract_number),
        (_("Incident"), doc.number),
    ]
    if doc.incident_title:
        facts.append((_("Subject"), doc.incident_title))
    facts += [
        (_("Visit"), _kind_label(doc.visit_kind)),
        (_("Requested"), doc.requested or "-"),
        (_("Arrived"), doc.arrived or "-"),
        (_("Ended"), doc.ended or "-"),
        (_("Engineer"), doc.engineer or "-"),
        (_("Site address"), doc.site_address or "-"),
    ]
    if doc.chargeable:
        facts.append((_("Charge"), _("Chargeable visit (R-C4)")))
    blocks = []
    for label, value in facts:
        lines = wrap(value, TEXT_FONT, BODY, content - LABEL_WIDTH, max_lines=FACT_LINES) or [""]
        blocks.append(_Block(len(lines) * LEADING, _fact_drawer(label, lines)))
    blocks.append(_Block(4 * mm, lambda _canvas, _y: None))
    return blocks


def _fact_drawer(label: str, lines: list[str]) -> Callable[[Canvas, float], None]:
    def draw(canvas: Canvas, top: float) -> None:
        baseline = top - 3.5 * mm
        caption(canvas, MARGIN, baseline, label, 9)
        draw_lines(canvas, MARGIN + LABEL_WIDTH, baseline, lines, TEXT_FONT, BODY, LEADING)

    return draw


def _brief_paragraphs(doc: OnsiteReportDocument) -> list[tuple[str, str]]:
    if not doc.briefs:
        return [("", _("No daily brief was filed."))]
    return [(day.isoformat() if isinstance(day, date) else str(day), text)
            for day, text in doc.briefs]


def _section(title: str, paragraphs: list[tuple[str, str]]) -> list[_Block]:
    """A caption, then each paragraph (with its own sub-caption, e.g. a brief's day) as
    one block per line so long text continues on the next page."""
    content = A4[0] - 2 * MARGIN
    blocks = [_Block(8 * mm, _heading_drawer(title))]
    for sub, text in paragraphs:
        if sub:
            blocks.append(_Block(LEADING + 1 * mm, _caption_drawer(sub)))
        for line in wrap(text, TEXT_FONT, BODY, content) or [""]:
            blocks.append(_Block(LEADING, _line_drawer(line)))
        blocks.append(_Block(2 * mm, lambda _canvas, _y: None))
    return blocks


def _heading_drawer(title: str) -> Callable[[Canvas, float], None]:
    def draw(canvas: Canvas, top: float) -> None:
        canvas.setLineWidth(0.4)
        canvas.line(MARGIN, top - 1 * mm, A4[0] - MARGIN, top - 1 * mm)
        canvas.setFont(TEXT_FONT, 12)
        canvas.drawString(MARGIN, top - 6 * mm, title)

    return draw


def _caption_drawer(text: str) -> Callable[[Canvas, float], None]:
    def draw(canvas: Canvas, top: float) -> None:
        caption(canvas, MARGIN, top - 4 * mm, text, 9)

    return draw


def _line_drawer(text: str) -> Callable[[Canvas, float], None]:
    def draw(canvas: Canvas, top: float) -> None:
        canvas.setFont(TEXT_FONT, BODY)
        canvas.drawString(MARGIN, top - 3.5 * mm, text)

    return draw
