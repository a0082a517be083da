"""Registration: apply, staff review (approve with contract number R-C1, or reject), and
the whole journey to a logged-in customer admin who invites a colleague (R-R4 audit)."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from rma.extensions import db
from rma.models import (
    ApplicationStatus,
    AuditEvent,
    Customer,
    Invitation,
    NumberSequence,
    OutboxMessage,
    RegistrationApplication,
    Unit,
    User,
)
from rma.services.audit import Actor
from tests.conftest import TEST_PASSWORD, count_queries, make_app

EN = {"Accept-Language": "en"}
LINK = re.compile(r"http://127\.0\.0\.1:8000/invite/([A-Za-z0-9_-]+)")
GOOD_PASSWORD = "plum-orchard-7-harbour"


def application_form(**overrides) -> dict:
    form = {
        "organisation_name": "华北示范银行",
        "address": "北京市西城区金融大街 1 号",
        "contact_name": "王伟",
        "contact_email": "wang.wei@bank.example.cn",
        "contact_phone": "+86 10 6000 0000",
        "other_contacts": "李娜, IT, +86 10 6000 0001",
        "holdings": "",
        "accepted_on": "2026-03-10",
        "language": "zh_CN",
    }
    form.update(overrides)
    return form


def apply(client, **overrides):
    return client.post("/register", data=application_form(**overrides), headers=EN)


def only(app, model, *where):
    with app.app_context():
        rows = db.session.scalars(select(model).where(*where)).all()
        assert len(rows) == 1, rows
        db.session.expunge_all()
        return rows[0]


def count(app, model, *where) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model).where(*where))


def actions(app) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))


def add_units(app, model_id, contract=None, *serials, status="in_service"):
    with app.app_context():
        customer_id = (db.session.scalar(select(Customer.id).where(
            Customer.contract_number == contract)) if contract else None)
        for serial in serials:
            db.session.add(Unit(serial=serial, model_id=model_id, customer_id=customer_id,
                                status=status))
        db.session.commit()


def staff_client(app, make_user, role="support", email=None):
    email = email or f"{role}@vendor.example"
    make_user(email, role)
    client = app.test_client()
    response = client.post("/login", data={"email": email, "password": TEST_PASSWORD})
    assert response.status_code == 302
    return client


def application_id(app, email="wang.wei@bank.example.cn") -> int:
    return only(app, RegistrationApplication,
                RegistrationApplication.contact_email == email).id


# -- applying -----------------------------------------------------------------------------
def test_apply_records_pending_application_audit_and_email_in_applicant_language(client, app):
    response = apply(client, language="en", holdings="TK3-0001")
    assert response.status_code == 302
    assert response.headers["Location"] == "/register/thanks"
    assert "We received your application" in client.get("/register/thanks",
                                                         headers=EN).get_data(as_text=True)
    application = only(app, RegistrationApplication)
    assert application.status == ApplicationStatus.PENDING
    assert application.organisation_name == "华北示范银行"
    assert str(application.accepted_on) == "2026-03-10"
    message = only(app, OutboxMessage)
    assert (message.template, message.to_address, message.language) == (
        "registration_received", "wang.wei@bank.example.cn", "en")
    assert "华北示范银行" in message.body_text
    assert actions(app) == ["application.submitted"]


def test_register_page_links_from_login_and_nav(client):
    assert 'href="/register"' in client.get("/login").get_data(as_text=True)
    page = client.get("/register", headers=EN)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'name="website"' in html and 'class="hp"' in html  # honeypot present, hidden


def test_malformed_serials_are_shown_per_line_D_8(client, app):
    response = apply(client, holdings="TK3-0001\nTK3: tk3-0002, ab#12\n\nx1\nsrv-7788")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Line 2: ab#12 is not a valid serial." in html
    assert "Line 4: x1 is not a valid serial." in html
    assert "Line 1" not in html and "Line 5" not in html
    assert count(app, RegistrationApplication) == 0
    assert count(app, OutboxMessage) == 0


def test_unknown_serials_are_accepted_and_normalised_D_8(client, app, make_model):
    model_id = make_model()
    add_units(app, model_id, None, "TK3-0001")
    assert apply(client, holdings=" tk3-0001 \nToken X: new-0009，NEW-0009").status_code == 302
    with app.app_context():
        from rma.services.registration import match_holdings

        application = db.session.scalar(select(RegistrationApplication))
        matches = {m.held.serial: m.state for m in match_holdings(application)}
    assert matches == {"TK3-0001": "free", "NEW-0009": "unknown"}


@pytest.mark.parametrize(("field", "value", "message"), [
    ("contact_email", "not-an-address", "This is not a valid e-mail address."),
    ("contact_phone", "call me maybe", "Use digits, spaces and + - ( ) only."),
    ("accepted_on", "2027-01-01", "This date is in the future."),
    ("organisation_name", "   ", "This field is required."),
])
def test_bad_fields_are_refused_beside_the_field(client, app, field, value, message):
    response = apply(client, **{field: value})
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert f'id="{field}-error"' in html and message in html
    assert count(app, RegistrationApplication) == 0


def test_second_pending_application_for_same_email_is_refused(client, app):
    assert apply(client).status_code == 302
    response = apply(client, contact_email="WANG.WEI@bank.example.cn",
                     organisation_name="Another name")
    html = response.get_data(as_text=True)
    assert "already waiting for review" in html
    assert 'id="contact_email-error"' in html
    assert count(app, RegistrationApplication) == 1


def test_honeypot_keeps_nothing(client, app):
    response = apply(client, website="http://spam.example")
    assert response.status_code == 302
    assert count(app, RegistrationApplication) == 0
    assert count(app, OutboxMessage) == 0


@pytest.mark.parametrize("app_config", [{"RATELIMIT_ENABLED": True,
                                         "REGISTRATION_RATE_LIMIT": "2/hour"}])
def test_applications_are_rate_limited_per_address(client, app):
    assert apply(client, contact_email="a1@example.com").status_code == 302
    assert apply(client, contact_email="a2@example.com").status_code == 302
    refused = apply(client, contact_email="a3@example.com")
    assert refused.status_code == 429
    assert "Retry-After" in refused.headers
    assert client.get("/register").status_code == 200  # GET is not counted
    assert count(app, RegistrationApplication) == 2


def test_csrf_enabled_refuses_post_without_token(database_url, tmp_path):
    app = make_app(database_url, tmp_path, WTF_CSRF_ENABLED=True)
    with app.app_context():
        if database_url.startswith("sqlite"):
            db.create_all()
        else:
            from tests.conftest import _reset_postgres

            _reset_postgres()
    client = app.test_client()
    refused = client.post("/register", data=application_form())
    assert refused.status_code == 400
    assert count(app, RegistrationApplication) == 0
    # With the token from the page it goes through.
    html = client.get("/register").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)
    accepted = client.post("/register", data={**application_form(), "csrf_token": token})
    assert accepted.status_code == 302
    assert count(app, RegistrationApplication) == 1


# -- staff review -------------------------------------------------------------------------
def test_only_staff_review_applications(client, app, make_user, make_customer):
    apply(client)
    app_id = application_id(app)
    assert client.get("/staff/applications").status_code == 302  # anonymous → log-in
    contract = make_customer()
    make_user("user@customer.example", "customer", contract)
    customer = app.test_client()
    customer.post("/login", data={"email": "user@customer.example", "password": TEST_PASSWORD})
    for other in (staff_client(app, make_user, "warehouse"),
                  staff_client(app, make_user, "finance"), customer):
        assert other.get("/staff/applications").status_code == 403
        assert other.get(f"/staff/applications/{app_id}").status_code == 403
        assert other.post(f"/staff/applications/{app_id}",
                          data={"action": "approve", "name": "x"}).status_code == 403
        assert other.get("/staff/customers").status_code == 403
    assert count(app, Customer) == 1
    for role in ("support", "manager", "admin"):
        assert staff_client(app, make_user, role).get("/staff/applications").status_code == 200


def test_list_shows_pending_first_and_filters_by_status(client, app, make_user):
    for n in range(3):
        apply(client, contact_email=f"c{n}@example.com", organisation_name=f"Org {n}")
    staff = staff_client(app, make_user)
    with app.app_context():
        from rma.services.registration import reject_application

        first = db.session.scalar(select(RegistrationApplication.id).where(
            RegistrationApplication.contact_email == "c2@example.com"))
        reject_application(Actor.cli("test"), first, "duplicate")
    html = staff.get("/staff/applications", headers=EN).get_data(as_text=True)
    names = re.findall(r">(Org \d)</a>", html)
    assert names[-1] == "Org 2" and set(names[:2]) == {"Org 0", "Org 1"}
    rejected = staff.get("/staff/applications?status=rejected", headers=EN).get_data(as_text=True)
    assert re.findall(r">(Org \d)</a>", rejected) == ["Org 2"]
    assert staff.get("/staff/applications?status=bogus").status_code == 200
    assert staff.get("/staff/applications/999999").status_code == 404


def test_detail_matches_serials_against_units(client, app, make_user, make_model,
                                              make_customer):
    model_id = make_model()
    other = make_customer("Other Bank")
    add_units(app, model_id, None, "TK3-FREE1")
    add_units(app, model_id, other, "TK3-TAKEN")
    add_units(app, model_id, None, "TK3-SPARE", status="in_stock")
    apply(client, holdings="TK3: TK3-FREE1, TK3-TAKEN\nTK3-SPARE\nTK3-NEW01")
    staff = staff_client(app, make_user)
    html = staff.get(f"/staff/applications/{application_id(app)}",
                     headers=EN).get_data(as_text=True)
    assert 'class="held-free" data-serial="TK3-FREE1"' in html
    assert 'class="held-other_customer" data-serial="TK3-TAKEN"' in html
    assert f"Registered to another customer: Other Bank ({other})" in html
    assert 'class="held-not_in_service" data-serial="TK3-SPARE"' in html
    assert 'class="held-unknown" data-serial="TK3-NEW01"' in html
    # Only the free unit can be ticked.
    assert re.findall(r'name="assign" value="([^"]+)"', html) == ["TK3-FREE1"]


def test_detail_page_query_count_does_not_grow_with_serials(client, app, make_user,
                                                           make_model, make_customer):
    model_id = make_model()
    contracts = [make_customer(f"Holder {n}") for n in range(3)]
    staff = staff_client(app, make_user)

    def queries(n: int, email: str) -> int:
        serials = [f"Q{n}-{i:04d}" for i in range(n)]
        for i, serial in enumerate(serials):
            add_units(app, model_id, contracts[i % 3], serial)
        apply(client, contact_email=email, holdings="\n".join(serials))
        app_id = application_id(app, email)
        with count_queries(app) as statements:
            assert staff.get(f"/staff/applications/{app_id}").status_code == 200
        return len(statements)

    assert queries(3, "few@example.com") == queries(30, "many@example.com")


def _approve(staff, app_id, **data):
    return staff.post(f"/staff/applications/{app_id}",
                      data={"action": "approve", "name": data.pop("name", "华北示范银行"),
                            "address": "北京", "accepted_on": "2026-03-10", **data},
                      headers=EN)


def test_approve_assigns_free_units_never_another_customers(client, app, make_user,
                                                            make_model, make_customer):
    model_id = make_model()
    other = make_customer("Other Bank")
    add_units(app, model_id, None, "TK3-FREE1", "TK3-FREE2")
    add_units(app, model_id, other, "TK3-TAKEN")
    apply(client, holdings="TK3-FREE1\nTK3-FREE2\nTK3-TAKEN")
    staff = staff_client(app, make_user)
    app_id = application_id(app)
    # A crafted form naming another customer's unit changes nothing at all.
    crafted = _approve(staff, app_id, assign=["TK3-FREE1", "TK3-TAKEN"])
    assert crafted.status_code == 409
    assert "TK3-TAKEN cannot be given to the new customer" in crafted.get_data(as_text=True)
    assert count(app, Customer) == 1
    assert count(app, Invitation) == 0
    assert only(app, RegistrationApplication).status == ApplicationStatus.PENDING
    with app.app_context():
        assert db.session.scalar(select(NumberSequence.last_value)) == 1  # number given back
    # The form as shown: TK3-FREE1 ticked, TK3-TAKEN has no box.
    assert _approve(staff, app_id, assign=["TK3-FREE1"]).status_code == 302
    application = only(app, RegistrationApplication)
    customer = only(app, Customer, Customer.id == application.customer_id)
    with app.app_context():
        owners = dict(db.session.execute(select(Unit.serial, Unit.customer_id)).all())
        other_id = db.session.scalar(select(Customer.id).where(Customer.contract_number == other))
    assert owners == {"TK3-FREE1": customer.id, "TK3-FREE2": None, "TK3-TAKEN": other_id}
    assert actions(app).count("unit.updated") == 1


def test_approve_twice_is_a_conflict_and_changes_nothing(client, app, make_user):
    apply(client)
    staff = staff_client(app, make_user)
    app_id = application_id(app)
    assert _approve(staff, app_id).status_code == 302
    before = (count(app, Customer), count(app, Invitation), count(app, OutboxMessage),
              count(app, AuditEvent))
    again = _approve(staff, app_id)
    assert again.status_code == 409
    assert "This application was already approved; nothing was changed." in again.get_data(
        as_text=True)
    rejected = staff.post(f"/staff/applications/{app_id}",
                          data={"action": "reject", "reason": "late"}, headers=EN)
    assert rejected.status_code == 409
    assert (count(app, Customer), count(app, Invitation), count(app, OutboxMessage),
            count(app, AuditEvent)) == before
    assert only(app, RegistrationApplication).status == ApplicationStatus.APPROVED


def test_contract_numbers_are_unique_per_approval_R_C1(client, app, make_user, make_customer):
    make_customer("Existing")  # SC-2026-00001
    for n in range(2):
        apply(client, contact_email=f"c{n}@example.com", organisation_name=f"Org {n}")
    staff = staff_client(app, make_user)
    for n in range(2):
        assert _approve(staff, application_id(app, f"c{n}@example.com"),
                        name=f"Org {n}").status_code == 302
    with app.app_context():
        numbers = sorted(db.session.scalars(select(Customer.contract_number)))
    assert numbers == ["SC-2026-00001", "SC-2026-00002", "SC-2026-00003"]


def test_approval_refused_when_contact_already_has_an_account(client, app, make_user):
    make_user("wang.wei@bank.example.cn", "support")
    apply(client)
    staff = staff_client(app, make_user)
    app_id = application_id(app)
    page = staff.get(f"/staff/applications/{app_id}", headers=EN).get_data(as_text=True)
    assert "already belongs to a user account" in page
    refused = _approve(staff, app_id)
    assert refused.status_code == 409
    assert count(app, Customer) == 0
    assert only(app, RegistrationApplication).status == ApplicationStatus.PENDING


def test_approval_edits_name_and_date_errors_beside_fields(client, app, make_user):
    apply(client)
    staff = staff_client(app, make_user)
    app_id = application_id(app)
    future = _approve(staff, app_id, accepted_on="2030-01-01")
    assert future.status_code == 200
    assert 'id="accepted_on-error"' in future.get_data(as_text=True)
    assert count(app, Customer) == 0
    assert _approve(staff, app_id, name="华北示范银行股份有限公司").status_code == 302
    customer = only(app, Customer)
    assert customer.name == "华北示范银行股份有限公司"
    assert customer.address == "北京"


def test_reject_needs_a_reason_then_emails_it(client, app, make_user):
    apply(client, language="en")
    staff = staff_client(app, make_user)
    app_id = application_id(app)
    empty = staff.post(f"/staff/applications/{app_id}",
                       data={"action": "reject", "reason": "  "}, headers=EN)
    assert empty.status_code == 200
    assert 'id="reason-error"' in empty.get_data(as_text=True)
    assert 'value="华北示范银行"' in empty.get_data(as_text=True)  # approve form still filled
    assert only(app, RegistrationApplication).status == ApplicationStatus.PENDING
    assert count(app, OutboxMessage) == 1  # only the "received" e-mail
    done = staff.post(f"/staff/applications/{app_id}",
                      data={"action": "reject", "reason": "We cannot find your contract."})
    assert done.status_code == 302
    application = only(app, RegistrationApplication)
    assert application.status == ApplicationStatus.REJECTED
    assert application.review_note == "We cannot find your contract."
    assert application.reviewed_at is not None and application.reviewed_by_id is not None
    message = only(app, OutboxMessage, OutboxMessage.template == "registration_rejected")
    assert message.language == "en"
    assert "We cannot find your contract." in message.body_text
    assert count(app, Customer) == 0
    assert actions(app) == ["application.submitted", "user.created", "user.logged_in",
                            "application.rejected"]


def test_unknown_action_is_a_bad_request(client, app, make_user):
    apply(client)
    staff = staff_client(app, make_user)
    assert staff.post(f"/staff/applications/{application_id(app)}",
                      data={"action": "delete"}).status_code == 400


# -- the whole journey --------------------------------------------------------------------
def test_journey_apply_approve_invite_accept_colleague_R_C1_R_R4(app, make_user, make_model):
    model_id = make_model()
    add_units(app, model_id, None, "TK3-0001")
    applicant = app.test_client()
    assert apply(applicant, holdings="TK3: TK3-0001\nNEW-0002").status_code == 302

    staff = staff_client(app, make_user)
    app_id = application_id(app)
    approved = _approve(staff, app_id, assign=["TK3-0001"])
    assert approved.status_code == 302
    page = staff.get(approved.headers["Location"], headers=EN).get_data(as_text=True)
    number = re.search(r'id="contract-number">([^<]+)<', page).group(1)
    assert re.fullmatch(r"SC-2026-\d{5}", number)
    customer = only(app, Customer)
    assert customer.contract_number == number
    assert only(app, Unit).customer_id == customer.id

    mail = only(app, OutboxMessage, OutboxMessage.template == "registration_approved")
    assert (mail.to_address, mail.language) == ("wang.wei@bank.example.cn", "zh_CN")
    assert number in mail.subject and number in mail.body_text
    token = LINK.search(mail.body_text).group(1)
    with app.app_context():
        invitation = db.session.scalar(select(Invitation))
        assert token not in invitation.token_hash and len(invitation.token_hash) == 64
        assert invitation.is_customer_admin and invitation.customer_id == customer.id

    # The contact accepts: a weak password first, with the error beside the field.
    browser = app.test_client()
    shown = browser.get(f"/invite/{token}", headers=EN).get_data(as_text=True)
    assert "华北示范银行" in shown and "wang.wei@bank.example.cn" in shown
    weak = browser.post(f"/invite/{token}", headers=EN, data={
        "full_name": "王伟", "phone": "+86 10 6000 0000", "password": "1234567890",
        "password_confirm": "1234567890", "language": "zh_CN"})
    assert weak.status_code == 200
    assert 'id="password-error"' in weak.get_data(as_text=True)
    assert count(app, User, User.email == "wang.wei@bank.example.cn") == 0
    accepted = browser.post(f"/invite/{token}", data={
        "full_name": "王伟", "phone": "+86 10 6000 0000", "password": GOOD_PASSWORD,
        "password_confirm": GOOD_PASSWORD, "language": "zh_CN"})
    assert accepted.status_code == 302
    assert accepted.headers["Location"] == "/portal/"
    admin = only(app, User, User.email == "wang.wei@bank.example.cn")
    assert admin.is_customer_admin and admin.customer_id == customer.id
    assert (admin.full_name, admin.language) == ("王伟", "zh_CN")
    assert browser.get("/portal/users").status_code == 200  # logged in, as admin

    # The admin invites a colleague, who accepts and is not an admin.
    invited = browser.post("/portal/users/invite", data={
        "email": "li.na@bank.example.cn", "language": "en"})
    assert invited.status_code == 302
    mail = only(app, OutboxMessage, OutboxMessage.template == "invitation")
    assert (mail.to_address, mail.language) == ("li.na@bank.example.cn", "en")
    colleague_token = LINK.search(mail.body_text).group(1)
    colleague = app.test_client()
    assert colleague.post(f"/invite/{colleague_token}", data={
        "full_name": "Li Na", "phone": "+86 10 6000 0001", "password": GOOD_PASSWORD,
        "password_confirm": GOOD_PASSWORD, "language": "en"}).status_code == 302
    li = only(app, User, User.email == "li.na@bank.example.cn")
    assert not li.is_customer_admin and li.customer_id == customer.id
    assert colleague.get("/portal/users").status_code == 403
    html = browser.get("/portal/users", headers=EN).get_data(as_text=True)
    assert "li.na@bank.example.cn" in html and "Li Na" in html

    assert actions(app) == [
        "product_model.created",
        "application.submitted",
        "user.created", "user.logged_in",  # the reviewer
        "customer.created", "unit.updated", "application.approved", "invitation.created",
        "user.created", "invitation.accepted", "user.logged_in",  # the contact
        "invitation.created",
        "user.created", "invitation.accepted", "user.logged_in",  # the colleague
    ]


def test_R_C1_one_pending_application_per_email_even_at_the_same_moment(app):
    """The database refuses a second pending application for an e-mail (two submissions
    racing past the service's check), but not a new one after a review."""
    from sqlalchemy.exc import IntegrityError

    from rma.models import ApplicationStatus, RegistrationApplication

    def row(status):
        return RegistrationApplication(
            organisation_name="Race Bank", address="1 Road", contact_name="Li",
            contact_email="race@bank.example", contact_phone="+86 10 1", status=status)

    with app.app_context():
        db.session.add_all([row(ApplicationStatus.REJECTED), row(ApplicationStatus.PENDING)])
        db.session.commit()
        db.session.add(row(ApplicationStatus.PENDING))
        with pytest.raises(IntegrityError):
            db.session.commit()
        db.session.rollback()
        assert db.session.query(RegistrationApplication).count() == 2
