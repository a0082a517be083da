"""Tick jobs of the replacement clock: the at-risk e-mail to the warehouse lead (R-R3) and
the flag on a faulty unit not returned after an advance replacement (D-2). Time is
passed in as ``now``; no test sleeps. Items are put in the right state by setting their
columns directly (the warehouse services that do it in real life are tested elsewhere)."""

from __future__ import annotations

import logging
import threading
from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import func, select

from rma import cli
from rma.extensions import db
from rma.models import (
    AuditEvent,
    Customer,
    ItemStatus,
    OutboxMessage,
    ProductModel,
    Rma,
    RmaEvent,
    RmaItem,
    Shipment,
    Unit,
    UnitStatus,
    User,
)
from rma.services import replacement_jobs as jobs
from tests.conftest import FIXED_NOW, count_queries

NOW = datetime.fromisoformat(FIXED_NOW)  # 2026-11-25 12:00 in Shanghai
H = timedelta(hours=1)
TODAY = date(2026, 11, 25)  # China date of NOW


@pytest.fixture
def world(app, make_model, make_customer):
    make_model("TK3")
    contract = make_customer("华东示范银行")
    return contract


_serial = iter(range(1, 10_000))


def make_item(app, *, status=ItemStatus.CONFIRMED, due_in=None, notified=False,
              remote=False, due_back_on=None, received=False, flagged=False,
              language="zh_CN", email="zhang@bank.example", shipped=False) -> int:
    """An RMA with one item in the given state; returns the item id."""
    n = next(_serial)
    with app.app_context():
        customer = db.session.scalar(select(Customer))
        model = db.session.scalar(select(ProductModel))
        unit = Unit(serial=f"TK3-{n:05d}", model_id=model.id, customer_id=customer.id,
                    shipped_on=date(2025, 1, 10), status=UnitStatus.IN_SERVICE)
        rma = Rma(number=f"RMA-2026-{n:06d}", customer_id=customer.id, contact_name="张伟",
                  contact_phone="+86 138 0000 0000", contact_email=email,
                  ship_to="上海市浦东新区世纪大道100号", language=language,
                  submitted_at=NOW - 48 * H)
        db.session.add_all([unit, rma])
        db.session.flush()
        final = status in (ItemStatus.CLOSED, ItemStatus.CANCELLED, ItemStatus.REJECTED)
        item = RmaItem(
            rma_id=rma.id, line_no=1, unit_id=unit.id, open_unit_id=None if final else unit.id,
            serial=unit.serial, fault_description="按键失灵", status=status,
            cause="quality_defect", decision="free",
            confirmed_at=NOW + due_in - 72 * H if due_in is not None else None,
            clock_started_at=NOW + due_in - 72 * H if due_in is not None else None,
            due_at=NOW + due_in if due_in is not None else None,
            at_risk_notified_at=NOW - 30 * H if notified else None,
            remote_confirmation=remote, unit_due_back_on=due_back_on,
            unit_received_at=NOW - 2 * H if received else None,
            unit_overdue_flagged_at=NOW - 24 * H if flagged else None,
        )
        db.session.add(item)
        db.session.flush()
        if shipped:
            spare = Unit(serial=f"TK3-S{n:05d}", model_id=model.id, status=UnitStatus.IN_STOCK)
            db.session.add(spare)
            db.session.flush()
            db.session.add(Shipment(item_id=item.id, kind="replacement", unit_id=spare.id,
                                    carrier="顺丰速运", tracking_number=f"SF{n:013d}",
                                    shipped_at=NOW - 20 * H))
        db.session.commit()
        return item.id


def outbox(app, template=None) -> list[OutboxMessage]:
    with app.app_context():
        stmt = select(OutboxMessage).order_by(OutboxMessage.id)
        if template:
            stmt = stmt.where(OutboxMessage.template == template)
        rows = db.session.scalars(stmt).all()
        for row in rows:
            db.session.expunge(row)
        return rows


def audits(app, action) -> list[AuditEvent]:
    with app.app_context():
        rows = db.session.scalars(select(AuditEvent).where(AuditEvent.action == action)
                                  .order_by(AuditEvent.id)).all()
        for row in rows:
            db.session.expunge(row)
        return rows


def item_row(app, item_id) -> RmaItem:
    with app.app_context():
        row = db.session.get(RmaItem, item_id)
        db.session.expunge(row)
        return row


def run(app, job, now=NOW):
    with app.app_context():
        return job(now)


