"""The price list (issue 5, D-5): dated replacement prices per product model, the
shipping fee, the price of 12 months of paid support (R-C3) and the VAT rate.

Every price is a :class:`PriceEntry` valid from ``valid_from`` through ``valid_to``
(inclusive; open-ended when empty). Entries of one kind (and model) never overlap, so at
most one applies on any date. A quote copies the prices valid on its China issue date
onto its lines: a later price change never alters an issued quote.

Fallbacks when no entry applies: a model's replacement price is the model's own
``replacement_price``; shipping is free (0.00); VAT is the policy's ``vat_rate`` (13 %
by default, D-5); support has no price (a support quote is then refused).

Only finance (or an admin, or the CLI) adds prices; each addition is audited
(``price_entry.created``) and commits once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import or_, select
from sqlalchemy.orm import joinedload

from rma.extensions import db
from rma.models import PriceEntry, PriceKind, ProductModel, Role
from rma.policy import current_policy
from rma.services import ConflictError, ForbiddenError, NotFoundError, ValidationError
from rma.services.audit import Actor, record
from warranty.money import MoneyError, parse_amount

NOTE_MAX = 2000
PRICE_ROLES = frozenset({Role.FINANCE, Role.ADMIN})
ZERO = Decimal("0.00")
RATE_PLACES = Decimal("0.0001")  # PriceEntry.rate is Numeric(6, 4)

KIND_WORDS = {
    PriceKind.REPLACEMENT.value: _l("replacement price"),
    PriceKind.SHIPPING.value: _l("shipping fee"),
    PriceKind.SUPPORT.value: _l("paid support, 12 months"),
    PriceKind.VAT.value: _l("VAT rate"),
}
SOURCE_WORDS = {
    "price list": _l("price list"),
    "model default": _l("model default"),
    "policy": _l("policy default"),
    "none": _l("not set"),
}


@dataclass(frozen=True)
class PriceRow:
    """What applies on a date for one price: ``kind`` (a ``PriceKind`` value), the model
    for replacement prices, the ``amount`` (or the VAT ``rate``), and its ``source``:
    "price list" (``entry`` is the entry), "model default", "policy" (VAT) or "none"
    (no support price, or shipping free by default)."""

    kind: str
    amount: Decimal | None
    rate: Decimal | None
    source: str
    entry: PriceEntry | None = None
    model: ProductModel | None = None

    @property
    def model_code(self) -> str | None:
        return self.model.code if self.model is not None else None

    @property
    def valid_from(self) -> date | None:
        return self.entry.valid_from if self.entry is not None else None

    @property
    def valid_to(self) -> date | None:
        return self.entry.valid_to if self.entry is not None else None


# -- input --------------------------------------------------------------------------------
def _ensure_finance(actor: Actor) -> None:
    user = actor.user
    if user is None:
        return
    if not (user.is_active and Role(user.role) in PRICE_ROLES):
        raise ForbiddenError(_("Your role (%(role)s) may not change the price list.",
                               role=str(user.role)))


def _kind(raw: object) -> PriceKind:
    text = raw.strip().lower() if isinstance(raw, str) else ""
    try:
        return PriceKind(text)
    except ValueError:
        raise ValidationError(_("Choose what the price is for: %(kinds)s.",
                                kinds=", ".join(k.value for k in PriceKind)), "kind") from None


def _date(raw: object, field: str, *, required: bool) -> date | None:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        if required:
            raise ValidationError(_("Enter a date (YYYY-MM-DD)."), field)
        return None
    if isinstance(raw, date):
        return raw
    if isinstance(raw, str):
        try:
            return date.fromisoformat(raw.strip())
        except ValueError:
            pass
    raise ValidationError(_("%(value)s is not a date (YYYY-MM-DD).", value=repr(raw)[:40]),
                          field)


def parse_rate(raw: object) -> Decimal:
    """A VAT rate typed as a fraction ("0.13") or a percentage ("13%", "13 %"): the
    fraction, at least 0 and below 1, at most 4 decimals. ``ValidationError`` on
    field "rate" otherwise."""
    if isinstance(raw, Decimal):
        number = raw
    elif isinstance(raw, str) and raw.strip():
        text = raw.strip().replace(" ", "")
        percent = text.endswith("%")
        try:
            number = Decimal(text.rstrip("%"))
        except InvalidOperation:
            number = None
        if number is not None and percent:
            number = number / 100
    else:
        number = None
    if number is None or not number.is_finite():
        raise ValidationError(_("Enter the VAT rate as a fraction (0.13) or a percentage "
                                "(13%)."), "rate")
    if not Decimal(0) <= number < Decimal(1):
        raise ValidationError(_("The VAT rate must be at least 0 and below 100%."), "rate")
    if number != number.quantize(RATE_PLACES):
        raise ValidationError(_("The VAT rate has more than 4 decimals."), "rate")
    return number.quantize(RATE_PLACES)


def _amount(raw: object, allow_zero: bool) -> Decimal:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        raise ValidationError(_("Enter the amount in CNY."), "amount")
    try:
        return parse_amount(raw, "amount", allow_zero=allow_zero)
    except MoneyError:
        if allow_zero:
            message = _("Enter an amount in CNY, zero or more, with at most two decimals.")
        else:
            message = _("Enter an amount in CNY, more than zero, with at most two decimals.")
        raise ValidationError(message, "amount") from None


def _model(raw: object) -> ProductModel:
    code = raw.strip().upper() if isinstance(raw, str) else ""
    if not code:
        raise ValidationError(_("Choose the product model of the replacement price."),
                              "model_code")
    model = db.session.scalar(select(ProductModel).where(ProductModel.code == code))
    if model is None:
        raise ValidationError(_("There is no product model %(code)s.", code=code[:40]),
                              "model_code")
    return model


def describe_entry(entry: PriceEntry) -> str:
    """"the replacement price of TK3 valid from 2026-01-01 through 2026-05-31 (entry #3)",
    in the current language."""
    what = str(KIND_WORDS.get(str(entry.kind), str(entry.kind)))
    if entry.model is not None:
        what = _("%(what)s of %(model)s", what=what, model=entry.model.code)
    if entry.valid_to is None:
        return _("the %(what)s valid from %(start)s (entry #%(id)d)", what=what,
                 start=entry.valid_from.isoformat(), id=entry.id)
    return _("the %(what)s valid from %(start)s through %(end)s (entry #%(id)d)", what=what,
             start=entry.valid_from.isoformat(), end=entry.valid_to.isoformat(), id=entry.id)


# -- writing ------------------------------------------------------------------------------
def add_price(actor: Actor, *, kind: str, valid_from: date | str,
              amount: Decimal | str | None = None, rate: Decimal | str | None = None,
              model_code: str | None = None, valid_to: date | str | None = None,
              note: str = "") -> PriceEntry:
    """Add a dated price (finance or admin; ``ForbiddenError`` otherwise), D-5.

    ``kind`` is a ``PriceKind`` value. ``replacement`` needs ``model_code``; ``vat`` needs
    ``rate`` (a fraction "0.13" or "13%"); the others ``amount`` (two decimals at most,
    more than zero; zero allowed for shipping). An open-ended entry of the same kind (and
    model) that started earlier is closed the day before ``valid_from``; an entry that
    would start on the same day as another, or overlap another, is refused with a
    ``ConflictError`` naming it. Bad input → ``ValidationError`` with its field. Audited
    (``price_entry.created``; a closed entry ``price_entry.closed``); commits once."""
    _ensure_finance(actor)
    wanted = _kind(kind)
    start = _date(valid_from, "valid_from", required=True)
    end = _date(valid_to, "valid_to", required=False)
    if end is not None and end < start:
        raise ValidationError(_("The last valid day cannot be before the first."), "valid_to")
    if not isinstance(note, str):
        raise ValidationError(_("This value must be text."), "note")
    note = note.strip()
    if len(note) > NOTE_MAX:
        raise ValidationError(_("At most %(max)d characters.", max=NOTE_MAX), "note")
    model = _model(model_code) if wanted is PriceKind.REPLACEMENT else None
    if wanted is PriceKind.VAT:
        value_amount, value_rate = None, parse_rate(rate)
    else:
        value_amount, value_rate = _amount(amount, wanted is PriceKind.SHIPPING), None
    try:
        same = (PriceEntry.model_id == model.id) if model is not None \
            else PriceEntry.model_id.is_(None)
        others = list(db.session.scalars(
            select(PriceEntry).where(PriceEntry.kind == wanted, same)
            .options(joinedload(PriceEntry.model))
            .order_by(PriceEntry.valid_from).with_for_update(of=PriceEntry)
            .execution_options(populate_existing=True)))
        closing = None
        for other in others:
            if other.valid_from == start:
                raise ConflictError(_("A price already starts on %(date)s: %(entry)s.",
                                      date=start.isoformat(), entry=describe_entry(other)),
                                    "valid_from")
            if other.valid_to is None and other.valid_from < start:
                closing = other
        for other in others:
            other_end = (start - timedelta(days=1)) if other is closing else other.valid_to
            overlaps = other.valid_from <= (end or date.max) and start <= (other_end or date.max)
            if overlaps:
                raise ConflictError(_("The new price would overlap %(entry)s.",
                                      entry=describe_entry(other)), "valid_from")
        if closing is not None:
            before = closing.as_audit()
            closing.valid_to = start - timedelta(days=1)
            db.session.flush()
            record(actor, "price_entry.closed", "price_entry", closing.id, before,
                   closing.as_audit())
        entry = PriceEntry(kind=wanted, model_id=model.id if model is not None else None,
                           amount=value_amount, rate=value_rate, valid_from=start,
                           valid_to=end, note=note,
                           created_by_id=actor.user.id if actor.user is not None else None)
        db.session.add(entry)
        db.session.flush()
        record(actor, "price_entry.created", "price_entry", entry.id, None,
               {**entry.as_audit(), "model_code": model.code if model is not None else None,
                "closed_entry_id": closing.id if closing is not None else None})
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    return entry


# -- reading ------------------------------------------------------------------------------
def _valid_on(on: date):
    return (PriceEntry.valid_from <= on,
            or_(PriceEntry.valid_to.is_(None), PriceEntry.valid_to >= on))


def entry_on(kind: PriceKind | str, on: date, model_id: int | None = None) -> PriceEntry | None:
    """The entry of ``kind`` (and model) valid on ``on``, or None."""
    same = PriceEntry.model_id == model_id if model_id is not None \
        else PriceEntry.model_id.is_(None)
    return db.session.scalar(
        select(PriceEntry).where(PriceEntry.kind == PriceKind(kind), same, *_valid_on(on))
        .order_by(PriceEntry.valid_from.desc()).limit(1))


def replacement_price_on(model: ProductModel, on: date) -> Decimal:
    """The replacement price of ``model`` valid on ``on``: the price list's entry, else the
    model's own ``replacement_price``."""
    entry = entry_on(PriceKind.REPLACEMENT, on, model.id)
    if entry is not None:
        return entry.amount
    return Decimal(model.replacement_price or 0).quantize(Decimal("0.01"))


