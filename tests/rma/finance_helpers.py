"""Shared builders for the finance tests (issue 5), on top of ``test_warehouse``'s world.

Import from test modules::

    from tests.rma.finance_helpers import build_finance_world, paid_item, open_quote_for

The test clock says 2026-11-25 12:00 in Shanghai (``tests.conftest.FIXED_NOW``). Prices
are valid from 2026-01-01: TK3 replacement 300.00, shipping 20.00, support 5000.00, and
no VAT entry (the rate is the policy's, 0.13 by default, D-5). A quote for one paid TK3
item is therefore 300.00 + 39.00 VAT and shipping 20.00 + 2.60 VAT = 361.60 CNY.
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import date
from decimal import Decimal

from flask import current_app, has_app_context
from sqlalchemy import select

from rma.extensions import db
from rma.models import ItemStatus, PriceEntry, PriceKind, ProductModel, Quote, QuoteStatus, Rma
from tests.rma.test_warehouse import STAFF, actor, build_warehouse_world, open_items
from tests.rma.test_warehouse import item as load_item

PRICES_FROM = date(2026, 1, 1)
TK3_PRICE = Decimal("300.00")
SHIPPING_FEE = Decimal("20.00")
SUPPORT_PRICE = Decimal("5000.00")
FINANCE_EMAIL = STAFF["fay"][0]  # fay@vendor.example, role finance
ONE_ITEM_GROSS = Decimal("361.60")  # 300.00 + 39.00 + 20.00 + 2.60


@contextmanager
def _context(app):
    """The caller's app context when it is ``app``'s; else an English request context."""
    if has_app_context() and current_app._get_current_object() is app:
        yield
    else:
        with app.test_request_context(headers={"Accept-Language": "en"}):
            yield


def build_finance_world(app, make_model, make_customer, make_user) -> dict:
    """``build_warehouse_world`` (customers A and B, staff of every role including the
    finance user fay@vendor.example, spares) plus price entries valid from 2026-01-01:
    TK3 replacement 300.00, shipping 20.00, support 5000.00 (no VAT entry: the policy's
    rate applies). Rows are inserted directly (no service, no audit). Returns the world
    dict (keys of ``build_warehouse_world``)."""
    world = build_warehouse_world(app, make_model, make_customer, make_user)
    with app.app_context():
        tk3 = db.session.scalar(select(ProductModel.id).where(ProductModel.code == "TK3"))
        db.session.add_all([
            PriceEntry(kind=PriceKind.REPLACEMENT, model_id=tk3, amount=TK3_PRICE,
                       valid_from=PRICES_FROM, note="test price list"),
            PriceEntry(kind=PriceKind.SHIPPING, amount=SHIPPING_FEE, valid_from=PRICES_FROM,
                       note="test price list"),
            PriceEntry(kind=PriceKind.SUPPORT, amount=SUPPORT_PRICE, valid_from=PRICES_FROM,
                       note="test price list"),
        ])
        db.session.commit()
    return world


def paid_item(app, world, serial: str = "TK3-A0001", cause: str = "misuse_drop"
              ) -> tuple[str, int]:
    """Submit an RMA of customer A (alice@a.example, English) for ``serial``, receive the
    unit (wendy) and inspect it with ``cause`` (wendy): with a misuse cause the decision is
    paid (R-W4; TK3-AOLD with ``quality_defect`` gives R-W5) and the item waits for
    payment. Every step commits through the services, so once the quote hook exists
    (``quotes.sync_rma_quote``) the RMA's quote is open. Works inside or outside an app
    context of ``app``. Returns ``(rma_number, item_id)``; asserts the item is
    ``waiting_payment``."""
    from rma.services import warehouse as wh

    with _context(app):
        number, (item_id,) = open_items(serial, world=world)
        assert wh.receive(actor("wendy"), number, serial).outcome == "received"
        wh.inspect(actor("wendy"), item_id, cause)
        assert load_item(item_id).status == ItemStatus.WAITING_PAYMENT
    return number, item_id


def open_quote_for(rma_number: str) -> Quote | None:
    """The OPEN quote of RMA ``rma_number`` (read fresh), or None. Needs an app context."""
    return db.session.scalar(
        select(Quote).join(Rma, Rma.id == Quote.rma_id)
        .where(Rma.number == rma_number, Quote.status == QuoteStatus.OPEN)
        .order_by(Quote.id.desc()).limit(1)
        .execution_options(populate_existing=True))


def quotes_for(rma_number: str) -> list[Quote]:
    """Every quote of RMA ``rma_number``, oldest first (read fresh). Needs an app context."""
    return list(db.session.scalars(
        select(Quote).join(Rma, Rma.id == Quote.rma_id).where(Rma.number == rma_number)
        .order_by(Quote.id).execution_options(populate_existing=True)))


__all__ = ["FINANCE_EMAIL", "ONE_ITEM_GROSS", "PRICES_FROM", "SHIPPING_FEE", "SUPPORT_PRICE",
           "TK3_PRICE", "build_finance_world", "open_quote_for", "paid_item", "quotes_for"]
