"""Incident targets, escalation, on-site visits (R-I1, R-I2, R-I4..R-I6, R-C4, D-7)."""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from warranty import (
    DEFAULT_POLICY,
    INCIDENT_TARGETS,
    PRIORITIES,
    CalendarDataMissing,
    Deadline,
    FactError,
    NaiveDatetimeError,
    OfficeCalendar,
    Policy,
    PolicyError,
    Rung,
    TargetState,
    brief_days,
    contract_year,
    escalation_schedule,
    incident_deadlines,
    is_visit_chargeable,
    onsite_arrival_deadline,
    overdue_brief_days,
    replacement_due,
    suggested_support_mode,
    target_deadline,
    target_state,
    warning_at,
)

# No example database: these tests must not write files into the checkout.
SETTINGS = settings(database=None, deadline=None)

CN = ZoneInfo("Asia/Shanghai")
H = timedelta(hours=1)
CAL = OfficeCalendar()
OFFICE_ESCALATION = DEFAULT_POLICY.with_overrides(target_clock={"escalation": "office"})


def cn(*args):
    """An instant given in China time."""
    return datetime(*args, tzinfo=CN)


def utc(*args):
    return datetime(*args, tzinfo=UTC)


REPORTED = utc(2026, 5, 4, 2, 0)  # Monday 10:00 China time

# -- policy additions ---------------------------------------------------------------


def test_r_i4_resolution_hours_default_to_the_top_rung():
    assert dict(DEFAULT_POLICY.resolution_target_hours) == {
        "urgent": 24,
        "serious": 48,
        "general": 72,
    }
    for priority in PRIORITIES:
        top = DEFAULT_POLICY.escalation_steps(priority)[-1][0]
        assert DEFAULT_POLICY.resolution_hours(priority) == top
    assert DEFAULT_POLICY.breach_warning_percent == 80
    with pytest.raises(PolicyError):
        DEFAULT_POLICY.resolution_hours("critical")


def test_r_i4_resolution_hours_accept_a_mapping():
    p = DEFAULT_POLICY.with_overrides(
        resolution_target_hours={"general": 96, "urgent": 8, "serious": 30}
    )
    assert p.resolution_target_hours == (("urgent", 8), ("serious", 30), ("general", 96))
    assert p.resolution_hours("general") == 96
    hash(p)


@pytest.mark.parametrize(
    "overrides",
    [
        {"resolution_target_hours": {"urgent": 24, "serious": 48}},  # general missing
        {"resolution_target_hours": {"urgent": 0, "serious": 48, "general": 72}},
        {"resolution_target_hours": {"urgent": 1.5, "serious": 48, "general": 72}},
        {"resolution_target_hours": {"urgent": 24, "serious": 48, "general": 72, "x": 1}},
        {"resolution_target_hours": 5},
        {"breach_warning_percent": 0},
        {"breach_warning_percent": 100},
        {"breach_warning_percent": 80.5},
        {"breach_warning_percent": True},
    ],
)
def test_r_i4_unusable_incident_settings_raise_policy_error(overrides):
    with pytest.raises(PolicyError):
        DEFAULT_POLICY.with_overrides(**overrides)


# -- R-I4: every rung of the table ---------------------------------------------------

R_I4_TABLE = [
    # (priority, hours, role)
    ("urgent", 1, "account_manager"),
    ("urgent", 2, "technical_lead"),
    ("urgent", 4, "service_director"),
    ("urgent", 12, "cto"),
    ("urgent", 24, "president"),
    ("serious", 2, "account_manager"),
    ("serious", 4, "technical_lead"),
    ("serious", 12, "service_director"),
    ("serious", 24, "cto"),
    ("serious", 48, "president"),
    ("general", 4, "account_manager"),
    ("general", 12, "technical_lead"),
    ("general", 24, "service_director"),
    ("general", 48, "cto"),
    ("general", 72, "president"),
]


