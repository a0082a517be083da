"""Warranty coverage of one unit on one date (SPEC "Warranty", R-W1, R-W2).

A unit's warranty starts on the date its product model names (the ship date by
default, the activation date, or the day after the customer's acceptance) and lasts
the model's life in months under the Month rule. A replacement unit follows the
policy's replacement rule; the chain original → replacement → ... is kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum

from ._checks import is_whole_number, require_date
from .errors import FactError, PolicyError
from .months import last_covered_day
from .policy import DEFAULT_POLICY, Policy

_ONE_DAY = timedelta(days=1)


class Basis(StrEnum):
    """The date a product model's warranty starts from (SPEC "Warranty")."""

    SHIP = "ship"
    ACTIVATION = "activation"
    ACCEPTANCE = "acceptance"  # the day after the customer's acceptance date


class ReplacementPolicy(StrEnum):
    """How a replacement unit's warranty is set (SPEC "Warranty"; ``Policy`` setting)."""

    INHERIT = "inherit"  # the original's last covered day
    FRESH = "fresh"  # the model's full life from the replacement's ship date
    INHERIT_MIN_DAYS = "inherit_min_days"  # the later of the two: inherit, or ship + N days


class BasisUsed(StrEnum):
    """The values of :attr:`Coverage.basis_used` (stored there as plain ``str``)."""

    SHIP = "ship"
    ACTIVATION = "activation"
    ACCEPTANCE = "acceptance"
    SHIP_FALLBACK = "ship_fallback"  # the chosen date is unknown; the ship date stood in
    REPLACEMENT_INHERIT = "replacement_inherit"
    REPLACEMENT_FRESH = "replacement_fresh"
    REPLACEMENT_INHERIT_MIN_DAYS = "replacement_inherit_min_days"
    NOT_SHIPPED = "not_shipped"


@dataclass(frozen=True)
class UnitFacts:
    """What the core needs to know about one unit to compute its coverage.

    ``life_months`` is the product model's life (R-W1 for software, R-W2 for hardware);
    ``basis`` is the model's start rule (a ``Basis`` or its string value);
    ``acceptance_on`` is the customer's acceptance date (the warranty starts the day
    after it); ``replaces`` is the unit this one replaced, itself possibly a
    replacement. Raises :class:`PolicyError` for an unknown basis or a life below one
    month, :class:`FactError` for a value that is not a date.
    """

    serial: str
    life_months: int
    basis: Basis
    shipped_on: date | None
    activated_on: date | None = None
    acceptance_on: date | None = None
    replaces: UnitFacts | None = None

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "basis", Basis(self.basis))
        except ValueError:
            raise PolicyError(
                f"unknown warranty basis {self.basis!r}; use one of "
                f"{', '.join(b.value for b in Basis)}"
            ) from None
        months = self.life_months
        if not is_whole_number(months) or months < 1:
            raise PolicyError(
                f"a model's life must be a whole number of months >= 1, not {months!r}"
            )
        for name in ("shipped_on", "activated_on", "acceptance_on"):
            if (value := getattr(self, name)) is not None:
                require_date(name, value, FactError)
        if self.replaces is not None and not isinstance(self.replaces, UnitFacts):
            raise FactError(f"replaces must be UnitFacts, not {self.replaces!r}")


@dataclass(frozen=True)
class Coverage:
    """A unit's warranty as judged on the date ``on``.

    ``end_on`` is the last covered day. ``in_warranty`` is ``start_on <= on <= end_on``
    (False when either bound is unknown). ``days_left`` counts covered days from ``on``
    through ``end_on`` inclusive: 1 on the last covered day, 0 out of warranty.
    ``basis_used`` is a :class:`BasisUsed` value; ``chain`` lists serials from the
    original unit to this one; ``note`` explains in plain English how the dates were
    found.
    """

    serial: str
    start_on: date | None
    end_on: date | None
    basis_requested: Basis
    basis_used: str
    on: date
    in_warranty: bool
    days_left: int
    chain: tuple[str, ...] = ()
    note: str = ""


@dataclass(frozen=True)
class _Span:
    start_on: date | None
    end_on: date | None
    basis_used: str
    note: str


def chain_units(unit: UnitFacts) -> tuple[UnitFacts, ...]:
    """Return the replacement chain ending in ``unit``, the original unit first.

    Raises :class:`FactError` when the chain loops back on itself.
    """
    units = []
    seen: set[int] = set()
    current: UnitFacts | None = unit
    while current is not None:
        if id(current) in seen:
            raise FactError(f"the replacement chain of {unit.serial!r} loops")
        seen.add(id(current))
        units.append(current)
        current = current.replaces
    units.reverse()
    return tuple(units)


def chain_serials(unit: UnitFacts) -> tuple[str, ...]:
    """Return the serials of the replacement chain ending in ``unit``, original first."""
    return tuple(u.serial for u in chain_units(unit))