# -- at risk (R-R3) -----------------------------------------------------------------------
@pytest.fixture
def app_config():
    return {"WAREHOUSE_LEAD_EMAIL": "lead@rma.example.com", "MAIL_BACKEND": "console"}


def test_r_r3_only_at_risk_and_unwarned_breached_items_are_mailed_once(app, world):
    on_track = make_item(app, due_in=30 * H)
    at_risk = make_item(app, due_in=10 * H, shipped=True, status=ItemStatus.SHIPPED)
    breached = make_item(app, due_in=-5 * H, status=ItemStatus.RELEASED)
    make_item(app, due_in=5 * H, notified=True)  # warned before
    make_item(app, due_in=5 * H, status=ItemStatus.DELIVERED)  # clock stopped
    make_item(app, due_in=5 * H, status=ItemStatus.WAITING_PAYMENT)  # no clock yet (D-3)
    make_item(app, due_in=5 * H, status=ItemStatus.CANCELLED)
    make_item(app, due_in=None, status=ItemStatus.RECEIVED)

    result = run(app, jobs.at_risk_job)
    assert result.summary == "at-risk: notified 2 (1 breached), e-mails 2"
    assert (result.items, result.emails, result.busy) == (2, 2, True)
    mails = outbox(app, "replacement_at_risk")
    assert [(m.to_address, m.dedupe_key) for m in mails] == [
        ("lead@rma.example.com", f"at-risk:{breached}:lead@rma.example.com"),
        ("lead@rma.example.com", f"at-risk:{at_risk}:lead@rma.example.com"),
    ]
    late, risky = mails
    assert {m.language for m in mails} == {"zh_CN"}  # no user with the lead's address
    # In Chinese: the lead's address belongs to no user, so the default language.
    assert late.subject.startswith("更换件已超时：") and "TK3-" in late.subject
    assert "2026-11-25 07:00 CST" in late.body_text and "现已超时 5.0 小时" in late.body_text
    assert risky.subject.startswith("更换件有超时风险") and "TK3-" in risky.subject
    assert "2026-11-25 22:00 CST" in risky.body_text and "10.0" in risky.body_text
    assert "顺丰速运" in risky.body_text and "上海市浦东新区" in risky.body_text
    with app.app_context():
        link = jobs.staff_item_url(at_risk)
        assert link.startswith("http://127.0.0.1:8000/")
        if "warehouse.item" in app.view_functions:
            assert link.endswith(f"/items/{at_risk}")
    assert link in risky.body_text
    assert item_row(app, at_risk).at_risk_notified_at == NOW
    assert item_row(app, on_track).at_risk_notified_at is None
    events = audits(app, "rma_item.at_risk_notified")
    assert sorted(int(e.entity_id) for e in events) == sorted([at_risk, breached])
    assert {e.actor_label for e in events} == {"tick:at-risk"}
    assert {e.at for e in events} == {NOW}
    assert {e.after["clock_state"] for e in events} == {"at_risk", "breached"}

    again = run(app, jobs.at_risk_job, NOW + 0.5 * H)
    assert again.summary == "at-risk: none" and not again.busy
    assert len(outbox(app)) == 2

    # A day later the item that was on track is at risk: it gets its one e-mail.
    later = run(app, jobs.at_risk_job, NOW + 7 * H)
    assert later.summary == "at-risk: notified 1 (0 breached), e-mails 1"
    assert outbox(app)[-1].dedupe_key == f"at-risk:{on_track}:lead@rma.example.com"


def test_r_r3_exactly_24_hours_left_is_still_on_track(app, world):
    make_item(app, due_in=24 * H)
    assert run(app, jobs.at_risk_job).summary == "at-risk: none"
    assert run(app, jobs.at_risk_job, NOW + timedelta(seconds=1)).items == 1


def test_r_r3_at_risk_hours_come_from_the_policy(database_url, tmp_path, world, app):
    from tests.conftest import make_app

    make_item(app, due_in=30 * H)
    other = make_app(database_url, tmp_path / "other", POLICY={"replacement_at_risk_hours": 36},
                     WAREHOUSE_LEAD_EMAIL="lead@rma.example.com")
    with other.app_context():
        assert jobs.at_risk_job(NOW).items == 1


def test_r_r3_lead_gets_the_language_of_the_user_with_that_address(app, world, make_user):
    make_user("lead@rma.example.com", "warehouse", language="en")
    make_item(app, due_in=3 * H)
    run(app, jobs.at_risk_job)
    [mail] = outbox(app)
    assert mail.language == "en"


