"""Invitations (hashed one-time tokens that expire) and the colleagues a customer admin
manages, within their own customer only (R-R4: every change audited)."""

from __future__ import annotations

import hashlib
import re

import pytest
from sqlalchemy import func, select

from rma.extensions import db
from rma.models import AuditEvent, Customer, Invitation, OutboxMessage, Role, User
from rma.services import ConflictError, ValidationError
from rma.services.audit import Actor
from tests.conftest import TEST_PASSWORD, count_queries

EN = {"Accept-Language": "en"}
LINK = re.compile(r"/invite/([A-Za-z0-9_-]+)")
GOOD_PASSWORD = "plum-orchard-7-harbour"


def accept_form(**overrides) -> dict:
    form = {"full_name": "Zhang San", "phone": "+86 21 5000 0000", "password": GOOD_PASSWORD,
            "password_confirm": GOOD_PASSWORD, "language": "en"}
    form.update(overrides)
    return form


def customer_id(app, contract) -> int:
    with app.app_context():
        return db.session.scalar(select(Customer.id).where(Customer.contract_number == contract))


def invite(app, email, contract, admin=False, language="en", actor=None):
    from rma.services.invitations import invite as do_invite

    with app.app_context():
        invitation, raw = do_invite(actor or Actor.cli("test"), email, Role.CUSTOMER,
                                    customer_id(app, contract), admin, language)
        return invitation.id, raw


def make_admin(app, make_user, email, contract, admin=True) -> int:
    user_id = make_user(email, "customer", contract)
    with app.app_context():
        db.session.get(User, user_id).is_customer_admin = admin
        db.session.commit()
    return user_id


def logged_in(app, email):
    client = app.test_client()
    response = client.post("/login", data={"email": email, "password": TEST_PASSWORD})
    assert response.status_code == 302
    return client


def user(app, user_id) -> User:
    with app.app_context():
        found = db.session.get(User, user_id)
        db.session.expunge(found)
        return found


def audit(app, action) -> list[AuditEvent]:
    with app.app_context():
        rows = db.session.scalars(select(AuditEvent).where(AuditEvent.action == action)).all()
        db.session.expunge_all()
        return rows


# -- the invitation itself ----------------------------------------------------------------
def test_invite_stores_only_the_hash_expires_in_7_days_and_emails_the_link(app, make_customer):
    contract = make_customer()
    invitation_id, raw = invite(app, "New.Person@Example.com", contract, admin=True,
                                language="zh_CN")
    with app.app_context():
        invitation = db.session.get(Invitation, invitation_id)
        assert invitation.email == "new.person@example.com"
        assert invitation.token_hash == hashlib.sha256(raw.encode()).hexdigest()
        assert (invitation.expires_at - invitation.created_at).days == 7
        assert invitation.is_customer_admin
        message = db.session.scalar(select(OutboxMessage))
        assert (message.template, message.to_address, message.language) == (
            "invitation", "new.person@example.com", "zh_CN")
        assert f"http://127.0.0.1:8000/invite/{raw}" in message.body_text
        assert raw not in str([e.after for e in db.session.scalars(select(AuditEvent))])
    assert len(raw) >= 43


def test_reinviting_revokes_the_older_invitation(app, client, make_customer):
    contract = make_customer()
    first_id, first = invite(app, "p@example.com", contract)
    second_id, second = invite(app, "p@example.com", contract, admin=True)
    with app.app_context():
        assert db.session.get(Invitation, first_id).revoked_at is not None
        assert db.session.get(Invitation, second_id).revoked_at is None
    page = client.get(f"/invite/{first}", headers=EN)
    assert page.status_code == 410
    assert "This invitation was withdrawn" in page.get_data(as_text=True)
    assert client.get(f"/invite/{second}").status_code == 200
    assert len(audit(app, "invitation.revoked")) == 1


def test_inviting_an_email_that_has_a_user_is_refused(app, make_customer, make_user):
    contract = make_customer()
    make_user("taken@example.com", "support")
    with pytest.raises(ConflictError, match="already has an account"):
        invite(app, "TAKEN@example.com", contract)
    with app.app_context():
        assert db.session.scalar(select(func.count(Invitation.id))) == 0
        assert db.session.scalar(select(func.count(OutboxMessage.id))) == 0