@pytest.mark.parametrize(("priority", "hours", "role"), R_I4_TABLE)
def test_r_i4_every_rung_on_the_calendar_clock(priority, hours, role):
    rungs = escalation_schedule(REPORTED, priority, DEFAULT_POLICY, CAL)
    rung = next(r for r in rungs if r.role == role)
    assert rung == Rung(hours, role, REPORTED + hours * H, None)
    assert rung.due_at.tzinfo is UTC


@pytest.mark.parametrize("priority", PRIORITIES)
def test_r_i4_schedule_lists_the_rungs_earliest_first(priority):
    rungs = escalation_schedule(REPORTED, priority, DEFAULT_POLICY, CAL)
    expected = [(h, r) for p, h, r in R_I4_TABLE if p == priority]
    assert [(r.hours, r.role) for r in rungs] == expected
    assert [r.due_at for r in rungs] == sorted(r.due_at for r in rungs)


@pytest.mark.parametrize(
    ("hours", "role", "due"),
    [
        # urgent, reported Wed 2026-09-30 17:00 China time, on office hours (D-7, R-I7)
        (1, "account_manager", cn(2026, 9, 30, 18, 0)),
        (2, "technical_lead", cn(2026, 10, 8, 10, 0)),  # after the National Day week
        (4, "service_director", cn(2026, 10, 8, 12, 0)),
        (12, "cto", cn(2026, 10, 9, 11, 0)),
        (24, "president", cn(2026, 10, 10, 14, 0)),  # make-up Saturday
    ],
)
def test_r_i4_d_7_urgent_rungs_on_the_office_clock(hours, role, due):
    rungs = escalation_schedule(cn(2026, 9, 30, 17, 0), "urgent", OFFICE_ESCALATION, CAL)
    assert Rung(hours, role, due, None) in rungs


def test_r_i4_d_7_office_rungs_name_a_year_without_data():
    rungs = escalation_schedule(cn(2026, 12, 31, 17, 0), "urgent", OFFICE_ESCALATION, CAL)
    assert rungs[0] == Rung(1, "account_manager", cn(2026, 12, 31, 18, 0), None)
    assert rungs[1].due_at == cn(2027, 1, 1, 10, 0)
    assert rungs[1].missing == CalendarDataMissing((2027,))
    assert all(r.missing == CalendarDataMissing((2027,)) for r in rungs[1:])


def test_r_i4_schedule_uses_the_given_ladder():
    ladder = [(3, "urgent", "cto"), (1, "urgent", "account_manager"), (5, "general", "cto")]
    rungs = escalation_schedule(REPORTED, "urgent", DEFAULT_POLICY, CAL, ladder)
    assert rungs == [
        Rung(1, "account_manager", REPORTED + H, None),
        Rung(3, "cto", REPORTED + 3 * H, None),
    ]
    assert escalation_schedule(REPORTED, "serious", DEFAULT_POLICY, CAL, ladder) == []


@pytest.mark.parametrize(
    "call",
    [
        lambda: escalation_schedule(REPORTED, "critical", DEFAULT_POLICY, CAL),
        lambda: escalation_schedule(
            REPORTED, "urgent", DEFAULT_POLICY, CAL, [(0, "urgent", "cto")]
        ),
        lambda: escalation_schedule(REPORTED, "urgent", DEFAULT_POLICY, CAL, [(1, "urgent")]),
        lambda: incident_deadlines(REPORTED, "minor", DEFAULT_POLICY, CAL),
        lambda: suggested_support_mode("minor"),
        lambda: target_deadline("lunch", REPORTED, DEFAULT_POLICY, CAL, hours=1),
    ],
)
def test_r_i4_unknown_priority_ladder_or_target_raise_policy_error(call):
    with pytest.raises(PolicyError):
        call()


# -- R-I1, R-I2: incident deadlines --------------------------------------------------


