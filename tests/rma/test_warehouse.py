"""Warehouse use cases (rma/services/warehouse.py): triage (D-1), scan-driven receiving,
inspection and the decision on the report date (R-W3..R-W5, D-4), override (D-6), release
(D-3), shipping spares and advance replacements (D-2), delivery and the 72-hour clock
(R-R3), audit and the customer's timeline (R-R4). The test clock says 2026-11-25 12:00
in Shanghai (04:00 UTC)."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, timedelta

import pytest
from PIL import Image
from sqlalchemy import func, select

from rma.extensions import db
from rma.models import (
    AuditEvent,
    ItemStatus,
    ProductModel,
    Rma,
    RmaEvent,
    RmaItem,
    RmaPhoto,
    RmaStatus,
    ScanEvent,
    Shipment,
    Unit,
    UnitStatus,
)
from rma.services import ConflictError, ForbiddenError, NotFoundError, ValidationError
from rma.services import warehouse as wh
from rma.services.audit import Actor
from rma.services.catalog import set_successors
from rma.services.rmas import PhotoInput, timeline
from tests.conftest import count_queries
from tests.rma.test_rmas import build_world, submit, user
from warranty import ClockState, coverage

NOW = datetime(2026, 11, 25, 4, 0, tzinfo=UTC)
STAFF = {
    "sam": ("sam@vendor.example", "support"),  # made by build_world
    "wendy": ("wendy@vendor.example", "warehouse"),
    "mia": ("mia@vendor.example", "manager"),
    "fay": ("fay@vendor.example", "finance"),
    "adam": ("adam@vendor.example", "admin"),
}


# -- the world --------------------------------------------------------------------------
def build_warehouse_world(app, make_model, make_customer, make_user) -> dict:
    """``build_world`` (customers A and B, units, TK3-SPARE1) plus staff of every role,
    TK3 spares TK3-SP0001..5, a successor model TK5 with a spare and an unrelated TK9 one,
    and TK3-AEDGE whose warranty's last day is today (2026-11-25)."""
    world = build_world(app, make_model, make_customer, make_user)
    tk5 = make_model("TK5", 36, "ship")
    tk9 = make_model("TK9", 36, "ship")
    for name, (email, role) in STAFF.items():
        if name != "sam":
            make_user(email, role)
    with app.app_context():
        tk3 = db.session.scalar(select(ProductModel.id).where(ProductModel.code == "TK3"))
        rows = [Unit(serial=f"TK3-SP{n:04d}", model_id=tk3, status=UnitStatus.IN_STOCK)
                for n in range(1, 6)]
        rows += [
            Unit(serial="TK5-SP0001", model_id=tk5, status=UnitStatus.IN_STOCK),
            Unit(serial="TK9-SP0001", model_id=tk9, status=UnitStatus.IN_STOCK),
            Unit(serial="TK3-AEDGE", model_id=tk3, customer_id=world["a"],
                 shipped_on=date(2023, 11, 26)),
        ]
        db.session.add_all(rows)
        db.session.commit()
    world.update(tk3=tk3, tk5=tk5, tk9=tk9)
    return world


@pytest.fixture
def world(app, make_model, make_customer, make_user):
    return build_warehouse_world(app, make_model, make_customer, make_user)


@pytest.fixture
def ctx(app):
    """A request context in English: messages are compared as written."""
    with app.test_request_context(headers={"Accept-Language": "en"}):
        yield app


def actor(name: str) -> Actor:
    return Actor(user=user(STAFF[name][0] if name in STAFF else name))


def at(app, moment: datetime | str) -> None:
    app.config["FIXED_NOW"] = moment.isoformat() if isinstance(moment, datetime) else moment


def open_items(*serials, world=None) -> tuple[str, list[int]]:
    """Submit an RMA of customer A for ``serials``: its number and item ids."""
    rma = submit(tuple(serials), world=world)
    return rma.number, [item.id for item in rma.items]


def item(item_id: int) -> RmaItem:
    return db.session.get(RmaItem, item_id, populate_existing=True)


def count(model, *where) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def unit(serial: str) -> Unit:
    return db.session.scalar(select(Unit).where(Unit.serial == serial)
                             .execution_options(populate_existing=True))


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 200, 30)).save(buffer, "PNG")
    return buffer.getvalue()


def give_credit_terms(item_id: int) -> None:
    """Let the item's customer be released on credit (D-3); set directly, no audit."""
    customer = item(item_id).rma.customer
    customer.credit_terms = True
    db.session.commit()


# States reached through the services: name → steps applied to a fresh TK3-A0001 item.
def to_state(app, state: str, serial: str = "TK3-A0001", world=None) -> tuple[str, int]:
    number, (item_id,) = open_items(serial, world=world)
    steps = {
        "submitted": [],
        "awaiting_unit": ["request"],
        "received": ["receive"],
        "confirmed": ["remote_free"],
        "confirmed_inspected": ["receive", "inspect_free"],
        "waiting_payment": ["remote_paid"],
        "released": ["remote_paid", "release"],
        "shipped": ["remote_free", "ship"],
        "delivered": ["remote_free", "ship", "deliver"],
        "closed": ["receive", "inspect_free", "ship", "deliver"],
        "cancelled": ["cancel"],
        "rejected": ["reject"],
        "return_confirmed": ["receive", "inspect_nff"],
    }[state]
    for step in steps:
        if step == "request":
            wh.request_unit(actor("sam"), item_id)
        elif step == "receive":
            assert wh.receive(actor("wendy"), number, serial).outcome == "received"
        elif step == "remote_free":
            wh.confirm_remote(actor("sam"), item_id, "quality_defect")
        elif step == "remote_paid":
            wh.confirm_remote(actor("sam"), item_id, "misuse_drop")
        elif step == "inspect_free":
            wh.inspect(actor("wendy"), item_id, "quality_defect")
        elif step == "inspect_nff":
            wh.inspect(actor("wendy"), item_id, "no_fault_found")
        elif step == "release":
            give_credit_terms(item_id)
            wh.release(actor("fay"), item_id, "customer has credit terms")
        elif step == "ship":
            spare = db.session.scalar(select(Unit.serial).where(
                Unit.status == UnitStatus.IN_STOCK, Unit.serial.like("TK3-SP%"))
                .order_by(Unit.serial).limit(1))
            wh.ship(actor("wendy"), item_id, spare, "SF Express", "SF100")
        elif step == "deliver":
            wh.deliver(actor("wendy"), item_id, NOW, "Li Lei")
        elif step == "cancel":
            wh.cancel_item(actor("sam"), item_id, "customer withdrew")
        elif step == "reject":
            wh.reject_item(actor("sam"), item_id, "not our product")
    return number, item_id


# -- roles (server-side) ----------------------------------------------------------------
ROLE_CASES = [
    # (action, role that may NOT do it)
    ("confirm_remote", "wendy"), ("confirm_remote", "fay"), ("confirm_remote", "alice"),
    ("request_unit", "wendy"), ("reject", "wendy"), ("cancel", "fay"),
    ("scan", "sam"), ("scan", "fay"), ("ship", "sam"), ("ship", "fay"),
    ("deliver", "fay"), ("deliver", "alice"), ("inspect", "fay"),
    ("override", "adam"), ("override", "sam"), ("override", "wendy"),
    ("release", "wendy"), ("release", "sam"), ("release", "alice"), ("release", "mia"),
]


