"""Free or paid: the decision for one faulty unit (R-W3, R-W4, R-W5, D-4).

Coverage is judged on the date the fault was reported, in China time, not on the date
the unit was inspected (SPEC "Warranty"): compute :func:`report_date` from the report
instant, then the coverage on that date, then :func:`decide`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from .coverage import Coverage
from .errors import NaiveDatetimeError, UnknownCauseError
from .policy import DEFAULT_POLICY, Policy


class Cause(StrEnum):
    """The cause of a fault, as found by support or on inspection (D-4)."""

    QUALITY_DEFECT = "quality_defect"
    MISUSE_DROP = "misuse_drop"
    MISUSE_HEAT = "misuse_heat"
    MISUSE_WATER = "misuse_water"
    MISUSE_PHYSICAL = "misuse_physical"
    MISUSE_OTHER = "misuse_other"
    NO_FAULT_FOUND = "no_fault_found"

    @property
    def is_misuse(self) -> bool:
        """True for damage from unreasonable use, which is always paid (R-W4)."""
        return self.value.startswith("misuse_")

    @property
    def description(self) -> str:
        """The cause in plain English, e.g. "dropped"."""
        return _DESCRIPTIONS[self]


_DESCRIPTIONS = {
    Cause.QUALITY_DEFECT: "a quality defect",
    Cause.MISUSE_DROP: "dropped",
    Cause.MISUSE_HEAT: "high temperature",
    Cause.MISUSE_WATER: "water",
    Cause.MISUSE_PHYSICAL: "crushed or otherwise physically damaged",
    Cause.MISUSE_OTHER: "other abnormal use",
    Cause.NO_FAULT_FOUND: "no fault found",
}


class Outcome(StrEnum):
    """What happens to a faulty unit."""

    FREE = "free"  # replaced free of charge
    PAID = "paid"  # replaced for a fee
    RETURN_UNIT = "return_unit"  # nothing to replace; the unit goes back


@dataclass(frozen=True)
class Decision:
    """The computed decision for one fault: outcome, the rule id that gave it, a stable
    reason code, and one sentence a customer can read."""

    outcome: Outcome
    rule: str
    reason: str
    explanation: str


def _as_cause(cause: Cause | str) -> Cause:
    try:
        return Cause(cause)
    except ValueError:
        raise UnknownCauseError(
            f"unknown cause {cause!r}; use one of {', '.join(c.value for c in Cause)}"
        ) from None


def _coverage_text(cov: Coverage) -> str:
    reported = f"reported on {cov.on.isoformat()}"
    if cov.end_on is None:
        return f"{reported}; no warranty dates are known for this unit"
    if cov.start_on is not None and cov.on < cov.start_on:
        return f"{reported}, before its warranty starts on {cov.start_on.isoformat()}"
    return f"{reported}; last covered day {cov.end_on.isoformat()}"


def decide(cause: Cause | str, coverage_at_report: Coverage) -> Decision:
    """Return the free/paid decision for a fault of ``cause`` (D-4).

    ``coverage_at_report`` must be the unit's coverage on the report date (see
    :func:`report_date`). In order: ``no_fault_found`` → ``RETURN_UNIT`` (D-4); any
    misuse → ``PAID`` in or out of warranty (R-W4, misuse wins); a quality defect in
    warranty → ``FREE`` (R-W3); a quality defect out of warranty → ``PAID`` (R-W5).
    Raises :class:`UnknownCauseError` for a cause string not in :class:`Cause`.
    """
    cause = _as_cause(cause)
    cov = coverage_at_report
    facts = _coverage_text(cov)
    if cause is Cause.NO_FAULT_FOUND:
        return Decision(
            Outcome.RETURN_UNIT,
            "D-4",
            "no_fault_found",
            f"No fault was found, so nothing is replaced and the unit goes back to the "
            f"customer ({facts}).",
        )
    if cause.is_misuse:
        status = "in warranty" if cov.in_warranty else "out of warranty"
        return Decision(
            Outcome.PAID,
            "R-W4",
            "misuse",
            f"Damage from unreasonable use ({cause.description}) is replaced for a fee, "
            f"in or out of warranty; this unit is {status} ({facts}).",
        )
    if cov.in_warranty:
        return Decision(
            Outcome.FREE,
            "R-W3",
            "quality_defect_in_warranty",
            f"A quality defect within warranty is replaced free of charge ({facts}).",
        )
    return Decision(
        Outcome.PAID,
        "R-W5",
        "out_of_warranty",
        f"The unit is out of warranty, so its replacement is paid ({facts}).",
    )


def report_date(reported_at: datetime, policy: Policy = DEFAULT_POLICY) -> date:
    """Return the date a fault counts as reported: the local date of ``reported_at``
    in ``policy.timezone`` (China time by default; SPEC "Warranty").

    2026-03-10T17:00Z is 2026-03-11 in Asia/Shanghai. Raises
    :class:`NaiveDatetimeError` when ``reported_at`` is not an aware datetime.
    """
    if not isinstance(reported_at, datetime):
        raise NaiveDatetimeError(f"a report instant must be an aware datetime, not {reported_at!r}")
    if reported_at.tzinfo is None or reported_at.utcoffset() is None:
        raise NaiveDatetimeError(
            f"report instant {reported_at.isoformat()} has no time zone; "
            "pass an aware datetime (UTC as stored)"
        )
    return reported_at.astimezone(policy.zone).date()
