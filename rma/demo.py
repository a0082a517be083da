"""Demo data for ``make run`` (``rma demo-data``). Idempotent: loading twice adds nothing."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import date, timedelta

from sqlalchemy import func, insert, select

from rma import clock
from rma.extensions import db
from rma.models import Customer, ProductModel, Unit, UnitStatus, User
from rma.services.audit import Actor, record
from rma.services.catalog import create_customer, create_product_model
from rma.services.users import create_user

MODELS = [
    # code, name, kind, life months, basis, replacement price (CNY)
    ("TK3", "OTP token C200, 3-year", "hardware", 36, "ship", "80.00"),
    ("TK5", "OTP token C300, 5-year", "hardware", 60, "activation", "120.00"),
    ("AS-LIC", "Authentication server software licence", "software", 12, "acceptance",
     "5000.00"),
    ("AS-SRV", "Authentication server appliance", "appliance", 36, "acceptance", "28000.00"),
]

CUSTOMERS = [
    # name, accepted on, address
    ("华东示范银行股份有限公司", date(2025, 6, 15), "上海市浦东新区世纪大道 100 号"),
    ("Northwind Securities Co., Ltd.", date(2026, 3, 10), "88 Harbour Road, Shenzhen"),
]

# Demo passwords are public by design: this data is for a local demonstration only.
USERS = [
    ("admin@demo.example", "admin", None, "demo-admin-2026", "en"),
    ("manager@demo.example", "manager", None, "demo-manager-2026", "en"),
    ("support@demo.example", "support", None, "demo-support-2026", "zh_CN"),
    ("warehouse@demo.example", "warehouse", None, "demo-warehouse-2026", "zh_CN"),
    ("finance@demo.example", "finance", None, "demo-finance-2026", "zh_CN"),
    ("customer@demo.example", "customer", 0, "demo-customer-2026", "zh_CN"),
    ("customer2@demo.example", "customer", 1, "demo-customer2-2026", "en"),
]

UNITS_PER_CUSTOMER = 1500
SPARES = {"TK3": 200, "TK5": 100}


def load_demo(echo: Callable[[str], None] = print) -> list[tuple[str, str, str]]:
    actor = Actor.cli("demo-data")
    models = {m.code: m for m in db.session.scalars(select(ProductModel))}
    for code, name, kind, life, basis, price in MODELS:
        if code not in models:
            models[code] = create_product_model(actor, code, name, kind, life, basis, price)
            echo(f"added product model {code}")
    customers = []
    for name, accepted, address in CUSTOMERS:
        customer = db.session.scalar(select(Customer).where(Customer.name == name))
        if customer is None:
            customer = create_customer(actor, name, accepted, 12, address)
            echo(f"registered {name}: contract {customer.contract_number}")
        customers.append(customer)
    for email, role, customer_index, password, language in USERS:
        if db.session.scalar(select(User.id).where(User.email == email)) is None:
            customer = customers[customer_index] if customer_index is not None else None
            create_user(actor, email, role, password, customer, language)
    if not db.session.scalar(select(func.count(Unit.id))):
        count = _load_units(actor, models, customers)
        echo(f"added {count} demo units")
    return [(email, password, role) for email, role, _, password, _ in USERS]


def _load_units(actor: Actor, models: dict, customers: list[Customer]) -> int:
    rng = random.Random(2026)  # deterministic demo data
    today = clock.today()
    rows = []
    for index, customer in enumerate(customers):
        prefix = "HD" if index == 0 else "NW"
        for n in range(UNITS_PER_CUSTOMER):
            code = "TK3" if n % 3 else "TK5"
            shipped = today - timedelta(days=rng.randint(20, 5 * 365))
            activated = shipped + timedelta(days=rng.randint(1, 60)) if code == "TK5" else None
            if activated and (activated > today or rng.random() < 0.2):
                activated = None  # not activated yet: the ship date stands in
            rows.append({
                "serial": f"{code}-{prefix}{n:06d}",
                "model_id": models[code].id,
                "customer_id": customer.id,
                "lot": f"L{shipped.year}-{shipped.month:02d}",
                "shipped_on": shipped,
                "activated_on": activated,
                "status": UnitStatus.IN_SERVICE,
            })
        rows.append({
            "serial": f"AS-LIC-{prefix}0001", "model_id": models["AS-LIC"].id,
            "customer_id": customer.id, "lot": None,
            "shipped_on": customer.accepted_on - timedelta(days=20),
            "activated_on": None, "status": UnitStatus.IN_SERVICE,
        })
    for code, count in SPARES.items():
        for n in range(count):
            rows.append({"serial": f"{code}-SP{n:05d}", "model_id": models[code].id,
                         "customer_id": None, "lot": "SPARE", "shipped_on": None,
                         "activated_on": None, "status": UnitStatus.IN_STOCK})
    db.session.execute(insert(Unit), rows)
    record(actor, "units.imported", "import", "demo-data", None, {"inserted": len(rows)})
    db.session.commit()
    return len(rows)