def _call(action: str, who: Actor, number: str, item_id: int):
    calls = {
        "confirm_remote": lambda: wh.confirm_remote(who, item_id, "quality_defect"),
        "request_unit": lambda: wh.request_unit(who, item_id),
        "reject": lambda: wh.reject_item(who, item_id, "no"),
        "cancel": lambda: wh.cancel_item(who, item_id, "no"),
        "scan": lambda: wh.scan(who, "TK3-A0001", rma_number=number),
        "ship": lambda: wh.ship(who, item_id, "TK3-SP0001", "SF", "1"),
        "deliver": lambda: wh.deliver(who, item_id, NOW, "Li"),
        "inspect": lambda: wh.inspect(who, item_id, "quality_defect"),
        "override": lambda: wh.override_decision(who, item_id, "free", "goodwill"),
        "release": lambda: wh.release(who, item_id, "on credit"),
    }
    return calls[action]()


@pytest.mark.parametrize("action, who", ROLE_CASES)
def test_wrong_role_is_forbidden_and_changes_nothing(ctx, world, action, who):
    number, item_id = to_state(ctx, "submitted", world=world)
    audits, scans = count(AuditEvent), count(ScanEvent)
    person = Actor(user=user("alice@a.example")) if who == "alice" else actor(who)
    with pytest.raises(ForbiddenError):
        _call(action, person, number, item_id)
    assert item(item_id).status == ItemStatus.SUBMITTED
    assert (count(AuditEvent), count(ScanEvent)) == (audits, scans)


@pytest.mark.parametrize("action, who", [
    ("confirm_remote", "sam"), ("confirm_remote", "mia"), ("confirm_remote", "adam"),
    ("request_unit", "sam"), ("scan", "wendy"), ("scan", "mia"), ("scan", "adam"),
])
def test_allowed_roles_act(ctx, world, action, who):
    number, item_id = to_state(ctx, "submitted", world=world)
    _call(action, actor(who), number, item_id)
    assert item(item_id).status != ItemStatus.SUBMITTED


def test_may_tells_pages_which_buttons_to_show(ctx, world):
    assert wh.may(user("mia@vendor.example"), "override")
    assert not wh.may(user("adam@vendor.example"), "override")
    assert wh.may(user("sam@vendor.example"), "deliver")
    assert not wh.may(user("alice@a.example"), "view")
    assert not wh.may(None, "view")
    assert not wh.may(user("mia@vendor.example"), "no-such-action")


# -- triage: confirm remotely, ask for the unit, reject (D-1) ---------------------------
def test_D_1_R_R3_remote_confirmation_of_a_free_fault_starts_the_clock(ctx, world):
    number, (item_id,) = open_items("TK3-A0001", world=world)
    confirmed = wh.confirm_remote(actor("sam"), item_id, " Quality_Defect ", "blinks, PIN ok")
    got = item(item_id)
    assert got is confirmed
    assert (got.status, got.cause, got.decision, got.computed_decision, got.decision_rule) == (
        ItemStatus.CONFIRMED, "quality_defect", "free", "free", "R-W3")
    assert got.remote_confirmation and got.cause_notes == "blinks, PIN ok"
    assert got.confirmed_at == NOW and got.clock_started_at == NOW
    assert got.due_at == NOW + timedelta(hours=72)
    assert got.confirmed_by_id == user("sam@vendor.example").id
    assert "quality defect within warranty" in got.decision_reason
    assert "R-W3" in wh.decision_text(got) and "2028-01-09" in wh.decision_text(got)
    assert wh.clock_of(got) is ClockState.ON_TRACK
    audit = db.session.scalar(select(AuditEvent).where(
        AuditEvent.action == "rma_item.confirmed_remote"))
    assert audit.actor_label == "sam@vendor.example" and audit.entity_id == str(item_id)
    assert (audit.before["status"], audit.after["status"]) == ("submitted", "confirmed")
    assert audit.after["due_at"] == "2026-11-28T04:00:00+00:00"
    event = db.session.scalar(select(RmaEvent).where(RmaEvent.kind == "confirmed"))
    assert event.item_id == item_id and event.data["remote"] is True


@pytest.mark.parametrize("serial, cause, decision, rule, state", [
    ("TK3-A0001", "quality_defect", "free", "R-W3", ItemStatus.CONFIRMED),
    ("TK3-A0001", "misuse_water", "paid", "R-W4", ItemStatus.WAITING_PAYMENT),
    ("TK3-A0001", "misuse_other", "paid", "R-W4", ItemStatus.WAITING_PAYMENT),
    ("TK3-AOLD", "quality_defect", "paid", "R-W5", ItemStatus.WAITING_PAYMENT),
    ("TK3-AOLD", "misuse_drop", "paid", "R-W4", ItemStatus.WAITING_PAYMENT),
])
def test_R_W3_R_W4_R_W5_decisions_on_remote_confirmation(ctx, world, serial, cause, decision,
                                                         rule, state):
    _number, (item_id,) = open_items(serial, world=world)
    got = wh.confirm_remote(actor("sam"), item_id, cause)
    assert (got.decision, got.decision_rule, got.status) == (decision, rule, state)
    # D-3: a paid replacement's clock waits for the release.
    assert (got.clock_started_at is None) == (decision == "paid")
    assert wh.decision_text(got)


def test_D_4_no_fault_found_cannot_be_confirmed_remotely(ctx, world):
    _number, (item_id,) = open_items("TK3-A0001", world=world)
    with pytest.raises(ValidationError) as error:
        wh.confirm_remote(actor("sam"), item_id, "no_fault_found")
    assert error.value.field == "cause" and "ask for the unit" in error.value.message
    assert item(item_id).status == ItemStatus.SUBMITTED and item(item_id).cause is None


@pytest.mark.parametrize("cause, field", [("", "cause"), ("broken", "cause"), (None, "cause"),
                                          (7, "cause")])
def test_a_cause_outside_D_4_is_refused(ctx, world, cause, field):
    _number, (item_id,) = open_items("TK3-A0001", world=world)
    with pytest.raises(ValidationError) as error:
        wh.confirm_remote(actor("sam"), item_id, cause)
    assert error.value.field == field
    assert count(AuditEvent, AuditEvent.action.like("rma_item.%")) == 0


def test_decision_uses_coverage_on_the_report_date_not_the_inspection_date(ctx, world):
    """TK3-AEDGE is covered through 2026-11-25: reported that day, inspected two days
    later, a quality defect is still free (SPEC "Warranty")."""
    number, (item_id,) = open_items("TK3-AEDGE", world=world)
    at(ctx, "2026-11-27T04:00:00+00:00")
    assert coverage(unit("TK3-AEDGE").facts(), date(2026, 11, 27)).in_warranty is False
    wh.receive(actor("wendy"), number, "TK3-AEDGE")
    got = wh.inspect(actor("wendy"), item_id, "quality_defect")
    assert (got.decision, got.decision_rule) == ("free", "R-W3")


def test_the_report_date_is_chinas_date(ctx, world):
    """Submitted 2026-11-25T16:30Z = 2026-11-26 00:30 in Shanghai: the day after
    TK3-AEDGE's last covered day, so a quality defect is paid (R-W5)."""
    at(ctx, "2026-11-25T16:30:00+00:00")
    _number, (item_id,) = open_items("TK3-AEDGE", world=world)
    got = wh.confirm_remote(actor("sam"), item_id, "quality_defect")
    assert (got.decision, got.decision_rule) == ("paid", "R-W5")
    assert "2026-11-26" in wh.decision_text(got)