@pytest.mark.parametrize("app_config", [{"WAREHOUSE_LEAD_EMAIL": ""}])
def test_r_r3_without_a_lead_every_active_warehouse_user_in_their_language(app, world,
                                                                           make_user):
    make_user("wh-en@rma.example.com", "warehouse", language="en")
    make_user("wh-zh@rma.example.com", "warehouse", language="zh_CN")
    make_user("support@rma.example.com", "support")
    make_user("gone@rma.example.com", "warehouse")
    with app.app_context():
        gone = db.session.scalar(select(User).where(User.email == "gone@rma.example.com"))
        gone.is_active_flag = False
        db.session.commit()
    item = make_item(app, due_in=3 * H)
    result = run(app, jobs.at_risk_job)
    assert (result.items, result.emails) == (1, 2)
    assert [(m.to_address, m.language, m.dedupe_key) for m in outbox(app)] == [
        ("wh-en@rma.example.com", "en", f"at-risk:{item}:wh-en@rma.example.com"),
        ("wh-zh@rma.example.com", "zh_CN", f"at-risk:{item}:wh-zh@rma.example.com"),
    ]
    [event] = audits(app, "rma_item.at_risk_notified")
    assert event.after["recipients"] == ["wh-en@rma.example.com", "wh-zh@rma.example.com"]


@pytest.mark.parametrize("app_config", [{"WAREHOUSE_LEAD_EMAIL": ""}])
def test_r_r3_nobody_to_tell_logs_sends_nothing_and_keeps_the_item(app, world, make_user,
                                                                  caplog):
    item = make_item(app, due_in=-2 * H)
    with caplog.at_level(logging.WARNING, logger="rma.services.replacement_jobs"):
        result = run(app, jobs.at_risk_job)
        again = run(app, jobs.at_risk_job)
    assert result.summary.startswith("at-risk: 1 waiting, no recipient")
    assert not result.busy and again.summary == result.summary
    warnings = [r for r in caplog.records if "nobody to tell" in r.getMessage()]
    assert len(warnings) == 1  # not repeated on every run of the loop
    assert outbox(app) == [] and audits(app, "rma_item.at_risk_notified") == []
    assert item_row(app, item).at_risk_notified_at is None
    # Once a warehouse user exists, the breached item gets its (one) e-mail.
    make_user("wh@rma.example.com", "warehouse")
    assert run(app, jobs.at_risk_job).summary == "at-risk: notified 1 (1 breached), e-mails 1"


def test_r_r3_two_ticks_at_once_send_one_e_mail_per_item(app, world):
    items = [make_item(app, due_in=(n - 3) * H) for n in range(6)]
    start = threading.Barrier(2)
    results, errors = [], []

    def tick():
        try:
            with app.app_context():
                start.wait(timeout=10)
                results.append(jobs.at_risk_job(NOW))
                db.session.remove()
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=tick) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert sum(r.items for r in results) == 6 and sum(r.failed for r in results) == 0
    mails = outbox(app)
    assert sorted(m.dedupe_key for m in mails) == sorted(
        f"at-risk:{i}:lead@rma.example.com" for i in items)
    assert len(audits(app, "rma_item.at_risk_notified")) == 6


def test_r_r3_a_run_that_read_before_another_committed_claims_nothing(app, world):
    item = make_item(app, due_in=2 * H)
    with app.app_context():
        stale = jobs.at_risk_candidates(NOW)  # run A has read its candidates ...
        recipients = jobs.warehouse_recipients()
        db.session.rollback()
    assert stale == [item]
    assert run(app, jobs.at_risk_job).items == 1  # ... run B notifies and commits ...
    with app.app_context():  # ... then A tries to claim: nothing to do
        assert jobs.notify_at_risk(item, NOW, recipients) is None
    assert len(outbox(app)) == 1 and len(audits(app, "rma_item.at_risk_notified")) == 1


