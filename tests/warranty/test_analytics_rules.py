"""Failure analytics rules (issue 7): rates, flagged lots, months of service."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from fractions import Fraction

import pytest

from warranty import DEFAULT_POLICY, FactError, Policy, PolicyError
from warranty.analytics import (
    MONTH_BUCKETS,
    LotCount,
    exact_rate,
    flag_lots,
    histogram,
    months_of_service,
    rate,
)


@pytest.mark.parametrize(("returns", "shipped", "expected"), [
    (40, 1000, Decimal("4.0")),
    (1, 3, Decimal("33.3")),
    (2, 3, Decimal("66.7")),
    (1, 8, Decimal("12.5")),
    (1, 16, Decimal("6.3")),  # 6.25 rounds half up
    (0, 10, Decimal("0.0")),
    (5, 5, Decimal("100.0")),
    (3, 0, None),
])
def test_issue7_rate_is_percent_one_decimal_half_up(returns, shipped, expected):
    assert rate(returns, shipped) == expected
    if expected is not None:
        assert str(rate(returns, shipped)) == str(expected)


@pytest.mark.parametrize("bad", [-1, 1.5, "3", True, None])
def test_issue7_rate_refuses_counts_that_are_not_whole_numbers(bad):
    with pytest.raises(FactError):
        rate(bad, 10)
    with pytest.raises(FactError):
        rate(1, bad)


MODEL_RATE = {"TK3": exact_rate(60, 4000)}  # 1.5 %


@pytest.mark.parametrize(("lot", "flagged"), [
    (LotCount("TK3", "at-twice", 1000, 30), True),  # 3.0 % = exactly 2 × 1.5 %
    (LotCount("TK3", "just-below", 1001, 30), False),  # 2.997 %
    (LotCount("TK3", "far-above", 1000, 40), True),  # 4.0 %
    (LotCount("TK3", "tiny-4-returns", 10, 4), False),  # 40 %, but fewer than 5 returns
    (LotCount("TK3", "tiny-5-returns", 10, 5), True),
    (LotCount("TK3", "below", 3000, 20), False),
    (LotCount("TK5", "unknown-model", 10, 9), False),
    (LotCount("TK3", "nothing-shipped", 0, 9), False),
])
def test_issue7_flag_lots_at_twice_the_model_rate_with_five_returns(lot, flagged):
    assert (lot.key in flag_lots([lot], MODEL_RATE, DEFAULT_POLICY)) is flagged


def test_issue7_flag_lots_follows_the_policy_settings():
    lot = LotCount("TK3", "L1", 1000, 30)  # 3.0 %, 30 returns
    assert flag_lots([lot], MODEL_RATE, DEFAULT_POLICY.with_overrides(lot_flag_ratio="2.5")) \
        == set()
    assert flag_lots([lot], MODEL_RATE,
                     DEFAULT_POLICY.with_overrides(lot_flag_min_returns=31)) == set()
    assert flag_lots([lot], {"TK3": Fraction(0)}, DEFAULT_POLICY) == set()
    assert flag_lots([lot], {"TK3": Decimal("1.5")}, DEFAULT_POLICY) == {("TK3", "L1")}


def test_issue7_policy_defaults_and_validation():
    policy = Policy()
    assert policy.lot_flag_ratio == Decimal("2")
    assert policy.lot_flag_min_returns == 5
    assert policy.service_report_period == "month"
    assert Policy(service_report_period="quarter").service_report_period == "quarter"
    assert Policy(lot_flag_ratio=3).lot_flag_ratio == Decimal("3")
    for bad in ({"lot_flag_ratio": "0.9"}, {"lot_flag_ratio": "x"}, {"lot_flag_ratio": True},
                {"lot_flag_min_returns": 0}, {"service_report_period": "week"}):
        with pytest.raises(PolicyError):
            Policy(**bad)


@pytest.mark.parametrize(("shipped", "reported", "months"), [
    ("2026-01-15", "2026-01-15", 0),
    ("2026-01-15", "2026-02-14", 0),
    ("2026-01-15", "2026-02-15", 1),
    ("2024-01-31", "2024-02-29", 0),  # one month covers through Feb 29 (month rule)
    ("2024-01-31", "2024-03-01", 1),
    ("2023-05-15", "2026-05-14", 35),
    ("2023-05-15", "2026-05-15", 36),
    ("2025-03-31", "2026-03-20", 11),
    ("2025-12-31", "2026-01-01", 0),
])
def test_issue7_months_of_service_by_the_month_rule(shipped, reported, months):
    assert months_of_service(date.fromisoformat(shipped), date.fromisoformat(reported)) \
        == months


def test_issue7_months_of_service_refuses_a_report_before_shipping():
    with pytest.raises(FactError):
        months_of_service(date(2026, 2, 1), date(2026, 1, 31))


def test_issue7_histogram_keeps_every_bucket_and_sums():
    counts = {0: 3, 2: 1, 3: 4, 11: 2, 13: 5, 60: 1, 99: 2, -1: 7}
    bars = histogram(counts)
    assert [b.label for b, _n in bars][:3] == ["0\u20132", "3\u20135", "6\u20138"]
    assert len(bars) == len(MONTH_BUCKETS)
    assert dict((b.label, n) for b, n in bars) == {
        "0\u20132": 4, "3\u20135": 4, "6\u20138": 0, "9\u201311": 2, "12\u201317": 5,
        "18\u201323": 0, "24\u201335": 0, "36\u201347": 0, "48\u201359": 0, "60+": 3}
    assert sum(n for _b, n in bars) == sum(n for m, n in counts.items() if m >= 0)
