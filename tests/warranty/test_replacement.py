"""The 72-hour replacement clock (R-R3), the unit return deadline (D-2), monthly figures."""

from datetime import UTC, date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from warranty import (
    DEFAULT_POLICY,
    ClockRecord,
    ClockState,
    FactError,
    MonthFigures,
    NaiveDatetimeError,
    Policy,
    PolicyError,
    clock_state,
    hours_between,
    is_unit_overdue,
    monthly_figures,
    replacement_due,
    unit_return_deadline,
)

# No example database: these tests must not write files into the checkout.
SETTINGS = settings(database=None, deadline=None)

SHANGHAI = ZoneInfo("Asia/Shanghai")
NEW_YORK = ZoneInfo("America/New_York")
H = timedelta(hours=1)
SECOND = timedelta(seconds=1)


def utc(*args):
    return datetime(*args, tzinfo=UTC)


# -- replacement_due ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("started_at", "due_at"),
    [
        # China time has no daylight saving: 72 h is three days at the same hour
        (datetime(2026, 3, 10, 8, 0, tzinfo=SHANGHAI), utc(2026, 3, 13, 0, 0)),
        (utc(2026, 1, 30, 12, 0), utc(2026, 2, 2, 12, 0)),  # month end
        (utc(2027, 2, 27, 10, 0), utc(2027, 3, 2, 10, 0)),  # February, common year
        (utc(2028, 2, 27, 10, 0), utc(2028, 3, 1, 10, 0)),  # February, leap year
        (utc(2026, 12, 30, 20, 0), utc(2027, 1, 2, 20, 0)),  # year end
        (datetime(2026, 12, 31, 23, 30, tzinfo=SHANGHAI), utc(2027, 1, 3, 15, 30)),
    ],
)
def test_R_R3_due_is_72_calendar_hours_later(started_at, due_at):
    due = replacement_due(started_at)
    assert due == due_at
    assert due.utcoffset() == timedelta(0)  # returned in UTC, as stored
    assert due.astimezone(SHANGHAI).time() == started_at.astimezone(SHANGHAI).time()


def test_R_R3_due_counts_elapsed_hours_across_a_daylight_saving_change():
    started_at = datetime(2026, 3, 7, 12, 0, tzinfo=NEW_YORK)  # EST; EDT from 03-08
    due = replacement_due(started_at)
    assert due - started_at == 72 * H
    assert due == utc(2026, 3, 10, 17, 0)
    assert due.astimezone(NEW_YORK).hour == 13  # not the wall-clock 12:00


def test_R_R3_due_follows_the_policy_target():
    policy = DEFAULT_POLICY.with_overrides(replacement_target_hours=48)
    assert replacement_due(utc(2026, 5, 1, 9), policy) == utc(2026, 5, 3, 9)


def test_D_7_office_hours_replacement_target_is_refused():
    policy = DEFAULT_POLICY.with_overrides(target_clock={"replacement": "office"})
    with pytest.raises(PolicyError, match="calendar"):
        replacement_due(utc(2026, 5, 1, 9), policy)


# -- clock_state ----------------------------------------------------------------------

DUE = utc(2026, 6, 10, 12, 0)
LONG_AFTER = DUE + 1000 * H


@pytest.mark.parametrize(
    ("now", "delivered_at", "expected"),
    [
        (DUE - 72 * H, None, ClockState.ON_TRACK),
        (DUE - 24 * H - SECOND, None, ClockState.ON_TRACK),
        (DUE - 24 * H, None, ClockState.ON_TRACK),  # exactly 24 h left: still on track
        (DUE - 24 * H + SECOND, None, ClockState.AT_RISK),  # less than 24 h left
        (DUE - SECOND, None, ClockState.AT_RISK),
        (DUE, None, ClockState.AT_RISK),  # exactly at due: not breached yet
        (DUE + timedelta(microseconds=1), None, ClockState.BREACHED),
        (DUE + SECOND, None, ClockState.BREACHED),
        (LONG_AFTER, None, ClockState.BREACHED),
        (LONG_AFTER, DUE - 50 * H, ClockState.MET),
        (LONG_AFTER, DUE, ClockState.MET),  # delivered at due: met
        (LONG_AFTER, DUE + SECOND, ClockState.MISSED),  # one second later: missed
        (DUE - 60 * H, DUE + SECOND, ClockState.MISSED),  # delivery decides, not now
    ],
)
def test_R_R3_clock_state_boundaries(now, delivered_at, expected):
    assert clock_state(DUE, now, delivered_at) is expected


