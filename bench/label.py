"""Benchmark the RMA parcel label (R-R2): vector barcodes against embedded PNG barcodes.

    .venv/bin/python bench/label.py [--labels N] [--rounds R]

For each label (A4 with 1 item, A4 with 40 items over several pages, thermal with 3
items) it renders the label N times with ``rma.documents.label.render_label`` as it is
(Code128 drawn as vector rectangles), then N times with the same layout but every
barcode embedded as a PNG made by python-barcode's ImageWriter (the reference: only
``draw_code128`` is swapped, so both runs draw the same page). Rounds interleave the
two; the table shows the best round's milliseconds per label. The Code128 cache is
cleared before every label, as every real label is for a new RMA.

Reference (issue 3): about 1 ms per label with vector bars, about 16 ms with PNG.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import re
import statistics
import time
from datetime import date
from unittest import mock

import reportlab
from barcode.codex import Code128
from barcode.writer import ImageWriter
from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader

from rma.documents import barcodes, label
from rma.documents.barcodes import QUIET_ZONE_MODULES
from rma.documents.label import LabelData, LabelItem, render_label

PNG_DPI = 300  # enough for 0.33-0.4 mm modules (4-5 pixels each)
PAGE = re.compile(rb"/Type /Page\b(?!s)")


def sample(items: int) -> LabelData:
    """A label as the portal makes it: Chinese customer and address, realistic serials."""
    faults = ("按键失灵，无法生成动态口令", "", "屏幕不显示 / display blank after a drop")
    return LabelData(
        rma_number="RMA-2026-00042",
        customer_name="上海地铁银行股份有限公司 信息技术部",
        contract_number="SC-2026-00017",
        return_address="RMA 服务中心\n北京市海淀区中关村南大街1号\n100081\nTel. +86 10 8000 0000",
        vendor_name="OTP Security Ltd. RMA Service Centre",
        submitted_on=date(2026, 11, 25),
        contact_name="张伟",
        contact_phone="+86 138 0000 0000",
        items=tuple(LabelItem(f"TKA-{100000 + n * 37:08d}", "TK-100", faults[n % 3])
                    for n in range(1, items + 1)),
    )


def draw_png(canvas, x: float, y: float, text: str, module_width: float,
             height: float) -> float:
    """``draw_code128``'s contract, drawn as a PNG image from python-barcode."""
    writer_options = {"module_width": module_width / mm, "module_height": height / mm,
                      "quiet_zone": QUIET_ZONE_MODULES * module_width / mm,
                      "write_text": False, "margin_top": 0, "margin_bottom": 0,
                      "dpi": PNG_DPI}
    png = io.BytesIO()
    Code128(text, writer=ImageWriter()).write(png, writer_options)
    png.seek(0)
    width = len(barcodes.code128_modules(text)) * module_width
    canvas.drawImage(ImageReader(png), x, y, width, height)
    return width


def per_label_ms(data: LabelData, size: str, count: int) -> tuple[float, bytes]:
    started = time.perf_counter()
    for _ in range(count):
        barcodes._encode.cache_clear()
        pdf = render_label(data, size)
    return (time.perf_counter() - started) * 1000 / count, pdf


def measure(data: LabelData, size: str, count: int, png: bool) -> tuple[float, bytes]:
    if not png:
        return per_label_ms(data, size, count)
    with mock.patch.object(label, "draw_code128", draw_png):
        return per_label_ms(data, size, count)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=int, default=100,
                        help="labels per measurement (default 100)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of the two measurements, interleaved (default 3)")
    args = parser.parse_args()
    cases: list[tuple[str, LabelData, str]] = [
        ("A4, 1 item", sample(1), "a4"),
        ("A4, 40 items", sample(40), "a4"),
        ("thermal, 3 items", sample(3), "thermal"),
    ]
    for _name, data, size in cases:  # warm up: fonts registered, modules imported
        measure(data, size, 3, png=False)
        measure(data, size, 3, png=True)
    results: dict[str, dict[str, list[float]]] = {}
    sizes: dict[str, dict[str, int]] = {}
    pages: dict[str, int] = {}
    for r in range(1, args.rounds + 1):
        print(f"round {r}/{args.rounds}", flush=True)
        for name, data, size in cases:
            for variant, png in (("vector", False), ("png", True)):
                ms, pdf = measure(data, size, args.labels, png)
                results.setdefault(name, {}).setdefault(variant, []).append(ms)
                sizes.setdefault(name, {})[variant] = len(pdf)
                pages[name] = len(PAGE.findall(pdf))
    report(cases, results, sizes, pages, args)


def report(cases, results, sizes, pages, args) -> None:
    def best(name: str, variant: str) -> float:
        return min(results[name][variant])

    print()
    print(f"labels per measurement: {args.labels}   rounds: {args.rounds}   "
          f"Python {platform.python_version()}   reportlab {reportlab.Version}   "
          f"cpus: {os.cpu_count()}   load average: {os.getloadavg()[0]:.2f}")
    head = (f"{'label':<16} {'pages':>5} {'vector ms':>9} {'median':>7} {'png ms':>8} "
            f"{'median':>7} {'png/vector':>10} {'vector KB':>9} {'png KB':>7}")
    print(head)
    print("-" * len(head))
    for name, _data, _size in cases:
        vector, png = best(name, "vector"), best(name, "png")
        vector_median = statistics.median(results[name]["vector"])
        png_median = statistics.median(results[name]["png"])
        print(f"{name:<16} {pages[name]:>5} {vector:>9.2f} {vector_median:>7.2f} {png:>8.2f} "
              f"{png_median:>7.2f} {png / vector:>9.1f}x {sizes[name]['vector'] / 1024:>9.1f} "
              f"{sizes[name]['png'] / 1024:>7.1f}")
    print("-" * len(head))
    print("ms per label: best round (and median of rounds); png/vector: how many times "
          "slower the PNG reference is.")


if __name__ == "__main__":
    main()
