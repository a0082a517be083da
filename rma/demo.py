"""Demo data for ``make run`` (``rma demo-data``). Idempotent: loading twice adds nothing."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import date, timedelta

from sqlalchemy import func, insert, select

from rma import clock
from rma.extensions import db
from rma.models import (
    Advisory,
    Customer,
    EscalationHolder,
    Incident,
    PriceEntry,
    ProductModel,
    RegistrationApplication,
    Rma,
    Unit,
    UnitStatus,
    User,
)
from rma.services.audit import Actor, record
from rma.services.catalog import create_customer, create_product_model
from rma.services.pricing import add_price
from rma.services.registration import submit_application
from rma.services.rmas import ContactInput, ItemInput, open_rma
from rma.services.users import create_user

MODELS = [
    # code, name, kind, life months, basis, replacement price (CNY)
    ("TK3", "OTP token C200, 3-year", "hardware", 36, "ship", "80.00"),
    ("TK5", "OTP token C300, 5-year", "hardware", 60, "activation", "120.00"),
    ("AS-LIC", "Authentication server software licence", "software", 12, "acceptance",
     "5000.00"),
    ("AS-SRV", "Authentication server appliance", "appliance", 36, "acceptance", "28000.00"),
]
# What one unit costs the vendor (issue 7): a free replacement's warranty cost (CNY).
UNIT_COSTS = {"TK3": "35.00", "TK5": "55.00", "AS-LIC": "0.00", "AS-SRV": "12500.00"}

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

# Billing details of the demo customers (issue 5), by the index in CUSTOMERS:
# billing name, billing address, tax id, billing e-mail, language, credit terms, days.
BILLING = [
    ("华东示范银行股份有限公司", "上海市浦东新区世纪大道 100 号 财务部", "91310000MA1FL0D01X",
     "ap@hdbank.demo.example", "zh_CN", False, 30),
    ("Northwind Securities Co., Ltd.", "Accounts Payable, 88 Harbour Road, Shenzhen",
     "91440300MA5DNW002K", "ap@northwind.demo.example", "en", True, 45),
]
# The price list (issue 5, D-5), valid from PRICES_FROM: replacement prices per model,
# shipping, 12 months of paid support (R-C3) and VAT.
PRICES_FROM = date(2026, 1, 1)
PRICES = [
    # kind, model code, amount or rate
    ("replacement", "TK3", "150.00"),
    ("replacement", "TK5", "220.00"),
    ("replacement", "AS-LIC", "6000.00"),
    ("replacement", "AS-SRV", "30000.00"),
    ("shipping", None, "20.00"),
    ("support", None, "48000.00"),
    ("vat", None, "0.13"),
]

# Escalation role holders (issue 6, R-I4), all staff of role manager. Deputies are told
# too; the account manager is per customer (row 0 for the first demo customer, row 1 the
# fallback for the others).
ESCALATION_USERS = [
    # e-mail, password, language, full name
    ("am@demo.example", "demo-am-2026", "zh_CN", "王客户经理"),
    ("am2@demo.example", "demo-am2-2026", "en", "Lucy Account"),
    ("lead@demo.example", "demo-lead-2026", "zh_CN", "赵技术主管"),
    ("director@demo.example", "demo-director-2026", "zh_CN", "钱服务总监"),
    ("cto@demo.example", "demo-cto-2026", "en", "Chris CTO"),
    ("president@demo.example", "demo-president-2026", "zh_CN", "孙总裁"),
]
ESCALATION_HOLDERS = [
    # role, holder, deputy, customer index (None: global / fallback)
    ("account_manager", "am@demo.example", "am2@demo.example", 0),
    ("account_manager", "am2@demo.example", "am@demo.example", None),
    ("technical_lead", "lead@demo.example", "support@demo.example", None),
    ("service_director", "director@demo.example", "manager@demo.example", None),
    ("cto", "cto@demo.example", "director@demo.example", None),
    ("president", "president@demo.example", "cto@demo.example", None),
]

UNITS_PER_CUSTOMER = 1500
SPARES = {"TK3": 200, "TK5": 100}


def load_demo(echo: Callable[[str], None] = print) -> list[tuple[str, str, str]]:
    actor = Actor.cli("demo-data")
    models = {m.code: m for m in db.session.scalars(select(ProductModel))}
    for code, name, kind, life, basis, price in MODELS:
        if code not in models:
            models[code] = create_product_model(actor, code, name, kind, life, basis, price,
                                                unit_cost=UNIT_COSTS.get(code))
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
            create_user(actor, email, role, password, customer, language,
                        is_customer_admin=role == "customer")
    _load_billing(actor, customers)
    if not db.session.scalar(select(func.count(PriceEntry.id))):
        _load_prices(actor)
        echo(f"added the price list valid from {PRICES_FROM.isoformat()}")
    if not db.session.scalar(select(func.count(Unit.id))):
        count = _load_units(actor, models, customers)
        echo(f"added {count} demo units")
    if not db.session.scalar(select(func.count(Rma.id))):
        rma = _demo_rma(customers[0])
        echo(f"opened demo {rma.number} for {customers[0].name}")
    _load_escalation(actor, customers)
    if not db.session.scalar(select(func.count(Incident.id))):
        numbers = _demo_incidents(customers)
        echo(f"added demo incidents {', '.join(numbers)}")
    if not db.session.scalar(select(func.count(Advisory.id))):
        numbers = _demo_advisories()
        echo(f"added demo advisories {', '.join(numbers)}")
    if not db.session.scalar(select(func.count(RegistrationApplication.id))):
        submit_application(
            "西南示范证券有限公司", "四川省成都市高新区天府大道 100 号", "王芳",
            "wang.fang@demo.example", "+86 28 8000 1000", holdings="TK3: TK3-SW000001",
            accepted_on=None, language="zh_CN",
        )
        echo("added a pending registration application for staff to review")
    return ([(email, password, role) for email, role, _, password, _ in USERS]
            + [(email, password, "manager") for email, password, _, _ in ESCALATION_USERS])


def _load_billing(actor: Actor, customers: list[Customer]) -> None:
    """Fill in the demo customers' billing details once (left alone when set)."""
    changed = False
    for customer, row in zip(customers, BILLING, strict=True):
        if customer.billing_name:
            continue
        name, address, tax_id, email, language, credit, days = row
        before = customer.as_audit()
        customer.billing_name, customer.billing_address, customer.tax_id = name, address, tax_id
        customer.billing_email, customer.language = email, language
        customer.credit_terms, customer.payment_terms_days = credit, days
        record(actor, "customer.billing_set", "customer", customer.contract_number, before,
               customer.as_audit())
        changed = True
    if changed:
        db.session.commit()


