"""Month rule (SPEC "Warranty"), shared by warranties and contract terms."""

from datetime import date

import pytest

from warranty import PolicyError, add_months, last_covered_day


@pytest.mark.parametrize(
    ("start", "months", "last"),
    [
        # the four examples written in SPEC.md
        (date(2026, 3, 11), 12, date(2027, 3, 10)),
        (date(2024, 2, 29), 36, date(2027, 2, 28)),
        (date(2024, 1, 31), 1, date(2024, 2, 29)),
        (date(2023, 5, 15), 36, date(2026, 5, 14)),
    ],
)
def test_month_rule_spec_examples(start, months, last):
    assert last_covered_day(start, months) == last


@pytest.mark.parametrize(
    ("start", "months", "last"),
    [
        (date(2023, 1, 31), 1, date(2023, 2, 28)),  # no 31 Feb, non-leap year
        (date(2024, 1, 30), 1, date(2024, 2, 29)),  # no 30 Feb
        (date(2024, 1, 29), 1, date(2024, 2, 28)),  # 29 Feb exists in 2024
        (date(2024, 3, 31), 1, date(2024, 4, 30)),  # no 31 Apr
        (date(2024, 2, 29), 12, date(2025, 2, 28)),  # leap day, one year on
        (date(2024, 2, 29), 48, date(2028, 2, 28)),  # leap day to leap year
        (date(2024, 3, 1), 12, date(2025, 2, 28)),
        (date(2024, 12, 1), 1, date(2024, 12, 31)),  # across the year end
        (date(2024, 12, 15), 2, date(2025, 2, 14)),
        (date(2024, 1, 1), 12, date(2024, 12, 31)),
        (date(2024, 5, 31), 120, date(2034, 5, 30)),
    ],
)
def test_month_rule_edges(start, months, last):
    assert last_covered_day(start, months) == last


@pytest.mark.parametrize("months", [0, -1, 1.5, "12", True, None])
def test_month_rule_refuses_a_period_below_one_month(months):
    with pytest.raises(PolicyError):
        last_covered_day(date(2026, 1, 1), months)


def test_month_rule_outside_the_calendar_is_a_policy_error():
    with pytest.raises(PolicyError):
        last_covered_day(date(9999, 6, 1), 12)


@pytest.mark.parametrize(
    ("d", "n", "result"),
    [
        (date(2024, 1, 31), 1, date(2024, 2, 29)),
        (date(2024, 3, 31), -1, date(2024, 2, 29)),
        (date(2024, 5, 15), 0, date(2024, 5, 15)),
        (date(2024, 11, 30), 3, date(2025, 2, 28)),
        (date(2025, 1, 10), -13, date(2023, 12, 10)),
    ],
)
def test_add_months(d, n, result):
    assert add_months(d, n) == result


def test_add_months_refuses_a_fraction():
    with pytest.raises(PolicyError):
        add_months(date(2024, 1, 1), 0.5)
