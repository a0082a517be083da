"""Log-in, roles enforced on the server, and the admin pages (with audit, R-R4)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from rma.extensions import db
from rma.models import AuditEvent, Customer, ProductModel, User
from tests.conftest import TEST_PASSWORD, make_app

ADMIN_PAGES = ["/admin/", "/admin/models", "/admin/models/new", "/admin/customers",
               "/admin/customers/new", "/admin/users", "/admin/users/new"]


@pytest.mark.parametrize("url", ADMIN_PAGES)
def test_anonymous_is_sent_to_login(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")


@pytest.mark.parametrize("role", ["customer", "support", "warehouse", "finance", "manager"])
def test_only_admins_open_admin_pages(login, make_customer, role):
    contract = make_customer() if role == "customer" else None
    client = login(role, contract=contract)
    for url in ADMIN_PAGES:
        assert client.get(url).status_code == 403, url
    assert client.post("/admin/models/new", data={"code": "X1"}).status_code == 403


def test_wrong_password_and_inactive_user_cannot_log_in(client, make_user, app):
    make_user("a@example.com", "admin")
    bad = client.post("/login", data={"email": "a@example.com", "password": "nope-nope-nope"},
                      headers={"Accept-Language": "en"})
    assert bad.status_code == 200
    assert "E-mail or password is not right." in bad.get_data(as_text=True)
    with app.app_context():
        user = db.session.scalar(select(User))
        user.is_active_flag = False
        db.session.commit()
    refused = client.post("/login", data={"email": "a@example.com", "password": TEST_PASSWORD})
    assert refused.status_code == 200


def test_login_redirects_only_to_local_pages(client, make_user):
    make_user("a@example.com", "admin")
    response = client.post("/login?next=https://evil.example/x",
                           data={"email": "A@Example.com", "password": TEST_PASSWORD})
    assert response.headers["Location"] == "/"
    client.post("/logout")
    response = client.post("/login?next=/admin/models",
                           data={"email": "a@example.com", "password": TEST_PASSWORD})
    assert response.headers["Location"] == "/admin/models"


def test_logout_needs_post_and_ends_the_session(login):
    client = login("admin")
    assert client.get("/logout").status_code == 405
    client.post("/logout")
    assert client.get("/admin/").status_code == 302


def test_csrf_is_required_on_forms(database_url, tmp_path):
    app = make_app(database_url, tmp_path, WTF_CSRF_ENABLED=True)
    with app.app_context():
        if database_url.startswith("sqlite"):
            db.create_all()
        else:
            from tests.conftest import _reset_postgres

            _reset_postgres()
    response = app.test_client().post("/login", data={"email": "a@example.com",
                                                      "password": "x" * 12})
    assert response.status_code == 400


def test_admin_creates_model_with_field_errors_first(login, app):
    client = login("admin")
    bad = client.post("/admin/models/new", data={
        "code": "tk3", "name": "Token", "kind": "hardware", "life_months": "0",
        "basis": "ship", "replacement_price": "80"})
    assert bad.status_code == 200
    assert 'id="life_months-error"' in bad.get_data(as_text=True)
    ok = client.post("/admin/models/new", data={
        "code": "tk3", "name": "Token", "kind": "hardware", "life_months": "36",
        "basis": "activation", "replacement_price": "80.5"})
    assert ok.status_code == 302
    duplicate = client.post("/admin/models/new", data={
        "code": "TK3", "name": "Token", "kind": "hardware", "life_months": "36",
        "basis": "ship", "replacement_price": "1"})
    assert "product model TK3 already exists" in duplicate.get_data(as_text=True)
    with app.app_context():
        model = db.session.scalar(select(ProductModel))
        assert (model.code, model.warranty_basis, str(model.replacement_price)) == (
            "TK3", "activation", "80.50")
        event = db.session.scalar(select(AuditEvent).where(
            AuditEvent.action == "product_model.created"))
        assert event.actor.email == "admin@example.com"


def test_admin_edits_model_and_audit_keeps_before_and_after(login, app, make_model):
    model_id = make_model("TK3", 36)
    client = login("admin")
    response = client.post(f"/admin/models/{model_id}", data={
        "code": "IGNORED", "name": "Token", "kind": "hardware", "life_months": "48",
        "basis": "ship", "replacement_price": "80"})
    assert response.status_code == 302
    with app.app_context():
        model = db.session.get(ProductModel, model_id)
        assert model.code == "TK3" and model.life_months == 48
        event = db.session.scalar(select(AuditEvent).where(
            AuditEvent.action == "product_model.updated"))
        assert event.before["life_months"] == 36 and event.after["life_months"] == 48


def test_R_C1_admin_registers_customer_and_gets_contract_number(login, app):
    client = login("admin")
    response = client.post("/admin/customers/new", data={
        "name": "华东示范银行", "address": "上海", "accepted_on": "2026-03-10",
        "contract_months": "12"}, follow_redirects=True, headers={"Accept-Language": "en"})
    html = response.get_data(as_text=True)
    assert "SC-2026-00001" in html and "华东示范银行" in html
    future = client.post("/admin/customers/new", data={
        "name": "X", "accepted_on": "2027-01-01", "contract_months": "12"})
    assert 'id="accepted_on-error"' in future.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(Customer.contract_number)) == "SC-2026-00001"
        assert len(db.session.scalars(select(Customer)).all()) == 1


def test_admin_creates_customer_user_and_refuses_bad_contract(login, app, make_customer):
    contract = make_customer()
    client = login("admin")
    bad = client.post("/admin/users/new", data={
        "email": "c@example.com", "role": "customer", "customer": "SC-1999-00001",
        "language": "zh_CN", "password": "long-enough-pw", "is_active": "y"})
    assert "not a known contract number" in bad.get_data(as_text=True)
    ok = client.post("/admin/users/new", data={
        "email": "c@example.com", "role": "customer", "customer": contract,
        "language": "zh_CN", "password": "long-enough-pw", "is_active": "y"})
    assert ok.status_code == 302
    with app.app_context():
        user = db.session.scalar(select(User).where(User.email == "c@example.com"))
        assert user.customer.contract_number == contract and user.language == "zh_CN"


def test_admin_cannot_deactivate_themselves(login, app):
    client = login("admin")
    with app.app_context():
        me = db.session.scalar(select(User))
    response = client.post(f"/admin/users/{me.id}", data={
        "email": me.email, "role": "admin", "language": "en", "password": ""})
    assert "you cannot deactivate yourself" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(User, me.id).is_active


def test_unknown_records_are_404(login):
    client = login("admin")
    for url in ("/admin/models/999", "/admin/customers/999", "/admin/users/999"):
        assert client.get(url).status_code == 404


def test_customer_list_counts_units_without_n_plus_1(login, app, make_customer):
    from tests.conftest import count_queries

    for n in range(5):
        make_customer(f"C{n}")
    client = login("admin")
    with count_queries(app) as statements:
        assert client.get("/admin/customers").status_code == 200
    few = len(statements)
    for n in range(5, 15):
        make_customer(f"C{n}")
    with count_queries(app) as statements:
        assert client.get("/admin/customers").status_code == 200
    assert len(statements) == few