def test_r_r3_a_failing_item_is_left_for_the_next_run(app, world, monkeypatch, caplog):
    first = make_item(app, due_in=2 * H)
    second = make_item(app, due_in=3 * H)
    real = jobs.enqueue

    def flaky(**kwargs):
        if kwargs["dedupe_key"].startswith(f"at-risk:{first}:"):
            raise RuntimeError("template broken")
        return real(**kwargs)

    monkeypatch.setattr(jobs, "enqueue", flaky)
    with caplog.at_level(logging.ERROR):
        result = run(app, jobs.at_risk_job)
    assert result.summary == "at-risk: notified 1 (0 breached), e-mails 1, failed 1"
    assert item_row(app, first).at_risk_notified_at is None  # rolled back, stamp included
    assert item_row(app, second).at_risk_notified_at == NOW
    assert any("failed" in r.getMessage() for r in caplog.records)
    monkeypatch.setattr(jobs, "enqueue", real)
    assert run(app, jobs.at_risk_job).items == 1


def test_r_r3_queries_grow_by_a_constant_per_item(app, world):
    def statements(count: int) -> int:
        with app.app_context():
            db.session.execute(RmaItem.__table__.update().values(at_risk_notified_at=NOW))
            db.session.commit()
        for _ in range(count):
            make_item(app, due_in=2 * H)
        with count_queries(app) as seen:
            assert run(app, jobs.at_risk_job).items == count
        return len(seen)

    one, two, four = statements(1), statements(2), statements(4)
    assert four - two == 2 * (two - one)


@pytest.mark.parametrize("app_config", [{"WAREHOUSE_LEAD_EMAIL": ""}])
def test_r_r3_a_very_long_address_still_gets_one_e_mail(app, world, make_user):
    address = "w" * 60 + "@" + ".".join(["sub" + "d" * 57] * 3) + ".example"
    assert 200 < len(address) <= 254
    make_user(address, "warehouse")
    item = make_item(app, due_in=3 * H)
    assert run(app, jobs.at_risk_job).emails == 1
    [mail] = outbox(app)
    assert mail.to_address == address and mail.dedupe_key.startswith(f"at-risk:{item}:sha256:")
    assert len(mail.dedupe_key) <= 200
    assert run(app, jobs.at_risk_job).summary == "at-risk: none"


# -- rma tick -------------------------------------------------------------------------------
def test_r_r3_rma_tick_queues_and_sends_the_at_risk_mail_in_one_run(app, world, runner):
    make_item(app, due_in=2 * H)
    result = runner.invoke(args=["tick"])
    assert result.exit_code == 0, result.output
    assert "To: lead@rma.example.com" in result.output
    line = result.output.strip().splitlines()[-1]
    assert line == ("tick 2026-11-25 12:00:00 CST: at-risk: notified 1 (0 breached), "
                    "e-mails 1; unit-overdue: none; quote-expiry: none; escalation: none; "
                    "incident-warnings: none; daily-briefs: none; analytics-snapshot: built 2; "
                    "advisory-deadline: none; service-reports: none; mail: sent 1, "
                    "failed 0, pending 0")
    assert [job.name for job in cli.TICK_JOBS][-1] == "mail"


@pytest.mark.parametrize("app_config", [{"WAREHOUSE_LEAD_EMAIL": "not-an-address"}])
def test_r_r3_bad_lead_address_stops_rma_tick_at_start(app, runner):
    result = runner.invoke(args=["tick"])
    assert result.exit_code == 1
    assert result.output.startswith(
        "Error: configuration error (at-risk): WAREHOUSE_LEAD_EMAIL: e-mail 'not-an-address'")


