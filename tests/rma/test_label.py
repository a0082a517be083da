"""Code128 barcodes and the RMA parcel label (R-R2). No app and no database: the label
is rendered from plain data, then read back the way a warehouse reads it, by scanning
the printed page (``pdftoppm`` at 200 dpi, then zbar) and by extracting its text."""

from __future__ import annotations

import io
import re
import subprocess
import xml.etree.ElementTree as ET
from collections import Counter
from datetime import date
from pathlib import Path

import pytest
from barcode.codex import Code128
from PIL import Image, ImageDraw
from pypdf import PdfReader
from pyzbar.pyzbar import ZBarSymbol, decode
from reportlab.lib.units import mm
from reportlab.pdfbase.pdfmetrics import stringWidth
from reportlab.pdfgen.canvas import Canvas

from rma.documents.barcodes import (
    DEFAULT_MODULE,
    MIN_MODULE,
    QUIET_ZONE_MODULES,
    BarcodeTooWideError,
    bar_runs,
    code128_modules,
    code128_svg,
    draw_code128,
    fit_module_width,
)
from rma.documents.label import LabelData, LabelItem, render_label, wrap

RMA = "RMA-2026-00042"
CUSTOMER = "上海地铁银行股份有限公司 信息技术部"
ADDRESS_LINES = ["RMA 服务中心", "北京市海淀区中关村南大街1号", "100081"]
VENDOR = "OTP Security Ltd. RMA Service Centre"
LONG_SERIAL = "ABCDEFGHJKLMNPQRSTUVWXYZ-ABCDEFG"  # D-8's longest, no digit runs: widest code
PRINT_MIN = 0.33 * mm  # SPEC'd here, not read from the code under test
STOP = "1100011101011"  # Code128 stop pattern with its final bar
START = {"A": "11010000100", "B": "11010010000", "C": "11010011100"}


def serials(count: int) -> list[str]:
    """Realistic serials of several shapes: prefixes, digit runs of odd length."""
    shapes = ("TKA-{:06d}", "TK3-SP{:05d}", "{:012d}", "LIC-PRO-{:d}")
    return [shapes[n % 4].format(20260000 + n * 37) for n in range(1, count + 1)]


def label_data(items: list[str] | tuple[str, ...] = ("TKA-000042",), **changes) -> LabelData:
    fields = {
        "rma_number": RMA,
        "customer_name": CUSTOMER,
        "contract_number": "SC-2026-00017",
        "return_address": "\n".join(ADDRESS_LINES),
        "vendor_name": VENDOR,
        "submitted_on": date(2026, 11, 25),
        "contact_name": "张伟",
        "contact_phone": "+86 138 0000 0000",
        "items": tuple(LabelItem(serial, "TK-100", "按键失灵，无法生成动态口令")
                       for serial in items),
    }
    fields.update(changes)
    return LabelData(**fields)


def scan(pdf: bytes, tmp_path: Path) -> list[list[str]]:
    """The Code128 barcodes zbar reads on each page printed at 200 dpi."""
    source = tmp_path / "label.pdf"
    source.write_bytes(pdf)
    subprocess.run(["pdftoppm", "-r", "200", "-png", str(source), str(tmp_path / "page")],
                   check=True, capture_output=True, timeout=60)
    pages = sorted(tmp_path.glob("page-*.png"), key=lambda p: int(p.stem.split("-")[1]))
    assert pages, "pdftoppm produced no page"
    found = []
    for page in pages:
        with Image.open(page) as image:
            found.append([symbol.data.decode("ascii")
                          for symbol in decode(image, symbols=[ZBarSymbol.CODE128])])
    return found


def page_texts(pdf: bytes) -> list[str]:
    return [page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages]


_BARCODE = re.compile(
    rb"q 0 g ([\d.]+) 0 0 ([\d.]+) ([\d.-]+) ([\d.-]+) cm ((?:\d+ 0 \d+ 1 re ?)+)f Q")


def drawn_barcodes(pdf: bytes) -> list[tuple[float, list[tuple[int, int]]]]:
    """Each barcode as drawn in the content streams: its module width in points and its
    bars as (first module, width in modules)."""
    found = []
    for page in PdfReader(io.BytesIO(pdf)).pages:
        for match in _BARCODE.finditer(page.get_contents().get_data()):
            bars = [tuple(map(int, bar.split()[0:3:2]))
                    for bar in match.group(5).decode().split(" re") if bar.strip()]
            found.append((float(match.group(1)), bars))
    return found


# --- code128_modules --------------------------------------------------------------


