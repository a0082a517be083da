"""Coverage of a unit on a date (SPEC "Warranty", R-W1, R-W2)."""

from datetime import date, datetime

import pytest

from warranty import (
    DEFAULT_POLICY,
    Basis,
    BasisUsed,
    FactError,
    PolicyError,
    UnitFacts,
    WarrantyError,
    chain_serials,
    chain_units,
    coverage,
)

D = date
SHIPPED = D(2024, 1, 10)


def unit(serial="T1", life=36, basis="ship", shipped=SHIPPED, **kw):
    return UnitFacts(serial, life, basis, shipped, **kw)


@pytest.mark.parametrize(
    ("shipped", "on", "end", "in_warranty"),
    [
        (D(2024, 1, 10), D(2024, 1, 10), D(2027, 1, 9), True),  # first day
        (D(2024, 1, 10), D(2027, 1, 9), D(2027, 1, 9), True),  # last covered day
        (D(2024, 1, 10), D(2027, 1, 10), D(2027, 1, 9), False),  # day after
        (D(2024, 2, 29), D(2027, 2, 28), D(2027, 2, 28), True),
        (D(2024, 2, 29), D(2027, 3, 1), D(2027, 2, 28), False),
    ],
)
def test_R_W2_hardware_life_3_year_token(shipped, on, end, in_warranty):
    cov = coverage(unit(life=36, shipped=shipped), on)
    assert (cov.start_on, cov.end_on, cov.in_warranty) == (shipped, end, in_warranty)
    assert cov.basis_used == "ship"


@pytest.mark.parametrize(
    ("on", "in_warranty"),
    [(D(2026, 3, 11), True), (D(2027, 3, 10), True), (D(2027, 3, 11), False)],
)
def test_R_W1_software_12_months(on, in_warranty):
    software = unit(life=DEFAULT_POLICY.software_life_months, shipped=D(2026, 3, 11))
    cov = coverage(software, on)
    assert cov.end_on == D(2027, 3, 10)
    assert cov.in_warranty is in_warranty


SHIP, ACT, ACC = D(2024, 1, 10), D(2024, 3, 5), D(2024, 2, 1)


@pytest.mark.parametrize(
    ("basis", "shipped", "activated", "accepted", "start", "used", "note"),
    [
        ("ship", SHIP, ACT, ACC, SHIP, "ship", "ship date used"),
        ("activation", SHIP, ACT, ACC, ACT, "activation", "activation date used"),
        (
            "acceptance",
            SHIP,
            ACT,
            ACC,
            D(2024, 2, 2),
            "acceptance",
            "day after acceptance (2024-02-01) used",
        ),
        ("activation", SHIP, None, ACC, SHIP, "ship_fallback", "activation date unknown"),
        ("acceptance", SHIP, ACT, None, SHIP, "ship_fallback", "acceptance date unknown"),
        ("ship", None, ACT, ACC, None, "not_shipped", "not shipped"),
        ("activation", None, None, None, None, "not_shipped", "no warranty yet"),
        ("acceptance", None, None, None, None, "not_shipped", "no warranty yet"),
        # a date the model chose is usable even before the ship date is recorded
        ("activation", None, ACT, None, ACT, "activation", "activation date used"),
    ],
)
def test_start_basis_table(basis, shipped, activated, accepted, start, used, note):
    u = unit(basis=basis, shipped=shipped, activated_on=activated, acceptance_on=accepted, life=12)
    cov = coverage(u, D(2024, 6, 1))
    assert cov.start_on == start
    assert cov.basis_used == used
    assert cov.basis_requested == Basis(basis)
    assert note in cov.note
    if start is None:
        assert (cov.end_on, cov.in_warranty, cov.days_left) == (None, False, 0)
    else:
        assert cov.in_warranty


@pytest.mark.parametrize(
    ("on", "days_left", "in_warranty"),
    [
        (D(2026, 3, 9), 0, False),  # before the start: not in warranty
        (D(2026, 3, 10), 365, True),  # first day: every covered day left
        (D(2027, 3, 8), 2, True),
        (D(2027, 3, 9), 1, True),  # last covered day
        (D(2027, 3, 10), 0, False),
        (D(2030, 1, 1), 0, False),
    ],
)
def test_days_left_edges(on, days_left, in_warranty):
    cov = coverage(unit(life=12, shipped=D(2026, 3, 10)), on)
    assert cov.end_on == D(2027, 3, 9)
    assert (cov.days_left, cov.in_warranty, cov.on) == (days_left, in_warranty, on)


# A 3-deep chain: A1 (36 months from 2024-01-10, last covered day 2027-01-09)
# replaced by B2, which was replaced by C3.
A1 = UnitFacts("A1", 36, Basis.SHIP, D(2024, 1, 10))


def chain(b_shipped, c_shipped, life=36):
    b2 = UnitFacts("B2", life, Basis.SHIP, b_shipped, replaces=A1)
    return UnitFacts("C3", life, Basis.SHIP, c_shipped, replaces=b2)


