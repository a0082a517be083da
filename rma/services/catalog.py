"""Product models and customers."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date
from decimal import Decimal, InvalidOperation

from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from rma import clock
from rma.extensions import db
from rma.models import Customer, ProductKind, ProductModel
from rma.services import ConflictError, NotFoundError, ValidationError
from rma.services.audit import Actor, record
from rma.services.numbers import contract_number
from warranty import Basis

MODEL_CODE = re.compile(r"^[A-Z0-9][A-Z0-9_-]{0,31}$")
MAX_LIFE_MONTHS = 240


def _code(raw: str) -> str:
    code = (raw or "").strip().upper()
    if not MODEL_CODE.match(code):
        raise ValidationError(
            f"code '{raw}' is not valid: use 1 to 32 characters A-Z, 0-9, '-' or '_'", "code"
        )
    return code


def _choice(enum_cls, raw, field: str):
    try:
        return enum_cls(str(raw).strip().lower())
    except ValueError:
        allowed = ", ".join(m.value for m in enum_cls)
        raise ValidationError(f"{field} '{raw}' is not one of: {allowed}", field) from None


def _life(raw) -> int:
    try:
        months = int(raw)
    except (TypeError, ValueError):
        raise ValidationError(f"life_months '{raw}' is not a whole number", "life_months") from None
    if not 1 <= months <= MAX_LIFE_MONTHS:
        raise ValidationError(
            f"life_months {months} is out of range (1 to {MAX_LIFE_MONTHS})", "life_months"
        )
    return months


def _price(raw, field: str = "replacement_price") -> Decimal:
    try:
        price = Decimal(str(raw if raw not in (None, "") else "0")).quantize(Decimal("0.01"))
    except InvalidOperation:
        raise ValidationError(f"{field} '{raw}' is not an amount", field) from None
    if not price.is_finite() or price < 0 or price >= Decimal("10000000000"):
        raise ValidationError(f"{field} {price} is out of range", field)
    return price


def _model_audit(model: ProductModel) -> dict:
    # ProductModel.as_audit predates unit_cost (issue 7): record it too.
    return {**model.as_audit(), "unit_cost": str(model.unit_cost)}


def _name(raw: str, field: str = "name") -> str:
    name = (raw or "").strip()
    if not name:
        raise ValidationError(f"{field} is empty", field)
    if len(name) > 200:
        raise ValidationError(f"{field} is longer than 200 characters", field)
    return name


def create_product_model(
    actor: Actor,
    code: str,
    name: str,
    kind: str,
    life_months: int | str,
    basis: str = "ship",
    replacement_price: Decimal | str | None = None,
    unit_cost: Decimal | str | None = None,
) -> ProductModel:
    """Add a product model; its life in months is its warranty (R-W1, R-W2). Its
    ``unit_cost`` (what one unit costs the vendor) prices a free replacement in the
    failure analytics (issue 7)."""
    model = ProductModel(
        code=_code(code),
        name=_name(name),
        kind=_choice(ProductKind, kind, "kind"),
        life_months=_life(life_months),
        warranty_basis=_choice(Basis, basis, "basis"),
        replacement_price=_price(replacement_price),
        unit_cost=_price(unit_cost, "unit_cost"),
    )
    if db.session.scalar(select(ProductModel.id).where(ProductModel.code == model.code)):
        raise ConflictError(f"product model {model.code} already exists", "code")
    try:
        db.session.add(model)
        db.session.flush()
        record(actor, "product_model.created", "product_model", model.code, None,
               _model_audit(model))
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return model


def update_product_model(actor: Actor, model_id: int, **fields) -> ProductModel:
    """Change a model's name, kind, life, basis, price or unit cost. A change of life or basis
    changes the warranty of every unit of the model; the audit keeps the old values."""
    model = db.session.get(ProductModel, model_id)
    if model is None:
        raise NotFoundError("no such product model")
    before = _model_audit(model)
    try:
        if "name" in fields:
            model.name = _name(fields["name"])
        if "kind" in fields:
            model.kind = _choice(ProductKind, fields["kind"], "kind")
        if "life_months" in fields:
            model.life_months = _life(fields["life_months"])
        if "basis" in fields:
            model.warranty_basis = _choice(Basis, fields["basis"], "basis")
        if "replacement_price" in fields:
            model.replacement_price = _price(fields["replacement_price"])
        if "unit_cost" in fields:
            model.unit_cost = _price(fields["unit_cost"], "unit_cost")
        after = _model_audit(model)
        if after != before:
            record(actor, "product_model.updated", "product_model", model.code, before, after)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return model


def set_successors(actor: Actor, model_id: int, successor_ids: Iterable[int | str]
                   ) -> ProductModel:
    """Set the models that may ship as a replacement for ``model_id`` (issue 4: a spare
    must be of the same model or a successor the admin allowed). Replaces the whole
    list; an empty list allows the same model only. Audited with the model codes before
    and after when the list changes.

    Raises ``NotFoundError`` for an unknown ``model_id`` and ``ValidationError`` (field
    ``successors``) for the model itself, an id that is not a whole number or an id of
    no model; nothing is changed then. ``ConflictError`` when another change of the same
    list was committed at the same moment (try again)."""
    model = db.session.get(ProductModel, model_id)
    if model is None:
        raise NotFoundError(_("No such product model."))
    try:
        wanted = _model_ids(successor_ids)
        if model.id in wanted:
            raise ValidationError(
                _("%(code)s cannot be its own replacement model: the same model is always "
                  "allowed.", code=model.code), "successors")
        found = db.session.scalars(
            select(ProductModel).where(ProductModel.id.in_(wanted)).order_by(ProductModel.code)
        ).all() if wanted else []
        unknown = sorted(wanted - {m.id for m in found})
        if unknown:
            raise ValidationError(
                _("No product model has the id %(ids)s.", ids=", ".join(map(str, unknown))),
                "successors")
        before = [m.code for m in model.successors]
        after = [m.code for m in found]
        if after != before:
            model.successors = list(found)
            record(actor, "product_model.successors_set", "product_model", model.code,
                   {"successors": before}, {"successors": after})
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise ConflictError(
            _("The replacement models of %(code)s were changed at the same moment by "
              "someone else: reload the page and try again.", code=model.code),
            "successors") from None
    except Exception:
        db.session.rollback()
        raise
    return model


def _model_ids(raw: Iterable[int | str]) -> set[int]:
    ids = set()
    for value in raw or ():
        try:
            if isinstance(value, bool):
                raise ValueError
            ids.add(int(str(value).strip()))
        except (TypeError, ValueError):
            raise ValidationError(
                _("%(value)s is not a product model id.", value=repr(value)), "successors"
            ) from None
    return ids


def parse_date(raw, field: str) -> date | None:
    if raw in (None, ""):
        return None
    if isinstance(raw, date):
        return raw
    text = str(raw).strip()
    try:
        if len(text) != 10:
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        raise ValidationError(f"{field} '{text}' is not a date (YYYY-MM-DD)", field) from None


def create_customer(
    actor: Actor,
    name: str,
    accepted_on: date | str | None = None,
    contract_months: int | str = 12,
    address: str = "",
) -> Customer:
    """Register a customer; the system assigns its unique contract number (R-C1)."""
    try:
        customer = add_customer(actor, name, accepted_on, contract_months, address)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return customer


def add_customer(
    actor: Actor,
    name: str,
    accepted_on: date | str | None = None,
    contract_months: int | str = 12,
    address: str = "",
) -> Customer:
    """``create_customer`` inside the caller's transaction (the caller commits or rolls
    back): registration approval creates the customer together with its invitation."""
    accepted = parse_date(accepted_on, "accepted_on")
    if accepted is not None and accepted > clock.today():
        raise ValidationError(f"accepted_on {accepted} is in the future", "accepted_on")
    try:
        months = int(contract_months)
    except (TypeError, ValueError):
        raise ValidationError(
            f"contract_months '{contract_months}' is not a whole number", "contract_months"
        ) from None
    if not 1 <= months <= 240:
        raise ValidationError("contract_months must be 1 to 240", "contract_months")
    customer = Customer(
        name=_name(name),
        address=(address or "").strip()[:2000],
        accepted_on=accepted,
        contract_months=months,
        contract_number=contract_number(clock.today().year),
    )
    db.session.add(customer)
    db.session.flush()
    record(actor, "customer.created", "customer", customer.contract_number, None,
           customer.as_audit())
    return customer


def update_customer(actor: Actor, customer_id: int, **fields) -> Customer:
    """Change a customer's name, address, acceptance date or contract length.
    The contract number never changes (R-C1)."""
    customer = db.session.get(Customer, customer_id)
    if customer is None:
        raise NotFoundError("no such customer")
    before = customer.as_audit()
    try:
        if "name" in fields:
            customer.name = _name(fields["name"])
        if "address" in fields:
            customer.address = (fields["address"] or "").strip()[:2000]
        if "accepted_on" in fields:
            accepted = parse_date(fields["accepted_on"], "accepted_on")
            if accepted is not None and accepted > clock.today():
                raise ValidationError(f"accepted_on {accepted} is in the future", "accepted_on")
            customer.accepted_on = accepted
        if "contract_months" in fields:
            months = int(fields["contract_months"])
            if not 1 <= months <= 240:
                raise ValidationError("contract_months must be 1 to 240", "contract_months")
            customer.contract_months = months
        after = customer.as_audit()
        if after != before:
            record(actor, "customer.updated", "customer", customer.contract_number, before, after)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return customer


def customer_by_contract(number: str) -> Customer:
    text = (number or "").strip().upper()
    customer = db.session.scalar(select(Customer).where(Customer.contract_number == text))
    if customer is None:
        raise NotFoundError(f"contract '{number}' is not a known contract number", "customer")
    return customer