def _load_prices(actor: Actor) -> None:
    for kind, model_code, value in PRICES:
        if kind == "vat":
            add_price(actor, kind=kind, valid_from=PRICES_FROM, rate=value, note="demo")
        else:
            add_price(actor, kind=kind, valid_from=PRICES_FROM, amount=value,
                      model_code=model_code, note="demo")


def _demo_rma(customer: Customer) -> Rma:
    """One RMA so the portal and the staff pages have something to show: a token in
    warranty and one out of warranty, submitted by the customer's demo user."""
    user = db.session.scalar(select(User).where(User.email == USERS[-2][0]))
    today = clock.today()
    units = db.session.scalars(
        select(Unit).where(Unit.customer_id == customer.id, Unit.serial.like("TK3-%"))
        .order_by(Unit.shipped_on)
    ).all()
    old = next(u for u in units if u.shipped_on < today - timedelta(days=4 * 365))
    new = next(u for u in reversed(units) if u.shipped_on > today - timedelta(days=365))
    return open_rma(
        Actor(user=user), customer.id,
        ContactInput("张伟", "+86 21 6000 0000", user.email),
        customer.address or customer.name,
        [ItemInput(new.serial, "屏幕不显示，按键无反应。", "no_display"),
         ItemInput(old.serial, "动态口令总是验证失败。", "wrong_codes")],
        language="zh_CN",
    )


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


def _load_escalation(actor: Actor, customers: list[Customer]) -> None:
    """The escalation role holders (R-I4) and their deputies, once."""
    from rma.services.escalation_setup import set_holder

    for email, password, language, full_name in ESCALATION_USERS:
        if db.session.scalar(select(User.id).where(User.email == email)) is None:
            user = create_user(actor, email, "manager", password, None, language)
            user.full_name = full_name
            db.session.commit()
    if db.session.scalar(select(func.count(EscalationHolder.id))):
        return
    ids = dict(db.session.execute(select(User.email, User.id)).all())
    for role, holder, deputy, index in ESCALATION_HOLDERS:
        set_holder(actor, role, ids[holder], ids[deputy],
                   customers[index].id if index is not None else None)


