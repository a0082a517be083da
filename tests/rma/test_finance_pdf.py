"""Quotes, invoices and credit notes as PDF (issue 5, D-5), rendered from plain data and
read back by extracting their text (pypdf): Chinese text prints, captions follow the
document's language, every line and the totals are there, long tables continue on more
pages, and equal data gives equal bytes."""

from __future__ import annotations

import io
import re
from dataclasses import replace
from datetime import date
from decimal import Decimal

import pytest
from pypdf import PdfReader

from rma.documents.finance import (
    DocumentLine,
    FinanceDocument,
    format_amount,
    format_rate,
    render_finance_document,
)
from tests.conftest import make_app
from warranty.money import line_amounts, totals

CUSTOMER = "华东示范银行股份有限公司"
ADDRESS = "上海市浦东新区世纪大道100号\n环球金融中心 78 层"


@pytest.fixture
def app_ctx(tmp_path):
    """An app context (for Flask-Babel) without a database: documents need none."""
    app = make_app(f"sqlite:///{tmp_path / 'unused.sqlite3'}", tmp_path)
    with app.app_context():
        yield app


def line(no: int, price: str = "1234.50", quantity: int = 1, serial: str | None = None,
         description: str | None = None, rate: str = "0.13") -> DocumentLine:
    amounts = line_amounts(quantity, Decimal(price), Decimal(rate))
    return DocumentLine(
        line_no=no,
        description=description or f"更换 TK3 动态令牌 Replacement TK3 OTP token (line {no})",
        serial=serial if serial is not None else f"TK3-{no:05d}",
        quantity=quantity, unit_price=amounts.unit_price, vat_rate=amounts.vat_rate,
        net=amounts.net, vat=amounts.vat, gross=amounts.gross)


def document(kind: str = "invoice", language: str = "en", lines=None, **changes) -> FinanceDocument:
    lines = tuple(lines if lines is not None else [line(1), line(2, "80.00", 3)])
    sums = totals(line_amounts(x.quantity, x.unit_price, x.vat_rate) for x in lines)
    numbers = {"quote": "Q-2026-000001", "invoice": "INV-2026-000123",
               "credit_note": "CN-2026-000007"}
    fields = dict(
        kind=kind, number=numbers[kind], language=language, issued_on=date(2026, 11, 25),
        vendor_name="OTP Security Ltd. RMA Service Centre",
        vendor_address="RMA 服务中心\n北京市海淀区中关村南大街1号\n100081",
        customer_name=CUSTOMER, customer_address=ADDRESS, tax_id="91310000MA1FL0000X",
        contract_number="SC-2026-00017", lines=lines, net_total=sums.net,
        vat_total=sums.vat, gross_total=sums.gross, rma_number="RMA-2026-00042",
        valid_until=date(2026, 12, 25) if kind == "quote" else None,
        due_on=date(2026, 12, 25) if kind == "invoice" else None,
        references="INV-2026-000123" if kind == "credit_note" else None,
        reason="价格错误 wrong price" if kind == "credit_note" else "",
        notes=("Please pay by bank transfer, quoting the invoice number.",))
    fields.update(changes)
    return FinanceDocument(**fields)


def pages_text(pdf: bytes) -> list[str]:
    return [page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages]


def flat(text: str) -> str:
    return re.sub(r"\s+", "", text)


def test_D5_amount_and_rate_formats():
    assert format_amount(Decimal("1234567.5")) == "1,234,567.50"
    assert format_amount(Decimal("0.00")) == "0.00"
    assert format_amount(Decimal("-80.00")) == "-80.00"
    assert format_rate(Decimal("0.13")) == "13%"
    assert format_rate(Decimal("0.1300")) == "13%"
    assert format_rate(Decimal("0.065")) == "6.5%"
    assert format_rate(Decimal("0.1000")) == "10%"
    assert format_rate(Decimal("0.0000")) == "0%"