@pytest.mark.parametrize(
    ("priority", "resolution_hours"), [("urgent", 24), ("serious", 48), ("general", 72)]
)
def test_r_i1_r_i2_incident_deadlines_on_the_calendar_clock(priority, resolution_hours):
    deadlines = incident_deadlines(REPORTED, priority, DEFAULT_POLICY, CAL)
    assert tuple(deadlines) == INCIDENT_TARGETS
    assert deadlines["contact"] == Deadline(
        "contact", REPORTED, REPORTED + timedelta(minutes=30), "calendar", None
    )
    assert deadlines["diagnosis"] == Deadline(
        "diagnosis", REPORTED, REPORTED + 24 * H, "calendar", None
    )
    assert deadlines["resolution"] == Deadline(
        "resolution", REPORTED, REPORTED + resolution_hours * H, "calendar", None
    )


def test_d_7_priority_change_recomputes_from_the_report_time():
    reported = cn(2026, 9, 30, 17, 0)
    before = incident_deadlines(reported, "general", DEFAULT_POLICY, CAL)
    after = incident_deadlines(reported, "urgent", DEFAULT_POLICY, CAL)
    assert before["resolution"].due_at == reported + 72 * H
    assert after["resolution"].due_at == reported + 24 * H
    assert after["contact"] == before["contact"]
    assert after["resolution"].start == before["resolution"].start == reported


def test_d_7_each_target_follows_its_own_clock():
    policy = DEFAULT_POLICY.with_overrides(
        target_clock={"diagnosis": "office", "escalation": "office"}
    )
    reported = cn(2026, 9, 30, 17, 0)
    deadlines = incident_deadlines(reported, "urgent", policy, CAL)
    assert deadlines["contact"].clock == "calendar"
    assert deadlines["contact"].due_at == cn(2026, 9, 30, 17, 30)
    assert deadlines["diagnosis"].clock == "office"
    assert deadlines["diagnosis"].due_at == cn(2026, 10, 10, 14, 0)  # 1 + 9 + 9 + 5 h
    assert deadlines["resolution"].clock == "office"  # resolution runs on "escalation"
    assert deadlines["resolution"].due_at == cn(2026, 10, 10, 14, 0)
    assert all(d.missing is None for d in deadlines.values())


def test_r_i7_office_deadline_reports_a_year_without_data():
    policy = DEFAULT_POLICY.with_overrides(target_clock={"diagnosis": "office"})
    reported = cn(2026, 12, 31, 17, 0)
    deadlines = incident_deadlines(reported, "serious", policy, CAL)
    assert deadlines["diagnosis"].due_at == cn(2027, 1, 5, 14, 0)  # 1 + 9 + 9 + 5 h
    assert deadlines["diagnosis"].missing == CalendarDataMissing((2027,))
    assert deadlines["contact"].missing is None  # calendar clock: no calendar needed
    covered = OfficeCalendar(covered_years=frozenset({2027}))
    assert incident_deadlines(reported, "serious", policy, covered)["diagnosis"].missing is None


def test_r_i1_target_deadline_defaults_and_durations():
    assert target_deadline("contact", REPORTED, DEFAULT_POLICY, CAL).due_at == REPORTED + 30 * (
        H / 60
    )
    assert target_deadline("replacement", REPORTED, DEFAULT_POLICY, CAL).due_at == REPORTED + 72 * H
    deadline = target_deadline("escalation", REPORTED, DEFAULT_POLICY, CAL, hours=1, minutes=30)
    assert deadline.due_at == REPORTED + 1.5 * H
    with pytest.raises(FactError):
        target_deadline("resolution", REPORTED, DEFAULT_POLICY, CAL)  # needs a duration
    with pytest.raises(FactError):
        target_deadline("contact", REPORTED, DEFAULT_POLICY, CAL, hours=-1)
    with pytest.raises(NaiveDatetimeError):
        target_deadline("contact", datetime(2026, 5, 4, 10), DEFAULT_POLICY, CAL, hours=1)