def test_D_1_ask_for_the_unit_then_inspection_starts_the_clock(ctx, world):
    number, (item_id,) = open_items("TK3-A0001", world=world)
    got = wh.request_unit(actor("sam"), item_id, "internal: check the battery")
    assert got.status == ItemStatus.AWAITING_UNIT and got.clock_started_at is None
    at(ctx, NOW + timedelta(days=2))
    assert wh.receive(actor("wendy"), number, "TK3-A0001").outcome == "received"
    got = wh.inspect(actor("wendy"), item_id, "quality_defect")
    assert got.clock_started_at == NOW + timedelta(days=2)
    assert got.due_at == NOW + timedelta(days=5)
    assert not got.remote_confirmation


def test_reject_needs_a_reason_and_frees_the_unit(ctx, world):
    number, (item_id,) = open_items("TK3-A0001", world=world)
    with pytest.raises(ValidationError) as error:
        wh.reject_item(actor("sam"), item_id, "  ")
    assert error.value.field == "reason"
    got = wh.reject_item(actor("sam"), item_id, "This unit was bought from a reseller.")
    assert (got.status, got.rejected_reason, got.open_unit_id) == (
        ItemStatus.REJECTED, "This unit was bought from a reseller.", None)
    assert got.closed_at == NOW
    rma = db.session.scalar(select(Rma).where(Rma.number == number))
    assert rma.status == RmaStatus.CLOSED
    # The unit may be submitted again.
    assert open_items("TK3-A0001", world=world)[0] != number


def test_cancelling_every_item_cancels_the_rma(ctx, world):
    number, ids = open_items("TK3-A0001", "TK3-A0002", world=world)
    wh.cancel_item(actor("sam"), ids[0], "customer withdrew")
    rma = db.session.scalar(select(Rma).where(Rma.number == number))
    assert rma.status == RmaStatus.OPEN
    wh.cancel_item(actor("sam"), ids[1], "customer withdrew")
    db.session.refresh(rma)
    assert rma.status == RmaStatus.CANCELLED


def test_D_3_a_declined_quote_cancels_a_paid_item(ctx, world):
    _number, item_id = to_state(ctx, "waiting_payment", world=world)
    got = wh.cancel_item(actor("mia"), item_id, "quote declined")
    assert got.status == ItemStatus.CANCELLED and wh.clock_of(got) is None


def test_unknown_item_is_not_found(ctx, world):
    for key in (999999, "abc", None):
        with pytest.raises(NotFoundError):
            wh.request_unit(actor("sam"), key)
    with pytest.raises(NotFoundError):
        wh.find_item("RMA-2026-000001", "TK3-A0001")
    with pytest.raises(NotFoundError):
        wh.find_item("RMA-2026-000001", "#bad#")


# -- illegal transitions: 409 naming the current state ----------------------------------
ILLEGAL = [
    ("submitted", "ship", "submitted"),
    ("submitted", "deliver", "submitted"),
    ("submitted", "inspect", "submitted"),
    ("submitted", "release", "submitted"),
    ("awaiting_unit", "request_unit", "waiting for the unit"),
    ("received", "confirm_remote", "received"),
    ("received", "cancel", "received"),
    ("confirmed", "confirm_remote", "confirmed"),
    ("confirmed", "reject", "confirmed"),
    ("confirmed", "deliver", "confirmed"),
    ("confirmed", "release", "confirmed"),
    ("waiting_payment", "ship", "waiting for payment"),
    ("released", "cancel", "released"),
    ("released", "release", "released"),
    ("shipped", "ship", "shipped"),
    ("shipped", "cancel", "shipped"),
    ("shipped", "override", "shipped"),
    ("delivered", "deliver", "delivered"),
    ("closed", "reject", "closed"),
    ("cancelled", "confirm_remote", "cancelled"),
    ("rejected", "request_unit", "rejected"),
]


@pytest.mark.parametrize("state, action, words", ILLEGAL)
def test_R_R3_illegal_transitions_are_409_and_change_nothing(ctx, world, state, action, words):
    number, item_id = to_state(ctx, state, world=world)
    before = wh._snapshot(item(item_id))
    audits, events = count(AuditEvent), count(RmaEvent)
    who = {"release": "fay", "override": "mia", "ship": "wendy", "deliver": "wendy",
           "inspect": "wendy"}.get(action, "sam")
    with pytest.raises(wh.TransitionError) as error:
        _call(action, actor(who), number, item_id)
    assert error.value.status == 409
    assert f"while the item is {words}" in error.value.message
    assert error.value.state == item(item_id).status.value
    assert wh._snapshot(item(item_id)) == before
    assert (count(AuditEvent), count(RmaEvent)) == (audits, events)


def test_D_3_a_paid_item_cannot_ship_before_release(ctx, world):
    _number, item_id = to_state(ctx, "waiting_payment", world=world)
    with pytest.raises(wh.TransitionError) as error:
        wh.ship(actor("wendy"), item_id, "TK3-SP0001", "SF", "SF1")
    assert "waiting for payment" in error.value.message and "(D-3)" in error.value.message
    assert unit("TK3-SP0001").status == UnitStatus.IN_STOCK
    assert count(Shipment) == 0


# -- the scan station -------------------------------------------------------------------
@pytest.mark.parametrize("code", ["RMA-2026-000001", "rma-2026-000001", " 2026-000001 "])
def test_scanning_an_rma_label_opens_it(ctx, world, code):
    number, _ids = open_items("TK3-A0001", world=world)
    assert number == "RMA-2026-000001"
    result = wh.scan(actor("wendy"), code, station="dock-1")
    assert (result.outcome, result.rma.number, result.is_warning) == ("opened_rma", number,
                                                                      False)
    event = db.session.scalar(select(ScanEvent))
    assert (event.outcome, event.rma_id, event.station, event.code) == (
        "opened_rma", result.rma.id, "dock-1", code.strip())


def test_an_unknown_rma_label_is_unknown(ctx, world):
    result = wh.scan(actor("wendy"), "RMA-2026-999999")
    assert result.outcome == "unknown" and "RMA-2026-999999" in result.message
    assert result.is_warning


