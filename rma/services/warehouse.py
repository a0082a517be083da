"""Triage, scan-driven receiving, inspection, replacement shipping and the 72-hour clock
(issue 4: R-W3..R-W5, R-R3, R-R4, D-1..D-4, D-6).

The rules are ``warranty``'s: the item lifecycle (``warranty.lifecycle``), the free/paid
decision on the coverage at the **report** date (``warranty.decide``) and the
replacement clock (``warranty.replacement``). This module loads the facts, asks the
rules, stores the answer and writes, in one transaction per use case, the change, an
``AuditEvent`` (R-R4), the customer's timeline event (``RmaEvent``, plain words, no staff
notes) and commits once. A refused action changes nothing:

- an action the item's state does not allow → :class:`TransitionError` (409) naming the
  current state;
- a role that may not do it → ``ForbiddenError`` (403), checked on the server;
- bad input → ``ValidationError`` (422) with ``field``; an unknown item → ``NotFoundError``.

Roles (``ACTION_ROLES``): triage (confirm remotely, ask for the unit, reject, cancel)
support/manager/admin; scan, receive and ship warehouse/manager/admin; deliver also
support; inspect support/warehouse/manager/admin; override manager only (D-6); release
on credit finance only (D-3; a paid invoice releases its items itself, issue 5). An
actor without a user (the CLI) is the system and may act.

Two stations shipping the same spare at the same moment: the spare is claimed with one
conditional ``UPDATE ... WHERE status = 'in_stock'``; exactly one wins, the other gets a
``ConflictError`` naming the RMA the spare went to.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from flask import current_app
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import and_, exists, func, or_, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import joinedload, selectinload
from sqlalchemy.orm.attributes import set_committed_value

from rma import clock
from rma.extensions import db
from rma.models import (
    FINAL_ITEM_STATUSES,
    Customer,
    ItemStatus,
    ProductModel,
    Rma,
    RmaEvent,
    RmaItem,
    RmaPhoto,
    RmaStatus,
    Role,
    ScanEvent,
    Shipment,
    Unit,
    UnitStatus,
    User,
)
from rma.policy import current_policy
from rma.services import (
    ConflictError,
    ForbiddenError,
    NotFoundError,
    ValidationError,
    clean_text,
    transaction,
)
from rma.services.audit import Actor, record
from rma.services.photos import PhotoError, check_photo
from rma.services.quotes import sync_rma_quote
from rma.services.rmas import (
    PER_PAGE_MAX,
    TIMELINE_TEXTS,
    PhotoInput,
    RmaPage,
    preload_chains,
    submitted_on,
)
from warranty import (
    Action,
    Cause,
    ClockRecord,
    ClockState,
    Decision,
    IllegalTransition,
    ItemFacts,
    ItemState,
    MonthFigures,
    Outcome,
    SerialError,
    allowed_actions,
    apply,
    clock_starts,
    clock_state,
    coverage,
    decide,
    hours_between,
    is_unit_overdue,
    monthly_figures,
    normalize_serial,
    replacement_due,
    report_date,
    unit_return_deadline,
)

NOTE_MAX = 2000
CARRIER_MAX = 100
TRACKING_MAX = 100
RECEIVED_BY_MAX = 200
STATION_MAX = 64
CODE_MAX = 100  # ScanEvent.code
REPORT_MONTHS_MAX = 120
_SHOWN_MAX = 40
# An RMA label: "RMA-2026-000042"; scanners or people may drop the "RMA-" text.
_RMA_CODE = re.compile(r"(RMA-)?([0-9]{4}-[0-9]{6})")

# -- roles (server-side) ----------------------------------------------------------------
_TRIAGE = frozenset({Role.SUPPORT, Role.MANAGER, Role.ADMIN})
_WAREHOUSE = frozenset({Role.WAREHOUSE, Role.MANAGER, Role.ADMIN})
_STAFF = frozenset(Role) - {Role.CUSTOMER}
ACTION_ROLES: dict[str, frozenset[Role]] = {
    "view": _STAFF,
    "triage": _TRIAGE,
    "confirm_remote": _TRIAGE,
    "request_unit": _TRIAGE,
    "reject": _TRIAGE,
    "cancel": _TRIAGE,
    "scan": _WAREHOUSE,
    "receive": _WAREHOUSE,
    "inspect": frozenset({Role.SUPPORT, Role.WAREHOUSE, Role.MANAGER, Role.ADMIN}),
    "override": frozenset({Role.MANAGER}),  # D-6
    "release": frozenset({Role.FINANCE}),  # D-3: on credit, finance only (issue 5)
    "ship": _WAREHOUSE,
    "deliver": _WAREHOUSE | {Role.SUPPORT},
}

# What staff read for an item's state ("... while the item is <state>").
STATE_WORDS = {
    ItemStatus.SUBMITTED.value: _l("submitted"),
    ItemStatus.AWAITING_UNIT.value: _l("waiting for the unit"),
    ItemStatus.RECEIVED.value: _l("received"),
    ItemStatus.CONFIRMED.value: _l("confirmed"),
    ItemStatus.WAITING_PAYMENT.value: _l("waiting for payment"),
    ItemStatus.RELEASED.value: _l("released"),
    ItemStatus.SHIPPED.value: _l("shipped"),
    ItemStatus.DELIVERED.value: _l("delivered"),
    ItemStatus.CLOSED.value: _l("closed"),
    ItemStatus.CANCELLED.value: _l("cancelled"),
    ItemStatus.REJECTED.value: _l("rejected"),
}
ACTION_WORDS = {
    "view": _l("see the warehouse pages"),
    "triage": _l("triage RMAs"),
    Action.REQUEST_UNIT.value: _l("ask for the unit"),
    Action.CONFIRM_REMOTE.value: _l("confirm the fault remotely"),
    Action.RECEIVE.value: _l("receive the unit"),
    Action.CONFIRM.value: _l("record an inspection"),
    "inspect": _l("record an inspection"),
    "scan": _l("scan at a station"),
    Action.OVERRIDE.value: _l("override the decision"),
    Action.RELEASE.value: _l("release it for shipping"),
    Action.SHIP.value: _l("ship"),
    Action.DELIVER.value: _l("record a delivery"),
    Action.CLOSE.value: _l("close it"),
    Action.CANCEL.value: _l("cancel it"),
    Action.REJECT.value: _l("reject it"),
}
# D-4, in plain words for sentences ("damage from unreasonable use (dropped)").
CAUSE_WORDS = {
    Cause.QUALITY_DEFECT.value: _l("a quality defect"),
    Cause.MISUSE_DROP.value: _l("dropped"),
    Cause.MISUSE_HEAT.value: _l("high temperature"),
    Cause.MISUSE_WATER.value: _l("water"),
    Cause.MISUSE_PHYSICAL.value: _l("crushed or otherwise physically damaged"),
    Cause.MISUSE_OTHER.value: _l("other abnormal use"),
    Cause.NO_FAULT_FOUND.value: _l("no fault found"),
}
CLOCK_WORDS = {
    ClockState.ON_TRACK.value: _l("On track"),
    ClockState.AT_RISK.value: _l("At risk"),
    ClockState.BREACHED.value: _l("Breached"),
    ClockState.MET.value: _l("Delivered within target"),
    ClockState.MISSED.value: _l("Delivered late"),
}
OPEN_STATES = (ClockState.ON_TRACK.value, ClockState.AT_RISK.value, ClockState.BREACHED.value)
# Items whose replacement clock can be running (confirmed or released, not yet delivered).
CLOCK_RUNNING_STATUSES = (ItemStatus.CONFIRMED, ItemStatus.RELEASED, ItemStatus.SHIPPED)
TRIAGE_STATUSES = (ItemStatus.SUBMITTED, ItemStatus.AWAITING_UNIT)
_SHIPMENT_STATUSES = frozenset({ItemStatus.SHIPPED, ItemStatus.DELIVERED, ItemStatus.CLOSED})
SCAN_OUTCOMES = ("opened_rma", "received", "already_received", "unexpected", "found_rma",
                 "unknown", "malformed", "refused")
# Outcomes the scan station shows as a loud warning (colour and sound).
WARNING_OUTCOMES = frozenset({"already_received", "unexpected", "unknown", "malformed",
                              "refused"})


# -- errors and answers -----------------------------------------------------------------
class TransitionError(ConflictError):
    """The item's state does not allow the action (409). ``state`` and ``action`` are the
    lifecycle's values; the message names the current state in words."""

    def __init__(self, item: RmaItem, error: IllegalTransition):
        self.state = str(error.state)
        self.action = str(error.action)
        message = _("%(serial)s: cannot %(action)s while the item is %(state)s.",
                    serial=item.serial, action=ACTION_WORDS.get(self.action, self.action),
                    state=STATE_WORDS.get(self.state, self.state))
        hint = _transition_hint(item, self.state, self.action)
        super().__init__(f"{message} {hint}" if hint else message)


