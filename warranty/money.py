"""Money: CNY amounts as ``Decimal``, with VAT shown per line (D-5).

One rounding rule, :func:`round_money` (half-up to 0.01 CNY, one fen), used per line and
never on totals: a total is the sum of already rounded lines, so the figures a customer
adds up on paper always match the document. Also the ageing buckets of receivables and
the validity of a quote. Pure: no clock, no database.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from .errors import WarrantyError

FEN = Decimal("0.01")
ZERO = Decimal("0.00")
#: Receivable ageing buckets (days past the invoice date): label, first day, last day.
AGEING_BUCKETS: tuple[tuple[str, int, int | None], ...] = (
    ("0-30", 0, 30),
    ("31-60", 31, 60),
    ("61-90", 61, 90),
    ("90+", 91, None),
)


class MoneyError(WarrantyError):
    """An amount, quantity or rate that is not money (negative, not a number, too many
    decimals for the field)."""


def as_decimal(value: object, what: str = "amount") -> Decimal:
    """``value`` (``Decimal``, ``int`` or a decimal string; never ``float``) as a finite
    ``Decimal``. Raises :class:`MoneyError` naming ``what`` otherwise."""
    if isinstance(value, bool) or isinstance(value, float):
        raise MoneyError(f"{what} must be a decimal number, not {value!r}")
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, str):
        text = value.strip().replace(",", "")
        try:
            number = Decimal(text)
        except InvalidOperation:
            raise MoneyError(f"{what} must be a number, not {value!r}") from None
    else:
        raise MoneyError(f"{what} must be a decimal number, not {value!r}")
    if not number.is_finite():
        raise MoneyError(f"{what} must be a finite number, not {value!r}")
    return number


def round_money(value: Decimal | int | str) -> Decimal:
    """Round to the fen, half up (D-5): 0.005 → 0.01, -0.005 → -0.01, 1.234 → 1.23.

    The only rounding of money in the product: line amounts, VAT per line, payments and
    credit notes all pass through it. Totals are sums of rounded amounts."""
    return as_decimal(value).quantize(FEN, rounding=ROUND_HALF_UP)


def parse_amount(value: object, what: str = "amount", *, allow_zero: bool = False) -> Decimal:
    """A user-typed amount: a number with at most two decimals, positive (or zero when
    ``allow_zero``), below 10^10. Returned with exactly two decimals. Raises
    :class:`MoneyError` with a message naming ``what``."""
    number = as_decimal(value, what)
    if number.as_tuple().exponent < -2:  # type: ignore[operator]
        raise MoneyError(f"{what} has more than two decimals (fen): {value!r}")
    if number < 0 or (number == 0 and not allow_zero):
        raise MoneyError(f"{what} must be {'zero or more' if allow_zero else 'more than zero'}")
    if number >= Decimal("1e10"):
        raise MoneyError(f"{what} is too large: {value!r}")
    return number.quantize(FEN)


@dataclass(frozen=True)
class LineAmounts:
    """One document line: ``quantity`` × ``unit_price`` = ``net`` (rounded), ``vat`` =
    ``net`` × ``vat_rate`` (rounded), ``gross`` = ``net`` + ``vat``."""

    quantity: int
    unit_price: Decimal
    vat_rate: Decimal
    net: Decimal
    vat: Decimal
    gross: Decimal


def line_amounts(quantity: int, unit_price: Decimal | int | str,
                 vat_rate: Decimal | int | str) -> LineAmounts:
    """The amounts of one line, VAT per line (D-5). ``quantity`` is a whole number
    (negative only on a credit note); ``unit_price`` and ``vat_rate`` are decimals, the
    rate a fraction (0.13). Raises :class:`MoneyError` on anything else."""
    if isinstance(quantity, bool) or not isinstance(quantity, int):
        raise MoneyError(f"quantity must be a whole number, not {quantity!r}")
    price = as_decimal(unit_price, "unit price")
    rate = as_decimal(vat_rate, "VAT rate")
    if not (Decimal(0) <= rate < Decimal(1)):
        raise MoneyError(f"VAT rate must be at least 0 and below 1, not {vat_rate!r}")
    net = round_money(price * quantity)
    vat = round_money(net * rate)
    return LineAmounts(quantity, price, rate, net, vat, net + vat)


@dataclass(frozen=True)
class Totals:
    net: Decimal
    vat: Decimal
    gross: Decimal


def totals(lines: Iterable[LineAmounts]) -> Totals:
    """Sums of the rounded line amounts (never re-rounded: they are already in fen)."""
    net = vat = ZERO
    for line in lines:
        net += line.net
        vat += line.vat
    return Totals(net, vat, net + vat)


def ageing_bucket(issued_on: date, today: date) -> str:
    """The receivable ageing bucket of an invoice issued on ``issued_on``: "0-30",
    "31-60", "61-90" or "90+" days (an invoice dated in the future counts as 0-30)."""
    days = max((today - issued_on).days, 0)
    for label, first, last in AGEING_BUCKETS:
        if last is None or first <= days <= last:
            return label
    raise AssertionError("unreachable")  # pragma: no cover


def quote_valid_until(issued_on: date, valid_days: int) -> date:
    """The last day a quote issued on ``issued_on`` may be accepted: ``valid_days``
    calendar days later (30 by default, ``Policy.quote_valid_days``)."""
    if valid_days < 1:
        raise MoneyError(f"a quote must be valid at least 1 day, not {valid_days}")
    return issued_on + timedelta(days=valid_days)
