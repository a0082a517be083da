"""The price list (rma/services/pricing.py, issue 5, D-5): dated prices, closing the open
entry, refusing overlaps, fallbacks, roles, audit. An old quote keeps its prices."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import select

from rma.extensions import db
from rma.models import AuditEvent, PriceEntry, PriceKind, ProductModel
from rma.services import ConflictError, ForbiddenError, ValidationError, pricing
from rma.services.audit import Actor
from tests.rma.finance_helpers import build_finance_world, open_quote_for, paid_item
from tests.rma.test_warehouse import actor, at


@pytest.fixture
def world(app, make_model, make_customer, make_user):
    return build_finance_world(app, make_model, make_customer, make_user)


@pytest.fixture
def ctx(app):
    with app.test_request_context(headers={"Accept-Language": "en"}):
        yield app


def tk3() -> ProductModel:
    return db.session.scalar(select(ProductModel).where(ProductModel.code == "TK3"))


def entries(kind: str, model_id: int | None = None) -> list[PriceEntry]:
    return pricing.price_history(kind, model_id)


# -- adding prices ------------------------------------------------------------------------
def test_D5_a_new_price_closes_the_open_one_the_day_before(ctx, world):
    entry = pricing.add_price(actor("fay"), kind="replacement", model_code=" tk3 ",
                              valid_from="2026-12-01", amount="350.00", note="new list")
    assert (entry.amount, entry.valid_from, entry.valid_to) == (
        Decimal("350.00"), date(2026, 12, 1), None)
    history = entries("replacement", tk3().id)
    assert [(e.valid_from, e.valid_to, e.amount) for e in history] == [
        (date(2026, 12, 1), None, Decimal("350.00")),
        (date(2026, 1, 1), date(2026, 11, 30), Decimal("300.00")),
    ]
    assert pricing.replacement_price_on(tk3(), date(2026, 11, 30)) == Decimal("300.00")
    assert pricing.replacement_price_on(tk3(), date(2026, 12, 1)) == Decimal("350.00")
    created = db.session.scalar(select(AuditEvent).where(
        AuditEvent.action == "price_entry.created"))
    assert created.actor_label == "fay@vendor.example"
    assert created.after["amount"] == "350.00" and created.after["model_code"] == "TK3"
    closed = db.session.scalar(select(AuditEvent).where(
        AuditEvent.action == "price_entry.closed"))
    assert (closed.before["valid_to"], closed.after["valid_to"]) == (None, "2026-11-30")


def test_D5_same_start_day_is_refused_naming_the_existing_entry(ctx, world):
    with pytest.raises(ConflictError) as error:
        pricing.add_price(actor("fay"), kind="shipping", valid_from=date(2026, 1, 1),
                          amount="25.00")
    assert "shipping fee valid from 2026-01-01" in error.value.message
    assert "entry #" in error.value.message
    assert len(entries("shipping")) == 1


def test_D5_an_overlap_with_a_closed_entry_is_refused(ctx, world):
    pricing.add_price(actor("fay"), kind="shipping", valid_from="2026-06-01", amount="25.00")
    # 2026-01-01..2026-05-31 (closed) and 2026-06-01.. (open): a range inside the first
    with pytest.raises(ConflictError, match="2026-01-01 through 2026-05-31"):
        pricing.add_price(actor("fay"), kind="shipping", valid_from="2026-03-01",
                          valid_to="2026-03-31", amount="0")
    # an open-ended entry starting before the later one would overlap it
    with pytest.raises(ConflictError):
        pricing.add_price(actor("fay"), kind="shipping", valid_from="2025-06-01", amount="1")
    # a closed range before everything is fine
    old = pricing.add_price(actor("fay"), kind="shipping", valid_from="2025-01-01",
                            valid_to="2025-12-31", amount="0")
    assert old.amount == Decimal("0.00")
    assert pricing.shipping_fee_on(date(2025, 7, 1)) == Decimal("0.00")
    assert pricing.shipping_fee_on(date(2026, 7, 1)) == Decimal("25.00")


@pytest.mark.parametrize("raw, expected", [("13%", "0.1300"), ("0.09", "0.0900"),
                                           (" 6 % ", "0.0600"), (Decimal("0.13"), "0.1300")])
def test_D5_vat_rate_as_fraction_or_percentage(ctx, world, raw, expected):
    entry = pricing.add_price(actor("adam"), kind="vat", valid_from="2027-01-01", rate=raw)
    assert entry.rate == Decimal(expected) and entry.amount is None
    assert pricing.vat_rate_on(date(2027, 1, 1)) == Decimal(expected)
    assert pricing.vat_rate_on(date(2026, 12, 31)) == Decimal("0.13")  # the policy's


@pytest.mark.parametrize("kwargs, field", [
    ({"kind": "gold", "valid_from": "2026-01-01", "amount": "1"}, "kind"),
    ({"kind": "replacement", "valid_from": "2026-02-01", "amount": "1"}, "model_code"),
    ({"kind": "replacement", "model_code": "NOPE", "valid_from": "2026-02-01",
      "amount": "1"}, "model_code"),
    ({"kind": "vat", "valid_from": "2026-02-01"}, "rate"),
    ({"kind": "vat", "valid_from": "2026-02-01", "rate": "113%"}, "rate"),
    ({"kind": "vat", "valid_from": "2026-02-01", "rate": "0.123456"}, "rate"),
    ({"kind": "support", "valid_from": "2026-02-01", "amount": "0"}, "amount"),
    ({"kind": "support", "valid_from": "2026-02-01", "amount": "1.001"}, "amount"),
    ({"kind": "shipping", "valid_from": "2026-02-01", "amount": "-1"}, "amount"),
    ({"kind": "shipping", "valid_from": "2026-02-01"}, "amount"),
    ({"kind": "shipping", "valid_from": "1 Feb", "amount": "1"}, "valid_from"),
    ({"kind": "shipping", "valid_from": "", "amount": "1"}, "valid_from"),
    ({"kind": "shipping", "valid_from": "2026-02-01", "valid_to": "2026-01-31",
      "amount": "1"}, "valid_to"),
])
def test_bad_input_is_refused_on_its_field(ctx, world, kwargs, field):
    before = db.session.scalar(select(db.func.count(PriceEntry.id)))
    with pytest.raises(ValidationError) as error:
        pricing.add_price(actor("fay"), **kwargs)
    assert error.value.field == field
    assert db.session.scalar(select(db.func.count(PriceEntry.id))) == before


def test_zero_shipping_is_allowed(ctx, world):
    entry = pricing.add_price(Actor.cli("test"), kind="shipping", valid_from="2027-01-01",
                              amount="0")
    assert entry.amount == Decimal("0.00") and entry.created_by_id is None


@pytest.mark.parametrize("who", ["sam", "wendy", "mia"])
def test_only_finance_or_admin_change_prices(ctx, world, who):
    with pytest.raises(ForbiddenError):
        pricing.add_price(actor(who), kind="shipping", valid_from="2027-01-01", amount="1")


# -- fallbacks and the list -----------------------------------------------------------------
def test_fallbacks_without_entries(ctx, world):
    on = date(2025, 6, 1)  # before the test price list
    assert pricing.replacement_price_on(tk3(), on) == Decimal("80.00")  # model default
    assert pricing.shipping_fee_on(on) == Decimal("0.00")
    assert pricing.support_price_on(on) is None
    assert pricing.vat_rate_on(on) == Decimal("0.13")


def test_price_list_says_where_each_price_comes_from(ctx, world):
    rows = {(row.kind, row.model_code): row for row in pricing.price_list(date(2026, 11, 25))}
    assert rows[("replacement", "TK3")].amount == Decimal("300.00")
    assert rows[("replacement", "TK3")].source == "price list"
    assert rows[("replacement", "TK3")].valid_from == date(2026, 1, 1)
    assert rows[("replacement", "TK5")].source == "model default"
    assert rows[("replacement", "TK5")].amount == Decimal("80.00")
    assert rows[("shipping", None)].amount == Decimal("20.00")
    assert rows[("support", None)].amount == Decimal("5000.00")
    assert (rows[("vat", None)].rate, rows[("vat", None)].source) == (Decimal("0.13"), "policy")
    early = {(row.kind, row.model_code): row for row in pricing.price_list(date(2025, 1, 1))}
    assert early[("support", None)].source == "none"
    assert early[("replacement", "TK3")].source == "model default"


def test_price_history_filters(ctx, world):
    assert {str(e.kind) for e in pricing.price_history()} == {"replacement", "shipping",
                                                               "support"}
    assert [str(e.kind) for e in pricing.price_history("support")] == ["support"]
    with pytest.raises(ValidationError):
        pricing.price_history("gold")


# -- validity dates: an old quote keeps its prices --------------------------------------------
def test_D5_an_old_quote_keeps_its_price_after_a_price_change(app, ctx, world):
    number, _ = paid_item(app, world, "TK3-A0001")
    old = open_quote_for(number)
    assert old.lines[0].unit_price == Decimal("300.00")
    pricing.add_price(actor("fay"), kind="replacement", model_code="TK3",
                      valid_from="2026-11-26", amount="400.00")
    pricing.add_price(actor("fay"), kind="vat", valid_from="2026-11-26", rate="9%")
    at(app, "2026-11-26T04:00:00+00:00")
    number2, _ = paid_item(app, world, "TK3-A0002")
    again = open_quote_for(number)
    assert again.id == old.id
    assert [(line.unit_price, line.vat_rate, line.vat) for line in again.lines] == [
        (Decimal("300.00"), Decimal("0.1300"), Decimal("39.00")),
        (Decimal("20.00"), Decimal("0.1300"), Decimal("2.60")),
    ]
    assert again.gross_total == Decimal("361.60")
    new = open_quote_for(number2)
    assert [(line.unit_price, line.vat_rate, line.vat) for line in new.lines] == [
        (Decimal("400.00"), Decimal("0.0900"), Decimal("36.00")),
        (Decimal("20.00"), Decimal("0.0900"), Decimal("1.80")),
    ]
    assert new.gross_total == Decimal("457.80")
    assert str(new.lines[0].kind) == PriceKind.REPLACEMENT.value