@pytest.mark.parametrize("text", [RMA, "TKA-000042", "12345", "A", "a b~{}|", "a<b&c"])
def test_r_r2_code128_modules_are_python_barcode_between_quiet_zones(text):
    quiet = "0" * QUIET_ZONE_MODULES
    assert code128_modules(text) == quiet + Code128(text).build()[0] + quiet


@pytest.mark.parametrize(("text", "start"), [
    (RMA, "B"), ("TK3-SP00001", "B"), ("20261125", "C"), ("1234567", "C"), ("a", "B"),
])
def test_r_r2_code128_modules_structure(text, start):
    modules = code128_modules(text)
    quiet = QUIET_ZONE_MODULES
    assert quiet >= 10
    assert modules[:quiet] == modules[-quiet:] == "0" * quiet
    code = modules[quiet:-quiet]
    assert code.startswith(START[start])
    assert code.endswith(STOP)
    assert (len(code) - len(STOP)) % 11 == 0  # start, data and checksum symbols
    # Each symbol is 3 bars and 3 spaces: it starts dark and ends light.
    for i in range(0, len(code) - len(STOP), 11):
        assert code[i] == "1" and code[i + 10] == "0"


@pytest.mark.parametrize("text", [
    RMA, "TK3-SP00001", "12345", "1", "A1234B", "007", "a b~", LONG_SERIAL, "a<b&c\"'",
])
def test_r_r2_code128_modules_scan_back(text):
    """A plain raster of the pattern (4 px per module) reads back as the text."""
    modules = code128_modules(text)
    image = Image.new("L", (len(modules) * 4, 80), 255)
    pen = ImageDraw.Draw(image)
    for start, width in bar_runs(modules):
        pen.rectangle([start * 4, 10, (start + width) * 4 - 1, 70], fill=0)
    assert [s.data.decode() for s in decode(image, symbols=[ZBarSymbol.CODE128])] == [text]


@pytest.mark.parametrize(("text", "shown"), [
    ("上海", "'上', '海'"), ("RMA-é", "'é'"), ("TAB\tX", "'\\t'"), ("ñ", "'ñ'"),
])
def test_r_r2_code128_refuses_text_it_cannot_encode(text, shown):
    with pytest.raises(ValueError, match="Code128 cannot encode") as error:
        code128_modules(text)
    assert shown in str(error.value) and "printable ASCII" in str(error.value)


def test_r_r2_code128_refuses_empty_text():
    with pytest.raises(ValueError, match="at least one character"):
        code128_modules("")


@pytest.mark.parametrize(("modules", "runs"), [
    ("0110111010", [(1, 2), (4, 3), (8, 1)]),
    ("1", [(0, 1)]),
    ("000", []),
    ("1111", [(0, 4)]),
])
def test_bar_runs_merge_adjacent_dark_modules(modules, runs):
    assert bar_runs(modules) == runs


# --- widths ---------------------------------------------------------------------------


def test_r_r2_fit_module_width_prefers_default_then_shrinks_never_below_033_mm():
    count = len(code128_modules(LONG_SERIAL))
    assert fit_module_width(LONG_SERIAL, 1000 * mm) == DEFAULT_MODULE
    shrunk = fit_module_width(LONG_SERIAL, count * 0.35 * mm)
    assert shrunk == pytest.approx(0.35 * mm)
    assert MIN_MODULE == pytest.approx(PRINT_MIN)
    assert fit_module_width(LONG_SERIAL, count * PRINT_MIN) == pytest.approx(PRINT_MIN)
    with pytest.raises(BarcodeTooWideError, match=r"0\.33 mm.*only 92\.0 mm are free"):
        fit_module_width(LONG_SERIAL, 92 * mm)
    with pytest.raises(ValueError, match="too narrow"):
        fit_module_width(RMA, 1000 * mm, preferred=0.3 * mm)


def test_r_r2_draw_code128_refuses_modules_under_033_mm():
    canvas = Canvas(io.BytesIO())
    with pytest.raises(ValueError, match=r"too narrow.*0\.33 mm"):
        draw_code128(canvas, 0, 0, RMA, 0.2 * mm, 10 * mm)
    with pytest.raises(ValueError, match="Code128 cannot encode"):
        draw_code128(canvas, 0, 0, "RMA-二〇二六", DEFAULT_MODULE, 10 * mm)


def test_r_r2_draw_code128_draws_one_rectangle_per_bar():
    buffer = io.BytesIO()
    canvas = Canvas(buffer)
    width = draw_code128(canvas, 20, 30, RMA, 0.4 * mm, 12 * mm)
    canvas.showPage()
    canvas.save()
    modules = code128_modules(RMA)
    assert width == pytest.approx(len(modules) * 0.4 * mm)
    [(module, bars)] = drawn_barcodes(buffer.getvalue())
    assert module >= 0.4 * mm
    assert bars == bar_runs(modules)
    assert bars[0][0] == QUIET_ZONE_MODULES  # nothing drawn in the quiet zones
    assert bars[-1][0] + bars[-1][1] == len(modules) - QUIET_ZONE_MODULES