# -- unit overdue (D-2) ---------------------------------------------------------------------
def test_d_2_unit_not_back_after_its_due_date_is_flagged_once(app, world):
    overdue = make_item(app, status=ItemStatus.DELIVERED, remote=True,
                        due_back_on=TODAY - timedelta(days=1), language="en",
                        email="li@bank.example")
    overdue_zh = make_item(app, status=ItemStatus.SHIPPED, remote=True,
                           due_back_on=TODAY - timedelta(days=10))
    make_item(app, status=ItemStatus.DELIVERED, remote=True, due_back_on=TODAY)  # last day
    make_item(app, status=ItemStatus.DELIVERED, remote=True,
              due_back_on=TODAY - timedelta(days=3), received=True)
    make_item(app, status=ItemStatus.DELIVERED, remote=False,
              due_back_on=TODAY - timedelta(days=3))
    make_item(app, status=ItemStatus.CANCELLED, remote=True,
              due_back_on=TODAY - timedelta(days=3))
    make_item(app, status=ItemStatus.DELIVERED, remote=True,
              due_back_on=TODAY - timedelta(days=3), flagged=True)

    result = run(app, jobs.unit_overdue_job)
    assert result.summary == "unit-overdue: flagged 2, e-mails 2"
    assert item_row(app, overdue).unit_overdue_flagged_at == NOW
    assert item_row(app, overdue_zh).unit_overdue_flagged_at == NOW
    mails = outbox(app, "unit_overdue")
    assert [(m.to_address, m.language, m.dedupe_key) for m in mails] == [
        ("zhang@bank.example", "zh_CN", f"unit-overdue:{overdue_zh}"),
        ("li@bank.example", "en", f"unit-overdue:{overdue}"),
    ]
    zh, en = mails
    assert "张伟，您好：" in zh.body_text  # the contact's language
    assert "您可以通过以下链接跟踪 RMA 处理进度" in zh.body_text
    assert "Hello 张伟," in en.body_text
    assert "was due back by 2026-11-24 and has not arrived yet" in en.body_text
    assert "may become chargeable" in en.body_text
    assert "Zhongguancun" in en.body_text  # the return address
    assert "/portal/rmas/RMA-2026-" in en.body_text
    assert en.subject.endswith("please return the faulty unit " + item_row(app, overdue).serial)
    flags = audits(app, "rma_item.unit_overdue_flagged")
    assert sorted(int(e.entity_id) for e in flags) == sorted([overdue, overdue_zh])
    assert {(e.actor_label, e.at) for e in flags} == {("tick:unit-overdue", NOW)}

    assert run(app, jobs.unit_overdue_job).summary == "unit-overdue: none"
    assert run(app, jobs.unit_overdue_job, NOW + 48 * H).summary == (
        "unit-overdue: flagged 1, e-mails 1")  # the one due today, two days on
    assert len(outbox(app)) == 3


def test_d_2_overdue_shows_on_the_customers_timeline(app, world):
    from rma.services.rmas import timeline

    item = make_item(app, status=ItemStatus.DELIVERED, remote=True,
                     due_back_on=date(2026, 11, 20))
    run(app, jobs.unit_overdue_job)
    with app.test_request_context(headers={"Accept-Language": "en"}):
        rma = db.session.get(RmaItem, item).rma
        [event] = db.session.scalars(select(RmaEvent).where(RmaEvent.rma_id == rma.id)).all()
        assert (event.kind, event.item_id, event.at) == ("unit_overdue", item, NOW)
        [entry] = timeline(rma)
        assert entry.text == (f"The faulty unit {rma.items[0].serial} was due back by "
                              "2026-11-20 and has not arrived; the replacement may become "
                              "chargeable.")
        assert entry.serial == rma.items[0].serial


@pytest.mark.parametrize(("now", "flagged"), [
    (datetime.fromisoformat("2026-11-24T16:30:00+00:00"), 1),  # 00:30 on the 25th in China
    (datetime.fromisoformat("2026-11-24T15:30:00+00:00"), 0),  # 23:30 on the 24th in China
])
def test_d_2_today_is_the_china_date(app, world, now, flagged):
    make_item(app, status=ItemStatus.DELIVERED, remote=True, due_back_on=date(2026, 11, 24))
    assert run(app, jobs.unit_overdue_job, now).items == flagged


def test_d_2_two_ticks_at_once_flag_and_mail_once(app, world):
    items = [make_item(app, status=ItemStatus.DELIVERED, remote=True,
                       due_back_on=TODAY - timedelta(days=n + 1)) for n in range(5)]
    start = threading.Barrier(2)
    results, errors = [], []

    def tick():
        try:
            with app.app_context():
                start.wait(timeout=10)
                results.append(jobs.unit_overdue_job(NOW))
                db.session.remove()
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=tick) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert sum(r.items for r in results) == 5
    assert sorted(m.dedupe_key for m in outbox(app)) == sorted(
        f"unit-overdue:{i}" for i in items)
    with app.app_context():
        assert db.session.scalar(select(func.count(RmaEvent.id))) == 5
    assert len(audits(app, "rma_item.unit_overdue_flagged")) == 5


def test_d_2_a_run_that_read_before_another_committed_flags_nothing(app, world):
    item = make_item(app, status=ItemStatus.DELIVERED, remote=True,
                     due_back_on=TODAY - timedelta(days=2))
    with app.app_context():
        assert jobs.overdue_candidates(NOW) == [item]
        db.session.rollback()
    assert run(app, jobs.unit_overdue_job).items == 1
    with app.app_context():
        assert jobs.flag_unit_overdue(item, NOW) is None
    assert len(outbox(app)) == 1
