"""A customer's periodic service report (R-R4; issue 7) as an A4 PDF, rendered in memory
from plain data (STYLE habit 10).

``ServiceReportDocument`` is the contract between ``rma.services.service_reports`` (which
fills it from the figures, every caption and value already text in the document's
language) and the renderer, which prints what it is given and never reads the clock.
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
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfgen.canvas import Canvas

from rma.documents.label import (
    CAPTION_GREY,
    PAGE_HEADER_HEIGHT,
    PAGE_MARGIN,
    TEXT_FONT,
    caption,
    draw_lines,
    page_header,
    register_fonts,
    wrap,
)

# Printed in the document's language whether or not the catalogue has it: the customer's
# copy carries the Chinese title.
TITLES = {"zh_CN": "服务报告", "en": "Service report"}


@dataclass(frozen=True)
class ReportTableData:
    """One section: its title, column headers and rows (text), and what to print when it
    has no row. (``rma.services.service_reports.ReportTable`` has this shape.)"""

    key: str
    title: str
    headers: Sequence[str]
    rows: Sequence[Sequence[str]]
    empty: str = ""


@dataclass(frozen=True)
class ServiceReportDocument:
    """What a service report shows. ``period`` is "2026-11" or "2026-Q4" and
    ``period_start``/``period_end`` its first and last China dates (ISO text);
    ``summary`` the key figures as (label, value); ``tables`` the sections (objects with
    ``title``, ``headers``, ``rows``, ``empty``). ``generated_on`` dates the PDF (equal
    data gives equal bytes)."""

    language: str
    customer_name: str
    contract_number: str
    period: str
    period_start: str
    period_end: str
    generated_on: date
    summary: Sequence[tuple[str, str]]
    tables: Sequence[ReportTableData]
    vendor_name: str = ""


MARGIN = PAGE_MARGIN
BODY = 10  # pt
CELL = 8.5  # pt
LEADING = 4.8 * mm
CELL_LEADING = 3.8 * mm
ROW_PAD = 1.4 * mm
CELL_PAD = 1.5 * mm
LABEL_WIDTH = 62 * mm
CELL_LINES = 4


def report_title(language: str) -> str:
    return TITLES["en"] if language == "en" else TITLES["zh_CN"]


def render_service_report(doc: ServiceReportDocument) -> bytes:
    """The report as an A4 PDF: on every page the vendor, "page n of m", the title
    (服务报告 / "Service report") and the period; first the customer, contract, period
    and key figures, then each section as a table whose head repeats on a new page.
    Captions are in ``doc.language``."""
    register_fonts()
    with force_locale(doc.language):
        buffer = io.BytesIO()
        canvas = Canvas(buffer, pagesize=A4, invariant=True, pageCompression=1)
        stamp = doc.generated_on.strftime("D:%Y%m%d000000+00'00'")
        canvas.setDateFormatter(lambda *_ts: stamp)
        title = report_title(doc.language)
        canvas.setTitle(f"{title} {doc.customer_name} {doc.period}")
        canvas.setAuthor(doc.vendor_name or "rma-service")
        canvas.setSubject(title)
        canvas.setCreator("rma-service")
        _draw(canvas, doc, title)
        canvas.save()
        return buffer.getvalue()


@dataclass(frozen=True)
class _Block:
    height: float
    draw: Callable[[Canvas, float], None]
    head: _Block | None = None  # a table row: the table head drawn above it on a new page


def _draw(canvas: Canvas, doc: ServiceReportDocument, title: str) -> None:
    blocks = _facts(doc)
    for table in doc.tables:
        blocks += _table(table)
    room = A4[1] - 2 * MARGIN - PAGE_HEADER_HEIGHT
    pages: list[list[_Block]] = [[]]
    used = 0.0
    for block in blocks:
        need = block.height
        if pages[-1] and used + need > room:
            pages.append([])
            used = 0.0
        if not pages[-1] and block.head is not None:
            pages[-1].append(block.head)
            used += block.head.height
        pages[-1].append(block)
        used += need
    for number, page in enumerate(pages, start=1):
        y = page_header(canvas, doc.vendor_name, title, doc.period, number, len(pages))
        for block in page:
            block.draw(canvas, y)
            y -= block.height
        canvas.showPage()


def _facts(doc: ServiceReportDocument) -> list[_Block]:
    content = A4[0] - 2 * MARGIN
    facts = [(_("Customer"), doc.customer_name), (_("Contract"), doc.contract_number),
             (_("Period"), f"{doc.period} ({doc.period_start} – {doc.period_end})"),
             (_("Generated"), doc.generated_on.isoformat())]
    blocks = [_fact(label, value, content) for label, value in facts]
    blocks.append(_Block(3 * mm, lambda _c, _y: None))
    blocks.append(_Block(8 * mm, _heading(_("Key figures"))))
    blocks += [_fact(label, value, content) for label, value in doc.summary]
    blocks.append(_Block(3 * mm, lambda _c, _y: None))
    return blocks


def _fact(label: str, value: str, content: float) -> _Block:
    labels = wrap(label, TEXT_FONT, 9, LABEL_WIDTH - 2 * mm, max_lines=2) or [""]
    lines = wrap(value, TEXT_FONT, BODY, content - LABEL_WIDTH, max_lines=3) or [""]

    def draw(canvas: Canvas, top: float) -> None:
        baseline = top - 3.5 * mm
        for index, text in enumerate(labels):
            caption(canvas, MARGIN, baseline - index * LEADING, text, 9)
        draw_lines(canvas, MARGIN + LABEL_WIDTH, baseline, lines, TEXT_FONT, BODY, LEADING)

    return _Block(max(len(lines), len(labels)) * LEADING, draw)


def _heading(title: str) -> Callable[[Canvas, float], None]:
    def draw(canvas: Canvas, top: float) -> None:
        canvas.setLineWidth(0.4)
        canvas.line(MARGIN, top - 1 * mm, A4[0] - MARGIN, top - 1 * mm)
        canvas.setFont(TEXT_FONT, 12)
        canvas.drawString(MARGIN, top - 6 * mm, title)

    return draw


def _widths(table) -> list[float]:
    """Column widths in proportion to their widest text (each at least 12 mm), filling
    the page's width."""
    content = A4[0] - 2 * MARGIN
    count = len(table.headers)
    natural = []
    for index, header in enumerate(table.headers):
        cells = [str(row[index]) for row in table.rows if index < len(row)]
        widest = max([pdfmetrics.stringWidth(header, TEXT_FONT, CELL)]
                     + [pdfmetrics.stringWidth(c, TEXT_FONT, CELL) for c in cells])
        natural.append(min(max(widest + 2 * CELL_PAD, 12 * mm), content * 0.6))
    total = sum(natural) or 1.0
    return [w * content / total for w in natural] if count else []