# --- code128_svg ------------------------------------------------------------------------


def test_r_r2_code128_svg_one_rect_per_bar_and_printed_size():
    svg = code128_svg(RMA, module_mm=0.4, height_mm=12)
    root = ET.fromstring(svg)  # noqa: S314 (our own output) well formed, no declaration
    ns = {"svg": "http://www.w3.org/2000/svg"}
    modules = code128_modules(RMA)
    bars = root.findall("svg:g/svg:rect", ns)
    assert [(int(r.get("x")), int(r.get("width"))) for r in bars] == bar_runs(modules)
    assert root.find("svg:g", ns).get("fill") == "#000"
    assert len(root.findall(".//svg:rect", ns)) == len(bars) + 1  # plus the white ground
    assert root.get("width") == f"{len(modules) * 0.4:g}mm"
    assert root.get("viewBox").startswith(f"0 0 {len(modules)} ")
    assert root.find("svg:text", ns).text == RMA
    assert not svg.startswith("<?xml") and "style=" not in svg


def test_r_r2_code128_svg_escapes_the_text():
    svg = code128_svg('A<&"B')
    assert "A&lt;&amp;&quot;B" in svg
    assert "<&" not in svg and 'A<' not in svg
    root = ET.fromstring(svg)  # noqa: S314 (our own output)
    assert root.get("aria-label") == 'A<&"B'


def test_r_r2_code128_svg_without_text_and_bad_input():
    assert "<text" not in code128_svg(RMA, with_text=False)
    with pytest.raises(ValueError, match="too narrow"):
        code128_svg(RMA, module_mm=0.2)
    with pytest.raises(ValueError, match="positive height"):
        code128_svg(RMA, height_mm=0)
    with pytest.raises(ValueError, match="Code128 cannot encode"):
        code128_svg("退货")


# --- wrapping ---------------------------------------------------------------------------


@pytest.mark.parametrize("text", [
    "北京市海淀区中关村南大街1号院 5 号楼 3 层 RMA 服务中心 收 " * 3,
    "No. 1 Zhongguancun South Street, Haidian District, Beijing 100081, China " * 2,
    "X" * 120,
])
def test_wrap_keeps_every_line_inside_the_width(text):
    lines = wrap(text, "STSong-Light", 12, 60 * mm)
    assert len(lines) > 1
    assert all(stringWidth(line, "STSong-Light", 12) <= 60 * mm for line in lines)
    assert "".join(lines).replace(" ", "") == text.replace(" ", "")


def test_wrap_keeps_newlines_and_cuts_with_an_ellipsis():
    assert wrap("a b\n\nc", "Helvetica", 10, 100 * mm) == ["a b", "c"]
    lines = wrap("word " * 100, "Helvetica", 10, 50 * mm, max_lines=2)
    assert len(lines) == 2 and lines[1].endswith("\u2026")


# --- the label ----------------------------------------------------------------------------


def test_r_r2_a4_label_one_item_scans_and_reads(tmp_path):
    pdf = render_label(label_data(["TKA-000042"]), "a4")
    assert [sorted(page) for page in scan(pdf, tmp_path)] == [sorted([RMA, "TKA-000042"])]
    reader = PdfReader(io.BytesIO(pdf))
    assert len(reader.pages) == 1
    assert reader.metadata.title == RMA
    assert reader.metadata.author == VENDOR
    text = reader.pages[0].extract_text()
    for expected in [RMA, CUSTOMER, *ADDRESS_LINES, "SC-2026-00017", "张伟", "TKA-000042",
                     "TK-100", "按键失灵", "Page 1 of 1", "Return to", "1 item"]:
        assert expected in text


def test_r_r2_a4_label_forty_items_paginates_and_scans(tmp_path):
    numbers = serials(40)
    pdf = render_label(label_data(numbers), "a4")
    pages = scan(pdf, tmp_path)
    assert len(pages) > 1
    found = Counter(code for page in pages for code in page)
    assert set(found) == {RMA, *numbers}
    assert found[RMA] == len(pages)  # the RMA barcode is on every page
    assert all(found[serial] == 1 for serial in numbers)
    texts = page_texts(pdf)
    assert len(texts) == len(pages)
    for n, text in enumerate(texts, start=1):
        assert RMA in text
        assert f"Page {n} of {len(pages)}" in text
    assert CUSTOMER in texts[0] and "40 items" in texts[0]
    assert all(serial in "".join(texts) for serial in numbers)