# -- R-I6: on-site arrival and daily briefs ------------------------------------------


@pytest.mark.parametrize(
    ("clock", "requested", "due"),
    [
        ("calendar", cn(2026, 10, 1, 22, 0), cn(2026, 10, 2, 6, 0)),
        ("office", cn(2026, 10, 1, 22, 0), cn(2026, 10, 8, 17, 0)),
        ("office", cn(2026, 10, 9, 14, 0), cn(2026, 10, 10, 13, 0)),  # make-up Saturday
    ],
)
def test_r_i6_onsite_arrival_deadline(clock, requested, due):
    policy = DEFAULT_POLICY.with_overrides(target_clock={"onsite_arrival": clock})
    deadline = onsite_arrival_deadline(requested, policy, CAL)
    assert (deadline.target, deadline.clock, deadline.due_at) == ("onsite_arrival", clock, due)
    assert deadline.start.tzinfo is UTC


@pytest.mark.parametrize(
    ("started", "ended", "now", "days"),
    [
        (
            cn(2026, 10, 1, 22, 0),
            None,
            cn(2026, 10, 3, 10, 0),
            [date(2026, 10, 1), date(2026, 10, 2), date(2026, 10, 3)],
        ),
        (
            cn(2026, 10, 1, 22, 0),
            cn(2026, 10, 2, 11, 0),
            cn(2026, 10, 9, 10, 0),
            [date(2026, 10, 1), date(2026, 10, 2)],
        ),
        # China's date decides: 17:00 UTC is 01:00 the next day in China
        (utc(2026, 9, 30, 17, 0), None, utc(2026, 9, 30, 18, 0), [date(2026, 10, 1)]),
        (cn(2026, 10, 1, 22, 0), None, cn(2026, 9, 30, 10, 0), []),  # now before start
    ],
)
def test_r_i6_brief_days(started, ended, now, days):
    assert brief_days(started, ended, now, CN) == days
    assert brief_days(started, ended, now, "Asia/Shanghai") == days


@pytest.mark.parametrize(
    ("ended", "now", "filed", "overdue"),
    [
        # open visit: only days fully passed are overdue, today is not
        (None, cn(2026, 10, 3, 10, 0), [], [date(2026, 10, 1), date(2026, 10, 2)]),
        (None, cn(2026, 10, 3, 10, 0), [date(2026, 10, 1)], [date(2026, 10, 2)]),
        (None, cn(2026, 10, 1, 23, 59), [], []),
        # ended visit: the end day is due until it has passed
        (cn(2026, 10, 2, 11, 0), cn(2026, 10, 2, 20, 0), [date(2026, 10, 1)], []),
        (cn(2026, 10, 2, 11, 0), cn(2026, 10, 3, 0, 0), [date(2026, 10, 1)], [date(2026, 10, 2)]),
        (cn(2026, 10, 2, 11, 0), cn(2026, 10, 9, 0, 0), [date(2026, 10, 1), date(2026, 10, 2)], []),
    ],
)
def test_r_i6_overdue_brief_days(ended, now, filed, overdue):
    started = cn(2026, 10, 1, 22, 0)
    assert overdue_brief_days(started, ended, now, CN, filed) == overdue


def test_r_i6_brief_days_refuse_naive_datetimes_and_bad_zones():
    with pytest.raises(NaiveDatetimeError):
        brief_days(datetime(2026, 10, 1), None, cn(2026, 10, 2), CN)
    with pytest.raises(FactError):
        brief_days(cn(2026, 10, 1), None, cn(2026, 10, 2), "Mars/Olympus")


# -- warnings and target states ------------------------------------------------------