@pytest.mark.parametrize(
    ("policy", "b_shipped", "c_shipped", "end", "used"),
    [
        # inherit: the original's last covered day travels down the chain
        ("inherit", D(2025, 6, 1), D(2026, 2, 1), D(2027, 1, 9), "replacement_inherit"),
        ("inherit", D(2026, 12, 1), D(2027, 1, 5), D(2027, 1, 9), "replacement_inherit"),
        # fresh: the full life from C3's own ship date
        ("fresh", D(2025, 6, 1), D(2026, 2, 1), D(2029, 1, 31), "replacement_fresh"),
        # inherit_min_days, the original's day is later
        (
            "inherit_min_days",
            D(2025, 6, 1),
            D(2026, 2, 1),
            D(2027, 1, 9),
            "replacement_inherit_min_days",
        ),
        # inherit_min_days, ship + 90 days is later: B2 ends 2027-03-01, C3 2027-04-05
        (
            "inherit_min_days",
            D(2026, 12, 1),
            D(2027, 1, 5),
            D(2027, 4, 5),
            "replacement_inherit_min_days",
        ),
        # inherit_min_days, B2 inherits A1's day but C3's own floor is later
        (
            "inherit_min_days",
            D(2025, 6, 1),
            D(2026, 12, 1),
            D(2027, 3, 1),
            "replacement_inherit_min_days",
        ),
    ],
)
def test_replacement_policies_over_a_3_deep_chain(policy, b_shipped, c_shipped, end, used):
    p = DEFAULT_POLICY.with_overrides(replacement_policy=policy)
    cov = coverage(chain(b_shipped, c_shipped), c_shipped, p)
    assert cov.chain == ("A1", "B2", "C3")
    assert cov.serial == "C3"
    assert cov.start_on == c_shipped
    assert (cov.end_on, cov.basis_used) == (end, used)
    assert "replaces B2" in cov.note


def test_inherit_min_days_is_the_default_and_floor_is_ship_plus_min_days():
    c3 = chain(D(2026, 12, 1), D(2027, 1, 5))
    cov = coverage(c3, D(2027, 4, 5))
    assert cov.basis_used == BasisUsed.REPLACEMENT_INHERIT_MIN_DAYS
    assert cov.end_on == D(2027, 4, 5) and cov.days_left == 1
    longer = DEFAULT_POLICY.with_overrides(replacement_min_days=180)
    assert coverage(c3, D(2027, 4, 5), longer).end_on == D(2027, 7, 4)


def test_replacement_ignores_its_own_basis_and_starts_on_its_ship_date():
    b2 = UnitFacts("B2", 36, "activation", D(2025, 6, 1), activated_on=D(2025, 7, 1), replaces=A1)
    fresh = DEFAULT_POLICY.with_overrides(replacement_policy="fresh")
    cov = coverage(b2, D(2025, 6, 1), fresh)
    assert cov.start_on == D(2025, 6, 1)
    assert cov.end_on == D(2028, 5, 31)


def test_inherit_after_the_original_expired_is_never_in_warranty():
    inherit = DEFAULT_POLICY.with_overrides(replacement_policy="inherit")
    late = UnitFacts("B2", 36, "ship", D(2027, 6, 1), replaces=A1)
    cov = coverage(late, D(2027, 6, 1), inherit)
    assert cov.end_on == D(2027, 1, 9) < cov.start_on
    assert (cov.in_warranty, cov.days_left) == (False, 0)


def test_replacement_not_shipped_has_no_warranty_yet():
    b2 = UnitFacts("B2", 36, "ship", None, replaces=A1)
    cov = coverage(b2, D(2025, 1, 1))
    assert (cov.start_on, cov.end_on, cov.in_warranty) == (None, None, False)
    assert cov.basis_used == "not_shipped"
    assert cov.chain == ("A1", "B2")


def test_replacement_of_a_unit_without_dates():
    ghost = UnitFacts("G0", 36, "ship", None)
    b2 = UnitFacts("B2", 36, "ship", D(2025, 1, 1), replaces=ghost)
    assert coverage(b2, D(2025, 1, 1)).end_on == D(2025, 4, 1)  # ship + 90 days
    inherit = DEFAULT_POLICY.with_overrides(replacement_policy="inherit")
    cov = coverage(b2, D(2025, 1, 1), inherit)
    assert (cov.end_on, cov.in_warranty) == (None, False)
    assert "unknown" in cov.note


def test_chain_helpers():
    c3 = chain(D(2025, 6, 1), D(2026, 2, 1))
    assert chain_serials(c3) == ("A1", "B2", "C3")
    assert [u.serial for u in chain_units(c3)] == ["A1", "B2", "C3"]
    assert chain_serials(A1) == ("A1",)


def test_a_looping_chain_is_refused():
    a = UnitFacts("A", 12, "ship", D(2024, 1, 1))
    b = UnitFacts("B", 12, "ship", D(2024, 2, 1), replaces=a)
    object.__setattr__(a, "replaces", b)  # only possible by forcing the frozen class
    with pytest.raises(FactError, match="loops"):
        coverage(b, D(2024, 3, 1))


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"basis": "invoice"}, PolicyError),
        ({"life": 0}, PolicyError),
        ({"life": 2.5}, PolicyError),
        ({"shipped": datetime(2024, 1, 1, 8)}, FactError),
        ({"shipped": "2024-01-01"}, FactError),
        ({"activated_on": datetime(2024, 1, 1)}, FactError),
        ({"replaces": "A1"}, FactError),
    ],
)
def test_unusable_unit_facts_are_refused(kwargs, error):
    with pytest.raises(error) as info:
        unit(**kwargs)
    assert isinstance(info.value, WarrantyError)


def test_coverage_needs_a_date_not_a_datetime():
    with pytest.raises(FactError):
        coverage(A1, datetime(2025, 1, 1, 12))
