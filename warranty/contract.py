"""Contract terms: the project service term and paid support after it (R-C2, R-C3).

Terms follow the Month rule (:func:`warranty.months.last_covered_day`) and are
inclusive at both ends.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta

from ._checks import require_date
from .errors import ContractError
from .months import last_covered_day

_ONE_DAY = timedelta(days=1)
TERM_KINDS = ("project_term", "paid_support")


@dataclass(frozen=True)
class Term:
    """A covered period, ``start_on`` through ``end_on`` inclusive.

    ``kind`` is "project_term" (R-C2) or "paid_support" (R-C3). Raises
    :class:`ContractError` when the term ends before it starts or the kind is unknown.
    """

    start_on: date
    end_on: date
    kind: str

    def __post_init__(self) -> None:
        require_date("start_on", self.start_on, ContractError)
        require_date("end_on", self.end_on, ContractError)
        if self.end_on < self.start_on:
            raise ContractError(
                f"a term cannot end ({self.end_on.isoformat()}) before it starts "
                f"({self.start_on.isoformat()})"
            )
        if self.kind not in TERM_KINDS:
            raise ContractError(
                f"term kind must be one of {', '.join(TERM_KINDS)}, not {self.kind!r}"
            )

    def covers(self, on: date) -> bool:
        """True when ``on`` lies inside the term, both ends included."""
        return self.start_on <= on <= self.end_on


def project_term(acceptance_on: date, months: int = 12) -> Term:
    """Return the project service term (R-C2): ``months`` months from the day after
    the acceptance certificate is signed.

    Acceptance 2026-03-10 → 2026-03-11 through 2027-03-10. Raises
    :class:`PolicyError` when ``months`` < 1.
    """
    require_date("acceptance_on", acceptance_on, ContractError)
    start = acceptance_on + _ONE_DAY
    return Term(start, last_covered_day(start, months), "project_term")


def renewal_term_from(start_on: date, months: int = 12) -> Term:
    """Return a paid-support term (R-C3) of ``months`` months starting on ``start_on``
    (support bought after a gap starts when it is bought)."""
    require_date("start_on", start_on, ContractError)
    return Term(start_on, last_covered_day(start_on, months), "paid_support")


def renewal_term(previous_end_on: date, months: int = 12) -> Term:
    """Return a paid-support term (R-C3) that continues, without a gap, a term whose
    last covered day is ``previous_end_on``."""
    require_date("previous_end_on", previous_end_on, ContractError)
    return renewal_term_from(previous_end_on + _ONE_DAY, months)


@dataclass(frozen=True)
class ContractStatus:
    """Whether a contract covers the date ``on``, and why.

    ``term`` is the term covering ``on`` (``None`` when not covered). ``reason`` is one
    of "project_term", "paid_support", "before_term", "not_accepted", "expired";
    ``rule`` is "R-C2" (the project term decides) or "R-C3" (after the term).
    """

    on: date
    covered: bool
    term: Term | None
    reason: str
    rule: str


def contract_status(
    acceptance_on: date | None,
    on: date,
    months: int = 12,
    renewals: Iterable[Term] = (),
) -> ContractStatus:
    """Return whether the contract covers the date ``on`` (R-C2, R-C3).

    No acceptance yet → not covered ("not_accepted"). Up to and including the
    acceptance date → "before_term". Inside the project term (:func:`project_term`
    with ``months``) → covered. After it, covered only on days inside one of the
    paid-support ``renewals`` ("paid_support"), else "expired". Raises
    :class:`ContractError` when a renewal is not a paid-support :class:`Term`.
    """
    require_date("on", on, ContractError)
    if acceptance_on is None:
        return ContractStatus(on, False, None, "not_accepted", "R-C2")
    term = project_term(acceptance_on, months)
    if on < term.start_on:
        return ContractStatus(on, False, None, "before_term", "R-C2")
    if term.covers(on):
        return ContractStatus(on, True, term, "project_term", "R-C2")
    for renewal in renewals:
        if not isinstance(renewal, Term) or renewal.kind != "paid_support":
            raise ContractError(f"a renewal must be a paid-support Term, not {renewal!r}")
        if renewal.covers(on):
            return ContractStatus(on, True, renewal, "paid_support", "R-C3")
    return ContractStatus(on, False, None, "expired", "R-C3")