def test_scanning_a_serial_receives_it_once(ctx, world):
    number, (first, second) = open_items("TK3-A0001", "TK3-A0002", world=world)
    at(ctx, "2026-11-25T06:02:00+00:00")  # 14:02 in Shanghai
    result = wh.scan(actor("wendy"), " tk3-a0002 ", rma_number=number, station="dock-1")
    assert (result.outcome, result.item.id, result.serial) == ("received", second, "TK3-A0002")
    assert "line 2" in result.message
    got = item(second)
    assert got.status == ItemStatus.RECEIVED
    assert got.unit_received_at == datetime(2026, 11, 25, 6, 2, tzinfo=UTC)
    assert got.unit_received_by_id == user("wendy@vendor.example").id
    assert unit("TK3-A0002").status == UnitStatus.RETURNED
    assert item(first).status == ItemStatus.SUBMITTED
    assert db.session.scalar(select(AuditEvent.action).where(
        AuditEvent.entity_type == "rma_item", AuditEvent.entity_id == str(second))) == \
        "rma_item.received"
    snapshot = wh._snapshot(item(second))
    audits, events = count(AuditEvent), count(RmaEvent)
    # The second scan, later: "already received at 14:02 by ...", nothing changes.
    at(ctx, "2026-11-25T07:30:00+00:00")
    again = wh.scan(actor("mia"), "TK3-A0002", rma_number=number)
    assert again.outcome == "already_received" and again.is_warning
    assert again.message == ("TK3-A0002 was already received at 14:02 by "
                             "wendy@vendor.example. Nothing was changed.")
    assert again.previous is not None and again.previous.outcome == "received"
    assert wh._snapshot(item(second)) == snapshot
    assert (count(AuditEvent), count(RmaEvent)) == (audits, events)
    assert count(ScanEvent) == 2
    at(ctx, "2026-11-26T07:30:00+00:00")  # another day: the date is shown
    assert "at 2026-11-25 14:02 by" in wh.receive(actor("wendy"), number, "TK3-A0002").message


def test_a_serial_not_on_this_rma_is_a_loud_unexpected_unit(ctx, world):
    number, (item_id,) = open_items("TK3-A0001", world=world)
    snapshot = wh._snapshot(item(item_id))
    result = wh.scan(actor("wendy"), "TK3-B0001", rma_number=number)
    assert (result.outcome, result.is_warning, result.item) == ("unexpected", True, None)
    assert "TK3-B0001 is NOT on RMA-2026-000001" in result.message
    scan_event = db.session.scalar(select(ScanEvent))
    assert (scan_event.outcome, scan_event.serial, scan_event.item_id) == (
        "unexpected", "TK3-B0001", None)
    assert scan_event.rma_id == result.rma.id
    event = db.session.scalar(select(RmaEvent).where(RmaEvent.kind == "unexpected_unit"))
    assert event.data == {"serial": "TK3-B0001"}
    assert wh._snapshot(item(item_id)) == snapshot
    assert unit("TK3-B0001").status == UnitStatus.IN_SERVICE
    rma = db.session.scalar(select(Rma).where(Rma.number == number))
    assert any("unexpected unit TK3-B0001" in e.text for e in timeline(rma))
    # A unit of another open RMA says which.
    other, _ids = open_items("TK3-A0002", world=world)
    result = wh.scan(actor("wendy"), "TK3-A0002", rma_number=number)
    assert result.outcome == "unexpected"
    assert result.message.endswith(f"It is on open RMA {other}.")
    assert item(_ids[0]).status == ItemStatus.SUBMITTED


def test_a_serial_without_an_rma_at_hand_finds_its_open_rma(ctx, world):
    number, (item_id,) = open_items("TK3-A0001", world=world)
    result = wh.scan(actor("wendy"), "TK3-A0001")
    assert (result.outcome, result.rma.number, result.item.id) == ("found_rma", number, item_id)
    assert item(item_id).status == ItemStatus.SUBMITTED
    assert wh.scan(actor("wendy"), "TK3-A0003").outcome == "unknown"  # no open RMA
    nobody = wh.scan(actor("wendy"), "ZZ-0000")
    assert nobody.outcome == "unknown" and "not a known serial" in nobody.message


@pytest.mark.parametrize("code, shown", [("ab#12", "'ab#12'"), ("X1", "'X1'"),
                                         ("TK3-A0001\u200b", "\\u200b"), ("", "")])
def test_D_8_a_malformed_code_shows_what_was_read(ctx, world, code, shown):
    number, _ids = open_items("TK3-A0001", world=world)
    result = wh.scan(actor("wendy"), code, rma_number=number)
    assert result.outcome == "malformed" and shown in result.message
    assert db.session.scalar(select(ScanEvent.outcome)) == "malformed"


def test_a_scan_for_an_unknown_rma_at_the_station_is_not_found(ctx, world):
    with pytest.raises(NotFoundError):
        wh.scan(actor("wendy"), "TK3-A0001", rma_number="RMA-2026-424242")
    assert count(ScanEvent) == 0
    open_items("TK3-A0001", world=world)
    assert wh.scan(actor("wendy"), "TK3-A0001", rma_number=" ").outcome == "found_rma"


def test_a_serial_of_a_final_item_is_refused_with_its_state(ctx, world):
    number, item_id = to_state(ctx, "cancelled", world=world)
    result = wh.receive(actor("wendy"), number, "TK3-A0001")
    assert result.outcome == "refused" and "cancelled" in result.message
    assert item(item_id).unit_received_at is None


def test_receive_does_not_take_an_rma_label_for_a_serial(ctx, world):
    number, _ids = open_items("TK3-A0001", world=world)
    result = wh.receive(actor("wendy"), number, "RMA-2026-000001")
    assert result.outcome == "unexpected"  # a valid serial shape, not on this RMA


def test_scan_of_a_serial_runs_few_queries(app, ctx, world):
    number, ids = open_items(*(f"TK3-A{n:04d}" for n in range(1, 21)), world=world)
    who = actor("wendy")
    with count_queries(app) as received:
        assert wh.scan(who, "TK3-A0007", rma_number=number).outcome == "received"
    with count_queries(app) as again:
        assert wh.scan(who, "TK3-A0007", rma_number=number).outcome == "already_received"
    with count_queries(app) as found:
        assert wh.scan(who, "TK3-A0008").outcome == "found_rma"
    with count_queries(app) as label:
        assert wh.scan(who, number).outcome == "opened_rma"
    reads = [s for s in received if s.lstrip().upper().startswith("SELECT")]
    assert len(reads) <= 4, received
    assert len(received) <= 10, received
    assert len(again) <= 6 and len(found) <= 4 and len(label) <= 3, (again, found, label)


# -- inspection (D-4) -------------------------------------------------------------------
def test_inspection_of_a_received_unit_with_photos(ctx, world):
    number, item_id = to_state(ctx, "received", world=world)
    got = wh.inspect(actor("wendy"), item_id, "misuse_heat", "melted case",
                     [PhotoInput("case.png", png())])
    assert (got.status, got.decision, got.decision_rule) == (
        ItemStatus.WAITING_PAYMENT, "paid", "R-W4")
    assert got.clock_started_at is None and got.cause_notes == "melted case"
    photo = db.session.scalar(select(RmaPhoto).where(RmaPhoto.item_id == item_id))
    assert photo.filename == "inspection-case.png"
    assert "high temperature" in wh.decision_text(got)


def test_D_4_no_fault_found_returns_the_unit_without_a_clock(ctx, world):
    _number, item_id = to_state(ctx, "return_confirmed", world=world)
    got = item(item_id)
    assert (got.status, got.decision, got.decision_rule) == (
        ItemStatus.CONFIRMED, "return_unit", "D-4")
    assert got.clock_started_at is None and got.due_at is None
    assert wh.clock_of(got) is None


def test_a_bad_inspection_photo_changes_nothing(ctx, world):
    _number, item_id = to_state(ctx, "received", world=world)
    with pytest.raises(ValidationError) as error:
        wh.inspect(actor("wendy"), item_id, "quality_defect", "",
                   [PhotoInput("x.png", b"not a png")])
    assert error.value.field == "photos"
    assert item(item_id).status == ItemStatus.RECEIVED and count(RmaPhoto) == 0


