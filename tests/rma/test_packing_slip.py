"""The packing slip of a replacement (issue 4, point 5). No app and no database: the slip
is rendered from plain data, then read back the way the customer's goods-in and the scan
station read it: printed at 200 dpi (``pdftoppm``) and decoded by zbar, and its text
extracted."""

from __future__ import annotations

import io
import re
import subprocess
from datetime import date
from pathlib import Path

import pytest
from PIL import Image
from pypdf import PdfReader
from pyzbar.pyzbar import ZBarSymbol, decode
from reportlab.lib.units import mm

from rma.documents.barcodes import QUIET_ZONE_MODULES, BarcodeTooWideError
from rma.documents.packing_slip import PackingSlipData, render_packing_slip

RMA = "RMA-2026-00042"
CUSTOMER = "上海地铁银行股份有限公司 信息技术部"
SHIP_TO = ["上海市浦东新区世纪大道100号", "环球金融中心 78 层", "200120"]
TRACKING = "SF1234567890123"
NEW = "TKA-000977"
OLD = "TKA-000042"
LONG_SERIAL = "ABCDEFGHJKLMNPQRSTUVWXYZ-ABCDEFG"  # D-8's longest, widest code
PRINT_MIN = 0.33 * mm  # SPEC'd here, not read from the code under test


def slip(**changes) -> PackingSlipData:
    fields = {
        "rma_number": RMA,
        "customer_name": CUSTOMER,
        "contract_number": "SC-2026-00017",
        "ship_to": "\n".join(SHIP_TO),
        "contact_name": "张伟",
        "contact_phone": "+86 138 0000 0000",
        "vendor_name": "OTP Security Ltd. RMA Service Centre",
        "return_address": "RMA 服务中心\n北京市海淀区中关村南大街1号\n100081",
        "shipped_on": date(2026, 11, 25),
        "carrier": "顺丰速运 SF Express",
        "tracking_number": TRACKING,
        "replacement_serial": NEW,
        "replacement_model": "TK-100 USB token",
        "returned_serial": OLD,
        "kind": "replacement",
    }
    fields.update(changes)
    return PackingSlipData(**fields)


def scan(pdf: bytes, tmp_path: Path) -> list[list[str]]:
    """The Code128 barcodes zbar reads on each page printed at 200 dpi."""
    source = tmp_path / "slip.pdf"
    source.write_bytes(pdf)
    subprocess.run(["pdftoppm", "-r", "200", "-png", str(source), str(tmp_path / "page")],
                   check=True, capture_output=True, timeout=60)
    pages = sorted(tmp_path.glob("page-*.png"))
    assert pages, "pdftoppm produced no page"
    found = []
    for page in pages:
        with Image.open(page) as image:
            found.append(sorted(symbol.data.decode("ascii")
                                for symbol in decode(image, symbols=[ZBarSymbol.CODE128])))
    return found


def text_of(pdf: bytes) -> str:
    reader = PdfReader(io.BytesIO(pdf))
    assert len(reader.pages) == 1
    return reader.pages[0].extract_text()


_BARCODE = re.compile(
    rb"q 0 g ([\d.]+) 0 0 ([\d.]+) ([\d.-]+) ([\d.-]+) cm ((?:\d+ 0 \d+ 1 re ?)+)f Q")


def drawn_barcodes(pdf: bytes) -> list[tuple[float, list[tuple[int, int]]]]:
    """Each barcode in the content stream: module width (pt), bars (first, width)."""
    found = []
    for page in PdfReader(io.BytesIO(pdf)).pages:
        for match in _BARCODE.finditer(page.get_contents().get_data()):
            bars = [tuple(map(int, bar.split()[0:3:2]))
                    for bar in match.group(5).decode().split(" re") if bar.strip()]
            found.append((float(match.group(1)), bars))
    return found


def test_replacement_slip_scans_to_rma_and_both_serials(tmp_path):
    pdf = render_packing_slip(slip())
    assert scan(pdf, tmp_path) == [sorted([RMA, NEW, OLD])]
    reader = PdfReader(io.BytesIO(pdf))
    box = reader.pages[0].mediabox
    assert (float(box.width), float(box.height)) == pytest.approx((210 * mm, 297 * mm), abs=1)
    assert reader.metadata.title == f"Packing slip {RMA}"
    text = text_of(pdf)
    for expected in [RMA, CUSTOMER, *SHIP_TO, TRACKING, "顺丰速运", "张伟", "+86 138 0000 0000",
                     "SC-2026-00017", "TK-100 USB token", NEW, OLD, "中关村南大街",
                     "Packing slip: replacement unit", "Shipped on: 2026-11-25",
                     "Faulty unit it replaces", "Received in good condition"]:
        assert expected in text, expected
    assert "Not yet returned" not in text


