"""The office calendar: office hours, working days, China's holidays (R-I7, D-7, R-A2)."""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from warranty import (
    DEFAULT_POLICY,
    CalendarDataMissing,
    FactError,
    NaiveDatetimeError,
    OfficeCalendar,
    WarrantyError,
    chinese_calendar_lookup,
)

# No example database: these tests must not write files into the checkout.
SETTINGS = settings(database=None, deadline=None, max_examples=150)

CN = ZoneInfo("Asia/Shanghai")
H = timedelta(hours=1)
CAL = OfficeCalendar()


def cn(*args):
    """An instant given in China time."""
    return datetime(*args, tzinfo=CN)


def utc(*args):
    return datetime(*args, tzinfo=UTC)


# -- the package lookup ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "working"),
    [
        (date(2026, 9, 30), True),  # Wednesday before National Day
        (date(2026, 10, 1), False),  # National Day
        (date(2026, 10, 7), False),  # last day of the Golden Week
        (date(2026, 10, 8), True),  # Thursday after it
        (date(2026, 9, 20), True),  # Sunday, make-up working day (调休)
        (date(2026, 10, 10), True),  # Saturday, make-up working day (调休)
        (date(2026, 10, 11), False),  # plain Sunday
        (date(2026, 9, 25), False),  # Mid-Autumn Festival (Friday)
        (date(2027, 1, 4), None),  # no data for 2027
        (date(2003, 6, 2), None),  # no data before 2004
    ],
)
def test_r_i7_chinese_calendar_lookup(day, working):
    assert chinese_calendar_lookup(day) is working


def test_r_i7_lookup_refuses_a_datetime():
    with pytest.raises(FactError):
        chinese_calendar_lookup(datetime(2026, 10, 1, tzinfo=UTC))


# -- working days ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "working", "source"),
    [
        (date(2026, 10, 1), False, "package"),
        (date(2026, 10, 10), True, "package"),  # make-up Saturday
        (date(2026, 9, 20), True, "package"),  # make-up Sunday
        (date(2026, 10, 12), True, "package"),
        (date(2027, 1, 1), True, "fallback"),  # a Friday; no data: weekdays count
        (date(2027, 1, 2), False, "fallback"),  # Saturday
        (date(2027, 2, 8), True, "fallback"),  # would be Spring Festival: no data, no guess
    ],
)
def test_r_i7_is_working_day_and_its_source(day, working, source):
    assert CAL.is_working_day(day) is working
    assert CAL.day_source(day) == source


def test_r_i7_admin_override_wins_over_the_package_both_ways():
    cal = OfficeCalendar(
        overrides={
            date(2026, 10, 1): True,  # a holiday made a working day
            date(2026, 10, 12): False,  # a Monday made a day off
            date(2026, 10, 10): False,  # a make-up Saturday cancelled
            date(2027, 1, 1): False,  # New Year 2027, no package data
        }
    )
    assert cal.is_working_day(date(2026, 10, 1)) is True
    assert cal.is_working_day(date(2026, 10, 12)) is False
    assert cal.is_working_day(date(2026, 10, 10)) is False
    assert cal.is_working_day(date(2027, 1, 1)) is False
    assert cal.day_source(date(2026, 10, 1)) == "table"
    assert cal.day_source(date(2026, 10, 2)) == "package"
    # the override moves office hours too
    assert cal.is_office_time(cn(2026, 10, 1, 10))
    assert not cal.is_office_time(cn(2026, 10, 12, 10))


def test_r_i7_missing_between_names_years_without_data():
    assert CAL.missing_between(date(2026, 1, 1), date(2026, 12, 31)) is None
    missing = CAL.missing_between(date(2026, 12, 31), date(2027, 1, 1))
    assert missing == CalendarDataMissing((2027,))
    assert missing.message() == ("no holiday data for 2027: counted Monday-Friday as working days")
    assert CAL.missing_between(date(2026, 6, 1), date(2028, 6, 1)).years == (2027, 2028)
    assert CAL.missing_between(date(2003, 1, 1), date(2004, 1, 1)).years == (2003,)


