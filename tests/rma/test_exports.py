"""Finance tables as CSV and XLSX (issue 5, point 6): Excel must open Chinese text
(UTF-8 with BOM), numbers stay numbers and dates dates, and no cell can smuggle in a
formula (OWASP CSV injection), in either format."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime
from decimal import Decimal

import pytest
from openpyxl import load_workbook

from rma.exports import csv_bytes, export_response, neutralise, xlsx_bytes
from rma.services.finance_reports import Table
from tests.conftest import make_app

HOSTILE = ["=cmd|' /C calc'!A0", "+1", "-1", "@x", "\tTAB", "\rCR", "=1+1"]


def table(rows=None) -> Table:
    rows = rows if rows is not None else [
        ("INV-2026-000001", "华东示范银行", date(2026, 11, 3), 31, Decimal("1394.99")),
        ("INV-2026-000002", "Beta Bank", date(2026, 8, 1), 116, Decimal("-80.00")),
    ]
    return Table("receivables", "Unpaid invoices 应收账款",
                 ("Invoice", "客户", "Issued on", "Days", "Outstanding (CNY)"), tuple(rows))


def read_csv(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def test_csv_has_bom_crlf_and_chinese_round_trips():
    data = csv_bytes(table())
    assert data.startswith(b"\xef\xbb\xbf")
    assert b"\r\n" in data and data.count(b"\n") == data.count(b"\r\n") == 3
    rows = read_csv(data)
    assert rows[0] == ["Invoice", "客户", "Issued on", "Days", "Outstanding (CNY)"]
    assert rows[1] == ["INV-2026-000001", "华东示范银行", "2026-11-03", "31", "1394.99"]
    assert rows[2] == ["INV-2026-000002", "Beta Bank", "2026-08-01", "116", "-80.00"]


def test_neutralise_prefixes_only_formula_starts():
    for text in HOSTILE:
        assert neutralise(text) == "'" + text
    for text in ["INV-2026-000001", "华东", "", "a=b", " =x", "1-1"]:
        assert neutralise(text) == text


def test_csv_neutralises_formula_injection_in_text_cells_only():
    rows = [(text, text, date(2026, 1, 1), -5, Decimal("-1.00")) for text in HOSTILE]
    parsed = read_csv(csv_bytes(table(rows)))[1:]
    for text, row in zip(HOSTILE, parsed, strict=True):
        assert row[0] == "'" + text and row[1] == "'" + text
        assert row[3] == "-5" and row[4] == "-1.00"  # numbers are not text: untouched


def test_xlsx_neutralises_formula_injection_and_stores_text_as_text():
    rows = [(text, "客户 " + text, date(2026, 1, 1), 1, Decimal("1.00")) for text in HOSTILE]
    sheet = load_workbook(io.BytesIO(xlsx_bytes(table(rows)))).active
    for index, text in enumerate(HOSTILE, start=2):
        cell = sheet.cell(row=index, column=1)
        # XML parsers read a bare CR back as LF; what matters is the leading apostrophe.
        assert cell.value == ("'" + text).replace("\r", "\n")
        assert cell.data_type == "s"
        assert sheet.cell(row=index, column=2).value == ("客户 " + text).replace("\r", "\n")
    values = [cell.value for row in sheet.iter_rows() for cell in row]
    assert not any(isinstance(v, str) and v.startswith("=") for v in values)


def test_xlsx_numbers_stay_numbers_and_dates_dates():
    sheet = load_workbook(io.BytesIO(xlsx_bytes(table()))).active
    assert sheet.title == "Unpaid invoices 应收账款"
    assert [cell.value for cell in sheet[1]] == [
        "Invoice", "客户", "Issued on", "Days", "Outstanding (CNY)"]
    assert sheet.freeze_panes == "A2"
    name, customer, issued, days, amount = sheet[2]
    assert (name.value, customer.value) == ("INV-2026-000001", "华东示范银行")
    assert issued.is_date and issued.value == datetime(2026, 11, 3)
    assert issued.number_format == "yyyy-mm-dd"
    assert days.data_type == "n" and days.value == 31
    assert amount.data_type == "n" and amount.value == pytest.approx(1394.99)
    assert amount.number_format == "#,##0.00"
    assert sheet["E3"].value == pytest.approx(-80.0) and sheet["E3"].data_type == "n"


def test_xlsx_sheet_title_is_made_valid():
    data = xlsx_bytes(Table("x", "Payments: 2026/11 [all] * very long title indeed", ("A",),
                            ()))
    title = load_workbook(io.BytesIO(data)).active.title
    assert len(title) <= 31 and not set("[]:*?/\\") & set(title)


@pytest.fixture
def plain_app(tmp_path):
    return make_app(f"sqlite:///{tmp_path / 'unused.sqlite3'}", tmp_path)


@pytest.mark.parametrize(("fmt", "mimetype"), [
    ("csv", "text/csv; charset=utf-8"),
    ("xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
])
def test_export_response_is_a_dated_download(plain_app, fmt, mimetype):
    with plain_app.test_request_context():
        response = export_response(table(), fmt)
        response.direct_passthrough = False
        body = response.get_data()
    assert response.status_code == 200
    assert response.mimetype == mimetype.split(";")[0]
    # FIXED_NOW is 2026-11-25 12:00 in Shanghai.
    assert response.headers["Content-Disposition"] == (
        f"attachment; filename=receivables-2026-11-25.{fmt}")
    if fmt == "csv":
        assert body == csv_bytes(table())
    else:
        assert load_workbook(io.BytesIO(body)).active["B2"].value == "华东示范银行"


def test_export_response_refuses_another_format(plain_app):
    from werkzeug.exceptions import NotFound

    with plain_app.test_request_context(), pytest.raises(NotFound):
        export_response(table(), "pdf")