def test_R_R3_clock_state_compares_instants_across_zones():
    assert clock_state(DUE, DUE.astimezone(SHANGHAI)) is ClockState.AT_RISK
    delivered = (DUE + SECOND).astimezone(timezone(timedelta(hours=-5)))
    assert clock_state(DUE.astimezone(SHANGHAI), DUE, delivered) is ClockState.MISSED


def test_R_R3_at_risk_threshold_follows_the_policy():
    policy = DEFAULT_POLICY.with_overrides(replacement_at_risk_hours=6)
    assert clock_state(DUE, DUE - 7 * H, policy=policy) is ClockState.ON_TRACK
    assert clock_state(DUE, DUE - 6 * H, policy=policy) is ClockState.ON_TRACK
    assert clock_state(DUE, DUE - 5 * H, policy=policy) is ClockState.AT_RISK
    assert clock_state(DUE, DUE - 7 * H) is ClockState.AT_RISK  # default 24


def test_R_R3_open_states():
    assert {s for s in ClockState if s.is_open} == {
        ClockState.ON_TRACK,
        ClockState.AT_RISK,
        ClockState.BREACHED,
    }


def test_R_R3_policy_at_risk_hours_default_and_validation():
    assert DEFAULT_POLICY.replacement_at_risk_hours == 24
    for bad in (0, -1, 1.5, True, "24", None):
        with pytest.raises(PolicyError, match="replacement_at_risk_hours"):
            Policy(replacement_at_risk_hours=bad)
    assert Policy(replacement_at_risk_hours=1).replacement_at_risk_hours == 1


NAIVE = datetime(2026, 6, 10, 12, 0)


@pytest.mark.parametrize(
    "call",
    [
        lambda: replacement_due(NAIVE),
        lambda: clock_state(NAIVE, DUE),
        lambda: clock_state(DUE, NAIVE),
        lambda: clock_state(DUE, DUE, NAIVE),
        lambda: clock_state(DUE, DUE, date(2026, 6, 10)),
        lambda: hours_between(NAIVE, DUE),
        lambda: hours_between(DUE, NAIVE),
        lambda: ClockRecord(NAIVE, DUE),
        lambda: ClockRecord(DUE, NAIVE),
        lambda: ClockRecord(DUE, DUE, NAIVE),
        lambda: monthly_figures([], NAIVE),
    ],
)
def test_naive_datetimes_are_refused(call):
    with pytest.raises(NaiveDatetimeError):
        call()


# -- hours_between --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("delta", "hours"),
    [
        (timedelta(0), 0.0),
        (timedelta(minutes=90), 1.5),
        (timedelta(minutes=15), 0.3),  # 0.25 rounds half up
        (timedelta(minutes=3), 0.1),  # 0.05 rounds half up
        (timedelta(minutes=2, seconds=59), 0.0),
        (72 * H, 72.0),
        (72 * H + SECOND, 72.0),
        (timedelta(hours=100, minutes=57), 101.0),
        (-timedelta(minutes=90), -1.5),
        (-timedelta(minutes=15), -0.3),  # half away from zero
    ],
)
def test_hours_between_one_decimal(delta, hours):
    start = utc(2026, 6, 1, 8)
    assert hours_between(start, start + delta) == hours
    assert hours_between(start.astimezone(SHANGHAI), start + delta) == hours