def test_r_i7_covered_years_make_a_year_have_data():
    cal = OfficeCalendar(covered_years={2027}, overrides={date(2027, 2, 8): False})
    assert cal.has_data(2027)
    assert not CAL.has_data(2027)
    assert cal.missing_between(date(2026, 12, 31), date(2027, 1, 1)) is None
    assert cal.missing_between(date(2026, 12, 31), date(2028, 1, 1)).years == (2028,)
    # the declared table decides: its holidays, weekdays otherwise
    assert cal.is_working_day(date(2027, 2, 8)) is False
    assert cal.is_working_day(date(2027, 2, 9)) is True
    assert cal.day_source(date(2027, 2, 9)) == "table"


def test_r_i7_calendar_data_missing_normalises_and_refuses_nothing():
    assert CalendarDataMissing((2028, 2027, 2028)).years == (2027, 2028)
    assert "2027, 2028" in CalendarDataMissing((2027, 2028)).message()
    with pytest.raises(FactError):
        CalendarDataMissing(())


@pytest.mark.parametrize(
    ("day", "n", "expected"),
    [
        (date(2026, 9, 30), 0, date(2026, 9, 30)),
        (date(2026, 10, 3), 0, date(2026, 10, 3)),  # n=0 is the day itself
        (date(2026, 9, 30), 1, date(2026, 10, 8)),  # across National Day
        (date(2026, 9, 30), 2, date(2026, 10, 9)),
        (date(2026, 9, 30), 3, date(2026, 10, 10)),  # the make-up Saturday counts
        (date(2026, 9, 30), 4, date(2026, 10, 12)),
        (date(2026, 9, 18), 1, date(2026, 9, 20)),  # make-up Sunday after a Friday
        (date(2026, 10, 2), 2, date(2026, 10, 9)),  # from a holiday (R-A2: 2 working days)
        (date(2026, 12, 31), 1, date(2027, 1, 1)),  # into 2027: weekdays fallback
        (date(2027, 1, 1), 1, date(2027, 1, 4)),
    ],
)
def test_r_a2_add_working_days(day, n, expected):
    assert CAL.add_working_days(day, n) == expected


@pytest.mark.parametrize("n", [-1, 1.5, True, "2"])
def test_r_a2_add_working_days_refuses_a_bad_count(n):
    with pytest.raises(FactError):
        CAL.add_working_days(date(2026, 9, 30), n)


# -- office hours ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("instant", "inside"),
    [
        (cn(2026, 9, 30, 9, 0), True),  # opening is inside
        (cn(2026, 9, 30, 8, 59, 59), False),
        (cn(2026, 9, 30, 17, 59, 59), True),
        (cn(2026, 9, 30, 18, 0), False),  # closing is outside: [09:00, 18:00)
        (cn(2026, 10, 1, 10, 0), False),  # National Day
        (cn(2026, 10, 10, 10, 0), True),  # make-up Saturday
        (cn(2026, 10, 11, 10, 0), False),  # Sunday
        (utc(2026, 9, 30, 1, 0), True),  # 09:00 China time given in UTC
        (utc(2026, 9, 30, 0, 59), False),
        (cn(2027, 1, 1, 10, 0), True),  # fallback: a Friday counts
    ],
)
def test_r_i7_is_office_time(instant, inside):
    assert CAL.is_office_time(instant) is inside


