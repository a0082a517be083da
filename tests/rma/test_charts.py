"""Server-side SVG charts (issue 7): valid SVG, accessible, labels escaped."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from decimal import Decimal

import pytest

from rma.charts import Series, bar_chart, line_chart, stacked_bar_chart

SVG = "{http://www.w3.org/2000/svg}"


def _parse(markup) -> ET.Element:
    root = ET.fromstring(str(markup))  # noqa: S314 - our own SVG
    assert root.tag == f"{SVG}svg"
    assert root.get("role") == "img"
    title = root.find(f"{SVG}title")
    assert title is not None and title.text
    assert root.get("aria-labelledby") == f"{root.get('id')}-title {root.get('id')}-desc"
    assert root.get("viewBox").startswith("0 0 ")
    assert root.find(f".//{SVG}script") is None
    return root


CHARTS = [
    lambda: bar_chart("Rates <b>", ["<script>alert(1)</script>", "L-B & co"],
                      [Decimal("4.0"), 1], chart_id="c-bar", unit="%", highlight=[True]),
    lambda: stacked_bar_chart("Cost", ["2026-02", "2026-03"],
                              [Series("TK3 <i>", (Decimal("525.00"), Decimal("525.00"))),
                               Series("TK5", (None, Decimal("110.00")))],
                              chart_id="c-stack"),
    lambda: line_chart("72 h", ["2026-02", "2026-03", "2026-04"],
                       [Series("share", (Decimal("80.0"), None, 100))], chart_id="c-line",
                       unit="%", y_max=100),
]


@pytest.mark.parametrize("make", CHARTS)
def test_issue7_charts_are_valid_accessible_svg(make):
    root = _parse(make())
    assert root.findall(f".//{SVG}rect") or root.findall(f".//{SVG}circle")


def test_issue7_chart_labels_stay_text():
    markup = str(CHARTS[0]())
    assert "<script>" not in markup and "<b>" not in markup
    root = _parse(markup)
    texts = ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]
    assert any("<script>" in t for t in texts)  # shown as text, once parsed
    assert root.find(f"{SVG}title").text == "Rates <b>"


def test_issue7_bar_chart_draws_each_value_and_highlights_flagged_rows():
    root = _parse(bar_chart("t", ["a", "b"], [Decimal("4.0"), Decimal("2.0")], chart_id="x",
                            unit="%", highlight=[True, False]))
    bars = root.findall(f"{SVG}rect")
    assert len(bars) == 2
    assert float(bars[0].get("width")) == pytest.approx(2 * float(bars[1].get("width")))
    assert bars[0].get("fill") != bars[1].get("fill")
    assert "4.0%" in "".join(root.itertext())


def test_issue7_line_chart_breaks_at_missing_values_and_stacked_sums():
    line = _parse(CHARTS[2]())
    assert len(line.findall(f"{SVG}circle")) == 2
    assert not line.findall(f"{SVG}polyline")  # the gap leaves no segment of two points
    stack = _parse(CHARTS[1]())
    assert len(stack.findall(f"{SVG}rect")) == 3 + 2  # 3 bar parts + 2 legend keys


@pytest.mark.parametrize("make", [
    lambda: bar_chart("Empty", [], [], chart_id="e1", empty_text="Nothing <here>"),
    lambda: stacked_bar_chart("Empty", ["2026-01"], [Series("a", (0,))], chart_id="e2"),
    lambda: line_chart("Empty", ["2026-01"], [Series("a", (None,))], chart_id="e3"),
])
def test_issue7_empty_charts_say_so(make):
    root = _parse(make())
    assert not root.findall(f"{SVG}rect")
