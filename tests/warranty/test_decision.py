"""Free or paid (R-W3, R-W4, R-W5, D-4), judged on the report date in China time."""

from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from warranty import (
    DEFAULT_POLICY,
    Cause,
    Outcome,
    UnitFacts,
    UnknownCauseError,
    WarrantyError,
    coverage,
    decide,
    report_date,
)

# A 3-year token shipped 2024-01-10: last covered day 2027-01-09.
TOKEN = UnitFacts("TK0001", 36, "ship", date(2024, 1, 10))
IN = coverage(TOKEN, date(2026, 6, 1))
LAST_DAY = coverage(TOKEN, date(2027, 1, 9))
OUT = coverage(TOKEN, date(2027, 1, 10))
BEFORE = coverage(TOKEN, date(2024, 1, 9))
NEVER_SHIPPED = coverage(UnitFacts("TK0002", 36, "ship", None), date(2026, 6, 1))
MISUSE = [c for c in Cause if c.is_misuse]


@pytest.mark.parametrize("cov", [IN, LAST_DAY])
def test_R_W3_quality_defect_in_warranty_is_free(cov):
    d = decide(Cause.QUALITY_DEFECT, cov)
    assert (d.outcome, d.rule, d.reason) == (Outcome.FREE, "R-W3", "quality_defect_in_warranty")
    assert cov.on.isoformat() in d.explanation
    assert "2027-01-09" in d.explanation


@pytest.mark.parametrize("cov", [IN, LAST_DAY, OUT, BEFORE, NEVER_SHIPPED])
@pytest.mark.parametrize("cause", MISUSE)
def test_R_W4_misuse_paid_in_and_out_of_warranty(cause, cov):
    d = decide(cause, cov)
    assert (d.outcome, d.rule, d.reason) == (Outcome.PAID, "R-W4", "misuse")
    assert cov.on.isoformat() in d.explanation
    assert ("in warranty" if cov.in_warranty else "out of warranty") in d.explanation


@pytest.mark.parametrize("cov", [OUT, BEFORE, NEVER_SHIPPED])
def test_R_W5_out_of_warranty_paid(cov):
    d = decide("quality_defect", cov)
    assert (d.outcome, d.rule, d.reason) == (Outcome.PAID, "R-W5", "out_of_warranty")
    assert cov.on.isoformat() in d.explanation


def test_R_W5_explanation_names_the_last_covered_day():
    d = decide(Cause.QUALITY_DEFECT, OUT)
    assert d.explanation == (
        "The unit is out of warranty, so its replacement is paid "
        "(reported on 2027-01-10; last covered day 2027-01-09)."
    )


@pytest.mark.parametrize("cov", [IN, OUT, NEVER_SHIPPED])
def test_D_4_no_fault_found_returns_unit(cov):
    d = decide("no_fault_found", cov)
    assert (d.outcome, d.rule, d.reason) == (Outcome.RETURN_UNIT, "D-4", "no_fault_found")


def test_D_4_causes_and_misuse_flag():
    assert [c.value for c in Cause] == [
        "quality_defect",
        "misuse_drop",
        "misuse_heat",
        "misuse_water",
        "misuse_physical",
        "misuse_other",
        "no_fault_found",
    ]
    assert len(MISUSE) == 5
    assert not Cause.QUALITY_DEFECT.is_misuse and not Cause.NO_FAULT_FOUND.is_misuse
    assert all(c.description for c in Cause)


@pytest.mark.parametrize("cause", ["dropped", "", "QUALITY_DEFECT", None, 3])
def test_unknown_cause_is_refused(cause):
    with pytest.raises(UnknownCauseError) as info:
        decide(cause, IN)
    assert isinstance(info.value, WarrantyError)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("reported_at", "local_date"),
    [
        (datetime(2026, 3, 10, 15, 59, 59, tzinfo=UTC), date(2026, 3, 10)),  # 23:59:59 CST
        (datetime(2026, 3, 10, 16, 0, tzinfo=UTC), date(2026, 3, 11)),  # midnight CST
        (datetime(2026, 3, 10, 17, 0, tzinfo=UTC), date(2026, 3, 11)),
        (datetime(2026, 3, 11, 0, 30, tzinfo=ZoneInfo("Asia/Shanghai")), date(2026, 3, 11)),
        (datetime(2026, 3, 10, 11, 0, tzinfo=ZoneInfo("America/New_York")), date(2026, 3, 10)),
        (datetime(2026, 3, 10, 12, 0, tzinfo=ZoneInfo("America/New_York")), date(2026, 3, 11)),
        (datetime(2026, 3, 10, 20, 0, tzinfo=timezone(timedelta(hours=-5))), date(2026, 3, 11)),
    ],
)
def test_report_date_is_china_date(reported_at, local_date):
    assert report_date(reported_at) == local_date


def test_report_date_follows_the_policy_timezone():
    utc_policy = DEFAULT_POLICY.with_overrides(timezone="UTC")
    assert report_date(datetime(2026, 3, 10, 17, 0, tzinfo=UTC), utc_policy) == date(2026, 3, 10)


def test_fault_reported_after_china_midnight_on_the_last_day_is_out():
    # last covered day 2026-03-10; reported 2026-03-10T17:00Z = 2026-03-11 01:00 in China
    unit = UnitFacts("TK0003", 12, "ship", date(2025, 3, 11))
    reported_on = report_date(datetime(2026, 3, 10, 17, 0, tzinfo=UTC))
    cov = coverage(unit, reported_on)
    assert cov.end_on == date(2026, 3, 10)
    assert not cov.in_warranty
    d = decide(Cause.QUALITY_DEFECT, cov)
    assert (d.outcome, d.rule) == (Outcome.PAID, "R-W5")
    # the same instant read as a UTC date would wrongly be in warranty
    assert coverage(unit, date(2026, 3, 10)).in_warranty


def test_judged_on_report_date_not_inspection_date():
    reported = coverage(TOKEN, date(2027, 1, 9))  # reported on the last covered day
    inspected = coverage(TOKEN, date(2027, 1, 20))  # inspected after the warranty ended
    assert decide(Cause.QUALITY_DEFECT, reported).outcome is Outcome.FREE
    assert decide(Cause.QUALITY_DEFECT, inspected).outcome is Outcome.PAID


@pytest.mark.parametrize("value", [datetime(2026, 3, 10, 17, 0), date(2026, 3, 10), "2026-03-10"])
def test_report_date_refuses_naive_or_non_datetime(value):
    with pytest.raises(WarrantyError) as info:
        report_date(value)
    assert isinstance(info.value, ValueError)