# -- D-2 unit return ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shipped_on", "deadline"),
    [
        (date(2026, 3, 1), date(2026, 3, 15)),
        (date(2026, 2, 20), date(2026, 3, 6)),
        (date(2026, 12, 25), date(2027, 1, 8)),
        (date(2028, 2, 20), date(2028, 3, 5)),  # leap year
    ],
)
def test_D_2_unit_return_deadline_is_14_days(shipped_on, deadline):
    assert unit_return_deadline(shipped_on) == deadline


def test_D_2_unit_return_deadline_follows_the_policy_and_refuses_datetimes():
    policy = DEFAULT_POLICY.with_overrides(advance_return_days=7)
    assert unit_return_deadline(date(2026, 3, 1), policy) == date(2026, 3, 8)
    with pytest.raises(FactError):
        unit_return_deadline(utc(2026, 3, 1))
    with pytest.raises(FactError):
        unit_return_deadline("2026-03-01")


DEADLINE = date(2026, 3, 15)


@pytest.mark.parametrize(
    ("deadline", "today", "received", "overdue"),
    [
        (DEADLINE, date(2026, 3, 14), False, False),
        (DEADLINE, DEADLINE, False, False),  # the last day is not overdue
        (DEADLINE, date(2026, 3, 16), False, True),
        (DEADLINE, date(2026, 5, 1), False, True),
        (DEADLINE, date(2026, 5, 1), True, False),  # the unit came back
        (None, date(2026, 5, 1), False, False),  # no advance replacement
    ],
)
def test_D_2_is_unit_overdue(deadline, today, received, overdue):
    assert is_unit_overdue(deadline, today, received) is overdue


def test_D_2_is_unit_overdue_refuses_datetimes():
    with pytest.raises(FactError):
        is_unit_overdue(DEADLINE, utc(2026, 3, 16), False)
    with pytest.raises(FactError):
        is_unit_overdue(utc(2026, 3, 15), date(2026, 3, 16), False)


# -- monthly figures ------------------------------------------------------------------


def record(started_at, delivered_hours=None, policy=DEFAULT_POLICY):
    due = replacement_due(started_at, policy)
    delivered = None if delivered_hours is None else started_at + delivered_hours * H
    return ClockRecord(started_at, due, delivered)


NOW = utc(2026, 7, 31, 0, 0)


def test_R_R3_monthly_figures_known_answers():
    start = utc(2026, 6, 1, 2, 0)  # 10:00 China time
    delivered = [record(start + i * H, hours) for i, hours in enumerate(range(10, 101, 10))]
    open_late = record(utc(2026, 6, 20, 0, 0))  # due 06-23, open at NOW: breached
    open_fresh = record(NOW - 10 * H)  # started in July, still on track
    (june, july) = monthly_figures([*delivered, open_late, open_fresh], NOW)
    assert june == MonthFigures(
        month="2026-06",
        started=11,
        delivered=10,
        within_target=7,  # 10..70 h
        share_within=0.7,
        median_hours=55.0,  # (50 + 60) / 2
        p90_hours=90.0,  # nearest rank: the 9th of 10
        breached=4,  # 80, 90, 100 h late + one open past due
    )
    assert july == MonthFigures("2026-07", 1, 0, 0, None, None, None, 0)


def test_R_R3_monthly_figures_odd_count_and_exact_due():
    start = utc(2026, 4, 10, 0, 0)
    records = [record(start, hours) for hours in (72, 1, 3, 2, 5)]  # 72 h: at due, met
    (april,) = monthly_figures(records, NOW)
    assert (april.delivered, april.within_target, april.breached) == (5, 5, 0)
    assert april.share_within == 1.0
    assert (april.median_hours, april.p90_hours) == (3.0, 72.0)


def test_R_R3_monthly_figures_nearest_rank_p90_of_twenty():
    start = utc(2026, 4, 10, 0, 0)
    (april,) = monthly_figures([record(start, h) for h in range(20, 0, -1)], NOW)
    assert (april.median_hours, april.p90_hours) == (10.5, 18.0)  # rank ceil(0.9*20) = 18