# -- override (D-6) ---------------------------------------------------------------------
def test_D_6_override_paid_to_free_starts_the_clock_and_is_recorded(ctx, world):
    _number, item_id = to_state(ctx, "waiting_payment", world=world)
    at(ctx, NOW + timedelta(hours=5))
    with pytest.raises(ValidationError) as error:
        wh.override_decision(actor("mia"), item_id, "free", " ")
    assert error.value.field == "reason"
    got = wh.override_decision(actor("mia"), item_id, "FREE", "Key customer, goodwill")
    assert (got.status, got.decision, got.computed_decision) == (
        ItemStatus.CONFIRMED, "free", "paid")
    assert got.override_reason == "Key customer, goodwill"
    assert got.overridden_by_id == user("mia@vendor.example").id
    assert got.overridden_at == NOW + timedelta(hours=5)
    assert got.clock_started_at == NOW + timedelta(hours=5)
    assert got.due_at == NOW + timedelta(hours=77)
    audit = db.session.scalar(select(AuditEvent).where(
        AuditEvent.action == "rma_item.decision_overridden"))
    assert (audit.before["decision"], audit.after["decision"]) == ("paid", "free")
    assert audit.after["override_reason"] == "Key customer, goodwill"


def test_D_6_override_free_to_paid_stops_the_clock(ctx, world):
    _number, item_id = to_state(ctx, "confirmed", world=world)
    got = wh.override_decision(actor("mia"), item_id, "paid", "Water damage seen on photo")
    assert (got.status, got.decision) == (ItemStatus.WAITING_PAYMENT, "paid")
    assert got.clock_started_at is None and got.due_at is None
    assert wh.replacements() == []


@pytest.mark.parametrize("state, outcome, error_type", [
    ("confirmed", "free", ConflictError),  # already free
    ("waiting_payment", "paid", ConflictError),  # already paid
    ("confirmed", "return_unit", ValidationError),  # D-6 is free <-> paid
    ("confirmed", "maybe", ValidationError),
    ("shipped", "paid", wh.TransitionError),  # something shipped: too late
    ("released", "free", wh.TransitionError),
])
def test_D_6_override_refusals(ctx, world, state, outcome, error_type):
    _number, item_id = to_state(ctx, state, world=world)
    snapshot = wh._snapshot(item(item_id))
    with pytest.raises(error_type):
        wh.override_decision(actor("mia"), item_id, outcome, "because")
    assert wh._snapshot(item(item_id)) == snapshot


# -- release (D-3) ----------------------------------------------------------------------
def test_D_3_release_on_credit_starts_the_clock_then_the_item_ships(ctx, world):
    _number, item_id = to_state(ctx, "waiting_payment", world=world)
    give_credit_terms(item_id)
    at(ctx, NOW + timedelta(days=3))
    got = wh.release(actor("fay"), item_id, "invoice 2026-0042 paid")
    assert got.status == ItemStatus.RELEASED
    assert got.released_at == got.clock_started_at == NOW + timedelta(days=3)
    assert got.due_at == NOW + timedelta(days=6)
    assert got.released_by_id == user("fay@vendor.example").id
    assert got.release_note == "invoice 2026-0042 paid"
    shipment = wh.ship(actor("wendy"), item_id, "TK3-SP0001", "SF", "SF9")
    assert shipment.kind == "replacement" and item(item_id).status == ItemStatus.SHIPPED


# -- shipping ---------------------------------------------------------------------------
def test_shipping_a_spare_claims_it_and_keeps_the_chain(ctx, world):
    _number, item_id = to_state(ctx, "confirmed_inspected", world=world)
    shipment = wh.ship(actor("wendy"), item_id, " tk3-sp0001 ", "SF Express", "SF1234")
    spare, old = unit("TK3-SP0001"), unit("TK3-A0001")
    assert (shipment.kind, shipment.unit_id, shipment.carrier, shipment.tracking_number) == (
        "replacement", spare.id, "SF Express", "SF1234")
    assert shipment.shipped_at == NOW
    assert (spare.status, spare.customer_id, spare.shipped_on, spare.replaces_id) == (
        UnitStatus.IN_SERVICE, world["a"], date(2026, 11, 25), old.id)
    assert old.status == UnitStatus.REPLACED
    got = item(item_id)
    assert got.status == ItemStatus.SHIPPED and got.unit_due_back_on is None
    # The replacement's warranty follows the replacement policy (inherit_min_days).
    cov = coverage(spare.facts(), date(2026, 11, 25))
    assert cov.basis_used == "replacement_inherit_min_days" and cov.end_on == date(2028, 1, 9)
    assert cov.chain == ("TK3-A0001", "TK3-SP0001")
    history = wh.unit_history(spare)
    assert [u.serial for u in history.chain] == ["TK3-A0001", "TK3-SP0001"]
    assert [i.id for i in history.items] == [item_id]
    audit = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "rma_item.shipped"))
    assert audit.after["sent_serial"] == "TK3-SP0001"
    assert audit.after["unit_after"]["status"] == "replaced"


def test_D_2_advance_replacement_sets_the_return_deadline(ctx, world):
    _number, item_id = to_state(ctx, "confirmed", world=world)
    wh.ship(actor("wendy"), item_id, "TK3-SP0002", "EMS", "E1")
    got = item(item_id)
    assert got.unit_due_back_on == date(2026, 12, 9)
    assert wh.item_json(got)["unit_overdue"] is False
    at(ctx, "2026-12-10T04:00:00+00:00")
    assert wh.item_json(item(item_id))["unit_overdue"] is True


def test_a_successor_model_the_admin_allowed_may_ship(ctx, world):
    _number, item_id = to_state(ctx, "confirmed", world=world)
    with pytest.raises(ValidationError) as error:
        wh.ship(actor("wendy"), item_id, "TK5-SP0001", "SF", "1")
    assert "TK5" in error.value.message and "needs TK3" in error.value.message
    set_successors(Actor.cli("test"), world["tk3"], [world["tk5"]])
    wh.ship(actor("wendy"), item_id, "TK5-SP0001", "SF", "1")
    assert unit("TK5-SP0001").replaces_id == unit("TK3-A0001").id


@pytest.mark.parametrize("serial, field_text", [
    ("TK9-SP0001", "is a TK9; this item needs TK3"),
    ("TK3-A0005", "not a spare in stock"),  # a customer's unit
    ("TK3-NOPE", "not a known serial"),
    ("ab#1", "not a valid serial"),
    ("", "Enter or scan"),
    (None, "Enter or scan"),
    ("TK3-A0001", "the faulty unit itself"),
])
def test_only_a_spare_in_stock_of_the_right_model_ships(ctx, world, serial, field_text):
    _number, item_id = to_state(ctx, "confirmed", world=world)
    with pytest.raises(ValidationError) as error:
        wh.ship(actor("wendy"), item_id, serial, "SF", "1")
    assert error.value.field == "replacement_serial" and field_text in error.value.message
    assert item(item_id).status == ItemStatus.CONFIRMED and count(Shipment) == 0


@pytest.mark.parametrize("carrier, tracking, field", [("", "1", "carrier"),
                                                      ("SF", " ", "tracking_number"),
                                                      ("SF", "x" * 101, "tracking_number")])