def shipping_fee_on(on: date) -> Decimal:
    """The shipping fee valid on ``on`` (0.00 without an entry)."""
    entry = entry_on(PriceKind.SHIPPING, on)
    return entry.amount if entry is not None else ZERO


def support_price_on(on: date) -> Decimal | None:
    """The price of 12 months of paid support valid on ``on`` (R-C3), or None."""
    entry = entry_on(PriceKind.SUPPORT, on)
    return entry.amount if entry is not None else None


def vat_rate_on(on: date) -> Decimal:
    """The VAT rate valid on ``on`` (a fraction): the price list's, else the policy's
    (D-5)."""
    entry = entry_on(PriceKind.VAT, on)
    return entry.rate if entry is not None else Decimal(current_policy().vat_rate)


def price_list(on: date) -> list[PriceRow]:
    """What applies on ``on``: every product model's replacement price (source "price
    list" or "model default"), then shipping, support and VAT. Two queries."""
    entries = db.session.scalars(select(PriceEntry).where(*_valid_on(on))
                                 .order_by(PriceEntry.valid_from)).all()
    by_key = {(str(e.kind), e.model_id): e for e in entries}
    rows = []
    for model in db.session.scalars(select(ProductModel).order_by(ProductModel.code)):
        entry = by_key.get((PriceKind.REPLACEMENT.value, model.id))
        if entry is not None:
            rows.append(PriceRow(PriceKind.REPLACEMENT.value, entry.amount, None,
                                 "price list", entry, model))
        else:
            rows.append(PriceRow(PriceKind.REPLACEMENT.value,
                                 Decimal(model.replacement_price or 0).quantize(Decimal("0.01")),
                                 None, "model default", None, model))
    for kind in (PriceKind.SHIPPING, PriceKind.SUPPORT):
        entry = by_key.get((kind.value, None))
        if entry is not None:
            rows.append(PriceRow(kind.value, entry.amount, None, "price list", entry))
        elif kind is PriceKind.SHIPPING:
            rows.append(PriceRow(kind.value, ZERO, None, "none"))
        else:
            rows.append(PriceRow(kind.value, None, None, "none"))
    entry = by_key.get((PriceKind.VAT.value, None))
    if entry is not None:
        rows.append(PriceRow(PriceKind.VAT.value, None, entry.rate, "price list", entry))
    else:
        rows.append(PriceRow(PriceKind.VAT.value, None, Decimal(current_policy().vat_rate),
                             "policy"))
    return rows