@pytest.mark.parametrize(
    ("start", "hours", "due_cn"),
    [
        # the 2026 National Day week and its make-up days
        (cn(2026, 9, 30, 17, 0), 1, cn(2026, 9, 30, 18, 0)),  # uses up the day: 18:00
        (cn(2026, 9, 30, 17, 0), 4, cn(2026, 10, 8, 12, 0)),  # 1 h + 3 h after the week
        (cn(2026, 9, 30, 17, 0), 19, cn(2026, 10, 9, 18, 0)),
        (cn(2026, 9, 30, 17, 0), 22, cn(2026, 10, 10, 12, 0)),  # make-up Saturday
        (cn(2026, 9, 30, 17, 0), 24, cn(2026, 10, 10, 14, 0)),
        (cn(2026, 9, 30, 17, 0), 28, cn(2026, 10, 10, 18, 0)),
        (cn(2026, 9, 30, 17, 0), 29, cn(2026, 10, 12, 10, 0)),  # Sunday skipped
        (cn(2026, 9, 19, 10, 0), 2, cn(2026, 9, 20, 11, 0)),  # Saturday off, Sunday make-up
        # a start outside hours counts from the next opening
        (cn(2026, 9, 29, 7, 30), 2, cn(2026, 9, 29, 11, 0)),  # before opening
        (cn(2026, 9, 29, 20, 0), 2, cn(2026, 9, 30, 11, 0)),  # after closing
        (cn(2026, 9, 29, 18, 0), 1, cn(2026, 9, 30, 10, 0)),  # exactly at closing
        (cn(2026, 10, 17, 12, 0), 8, cn(2026, 10, 19, 17, 0)),  # Saturday start
        # a start on a holiday
        (cn(2026, 10, 3, 15, 0), 4, cn(2026, 10, 8, 13, 0)),
        (cn(2026, 10, 1, 0, 0), 0.5, cn(2026, 10, 8, 9, 30)),
        # hours = 0: the next office instant (the start itself inside hours)
        (cn(2026, 9, 30, 10, 15), 0, cn(2026, 9, 30, 10, 15)),
        (cn(2026, 9, 30, 18, 0), 0, cn(2026, 10, 8, 9, 0)),
        (cn(2026, 10, 5, 11, 0), 0, cn(2026, 10, 8, 9, 0)),
        # New Year's Eve into 2027 (no data: Monday-Friday)
        (cn(2026, 12, 31, 17, 0), 2, cn(2027, 1, 1, 10, 0)),
        (cn(2026, 12, 31, 17, 0), 11, cn(2027, 1, 4, 10, 0)),
        # a timedelta duration
        (cn(2026, 9, 30, 17, 30), timedelta(minutes=45), cn(2026, 10, 8, 9, 15)),
    ],
)
def test_r_i7_add_office_hours(start, hours, due_cn):
    due = CAL.add_office_hours(start, hours)
    assert due == due_cn
    assert due.utcoffset() == timedelta(0)  # UTC out
    assert due.tzinfo is UTC


def test_r_i7_new_years_eve_into_a_year_without_data_is_reported():
    start = cn(2026, 12, 31, 17, 0)
    due = CAL.add_office_hours(start, 2)
    missing = CAL.missing_between(start.date(), due.astimezone(CN).date())
    assert missing == CalendarDataMissing((2027,))
    # the admin declaring 2027 complete (with its holiday) changes the answer and the report
    cal = OfficeCalendar(overrides={date(2027, 1, 1): False}, covered_years=frozenset({2027}))
    due = cal.add_office_hours(start, 2)
    assert due == cn(2027, 1, 4, 10, 0)
    assert cal.missing_between(start.date(), due.astimezone(CN).date()) is None


def test_r_i7_office_hours_follow_the_policy():
    policy = DEFAULT_POLICY.with_overrides(office_day_start="08:30", office_day_end="17:30")
    cal = OfficeCalendar(policy=policy)
    assert cal.add_office_hours(cn(2026, 9, 29, 17, 0), 1) == cn(2026, 9, 30, 9, 0)
    assert cal.is_office_time(cn(2026, 9, 29, 8, 30))


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (cn(2026, 9, 30, 8, 0), cn(2026, 9, 30, 20, 0), 9 * H),
        (cn(2026, 9, 30, 17, 0), cn(2026, 10, 8, 12, 0), 4 * H),
        (cn(2026, 9, 30, 17, 0), cn(2026, 10, 10, 12, 0), 22 * H),
        (cn(2026, 10, 1, 0, 0), cn(2026, 10, 7, 23, 59), timedelta(0)),  # Golden Week
        (cn(2026, 9, 30, 12, 0), cn(2026, 9, 30, 12, 0), timedelta(0)),
        (cn(2026, 9, 30, 12, 0), cn(2026, 9, 30, 11, 0), timedelta(0)),  # b before a
        (cn(2026, 12, 31, 17, 0), cn(2027, 1, 4, 10, 0), 11 * H),
        (utc(2026, 9, 30, 1, 0), utc(2026, 9, 30, 1, 30), timedelta(minutes=30)),
    ],
)
def test_r_i7_office_time_between(a, b, expected):
    assert CAL.office_time_between(a, b) == expected