def test_d_2_advance_replacement_asks_for_the_faulty_unit_by_its_date(tmp_path):
    pdf = render_packing_slip(slip(unit_due_back_on=date(2026, 12, 9)))
    assert scan(pdf, tmp_path) == [sorted([RMA, NEW, OLD])]
    text = " ".join(text_of(pdf).split())
    assert "Not yet returned" in text and "2026-12-09" in text
    assert "may become chargeable" in text


def test_return_slip_shows_the_customers_own_unit_once(tmp_path):
    for shipped in ("", OLD):
        pdf = render_packing_slip(slip(kind="return", replacement_serial=shipped,
                                       notes="检测未发现故障 (no fault found)"))
        folder = tmp_path / (shipped or "empty")
        folder.mkdir()
        assert scan(pdf, folder) == [sorted([RMA, OLD])]
        text = text_of(pdf)
        assert "Packing slip: your unit returned" in text
        assert "检测未发现故障" in text and "Notes" in text
        assert NEW not in text and "Faulty unit it replaces" not in text


def test_every_bar_is_at_least_033_mm_with_quiet_zones():
    pdf = render_packing_slip(slip(replacement_serial=LONG_SERIAL, returned_serial=OLD))
    barcodes = drawn_barcodes(pdf)
    assert len(barcodes) == 3
    narrowest = min(module * width for module, bars in barcodes for _x, width in bars)
    assert narrowest >= PRINT_MIN
    assert all(bars[0][0] == QUIET_ZONE_MODULES for _module, bars in barcodes)


def test_worst_case_texts_stay_on_one_page_and_everything_scans(tmp_path):
    """Long names, addresses and notes are cut, never pushed over the barcodes."""
    name = "上海地铁银行股份有限公司信息技术部运营维护中心安全认证设备管理科" * 3
    address = "中国上海市浦东新区世纪大道100号环球金融中心第七十八层东区 RMA 收货台\n" * 9
    notes = "请在收到后核对序列号并在签收栏签字。Please check the serial on receipt. " * 20
    pdf = render_packing_slip(slip(
        customer_name=name, ship_to=address, return_address=address, notes=notes,
        vendor_name="OTP Security Ltd. " * 10, contact_name="张" * 80,
        replacement_serial=LONG_SERIAL, returned_serial="ZYXWVUTSRQPNMLKJHGFEDCBA-GFEDCBA",
        unit_due_back_on=date(2026, 12, 9), carrier="C" * 100, tracking_number="T" * 100))
    assert scan(pdf, tmp_path) == [sorted([RMA, LONG_SERIAL,
                                           "ZYXWVUTSRQPNMLKJHGFEDCBA-GFEDCBA"])]
    text = text_of(pdf)
    assert name[:12] in text and "\u2026" in text
    assert "Received in good condition" in text


def test_slip_bytes_depend_on_the_data_only():
    first = render_packing_slip(slip())
    assert render_packing_slip(slip()) == first
    assert PdfReader(io.BytesIO(first)).metadata["/CreationDate"].startswith("D:20261125")
    assert render_packing_slip(slip(tracking_number="SF0000000000000")) != first


@pytest.mark.parametrize(("changes", "message"), [
    ({"kind": "loan"}, "Unknown packing slip kind 'loan'"),
    ({"replacement_serial": ""}, "needs the replacement unit's serial"),
    ({"returned_serial": ""}, "needs the returned"),
    ({"kind": "return", "replacement_serial": NEW}, "ships the customer's own unit"),
    ({"replacement_serial": "序列号-1"}, "Code128 cannot encode '序列号-1'"),
    ({"rma_number": "RMA-二〇二六-1"}, "Code128 cannot encode"),
])
def test_slip_refuses_bad_data(changes, message):
    with pytest.raises(ValueError, match=message):
        render_packing_slip(slip(**changes))


def test_slip_refuses_a_serial_too_long_to_print():
    with pytest.raises(BarcodeTooWideError):
        render_packing_slip(slip(replacement_serial="X" * 60))
