"""Security advisories in the pure core (warranty/advisories.py): the R-A2 notice
deadline on the office calendar and the R-A3 publication rule."""

from datetime import date, datetime

import pytest

from warranty import (
    DEFAULT_POLICY,
    SEVERITY_GUIDANCE,
    CalendarDataMissing,
    FactError,
    OfficeCalendar,
    may_publish,
    notify_due_on,
    public_from_on,
)

CAL = OfficeCalendar()


@pytest.mark.parametrize(("patch", "due", "why"), [
    (date(2026, 11, 25), date(2026, 11, 27), "Wednesday: Thursday, Friday"),
    (date(2026, 11, 27), date(2026, 12, 1), "Friday: Monday, Tuesday"),
    (date(2026, 11, 28), date(2026, 12, 1), "Saturday: Monday, Tuesday"),
    (date(2026, 9, 30), date(2026, 10, 9),
     "National Day 2026: 10-01..07 off, Thursday 10-08 and Friday 10-09 count"),
    (date(2026, 10, 9), date(2026, 10, 12),
     "make-up working Saturday 10-10 counts, Sunday 10-11 does not"),
    (date(2026, 12, 31), date(2027, 1, 4),
     "into 2027 without holiday data: plain weekdays (Friday 01-01, Monday 01-04)"),
])
def test_r_a2_notice_is_due_two_working_days_after_the_patch(patch, due, why):
    assert notify_due_on(patch, CAL, DEFAULT_POLICY) == due, why


def test_r_a2_a_year_without_holiday_data_is_said_not_guessed():
    patch = date(2026, 12, 31)
    due = notify_due_on(patch, CAL, DEFAULT_POLICY)
    assert CAL.missing_between(patch, due) == CalendarDataMissing((2027,))
    assert CAL.day_source(date(2027, 1, 1)) == "fallback"
    assert CAL.missing_between(date(2026, 9, 30), date(2026, 10, 9)) is None


def test_r_a2_admin_table_and_policy_days_are_honoured():
    # The admin declares 2027-01-01 a day off: the deadline moves one working day on.
    calendar = OfficeCalendar(overrides={date(2027, 1, 1): False})
    assert notify_due_on(date(2026, 12, 31), calendar, DEFAULT_POLICY) == date(2027, 1, 5)
    three = DEFAULT_POLICY.with_overrides(advisory_notice_working_days=3)
    assert notify_due_on(date(2026, 11, 27), CAL, three) == date(2026, 12, 2)


@pytest.mark.parametrize("bad", [None, "2026-11-27", datetime(2026, 11, 27, 9)])
def test_r_a2_patch_date_must_be_a_date(bad):
    with pytest.raises(FactError):
        notify_due_on(bad, CAL, DEFAULT_POLICY)


@pytest.mark.parametrize(("notified", "public"), [
    (date(2026, 11, 26), date(2026, 12, 10)),
    (date(2026, 12, 25), date(2027, 1, 8)),  # calendar days, across the year end
    (date(2026, 9, 30), date(2026, 10, 14)),  # holidays count: calendar days
])
def test_r_a3_public_from_is_fourteen_calendar_days_after_the_first_notice(notified, public):
    assert public_from_on(notified, DEFAULT_POLICY) == public


@pytest.mark.parametrize(("vendor_found", "notified", "today", "answer"), [
    # vendor-found: customers first, then 14 days; the 14th day itself is allowed
    (True, None, date(2026, 11, 26), (False, None)),
    (True, date(2026, 11, 26), date(2026, 11, 26), (False, date(2026, 12, 10))),
    (True, date(2026, 11, 26), date(2026, 12, 9), (False, date(2026, 12, 10))),
    (True, date(2026, 11, 26), date(2026, 12, 10), (True, None)),
    (True, date(2026, 11, 26), date(2027, 3, 1), (True, None)),
    # found by others (public already): at once, notified or not
    (False, None, date(2026, 11, 26), (True, None)),
    (False, date(2026, 11, 26), date(2026, 11, 26), (True, None)),
])
def test_r_a3_may_publish(vendor_found, notified, today, answer):
    assert may_publish(vendor_found, notified, today, DEFAULT_POLICY) == answer


def test_r_a3_delay_is_a_setting():
    policy = DEFAULT_POLICY.with_overrides(public_disclosure_delay_days=0)
    assert may_publish(True, date(2026, 11, 26), date(2026, 11, 26), policy) == (True, None)
    assert public_from_on(date(2026, 11, 26), policy) == date(2026, 11, 26)


def test_r_a3_bad_dates_are_refused():
    with pytest.raises(FactError):
        may_publish(True, "2026-11-26", date(2026, 12, 1), DEFAULT_POLICY)
    with pytest.raises(FactError):
        may_publish(True, date(2026, 11, 26), None, DEFAULT_POLICY)
    with pytest.raises(FactError):
        public_from_on(None, DEFAULT_POLICY)


def test_r_a1_every_severity_has_guidance():
    assert set(SEVERITY_GUIDANCE) == {"high", "medium", "low"}
    for severity, text in SEVERITY_GUIDANCE.items():
        assert text.lower().startswith(severity) and len(text) > 40