@pytest.mark.parametrize(
    ("deadline", "warn"),
    [
        (
            Deadline("contact", REPORTED, REPORTED + 30 * H / 60, "calendar", None),
            REPORTED + 24 * H / 60,
        ),
        (Deadline("diagnosis", REPORTED, REPORTED + 24 * H, "calendar", None), REPORTED + 19.2 * H),
        (
            Deadline("resolution", REPORTED, REPORTED + 72 * H, "calendar", None),
            REPORTED + 57.6 * H,
        ),
    ],
)
def test_warning_at_80_percent_on_the_calendar_clock(deadline, warn):
    assert warning_at(deadline, DEFAULT_POLICY, CAL) == warn


def test_warning_at_80_percent_of_office_time():
    policy = DEFAULT_POLICY.with_overrides(target_clock={"diagnosis": "office"})
    deadline = target_deadline("diagnosis", cn(2026, 9, 30, 17, 0), policy, CAL, hours=24)
    assert deadline.due_at == cn(2026, 10, 10, 14, 0)
    # 19.2 office hours: 1 h on 09-30, 9 h on 10-08 and 10-09, 12 minutes on 10-10
    assert warning_at(deadline, policy, CAL) == cn(2026, 10, 10, 9, 12)
    assert CAL.office_time_between(deadline.start, warning_at(deadline, policy, CAL)) == 19.2 * H


def test_warning_follows_the_policy_percent():
    policy = DEFAULT_POLICY.with_overrides(breach_warning_percent=50)
    deadline = Deadline("diagnosis", REPORTED, REPORTED + 24 * H, "calendar", None)
    assert warning_at(deadline, policy, CAL) == REPORTED + 12 * H
    with pytest.raises(FactError):
        warning_at("tomorrow", policy, CAL)


CONTACT = Deadline("contact", REPORTED, REPORTED + 30 * H / 60, "calendar", None)
MINUTE = H / 60


@pytest.mark.parametrize(
    ("now", "done_at", "state"),
    [
        (REPORTED, None, TargetState.ON_TRACK),
        (REPORTED + 24 * MINUTE - timedelta(seconds=1), None, TargetState.ON_TRACK),
        (REPORTED + 24 * MINUTE, None, TargetState.WARNING),  # 80 % used
        (REPORTED + 30 * MINUTE, None, TargetState.WARNING),  # exactly due: not breached
        (REPORTED + 30 * MINUTE + timedelta(seconds=1), None, TargetState.BREACHED),
        (REPORTED + 5 * H, REPORTED + 30 * MINUTE, TargetState.MET),  # met at the due time
        (REPORTED + 5 * H, REPORTED + 31 * MINUTE, TargetState.MISSED),
        (REPORTED, REPORTED + 10 * MINUTE, TargetState.MET),
    ],
)
def test_r_i1_target_state(now, done_at, state):
    assert target_state(CONTACT, now, done_at, DEFAULT_POLICY, CAL) is state
    assert state.is_open is (done_at is None)


def test_r_i1_target_state_refuses_naive_instants():
    with pytest.raises(NaiveDatetimeError):
        target_state(CONTACT, datetime(2026, 5, 4, 10), None, DEFAULT_POLICY, CAL)
    with pytest.raises(NaiveDatetimeError):
        target_state(CONTACT, REPORTED, datetime(2026, 5, 4, 10), DEFAULT_POLICY, CAL)


# -- R-R3 on the office clock (D-7) ---------------------------------------------------


def test_d_7_r_r3_replacement_on_the_office_clock():
    policy = DEFAULT_POLICY.with_overrides(target_clock={"replacement": "office"})
    # 72 office hours: 1 h on 09-30, then eight working days from 10-08 (incl. Sat 10-10)
    assert replacement_due(cn(2026, 9, 30, 17, 0), policy, CAL) == cn(2026, 10, 16, 17, 0)
    with pytest.raises(PolicyError):
        replacement_due(cn(2026, 9, 30, 17, 0), policy)
    # the calendar clock ignores the calendar
    assert replacement_due(cn(2026, 9, 30, 17, 0), DEFAULT_POLICY, CAL) == cn(2026, 10, 3, 17, 0)