def test_R_R3_monthly_figures_single_delivery_and_rounding():
    start = utc(2026, 4, 10, 0, 0)
    one = ClockRecord(start, start + 72 * H, start + timedelta(hours=73, minutes=3))
    (april,) = monthly_figures(iter([one]), NOW)  # any iterable
    assert april == MonthFigures("2026-04", 1, 1, 0, 0.0, 73.1, 73.1, 1)


def test_R_R3_open_clock_exactly_at_due_is_not_breached():
    open_at_due = record(NOW - 72 * H)
    (figures,) = monthly_figures([open_at_due], NOW)
    assert figures.breached == 0
    (figures,) = monthly_figures([open_at_due], NOW + SECOND)
    assert figures.breached == 1


@pytest.mark.parametrize(
    ("started_at", "month"),
    [
        (utc(2026, 11, 30, 20, 0), "2026-12"),  # 04:00 on 12-01 in China
        (utc(2026, 11, 30, 15, 59), "2026-11"),  # 23:59 on 11-30 in China
        (utc(2026, 11, 30, 16, 0), "2026-12"),  # midnight in China
        (utc(2026, 12, 31, 16, 0), "2027-01"),  # new year in China
        (datetime(2026, 12, 1, 0, 30, tzinfo=SHANGHAI), "2026-12"),
    ],
)
def test_R_R3_months_are_grouped_in_china_time(started_at, month):
    (figures,) = monthly_figures([record(started_at)], NOW)
    assert figures.month == month


def test_R_R3_months_follow_the_policy_zone_and_come_oldest_first():
    records = [record(utc(2027, 1, 5)), record(utc(2026, 11, 30, 20)), record(utc(2026, 3, 1))]
    assert [f.month for f in monthly_figures(records, NOW)] == ["2026-03", "2026-12", "2027-01"]
    policy = DEFAULT_POLICY.with_overrides(timezone="UTC")
    assert [f.month for f in monthly_figures(records, NOW, policy)] == [
        "2026-03",
        "2026-11",
        "2027-01",
    ]


def test_monthly_figures_of_nothing_and_of_wrong_items():
    assert monthly_figures([], NOW) == []
    with pytest.raises(FactError):
        monthly_figures([(NOW, NOW, None)], NOW)


# -- properties -----------------------------------------------------------------------

instants = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2035, 12, 31), timezones=st.just(UTC)
)
delays = st.none() | st.timedeltas(min_value=timedelta(0), max_value=timedelta(hours=300))
records = st.builds(
    lambda started_at, delay: ClockRecord(
        started_at,
        replacement_due(started_at),
        None if delay is None else started_at + delay,
    ),
    instants,
    delays,
)


@SETTINGS
@given(st.lists(records, max_size=40), instants)
def test_monthly_figures_invariants(clocks, now):
    figures = monthly_figures(clocks, now)
    months = [f.month for f in figures]
    assert months == sorted(set(months))
    assert sum(f.started for f in figures) == len(clocks)
    for f in figures:
        assert 0 <= f.within_target <= f.delivered <= f.started
        assert 0 <= f.breached <= f.started
        if f.delivered:
            assert 0.0 <= f.share_within <= 1.0
            assert f.median_hours <= f.p90_hours
            assert f.breached >= f.delivered - f.within_target
        else:
            assert f.share_within is f.median_hours is f.p90_hours is None


@SETTINGS
@given(instants, instants, st.none() | instants)
def test_clock_state_invariants(started_at, now, delivered_at):
    due = replacement_due(started_at)
    assert due - started_at == 72 * H
    state = clock_state(due, now, delivered_at)
    if delivered_at is not None:
        assert state is (ClockState.MET if delivered_at <= due else ClockState.MISSED)
    else:
        assert state.is_open
        assert (state is ClockState.BREACHED) is (now > due)
        assert (state is ClockState.ON_TRACK) is (due - now >= 24 * H)


@SETTINGS
@given(instants, instants)
def test_hours_between_is_antisymmetric_and_close(start, end):
    hours = hours_between(start, end)
    assert hours == -hours_between(end, start)
    assert abs(hours - (end - start).total_seconds() / 3600) <= 0.05 + 1e-9
