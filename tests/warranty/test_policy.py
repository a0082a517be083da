"""The Policy object: every default of SPEC.md in one place, validated."""

import dataclasses
from datetime import time
from decimal import Decimal

import pytest

from warranty import DEFAULT_POLICY, Policy, PolicyError, WarrantyError


def test_defaults_are_the_spec_numbers():
    p = Policy()
    assert p == DEFAULT_POLICY
    assert p.timezone == "Asia/Shanghai"
    assert p.software_life_months == 12  # R-W1
    assert p.contract_term_months == 12  # R-C2
    assert p.paid_support_renewal_months == 12  # R-C3
    assert p.onsite_change_visits_per_year == 1  # R-C4
    assert p.replacement_target_hours == 72  # R-R3
    assert p.replacement_policy == "inherit_min_days"
    assert p.replacement_min_days == 90
    assert p.advance_return_days == 14  # D-2
    assert p.contact_target_minutes == 30  # R-I1
    assert p.diagnosis_target_hours == 24  # R-I2
    assert p.onsite_arrival_hours == 8  # R-I6
    assert p.advisory_notice_working_days == 2  # R-A2
    assert p.public_disclosure_delay_days == 14  # R-A3
    assert p.vat_rate == Decimal("0.13")  # D-5
    assert p.currency == "CNY"
    assert p.quote_valid_days == 30
    assert (p.office_day_start, p.office_day_end) == (time(9), time(18))  # R-I7
    assert p.serial_min_length == 4 and p.serial_max_length == 32  # D-8


def test_D_7_every_target_runs_on_calendar_hours_by_default():
    assert dict(DEFAULT_POLICY.target_clock) == {
        "contact": "calendar",
        "diagnosis": "calendar",
        "escalation": "calendar",
        "onsite_arrival": "calendar",
        "replacement": "calendar",
    }
    assert DEFAULT_POLICY.clock_for("replacement") == "calendar"


def test_D_7_a_target_switched_to_office_hours():
    p = DEFAULT_POLICY.with_overrides(target_clock={"diagnosis": "office"})
    assert p.clock_for("diagnosis") == "office"
    assert p.clock_for("contact") == "calendar"
    assert isinstance(p.target_clock, tuple)
    hash(p)  # still usable as a key
    with pytest.raises(PolicyError):
        p.clock_for("lunch")


def test_R_I4_escalation_ladder_matches_the_table():
    table = {
        # hours: (urgent, serious, general)
        1: ("account_manager", None, None),
        2: ("technical_lead", "account_manager", None),
        4: ("service_director", "technical_lead", "account_manager"),
        12: ("cto", "service_director", "technical_lead"),
        24: ("president", "cto", "service_director"),
        48: (None, "president", "cto"),
        72: (None, None, "president"),
    }
    expected = {
        (hours, priority, role)
        for hours, roles in table.items()
        for priority, role in zip(("urgent", "serious", "general"), roles, strict=True)
        if role
    }
    assert set(DEFAULT_POLICY.escalation_ladder) == expected
    assert len(DEFAULT_POLICY.escalation_ladder) == len(expected)
    assert DEFAULT_POLICY.escalation_steps("general") == (
        (4, "account_manager"),
        (12, "technical_lead"),
        (24, "service_director"),
        (48, "cto"),
        (72, "president"),
    )


def test_with_overrides_returns_a_new_validated_policy():
    p = DEFAULT_POLICY.with_overrides(replacement_policy="fresh", vat_rate="0.06")
    assert p.replacement_policy == "fresh"
    assert p.vat_rate == Decimal("0.06")
    assert DEFAULT_POLICY.replacement_policy == "inherit_min_days"
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.vat_rate = Decimal("0.2")


def test_loose_input_forms_are_normalised():
    p = Policy(
        vat_rate=0.09,
        office_day_start="08:30",
        escalation_ladder=[[1, "urgent", "cto"]],
    )
    assert p.vat_rate == Decimal("0.09")
    assert p.office_day_start == time(8, 30)
    assert p.escalation_ladder == ((1, "urgent", "cto"),)


@pytest.mark.parametrize(
    "overrides",
    [
        {"replacement_policy": "forever"},
        {"replacement_policy": "INHERIT"},
        {"timezone": "Mars/Olympus"},
        {"timezone": ""},
        {"software_life_months": 0},
        {"contract_term_months": 1.5},
        {"replacement_target_hours": True},
        {"replacement_min_days": -1},
        {"onsite_change_visits_per_year": -1},
        {"vat_rate": Decimal(1)},
        {"vat_rate": Decimal("-0.01")},
        {"vat_rate": "thirteen"},
        {"vat_rate": Decimal("NaN")},
        {"currency": "RMB¥"},
        {"office_day_start": time(18), "office_day_end": time(9)},
        {"office_day_start": "9 o'clock"},
        {"target_clock": {"lunch": "office"}},
        {"target_clock": {"contact": "sometimes"}},
        {"target_clock": 5},
        {"escalation_ladder": [(0, "urgent", "cto")]},
        {"escalation_ladder": [(1, "critical", "cto")]},
        {"escalation_ladder": [(1, "urgent", "janitor")]},
        {"escalation_ladder": [(1, "urgent")]},
        {"escalation_ladder": [(1, "urgent", "cto"), (2, "urgent", "cto")]},
        {"serial_min_length": 10, "serial_max_length": 5},
        {"no_such_setting": 1},
    ],
)
def test_unusable_settings_raise_policy_error(overrides):
    with pytest.raises(PolicyError) as info:
        DEFAULT_POLICY.with_overrides(**overrides)
    assert isinstance(info.value, WarrantyError)
    assert isinstance(info.value, ValueError)


def test_policy_zone_is_china_time():
    assert DEFAULT_POLICY.zone.key == "Asia/Shanghai"