def test_ship_needs_carrier_and_tracking(ctx, world, carrier, tracking, field):
    _number, item_id = to_state(ctx, "confirmed", world=world)
    with pytest.raises(ValidationError) as error:
        wh.ship(actor("wendy"), item_id, "TK3-SP0001", carrier, tracking)
    assert error.value.field == field


def test_a_spare_shipped_for_another_rma_is_a_conflict(ctx, world):
    number, item_id = to_state(ctx, "confirmed", world=world)
    _other, other_id = to_state(ctx, "confirmed", "TK3-A0002", world=world)
    wh.ship(actor("wendy"), item_id, "TK3-SP0003", "SF", "1")
    with pytest.raises(ConflictError) as error:
        wh.ship(actor("wendy"), other_id, "TK3-SP0003", "SF", "2")
    assert error.value.message == ("TK3-SP0003 was just shipped for RMA-2026-000001. Scan "
                                   "another spare.")
    assert item(other_id).status == ItemStatus.CONFIRMED
    assert unit("TK3-SP0003").replaces_id == unit("TK3-A0001").id


def test_the_lost_race_is_a_conflict_not_an_error(ctx, world, monkeypatch):
    """The spare is claimed by another station between our read and our update: the
    conditional UPDATE changes no row and we answer 409."""
    number, item_id = to_state(ctx, "confirmed", world=world)
    _other, other_id = to_state(ctx, "confirmed", "TK3-A0002", world=world)
    original = wh._allowed_models

    def other_station_wins(model):
        # Runs after our read of the spare, before our conditional UPDATE.
        db.session.execute(Unit.__table__.update().where(Unit.serial == "TK3-SP0004")
                           .values(status="in_service", customer_id=world["a"]))
        return original(model)

    monkeypatch.setattr(wh, "_allowed_models", other_station_wins)
    with pytest.raises(ValidationError) as error:
        wh.ship(actor("wendy"), other_id, "TK3-SP0004", "SF", "2")
    assert "not a spare in stock" in error.value.message
    # Rolled back: our own simulated write went too, and nothing shipped.
    assert unit("TK3-SP0004").status == UnitStatus.IN_STOCK and count(Shipment) == 0


def test_D_4_no_fault_found_ships_the_customers_own_unit_back(ctx, world):
    _number, item_id = to_state(ctx, "return_confirmed", world=world)
    assert unit("TK3-A0001").status == UnitStatus.RETURNED
    with pytest.raises(ValidationError):
        wh.ship(actor("wendy"), item_id, "TK3-SP0001", "SF", "1")
    shipment = wh.ship(actor("wendy"), item_id, "", "SF", "R1")
    assert (shipment.kind, shipment.unit_id) == ("return", unit("TK3-A0001").id)
    assert unit("TK3-A0001").status == UnitStatus.IN_SERVICE
    assert unit("TK3-SP0001").status == UnitStatus.IN_STOCK
    result = wh.deliver(actor("wendy"), item_id, NOW, "Li Lei")
    assert (result.within_target, result.hours, result.closed) == (None, None, True)
    assert item(item_id).status == ItemStatus.CLOSED


# -- delivery and the 72-hour clock (R-R3) ----------------------------------------------
def test_R_R3_delivery_within_target_closes_item_and_rma(ctx, world):
    number, item_id = to_state(ctx, "confirmed_inspected", world=world)
    wh.ship(actor("wendy"), item_id, "TK3-SP0001", "SF", "1")
    at(ctx, NOW + timedelta(hours=48))
    result = wh.deliver(actor("sam"), item_id, NOW + timedelta(hours=41, minutes=30),
                        " Li Lei ")
    assert (result.within_target, result.hours, result.closed) == (True, 41.5, True)
    got = item(item_id)
    assert got.status == ItemStatus.CLOSED and got.open_unit_id is None
    assert got.shipment.received_by == "Li Lei"
    assert got.shipment.delivery_recorded_by_id == user("sam@vendor.example").id
    assert wh.clock_of(got) is ClockState.MET and got.breach_reason is None
    rma = db.session.scalar(select(Rma).where(Rma.number == number))
    assert rma.status == RmaStatus.CLOSED


def test_R_R3_late_delivery_keeps_the_reason(ctx, world):
    _number, item_id = to_state(ctx, "confirmed_inspected", world=world)
    wh.ship(actor("wendy"), item_id, "TK3-SP0001", "SF", "1")
    at(ctx, NOW + timedelta(days=5))
    result = wh.deliver(actor("wendy"), item_id, NOW + timedelta(hours=80), "Li Lei",
                        "Snowstorm closed the highway")
    assert (result.within_target, result.hours) == (False, 80.0)
    got = item(item_id)
    assert got.breach_reason == "Snowstorm closed the highway"
    assert wh.clock_of(got) is ClockState.MISSED


@pytest.mark.parametrize("when, received_by, field", [
    (NOW + timedelta(minutes=1), "Li", "delivered_at"),  # in the future
    (NOW - timedelta(hours=1), "Li", "delivered_at"),  # before the shipment
    (datetime(2026, 11, 25, 12, 0), "Li", "delivered_at"),  # naive
    ("2026-11-25T12:00", "Li", "delivered_at"),  # not a datetime
    (NOW, " ", "received_by"),
    (NOW, "x" * 201, "received_by"),
])
def test_delivery_refusals(ctx, world, when, received_by, field):
    _number, item_id = to_state(ctx, "shipped", world=world)
    with pytest.raises(ValidationError) as error:
        wh.deliver(actor("wendy"), item_id, when, received_by)
    assert error.value.field == field
    assert item(item_id).status == ItemStatus.SHIPPED


def test_D_2_advance_replacement_closes_when_the_unit_comes_back(ctx, world):
    number, item_id = to_state(ctx, "confirmed", world=world)
    wh.ship(actor("wendy"), item_id, "TK3-SP0001", "SF", "1")
    at(ctx, NOW + timedelta(hours=30))
    result = wh.deliver(actor("wendy"), item_id, NOW + timedelta(hours=20), "Li Lei")
    assert (result.within_target, result.closed) == (True, False)
    assert item(item_id).status == ItemStatus.DELIVERED
    rma = db.session.scalar(select(Rma).where(Rma.number == number))
    assert rma.status == RmaStatus.OPEN
    at(ctx, NOW + timedelta(days=6))
    scanned = wh.scan(actor("wendy"), "TK3-A0001", rma_number=number)
    assert scanned.outcome == "received"
    got = item(item_id)
    assert got.status == ItemStatus.CLOSED and got.unit_received_at is not None
    assert unit("TK3-A0001").status == UnitStatus.REPLACED  # stays replaced
    db.session.refresh(rma)
    assert rma.status == RmaStatus.CLOSED


def test_R_R3_clock_states_everywhere(ctx, world):
    _n, fresh = to_state(ctx, "submitted", world=world)
    assert wh.clock_of(item(fresh)) is None
    _n, running = to_state(ctx, "confirmed", "TK3-A0002", world=world)
    got = item(running)
    due = NOW + timedelta(hours=72)
    assert wh.clock_of(got, now=due - timedelta(hours=24)) is ClockState.ON_TRACK
    assert wh.clock_of(got, now=due - timedelta(hours=23, minutes=59)) is ClockState.AT_RISK
    assert wh.clock_of(got, now=due) is ClockState.AT_RISK
    assert wh.clock_of(got, now=due + timedelta(seconds=1)) is ClockState.BREACHED
    assert wh.hours_left(got, now=due + timedelta(hours=2)) == -2.0


