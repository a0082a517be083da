"""Contract terms: project term and paid support (R-C2, R-C3)."""

from datetime import date, datetime

import pytest

from warranty import (
    ContractError,
    PolicyError,
    Term,
    contract_status,
    project_term,
    renewal_term,
    renewal_term_from,
)

D = date
ACCEPTED = D(2026, 3, 10)


def test_R_C2_term_example():
    term = project_term(ACCEPTED)
    assert term == Term(D(2026, 3, 11), D(2027, 3, 10), "project_term")
    assert term.covers(D(2026, 3, 11)) and term.covers(D(2027, 3, 10))
    assert not term.covers(ACCEPTED) and not term.covers(D(2027, 3, 11))


@pytest.mark.parametrize(
    ("accepted", "months", "start", "end"),
    [
        (D(2024, 2, 28), 12, D(2024, 2, 29), D(2025, 2, 28)),
        (D(2024, 1, 30), 1, D(2024, 1, 31), D(2024, 2, 29)),
        (D(2025, 12, 31), 24, D(2026, 1, 1), D(2027, 12, 31)),
    ],
)
def test_R_C2_term_follows_the_month_rule(accepted, months, start, end):
    assert project_term(accepted, months) == Term(start, end, "project_term")


@pytest.mark.parametrize(
    ("accepted", "on", "covered", "reason", "rule"),
    [
        (None, D(2026, 5, 1), False, "not_accepted", "R-C2"),
        (ACCEPTED, D(2026, 3, 1), False, "before_term", "R-C2"),
        (ACCEPTED, ACCEPTED, False, "before_term", "R-C2"),  # acceptance day itself
        (ACCEPTED, D(2026, 3, 11), True, "project_term", "R-C2"),
        (ACCEPTED, D(2027, 3, 10), True, "project_term", "R-C2"),
        (ACCEPTED, D(2027, 3, 11), False, "expired", "R-C3"),
    ],
)
def test_R_C2_contract_status(accepted, on, covered, reason, rule):
    status = contract_status(accepted, on)
    assert (status.on, status.covered, status.reason, status.rule) == (on, covered, reason, rule)
    assert (status.term is not None) is covered


def test_R_C3_paid_support_renewal():
    first = renewal_term(D(2027, 3, 10))
    assert first == Term(D(2027, 3, 11), D(2028, 3, 10), "paid_support")
    # a second year bought after a gap of about two months
    later = renewal_term_from(D(2028, 5, 20))
    assert later == Term(D(2028, 5, 20), D(2029, 5, 19), "paid_support")
    renewals = [first, later]
    table = [
        (D(2027, 3, 10), True, "project_term", "R-C2", "project_term"),
        (D(2027, 3, 11), True, "paid_support", "R-C3", first),
        (D(2028, 3, 10), True, "paid_support", "R-C3", first),
        (D(2028, 3, 11), False, "expired", "R-C3", None),  # the gap
        (D(2028, 5, 19), False, "expired", "R-C3", None),
        (D(2028, 5, 20), True, "paid_support", "R-C3", later),
        (D(2029, 5, 19), True, "paid_support", "R-C3", later),
        (D(2029, 5, 20), False, "expired", "R-C3", None),
    ]
    for on, covered, reason, rule, term in table:
        status = contract_status(ACCEPTED, on, renewals=iter(renewals))
        assert (status.covered, status.reason, status.rule) == (covered, reason, rule), on
        if term == "project_term":
            assert status.term == project_term(ACCEPTED)
        else:
            assert status.term == term, on


def test_R_C3_without_renewals_after_the_term_is_not_covered():
    status = contract_status(ACCEPTED, D(2030, 1, 1))
    assert (status.covered, status.term, status.reason) == (False, None, "expired")


def test_R_C3_renewal_length_is_a_setting():
    assert renewal_term(D(2027, 3, 10), months=6).end_on == D(2027, 9, 10)


@pytest.mark.parametrize(
    "make",
    [
        lambda: Term(D(2026, 3, 11), D(2026, 3, 10), "paid_support"),
        lambda: Term(D(2026, 3, 11), D(2027, 3, 10), "gift"),
        lambda: Term(datetime(2026, 3, 11), D(2027, 3, 10), "paid_support"),
        lambda: project_term("2026-03-10"),
        lambda: contract_status(ACCEPTED, D(2028, 1, 1), renewals=[project_term(ACCEPTED)]),
        lambda: contract_status(ACCEPTED, D(2028, 1, 1), renewals=["2027"]),
    ],
)
def test_inconsistent_terms_are_refused(make):
    with pytest.raises(ContractError):
        make()


def test_term_length_below_one_month_is_a_policy_error():
    with pytest.raises(PolicyError):
        project_term(ACCEPTED, 0)
