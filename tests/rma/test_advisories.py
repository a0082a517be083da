"""Security advisory use cases (rma/services/advisories.py, issue 7): the affected
customers from the installed base, notices and their e-mails exactly once (R-A2), the
publication rule (R-A3), opened/acknowledged tracking, audit (R-R4) and the tick job
"advisory-deadline". The test clock says 2026-11-25 12:00 in Shanghai, a Wednesday."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import func, select

from rma.extensions import db
from rma.models import (
    Advisory,
    AdvisoryNotice,
    AdvisoryStatus,
    AuditEvent,
    Notification,
    OutboxMessage,
    Unit,
    UnitStatus,
    User,
)
from rma.services import ForbiddenError
from rma.services import advisories as svc
from rma.services.audit import Actor
from rma.services.catalog import customer_by_contract
from rma.services.notifications import notification_text
from tests.rma.test_rmas import build_world
from tests.rma.test_warehouse import at

NOW = "2026-11-25T04:00:00+00:00"


def build_advisory_world(app, make_model, make_customer, make_user) -> dict:
    """``build_world`` (A: TK3 + LIC units, users alice en + carol zh; B: TK3, user bob;
    support sam) plus C (only scrapped TK3 units), D (only TK5 units), an inactive user
    of A and a manager."""
    world = build_world(app, make_model, make_customer, make_user)
    tk5 = make_model("TK5", 60, "ship")
    world["contract_c"] = make_customer("Gamma Bank", "2026-02-01")
    world["contract_d"] = make_customer("Delta Bank", "2026-02-01")
    make_user("cindy@c.example", "customer", world["contract_c"])
    make_user("dora@d.example", "customer", world["contract_d"], language="zh_CN")
    make_user("dave@a.example", "customer", world["contract_a"])
    make_user("mia@vendor.example", "manager")
    make_user("wendy@vendor.example", "warehouse")
    with app.app_context():
        c = customer_by_contract(world["contract_c"]).id
        d = customer_by_contract(world["contract_d"]).id
        tk3 = db.session.scalar(select(Unit.model_id).where(Unit.serial == "TK3-A0001"))
        db.session.add_all([
            Unit(serial="TK3-C0001", model_id=tk3, customer_id=c, shipped_on=date(2024, 1, 1),
                 status=UnitStatus.SCRAPPED),
            Unit(serial="TK3-C0002", model_id=tk3, customer_id=c, shipped_on=date(2024, 1, 1),
                 status=UnitStatus.SCRAPPED),
            Unit(serial="TK5-D0001", model_id=tk5, customer_id=d, shipped_on=date(2025, 1, 1)),
        ])
        db.session.scalar(select(User).where(User.email == "dave@a.example")).is_active_flag = False
        db.session.commit()
        world.update(c=c, d=d, tk3=tk3, tk5=tk5)
    return world


@pytest.fixture
def world(app, make_model, make_customer, make_user):
    return build_advisory_world(app, make_model, make_customer, make_user)


def user(email: str) -> User:
    return db.session.scalar(select(User).where(User.email == email))


def staff(email="sam@vendor.example") -> Actor:
    return Actor(user=user(email))


def new_advisory(models=("TK3",), vendor_found=True, patch=date(2026, 11, 24), **fields):
    values = {"title": "OTP seed disclosure in token firmware", "severity": "high",
              "description": "A crafted request reads the token seed.",
              "solution": "Upgrade the firmware to 2.4.1.",
              "references": "CVE-2026-0001\nhttps://example.com/sa",
              "affected_versions": "firmware < 2.4.1"}
    values.update(fields)
    return svc.create_advisory(staff(), model_codes=list(models), vendor_found=vendor_found,
                               patch_released_on=patch, **values)


def audits(action: str) -> list[AuditEvent]:
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == action)
                                   .order_by(AuditEvent.id)))


def mails(template="advisory_notice") -> list[OutboxMessage]:
    return list(db.session.scalars(select(OutboxMessage).where(OutboxMessage.template == template)
                                   .order_by(OutboxMessage.to_address)))


# -- writing (R-A1) ---------------------------------------------------------------------------
def test_r_a1_create_numbers_the_draft_and_computes_the_r_a2_due_day(ctx, world):
    advisory = new_advisory(patch=date(2026, 11, 27))  # a Friday
    assert advisory.number == "SA-2026-0001" and advisory.status == AdvisoryStatus.DRAFT
    assert advisory.notify_due_on == date(2026, 12, 1)  # R-A2: the Tuesday after
    assert [m.code for m in advisory.product_models] == ["TK3"]
    assert advisory.created_by.email == "sam@vendor.example"
    [event] = audits("advisory.created")
    assert event.after["number"] == "SA-2026-0001" and event.actor_label == "sam@vendor.example"
    assert new_advisory(patch=None).number == "SA-2026-0002"
    assert db.session.get(Advisory, 2).notify_due_on is None


@pytest.mark.parametrize(("change", "field"), [
    ({"title": "  "}, "title"),
    ({"title": "x" * 201}, "title"),
    ({"severity": "critical"}, "severity"),
    ({"description": ""}, "description"),
    ({"models": ()}, "model_codes"),
    ({"models": ("TK3", "NOPE")}, "model_codes"),
    ({"patch": "25.11.2026"}, "patch_released_on"),
    ({"vendor_found": "yes"}, "vendor_found"),
])
def test_r_a1_bad_input_names_the_field_and_saves_nothing(ctx, world, change, field):
    with pytest.raises(svc.AdvisoryError) as refused:
        new_advisory(**change)
    assert refused.value.field == field and refused.value.status == 422
    assert db.session.scalar(select(func.count(Advisory.id))) == 0
    assert audits("advisory.created") == []


@pytest.mark.parametrize("email", ["alice@a.example", "wendy@vendor.example"])
def test_r_a1_only_support_managers_and_admins_write_advisories(ctx, world, email):
    with pytest.raises(ForbiddenError):
        svc.create_advisory(staff(email), title="t", severity="low", description="d",
                            model_codes=["TK3"], vendor_found=False, patch_released_on=None)


def test_r_a1_update_before_and_after_notice_and_never_after_publication(ctx, world):
    advisory = new_advisory(vendor_found=False)
    svc.update_advisory(staff(), advisory, title="Seed disclosure (corrected)",
                        patch_released_on=date(2026, 9, 30))
    assert advisory.title == "Seed disclosure (corrected)"
    assert advisory.notify_due_on == date(2026, 10, 9)  # across National Day
    svc.notify_customers(staff(), advisory)
    svc.update_advisory(staff(), advisory, solution="Upgrade to 2.4.2.")
    first, correction = audits("advisory.updated")
    assert first.after["correction"] is False and correction.after["correction"] is True
    assert correction.before["status"] == "notified"
    mails_before = len(mails())
    svc.update_advisory(staff(), advisory, solution="Upgrade to 2.4.2.")  # no change
    assert len(audits("advisory.updated")) == 2 and len(mails()) == mails_before
    svc.publish(staff(), advisory, date(2026, 11, 25))
    with pytest.raises(svc.AdvisoryStateError):
        svc.update_advisory(staff(), advisory, title="Too late")
    assert db.session.get(Advisory, advisory.id).title == "Seed disclosure (corrected)"


# -- the installed base -----------------------------------------------------------------------
def test_affected_customers_come_from_the_installed_base(ctx, world):
    tk3 = new_advisory(models=("TK3",))
    assert [c.name for c in svc.affected_customers(tk3)] == ["Acme Bank", "Beta Bank"]
    both = new_advisory(models=("TK3", "TK5", "LIC"))
    assert [c.name for c in svc.affected_customers(both)] == ["Acme Bank", "Beta Bank",
                                                              "Delta Bank"]
    lic = new_advisory(models=("LIC",))
    assert [c.name for c in svc.affected_customers(lic)] == ["Acme Bank"]


# -- notices (R-A2) ------------------------------------------------------------------------------
def test_r_a2_notify_notices_each_affected_customer_and_e_mails_each_user_once(ctx, world):
    advisory = new_advisory()
    assert svc.notify_customers(staff(), advisory) == 2
    advisory = db.session.get(Advisory, advisory.id)
    assert advisory.status == AdvisoryStatus.NOTIFIED
    assert advisory.notified_at.isoformat() == NOW
    assert advisory.public_from_on == date(2026, 12, 9)  # R-A3: 2026-11-25 + 14
    notices = svc.notices(advisory)
    assert [(n.customer.name, n.recipients) for n in notices] == [
        ("Acme Bank", ["alice@a.example", "carol@a.example"]), ("Beta Bank", ["bob@b.example"])]
    sent = mails()
    assert [(m.to_address, m.language) for m in sent] == [
        ("alice@a.example", "en"), ("bob@b.example", "en"), ("carol@a.example", "zh_CN")]
    alice = next(m for m in sent if m.to_address == "alice@a.example")
    assert alice.dedupe_key == (f"advisory:{advisory.id}:customer:{world['a']}:user:"
                                f"{user('alice@a.example').id}")
    assert "SA-2026-0001 (High)" in alice.subject  # the word the pages use
    assert "Upgrade the firmware to 2.4.1." in alice.body_text
    assert "CVE-2026-0001" in alice.body_text
    assert "/portal/advisories/SA-2026-0001" in alice.body_text
    [event] = audits("advisory.notified")
    assert event.after["notices"] == 2 and event.after["emails"] == 3
    assert event.before["status"] == "draft" and event.after["status"] == "notified"


def test_r_a2_notify_again_notices_only_newly_affected_customers(ctx, world):
    advisory = new_advisory()
    svc.notify_customers(staff(), advisory)
    assert svc.notify_customers(staff(), advisory) == 0  # nothing new: nothing changes
    assert len(mails()) == 3 and len(audits("advisory.notified")) == 1
    first_notified = db.session.get(Advisory, advisory.id).notified_at
    # A TK3 unit shipped to D later makes D affected; a re-run tells D only.
    db.session.add(Unit(serial="TK3-D0001", model_id=world["tk3"], customer_id=world["d"],
                        shipped_on=date(2026, 11, 25)))
    db.session.commit()
    at(ctx, "2026-11-26T02:00:00+00:00")
    assert svc.notify_customers(staff(), advisory) == 1
    assert [m.to_address for m in mails()] == ["alice@a.example", "bob@b.example",
                                               "carol@a.example", "dora@d.example"]
    advisory = db.session.get(Advisory, advisory.id)
    assert advisory.notified_at == first_notified  # R-A3 counts from the first notice
    assert advisory.public_from_on == date(2026, 12, 9)
    assert len(audits("advisory.notified")) == 2
    assert db.session.scalar(select(func.count(AdvisoryNotice.id))) == 3


def test_r_a2_a_customer_without_active_users_is_noticed_without_e_mail(ctx, world):
    db.session.scalar(select(User).where(User.email == "bob@b.example")).is_active_flag = False
    db.session.commit()
    advisory = new_advisory()
    assert svc.notify_customers(staff(), advisory) == 2
    beta = svc.notice_for(world["b"], advisory)
    assert beta is not None and beta.recipients == []
    assert "bob@b.example" not in [m.to_address for m in mails()]


def test_r_a2_notify_with_no_affected_customer_still_records_the_notice_run(ctx, world):
    advisory = new_advisory(models=("TK5",), vendor_found=False)
    db.session.get(Unit, db.session.scalar(select(Unit.id).where(Unit.serial == "TK5-D0001"))
                   ).status = UnitStatus.SCRAPPED
    db.session.commit()
    assert svc.notify_customers(staff(), advisory) == 0
    advisory = db.session.get(Advisory, advisory.id)
    assert advisory.status == AdvisoryStatus.NOTIFIED and advisory.public_from_on is None
    assert mails() == [] and len(audits("advisory.notified")) == 1


def test_r_a2_a_customer_cannot_notify(ctx, world):
    advisory = new_advisory()
    with pytest.raises(ForbiddenError):
        svc.notify_customers(Actor(user=user("alice@a.example")), advisory)
    assert mails() == [] and db.session.get(Advisory, advisory.id).status == AdvisoryStatus.DRAFT


# -- publication (R-A3) ---------------------------------------------------------------------------
def test_r_a3_vendor_found_is_published_no_earlier_than_14_days_after_notice(ctx, world):
    advisory = new_advisory(vendor_found=True)
    with pytest.raises(svc.AdvisoryStateError) as first:
        svc.publish(staff(), advisory, date(2026, 11, 25))
    assert first.value.possible_on is None and "notify" in first.value.message
    svc.notify_customers(staff(), advisory)
    for today in (date(2026, 11, 25), date(2026, 12, 8)):
        with pytest.raises(svc.AdvisoryStateError) as refused:
            svc.publish(staff(), advisory, today)
        assert refused.value.status == 409
        assert refused.value.possible_on == date(2026, 12, 9)
        assert "can be published from 2026-12-09" in refused.value.message
    assert db.session.get(Advisory, advisory.id).status == AdvisoryStatus.NOTIFIED
    assert audits("advisory.published") == []
    assert svc.publish_check(advisory, date(2026, 12, 9)) == (True, None)
    at(ctx, "2026-12-09T01:00:00+00:00")
    published = svc.publish(staff(), advisory, date(2026, 12, 9))  # the boundary day
    assert published.status == AdvisoryStatus.PUBLISHED
    assert published.published_at.isoformat() == "2026-12-09T01:00:00+00:00"
    [event] = audits("advisory.published")
    assert event.after["status"] == "published"
    with pytest.raises(svc.AdvisoryStateError):
        svc.publish(staff(), advisory, date(2026, 12, 10))


def test_r_a3_an_advisory_the_vendor_did_not_find_may_be_published_at_once(ctx, world):
    advisory = new_advisory(vendor_found=False)
    svc.publish(staff(), advisory, date(2026, 11, 25))  # even before the notices
    assert db.session.get(Advisory, advisory.id).status == AdvisoryStatus.PUBLISHED
    # R-A2 still holds: the customers are noticed, and it stays published.
    assert svc.notify_customers(staff(), advisory) == 2
    assert db.session.get(Advisory, advisory.id).status == AdvisoryStatus.PUBLISHED


# -- the customer's side ----------------------------------------------------------------------
def test_opened_once_per_customer_and_acknowledged_once(ctx, world):
    advisory = new_advisory()
    svc.notify_customers(staff(), advisory)
    at(ctx, "2026-11-25T06:00:00+00:00")
    svc.mark_opened(user("alice@a.example"), advisory)
    at(ctx, "2026-11-25T07:00:00+00:00")
    svc.mark_opened(user("carol@a.example"), advisory)  # already opened: unchanged
    svc.mark_opened(user("sam@vendor.example"), advisory)  # staff: nothing
    svc.mark_opened(user("dora@d.example"), advisory)  # no notice: nothing
    notice = svc.notice_for(world["a"], advisory)
    db.session.refresh(notice)
    assert notice.opened_at.isoformat() == "2026-11-25T06:00:00+00:00"
    assert notice.opened_by_id == user("alice@a.example").id
    assert len(audits("advisory_notice.opened")) == 1
    ack = svc.acknowledge(Actor(user=user("carol@a.example")), advisory)
    assert ack.acknowledged_at.isoformat() == "2026-11-25T07:00:00+00:00"
    assert ack.acknowledged_by_id == user("carol@a.example").id
    at(ctx, "2026-11-25T08:00:00+00:00")
    again = svc.acknowledge(Actor(user=user("alice@a.example")), advisory)
    assert again.acknowledged_at.isoformat() == "2026-11-25T07:00:00+00:00"
    assert len(audits("advisory_notice.acknowledged")) == 1
    # B acknowledges without opening first: that counts as opened too.
    beta = svc.acknowledge(Actor(user=user("bob@b.example")), advisory)
    assert beta.opened_at == beta.acknowledged_at
    [row] = svc.staff_list()
    assert (row.sent, row.opened, row.acknowledged) == (2, 2, 2)


def test_acknowledge_needs_the_customers_own_notice(ctx, world):
    advisory = new_advisory(models=("LIC",))
    svc.notify_customers(staff(), advisory)
    with pytest.raises(svc.AdvisoryNotFoundError):
        svc.acknowledge(Actor(user=user("bob@b.example")), advisory)
    with pytest.raises(ForbiddenError):
        svc.acknowledge(staff(), advisory)
    assert audits("advisory_notice.acknowledged") == []


def test_customer_and_public_lists(ctx, world):
    lic = new_advisory(models=("LIC",), title="Licence server flaw")
    tk3 = new_advisory(models=("TK3",), vendor_found=False, title="Token flaw")
    draft = new_advisory(models=("TK3",), title="Still a draft")
    svc.notify_customers(staff(), lic)
    at(ctx, "2026-11-26T04:00:00+00:00")
    svc.notify_customers(staff(), tk3)
    svc.publish(staff(), tk3, date(2026, 11, 26))
    assert [(a.title, n.customer_id) for a, n in svc.customer_advisories(world["a"])] == [
        ("Token flaw", world["a"]), ("Licence server flaw", world["a"])]
    assert [a.title for a, _ in svc.customer_advisories(world["b"])] == ["Token flaw"]
    assert svc.customer_advisories(world["c"]) == []
    assert [a.number for a in svc.public_advisories()] == [tk3.number]
    assert svc.get_public(tk3.number.lower()).id == tk3.id
    assert svc.get_public(lic.number) is None and svc.get_public(draft.number) is None
    with pytest.raises(svc.AdvisoryNotFoundError):
        svc.visible_advisory(user("bob@b.example"), lic.number)  # A's notice only
    assert svc.visible_advisory(user("alice@a.example"), lic.number)[1] is not None
    assert svc.visible_advisory(None, tk3.number) == (tk3, None)
    assert svc.visible_advisory(user("sam@vendor.example"), draft.number)[0].id == draft.id


def test_r_a2_staff_list_counts_and_overdue_flags(ctx, world):
    overdue = new_advisory(patch=date(2026, 11, 20))  # Friday: due Tuesday 11-24
    due_today = new_advisory(patch=date(2026, 11, 23))  # Monday: due Wednesday 11-25
    later = new_advisory(patch=date(2026, 11, 25))  # due Friday 11-27
    no_patch = new_advisory(patch=None)
    notified = new_advisory(patch=date(2026, 11, 1))
    svc.notify_customers(staff(), notified)
    rows = {row.number: row for row in svc.staff_list()}
    assert (rows[overdue.number].overdue, rows[overdue.number].due) == (True, True)
    assert (rows[due_today.number].overdue, rows[due_today.number].due) == (False, True)
    assert (rows[later.number].overdue, rows[later.number].due) == (False, False)
    assert rows[later.number].notify_due_on == date(2026, 11, 27)
    assert not rows[no_patch.number].overdue and not rows[notified.number].overdue
    assert rows[notified.number].sent == 2 and rows[overdue.number].sent == 0
    assert [r.number for r in svc.staff_list("notified")] == [notified.number]
    with pytest.raises(svc.AdvisoryError) as bad:
        svc.staff_list("gone")
    assert bad.value.field == "status"


# -- the tick job "advisory-deadline" (R-A2) ---------------------------------------------------
def test_r_a2_deadline_job_tells_author_and_managers_exactly_once(ctx, world):
    overdue = new_advisory(patch=date(2026, 11, 20))  # due 11-24
    new_advisory(patch=date(2026, 11, 25))  # due 11-27: not yet
    sent_in_time = new_advisory(patch=date(2026, 11, 19))
    svc.notify_customers(staff(), sent_in_time)
    now = svc.clock.now()
    result = svc.advisory_deadline_job(now)
    assert result.summary == "advisory-deadline: alerted 1, notices 2, e-mails 2"
    assert result.busy and result.items == 1
    alerts = list(db.session.scalars(select(Notification).where(
        Notification.kind == "advisory_due").order_by(Notification.user_id)))
    assert [n.user_id for n in alerts] == [user("sam@vendor.example").id,
                                           user("mia@vendor.example").id]
    assert overdue.number in notification_text(alerts[0])
    assert "2026-11-24" in notification_text(alerts[0])
    due_mails = mails("advisory_due")
    assert [m.to_address for m in due_mails] == ["mia@vendor.example", "sam@vendor.example"]
    assert "2026-11-24" in due_mails[0].body_text
    assert f"/staff/advisories/{overdue.number}" in due_mails[0].body_text
    [marker] = audits(svc.DUE_MARKER)
    assert marker.entity_id == str(overdue.id) and marker.actor_label == "tick:advisory-deadline"
    # Again, later the same day and the next: nothing more.
    assert svc.advisory_deadline_job(now).summary == "advisory-deadline: none"
    assert svc.alert_due(overdue.id, now) is None
    at(ctx, "2026-11-27T02:00:00+00:00")
    result = svc.advisory_deadline_job(svc.clock.now())  # the second one is due now
    assert result.items == 1 and len(audits(svc.DUE_MARKER)) == 2
    assert len(mails("advisory_due")) == 4


def test_r_a2_deadline_job_is_quiet_once_customers_were_notified(ctx, world):
    advisory = new_advisory(patch=date(2026, 11, 20))
    svc.notify_customers(staff(), advisory)
    result = svc.advisory_deadline_job(svc.clock.now())
    assert result.summary == "advisory-deadline: none" and not result.busy


def test_r_a2_rma_tick_runs_the_deadline_job(app, world, runner):
    with app.app_context():
        new_advisory(patch=date(2026, 11, 20))
    result = runner.invoke(args=["tick"])
    assert result.exit_code == 0, result.output
    assert "advisory-deadline: alerted 1, notices 2, e-mails 2" in result.output
    again = runner.invoke(args=["tick"])
    assert "advisory-deadline: none" in again.output