def _transition_hint(item: RmaItem, state: str, action: str) -> str:
    if action == Action.SHIP and state == ItemStatus.WAITING_PAYMENT:
        return _("A paid replacement ships only once finance releases it (D-3).")
    if action == Action.CLOSE:
        return _("The faulty unit has not come back yet (D-2).")
    if action == Action.RECEIVE and item.unit_received_at is not None:
        return _("The unit was already received.")
    if state in {s.value for s in FINAL_ITEM_STATUSES}:
        return _("The item is final: nothing more can be done with it.")
    return ""


@dataclass(frozen=True)
class ScanResult:
    """What one scan did. ``outcome`` is one of ``SCAN_OUTCOMES``; ``message`` is
    translated; ``previous`` is the scan that received the unit (``already_received``)."""

    outcome: str
    rma: Rma | None
    item: RmaItem | None
    message: str
    previous: ScanEvent | None = None
    serial: str | None = None
    code: str = ""

    @property
    def is_warning(self) -> bool:
        """True when the station must warn loudly (colour and sound)."""
        return self.outcome in WARNING_OUTCOMES


@dataclass(frozen=True)
class DeliveryResult:
    """``within_target``/``hours`` are None when no clock ran (no fault found, D-4)."""

    item: RmaItem
    within_target: bool | None
    hours: float | None
    closed: bool = False


@dataclass(frozen=True)
class UnitHistory:
    """``chain``: the original unit → … → this one; ``items``: RMA items of every unit of
    the chain, oldest first (the current item included; compare ids to skip it)."""

    chain: list[Unit]
    items: list[RmaItem]


@dataclass(frozen=True)
class ReplacementRow:
    item: RmaItem
    rma: Rma
    customer: Customer
    due_at: datetime
    clock_state: ClockState
    hours_left: float  # negative once breached


@dataclass(frozen=True)
class ReplacementPage:
    rows: list[ReplacementRow]
    total: int
    page: int
    per_page: int
    pages: int


@dataclass(frozen=True)
class Breach:
    """A replacement delivered late, or still open past its due time (R-R3)."""

    item: RmaItem
    hours_late: float
    reason: str
    delivered: bool = True


@dataclass(frozen=True)
class MonthlyReport:
    figures: list[MonthFigures]
    breaches: list[Breach]
    since: datetime  # the start of the first month counted (aware UTC)


# -- small helpers ------------------------------------------------------------------------
def _shown(text: str) -> str:
    cut = text if len(text) <= _SHOWN_MAX else text[:_SHOWN_MAX] + "..."
    return repr(cut)


def local_text(moment: datetime | None, *, now: datetime | None = None) -> str:
    """An instant in China time: "14:02" today, "2026-11-24 14:02" another day."""
    if moment is None:
        return ""
    local = clock.to_local(moment)
    today = clock.to_local(now or clock.now()).date()
    return local.strftime("%H:%M") if local.date() == today else local.strftime(
        "%Y-%m-%d %H:%M")


def _local_full(moment: datetime) -> str:
    return clock.to_local(moment).strftime("%Y-%m-%d %H:%M")


def from_local(moment: datetime) -> datetime:
    """A naive date and time typed in China time (a form's ``datetime-local``) as an
    aware instant; an aware one is returned unchanged."""
    if moment.tzinfo is not None and moment.utcoffset() is not None:
        return moment
    return moment.replace(tzinfo=clock.local_zone())


def may(user: User | None, action: str) -> bool:
    """True when ``user`` may do ``action`` (a key of ``ACTION_ROLES``): for pages that
    show only the buttons a user can use. The services check again."""
    if user is None or not getattr(user, "is_authenticated", True):
        return False
    roles = ACTION_ROLES.get(action)
    return roles is not None and user.is_active and Role(user.role) in roles


def ensure_allowed(actor: Actor, action: str) -> None:
    """Raise ``ForbiddenError`` unless the actor's role may do ``action``. An actor with
    no user is the system (the CLI) and may act."""
    user = actor.user
    if user is None:
        return
    if not may(user, action):
        raise ForbiddenError(_("Your role (%(role)s) may not %(action)s.",
                               role=str(user.role), action=ACTION_WORDS.get(action, action)))


def _cause(raw: object) -> Cause:
    text = raw.strip().lower() if isinstance(raw, str) else ""
    if not text:
        raise ValidationError(_("Choose the cause of the fault."), "cause")
    try:
        return Cause(text)
    except ValueError:
        raise ValidationError(_("%(value)s is not a cause; use one of: %(causes)s.",
                                value=_shown(str(raw)),
                                causes=", ".join(c.value for c in Cause)), "cause") from None


def _serial(raw: object, field: str) -> str:
    text = raw.strip() if isinstance(raw, str) else ""
    if not text:
        raise ValidationError(_("Enter or scan the serial number."), field)
    try:
        return normalize_serial(text, current_policy())
    except SerialError:
        raise ValidationError(_("%(serial)s is not a valid serial number.",
                                serial=_shown(text)), field) from None


def _user_id(actor: Actor) -> int | None:
    return actor.user.id if actor.user is not None else None


def _locked_item(item_id: object) -> RmaItem:
    """The item, locked for this transaction (PostgreSQL ``FOR UPDATE``) and read fresh,
    so two requests on one item run one after the other."""
    try:
        key = int(item_id)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        key = None
    item = None
    if key is not None:
        item = db.session.scalar(
            select(RmaItem).where(RmaItem.id == key).with_for_update(of=RmaItem)
            .execution_options(populate_existing=True))
    if item is None:
        raise NotFoundError(_("There is no such RMA item."), "item")
    return item


def find_item(rma_number: str, serial: str) -> RmaItem:
    """The item of RMA ``rma_number`` for ``serial`` (D-8 normalised), or
    ``NotFoundError``. For staff callers only: it does not scope by customer."""
    number = (rma_number or "").strip().upper()[:64] if isinstance(rma_number, str) else ""
    try:
        wanted = normalize_serial(serial, current_policy()) if isinstance(serial, str) else ""
    except SerialError:
        wanted = ""
    item = None
    if number and wanted:
        item = db.session.scalar(
            select(RmaItem).join(Rma, Rma.id == RmaItem.rma_id)
            .where(Rma.number == number, RmaItem.serial == wanted)
            .options(joinedload(RmaItem.rma)))
    if item is None:
        raise NotFoundError(_("RMA %(number)s has no item %(serial)s.",
                              number=number or "-", serial=wanted or _shown(str(serial))),
                            "serial")
    return item


def _rma_by_number(rma_number: str) -> Rma:
    number = rma_number.strip().upper()[:64] if isinstance(rma_number, str) else ""
    rma = db.session.scalar(select(Rma).where(Rma.number == number)) if number else None
    if rma is None:
        raise NotFoundError(_("There is no RMA %(number)s.", number=number or "-"), "rma")
    return rma


def _facts(item: RmaItem) -> ItemFacts:
    return ItemFacts(
        state=ItemState(str(item.status)),
        outcome=Outcome(item.decision) if item.decision else None,
        unit_received=item.unit_received_at is not None,
        remote=bool(item.remote_confirmation),
    )


def _transition(item: RmaItem, action: Action, outcome: Outcome | None = None) -> ItemState:
    try:
        return apply(_facts(item), action, outcome=outcome)
    except IllegalTransition as error:
        raise TransitionError(item, error) from None


def _set_state(item: RmaItem, state: ItemState, now: datetime) -> None:
    status = ItemStatus(state.value)
    if item.status != status:
        item.status = status
        item.status_changed_at = now
    if status in FINAL_ITEM_STATUSES:
        item.open_unit_id = None  # the unit may be submitted again
        item.closed_at = now


def _sync_rma(rma: Rma, now: datetime) -> None:
    """The RMA is closed once every item is final (cancelled when all were cancelled)."""
    statuses = {item.status for item in rma.items}
    if statuses and statuses <= FINAL_ITEM_STATUSES:
        wanted = RmaStatus.CANCELLED if statuses == {ItemStatus.CANCELLED} else RmaStatus.CLOSED
    else:
        wanted = RmaStatus.OPEN
    if rma.status != wanted:
        rma.status = wanted
    rma.updated_at = now