@pytest.mark.parametrize(
    "call",
    [
        lambda: CAL.is_office_time(datetime(2026, 9, 30, 10)),
        lambda: CAL.add_office_hours(datetime(2026, 9, 30, 10), 1),
        lambda: CAL.office_time_between(datetime(2026, 9, 30, 10), cn(2026, 9, 30, 11)),
        lambda: CAL.office_time_between(cn(2026, 9, 30, 11), datetime(2026, 9, 30, 10)),
    ],
)
def test_r_i7_naive_datetimes_are_refused(call):
    with pytest.raises(NaiveDatetimeError):
        call()


@pytest.mark.parametrize(
    "call",
    [
        lambda: CAL.add_office_hours(cn(2026, 9, 30, 10), -1),
        lambda: CAL.add_office_hours(cn(2026, 9, 30, 10), float("nan")),
        lambda: CAL.add_office_hours(cn(2026, 9, 30, 10), "2"),
        lambda: CAL.add_office_hours(cn(2026, 9, 30, 10), True),
        lambda: CAL.add_office_hours(cn(2026, 9, 30, 10), -H),
        lambda: CAL.is_working_day(datetime(2026, 9, 30, tzinfo=UTC)),
        lambda: CAL.missing_between(date(2027, 1, 1), date(2026, 1, 1)),
        lambda: CAL.has_data("2026"),
        lambda: OfficeCalendar(overrides={date(2026, 10, 1): "yes"}),
        lambda: OfficeCalendar(overrides={"2026-10-01": True}),
        lambda: OfficeCalendar(covered_years={"2027"}),
    ],
)
def test_r_i7_bad_arguments_raise_fact_error(call):
    with pytest.raises(FactError) as info:
        call()
    assert isinstance(info.value, WarrantyError)


def test_r_i7_calendar_is_frozen_and_hashable():
    cal = OfficeCalendar(overrides={date(2026, 10, 1): True}, covered_years={2027})
    assert cal == OfficeCalendar(overrides={date(2026, 10, 1): True}, covered_years={2027})
    hash(cal)
    with pytest.raises(TypeError):
        cal.overrides[date(2026, 10, 2)] = True  # the table is read-only


# -- properties -----------------------------------------------------------------------

# 2025..2027 covers package data, make-up days and the weekday fallback.
INSTANTS = st.datetimes(
    min_value=datetime(2025, 12, 1),
    max_value=datetime(2027, 2, 1),
    timezones=st.just(CN),
).map(lambda d: d.replace(microsecond=0))
HOURS = st.integers(min_value=0, max_value=24 * 60).map(lambda m: timedelta(minutes=m))


def _at_closing(instant):
    local = instant.astimezone(CN)
    return local.time() == time(18) and CAL.is_working_day(local.date())


@SETTINGS
@given(INSTANTS, HOURS)
def test_r_i7_property_result_is_office_time_or_a_closing_boundary(start, hours):
    due = CAL.add_office_hours(start, hours)
    assert due >= start
    assert CAL.is_office_time(due) or (hours > timedelta(0) and _at_closing(due))
    if hours == timedelta(0):
        assert CAL.is_office_time(due)


@SETTINGS
@given(INSTANTS, HOURS)
def test_r_i7_property_office_time_between_inverts_add_office_hours(start, hours):
    due = CAL.add_office_hours(start, hours)
    assert CAL.office_time_between(start, due) == hours
    if CAL.is_office_time(start):
        assert CAL.add_office_hours(start, 0) == start


@SETTINGS
@given(INSTANTS, HOURS, HOURS)
def test_r_i7_property_add_office_hours_is_monotonic(start, h1, h2):
    low, high = sorted((h1, h2))
    assert CAL.add_office_hours(start, low) <= CAL.add_office_hours(start, high)
    assume(low < high)
    assert CAL.add_office_hours(start, low) < CAL.add_office_hours(start, high)


@SETTINGS
@given(
    st.dates(min_value=date(2025, 12, 1), max_value=date(2027, 2, 1)),
    st.integers(min_value=1, max_value=40),
)
def test_r_a2_property_add_working_days_lands_on_a_working_day(day, n):
    result = CAL.add_working_days(day, n)
    assert result > day
    assert CAL.is_working_day(result)
    between = [day + timedelta(days=i) for i in range(1, (result - day).days + 1)]
    assert sum(CAL.is_working_day(d) for d in between) == n