def test_expired_link_shows_a_clear_page(app, client, make_customer):
    contract = make_customer()
    _id, raw = invite(app, "p@example.com", contract)
    app.config["FIXED_NOW"] = "2026-12-02T03:59:59+00:00"  # 7 days minus a second
    assert client.get(f"/invite/{raw}").status_code == 200
    app.config["FIXED_NOW"] = "2026-12-02T04:00:00+00:00"
    for response in (client.get(f"/invite/{raw}", headers=EN),
                     client.post(f"/invite/{raw}", data=accept_form(), headers=EN)):
        assert response.status_code == 410
        html = response.get_data(as_text=True)
        assert "This invitation has expired" in html and 'data-reason="expired"' in html
    with app.app_context():
        assert db.session.scalar(select(func.count(User.id))) == 0


@pytest.mark.parametrize("token", ["x" * 43, "short", "a" * 300, "bad$token" * 5])
def test_unknown_or_malformed_link_is_404_not_500(client, token):
    response = client.get(f"/invite/{token}", headers=EN)
    assert response.status_code == 404
    assert "Unknown invitation link" in response.get_data(as_text=True)


def test_token_cannot_be_used_twice(app, client, make_customer):
    contract = make_customer()
    _id, raw = invite(app, "p@example.com", contract)
    assert client.post(f"/invite/{raw}", data=accept_form()).status_code == 302
    other = app.test_client()
    for response in (other.get(f"/invite/{raw}", headers=EN),
                     other.post(f"/invite/{raw}", headers=EN,
                                data=accept_form(password="another-pass-99",
                                                 password_confirm="another-pass-99"))):
        assert response.status_code == 410
        assert "already been used" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(func.count(User.id))) == 1


@pytest.mark.parametrize(("form", "field"), [
    ({"password_confirm": "plum-orchard-7-harbouR"}, "password_confirm"),
    ({"password": "aaaaaaaaaaaa", "password_confirm": "aaaaaaaaaaaa"}, "password"),
    ({"full_name": "   "}, "full_name"),
])
def test_accept_errors_are_beside_the_field(app, client, make_customer, form, field):
    contract = make_customer()
    _id, raw = invite(app, "p@example.com", contract)
    response = client.post(f"/invite/{raw}", data=accept_form(**form), headers=EN)
    assert response.status_code == 200
    assert f'id="{field}-error"' in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(func.count(User.id))) == 0
        assert db.session.scalar(select(Invitation.accepted_at)) is None


def test_accepting_logs_out_whoever_was_logged_in(app, client, make_customer, make_user):
    contract = make_customer()
    make_user("staff@vendor.example", "support")
    browser = logged_in(app, "staff@vendor.example")
    _id, raw = invite(app, "p@example.com", contract)
    assert browser.post(f"/invite/{raw}", data=accept_form()).status_code == 302
    assert browser.get("/staff/applications").status_code == 403  # now the customer user


# -- staff invite customer users ----------------------------------------------------------
def test_staff_invite_a_customer_user(app, make_customer, make_user):
    contract = make_customer()
    cid = customer_id(app, contract)
    make_user("support@vendor.example", "support")
    staff = logged_in(app, "support@vendor.example")
    listing = staff.get("/staff/customers?q=" + contract, headers=EN).get_data(as_text=True)
    assert f"/staff/customers/{cid}/users" in listing
    assert staff.get(f"/staff/customers/{cid}/users").status_code == 200
    bad = staff.post(f"/staff/customers/{cid}/invite", data={"email": "nope", "language": "en"},
                     headers=EN)
    assert bad.status_code == 422
    assert 'id="email-error"' in bad.get_data(as_text=True)
    done = staff.post(f"/staff/customers/{cid}/invite",
                      data={"email": "boss@bank.example", "is_customer_admin": "y",
                            "language": "zh_CN"})
    assert done.status_code == 302
    with app.app_context():
        invitation = db.session.scalar(select(Invitation))
        assert (invitation.email, invitation.customer_id, invitation.is_customer_admin) == (
            "boss@bank.example", cid, True)
        assert invitation.invited_by_id is not None
    page = staff.get(f"/staff/customers/{cid}/users", headers=EN).get_data(as_text=True)
    assert "boss@bank.example" in page
    revoked = staff.post(f"/staff/customers/{cid}/invitations/{invitation.id}/revoke")
    assert revoked.status_code == 302
    with app.app_context():
        assert db.session.scalar(select(Invitation.revoked_at)) is not None
    assert staff.post("/staff/customers/999/invite",
                      data={"email": "x@example.com"}).status_code == 404