def _table(table) -> list[_Block]:
    blocks = [_Block(9 * mm, _heading(table.title))]
    if not table.rows:
        text = table.empty or "-"
        blocks.append(_Block(LEADING + 2 * mm, _text_line(text)))
        return blocks
    widths = _widths(table)
    head = _row(table.headers, widths, header=True)
    blocks.append(head)
    blocks += [_row(row, widths, head=head) for row in table.rows]
    blocks.append(_Block(3 * mm, lambda _c, _y: None))
    return blocks


def _row(cells: Sequence[str], widths: list[float], *, header: bool = False,
         head: _Block | None = None) -> _Block:
    wrapped = [wrap(str(text), TEXT_FONT, CELL, width - 2 * CELL_PAD, max_lines=CELL_LINES)
               or [""] for text, width in zip(cells, widths, strict=False)]
    height = max(len(lines) for lines in wrapped) * CELL_LEADING + 2 * ROW_PAD

    def draw(canvas: Canvas, top: float) -> None:
        x = MARGIN
        baseline = top - ROW_PAD - 2.8 * mm
        if header:
            canvas.setFillGray(CAPTION_GREY)
        for lines, width in zip(wrapped, widths, strict=False):
            draw_lines(canvas, x + CELL_PAD, baseline, lines, TEXT_FONT, CELL, CELL_LEADING)
            x += width
        canvas.setFillGray(0)
        canvas.setLineWidth(0.6 if header else 0.3)
        canvas.setStrokeGray(0 if header else 0.6)
        canvas.line(MARGIN, top - height, A4[0] - MARGIN, top - height)
        canvas.setStrokeGray(0)

    return _Block(height, draw, head=head)


def _text_line(text: str) -> Callable[[Canvas, float], None]:
    def draw(canvas: Canvas, top: float) -> None:
        canvas.setFont(TEXT_FONT, BODY)
        canvas.drawString(MARGIN, top - 4 * mm, text)

    return draw