# -- R-C4: contract years and chargeable visits --------------------------------------


@pytest.mark.parametrize(
    ("accepted_on", "day", "year"),
    [
        (date(2026, 3, 10), date(2026, 3, 11), (date(2026, 3, 11), date(2027, 3, 10))),
        (date(2026, 3, 10), date(2027, 3, 10), (date(2026, 3, 11), date(2027, 3, 10))),
        (date(2026, 3, 10), date(2027, 3, 11), (date(2027, 3, 11), date(2028, 3, 10))),
        (date(2026, 3, 10), date(2031, 1, 1), (date(2030, 3, 11), date(2031, 3, 10))),
        (date(2026, 3, 10), date(2026, 3, 10), (date(2026, 3, 11), date(2027, 3, 10))),  # before
        (date(2026, 3, 10), date(2025, 1, 1), (date(2026, 3, 11), date(2027, 3, 10))),
        # leap day start: the Month rule keeps the years contiguous
        (date(2024, 2, 28), date(2025, 2, 28), (date(2024, 2, 29), date(2025, 2, 28))),
        (date(2024, 2, 28), date(2025, 3, 1), (date(2025, 3, 1), date(2026, 2, 28))),
        (date(2024, 2, 28), date(2028, 2, 29), (date(2028, 2, 29), date(2029, 2, 28))),
        (date(2024, 1, 30), date(2025, 1, 31), (date(2025, 1, 31), date(2026, 1, 30))),
    ],
)
def test_r_c4_contract_year(accepted_on, day, year):
    assert contract_year(accepted_on, day, DEFAULT_POLICY) == year


@SETTINGS
@given(
    st.dates(min_value=date(2000, 1, 1), max_value=date(2060, 12, 31)),
    st.integers(min_value=1, max_value=365 * 20),
)
def test_r_c4_property_contract_years_are_contiguous(accepted_on, offset):
    day = accepted_on + timedelta(days=offset)
    first, last = contract_year(accepted_on, day, DEFAULT_POLICY)
    assert first <= day <= last
    assert contract_year(accepted_on, last + timedelta(days=1), DEFAULT_POLICY)[0] == last + (
        timedelta(days=1)
    )
    assert 365 <= (last - first).days + 1 <= 366


def test_r_c4_contract_year_refuses_datetimes():
    with pytest.raises(FactError):
        contract_year(datetime(2026, 3, 10), date(2026, 4, 1), DEFAULT_POLICY)


@pytest.mark.parametrize(
    ("kind", "earlier", "per_year", "chargeable"),
    [
        ("change", 0, 1, False),  # the first change visit of the year is included
        ("change", 1, 1, True),  # the second is chargeable
        ("change", 4, 1, True),
        ("emergency", 0, 1, False),  # emergency response (R-I6) is never charged
        ("emergency", 3, 1, False),
        ("change", 1, 2, False),
        ("change", 2, 2, True),
        ("change", 0, 0, True),
    ],
)
def test_r_c4_is_visit_chargeable(kind, earlier, per_year, chargeable):
    policy = DEFAULT_POLICY.with_overrides(onsite_change_visits_per_year=per_year)
    assert is_visit_chargeable(kind, earlier, policy) is chargeable


@pytest.mark.parametrize(("kind", "earlier"), [("repair", 0), ("change", -1), ("change", 1.0)])
def test_r_c4_is_visit_chargeable_refuses_bad_facts(kind, earlier):
    with pytest.raises(FactError):
        is_visit_chargeable(kind, earlier, DEFAULT_POLICY)


# -- R-I5 --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("priority", "mode"), [("urgent", "onsite"), ("serious", "remote"), ("general", "phone")]
)
def test_r_i5_suggested_support_mode(priority, mode):
    assert suggested_support_mode(priority) == mode


def test_policy_is_still_one_validated_object():
    assert Policy() == DEFAULT_POLICY