def _close_if_done(item: RmaItem, actor: Actor, now: datetime) -> bool:
    """Close a delivered item when the lifecycle allows (unit back, or nothing was to come
    back); returns True when it closed."""
    if item.status != ItemStatus.DELIVERED or Action.CLOSE not in allowed_actions(_facts(item)):
        return False
    _set_state(item, apply(_facts(item), Action.CLOSE), now)
    _event(item, "closed", actor, now)
    return True


def _event(item: RmaItem, kind: str, actor: Actor, now: datetime, /, **data) -> None:
    db.session.add(RmaEvent(
        rma_id=item.rma_id, item_id=item.id, at=now, kind=kind, actor_id=_user_id(actor),
        actor_label=actor.label, data={"serial": item.serial, **data}))


def _iso(value: date | datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _snapshot(item: RmaItem) -> dict:
    """The item's audited state (R-R4)."""
    return {
        **item.as_audit(),
        "rma": item.rma.number,
        "computed_decision": item.computed_decision,
        "decision_rule": item.decision_rule,
        "cause_notes": item.cause_notes,
        "remote_confirmation": bool(item.remote_confirmation),
        "confirmed_at": _iso(item.confirmed_at),
        "clock_started_at": _iso(item.clock_started_at),
        "unit_received_at": _iso(item.unit_received_at),
        "unit_due_back_on": _iso(item.unit_due_back_on),
        "released_at": _iso(item.released_at),
        "override_reason": item.override_reason,
        "rejected_reason": item.rejected_reason,
        "breach_reason": item.breach_reason,
        "closed_at": _iso(item.closed_at),
    }


def _audit(actor: Actor, action: str, item: RmaItem, before: dict | None, **extra) -> None:
    record(actor, action, "rma_item", item.id, before, {**_snapshot(item), **extra})


# -- the decision (R-W3..R-W5, D-4) -------------------------------------------------------
def _decide(item: RmaItem, cause: Cause) -> Decision:
    """The decision on the unit's coverage at the REPORT date (China date of submission),
    not the inspection date (SPEC "Warranty")."""
    policy = current_policy()
    on = report_date(item.rma.submitted_at, policy)
    preload_chains([item.unit])
    return decide(cause, coverage(item.unit.facts(), on, policy))


def _store_decision(item: RmaItem, cause: Cause, notes: str, decision: Decision,
                    actor: Actor, now: datetime) -> None:
    item.cause = cause.value
    item.cause_notes = notes
    item.computed_decision = decision.outcome.value
    item.decision = decision.outcome.value
    item.decision_rule = decision.rule
    item.decision_reason = decision.explanation
    item.confirmed_at = now
    item.confirmed_by_id = _user_id(actor)


def _start_clock(item: RmaItem, now: datetime) -> None:
    """R-R3: due = start + 72 calendar hours (D-7)."""
    item.clock_started_at = now
    item.due_at = replacement_due(now, current_policy())
    item.at_risk_notified_at = None


def _stop_clock(item: RmaItem) -> None:
    item.clock_started_at = None
    item.due_at = None
    item.at_risk_notified_at = None


def decision_text(item: RmaItem) -> str:
    """The rule the decision applied, in words in the current language (for pages)."""
    rule = item.decision_rule
    on = submitted_on(item.rma).isoformat()
    end = item.warranty_end_on.isoformat() if item.warranty_end_on else None
    if rule == "R-W3":
        return _("A quality defect within warranty is replaced free of charge (R-W3): "
                 "reported on %(on)s, last covered day %(end)s.", on=on, end=end or "-")
    if rule == "R-W4":
        return _("Damage from unreasonable use (%(cause)s) is replaced for a fee, in or out "
                 "of warranty (R-W4).",
                 cause=CAUSE_WORDS.get(item.cause or "", item.cause or "-"))
    if rule == "R-W5":
        if end is None:
            return _("No warranty is recorded for this unit, so the replacement is paid "
                     "(R-W5).")
        return _("The unit was out of warranty when the fault was reported on %(on)s (last "
                 "covered day %(end)s), so the replacement is paid (R-W5).", on=on, end=end)
    if rule == "D-4":
        return _("No fault was found: nothing is replaced and the unit goes back to the "
                 "customer (D-4).")
    if rule == "quote_declined":
        return _("The customer declined the quote for the paid replacement: the unit goes "
                 "back unrepaired.")
    return ""


# -- triage (D-1) -----------------------------------------------------------------------
def triage_queue(page: int = 1, per_page: int = 20) -> RmaPage:
    """RMAs with an item still to triage (submitted or waiting for the unit), oldest
    first, with customer, items, units and their replacement chains loaded (a constant
    number of queries whatever the page holds)."""
    waiting = exists().where(RmaItem.rma_id == Rma.id, RmaItem.status.in_(TRIAGE_STATUSES))
    stmt = select(Rma).where(waiting)
    per_page = min(max(int(per_page), 1), PER_PAGE_MAX)
    total = db.session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    pages = max(1, math.ceil(total / per_page))
    page = max(int(page), 1)
    rows = db.session.scalars(
        stmt.options(joinedload(Rma.customer),
                     selectinload(Rma.items).options(joinedload(RmaItem.unit)))
        .order_by(Rma.submitted_at.asc(), Rma.id.asc())
        .offset((page - 1) * per_page).limit(per_page)
    ).unique().all()
    preload_chains([item.unit for rma in rows for item in rma.items])
    return RmaPage(list(rows), total, page, per_page, pages)


def unit_histories(units: Sequence[Unit]) -> dict[int, UnitHistory]:
    """:func:`unit_history` of many units in two queries plus one per chain level."""
    units = list(units)
    preload_chains(units)
    chains: dict[int, list[Unit]] = {}
    for unit in units:
        chain = [unit]
        while chain[-1].replaces is not None and len(chain) <= 51:
            chain.append(chain[-1].replaces)
        chains[unit.id] = list(reversed(chain))
    ids = {u.id for chain in chains.values() for u in chain}
    found = db.session.scalars(
        select(RmaItem).join(Rma, Rma.id == RmaItem.rma_id)
        .where(RmaItem.unit_id.in_(ids))
        .options(joinedload(RmaItem.rma))
        .order_by(Rma.submitted_at.asc(), RmaItem.id.asc())
    ).unique().all() if ids else []
    histories = {}
    for unit_id, chain in chains.items():
        members = {u.id for u in chain}
        histories[unit_id] = UnitHistory(
            chain=chain, items=[i for i in found if i.unit_id in members])
    return histories


def unit_history(unit: Unit) -> UnitHistory:
    """The unit's replacement chain (original → … → this) and the RMA items of every unit
    in it: what support sees before deciding."""
    return unit_histories([unit])[unit.id]


def confirm_remote(actor: Actor, item_id: int, cause: str, notes: str = "") -> RmaItem:
    """Support confirms the fault remotely (D-1): the decision is computed from the cause
    and the coverage at the report date; a free replacement starts the 72-hour clock now
    (R-R3) and may ship before the faulty unit is back (advance replacement, D-2); a paid
    one waits for payment (D-3). ``no_fault_found`` needs the unit: 422."""
    ensure_allowed(actor, "confirm_remote")
    wanted = _cause(cause)
    notes = clean_text(notes, "notes", NOTE_MAX)
    if wanted is Cause.NO_FAULT_FOUND:
        raise ValidationError(_("No fault found cannot be confirmed remotely: ask for the "
                                "unit back instead (D-4)."), "cause")
    with transaction():
        item = _locked_item(item_id)
        decision = _decide(item, wanted)
        state = _transition(item, Action.CONFIRM_REMOTE, decision.outcome)
        before = _snapshot(item)
        now = clock.now()
        _store_decision(item, wanted, notes, decision, actor, now)
        item.remote_confirmation = True
        if clock_starts(Action.CONFIRM_REMOTE, decision.outcome,
                        clock_started=item.clock_started_at is not None):
            _start_clock(item, now)
        _set_state(item, state, now)
        item.rma.updated_at = now
        _event(item, "confirmed", actor, now, remote=True, decision=item.decision,
               due_at=_iso(item.due_at))
        sync_rma_quote(item.rma, actor, now)  # a paid decision is quoted (issue 5)
        _audit(actor, "rma_item.confirmed_remote", item, before)
    return item


def request_unit(actor: Actor, item_id: int, notes: str = "") -> RmaItem:
    """Support asks for the unit back before deciding (D-1); the clock starts on the
    confirmation after inspection. ``notes`` are staff-internal (audit only)."""
    ensure_allowed(actor, "request_unit")
    notes = clean_text(notes, "notes", NOTE_MAX)
    with transaction():
        item = _locked_item(item_id)
        state = _transition(item, Action.REQUEST_UNIT)
        before = _snapshot(item)
        now = clock.now()
        _set_state(item, state, now)
        item.rma.updated_at = now
        _event(item, "unit_requested", actor, now)
        _audit(actor, "rma_item.unit_requested", item, before, notes=notes)
    return item


def reject_item(actor: Actor, item_id: int, reason: str) -> RmaItem:
    """Reject an item with a reason the customer reads (final); the unit may then be
    submitted again."""
    ensure_allowed(actor, "reject")
    reason = clean_text(reason, "reason", NOTE_MAX,
                        required=_("Give the reason for the rejection."))
    with transaction():
        item = _locked_item(item_id)
        state = _transition(item, Action.REJECT)
        before = _snapshot(item)
        now = clock.now()
        item.rejected_reason = reason
        _set_state(item, state, now)
        _sync_rma(item.rma, now)
        _event(item, "rejected", actor, now, reason=reason)
        sync_rma_quote(item.rma, actor, now)
        _audit(actor, "rma_item.rejected", item, before)
    return item


def cancel_item(actor: Actor, item_id: int, reason: str) -> RmaItem:
    """Cancel an item (e.g. the customer declined the paid quote) with a reason the
    customer reads (final); a running clock no longer counts."""
    ensure_allowed(actor, "cancel")
    reason = clean_text(reason, "reason", NOTE_MAX,
                        required=_("Give the reason for the cancellation."))
    with transaction():
        item = _locked_item(item_id)
        state = _transition(item, Action.CANCEL)
        before = _snapshot(item)
        now = clock.now()
        _set_state(item, state, now)
        _sync_rma(item.rma, now)
        _event(item, "cancelled", actor, now, reason=reason)
        sync_rma_quote(item.rma, actor, now)  # off the quote (superseded or withdrawn)
        _audit(actor, "rma_item.cancelled", item, before, cancel_reason=reason)
    return item


# -- the scan station -------------------------------------------------------------------
def _scan_event(actor: Actor, now: datetime, station: str, code: str, outcome: str,
                serial: str | None = None, rma: Rma | None = None,
                item: RmaItem | None = None) -> None:
    db.session.add(ScanEvent(
        at=now, user_id=_user_id(actor), station=station, code=code[:CODE_MAX],
        serial=serial, rma_id=rma.id if rma is not None else None,
        item_id=item.id if item is not None else None, outcome=outcome))


def scan(actor: Actor, code: str, *, rma_number: str | None = None, station: str = ""
         ) -> ScanResult:
    """One code from a scanner (typed, then Enter). Every scan is recorded (``ScanEvent``).

    - an RMA label (``RMA-2026-000042``, with or without ``RMA-``, any case) → opened_rma;
    - with an RMA open at the station (``rma_number``), a serial on it → received (the
      unit is back: ``unit_received_at``, unit status returned) or already_received
      ("already received at 14:02 by ...", nothing changes), or refused when the item's
      state allows no receipt; a serial not on it → unexpected (recorded on the RMA's
      timeline; nothing else changes);
    - without an RMA, a serial → found_rma (its open RMA) or unknown;
    - anything else → malformed, showing what was read (D-8).

    ``NotFoundError`` when ``rma_number`` (not empty) names no RMA (nothing recorded)."""
    ensure_allowed(actor, "scan")
    return _scan(actor, code, rma_number, station, labels=True)


def receive(actor: Actor, rma_number: str, serial: str) -> ScanResult:
    """Receive ``serial`` for RMA ``rma_number``: :func:`scan` of a serial with the RMA at
    hand (outcomes received, already_received, unexpected, refused, malformed)."""
    ensure_allowed(actor, "receive")
    return _scan(actor, serial, rma_number, "api", labels=False)


def _scan(actor: Actor, code: object, rma_number: str | None, station: object,
          labels: bool) -> ScanResult:
    text = code.strip() if isinstance(code, str) else ""
    station = station.strip()[:STATION_MAX] if isinstance(station, str) else ""
    with transaction():
        held = rma_number.strip() if isinstance(rma_number, str) else ""
        rma = _rma_by_number(held) if held else None
        now = clock.now()

        def done(outcome, message, serial=None, at_rma=None, item=None, previous=None):
            _scan_event(actor, now, station, text, outcome, serial, at_rma, item)
            return ScanResult(outcome, at_rma, item, message, previous, serial, text)

        if not text:
            return done("malformed", _("Nothing was read: scan again."), at_rma=rma)
        match = _RMA_CODE.fullmatch(text.upper()) if labels else None
        if match is not None:
            number = "RMA-" + match.group(2)
            found = db.session.scalar(select(Rma).where(Rma.number == number))
            if found is not None:
                return done("opened_rma", _("RMA %(number)s is open: scan its units.",
                                            number=number), at_rma=found)
            if match.group(1):
                return done("unknown", _("There is no RMA %(number)s.", number=number),
                            at_rma=rma)
        try:
            serial = normalize_serial(text, current_policy())
        except SerialError:
            return done("malformed", _(
                "%(code)s is not an RMA number or a valid serial number.",
                code=_shown(text)), at_rma=rma)
        if rma is None:
            return _find(done, serial)
        item = db.session.scalar(
            select(RmaItem).where(RmaItem.rma_id == rma.id, RmaItem.serial == serial)
            .with_for_update(of=RmaItem).execution_options(populate_existing=True))
        if item is None:
            _unexpected(actor, rma, serial, now)
            message = _("%(serial)s is NOT on %(number)s. Put it aside: it was recorded as "
                        "an unexpected unit.", serial=serial, number=rma.number)
            elsewhere = db.session.scalar(
                select(Rma.number).join(RmaItem, RmaItem.rma_id == Rma.id)
                .where(RmaItem.serial == serial, RmaItem.open_unit_id.is_not(None)).limit(1))
            if elsewhere is not None:
                message += " " + _("It is on open RMA %(number)s.", number=elsewhere)
            return done("unexpected", message, serial, rma)
        if item.unit_received_at is not None:
            who = db.session.get(User, item.unit_received_by_id) \
                if item.unit_received_by_id is not None else None
            previous = db.session.scalar(
                select(ScanEvent).where(ScanEvent.serial == serial,
                                        ScanEvent.rma_id == rma.id,
                                        ScanEvent.outcome == "received")
                .order_by(ScanEvent.id.desc()).limit(1))
            return done("already_received", _(
                "%(serial)s was already received at %(time)s by %(who)s. Nothing was "
                "changed.", serial=serial, time=local_text(item.unit_received_at, now=now),
                who=who.email if who is not None else _("the system")),
                serial, rma, item, previous)
        try:
            state = _transition(item, Action.RECEIVE)
        except TransitionError as error:
            return done("refused", error.message, serial, rma, item)
        _mark_received(actor, item, state, now)
        return done("received", _("%(serial)s received (line %(line)d of %(number)s).",
                                  serial=serial, line=item.line_no, number=rma.number),
                    serial, rma, item)


def _find(done, serial: str) -> ScanResult:
    item = db.session.scalar(
        select(RmaItem).where(RmaItem.serial == serial, RmaItem.open_unit_id.is_not(None))
        .options(joinedload(RmaItem.rma)).limit(1))
    if item is not None:
        return done("found_rma", _("%(serial)s is on open RMA %(number)s.", serial=serial,
                                   number=item.rma.number), serial, item.rma, item)
    known = db.session.scalar(select(Unit.id).where(Unit.serial == serial))
    if known is None:
        return done("unknown", _("%(serial)s is not a known serial number.", serial=serial),
                    serial)
    return done("unknown", _("%(serial)s is not on any open RMA.", serial=serial), serial)


def _unexpected(actor: Actor, rma: Rma, serial: str, now: datetime) -> None:
    db.session.add(RmaEvent(rma_id=rma.id, at=now, kind="unexpected_unit",
                            actor_id=_user_id(actor), actor_label=actor.label,
                            data={"serial": serial}))
    record(actor, "rma.unexpected_unit", "rma", rma.number, None, {"serial": serial})


def _mark_received(actor: Actor, item: RmaItem, state: ItemState, now: datetime) -> None:
    unit = item.unit  # loaded before any change, so no early flush
    before = _snapshot(item)
    unit_before = unit.as_audit()
    item.unit_received_at = now
    item.unit_received_by_id = _user_id(actor)
    if unit.status == UnitStatus.IN_SERVICE:
        unit.status = UnitStatus.RETURNED  # a replaced unit (advance replacement) stays so
    _set_state(item, state, now)
    _event(item, "received", actor, now)
    closed = _close_if_done(item, actor, now)
    if closed:
        _sync_rma(item.rma, now)
    else:
        item.rma.updated_at = now
    _audit(actor, "rma_item.received", item, before, unit_before=unit_before,
           unit_after=unit.as_audit())


# -- inspection, override, release (R-W3..R-W5, D-3, D-4, D-6) ---------------------------
def inspect(actor: Actor, item_id: int, cause: str, notes: str = "",
            photos: Sequence[PhotoInput] = ()) -> RmaItem:
    """Record the inspection of a received unit: the cause (D-4), notes, photos. The
    decision is computed from the coverage at the report date: free (R-W3) starts the
    72-hour clock; paid (R-W4, R-W5) waits for payment (D-3); no fault found returns the
    unit, no clock (D-4)."""
    ensure_allowed(actor, "inspect")
    wanted = _cause(cause)
    notes = clean_text(notes, "notes", NOTE_MAX)
    photos = list(photos or ())
    limit = current_app.config["PHOTOS_PER_ITEM"]
    if len(photos) > limit:
        raise ValidationError(_("At most %(num)d photos at a time.", num=limit), "photos")
    checked = []
    for photo in photos:
        try:
            checked.append(check_photo(photo.filename, photo.data))
        except PhotoError as error:
            raise ValidationError(error.message, "photos") from None
    with transaction():
        item = _locked_item(item_id)
        decision = _decide(item, wanted)
        state = _transition(item, Action.CONFIRM, decision.outcome)
        before = _snapshot(item)
        now = clock.now()
        _store_decision(item, wanted, notes, decision, actor, now)
        if clock_starts(Action.CONFIRM, decision.outcome,
                        clock_started=item.clock_started_at is not None):
            _start_clock(item, now)
        for photo in checked:
            item.photos.append(RmaPhoto(
                filename=f"inspection-{photo.filename}"[:200], content_type=photo.content_type,
                size=photo.size, sha256=photo.sha256, data=photo.data, uploaded_at=now))
        _set_state(item, state, now)
        item.rma.updated_at = now
        _event(item, "confirmed", actor, now, remote=False, decision=item.decision,
               due_at=_iso(item.due_at))
        sync_rma_quote(item.rma, actor, now)  # a paid decision is quoted (issue 5)
        _audit(actor, "rma_item.inspected", item, before,
               photos=[p.sha256 for p in checked])
    return item


def override_decision(actor: Actor, item_id: int, outcome: str, reason: str) -> RmaItem:
    """A manager turns free into paid or paid into free, with a reason (D-6). Paid → free
    on an item waiting for payment starts the clock now; free → paid stops a running clock
    (nothing has shipped: a shipped item cannot be overridden). A no-fault-found item
    may be turned into a free or paid replacement the same way (the lifecycle allows it).
    Recorded: reason, who, when, the audit's before/after; the computed decision and its
    rule stay as they were."""
    ensure_allowed(actor, "override")
    text = outcome.strip().lower() if isinstance(outcome, str) else ""
    if text not in (Outcome.FREE.value, Outcome.PAID.value):
        raise ValidationError(_("The new decision must be free or paid (D-6)."), "outcome")
    wanted = Outcome(text)
    reason = clean_text(reason, "reason", NOTE_MAX,
                        required=_("Give the reason for the override (D-6)."))
    with transaction():
        item = _locked_item(item_id)
        if item.decision == wanted.value and item.status in (
                ItemStatus.CONFIRMED, ItemStatus.WAITING_PAYMENT):
            raise ConflictError(_("The decision for %(serial)s is already %(decision)s.",
                                  serial=item.serial, decision=wanted.value), "outcome")
        state = _transition(item, Action.OVERRIDE, wanted)
        if item.shipment is not None:  # the lifecycle never gets here; belt and braces
            raise ConflictError(_("%(serial)s has shipped: the decision can no longer "
                                  "change.", serial=item.serial))
        before = _snapshot(item)
        now = clock.now()
        previous = item.decision
        item.decision = wanted.value
        item.override_reason = reason
        item.overridden_by_id = _user_id(actor)
        item.overridden_at = now
        if wanted is Outcome.FREE:
            if clock_starts(Action.OVERRIDE, wanted,
                            clock_started=item.clock_started_at is not None):
                _start_clock(item, now)
        else:
            _stop_clock(item)
        _set_state(item, state, now)
        item.rma.updated_at = now
        _event(item, "decision_changed", actor, now, decision=wanted.value,
               due_at=_iso(item.due_at))
        sync_rma_quote(item.rma, actor, now)  # quoted, or the quote withdrawn (D-6)
        _audit(actor, "rma_item.decision_overridden", item, before,
               decision_before=previous, decision_after=wanted.value)
    return item


def _release_item(actor: Actor, item: RmaItem, now: datetime, note: str, *,
                  kind: str = "released", audit_action: str = "rma_item.released") -> RmaItem:
    """Release a paid replacement inside the caller's transaction (no commit, no role
    check): it may ship, and its 72-hour clock starts at ``now`` (D-3). Used when its
    invoice is paid in full (``invoices.record_payment``, ``note`` "paid: INV-...") and
    by :func:`release` (on credit). ``TransitionError`` unless it waits for payment."""
    state = _transition(item, Action.RELEASE)
    before = _snapshot(item)
    item.released_at = now
    item.released_by_id = _user_id(actor)
    item.release_note = note
    if clock_starts(Action.RELEASE, clock_started=item.clock_started_at is not None):
        _start_clock(item, now)
    _set_state(item, state, now)
    item.rma.updated_at = now
    _event(item, kind, actor, now, due_at=_iso(item.due_at))
    _audit(actor, audit_action, item, before, release_note=note)
    return item


def release(actor: Actor, item_id: int, reason: str) -> RmaItem:
    """Finance releases a paid replacement ON CREDIT, before its invoice is paid (D-3):
    only for a customer with credit terms, with a ``reason`` (kept as the release note,
    audited as ``rma_item.released_on_credit``). Its 72-hour clock starts now. A paid
    invoice releases its items by itself (``invoices.record_payment``).

    ``ForbiddenError`` unless finance; ``ValidationError`` (field ``reason``) without a
    reason; ``TransitionError`` unless the item waits for payment; ``ConflictError`` when
    the customer has no credit terms."""
    ensure_allowed(actor, "release")
    reason = clean_text(reason, "reason", NOTE_MAX,
                        required=_("Give the reason for releasing on credit."))
    with transaction():
        item = _locked_item(item_id)
        _transition(item, Action.RELEASE)
        customer = item.rma.customer
        if not customer.credit_terms:
            raise ConflictError(_("%(name)s has no credit terms: the item ships once its "
                                  "invoice is paid (D-3).", name=customer.name))
        _release_item(actor, item, clock.now(), reason, kind="released_on_credit",
                      audit_action="rma_item.released_on_credit")
    return item


def decline_item(actor: Actor, item: RmaItem, disposition: str, now: datetime) -> RmaItem:
    """The customer declined the quote for ``item`` (waiting for payment); inside the
    caller's transaction (``quotes.decline_quote``: no commit, no role check).
    ``disposition`` "scrap" with the unit at the warehouse: the unit is scrapped and the
    item closes (``Action.SCRAP``). Otherwise ``Action.DECLINE``: a received unit goes back
    unrepaired (item ``confirmed``, decision ``return_unit``, rule ``quote_declined``, no
    clock; the warehouse ships it like a no-fault-found return); a unit that never came
    in stays with the customer and the item closes. ``TransitionError`` unless the item
    waits for payment."""
    received = item.unit_received_at is not None
    action = Action.SCRAP if disposition == "scrap" and received else Action.DECLINE
    state = _transition(item, action)
    before = _snapshot(item)
    unit = item.unit
    unit_before = unit.as_audit()
    if action is Action.SCRAP:
        unit.status = UnitStatus.SCRAPPED
    elif received:
        item.decision = Outcome.RETURN_UNIT.value
        item.decision_rule = "quote_declined"
        item.decision_reason = "The customer declined the quote: the unit goes back unrepaired."
        _stop_clock(item)
    _set_state(item, state, now)
    if action is Action.SCRAP:
        _event(item, "unit_scrapped", actor, now)
    elif received:
        _event(item, "returned_unrepaired", actor, now)
    if item.status in FINAL_ITEM_STATUSES:
        _event(item, "closed", actor, now)
    _sync_rma(item.rma, now)
    _audit(actor, "rma_item.declined", item, before, disposition=disposition,
           unit_before=unit_before, unit_after=unit.as_audit())
    return item


# -- shipping and delivery (R-R3, D-2) ----------------------------------------------------
def _spare_taken(unit_id: int, serial: str) -> ConflictError | ValidationError:
    """Why a spare cannot be claimed: shipped for an RMA (409) or not in stock (422)."""
    taken = db.session.execute(
        select(Rma.number).select_from(Shipment)
        .join(RmaItem, RmaItem.id == Shipment.item_id).join(Rma, Rma.id == RmaItem.rma_id)
        .where(Shipment.unit_id == unit_id)
        .order_by(Shipment.shipped_at.desc(), Shipment.id.desc()).limit(1)
    ).scalar()
    if taken is not None:
        return ConflictError(_("%(serial)s was just shipped for %(number)s. Scan another "
                               "spare.", serial=serial, number=taken), "replacement_serial")
    status = db.session.scalar(select(Unit.status).where(Unit.id == unit_id))
    return ValidationError(_("%(serial)s is not a spare in stock (its status is "
                             "%(status)s).", serial=serial, status=str(status)),
                           "replacement_serial")


def _allowed_models(model: ProductModel) -> list[ProductModel]:
    return [model, *model.successors]


def _claim_spare(item: RmaItem, raw_serial: object, today: date, now: datetime) -> Unit:
    serial = _serial(raw_serial, "replacement_serial")
    spare = db.session.scalar(select(Unit).where(Unit.serial == serial))
    if spare is None:
        raise ValidationError(_("%(serial)s is not a known serial number.", serial=serial),
                              "replacement_serial")
    if spare.id == item.unit_id:
        raise ValidationError(_("%(serial)s is the faulty unit itself: scan a spare from "
                                "stock.", serial=serial), "replacement_serial")
    allowed = _allowed_models(item.unit.model)
    if spare.model_id not in {m.id for m in allowed}:
        raise ValidationError(_(
            "%(serial)s is a %(model)s; this item needs %(allowed)s.", serial=serial,
            model=spare.model.code, allowed=", ".join(m.code for m in allowed)),
            "replacement_serial")
    if spare.status != UnitStatus.IN_STOCK or spare.customer_id is not None:
        raise _spare_taken(spare.id, serial)
    claimed = db.session.execute(
        update(Unit)
        .where(Unit.id == spare.id, Unit.status == UnitStatus.IN_STOCK,
               Unit.customer_id.is_(None))
        .values(status=UnitStatus.IN_SERVICE, customer_id=item.rma.customer_id,
                shipped_on=today, replaces_id=item.unit_id, updated_at=now)
        .execution_options(synchronize_session=False))
    if claimed.rowcount != 1:
        raise _SpareLost(spare.id, serial)
    db.session.expire(spare)
    return spare


class _SpareLost(Exception):
    """Another transaction claimed the spare between our read and our update."""

    def __init__(self, unit_id: int, serial: str):
        super().__init__(serial)
        self.unit_id = unit_id
        self.serial = serial


def ship(actor: Actor, item_id: int, replacement_serial: str | None, carrier: str,
         tracking_number: str) -> Shipment:
    """Ship the replacement (R-R3): ``replacement_serial`` must be a spare in stock (no
    customer) of the item's model or a successor the admin allowed. The spare gets the
    customer, today's ship date and ``replaces`` = the faulty unit, so its warranty follows
    the replacement policy; the faulty unit becomes ``replaced``. An advance replacement
    (remote confirmation, unit not back) sets the unit's return deadline: ship date + 14
    days (D-2). A paid item ships only once released (D-3, 409). No fault found (D-4):
    the customer's own unit goes back (``replacement_serial`` empty or that serial).

    Two stations shipping one spare at once: exactly one wins; the other gets
    ``ConflictError`` "... was just shipped for RMA-..." and nothing is written."""
    ensure_allowed(actor, "ship")
    carrier = clean_text(carrier, "carrier", CARRIER_MAX, required=_("Enter the carrier."))
    tracking = clean_text(tracking_number, "tracking_number", TRACKING_MAX,
                          required=_("Enter the tracking number."))
    try:
        with transaction():
            return _ship(actor, item_id, replacement_serial, carrier, tracking)
    except _SpareLost as lost:
        raise _spare_taken(lost.unit_id, lost.serial) from None
    except IntegrityError:
        raise ConflictError(_("This item was shipped at the same moment from another "
                              "station: reload it.")) from None
    except OperationalError as error:
        if "locked" not in str(error.orig):
            raise
        raise ConflictError(_("Another station was saving at the same moment: try "
                              "again.")) from None


def _ship(actor: Actor, item_id: int, replacement_serial: object, carrier: str,
          tracking: str) -> Shipment:
    item = _locked_item(item_id)
    state = _transition(item, Action.SHIP)
    before = _snapshot(item)
    now = clock.now()
    today = clock.today()
    unit = item.unit
    unit_before = unit.as_audit()
    if item.decision == Outcome.RETURN_UNIT.value:
        text = replacement_serial.strip() if isinstance(replacement_serial, str) else ""
        if text and _serial(text, "replacement_serial") != item.serial:
            raise ValidationError(_(
                "No fault was found: the customer's own unit %(serial)s goes back, not "
                "%(other)s.", serial=item.serial, other=_shown(text)), "replacement_serial")
        kind, sent = "return", unit
        if unit.status == UnitStatus.RETURNED:
            unit.status = UnitStatus.IN_SERVICE
    else:
        kind, sent = "replacement", _claim_spare(item, replacement_serial, today, now)
        if unit.status != UnitStatus.SCRAPPED:
            unit.status = UnitStatus.REPLACED
        if item.remote_confirmation and item.unit_received_at is None:
            item.unit_due_back_on = unit_return_deadline(today, current_policy())
    shipment = Shipment(item_id=item.id, kind=kind, unit_id=sent.id, carrier=carrier,
                        tracking_number=tracking, shipped_at=now,
                        shipped_by_id=_user_id(actor))
    db.session.add(shipment)
    _set_state(item, state, now)
    item.rma.updated_at = now
    db.session.flush()
    _event(item, "shipped", actor, now, kind=kind, replacement_serial=sent.serial,
           carrier=carrier, tracking_number=tracking,
           unit_due_back_on=_iso(item.unit_due_back_on))
    _audit(actor, "rma_item.shipped", item, before, shipment=shipment.as_audit(),
           sent_serial=sent.serial, unit_before=unit_before, unit_after=unit.as_audit())
    return shipment


def deliver(actor: Actor, item_id: int, delivered_at: datetime, received_by: str,
            late_reason: str = "") -> DeliveryResult:
    """Record the delivery on site (time, who signed): it stops the 72-hour clock (R-R3).
    ``delivered_at`` must be aware, not in the future and not before the shipment. When
    it is later than the due time, ``late_reason`` is kept as the breach's reason. The
    item closes at once when its faulty unit is back or nothing was to come back (D-2,
    D-4); the RMA closes when every item is final. Returns whether the target was met and
    the hours from the clock's start (None for both when no clock ran)."""
    ensure_allowed(actor, "deliver")
    if not isinstance(delivered_at, datetime):
        raise ValidationError(_("Enter the date and time of delivery."), "delivered_at")
    if delivered_at.tzinfo is None or delivered_at.utcoffset() is None:
        raise ValidationError(_("The delivery time needs a time zone."), "delivered_at")
    received_by = clean_text(received_by, "received_by", RECEIVED_BY_MAX,
                             required=_("Enter who signed for the parcel."))
    late_reason = clean_text(late_reason, "late_reason", NOTE_MAX)
    now = clock.now()
    if delivered_at > now:
        raise ValidationError(_("The delivery time %(at)s is in the future.",
                                at=_local_full(delivered_at)), "delivered_at")
    with transaction():
        item = _locked_item(item_id)
        state = _transition(item, Action.DELIVER)
        shipment = item.shipment
        if shipment is None:  # shipped items always have one
            raise ConflictError(_("%(serial)s has no shipment.", serial=item.serial))
        if delivered_at < shipment.shipped_at:
            raise ValidationError(_(
                "The delivery time %(at)s is before the shipment at %(shipped)s.",
                at=_local_full(delivered_at), shipped=_local_full(shipment.shipped_at)),
                "delivered_at")
        before = _snapshot(item)
        shipment.delivered_at = delivered_at
        shipment.received_by = received_by
        shipment.delivery_recorded_at = now
        shipment.delivery_recorded_by_id = _user_id(actor)
        within = hours = None
        if item.clock_started_at is not None and item.due_at is not None:
            within = delivered_at <= item.due_at
            hours = hours_between(item.clock_started_at, delivered_at)
            if not within:
                item.breach_reason = late_reason or None
        _set_state(item, state, now)
        _event(item, "delivered", actor, now, kind=shipment.kind, received_by=received_by)
        closed = _close_if_done(item, actor, now)
        _sync_rma(item.rma, now)
        _audit(actor, "rma_item.delivered", item, before, shipment=shipment.as_audit(),
               within_target=within, hours=hours, late_reason=late_reason or None)
    return DeliveryResult(item, within, hours, closed)


# -- the 72-hour clock (R-R3) -------------------------------------------------------------
def clock_of(item: RmaItem, now: datetime | None = None) -> ClockState | None:
    """The item's replacement clock: on track / at risk / breached while open, met /
    missed once delivered; None when no clock runs (not confirmed, waiting for payment,
    no fault found, cancelled, rejected). Reads ``item.shipment`` only for shipped,
    delivered or closed items (load it with the list to avoid one query per item)."""
    if item.due_at is None or item.clock_started_at is None:
        return None
    if item.status in (ItemStatus.CANCELLED, ItemStatus.REJECTED):
        return None
    delivered = None
    if item.status in _SHIPMENT_STATUSES:
        shipment = item.shipment
        delivered = shipment.delivered_at if shipment is not None else None
    return clock_state(item.due_at, now or clock.now(), delivered, current_policy())


def hours_left(item: RmaItem, now: datetime | None = None) -> float | None:
    """Hours until the due time (negative once past); None without a clock."""
    if item.due_at is None:
        return None
    return hours_between(now or clock.now(), item.due_at)


def _state_filter(state: str, now: datetime):
    risk = timedelta(hours=current_policy().replacement_at_risk_hours)
    if state == ClockState.BREACHED:
        return RmaItem.due_at < now
    if state == ClockState.AT_RISK:
        return and_(RmaItem.due_at >= now, RmaItem.due_at < now + risk)
    return RmaItem.due_at >= now + risk


def _replacement_query(state: str | None, customer_id: int | None, item_status: str | None,
                       now: datetime):
    stmt = (
        select(RmaItem).join(Rma, Rma.id == RmaItem.rma_id)
        .where(RmaItem.clock_started_at.is_not(None), RmaItem.due_at.is_not(None),
               RmaItem.status.in_(CLOCK_RUNNING_STATUSES))
    )
    if state:
        if state not in OPEN_STATES:
            raise ValidationError(_("%(value)s is not a clock state; use one of: %(states)s.",
                                    value=_shown(str(state)), states=", ".join(OPEN_STATES)),
                                  "state")
        stmt = stmt.where(_state_filter(state, now))
    if customer_id is not None:
        stmt = stmt.where(Rma.customer_id == customer_id)
    if item_status:
        if item_status not in {s.value for s in CLOCK_RUNNING_STATUSES}:
            raise ValidationError(_(
                "%(value)s is not the status of an open replacement; use one of: "
                "%(statuses)s.", value=_shown(str(item_status)),
                statuses=", ".join(s.value for s in CLOCK_RUNNING_STATUSES)), "item_status")
        stmt = stmt.where(RmaItem.status == ItemStatus(item_status))
    return stmt


def _rows(items: Iterable[RmaItem], now: datetime) -> list[ReplacementRow]:
    policy = current_policy()
    return [ReplacementRow(item=item, rma=item.rma, customer=item.rma.customer,
                           due_at=item.due_at,
                           clock_state=clock_state(item.due_at, now, None, policy),
                           hours_left=hours_between(now, item.due_at))
            for item in items]


_ROW_OPTIONS = (
    joinedload(RmaItem.rma).joinedload(Rma.customer),
    joinedload(RmaItem.unit),
)


def replacements(*, state: str | None = None, customer_id: int | None = None,
                 item_status: str | None = None, now: datetime | None = None
                 ) -> list[ReplacementRow]:
    """Open replacements whose clock runs (confirmed, released or shipped, not yet
    delivered), least time left first; ``state`` is on_track, at_risk or breached
    (filtered in SQL), ``item_status`` confirmed, released or shipped. One query."""
    now = now or clock.now()
    stmt = _replacement_query(state, customer_id, item_status, now)
    items = db.session.scalars(
        stmt.options(*_ROW_OPTIONS).order_by(RmaItem.due_at.asc(), RmaItem.id.asc())
    ).unique().all()
    return _rows(items, now)


def replacements_page(*, state: str | None = None, customer_id: int | None = None,
                      item_status: str | None = None, page: int = 1, per_page: int = 50,
                      now: datetime | None = None) -> ReplacementPage:
    """:func:`replacements` a page at a time (two queries)."""
    now = now or clock.now()
    stmt = _replacement_query(state, customer_id, item_status, now)
    per_page = min(max(int(per_page), 1), PER_PAGE_MAX)
    total = db.session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    pages = max(1, math.ceil(total / per_page))
    page = max(int(page), 1)
    items = db.session.scalars(
        stmt.options(*_ROW_OPTIONS).order_by(RmaItem.due_at.asc(), RmaItem.id.asc())
        .offset((page - 1) * per_page).limit(per_page)
    ).unique().all()
    return ReplacementPage(_rows(items, now), total, page, per_page, pages)


def _months_back(now: datetime, months: int) -> datetime:
    """The start (China midnight, as UTC) of the month ``months - 1`` before now's."""
    local = clock.to_local(now)
    index = local.year * 12 + (local.month - 1) - (months - 1)
    first = date(index // 12, index % 12 + 1, 1)
    return datetime.combine(first, time(0), tzinfo=clock.local_zone())


def monthly_report(*, months: int = 12, now: datetime | None = None) -> MonthlyReport:
    """R-R3 figures per month the clocks started in (China time), over the last
    ``months`` months: share delivered within 72 hours, median and 90th percentile hours
    from confirmation to delivery, breaches; and every breach (delivered late, or open
    past due) with its reason. Cancelled and rejected items do not count. Two queries."""
    if isinstance(months, bool) or not isinstance(months, int) \
            or not 1 <= months <= REPORT_MONTHS_MAX:
        raise ValidationError(_("Months must be a whole number from 1 to %(max)d.",
                                max=REPORT_MONTHS_MAX), "months")
    now = now or clock.now()
    since = _months_back(now, months)
    counted = and_(RmaItem.clock_started_at.is_not(None), RmaItem.due_at.is_not(None),
                   RmaItem.clock_started_at >= since,
                   RmaItem.status.not_in((ItemStatus.CANCELLED, ItemStatus.REJECTED)))
    rows = db.session.execute(
        select(RmaItem.clock_started_at, RmaItem.due_at, Shipment.delivered_at)
        .outerjoin(Shipment, Shipment.item_id == RmaItem.id).where(counted)
    ).all()
    figures = monthly_figures([ClockRecord(*row) for row in rows], now, current_policy())
    late = or_(
        and_(Shipment.delivered_at.is_not(None), Shipment.delivered_at > RmaItem.due_at),
        and_(Shipment.delivered_at.is_(None), RmaItem.due_at < now),
    )
    items = db.session.scalars(
        select(RmaItem).outerjoin(Shipment, Shipment.item_id == RmaItem.id)
        .where(counted, late)
        .options(joinedload(RmaItem.rma).joinedload(Rma.customer),
                 joinedload(RmaItem.shipment))
        .order_by(RmaItem.due_at.asc(), RmaItem.id.asc())
    ).unique().all()
    breaches = []
    for item in items:
        delivered_at = item.shipment.delivered_at if item.shipment is not None else None
        breaches.append(Breach(item=item,
                               hours_late=hours_between(item.due_at, delivered_at or now),
                               reason=item.breach_reason or "",
                               delivered=delivered_at is not None))
    return MonthlyReport(figures, breaches, since)


# -- reading for the API and pages ------------------------------------------------------
def preload_shipments(items: Sequence[RmaItem]) -> list[RmaItem]:
    """Load the items' shipments (with the unit sent) in one query, so ``item.shipment``
    and :func:`clock_of` issue none. Returns ``items`` as a list."""
    every = list(items)
    items = [item for item in every if "shipment" not in item.__dict__]
    if not items:
        return every
    found = db.session.scalars(
        select(Shipment).where(Shipment.item_id.in_([item.id for item in items]))
        .options(joinedload(Shipment.unit))
    ).unique().all()
    by_item = {shipment.item_id: shipment for shipment in found}
    for item in items:
        set_committed_value(item, "shipment", by_item.get(item.id))
    return every


def shipment_json(shipment: Shipment) -> dict:
    return {
        "kind": shipment.kind,
        "serial": shipment.unit.serial,
        "product_model": shipment.unit.model.code,
        "carrier": shipment.carrier,
        "tracking_number": shipment.tracking_number,
        "shipped_at": _iso(shipment.shipped_at),
        "delivered_at": _iso(shipment.delivered_at),
        "received_by": shipment.received_by,
    }


def item_json(item: RmaItem, now: datetime | None = None) -> dict:
    """The item's issue-4 fields as the customer may read them (no staff notes): the
    decision and its rule in words, the 72-hour clock, the unit's receipt and return
    deadline (D-2), and the shipment. For ``GET /api/v1/rmas/<number>``."""
    now = now or clock.now()
    state = clock_of(item, now)
    running = state is not None and state.is_open
    shipment = item.shipment if item.status in _SHIPMENT_STATUSES else None
    return {
        "decision_rule": item.decision_rule,
        "decision_reason": decision_text(item) if item.decision_rule else None,
        "overridden": item.overridden_at is not None,
        "remote_confirmation": bool(item.remote_confirmation),
        "clock_started_at": _iso(item.clock_started_at),
        "clock_state": state.value if state is not None else None,
        "hours_left": hours_left(item, now) if running else None,
        "unit_received_at": _iso(item.unit_received_at),
        "unit_due_back_on": _iso(item.unit_due_back_on),
        "unit_overdue": is_unit_overdue(item.unit_due_back_on, clock.today(),
                                        item.unit_received_at is not None),
        "released_at": _iso(item.released_at),
        "rejected_reason": item.rejected_reason,
        "closed_at": _iso(item.closed_at),
        "shipments": [shipment_json(shipment)] if shipment is not None else [],
    }


def packing_slip_data(item: RmaItem):
    """The plain data of the item's packing slip (``rma.documents.packing_slip``).
    ``ConflictError`` when the item has not shipped."""
    from rma.documents.packing_slip import PackingSlipData

    shipment = item.shipment
    if shipment is None:
        raise ConflictError(_("%(serial)s has not shipped yet: there is no packing slip.",
                              serial=item.serial))
    rma = item.rma
    model = shipment.unit.model
    name = model.name if model.name.startswith(model.code) else f"{model.code} {model.name}"
    config = current_app.config
    return PackingSlipData(
        rma_number=rma.number,
        customer_name=rma.customer.name,
        contract_number=rma.customer.contract_number,
        ship_to=rma.ship_to,
        contact_name=rma.contact_name,
        contact_phone=rma.contact_phone,
        vendor_name=config["VENDOR_NAME"],
        return_address=config["RETURN_ADDRESS"],
        shipped_on=clock.to_local(shipment.shipped_at).date(),
        carrier=shipment.carrier,
        tracking_number=shipment.tracking_number,
        replacement_serial=shipment.unit.serial,
        replacement_model=name,
        returned_serial=item.serial,
        kind=shipment.kind,
        unit_due_back_on=item.unit_due_back_on if item.unit_received_at is None else None,
    )


# -- the customer's timeline (R-R4), in plain words ----------------------------------------
def _due(data: dict) -> str:
    value = data.get("due_at")
    return _local_full(datetime.fromisoformat(value)) if value else "-"


def _confirmed_text(data: dict, actor: str) -> str:
    serial, decision = data["serial"], data.get("decision")
    if decision == Outcome.RETURN_UNIT:
        return _("Unit %(serial)s was inspected and no fault was found: it will be sent "
                 "back to you.", serial=serial)
    if data.get("remote"):
        if decision == Outcome.FREE:
            return _("The fault of %(serial)s was confirmed remotely: a free replacement is "
                     "due on site by %(due)s (China time).", serial=serial, due=_due(data))
        return _("The fault of %(serial)s was confirmed remotely: the replacement is paid "
                 "and ships once payment is settled.", serial=serial)
    if decision == Outcome.FREE:
        return _("Unit %(serial)s was inspected: a free replacement is due on site by "
                 "%(due)s (China time).", serial=serial, due=_due(data))
    return _("Unit %(serial)s was inspected: the replacement is paid and ships once "
             "payment is settled.", serial=serial)


def _decision_changed_text(data: dict, actor: str) -> str:
    if data.get("decision") == Outcome.FREE:
        return _("The decision for %(serial)s was changed to a free replacement, due on "
                 "site by %(due)s (China time).", serial=data["serial"], due=_due(data))
    return _("The decision for %(serial)s was changed to a paid replacement; it ships once "
             "payment is settled.", serial=data["serial"])


def _shipped_text(data: dict, actor: str) -> str:
    values = {"serial": data["serial"], "carrier": data.get("carrier", ""),
              "tracking": data.get("tracking_number", "")}
    if data.get("kind") == "return":
        return _("Your unit %(serial)s was sent back with %(carrier)s, tracking number "
                 "%(tracking)s.", **values)
    values["replacement"] = data.get("replacement_serial", "")
    if data.get("unit_due_back_on"):
        return _("Replacement unit %(replacement)s for %(serial)s was shipped with "
                 "%(carrier)s, tracking number %(tracking)s. Please send the faulty unit "
                 "back by %(date)s.", date=data["unit_due_back_on"], **values)
    return _("Replacement unit %(replacement)s for %(serial)s was shipped with %(carrier)s, "
             "tracking number %(tracking)s.", **values)


def _delivered_text(data: dict, actor: str) -> str:
    if data.get("kind") == "return":
        return _("Your unit %(serial)s was delivered back, signed for by %(name)s.",
                 serial=data["serial"], name=data.get("received_by", ""))
    return _("The replacement for %(serial)s was delivered, signed for by %(name)s.",
             serial=data["serial"], name=data.get("received_by", ""))


TIMELINE_TEXTS.update({
    "unit_requested": lambda d, a: _(
        "Please send unit %(serial)s to the service centre with the RMA label.",
        serial=d["serial"]),
    "confirmed": _confirmed_text,
    "received": lambda d, a: _("Unit %(serial)s arrived at the service centre.",
                               serial=d["serial"]),
    "unexpected_unit": lambda d, a: _(
        "An unexpected unit %(serial)s was found with this RMA.", serial=d["serial"]),
    "decision_changed": _decision_changed_text,
    "released": lambda d, a: _(
        "The paid replacement for %(serial)s was released for shipping; it is due on site "
        "by %(due)s (China time).", serial=d["serial"], due=_due(d)),
    "shipped": _shipped_text,
    "delivered": _delivered_text,
    "closed": lambda d, a: _("Item %(serial)s is closed.", serial=d["serial"]),
    "rejected": lambda d, a: _("Item %(serial)s was rejected: %(reason)s",
                               serial=d["serial"], reason=d.get("reason", "")),
    "cancelled": lambda d, a: _("Item %(serial)s was cancelled: %(reason)s",
                                serial=d["serial"], reason=d.get("reason", "")),
})


__all__ = [
    "ACTION_ROLES", "CAUSE_WORDS", "CLOCK_WORDS", "SCAN_OUTCOMES", "STATE_WORDS",
    "WARNING_OUTCOMES", "Breach", "DeliveryResult", "MonthlyReport", "ReplacementPage",
    "ReplacementRow", "ScanResult", "TransitionError", "UnitHistory", "cancel_item",
    "clock_of", "confirm_remote", "decision_text", "deliver", "ensure_allowed", "find_item",
    "from_local", "hours_left", "inspect", "item_json", "local_text", "may",
    "monthly_report", "override_decision", "packing_slip_data", "preload_shipments",
    "receive", "reject_item", "release", "decline_item", "replacements", "replacements_page",
    "request_unit", "scan", "ship", "shipment_json", "triage_queue", "unit_histories",
    "unit_history",
]