# -- the replacements dashboard ---------------------------------------------------------
def _clock_world(ctx, world) -> dict[str, int]:
    """Clocks started so that at NOW + 72h one is breached (5 h late), one at risk (10 h
    left), two on track (exactly 24 h and 40 h left); plus one delivered and one waiting
    for payment, which have no running clock."""
    ids = {}
    for name, serial, started in [("breached", "TK3-A0001", NOW - timedelta(hours=5)),
                                  ("at_risk", "TK3-A0002", NOW + timedelta(hours=10)),
                                  ("on_track", "TK3-A0003", NOW + timedelta(hours=40)),
                                  ("edge", "TK3-A0004", NOW + timedelta(hours=24))]:
        at(ctx, started)
        _n, ids[name] = to_state(ctx, "confirmed", serial, world=world)
    at(ctx, NOW)
    _n, ids["paid"] = to_state(ctx, "waiting_payment", "TK3-A0005", world=world)
    _n, ids["delivered"] = to_state(ctx, "delivered", "TK3-A0006", world=world)
    return ids


EVAL = NOW + timedelta(hours=72)


def test_R_R3_replacements_by_time_left_with_filters(app, ctx, world):
    ids = _clock_world(ctx, world)
    db.session.expunge_all()
    with count_queries(app) as statements:
        rows = wh.replacements(now=EVAL)
        shown = [(r.item.serial, r.customer.name, r.item.unit.model.code, r.rma.number)
                 for r in rows]
    assert len(statements) == 1, statements
    assert [r.item.id for r in rows] == [ids["breached"], ids["at_risk"], ids["edge"],
                                         ids["on_track"]]
    assert [(r.clock_state, r.hours_left) for r in rows] == [
        (ClockState.BREACHED, -5.0), (ClockState.AT_RISK, 10.0), (ClockState.ON_TRACK, 24.0),
        (ClockState.ON_TRACK, 40.0)]
    assert shown[0][:3] == ("TK3-A0001", "Acme Bank", "TK3")
    assert rows[0].due_at == NOW + timedelta(hours=67)
    for state, expected in [("breached", ["breached"]), ("at_risk", ["at_risk"]),
                            ("on_track", ["edge", "on_track"])]:
        assert [r.item.id for r in wh.replacements(state=state, now=EVAL)] == [
            ids[name] for name in expected]
    assert wh.replacements(customer_id=world["b"], now=EVAL) == []
    assert len(wh.replacements(customer_id=world["a"], now=EVAL)) == 4
    assert wh.replacements(item_status="shipped", now=EVAL) == []
    assert len(wh.replacements(item_status="confirmed", now=EVAL)) == 4


def test_replacement_filters_are_checked(ctx, world):
    with pytest.raises(ValidationError) as error:
        wh.replacements(state="late")
    assert error.value.field == "state"
    with pytest.raises(ValidationError) as error:
        wh.replacements(item_status="closed")
    assert error.value.field == "item_status"


def test_replacements_at_the_boundaries_agree_with_clock_state(ctx, world):
    _n, item_id = to_state(ctx, "confirmed", world=world)
    due = NOW + timedelta(hours=72)
    for now, state in [(due - timedelta(hours=24), "on_track"), (due, "at_risk"),
                       (due + timedelta(microseconds=1), "breached")]:
        assert [r.clock_state.value for r in wh.replacements(now=now)] == [state]
        assert len(wh.replacements(state=state, now=now)) == 1


def test_replacements_page_counts(ctx, world):
    ids = _clock_world(ctx, world)
    page = wh.replacements_page(per_page=3, page=2, now=EVAL)
    assert (page.total, page.pages, page.page, len(page.rows)) == (4, 2, 2, 1)
    assert page.rows[0].item.id == ids["on_track"]
    assert wh.replacements_page(state="at_risk", now=EVAL).total == 1


# -- monthly figures --------------------------------------------------------------------
def test_R_R3_monthly_report_figures_and_breaches(app, ctx, world):
    oct_start = datetime(2026, 10, 10, 2, 0, tzinfo=UTC)
    specs = [("TK3-A0001", oct_start, 40, ""),
             ("TK3-A0002", oct_start + timedelta(days=1), 80, "Snowstorm"),
             ("TK3-A0003", oct_start + timedelta(days=2), 60, "")]
    for serial, started, hours, reason in specs:
        at(ctx, started)
        _n, item_id = to_state(ctx, "confirmed", serial, world=world)
        wh.ship(actor("wendy"), item_id, _spare(), "SF", "1")
        at(ctx, started + timedelta(hours=hours))
        wh.deliver(actor("wendy"), item_id, started + timedelta(hours=hours), "Li", reason)
    at(ctx, datetime(2026, 11, 20, 2, 0, tzinfo=UTC))
    _n, open_late = to_state(ctx, "confirmed", "TK3-A0004", world=world)
    at(ctx, NOW)
    _n, on_time = to_state(ctx, "confirmed", "TK3-A0005", world=world)
    with count_queries(app) as statements:
        report = wh.monthly_report(months=2)
        reasons = [(b.item.rma.customer.name, b.item.serial, b.reason) for b in report.breaches]
    assert len(statements) == 2, statements
    october, november = report.figures
    assert (october.month, october.started, october.delivered, october.within_target) == (
        "2026-10", 3, 3, 2)
    assert (october.median_hours, october.p90_hours, october.breached) == (60.0, 80.0, 1)
    assert october.share_within == pytest.approx(2 / 3)
    assert (november.month, november.started, november.delivered, november.breached) == (
        "2026-11", 2, 0, 1)
    assert reasons == [("Acme Bank", "TK3-A0002", "Snowstorm"), ("Acme Bank", "TK3-A0004", "")]
    late = report.breaches[1]
    assert (late.delivered, late.item.id, late.hours_late) == (False, open_late, 50.0)
    assert on_time not in [b.item.id for b in report.breaches]
    assert report.since == datetime(2026, 9, 30, 16, 0, tzinfo=UTC)
    assert [f.month for f in wh.monthly_report(months=1).figures] == ["2026-11"]
    for months in (0, 121, "3", True):
        with pytest.raises(ValidationError):
            wh.monthly_report(months=months)


def _spare() -> str:
    return db.session.scalar(select(Unit.serial).where(
        Unit.status == UnitStatus.IN_STOCK, Unit.serial.like("TK3-SP%"))
        .order_by(Unit.serial).limit(1))


# -- triage queue and unit history ------------------------------------------------------
def test_D_1_triage_queue_oldest_first_without_n_plus_1(app, ctx, world):
    numbers = []
    for n, serials in enumerate([("TK3-A0001", "TK3-A0002"), ("TK3-A0003",), ("TK3-A0004",),
                                 ("TK3-A0005", "TK3-A0006", "TK3-A0007")]):
        at(ctx, NOW + timedelta(hours=n))
        numbers.append(open_items(*serials, world=world)[0])
    at(ctx, NOW + timedelta(hours=5))
    third = db.session.scalar(select(Rma).where(Rma.number == numbers[2]))
    wh.confirm_remote(actor("sam"), third.items[0].id, "quality_defect")
    db.session.expunge_all()
    with count_queries(app) as statements:
        page = wh.triage_queue()
        seen = [(r.number, r.customer.name, [(i.serial, i.unit.model.code,
                                              i.unit.customer_id) for i in r.items])
                for r in page.items]
    assert [r[0] for r in seen] == [numbers[0], numbers[1], numbers[3]]
    assert page.total == 3 and len(statements) <= 5, statements
    assert wh.triage_queue(page=2, per_page=2).items[0].number == numbers[3]