def _demo_incidents(customers: list[Customer]) -> list[str]:
    """A few incidents in different states (issue 6), through the services (audited, with
    their e-mails): new, contacted, diagnosed, on site with a brief, resolved."""
    from rma.services import incidents as svc

    support = db.session.scalar(select(User).where(User.email == "support@demo.example"))
    customer_user = db.session.scalar(select(User).where(User.email == "customer2@demo.example"))
    staff = Actor(user=support)
    now = clock.now()

    def serial(customer: Customer) -> str:
        return db.session.scalar(select(Unit.serial).where(Unit.customer_id == customer.id)
                                 .order_by(Unit.serial).limit(1))

    hd, nw = customers
    fresh = svc.report_incident(
        staff, customer=hd, priority="urgent", title="动态口令认证服务器无法登录",
        description="网银登录全部失败，认证服务器无响应。", serials=[serial(hd)],
        channel="phone", reporter_name="张伟", reporter_contact="+86 21 6000 0000",
        reported_at=now - timedelta(minutes=20))
    contacted = svc.report_incident(
        Actor(user=customer_user), customer=nw, priority="serious",
        title="Token codes rejected for some users",
        description="About 5 % of users get 'wrong code' since this morning.",
        serials=[serial(nw)], channel="portal", reporter_name="Emma Lee")
    svc.contact_customer(staff, contacted)
    diagnosed = svc.report_incident(
        staff, customer=hd, priority="general", title="咨询：令牌批量导入格式",
        description="请提供批量导入令牌的 CSV 格式说明。", channel="email",
        reporter_name="李娜", reporter_contact="li.na@hdbank.demo.example",
        reported_at=now - timedelta(hours=5))
    svc.contact_customer(staff, diagnosed)
    svc.record_diagnosis(staff, diagnosed, "格式说明见附件；字段为 serial, model, lot。")
    onsite = svc.report_incident(
        staff, customer=nw, priority="urgent", title="Authentication appliance down",
        description="The primary appliance does not boot; the standby carries the load.",
        channel="phone", reporter_name="Emma Lee", reporter_contact="emma@northwind.demo.example",
        reported_at=now - timedelta(hours=26))
    svc.contact_customer(staff, onsite)
    svc.record_diagnosis(staff, onsite, "Failed system disk; replacement needed on site.")
    visit = svc.request_onsite(staff, onsite, requested_at=now - timedelta(hours=25),
                               site_address="88 Harbour Road, Shenzhen, server room B2")
    svc.record_arrival(staff, visit, now - timedelta(hours=20))
    arrived_on = clock.to_local(now - timedelta(hours=20)).date()
    svc.file_daily_brief(staff, visit, arrived_on,
                         "Disk replaced, appliance rebuilt; monitoring the cluster.")
    resolved = svc.report_incident(
        staff, customer=hd, priority="general", title="令牌时间漂移",
        description="个别令牌需要多次尝试才能通过。", serials=[serial(hd)], channel="phone",
        reporter_name="张伟", reported_at=now - timedelta(days=2))
    svc.contact_customer(staff, resolved)
    svc.record_diagnosis(staff, resolved, "令牌时钟漂移，已在服务器端重新同步。")
    svc.resolve_incident(staff, resolved, "已重新同步令牌，客户确认恢复正常。")
    return [i.number for i in (fresh, contacted, diagnosed, onsite, resolved)]


def _demo_advisories() -> list[str]:
    """Two security advisories (issue 7, R-A1..R-A3), through the services: one whose
    customers were notified (e-mails queued), and a vendor-found draft whose patch came
    out yesterday (its R-A2 notice is due soon)."""
    from rma.services import advisories as svc

    support = Actor(user=db.session.scalar(
        select(User).where(User.email == "support@demo.example")))
    today = clock.today()
    notified = svc.create_advisory(
        support, title="OTP token time drift after battery replacement", severity="medium",
        description="Tokens of model TK3 whose battery was replaced by a third party may "
                    "drift by more than two time steps, so valid codes are rejected.",
        solution="Upgrade the authentication server to 4.2.1, which widens the "
                 "resynchronisation window for affected serials.",
        references="https://example.com/advisories/tk3-drift",
        affected_versions="Authentication server < 4.2.1", model_codes=["TK3"],
        vendor_found=False, patch_released_on=today - timedelta(days=3))
    svc.notify_customers(support, notified)
    draft = svc.create_advisory(
        support, title="Seed export endpoint without rate limit", severity="high",
        description="The administration API's seed export can be called without a rate "
                    "limit by an authenticated operator account.",
        solution="Install hotfix AS-2026-07; restrict the administration API to the "
                 "management network.",
        references="Internal finding 2026-11", affected_versions="AS-LIC 4.0 to 4.2",
        model_codes=["AS-LIC", "AS-SRV"], vendor_found=True,
        patch_released_on=today - timedelta(days=1))
    return [notified.number, draft.number]