def test_customers_cannot_use_staff_invite(app, make_customer, make_user):
    contract = make_customer()
    make_admin(app, make_user, "admin@a.example", contract)
    client = logged_in(app, "admin@a.example")
    cid = customer_id(app, contract)
    assert client.get(f"/staff/customers/{cid}/users").status_code == 403
    assert client.post(f"/staff/customers/{cid}/invite",
                       data={"email": "x@example.com", "language": "en"}).status_code == 403


# -- colleagues ---------------------------------------------------------------------------
@pytest.fixture
def two_customers(app, make_customer, make_user):
    a, b = make_customer("Bank A"), make_customer("Bank B")
    ids = {
        "a_admin": make_admin(app, make_user, "admin@a.example", a),
        "a_user": make_admin(app, make_user, "user@a.example", a, admin=False),
        "b_admin": make_admin(app, make_user, "admin@b.example", b),
        "b_user": make_admin(app, make_user, "user@b.example", b, admin=False),
    }
    return a, b, ids


def test_only_customer_admins_open_the_colleagues_page(app, client, two_customers, make_user):
    a, _b, ids = two_customers
    assert client.get("/portal/users").status_code == 302  # anonymous
    regular = logged_in(app, "user@a.example")
    assert regular.get("/portal/users").status_code == 403
    assert regular.post("/portal/users/invite", data={"email": "x@a.example"}).status_code == 403
    assert regular.post(f"/portal/users/{ids['a_admin']}/active",
                        data={"active": "0"}).status_code == 403
    make_user("admin@vendor.example", "admin")
    assert logged_in(app, "admin@vendor.example").get("/portal/users").status_code == 403
    html = logged_in(app, "admin@a.example").get("/portal/users", headers=EN).get_data(
        as_text=True)
    assert "user@a.example" in html and "Bank A" in html
    assert "b.example" not in html


def test_admin_of_a_cannot_touch_b_users_or_invitations(app, two_customers):
    _a, b, ids = two_customers
    b_invitation, _raw = invite(app, "new@b.example", b)
    admin_a = logged_in(app, "admin@a.example")
    for target in (ids["b_user"], ids["b_admin"], 999999):
        assert admin_a.post(f"/portal/users/{target}/active",
                            data={"active": "0"}).status_code == 404
        assert admin_a.post(f"/portal/users/{target}/admin",
                            data={"admin": "1"}).status_code == 404
    assert admin_a.post(f"/portal/users/invitations/{b_invitation}/revoke").status_code == 404
    assert user(app, ids["b_user"]).is_active and not user(app, ids["b_user"]).is_customer_admin
    with app.app_context():
        assert db.session.get(Invitation, b_invitation).revoked_at is None
    # Nor withdraw B's pending invitation by inviting the same address.
    refused = admin_a.post("/portal/users/invite", data={"email": "new@b.example",
                                                          "language": "en"}, headers=EN)
    assert refused.status_code == 422
    assert "pending invitation from another organisation" in refused.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(Invitation, b_invitation).revoked_at is None
    assert audit(app, "user.updated") == [] and audit(app, "invitation.revoked") == []


def test_deactivate_and_reactivate_a_colleague(app, two_customers):
    _a, _b, ids = two_customers
    admin_a = logged_in(app, "admin@a.example")
    colleague = logged_in(app, "user@a.example")
    assert admin_a.post(f"/portal/users/{ids['a_user']}/active",
                        data={"active": "0"}).status_code == 302
    assert not user(app, ids["a_user"]).is_active
    assert colleague.get("/staff/applications").status_code == 302  # session no longer valid
    refused = app.test_client().post("/login", data={"email": "user@a.example",
                                                     "password": TEST_PASSWORD})
    assert refused.status_code == 200
    assert admin_a.post(f"/portal/users/{ids['a_user']}/active",
                        data={"active": "1"}).status_code == 302
    assert user(app, ids["a_user"]).is_active
    events = audit(app, "user.updated")
    assert [(e.before["is_active"], e.after["is_active"]) for e in events] == [
        (True, False), (False, True)]
    assert all(e.actor_label == "admin@a.example" for e in events)


