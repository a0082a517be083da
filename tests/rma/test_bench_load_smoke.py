"""bench/load.py (issue 8) drives the app it measures: every kind of its request mix, as
its schedule builds them, gets the answer the script expects from a real app over HTTP,
and the writes are real (RMAs submitted, units received). No timing is asserted.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import func, select
from werkzeug.serving import make_server

from rma.extensions import db
from rma.models import Rma, RmaItem, Unit, User
from rma.services.audit import Actor
from rma.services.catalog import customer_by_contract
from rma.services.rmas import ContactInput, ItemInput, open_rma
from rma.services.users import create_token

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def load():
    """bench/load.py as a module (it imports its neighbours ``common``, ``scan`` ...)."""
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location("bench_load", BENCH / "load.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # its dataclasses look their module up
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCH))
    return module


@pytest.fixture
def served(app):
    """The test app on a real HTTP port (werkzeug's threaded server)."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_port
    server.shutdown()
    thread.join(5)


def _seed(app, load, make_model, make_customer, make_user):
    """Two customers' units, their users and tokens, a warehouse scanner and a manager,
    and six RMAs (18 items) whose units the warehouse can receive."""
    model_id = make_model("TK3", life_months=36)
    contracts = [make_customer("华东示范银行"), make_customer("西南电网")]
    make_user(load.MANAGER, "manager", password=load.PASSWORD)
    make_user("scanner@bench.example", "warehouse", password=load.PASSWORD)
    make_user(load.WH_LEAD, "warehouse", password=load.PASSWORD)  # the replacements page
    with app.app_context():
        customers, free, receivable, serials = [], {}, [], []
        for n, contract in enumerate(contracts, start=1):
            customer = customer_by_contract(contract)
            units = [f"TKS{n}{k:07d}" for k in range(24)]
            db.session.add_all(Unit(serial=s, model_id=model_id, customer_id=customer.id,
                                    shipped_on=date(2026, 3, 1)) for s in units)
            db.session.commit()
            email = f"customer{n}@bench.example"
            customers.append({"id": customer.id, "contract": contract, "email": email})
            serials += units
            for k in range(3):  # three RMAs of three items each, to be received
                three = units[k * 3:k * 3 + 3]
                rma = open_rma(Actor.cli("test"), customer.id,
                               ContactInput("张伟", "+86 138 0000 0000", "ops@example.com"),
                               "上海市浦东新区", [ItemInput(s, "按键失灵") for s in three])
                receivable += [(rma.number, s) for s in three]
            free[customer.id] = units[9:]
        for c in customers:
            make_user(c["email"], "customer", c["contract"], password=load.PASSWORD)
        for c in customers:
            user = db.session.scalar(select(User).where(User.email == c["email"]))
            c["token"] = create_token(Actor.cli("test"), user, "smoke")
        scanner = db.session.scalar(select(User).where(User.email == "scanner@bench.example"))
        token = create_token(Actor.cli("test"), scanner, "smoke")
        db.session.commit()
    meta = load.Meta(token, customers, len(serials))
    return meta, load.Pools(serials, free, receivable)


def test_every_kind_of_the_mix_gets_its_expected_answer(app, served, load, make_model,
                                                        make_customer, make_user):
    """Issue 8: the warranty checks (known serials 200, unknown 404), API submissions
    (201), receiving scans (200, outcome "received"), the staff dashboard, the open
    replacements and a customer's RMA list (200, logged in through the form) all answer as
    load.py expects, so a load run's errors are the server's, not the script's."""
    meta, pools = _seed(app, load, make_model, make_customer, make_user)
    receivable = list(pools.receivable)
    mix = {**load.DEFAULT_MIX, "replacements": 5}
    specs = load.schedule(60, mix, pools, meta, seed=3, bare=False)
    kinds = {spec.kind for spec in specs}
    assert kinds == set(mix), "the schedule covers every kind of the mix"
    assert any(spec.kind == "warranty" and spec.expect == (404,) for spec in specs), \
        "some warranty checks ask for a serial that does not exist"

    users = sorted({spec.session for spec in specs if spec.session})
    cookies = {email: load.log_in(served, email, "10.0.0.1") for email in users}
    generator = load.Generator([served], specs, rate=30, threads=4, cookies=cookies,
                               label="smoke")
    generator.run()

    wrong = [(r.kind, r.label) for r in generator.results if r.label != "ok"]
    assert wrong == [], "every answer as expected (an unanswered request counts too)"
    assert all(r.sent >= r.due - 0.001 and r.done >= r.sent for r in generator.results), \
        "latency counts from the due time"

    submitted = [s for s in specs if s.kind == "submit"]
    scanned = [s for s in specs if s.kind == "scan"]
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Rma)) == 6 + len(submitted)
        received = db.session.execute(
            select(Rma.number, RmaItem.serial).join_from(RmaItem, Rma, RmaItem.rma_id == Rma.id)
            .where(RmaItem.unit_received_at.is_not(None))).all()
    assert len(received) == len(scanned) > 0
    assert {number for number, _serial in received} <= {n for n, _s in receivable}
