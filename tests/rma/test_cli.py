"""Provisioning commands: each exits non-zero with one clear line on bad input."""

from __future__ import annotations

from sqlalchemy import select

from rma.extensions import db
from rma.models import AuditEvent, Customer, ProductModel, User
from rma.services.users import user_for_token


def _last_line(output: str) -> str:
    return output.strip().splitlines()[-1]


def test_add_model_and_refuse_duplicate(runner):
    ok = runner.invoke(args=["add-model", "tk3", "--name", "OTP token", "--kind", "hardware",
                             "--life-months", "36"])
    assert ok.exit_code == 0, ok.output
    with runner.app.app_context():
        model = db.session.scalar(select(ProductModel))
        assert (model.code, model.life_months, model.warranty_basis) == ("TK3", 36, "ship")
        audit = db.session.scalar(select(AuditEvent).where(AuditEvent.action ==
                                                          "product_model.created"))
        assert audit.actor_label == "cli:add-model" and audit.after["life_months"] == 36
    again = runner.invoke(args=["add-model", "TK3", "--name", "x", "--kind", "hardware",
                                "--life-months", "36"])
    assert again.exit_code == 1
    assert "code: product model TK3 already exists" in again.output


def test_add_model_bad_life_is_refused(runner):
    result = runner.invoke(args=["add-model", "TK9", "--name", "x", "--kind", "hardware",
                                 "--life-months", "0"])
    assert result.exit_code == 1
    assert "life_months 0 is out of range" in result.output


def test_R_C1_add_customer_prints_unique_contract_numbers(runner):
    first = runner.invoke(args=["add-customer", "华东示范银行", "--accepted-on", "2026-03-10"])
    second = runner.invoke(args=["add-customer", "Northwind", "--accepted-on", "2026-01-02"])
    assert first.exit_code == 0 and second.exit_code == 0
    assert _last_line(first.output) == "SC-2026-00001"
    assert _last_line(second.output) == "SC-2026-00002"
    with runner.app.app_context():
        names = {c.contract_number: c.name for c in db.session.scalars(select(Customer))}
    assert names["SC-2026-00001"] == "华东示范银行"


def test_add_customer_bad_date_names_the_field(runner):
    result = runner.invoke(args=["add-customer", "X", "--accepted-on", "2026-13-01"])
    assert result.exit_code == 1
    assert "accepted_on '2026-13-01' is not a date (YYYY-MM-DD)" in result.output
    future = runner.invoke(args=["add-customer", "X", "--accepted-on", "2027-01-01"])
    assert future.exit_code == 1 and "in the future" in future.output


def test_create_user_reads_password_from_stdin(runner):
    runner.invoke(args=["add-customer", "Acme", "--accepted-on", "2026-01-01"])
    result = runner.invoke(args=["create-user", "Ops@Example.com", "--role", "customer",
                                 "--customer", "SC-2026-00001"],
                           input="a-long-password-1\n")
    assert result.exit_code == 0, result.output
    assert "password:" not in result.output
    with runner.app.app_context():
        user = db.session.scalar(select(User))
        assert user.email == "ops@example.com" and user.customer_id is not None
        assert user.password_hash != "a-long-password-1"
        assert user.password_hash.startswith("pbkdf2:")
        assert not user.is_customer_admin


def test_create_user_as_customer_admin(runner):
    runner.invoke(args=["add-customer", "Acme", "--accepted-on", "2026-01-01"])
    result = runner.invoke(args=["create-user", "boss@example.com", "--role", "customer",
                                 "--customer", "SC-2026-00001", "--customer-admin"],
                           input="a-long-password-1\n")
    assert result.exit_code == 0, result.output
    staff = runner.invoke(args=["create-user", "ops@example.com", "--role", "support",
                                "--customer-admin"], input="a-long-password-1\n")
    assert staff.exit_code == 1 and "is_customer_admin" in staff.output
    with runner.app.app_context():
        assert db.session.scalars(select(User.email).where(User.is_customer_admin)).all() == [
            "boss@example.com"]


