"""Properties of the month rule, coverage and decisions (hypothesis)."""

from datetime import date, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from warranty import (
    DEFAULT_POLICY,
    REPLACEMENT_POLICIES,
    Basis,
    Cause,
    Outcome,
    UnitFacts,
    coverage,
    decide,
    last_covered_day,
)

# No example database: these tests must not write files into the checkout.
SETTINGS = settings(database=None, deadline=None)

days = st.dates(min_value=date(2000, 1, 1), max_value=date(2060, 12, 31))
months = st.integers(min_value=1, max_value=240)
maybe_days = st.none() | days
units = st.builds(
    UnitFacts,
    serial=st.just("T1"),
    life_months=months,
    basis=st.sampled_from(Basis),
    shipped_on=maybe_days,
    activated_on=maybe_days,
    acceptance_on=maybe_days,
)
replacement_chains = st.recursive(
    units,
    lambda inner: st.builds(
        UnitFacts,
        serial=st.just("R"),
        life_months=months,
        basis=st.sampled_from(Basis),
        shipped_on=maybe_days,
        replaces=inner,
    ),
    max_leaves=4,
)
policies = st.builds(
    DEFAULT_POLICY.with_overrides,
    replacement_policy=st.sampled_from(REPLACEMENT_POLICIES),
    replacement_min_days=st.integers(min_value=1, max_value=400),
)


@SETTINGS
@given(days, months)
def test_end_is_never_before_start(start, n):
    assert last_covered_day(start, n) >= start


@SETTINGS
@given(days, days, months)
def test_later_start_never_ends_earlier(a, b, n):
    early, late = sorted((a, b))
    assert last_covered_day(early, n) <= last_covered_day(late, n)


@SETTINGS
@given(days, months)
def test_one_more_month_never_ends_earlier(start, n):
    assert last_covered_day(start, n + 1) > last_covered_day(start, n)


@SETTINGS
@given(days, months)
def test_month_rule_matches_its_definition(start, n):
    # Counting forward from the end: the next day is the same day of the month N months
    # on, or the first day of the month after a month too short for it.
    end = last_covered_day(start, n)
    nxt = end + timedelta(days=1)
    month_index = start.year * 12 + start.month - 1 + n
    if nxt.day == start.day:
        assert nxt.year * 12 + nxt.month - 1 == month_index
    else:
        assert nxt.day == 1 and start.day > end.day
        assert end.year * 12 + end.month - 1 == month_index


@SETTINGS
@given(replacement_chains, days, policies)
def test_in_warranty_iff_on_between_start_and_end(unit, on, policy):
    cov = coverage(unit, on, policy)
    inside = cov.start_on is not None and cov.end_on is not None
    inside = inside and cov.start_on <= on <= cov.end_on
    assert cov.in_warranty is inside
    assert (cov.days_left > 0) is inside
    if inside:
        assert on + timedelta(days=cov.days_left - 1) == cov.end_on
    assert cov.chain[-1] == unit.serial


@SETTINGS
@given(replacement_chains, days, policies)
def test_a_replacement_never_ends_before_ship_plus_min_days_by_default(unit, on, policy):
    cov = coverage(unit, on, policy)
    if unit.replaces is not None and unit.shipped_on and policy.replacement_policy != "inherit":
        assert cov.end_on >= unit.shipped_on
        if policy.replacement_policy == "inherit_min_days":
            assert cov.end_on >= unit.shipped_on + timedelta(days=policy.replacement_min_days)


@SETTINGS
@given(replacement_chains, days, st.sampled_from(Cause))
def test_decide_never_gives_misuse_for_free(unit, on, cause):
    decision = decide(cause, coverage(unit, on))
    if cause.is_misuse:
        assert decision.outcome is Outcome.PAID
    if decision.outcome is Outcome.FREE:
        assert cause is Cause.QUALITY_DEFECT
