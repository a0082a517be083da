"""Shared builders for the incident tests (issue 6).

Import from test modules::

    from tests.rma.incident_helpers import build_incident_world, report, actor, user

The test clock says 2026-11-25 12:00 in Shanghai, a Wednesday and a working day
(``tests.conftest.FIXED_NOW``, 04:00 UTC). ``build_incident_world(app)`` adds, through
the services (audited):

* customers A "Acme Bank" (accepted 2026-03-10, language en), B "Beta Bank" (accepted
  2026-01-05, en) and C "Gamma Securities" (accepted 2025-11-21: its contract year turns
  on 2026-11-22, inside the last week, for R-C4 tests);
* customer users alice@a.example (A, admin of A), bob@b.example (B), cora@c.example (C);
* staff: sam@ and sue@vendor.example (support), mia@ (manager), adam@ (admin),
  wendy@ (warehouse), fay@ (finance) — all ``@vendor.example``;
* escalation holders (R-I4): account manager of A amy@ (deputy ann@), global account
  manager (fallback) gus@ (no deputy), technical lead tom@ (deputy tia@), service
  director dora@ (deputy dan@), CTO cat@, president pres@ (deputy vp@) — staff users of
  role manager, ``@vendor.example``;
* product models TK3 (hardware, 36 months) and AS-SRV (appliance, 36 months);
* units TK3-A0001..TK3-A0005 (A), TK3-B0001..TK3-B0003 (B), TK3-C0001 (C).

It returns a dict: ``a``, ``b``, ``c`` (customer ids), ``contract_a`` ...,
``users`` (short name → user id), ``holders`` (role or "account_manager:a" → holder id).
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import date, datetime

from flask import current_app, has_app_context
from sqlalchemy import select

from rma.extensions import db
from rma.models import Customer, Incident, OnsiteVisit, Unit, User
from rma.services.audit import Actor
from tests.conftest import TEST_PASSWORD

CUSTOMERS = {
    # key: (name, accepted on, language)
    "a": ("Acme Bank", date(2026, 3, 10), "en"),
    "b": ("Beta Bank", date(2026, 1, 5), "en"),
    "c": ("Gamma Securities", date(2025, 11, 21), "en"),
}
CUSTOMER_USERS = {"alice": ("alice@a.example", "a"), "bob": ("bob@b.example", "b"),
                  "cora": ("cora@c.example", "c")}
STAFF = {
    "sam": "support", "sue": "support", "mia": "manager", "adam": "admin",
    "wendy": "warehouse", "fay": "finance",
    # escalation role holders (R-I4)
    "amy": "manager", "ann": "manager", "gus": "manager", "tom": "manager", "tia": "manager",
    "dora": "manager", "dan": "manager", "cat": "manager", "pres": "manager", "vp": "manager",
}
HOLDERS = [
    # (role, holder, deputy, customer key or None)
    ("account_manager", "amy", "ann", "a"),
    ("account_manager", "gus", None, None),
    ("technical_lead", "tom", "tia", None),
    ("service_director", "dora", "dan", None),
    ("cto", "cat", None, None),
    ("president", "pres", "vp", None),
]


def email_of(name: str) -> str:
    if name in CUSTOMER_USERS:
        return CUSTOMER_USERS[name][0]
    return f"{name}@vendor.example" if "@" not in name else name


def user(name: str) -> User:
    """The user ``name`` (a short name of the world, or an e-mail address)."""
    return db.session.scalar(select(User).where(User.email == email_of(name)))


def actor(name: str) -> Actor:
    return Actor(user=user(name))


def customer(key: str = "a") -> Customer:
    return db.session.scalar(select(Customer).where(Customer.name == CUSTOMERS[key][0]))


@contextmanager
def _context(app):
    """The caller's app context when it is ``app``'s; else an English request context."""
    if has_app_context() and current_app._get_current_object() is app:
        yield
    else:
        with app.test_request_context(headers={"Accept-Language": "en"}):
            yield


def build_incident_world(app) -> dict:
    """Customers, users of every role, escalation holders and units (see the module
    docstring). Works inside or outside an app context of ``app``."""
    from rma.services.catalog import create_customer, create_product_model
    from rma.services.escalation_setup import set_holder
    from rma.services.users import create_user

    system = Actor.cli("test")
    world: dict = {"users": {}, "holders": {}}
    with _context(app):
        tk3 = create_product_model(system, "TK3", "TK3 token", "hardware", 36, "ship", "80.00")
        create_product_model(system, "AS-SRV", "Server", "appliance", 36, "ship", "900.00")
        for key, (name, accepted, language) in CUSTOMERS.items():
            row = create_customer(system, name, accepted, 12, f"{name} HQ, 1 Bund Road")
            row.language = language
            db.session.commit()
            world[key] = row.id
            world[f"contract_{key}"] = row.contract_number
        for name, (email, key) in CUSTOMER_USERS.items():
            row = create_user(system, email, "customer", TEST_PASSWORD,
                              db.session.get(Customer, world[key]), "en",
                              is_customer_admin=True)
            world["users"][name] = row.id
        for name, role in STAFF.items():
            row = create_user(system, email_of(name), role, TEST_PASSWORD, None, "en")
            row.full_name = name.capitalize()
            db.session.commit()
            world["users"][name] = row.id
        for role, holder, deputy, key in HOLDERS:
            row = set_holder(system, role, world["users"][holder],
                             world["users"][deputy] if deputy else None,
                             world[key] if key else None)
            world["holders"][f"{role}:{key}" if key else role] = row.id
        units = [Unit(serial=f"TK3-A{n:04d}", model_id=tk3.id, customer_id=world["a"],
                      shipped_on=date(2026, 3, 1)) for n in range(1, 6)]
        units += [Unit(serial=f"TK3-B{n:04d}", model_id=tk3.id, customer_id=world["b"],
                       shipped_on=date(2026, 1, 1)) for n in range(1, 4)]
        units.append(Unit(serial="TK3-C0001", model_id=tk3.id, customer_id=world["c"],
                          shipped_on=date(2025, 11, 1)))
        db.session.add_all(units)
        db.session.commit()
    return world


def report(priority: str = "urgent", *, by: str = "sam", customer_key: str = "a",
           title: str = "Login server down", description: str = "Nobody can log in.",
           serials=("TK3-A0001",), channel: str | None = None,
           reported_at: datetime | None = None, **kw) -> Incident:
    """Report an incident through the service (needs an app context). Staff report by
    phone, customer users through the portal, unless ``channel`` says otherwise."""
    from rma.services.incidents import report_incident

    who = user(by)
    if channel is None:
        channel = "portal" if who.role == "customer" else "phone"
    kw.setdefault("reporter_name", "Li Lei")
    kw.setdefault("reporter_contact", "li.lei@a.example" if customer_key == "a" else "")
    return report_incident(Actor(user=who), customer=customer(customer_key), priority=priority,
                           title=title, description=description, serials=serials,
                           channel=channel, reported_at=reported_at, **kw)


def incident(number: str) -> Incident:
    """The incident ``number`` read fresh (needs an app context)."""
    return db.session.scalar(select(Incident).where(Incident.number == number)
                             .execution_options(populate_existing=True))


def visit(visit_id: int) -> OnsiteVisit:
    return db.session.get(OnsiteVisit, visit_id, populate_existing=True)


__all__ = ["CUSTOMERS", "HOLDERS", "STAFF", "actor", "build_incident_world", "customer",
           "email_of", "incident", "report", "user", "visit"]