def test_create_user_generates_password_when_none_given(runner):
    result = runner.invoke(args=["create-user", "lead@example.com", "--role", "support"],
                           input="")
    assert result.exit_code == 0, result.output
    password = _last_line(result.output).removeprefix("password: ")
    client = runner.app.test_client()
    login = client.post("/login", data={"email": "lead@example.com", "password": password})
    assert login.status_code == 302


def test_create_user_refusals(runner):
    no_customer = runner.invoke(args=["create-user", "a@example.com", "--role", "customer"],
                                input="long-enough-pw\n")
    assert no_customer.exit_code == 1 and "needs a customer contract" in no_customer.output
    unknown = runner.invoke(args=["create-user", "a@example.com", "--role", "customer",
                                  "--customer", "SC-1999-00001"], input="long-enough-pw\n")
    assert unknown.exit_code == 1 and "not a known contract number" in unknown.output
    short = runner.invoke(args=["create-user", "a@example.com", "--role", "admin"],
                          input="short\n")
    assert short.exit_code == 1 and "password must be at least 10" in short.output
    bad_email = runner.invoke(args=["create-user", "not-an-email", "--role", "admin"],
                              input="long-enough-pw\n")
    assert bad_email.exit_code == 1 and "email: e-mail 'not-an-email' is not valid" in (
        bad_email.output)
    with runner.app.app_context():
        assert db.session.scalar(select(User)) is None


def test_create_token_prints_a_working_token_stored_hashed(runner):
    runner.invoke(args=["create-user", "api@example.com", "--role", "support"],
                  input="long-enough-pw\n")
    result = runner.invoke(args=["create-token", "api@example.com", "--name", "monitoring"])
    assert result.exit_code == 0, result.output
    token = _last_line(result.output)
    with runner.app.app_context():
        assert user_for_token(token).email == "api@example.com"
        assert user_for_token(token + "x") is None
        from rma.models import ApiToken

        stored = db.session.scalar(select(ApiToken))
        assert token not in stored.token_hash and len(stored.token_hash) == 64
    missing = runner.invoke(args=["create-token", "nobody@example.com"])
    assert missing.exit_code == 1 and "no user with e-mail" in missing.output


def test_warranty_command(runner):
    runner.invoke(args=["add-model", "TK3", "--name", "t", "--kind", "hardware",
                        "--life-months", "36"])
    contract = _last_line(runner.invoke(args=["add-customer", "A",
                                              "--accepted-on", "2024-01-01"]).output)
    csv_path = runner.app.instance_path + "/units.csv"
    with open(csv_path, "w") as f:
        f.write(f"serial,model,customer_contract,lot,shipped_on\nTK3-0001,TK3,{contract},L1,"
                "2024-02-29\n")
    assert runner.invoke(args=["import-units", csv_path]).exit_code == 0
    result = runner.invoke(args=["warranty", " tk3-0001 "])
    assert result.exit_code == 0, result.output
    assert "last covered:  2027-02-28" in result.output
    assert "in warranty" in result.output
    judged = runner.invoke(args=["warranty", "TK3-0001", "--on", "2027-03-01"])
    assert "out of warranty" in judged.output
    bad = runner.invoke(args=["warranty", "a#"])
    assert bad.exit_code == 1 and "serial 'a#' is not valid" in bad.output
    unknown = runner.invoke(args=["warranty", "NOPE-1"])
    assert unknown.exit_code == 1 and "serial 'NOPE-1' is not known" in unknown.output


def test_rma_help_lists_every_command(runner):
    result = runner.invoke(args=["--help"])
    for name in ("init-db", "demo-data", "add-model", "add-customer", "create-user",
                 "create-token", "warranty", "import-units", "backup", "restore", "tick"):
        assert name in result.output