def test_r_r2_a4_label_longest_serial_still_fits_at_033_mm(tmp_path):
    pdf = render_label(label_data([LONG_SERIAL, "TKA-000042"]), "a4")
    assert sorted(scan(pdf, tmp_path)[0]) == sorted([RMA, LONG_SERIAL, "TKA-000042"])


def test_r_r2_thermal_label_one_item(tmp_path):
    pdf = render_label(label_data(["TKA-000042"]), "thermal")
    assert sorted(scan(pdf, tmp_path)[0]) == sorted([RMA, "TKA-000042"])
    reader = PdfReader(io.BytesIO(pdf))
    assert len(reader.pages) == 1
    box = reader.pages[0].mediabox
    assert (float(box.width), float(box.height)) == pytest.approx((100 * mm, 150 * mm))
    text = reader.pages[0].extract_text()
    for expected in [RMA, CUSTOMER, *ADDRESS_LINES, "SC-2026-00017", "1 item"]:
        assert expected in text
    assert "more item" not in text


def test_r_r2_thermal_label_with_overflow_points_to_the_a4_sheet(tmp_path):
    numbers = serials(40)
    pdf = render_label(label_data(numbers), "thermal")
    [found] = scan(pdf, tmp_path)
    assert found.count(RMA) == 1
    shown = [code for code in found if code != RMA]
    assert 2 <= len(shown) < 40
    assert sorted(shown) == sorted(numbers[:len(shown)])  # the first items, in order
    text = page_texts(pdf)[0]
    assert f"{40 - len(shown)} more items, see the A4 sheet" in text
    assert "40 items" in text


def test_r_r2_thermal_label_serial_too_long_for_a_barcode_is_text(tmp_path):
    pdf = render_label(label_data([LONG_SERIAL, "TKA-000042"]), "thermal")
    assert sorted(scan(pdf, tmp_path)[0]) == sorted([RMA, "TKA-000042"])
    text = page_texts(pdf)[0]
    assert LONG_SERIAL in text and "barcode on the A4 sheet" in text


def test_r_r2_every_bar_drawn_is_at_least_033_mm_with_quiet_zones():
    pdfs = [render_label(label_data(serials(40) + [LONG_SERIAL]), "a4"),
            render_label(label_data(serials(40) + [LONG_SERIAL]), "thermal")]
    for pdf in pdfs:
        barcodes = drawn_barcodes(pdf)
        assert barcodes
        narrowest = min(module * width for module, bars in barcodes for _x, width in bars)
        assert narrowest >= PRINT_MIN
        assert all(bars[0][0] == QUIET_ZONE_MODULES for _module, bars in barcodes)
    # The RMA number gets the preferred 0.4 mm module on both sizes.
    assert all(drawn_barcodes(pdf)[0][0] >= DEFAULT_MODULE for pdf in pdfs)


def test_r_r2_long_names_and_addresses_wrap():
    name = "上海地铁银行股份有限公司信息技术部运营维护中心安全认证设备管理科" * 2
    address = "中国上海市浦东新区世纪大道100号环球金融中心第七十八层东区 RMA 收货台 " * 3
    for size in ("a4", "thermal"):
        pdf = render_label(label_data(customer_name=name, return_address=address), size)
        text = page_texts(pdf)[0]
        assert name[:12] in text and address[:12] in text
        assert RMA in text


def test_r_r2_label_without_contact_and_items():
    pdf = render_label(label_data([], contact_name="", contact_phone=""), "a4")
    text = page_texts(pdf)[0]
    assert "Contact" not in text and "0 items" in text


def test_r_r2_label_bytes_depend_on_the_data_only():
    first = render_label(label_data(), "a4")
    assert render_label(label_data(), "a4") == first
    assert PdfReader(io.BytesIO(first)).metadata["/CreationDate"].startswith("D:20261125")
    assert render_label(label_data(submitted_on=date(2026, 11, 26)), "a4") != first


def test_r_r2_label_refuses_unknown_size_and_bad_codes():
    with pytest.raises(ValueError, match="Unknown label size 'a5'.*a4, thermal"):
        render_label(label_data(), "a5")
    for size in ("a4", "thermal"):
        with pytest.raises(ValueError, match="Code128 cannot encode 'RMA-二〇二六-1'"):
            render_label(label_data(rma_number="RMA-二〇二六-1"), size)
    for size in ("a4", "thermal"):
        with pytest.raises(ValueError, match="Code128 cannot encode '序列号-1'"):
            render_label(label_data(["序列号-1"]), size)
    with pytest.raises(BarcodeTooWideError):
        render_label(label_data(["X" * 60]), "a4")
