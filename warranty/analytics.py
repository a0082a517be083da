"""Failure analytics (issue 7): return rates, flagged lots, months of service.

A *return* is an RMA item (of any status but rejected) naming a unit; a *rate* is
returns per 100 units shipped. The app counts in the database and hands the counts
here; nothing in this module reads a clock or a database.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

from ._checks import require_date
from .errors import FactError
from .policy import DEFAULT_POLICY, Policy

_TENTH = Decimal("0.1")


def _count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise FactError(f"{name} must be a whole number >= 0, not {value!r}")
    return value


def exact_rate(returns: int, shipped: int) -> Fraction | None:
    """Return ``returns`` per 100 ``shipped`` as an exact fraction, or None when nothing
    was shipped. Raises :class:`FactError` for a count that is not a whole number >= 0."""
    returns, shipped = _count("returns", returns), _count("shipped", shipped)
    if shipped == 0:
        return None
    return Fraction(100 * returns, shipped)


def rate(returns: int, shipped: int) -> Decimal | None:
    """Return the return rate in percent, one decimal, rounded half up: 40 returns of
    1,000 units shipped → ``Decimal("4.0")``; 1 of 3 → ``Decimal("33.3")``; 1 of 8 →
    ``Decimal("12.5")``; 1 of 16 → ``Decimal("6.3")``. None when nothing was shipped.

    Raises :class:`FactError` for a count that is not a whole number >= 0.
    """
    exact = exact_rate(returns, shipped)
    if exact is None:
        return None
    return (Decimal(exact.numerator) / Decimal(exact.denominator)).quantize(
        _TENTH, rounding=ROUND_HALF_UP
    )


@dataclass(frozen=True)
class LotCount:
    """One lot of a product model: units of it shipped and returns of those units."""

    model: Hashable
    lot: str
    shipped: int
    returns: int

    @property
    def key(self) -> tuple[Hashable, str]:
        return (self.model, self.lot)


def flag_lots(
    rows: Iterable[LotCount],
    model_rates: Mapping[Hashable, Fraction | Decimal | None],
    policy: Policy = DEFAULT_POLICY,
) -> set[tuple[Hashable, str]]:
    """Return the ``(model, lot)`` keys of the lots whose failure rate is far above their
    model's (issue 7): at least ``policy.lot_flag_min_returns`` (5) returns (tiny lots are
    noise) and a rate of at least ``policy.lot_flag_ratio`` (2) times the model's rate
    in ``model_rates`` (percent; pass the exact :func:`exact_rate`, not the rounded one,
    so a lot exactly at twice the rate is flagged). A lot of a model with no rate (or a
    rate of 0) is never flagged. Raises :class:`FactError` for bad counts.
    """
    flagged = set()
    for row in rows:
        lot_rate = exact_rate(row.returns, row.shipped)
        model_rate = model_rates.get(row.model)
        if lot_rate is None or model_rate is None or model_rate <= 0:
            continue
        if row.returns < policy.lot_flag_min_returns:
            continue
        if lot_rate >= Fraction(policy.lot_flag_ratio) * Fraction(model_rate):
            flagged.add(row.key)
    return flagged


def months_of_service(shipped_on: date, reported_on: date) -> int:
    """Return the whole months of service a unit had when its fault was reported, by the
    SPEC month rule: n months are complete once the day after the last day n months from
    ``shipped_on`` cover has come. Shipped 2026-01-15: reported 2026-02-14 → 0, 2026-02-15
    → 1; shipped 2024-01-31: reported 2024-02-29 → 0 (one month covers through Feb 29),
    2024-03-01 → 1. The same day → 0.

    Equivalent to (month difference) − 1 when the report's day of the month is before
    the ship day, which is how the database computes it. Raises :class:`FactError` unless
    both are dates and ``reported_on`` is not before ``shipped_on``.
    """
    require_date("shipped_on", shipped_on, FactError)
    require_date("reported_on", reported_on, FactError)
    if reported_on < shipped_on:
        raise FactError(
            f"reported on {reported_on.isoformat()}, before it shipped on "
            f"{shipped_on.isoformat()}"
        )
    months = (reported_on.year - shipped_on.year) * 12 + reported_on.month - shipped_on.month
    return months - (1 if reported_on.day < shipped_on.day else 0)


@dataclass(frozen=True)
class Bucket:
    """A histogram bar of months of service: ``low`` through ``high`` (None: no end)."""

    low: int
    high: int | None

    @property
    def label(self) -> str:
        """"0–2", "3–5", ..., "36+" (language-neutral)."""
        if self.high is None:
            return f"{self.low}+"
        if self.high == self.low:
            return str(self.low)
        return f"{self.low}\u2013{self.high}"

    def holds(self, months: int) -> bool:
        return months >= self.low and (self.high is None or months <= self.high)


#: The time-to-failure bars: quarters in the first year, then half-years, then years.
MONTH_BUCKETS: tuple[Bucket, ...] = (
    Bucket(0, 2), Bucket(3, 5), Bucket(6, 8), Bucket(9, 11), Bucket(12, 17), Bucket(18, 23),
    Bucket(24, 35), Bucket(36, 47), Bucket(48, 59), Bucket(60, None),
)


def histogram(
    counts: Mapping[int, int], buckets: tuple[Bucket, ...] = MONTH_BUCKETS
) -> list[tuple[Bucket, int]]:
    """Return every bucket (empty ones too) with the returns whose months of service it
    holds, from ``counts`` (months of service → returns). Negative months (a report
    before the ship date, bad data) are left out: the caller shows them as unknown.
    Raises :class:`FactError` for a count that is not a whole number >= 0."""
    totals = dict.fromkeys(buckets, 0)
    for months, n in counts.items():
        n = _count("count", n)
        for bucket in buckets:
            if bucket.holds(months):
                totals[bucket] += n
                break
    return [(bucket, totals[bucket]) for bucket in buckets]