def test_demo_data_is_idempotent_and_prints_logins(runner):
    from sqlalchemy import func

    from rma.models import OutboxMessage, RegistrationApplication, Rma, RmaItem, Unit

    tables = (Unit, User, Rma, RmaItem, RegistrationApplication, OutboxMessage)
    first = runner.invoke(args=["demo-data"])
    assert first.exit_code == 0, first.output
    assert "admin@demo.example" in first.output and "demo-admin-2026" in first.output
    with runner.app.app_context():
        counts = tuple(db.session.scalar(select(func.count(t.id))) for t in tables)
        rma = db.session.scalar(select(Rma))
        coverage = sorted(item.in_warranty_on_submit for item in rma.items)
        admins = db.session.scalars(select(User.email).where(User.is_customer_admin)).all()
    second = runner.invoke(args=["demo-data"])
    assert second.exit_code == 0
    with runner.app.app_context():
        assert counts == tuple(db.session.scalar(select(func.count(t.id))) for t in tables)
    units, users, rmas, items, applications, mails = counts
    assert units > 3000 and users == 13
    # A demo RMA with one token in warranty and one out, its e-mail, and an application.
    assert (rmas, items, applications) == (1, 2, 1) and mails == 13
    assert coverage == [False, True]
    assert sorted(admins) == ["customer2@demo.example", "customer@demo.example"]
    client = runner.app.test_client()
    for line in first.output.splitlines():
        if "@demo.example" in line:
            _, email, password = line.split()
            assert client.post("/login", data={"email": email, "password": password}
                               ).status_code == 302
            client.post("/logout")


def test_r_i4_set_holder_and_list_holders(runner, app, make_user, make_customer):
    """R-I4 holders from the command line, as /admin/escalation sets them: refusals name
    the field and change nothing; each change is audited."""
    contract = make_customer("华东示范银行")
    make_user("lead@vendor.example", "support")
    make_user("deputy@vendor.example", "support")
    make_user("am@vendor.example", "manager")
    make_user("someone@bank.example", "customer", contract)
    empty = runner.invoke(args=["holders"])
    assert empty.exit_code == 0 and "escalations go to the managers" in empty.output

    ok = runner.invoke(args=["set-holder", "technical_lead", "lead@vendor.example",
                             "--deputy", "deputy@vendor.example"])
    assert ok.exit_code == 0, ok.output
    assert "technical_lead: lead@vendor.example, deputy deputy@vendor.example" in ok.output
    per_customer = runner.invoke(args=["set-holder", "account_manager", "am@vendor.example",
                                       "--customer", contract.lower()])
    assert per_customer.exit_code == 0, per_customer.output
    listed = runner.invoke(args=["holders"]).output.splitlines()
    assert listed == ["account_manager [" + contract + "]: am@vendor.example",
                      "technical_lead: lead@vendor.example (deputy deputy@vendor.example)"]

    refusals = [
        (["set-holder", "cto", "someone@bank.example"], "user_id: "),
        (["set-holder", "cto", "nobody@vendor.example"], "email: no user"),
        (["set-holder", "cto", "lead@vendor.example", "--deputy", "lead@vendor.example"],
         "deputy_id: "),
        (["set-holder", "cto", "lead@vendor.example", "--customer", contract],
         "customer_id: "),
        (["set-holder", "account_manager", "am@vendor.example", "--customer", "SC-0000-0"],
         "customer: contract"),
        (["set-holder", "janitor", "lead@vendor.example"], "Invalid value"),
    ]
    for args, said in refusals:
        result = runner.invoke(args=args)
        assert result.exit_code != 0 and said in result.output, (args, result.output)
    assert runner.invoke(args=["holders"]).output.splitlines() == listed
    with app.app_context():
        events = db.session.scalars(select(AuditEvent.action).where(
            AuditEvent.action == "escalation_holder.set")).all()
        assert len(events) == 2