def test_D5_invoice_in_english_shows_billing_lines_and_totals(app_ctx):
    doc = document(lines=[line(1, "1234.50"), line(2, "80.00", 3, serial="")])
    [text] = pages_text(render_finance_document(doc))
    compact = flat(text)
    for expected in ["Invoice", "INV-2026-000123", "2026-11-25", "RMA-2026-00042",
                     "Due date", "2026-12-25", "91310000MA1FL0000X", "SC-2026-00017",
                     "Page 1 of 1", "Unit price", "VAT rate", "Gross", "Net total",
                     "VAT total", "Total", "CNY", "TK3-00001", "13%",
                     "1,234.50", "160.49", "1,394.99",  # line 1: VAT per line (D-5)
                     "240.00", "31.20", "271.20",  # line 2: 3 × 80.00
                     "1,474.50", "191.69", "1,666.19",  # totals: sums of the lines
                     "Please pay by bank transfer"]:
        assert expected in text, expected
    for expected in [CUSTOMER, "上海市浦东新区世纪大道100号", "北京市海淀区中关村南大街1号"]:
        assert flat(expected) in compact, expected
    assert "Valid until" not in text and "Quote" not in text


def test_D5_quote_and_credit_note_show_their_own_references(app_ctx):
    [quote] = pages_text(render_finance_document(document("quote")))
    assert "Quote" in quote and "Q-2026-000001" in quote
    assert "Valid until" in quote and "2026-12-25" in quote
    assert "Due date" not in quote

    negative = DocumentLine(1, "Credit for INV-2026-000123", None, 1, Decimal("-100.00"),
                            Decimal("0.13"), Decimal("-88.50"), Decimal("-11.50"),
                            Decimal("-100.00"))
    credit = document("credit_note", lines=[negative], net_total=Decimal("-88.50"),
                      vat_total=Decimal("-11.50"), gross_total=Decimal("-100.00"))
    [text] = pages_text(render_finance_document(credit))
    for expected in ["Credit note", "CN-2026-000007", "Credits invoice", "INV-2026-000123",
                     "Reason", "wrong price", "-88.50", "-11.50", "-100.00"]:
        assert expected in text, expected
    assert "价格错误" in text


def test_D5_captions_in_chinese_for_zh_CN(app_ctx):
    [text] = pages_text(render_finance_document(document(language="zh_CN")))
    compact = flat(text)
    for expected in ["第1页，共1页", "服务合同号：SC-2026-00017", "序号", "备注",
                     flat(CUSTOMER), "INV-2026-000123", "1,666.19"]:
        assert expected in compact, expected
    assert "Page 1 of 1" not in text and "Notes" not in text


@pytest.mark.parametrize(("kind", "title"), [("quote", "报价单"), ("invoice", "发票"),
                                             ("credit_note", "贷项通知单")])
def test_D5_document_title_in_chinese_for_zh_CN(app_ctx, kind, title):
    """Needs the zh_CN translations of "Quote", "Invoice" and "Credit note"."""
    [text] = pages_text(render_finance_document(document(kind, language="zh_CN")))
    assert title in text


def test_D5_sixty_lines_continue_over_pages_with_every_line(app_ctx):
    long_text = "更换 TK3 动态令牌，客户报告按键失灵并且屏幕显示不全 " * 3
    lines = [line(no, description=long_text if no % 10 == 0 else None) for no in range(1, 61)]
    pdf = render_finance_document(document(lines=lines))
    texts = pages_text(pdf)
    assert len(texts) >= 3
    for number, text in enumerate(texts, start=1):
        assert f"Page {number} of {len(texts)}" in text
        assert "Unit price" in text  # the table head is repeated on every page
    everything = "\n".join(texts)
    for no in range(1, 61):
        assert everything.count(f"TK3-{no:05d}") == 1, no
    assert everything.count("1,394.99") == 60
    sums = totals(line_amounts(1, Decimal("1234.50"), Decimal("0.13")) for _n in range(60))
    assert format_amount(sums.gross) == "83,699.40"
    assert "83,699.40" in texts[-1] and "Total" in texts[-1]
    assert "Net total" not in "\n".join(texts[:-1])  # totals after the last line only
    assert "Invoice" in texts[0] and "Bill to" in texts[0] and "Bill to" not in texts[1]


def test_D5_equal_data_gives_equal_bytes(app_ctx):
    first = render_finance_document(document())
    assert render_finance_document(document()) == first
    assert first.startswith(b"%PDF")
    info = PdfReader(io.BytesIO(first)).metadata
    assert info["/CreationDate"].startswith("D:20261125")
    later = render_finance_document(replace(document(), issued_on=date(2026, 11, 26)))
    assert later != first


def test_D5_unknown_kind_is_refused(app_ctx):
    with pytest.raises(ValueError, match="receipt"):
        render_finance_document(replace(document(), kind="receipt"))
