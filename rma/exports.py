"""Finance tables as CSV and XLSX downloads (issue 5, point 6).

The finance staff open these in Excel, so: CSV is UTF-8 with a byte-order mark (without
it Excel reads Chinese text as mojibake) and CRLF line ends; XLSX (openpyxl) keeps
numbers as numbers (amounts with two decimals) and dates as dates. Both neutralise
formula injection: a text cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a
carriage return would run as a formula when the file is opened, so it gets a leading
apostrophe (OWASP "CSV injection"). Only text is touched: numbers, including negative
amounts, stay numbers.

A table is any object with ``key``, ``title``, ``columns`` and ``rows`` (the
``rma.services.finance_reports.Table`` data class); cells are ``str``, ``int``,
``Decimal``, ``date`` or ``None``.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from flask import Response, send_file
from werkzeug.exceptions import NotFound

from rma import clock

if TYPE_CHECKING:
    from rma.services.finance_reports import Table

EXPORT_FORMATS = ("csv", "xlsx")
CSV_MIMETYPE = "text/csv; charset=utf-8"
XLSX_MIMETYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
AMOUNT_FORMAT = "#,##0.00"
DATE_FORMAT = "yyyy-mm-dd"
_SHEET_TITLE_FORBIDDEN = re.compile(r"[\[\]:*?/\\]")


def neutralise(text: str) -> str:
    """``text`` safe to put in a spreadsheet cell: with a leading apostrophe when it
    starts with a character that makes Excel or LibreOffice read it as a formula."""
    if text.startswith(FORMULA_STARTS):
        return "'" + text
    return text


def csv_bytes(table: Table) -> bytes:
    """The table as CSV: UTF-8 with BOM, CRLF, a header row of the column titles.
    Amounts are written as plain numbers (``1234.50``), dates as ``YYYY-MM-DD``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([neutralise(str(column)) for column in table.columns])
    for row in table.rows:
        writer.writerow([_csv_cell(value) for value in row])
    return buffer.getvalue().encode("utf-8-sig")


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, Decimal)):
        return str(value)
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return neutralise(str(value))


def xlsx_bytes(table: Table) -> bytes:
    """The table as an XLSX workbook of one sheet named after its title: a bold header
    row (frozen), then the rows. ``Decimal`` cells are numbers shown with two decimals,
    ``int`` numbers, ``date`` dates; text is neutralised and stored as text, never as a
    formula."""
    # openpyxl is imported here, not with the module: it was ~0.4 s of every app start
    # (each gunicorn worker, each ``rma`` command), and only an XLSX download needs it.
    from openpyxl import Workbook
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    workbook = Workbook()
    sheet = workbook.active
    sheet.title = _sheet_title(str(table.title))
    header = [neutralise(str(column)) for column in table.columns]
    sheet.append(header)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
        cell.data_type = "s"
    widths = [len(text) for text in header]
    for row_index, row in enumerate(table.rows, start=2):
        for column_index, value in enumerate(row, start=1):
            cell = sheet.cell(row=row_index, column=column_index)
            _set_xlsx_cell(cell, value)
            shown = len(_csv_cell(value))
            if column_index <= len(widths):
                widths[column_index - 1] = max(widths[column_index - 1], shown)
            else:
                widths.append(shown)
    for index, width in enumerate(widths, start=1):
        sheet.column_dimensions[get_column_letter(index)].width = min(max(width, 8) + 2, 60)
    sheet.freeze_panes = "A2"
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _set_xlsx_cell(cell, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, Decimal):
        cell.value = value
        cell.number_format = AMOUNT_FORMAT
    elif isinstance(value, bool):
        cell.value = str(value)
    elif isinstance(value, int):
        cell.value = value
    elif isinstance(value, datetime):
        # openpyxl cannot store an aware datetime: show it in the service's zone.
        local = clock.to_local(value) if value.tzinfo else value
        cell.value = local.replace(tzinfo=None)
        cell.number_format = "yyyy-mm-dd hh:mm"
    elif isinstance(value, date):
        cell.value = value
        cell.number_format = DATE_FORMAT
    else:
        cell.value = neutralise(str(value))
        cell.data_type = "s"  # never a formula, whatever the text


def _sheet_title(title: str) -> str:
    """A valid sheet name: no ``[]:*?/\\``, at most 31 characters, not empty."""
    cleaned = _SHEET_TITLE_FORBIDDEN.sub(" ", title).strip().strip("'")
    return cleaned[:31] or "Sheet1"


def export_response(table: Table, fmt: str) -> Response:
    """A download of ``table`` as ``fmt`` ("csv" or "xlsx"), named
    ``<key>-<YYYY-MM-DD>.<fmt>`` with today's China date. Raises ``NotFound`` (404) for
    another format."""
    if fmt == "csv":
        data, mimetype = csv_bytes(table), CSV_MIMETYPE
    elif fmt == "xlsx":
        data, mimetype = xlsx_bytes(table), XLSX_MIMETYPE
    else:
        raise NotFound(description=f"Unknown export format {fmt[:20]!r}: use csv or xlsx.")
    response = send_file(io.BytesIO(data), mimetype=mimetype, as_attachment=True,
                         download_name=f"{table.key}-{clock.today().isoformat()}.{fmt}",
                         max_age=0)
    response.headers["Cache-Control"] = "private, no-store"
    return response
