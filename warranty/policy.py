"""The settings that SPEC.md calls defaults, kept in one frozen object.

Every number of the service commitment that an administrator can change lives in
:class:`Policy`; code reads it from there and never repeats the literal. A product
model's own life in months (R-W2) belongs to the model, not to the policy.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import time
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ._checks import is_whole_number
from .errors import PolicyError

#: Replacement warranty policies (SPEC "Warranty").
REPLACEMENT_POLICIES = ("inherit", "fresh", "inherit_min_days")
#: Targets whose hours can run on the calendar or the office clock (D-7).
CLOCK_TARGETS = ("contact", "diagnosis", "escalation", "onsite_arrival", "replacement")
#: The two clocks a target can run on (D-7, R-I7).
CLOCKS = ("calendar", "office")
#: What ``rma tick`` sends as a customer's periodic service report (R-R4, issue 7).
SERVICE_REPORT_PERIODS = ("month", "quarter")
#: Incident priorities (R-I3), most severe first.
PRIORITIES = ("urgent", "serious", "general")
#: Escalation roles (R-I4), lowest first.
ROLES = ("account_manager", "technical_lead", "service_director", "cto", "president")

#: R-I4: (hours since the report, priority, role escalated to), in table order.
DEFAULT_ESCALATION_LADDER: tuple[tuple[int, str, str], ...] = (
    (1, "urgent", "account_manager"),
    (2, "urgent", "technical_lead"),
    (2, "serious", "account_manager"),
    (4, "urgent", "service_director"),
    (4, "serious", "technical_lead"),
    (4, "general", "account_manager"),
    (12, "urgent", "cto"),
    (12, "serious", "service_director"),
    (12, "general", "technical_lead"),
    (24, "urgent", "president"),
    (24, "serious", "cto"),
    (24, "general", "service_director"),
    (48, "serious", "president"),
    (48, "general", "cto"),
    (72, "general", "president"),
)

#: The resolution target per priority: the hour of the ladder's top rung (R-I4). It runs
#: on the "escalation" clock (both count hours since the report until resolved, D-7).
DEFAULT_RESOLUTION_TARGET_HOURS: tuple[tuple[str, int], ...] = (
    ("urgent", 24),
    ("serious", 48),
    ("general", 72),
)

#: D-7: every target runs on calendar hours by default.
DEFAULT_TARGET_CLOCK: tuple[tuple[str, str], ...] = tuple((t, "calendar") for t in CLOCK_TARGETS)

_POSITIVE_INTS = (
    "software_life_months",
    "contract_term_months",
    "paid_support_renewal_months",
    "replacement_target_hours",
    "replacement_at_risk_hours",
    "replacement_min_days",
    "advance_return_days",
    "contact_target_minutes",
    "diagnosis_target_hours",
    "onsite_arrival_hours",
    "advisory_notice_working_days",
    "serial_min_length",
    "serial_max_length",
    "lot_flag_min_returns",
)
_NON_NEGATIVE_INTS = (
    "onsite_change_visits_per_year",
    "public_disclosure_delay_days",
    "quote_valid_days",
)


def _known_keys(name: str, value: object, known: tuple[str, ...], kind: str,
                shape: str) -> dict:
    """``value`` (a mapping or (key, value) pairs) as a dict whose keys are all in
    ``known``; :class:`PolicyError` naming ``name`` otherwise."""
    try:
        pairs = dict(value.items() if isinstance(value, Mapping) else value)
    except (TypeError, ValueError) as exc:
        raise PolicyError(f"{name} must map {shape}") from exc
    unknown = sorted(set(pairs) - set(known), key=str)
    if unknown:
        raise PolicyError(
            f"{name} names unknown {kind} {', '.join(map(repr, unknown))}; "
            f"known: {', '.join(known)}"
        )
    return pairs


@dataclass(frozen=True)
class Policy:
    """Every default of SPEC.md as one validated, immutable settings object.

    Build a variant with :meth:`with_overrides`; construction validates every field and
    raises :class:`PolicyError` on a value the rules cannot work with. Some fields are
    normalised on construction: ``target_clock`` may be given as a mapping or pairs (it
    is stored as pairs in ``CLOCK_TARGETS`` order, missing targets on "calendar"),
    ``escalation_ladder`` rows as lists, ``vat_rate`` as ``str``/``int`` (a ``float`` is
    read through ``str``), office hours as "HH:MM" strings.
    """

    timezone: str = "Asia/Shanghai"  # the date of a report is China's date
    software_life_months: int = 12  # R-W1
    contract_term_months: int = 12  # R-C2
    paid_support_renewal_months: int = 12  # R-C3
    onsite_change_visits_per_year: int = 1  # R-C4
    replacement_target_hours: int = 72  # R-R3
    replacement_at_risk_hours: int = 24  # R-R3: "at risk" when fewer hours are left
    replacement_policy: str = "inherit_min_days"  # SPEC "Warranty": replacement units
    replacement_min_days: int = 90  # SPEC "Warranty": inherit_min_days
    advance_return_days: int = 14  # D-2
    contact_target_minutes: int = 30  # R-I1
    diagnosis_target_hours: int = 24  # R-I2
    onsite_arrival_hours: int = 8  # R-I6
    advisory_notice_working_days: int = 2  # R-A2
    public_disclosure_delay_days: int = 14  # R-A3
    vat_rate: Decimal = Decimal("0.13")  # D-5
    currency: str = "CNY"  # D-5
    quote_valid_days: int = 30
    office_day_start: time = time(9)  # R-I7
    office_day_end: time = time(18)  # R-I7
    target_clock: tuple[tuple[str, str], ...] = DEFAULT_TARGET_CLOCK  # D-7
    escalation_ladder: tuple[tuple[int, str, str], ...] = DEFAULT_ESCALATION_LADDER  # R-I4
    resolution_target_hours: tuple[tuple[str, int], ...] = DEFAULT_RESOLUTION_TARGET_HOURS
    breach_warning_percent: int = 80  # issue 6: warn before a target is breached
    serial_min_length: int = 4  # D-8
    serial_max_length: int = 32  # D-8
    # Failure analytics (issue 7): a lot is flagged when its return rate is at least
    # lot_flag_ratio times its model's and it has at least lot_flag_min_returns returns.
    lot_flag_ratio: Decimal = Decimal("2")
    lot_flag_min_returns: int = 5
    service_report_period: str = "month"  # R-R4: "month" | "quarter" (SERVICE_REPORT_PERIODS)

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # the dataclass is frozen; normalise in place once
        set_(self, "vat_rate", self._checked_vat_rate(self.vat_rate))
        set_(self, "lot_flag_ratio", self._checked_lot_flag_ratio(self.lot_flag_ratio))
        set_(self, "office_day_start", self._checked_time("office_day_start"))
        set_(self, "office_day_end", self._checked_time("office_day_end"))
        set_(self, "target_clock", self._checked_target_clock(self.target_clock))
        set_(self, "escalation_ladder", self._checked_ladder(self.escalation_ladder))
        set_(
            self,
            "resolution_target_hours",
            self._checked_resolution_hours(self.resolution_target_hours),
        )
        self._check_scalars()

    # -- validation ---------------------------------------------------------------

    def _check_scalars(self) -> None:
        for name in _POSITIVE_INTS:
            value = getattr(self, name)
            if not is_whole_number(value) or value < 1:
                raise PolicyError(f"{name} must be a whole number >= 1, not {value!r}")
        for name in _NON_NEGATIVE_INTS:
            value = getattr(self, name)
            if not is_whole_number(value) or value < 0:
                raise PolicyError(f"{name} must be a whole number >= 0, not {value!r}")
        if self.replacement_policy not in REPLACEMENT_POLICIES:
            raise PolicyError(
                f"replacement_policy must be one of {', '.join(REPLACEMENT_POLICIES)}, "
                f"not {self.replacement_policy!r}"
            )
        if not isinstance(self.timezone, str) or not self.timezone:
            raise PolicyError(f"timezone must be an IANA zone name, not {self.timezone!r}")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise PolicyError(f"unknown timezone {self.timezone!r}") from exc
        if not isinstance(self.currency, str) or len(self.currency) != 3:
            raise PolicyError(f"currency must be a 3-letter code, not {self.currency!r}")
        if self.service_report_period not in SERVICE_REPORT_PERIODS:
            raise PolicyError(
                f"service_report_period must be one of {', '.join(SERVICE_REPORT_PERIODS)}, "
                f"not {self.service_report_period!r}"
            )
        if self.office_day_start >= self.office_day_end:
            raise PolicyError("office_day_start must be earlier than office_day_end")
        if self.serial_min_length > self.serial_max_length:
            raise PolicyError("serial_min_length must not exceed serial_max_length")
        percent = self.breach_warning_percent
        if not is_whole_number(percent) or not 1 <= percent <= 99:
            raise PolicyError(
                f"breach_warning_percent must be a whole number 1..99, not {percent!r}"
            )

    @staticmethod
    def _checked_vat_rate(value: object) -> Decimal:
        if isinstance(value, bool):
            raise PolicyError(f"vat_rate must be a decimal fraction, not {value!r}")
        try:
            rate = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
        except (InvalidOperation, TypeError, ValueError) as exc:
            raise PolicyError(f"vat_rate must be a decimal fraction, not {value!r}") from exc
        if not rate.is_finite() or not Decimal(0) <= rate < Decimal(1):
            raise PolicyError(f"vat_rate must be at least 0 and below 1, not {value!r}")
        return rate

    @staticmethod
    def _checked_lot_flag_ratio(value: object) -> Decimal:
        if isinstance(value, bool):
            raise PolicyError(f"lot_flag_ratio must be a number >= 1, not {value!r}")
        try:
            ratio = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
        except (InvalidOperation, TypeError, ValueError) as exc:
            raise PolicyError(f"lot_flag_ratio must be a number >= 1, not {value!r}") from exc
        if not ratio.is_finite() or ratio < 1:
            raise PolicyError(f"lot_flag_ratio must be a number >= 1, not {value!r}")
        return ratio

    def _checked_time(self, name: str) -> time:
        value = getattr(self, name)
        if isinstance(value, str):
            try:
                value = time.fromisoformat(value)
            except ValueError as exc:
                raise PolicyError(f"{name} must be a time like '09:00', not {value!r}") from exc
        if not isinstance(value, time) or value.tzinfo is not None:
            raise PolicyError(f"{name} must be a local time of day, not {value!r}")
        return value

    @staticmethod
    def _checked_target_clock(value: object) -> tuple[tuple[str, str], ...]:
        pairs = _known_keys("target_clock", value, CLOCK_TARGETS, "target(s)",
                            "targets to 'calendar' or 'office'")
        for target, clock in pairs.items():
            if clock not in CLOCKS:
                raise PolicyError(
                    f"target_clock[{target!r}] must be 'calendar' or 'office', not {clock!r}"
                )
        return tuple((t, pairs.get(t, "calendar")) for t in CLOCK_TARGETS)

    @staticmethod
    def _checked_ladder(value: object) -> tuple[tuple[int, str, str], ...]:
        try:
            rows = tuple(tuple(row) for row in value)
        except TypeError as exc:
            raise PolicyError("escalation_ladder must be rows of (hours, priority, role)") from exc
        seen = set()
        for row in rows:
            if len(row) != 3:
                raise PolicyError(f"escalation_ladder row {row!r} is not (hours, priority, role)")
            hours, priority, role = row
            if not is_whole_number(hours) or hours < 1:
                raise PolicyError(f"escalation_ladder row {row!r}: hours must be >= 1")
            if priority not in PRIORITIES:
                raise PolicyError(f"escalation_ladder row {row!r}: unknown priority")
            if role not in ROLES:
                raise PolicyError(f"escalation_ladder row {row!r}: unknown role")
            if (priority, role) in seen:
                raise PolicyError(f"escalation_ladder row {row!r}: role listed twice")
            seen.add((priority, role))
        return rows

    @staticmethod
    def _checked_resolution_hours(value: object) -> tuple[tuple[str, int], ...]:
        pairs = _known_keys("resolution_target_hours", value, PRIORITIES, "priority(ies)",
                            "priorities to hours")
        missing = [p for p in PRIORITIES if p not in pairs]
        if missing:
            raise PolicyError(f"resolution_target_hours has no hours for {', '.join(missing)}")
        for priority, hours in pairs.items():
            if not is_whole_number(hours) or hours < 1:
                raise PolicyError(
                    f"resolution_target_hours[{priority!r}] must be a whole number >= 1, "
                    f"not {hours!r}"
                )
        return tuple((str(p), pairs[p]) for p in PRIORITIES)

    # -- use ----------------------------------------------------------------------

    def with_overrides(self, **overrides: object) -> Policy:
        """Return a new, validated Policy with ``overrides`` applied.

        Raises :class:`PolicyError` for an unknown setting name or an unusable value.
        """
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise PolicyError(f"unknown policy setting(s): {', '.join(unknown)}")
        return dataclasses.replace(self, **overrides)

    @property
    def zone(self) -> ZoneInfo:
        """The policy's time zone (China time by default), which decides dates."""
        return ZoneInfo(self.timezone)

    def clock_for(self, target: str) -> str:
        """Return "calendar" or "office": the clock ``target``'s hours run on (D-7).

        Raises :class:`PolicyError` for a target not in ``CLOCK_TARGETS``.
        """
        for name, clock in self.target_clock:
            if name == target:
                return clock
        raise PolicyError(f"unknown target {target!r}")

    def escalation_steps(self, priority: str) -> tuple[tuple[int, str], ...]:
        """Return the (hours, role) steps of R-I4 for ``priority``, earliest first.

        Raises :class:`PolicyError` for a priority not in ``PRIORITIES`` (R-I3).
        """
        if priority not in PRIORITIES:
            raise PolicyError(f"unknown priority {priority!r}")
        return tuple(
            sorted((hours, role) for hours, p, role in self.escalation_ladder if p == priority)
        )

    def resolution_hours(self, priority: str) -> int:
        """Return the hours allowed to resolve an incident of ``priority`` (R-I4: the hour
        of the ladder's top rung by default; counted on the "escalation" clock, D-7).

        Raises :class:`PolicyError` for a priority not in ``PRIORITIES`` (R-I3).
        """
        for name, hours in self.resolution_target_hours:
            if name == priority:
                return hours
        raise PolicyError(f"unknown priority {priority!r}")


#: The policy with every default of SPEC.md.
DEFAULT_POLICY = Policy()