def test_unit_history_shows_earlier_rmas_of_the_chain(app, ctx, world):
    first, item_id = to_state(ctx, "closed", world=world)
    spare = db.session.scalar(select(Unit).where(Unit.replaces_id == unit("TK3-A0001").id))
    second, (new_item,) = open_items(spare.serial, world=world)
    histories = wh.unit_histories([spare, unit("TK3-A0002")])
    history = histories[spare.id]
    assert [u.serial for u in history.chain] == ["TK3-A0001", spare.serial]
    assert [(i.rma.number, i.serial) for i in history.items] == [
        (first, "TK3-A0001"), (second, spare.serial)]
    assert histories[unit("TK3-A0002").id].items == []


# -- audit, timeline, documents, the full journey ---------------------------------------
def test_R_R4_the_customers_timeline_in_plain_words_without_staff_notes(ctx, world):
    number, item_id = to_state(ctx, "received", world=world)
    wh.inspect(actor("wendy"), item_id, "misuse_drop", "INTERNAL-NOTE cracked")
    wh.override_decision(actor("mia"), item_id, "free", "INTERNAL-REASON goodwill")
    wh.ship(actor("wendy"), item_id, "TK3-SP0001", "SF Express", "SF777")
    wh.deliver(actor("wendy"), item_id, NOW, "Li Lei")
    rma = db.session.scalar(select(Rma).where(Rma.number == number))
    texts = [entry.text for entry in timeline(rma)]
    assert texts[1:] == [
        "Unit TK3-A0001 arrived at the service centre.",
        "Unit TK3-A0001 was inspected: the replacement is paid and ships once payment is "
        "settled.",
        "Quote Q-2026-000001 for the paid replacement: 90.40 CNY including VAT, valid until "
        "2026-12-25. Accept or decline it in the portal.",  # issue 5: model price, no fee
        "The decision for TK3-A0001 was changed to a free replacement, due on site by "
        "2026-11-28 12:00 (China time).",
        "Quote Q-2026-000001 was withdrawn: nothing is left to pay for.",  # D-6
        "Replacement unit TK3-SP0001 for TK3-A0001 was shipped with SF Express, tracking "
        "number SF777.",
        "The replacement for TK3-A0001 was delivered, signed for by Li Lei.",
        "Item TK3-A0001 is closed.",
    ]
    assert not any("INTERNAL" in text for text in texts)
    actions = db.session.scalars(select(AuditEvent.action).where(
        AuditEvent.entity_type == "rma_item").order_by(AuditEvent.id)).all()
    assert actions == ["rma_item.received", "rma_item.inspected",
                       "rma_item.decision_overridden", "rma_item.shipped",
                       "rma_item.delivered"]


@pytest.mark.parametrize("kind, data, text", [
    ("unit_requested", {"serial": "S1"}, "Please send unit S1"),
    ("confirmed", {"serial": "S1", "remote": True, "decision": "free",
                   "due_at": "2026-11-28T04:00:00+00:00"},
     "confirmed remotely: a free replacement is due on site by 2026-11-28 12:00"),
    ("confirmed", {"serial": "S1", "remote": True, "decision": "paid"}, "paid"),
    ("confirmed", {"serial": "S1", "decision": "return_unit"}, "no fault was found"),
    ("released", {"serial": "S1", "due_at": "2026-11-28T04:00:00+00:00"}, "released"),
    ("shipped", {"serial": "S1", "kind": "return", "carrier": "EMS",
                 "tracking_number": "E1"}, "Your unit S1 was sent back with EMS"),
    ("shipped", {"serial": "S1", "kind": "replacement", "replacement_serial": "S2",
                 "carrier": "EMS", "tracking_number": "E1", "unit_due_back_on": "2026-12-09"},
     "Please send the faulty unit back by 2026-12-09"),
    ("delivered", {"serial": "S1", "kind": "return", "received_by": "Li"}, "delivered back"),
    ("rejected", {"serial": "S1", "reason": "fake"}, "rejected: fake"),
    ("cancelled", {"serial": "S1", "reason": "declined"}, "cancelled: declined"),
])
def test_timeline_texts_of_every_kind(ctx, kind, data, text):
    from rma.services.rmas import TIMELINE_TEXTS

    assert text in TIMELINE_TEXTS[kind](data, "x")


def test_packing_slip_data_of_a_shipped_item(ctx, world):
    number, item_id = to_state(ctx, "confirmed", world=world)
    with pytest.raises(ConflictError):
        wh.packing_slip_data(item(item_id))
    wh.ship(actor("wendy"), item_id, "TK3-SP0001", "SF Express", "SF1")
    data = wh.packing_slip_data(item(item_id))
    assert (data.rma_number, data.customer_name, data.replacement_serial, data.returned_serial,
            data.kind, data.shipped_on, data.unit_due_back_on, data.replacement_model) == (
        number, "Acme Bank", "TK3-SP0001", "TK3-A0001", "replacement", date(2026, 11, 25),
        date(2026, 12, 9), "TK3 token")
    from rma.documents.packing_slip import render_packing_slip

    assert render_packing_slip(data).startswith(b"%PDF")


def test_the_whole_journey_with_an_unexpected_unit_and_a_double_scan(ctx, world):
    number, (remote_id, inspected_id) = open_items("TK3-A0001", "TK3-A0002", world=world)
    wh.confirm_remote(actor("sam"), remote_id, "quality_defect", "remote diag")
    wh.request_unit(actor("sam"), inspected_id)
    at(ctx, NOW + timedelta(hours=2))
    wh.ship(actor("wendy"), remote_id, "TK3-SP0001", "SF", "A")  # advance replacement
    at(ctx, NOW + timedelta(hours=20))
    assert wh.scan(actor("wendy"), number).outcome == "opened_rma"
    assert wh.scan(actor("wendy"), "TK3-A0002", rma_number=number).outcome == "received"
    assert wh.scan(actor("wendy"), "TK3-B0003", rma_number=number).outcome == "unexpected"
    assert wh.scan(actor("wendy"), "TK3-A0002", rma_number=number).outcome == \
        "already_received"
    assert wh.scan(actor("wendy"), "TK3-A0001", rma_number=number).outcome == "received"
    wh.inspect(actor("wendy"), inspected_id, "quality_defect")
    wh.ship(actor("wendy"), inspected_id, "TK3-SP0002", "SF", "B")
    at(ctx, NOW + timedelta(hours=40))
    first = wh.deliver(actor("wendy"), remote_id, NOW + timedelta(hours=30), "Li")
    second = wh.deliver(actor("wendy"), inspected_id, NOW + timedelta(hours=39), "Li")
    assert (first.within_target, first.hours, first.closed) == (True, 30.0, True)
    assert (second.within_target, second.hours, second.closed) == (True, 19.0, True)
    rma = db.session.scalar(select(Rma).where(Rma.number == number))
    assert rma.status == RmaStatus.CLOSED
    assert count(ScanEvent) == 5