def test_never_yourself_and_never_the_last_admin(app, two_customers):
    _a, _b, ids = two_customers
    admin_a = logged_in(app, "admin@a.example")
    own = admin_a.post(f"/portal/users/{ids['a_admin']}/active", data={"active": "0"})
    assert own.status_code == 302
    assert "You cannot deactivate yourself." in admin_a.get("/portal/users", headers=EN).get_data(
        as_text=True)
    last = admin_a.post(f"/portal/users/{ids['a_admin']}/admin", data={"admin": "0"},
                        headers=EN)
    assert last.status_code == 302
    assert "at least one active administrator" in admin_a.get(
        "/portal/users", headers=EN).get_data(as_text=True)
    assert user(app, ids["a_admin"]).is_customer_admin and user(app, ids["a_admin"]).is_active
    # With a second admin, the first may step down; then the second cannot be removed.
    assert admin_a.post(f"/portal/users/{ids['a_user']}/admin",
                        data={"admin": "1"}).status_code == 302
    step_down = admin_a.post(f"/portal/users/{ids['a_admin']}/admin", data={"admin": "0"})
    assert step_down.headers["Location"] == "/portal/"
    assert not user(app, ids["a_admin"]).is_customer_admin
    assert admin_a.get("/portal/users").status_code == 403
    second = logged_in(app, "user@a.example")
    second.post(f"/portal/users/{ids['a_user']}/admin", data={"admin": "0"})
    assert user(app, ids["a_user"]).is_customer_admin


def test_an_inactive_admin_does_not_count_as_the_remaining_admin(app, two_customers):
    from rma.services.invitations import set_colleague_active, set_colleague_admin

    _a, _b, ids = two_customers
    with app.app_context():
        db.session.get(User, ids["a_user"]).is_customer_admin = True
        db.session.commit()
        first = db.session.get(User, ids["a_admin"])
        set_colleague_active(Actor(user=first), ids["a_user"], False)
        with pytest.raises(ConflictError, match="at least one active administrator"):
            set_colleague_admin(Actor(user=first), ids["a_admin"], False)
        with pytest.raises(ValidationError, match="cannot deactivate yourself"):
            set_colleague_active(Actor(user=first), ids["a_admin"], False)
        set_colleague_active(Actor(user=first), ids["a_user"], True)
        set_colleague_admin(Actor(user=first), ids["a_admin"], False)  # now another remains
        assert not db.session.get(User, ids["a_admin"]).is_customer_admin


def test_colleague_invitation_can_be_withdrawn(app, two_customers):
    admin_a = logged_in(app, "admin@a.example")
    assert admin_a.post("/portal/users/invite", data={
        "email": "new@a.example", "is_customer_admin": "y", "language": "zh_CN"}
    ).status_code == 302
    with app.app_context():
        invitation = db.session.scalar(select(Invitation))
        assert invitation.is_customer_admin and invitation.language == "zh_CN"
        raw_link = db.session.scalar(select(OutboxMessage.body_text))
    html = admin_a.get("/portal/users").get_data(as_text=True)
    assert f'data-invitation="{invitation.id}"' in html
    assert admin_a.post(f"/portal/users/invitations/{invitation.id}/revoke").status_code == 302
    again = admin_a.post(f"/portal/users/invitations/{invitation.id}/revoke", headers=EN)
    assert again.status_code == 302  # no longer pending: a message, nothing changes
    assert len(audit(app, "invitation.revoked")) == 1
    token = LINK.search(raw_link).group(1)
    assert app.test_client().get(f"/invite/{token}").status_code == 410


def test_bad_flag_value_is_a_bad_request(app, two_customers):
    _a, _b, ids = two_customers
    admin_a = logged_in(app, "admin@a.example")
    assert admin_a.post(f"/portal/users/{ids['a_user']}/active",
                        data={"active": "maybe"}).status_code == 400


def test_colleagues_page_query_count_does_not_grow(app, two_customers, make_user):
    a, _b, _ids = two_customers
    admin_a = logged_in(app, "admin@a.example")

    def queries() -> int:
        with count_queries(app) as statements:
            assert admin_a.get("/portal/users").status_code == 200
        return len(statements)

    few = queries()
    for n in range(10):
        make_user(f"u{n}@a.example", "customer", a)
        invite(app, f"i{n}@a.example", a)
    assert queries() == few
