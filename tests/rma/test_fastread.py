"""``CompiledRead`` returns what Core returns, cleans up like Core, and fails like Core."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import bindparam, exc, select

from rma.extensions import db
from rma.fastread import CompiledRead
from rma.models import Customer, ProductModel, Unit, UnitStatus
from tests.conftest import count_queries

_units = Unit.__table__
_models = ProductModel.__table__
_customers = Customer.__table__
STATEMENT = (
    select(_units.c.serial, _units.c.shipped_on, _units.c.activated_on, _units.c.status,
           _models.c.kind, _models.c.warranty_basis, _customers.c.accepted_on)
    .join(_models, _models.c.id == _units.c.model_id)
    .outerjoin(_customers, _customers.c.id == _units.c.customer_id)
    .where(_units.c.serial == bindparam("serial"))
)
BY_MODEL = select(_units.c.serial).where(_units.c.model_id == bindparam("model_id")).order_by(
    _units.c.serial)


@pytest.fixture
def rows(app, make_model, make_customer):
    model_id = make_model("TK3", 36, "acceptance")
    contract = make_customer("Acme", "2026-03-10")
    with app.app_context():
        customer = db.session.scalar(select(Customer).where(Customer.contract_number == contract))
        db.session.add_all([
            Unit(serial="TK3-A", model_id=model_id, customer_id=customer.id,
                 shipped_on=dt.date(2024, 2, 29), activated_on=dt.date(2024, 3, 1)),
            Unit(serial="TK3-B", model_id=model_id, status=UnitStatus.IN_STOCK),
        ])
        db.session.commit()
    return model_id


@pytest.mark.parametrize("serial", ["TK3-A", "TK3-B"])
def test_rows_equal_core_rows(app, rows, serial):
    read = CompiledRead(STATEMENT)
    with app.app_context():
        core = db.session.execute(STATEMENT, {"serial": serial}).one()
        db.session.remove()
        fast = read.first(db.engine, serial=serial)
        assert tuple(fast) == tuple(core)
        assert fast._fields == tuple(core._fields)
        assert fast.serial == serial
        assert type(fast.status) is type(core.status)
        if serial == "TK3-A":
            assert fast.shipped_on == dt.date(2024, 2, 29)
            assert fast.accepted_on == dt.date(2026, 3, 10)
        else:
            assert fast.shipped_on is None and fast.accepted_on is None


def test_no_row_is_none_and_two_rows_refuse_one_or_none(app, rows):
    with app.app_context():
        assert CompiledRead(STATEMENT).first(db.engine, serial="NOPE") is None
        assert CompiledRead(STATEMENT).one_or_none(db.engine, serial="NOPE") is None
        by_model = CompiledRead(BY_MODEL)
        assert [r.serial for r in by_model.all(db.engine, model_id=rows)] == ["TK3-A", "TK3-B"]
        assert by_model.first(db.engine, model_id=rows).serial == "TK3-A"
        with pytest.raises(exc.MultipleResultsFound):
            by_model.one_or_none(db.engine, model_id=rows)


def test_connection_goes_back_to_the_pool_without_a_transaction(app, rows):
    with app.app_context():
        engine = db.engine
        read = CompiledRead(STATEMENT)
        for _ in range(20):
            read.first(engine, serial="TK3-A")
        assert engine.pool.checkedout() == 0
        with engine.connect() as connection:
            dbapi = connection.connection.dbapi_connection
            if engine.dialect.name == "sqlite":
                assert not dbapi.in_transaction
            else:
                assert dbapi.info.transaction_status.name == "IDLE"


def test_database_errors_are_sqlalchemy_errors(app):
    broken = select(_units.c.serial).where(_units.c.serial == bindparam("serial"))
    with app.app_context():
        read = CompiledRead(broken)
        read._prepare(db.engine).sql = "SELECT no_such_column FROM units WHERE serial = " + (
            "?" if db.engine.dialect.name == "sqlite" else "%(serial)s")
        with pytest.raises(exc.DBAPIError) as caught:
            read.first(db.engine, serial="X")
        assert "no_such_column" in str(caught.value)
        assert db.engine.pool.checkedout() == 0
        assert CompiledRead(STATEMENT).first(db.engine, serial="X") is None


def test_watched_engines_get_the_ordinary_path(app, rows):
    """Query counting (and echo, tracing) sees the statement."""
    with count_queries(app) as statements, app.app_context():
        assert CompiledRead(STATEMENT).first(db.engine, serial="TK3-A").serial == "TK3-A"
    assert len(statements) == 1 and "units.serial" in statements[0]


def test_duplicate_column_names_are_refused(app):
    with app.app_context(), pytest.raises(ValueError, match="distinct names"):
        CompiledRead(select(_units.c.id, _models.c.id).join(_models)).first(db.engine)