def _own_span(unit: UnitFacts) -> _Span:
    """The span of a unit that replaced nothing: its model's start rule and life."""
    basis = unit.basis
    if basis is Basis.ACTIVATION and unit.activated_on is not None:
        start, used, note = unit.activated_on, BasisUsed.ACTIVATION, "activation date used"
    elif basis is Basis.ACCEPTANCE and unit.acceptance_on is not None:
        start, used = unit.acceptance_on + _ONE_DAY, BasisUsed.ACCEPTANCE
        note = f"day after acceptance ({unit.acceptance_on.isoformat()}) used"
    elif unit.shipped_on is None:
        return _Span(
            None,
            None,
            BasisUsed.NOT_SHIPPED.value,
            f"not shipped and no {basis.value} date known; no warranty yet",
        )
    elif basis is Basis.SHIP:
        start, used, note = unit.shipped_on, BasisUsed.SHIP, "ship date used"
    else:
        start, used = unit.shipped_on, BasisUsed.SHIP_FALLBACK
        note = f"{basis.value} date unknown; ship date used"
    end = last_covered_day(start, unit.life_months)
    return _Span(start, end, used.value, f"{note}; {unit.life_months} months")


def _replacement_span(unit: UnitFacts, original: _Span, policy: Policy) -> _Span:
    """The span of a replacement unit under the policy's replacement rule."""
    rule = ReplacementPolicy(policy.replacement_policy)
    of = f"replaces {unit.replaces.serial}"
    if unit.shipped_on is None:
        return _Span(
            None,
            None,
            BasisUsed.NOT_SHIPPED.value,
            f"{of}; replacement not shipped yet; no warranty yet",
        )
    start = unit.shipped_on
    inherited = original.end_on
    inherited_text = inherited.isoformat() if inherited else "unknown"
    if rule is ReplacementPolicy.INHERIT:
        return _Span(
            start,
            inherited,
            BasisUsed.REPLACEMENT_INHERIT.value,
            f"{of}; keeps the original's last covered day ({inherited_text})",
        )
    if rule is ReplacementPolicy.FRESH:
        end = last_covered_day(start, unit.life_months)
        return _Span(
            start,
            end,
            BasisUsed.REPLACEMENT_FRESH.value,
            f"{of}; full {unit.life_months} months from its ship date",
        )
    floor = start + timedelta(days=policy.replacement_min_days)
    floor_text = f"ship date + {policy.replacement_min_days} days ({floor.isoformat()})"
    if inherited is None:
        end, why = floor, f"the original's last covered day is unknown; {floor_text} used"
    elif inherited >= floor:
        end, why = (
            inherited,
            f"the original's last covered day ({inherited_text}) is not earlier than {floor_text}",
        )
    else:
        end, why = (
            floor,
            f"{floor_text} is later than the original's last covered day ({inherited_text})",
        )
    return _Span(start, end, BasisUsed.REPLACEMENT_INHERIT_MIN_DAYS.value, f"{of}; {why}")


def coverage(unit: UnitFacts, on: date, policy: Policy = DEFAULT_POLICY) -> Coverage:
    """Return ``unit``'s warranty coverage judged on the date ``on`` (R-W1, R-W2).

    Start (SPEC "Warranty"): the ship date for ``Basis.SHIP``; the activation date for
    ``Basis.ACTIVATION``; the day after the acceptance date for ``Basis.ACCEPTANCE``.
    When the chosen date is unknown the ship date stands in (``"ship_fallback"``); with
    no usable date at all the unit has no warranty yet (``"not_shipped"``, both bounds
    ``None``). The last covered day is :func:`last_covered_day` of the start and the
    model's life.

    A replacement unit (``replaces`` set) starts on its own ship date and ends by
    ``policy.replacement_policy``: ``inherit`` keeps the original's last covered day
    (worked out along the whole chain), ``fresh`` gives its model's full life from its
    ship date, ``inherit_min_days`` takes the later of the original's last covered day
    and its ship date + ``policy.replacement_min_days`` days. Under ``inherit`` that
    end can fall before the start; such a unit is never in warranty.

    ``on`` is judged as given: for a fault, pass the report date (see
    ``decision.report_date``). Raises :class:`FactError` when ``on`` is not a date.
    """
    require_date("on", on, FactError)
    units = chain_units(unit)
    span = _own_span(units[0])
    for replacement in units[1:]:
        span = _replacement_span(replacement, span, policy)
    start, end = span.start_on, span.end_on
    in_warranty = start is not None and end is not None and start <= on <= end
    return Coverage(
        serial=unit.serial,
        start_on=start,
        end_on=end,
        basis_requested=unit.basis,
        basis_used=span.basis_used,
        on=on,
        in_warranty=in_warranty,
        days_left=(end - on).days + 1 if in_warranty else 0,
        chain=tuple(u.serial for u in units),
        note=span.note,
    )
