"""warranty/money.py: one rounding rule (half-up to the fen), VAT per line, totals as the
sum of rounded lines (D-5), user-typed amounts, ageing buckets, quote validity."""

from __future__ import annotations

from datetime import date
from decimal import ROUND_HALF_UP, Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from warranty.money import (
    MoneyError,
    ageing_bucket,
    line_amounts,
    parse_amount,
    quote_valid_until,
    round_money,
    totals,
)

FEN = Decimal("0.01")


@pytest.mark.parametrize("raw, expected", [
    ("0.005", "0.01"), ("0.004", "0.00"), ("1.234", "1.23"), ("1.235", "1.24"),
    ("-0.005", "-0.01"), ("2.675", "2.68"), (Decimal("39.0000"), "39.00"), (7, "7.00"),
    ("1,000.125", "1000.13"),
])
def test_D5_round_money_is_half_up_to_the_fen(raw, expected):
    assert round_money(raw) == Decimal(expected)
    assert str(round_money(raw)) == expected


@pytest.mark.parametrize("raw", [0.1, True, "abc", "NaN", "Infinity", None, [1]])
def test_round_money_refuses_what_is_not_a_decimal(raw):
    with pytest.raises(MoneyError):
        round_money(raw)


def test_D5_vat_is_computed_and_rounded_per_line():
    line = line_amounts(1, "300.00", "0.13")
    assert (line.net, line.vat, line.gross) == (Decimal("300.00"), Decimal("39.00"),
                                                Decimal("339.00"))
    # 0.05 * 0.13 = 0.0065 → 0.01 per line; three such lines → 0.03 VAT, not round(0.0195)
    lines = [line_amounts(1, "0.05", "0.13") for _ in range(3)]
    assert totals(lines).vat == Decimal("0.03")
    assert totals(lines).gross == Decimal("0.18")


@pytest.mark.parametrize("raw, kwargs, expected", [
    ("12", {}, "12.00"), (" 12.5 ", {}, "12.50"), ("1,234.56", {}, "1234.56"),
    (Decimal("0.10"), {}, "0.10"), ("0", {"allow_zero": True}, "0.00"), (3, {}, "3.00"),
])
def test_parse_amount_accepts_fen_amounts(raw, kwargs, expected):
    assert parse_amount(raw, **kwargs) == Decimal(expected)


@pytest.mark.parametrize("raw, kwargs, fragment", [
    ("1.234", {}, "more than two decimals"),
    ("-1", {}, "more than zero"),
    ("0", {}, "more than zero"),
    ("-1", {"allow_zero": True}, "zero or more"),
    ("1e10", {}, "too large"),
    ("twelve", {}, "must be a number"),
    (1.5, {}, "decimal number"),
    ("inf", {}, "finite"),
])
def test_parse_amount_errors_name_the_problem(raw, kwargs, fragment):
    with pytest.raises(MoneyError, match=fragment):
        parse_amount(raw, "payment", **kwargs)


def test_line_amounts_refuses_bad_quantity_and_rate():
    with pytest.raises(MoneyError):
        line_amounts(1.0, "1", "0.13")  # type: ignore[arg-type]
    with pytest.raises(MoneyError):
        line_amounts(1, "1", "1.0")
    with pytest.raises(MoneyError):
        line_amounts(1, "1", "-0.01")


@pytest.mark.parametrize("days, bucket", [(0, "0-30"), (30, "0-30"), (31, "31-60"),
                                          (60, "31-60"), (61, "61-90"), (90, "61-90"),
                                          (91, "90+"), (-5, "0-30")])
def test_ageing_buckets(days, bucket):
    issued = date(2026, 1, 1)
    assert ageing_bucket(issued, date.fromordinal(issued.toordinal() + days)) == bucket


def test_quote_valid_until_counts_calendar_days():
    assert quote_valid_until(date(2026, 11, 25), 30) == date(2026, 12, 25)
    with pytest.raises(MoneyError):
        quote_valid_until(date(2026, 11, 25), 0)


# -- properties ---------------------------------------------------------------------------
prices = st.decimals(min_value=Decimal("0"), max_value=Decimal("99999999.99"), places=2,
                     allow_nan=False, allow_infinity=False)
rates = st.decimals(min_value=Decimal("0"), max_value=Decimal("0.9999"), places=4,
                    allow_nan=False, allow_infinity=False)
quantities = st.integers(min_value=-50, max_value=1000)
raw_decimals = st.decimals(min_value=Decimal("-1e9"), max_value=Decimal("1e9"), places=6,
                           allow_nan=False, allow_infinity=False)


@settings(max_examples=300)
@given(raw_decimals)
def test_D5_round_money_property_half_up_and_within_half_a_fen(value):
    rounded = round_money(value)
    assert rounded == rounded.quantize(FEN)
    assert abs(rounded - value) <= Decimal("0.005")
    assert rounded == value.quantize(FEN, rounding=ROUND_HALF_UP)
    assert round_money(rounded) == rounded  # idempotent
    assert round_money(-value) == -rounded  # half away from zero: symmetric


@settings(max_examples=300)
@given(st.lists(st.tuples(quantities, prices, rates), min_size=0, max_size=12))
def test_D5_totals_equal_the_sum_of_rounded_lines(rows):
    lines = [line_amounts(q, p, r) for q, p, r in rows]
    for line, (q, p, r) in zip(lines, rows, strict=True):
        assert line.net == round_money(p * q)
        assert line.vat == round_money(line.net * r)
        assert line.gross == line.net + line.vat
        for amount in (line.net, line.vat, line.gross):
            assert amount == amount.quantize(FEN)
    figures = totals(lines)
    assert figures.net == sum((line.net for line in lines), Decimal("0.00"))
    assert figures.vat == sum((line.vat for line in lines), Decimal("0.00"))
    assert figures.gross == sum((line.gross for line in lines), Decimal("0.00"))
    assert figures.gross == figures.net + figures.vat
    assert figures.gross == figures.gross.quantize(FEN)


@settings(max_examples=200)
@given(st.decimals(min_value=Decimal("0.01"), max_value=Decimal("9999999999.99"), places=2,
                   allow_nan=False, allow_infinity=False))
def test_parse_amount_round_trips_two_decimal_amounts(value):
    assert parse_amount(str(value)) == value
    assert parse_amount(f"{value:,.2f}") == value


@settings(max_examples=200)
@given(st.decimals(min_value=Decimal("0.001"), max_value=Decimal("1e6"), places=3,
                   allow_nan=False, allow_infinity=False)
       .filter(lambda d: d != d.quantize(FEN)))
def test_parse_amount_refuses_fractions_of_a_fen(value):
    with pytest.raises(MoneyError, match="more than two decimals"):
        parse_amount(value)