def price_history(kind: str | None = None, model_id: int | None = None) -> list[PriceEntry]:
    """Every entry (optionally of one ``kind`` and/or model), by kind, model and newest
    first; with the model loaded. ``ValidationError`` on an unknown kind."""
    stmt = select(PriceEntry).options(joinedload(PriceEntry.model))
    if kind:
        stmt = stmt.where(PriceEntry.kind == _kind(kind))
    if model_id is not None:
        stmt = stmt.where(PriceEntry.model_id == model_id)
    return list(db.session.scalars(
        stmt.order_by(PriceEntry.kind, PriceEntry.model_id, PriceEntry.valid_from.desc())))


def get_price_entry(entry_id: object) -> PriceEntry:
    """One entry by id, or ``NotFoundError``."""
    try:
        key = int(entry_id)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        key = None
    entry = db.session.get(PriceEntry, key) if key is not None else None
    if entry is None:
        raise NotFoundError(_("There is no such price entry."), "entry")
    return entry


__all__ = ["KIND_WORDS", "PRICE_ROLES", "SOURCE_WORDS", "PriceRow", "add_price",
           "describe_entry", "entry_on", "get_price_entry", "parse_rate", "price_history",
           "price_list", "replacement_price_on", "shipping_fee_on", "support_price_on",
           "vat_rate_on"]
