"""Periodic jobs of the replacement clock, run by ``rma tick`` (``rma.cli.TICK_JOBS``).

* ``at_risk_job`` (R-R3): one e-mail per item to the warehouse lead when its 72-hour
  clock is at risk (less than ``Policy.replacement_at_risk_hours`` left), or already
  breached without a warning.
* ``unit_overdue_job`` (D-2): an item replaced in advance whose faulty unit has not come
  back by its due date is flagged once: a timeline event for the customer, an audit
  event and an e-mail to the RMA's contact in the RMA's language.

Each job takes ``now`` (tests pass it; ``rma tick`` passes ``clock.now()``) and returns a
``JobResult`` with the same ``summary``/``busy`` shape as ``rma.cli.TickResult``.

Exactly once, also with two tick processes at the same moment: each item is claimed by a
conditional ``UPDATE ... WHERE <stamp> IS NULL`` whose row count says who won (the other
waits for the row lock and then finds the stamp set), and the e-mails carry a dedupe key
that the outbox's unique index holds. Every item is its own transaction: the stamp, the
audit event (R-R4), the timeline event and the e-mails commit together, and a failure on
one item is logged and leaves it for the next run without stopping the others.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import select, update
from sqlalchemy.orm import joinedload
from werkzeug.routing import BuildError

from rma import clock
from rma.extensions import db
from rma.models import FINAL_ITEM_STATUSES, ItemStatus, Rma, RmaEvent, RmaItem, Role, User
from rma.policy import current_policy
from rma.services.audit import Actor, record
from rma.services.outbox import enqueue
from rma.services.rmas import TIMELINE_TEXTS, rma_url
from rma.services.users import normalize_email
from rma.services.warehouse import CLOCK_RUNNING_STATUSES
from warranty import ClockState, clock_state, hours_between, is_unit_overdue

log = logging.getLogger(__name__)

# Item states in which the replacement clock runs and the replacement is not yet on site
# (R-R3, D-3): confirmed free, released after payment or on credit, shipped. A paid item
# waiting for payment has no running clock; a delivered one has stopped it.
CLOCK_RUNNING = CLOCK_RUNNING_STATUSES
OPEN_STATUSES = tuple(status for status in ItemStatus if status not in FINAL_ITEM_STATUSES)
AT_RISK_ACTOR = "tick:at-risk"
OVERDUE_ACTOR = "tick:unit-overdue"


@dataclass(frozen=True)
class JobResult:
    """What one run did: ``summary`` for the tick line, ``busy`` False when there was
    nothing to do (``rma tick --loop`` then stays quiet). Same shape as ``TickResult``."""

    summary: str
    busy: bool = True
    items: int = 0  # items notified or flagged in this run
    emails: int = 0  # e-mails queued
    failed: int = 0  # items left for the next run after an error


@dataclass(frozen=True)
class Recipient:
    email: str
    language: str


# -- recipients ---------------------------------------------------------------------------
def _configured_leads(value: str) -> list[str]:
    """``WAREHOUSE_LEAD_EMAIL``: one address, or several separated by commas."""
    return [normalize_email(part) for part in re.split(r"[,;\s]+", value or "") if part]


def check_settings(app) -> None:
    """``rma tick`` start-up check: ``WAREHOUSE_LEAD_EMAIL``, when set, holds valid
    addresses. Raises ``ValueError`` with one line otherwise."""
    try:
        _configured_leads(app.config.get("WAREHOUSE_LEAD_EMAIL") or "")
    except Exception as error:  # noqa: BLE001 - one line for the operator
        raise ValueError(f"WAREHOUSE_LEAD_EMAIL: {getattr(error, 'message', error)}") from None


def warehouse_recipients() -> list[Recipient]:
    """Who gets the at-risk e-mails: ``WAREHOUSE_LEAD_EMAIL`` (in the language of the
    user with that address, if there is one, else the default language); when it is
    empty, every active warehouse user in their own language."""
    default = current_app.config.get("BABEL_DEFAULT_LOCALE") or "zh_CN"
    leads = _configured_leads(current_app.config.get("WAREHOUSE_LEAD_EMAIL") or "")
    if leads:
        languages = dict(db.session.execute(
            select(User.email, User.language).where(User.email.in_(leads))).all())
        return [Recipient(address, languages.get(address, default))
                for address in dict.fromkeys(leads)]
    rows = db.session.execute(
        select(User.email, User.language)
        .where(User.role == Role.WAREHOUSE, User.is_active_flag.is_(True))
        .order_by(User.email)
    ).all()
    return [Recipient(email, language or default) for email, language in rows]


# -- at risk (R-R3) -----------------------------------------------------------------------
def _at_risk_conditions(now: datetime) -> tuple:
    """Open, clock running, less than the at-risk hours left (or past due), not yet
    notified. Checked again by the claiming UPDATE."""
    threshold = now + timedelta(hours=current_policy().replacement_at_risk_hours)
    return (
        RmaItem.status.in_(CLOCK_RUNNING),
        RmaItem.due_at.is_not(None),
        RmaItem.due_at < threshold,
        RmaItem.at_risk_notified_at.is_(None),
    )


def at_risk_candidates(now: datetime) -> list[int]:
    """Ids of the items ``at_risk_job`` would notify at ``now``, most urgent first."""
    return list(db.session.scalars(
        select(RmaItem.id).where(*_at_risk_conditions(now))
        .order_by(RmaItem.due_at, RmaItem.id)
    ))


def at_risk_job(now: datetime) -> JobResult:
    """R-R3: e-mail the warehouse lead once per item whose replacement clock is at risk
    (``warranty.clock_state`` is ``AT_RISK``) or breached before anyone was warned,
    stamp ``at_risk_notified_at`` and audit it. With no recipient (no
    ``WAREHOUSE_LEAD_EMAIL`` and no active warehouse user), nothing is stamped, so the
    warnings go out once someone can receive them; a warning is logged."""
    ids = at_risk_candidates(now)
    if not ids:
        return JobResult("at-risk: none", busy=False)
    recipients = warehouse_recipients()
    db.session.rollback()  # end the read before the per-item write transactions
    if not recipients:
        # Logged once per new item, not on every run of the loop.
        warned = current_app.extensions.setdefault("rma_at_risk_unwarned", set())
        if not set(ids) <= warned:
            log.warning("%d replacement(s) at risk or breached but nobody to tell: set "
                        "WAREHOUSE_LEAD_EMAIL or add an active warehouse user", len(ids))
            warned.update(ids)
        return JobResult(f"at-risk: {len(ids)} waiting, no recipient (set "
                         "WAREHOUSE_LEAD_EMAIL or add a warehouse user)", busy=False)
    notified = breached = emails = failed = 0
    for item_id in ids:
        try:
            outcome = notify_at_risk(item_id, now, recipients)
        except Exception:  # noqa: BLE001 - logged; the item is retried on the next run
            db.session.rollback()
            log.exception("at-risk e-mail for RMA item %s failed", item_id)
            failed += 1
            continue
        if outcome is None:  # another tick got there first, or it is no longer at risk
            continue
        state, queued = outcome
        notified += 1
        breached += state == ClockState.BREACHED
        emails += queued
    text = f"at-risk: notified {notified} ({breached} breached), e-mails {emails}"
    if failed:
        text += f", failed {failed}"
    return JobResult(text, busy=bool(notified or failed), items=notified, emails=emails,
                     failed=failed)


def notify_at_risk(item_id: int, now: datetime, recipients: list[Recipient]
                   ) -> tuple[ClockState, int] | None:
    """Claim one item and queue its at-risk e-mails; commits. Returns the clock state and
    the number of e-mails queued, or ``None`` when the item was not claimed (notified by
    another run, or no longer at risk: delivered, cancelled, moved)."""
    claimed = db.session.execute(
        update(RmaItem).where(RmaItem.id == item_id, *_at_risk_conditions(now))
        .values(at_risk_notified_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    if claimed != 1:
        db.session.rollback()
        return None
    item = db.session.scalar(
        select(RmaItem).where(RmaItem.id == item_id)
        .options(joinedload(RmaItem.rma).joinedload(Rma.customer),
                 joinedload(RmaItem.unit))
        .execution_options(populate_existing=True)
    )
    policy = current_policy()
    state = clock_state(item.due_at, now, None, policy)
    local_due = clock.to_local(item.due_at)
    shipment = getattr(item, "shipment", None)
    context = {
        "number": item.rma.number,
        "serial": item.serial,
        "model": item.unit.model.code,
        "customer_name": item.rma.customer.name,
        "breached": state == ClockState.BREACHED,
        "due": f"{local_due:%Y-%m-%d %H:%M} {local_due.tzname()}",
        "hours": abs(hours_between(now, item.due_at)),
        "target_hours": policy.replacement_target_hours,
        "shipped": item.status == ItemStatus.SHIPPED,
        "carrier": shipment.carrier if shipment is not None else "",
        "tracking_number": shipment.tracking_number if shipment is not None else "",
        "ship_to": item.rma.ship_to,
        "url": staff_item_url(item.id),
        "vendor_name": current_app.config["VENDOR_NAME"],
    }
    queued = 0
    for recipient in recipients:
        message = enqueue(to=recipient.email, language=recipient.language,
                          template="replacement_at_risk", context=context,
                          dedupe_key=_at_risk_key(item.id, recipient.email))
        queued += message is not None
    event = record(Actor(label=AT_RISK_ACTOR), "rma_item.at_risk_notified", "rma_item", item.id,
                   before={"at_risk_notified_at": None},
                   after={"at_risk_notified_at": now.isoformat(), "clock_state": str(state),
                          "due_at": item.due_at.isoformat(),
                          "recipients": [r.email for r in recipients]})
    event.at = now
    db.session.commit()
    return state, queued


def _at_risk_key(item_id: int, email: str) -> str:
    """One at-risk e-mail per item and recipient; a very long address is hashed to fit
    ``OutboxMessage.dedupe_key`` (200 characters)."""
    key = f"at-risk:{item_id}:{email}"
    if len(key) > 200:
        key = f"at-risk:{item_id}:sha256:{hashlib.sha256(email.encode()).hexdigest()}"
    return key


def staff_item_url(item_id: int) -> str:
    """The item's page for staff (``PUBLIC_URL``), or the site root when the warehouse
    pages are not installed."""
    base = current_app.config["PUBLIC_URL"].rstrip("/")
    try:
        path = current_app.url_map.bind("localhost").build("warehouse.item", {"item_id": item_id})
    except BuildError:
        path = "/"
    return base + path


# -- unit overdue (D-2) -------------------------------------------------------------------
def _overdue_conditions(today) -> tuple:
    return (
        RmaItem.remote_confirmation.is_(True),
        RmaItem.unit_received_at.is_(None),
        RmaItem.unit_due_back_on.is_not(None),
        RmaItem.unit_due_back_on < today,
        RmaItem.unit_overdue_flagged_at.is_(None),
        RmaItem.status.in_(OPEN_STATUSES),  # IN, not NOT IN: the status index serves it
    )


def overdue_candidates(now: datetime) -> list[int]:
    """Ids of the items ``unit_overdue_job`` would flag at ``now``, oldest due first."""
    today = clock.to_local(now).date()
    return list(db.session.scalars(
        select(RmaItem.id).where(*_overdue_conditions(today))
        .order_by(RmaItem.unit_due_back_on, RmaItem.id)
    ))


def unit_overdue_job(now: datetime) -> JobResult:
    """D-2: flag every item replaced in advance whose faulty unit was due back before
    today (China time) and has not arrived: ``unit_overdue_flagged_at``, a timeline event
    ("the replacement may become chargeable"), an audit event, and one e-mail to the
    RMA's contact in the RMA's language."""
    ids = overdue_candidates(now)
    if not ids:
        return JobResult("unit-overdue: none", busy=False)
    db.session.rollback()
    flagged = emails = failed = 0
    for item_id in ids:
        try:
            queued = flag_unit_overdue(item_id, now)
        except Exception:  # noqa: BLE001 - logged; the item is retried on the next run
            db.session.rollback()
            log.exception("flagging the overdue unit of RMA item %s failed", item_id)
            failed += 1
            continue
        if queued is None:
            continue
        flagged += 1
        emails += queued
    text = f"unit-overdue: flagged {flagged}, e-mails {emails}"
    if failed:
        text += f", failed {failed}"
    return JobResult(text, busy=bool(flagged or failed), items=flagged, emails=emails,
                     failed=failed)


def flag_unit_overdue(item_id: int, now: datetime) -> int | None:
    """Claim and flag one item; commits. Returns the e-mails queued (0 or 1), or ``None``
    when another run flagged it first or it is no longer overdue."""
    today = clock.to_local(now).date()
    claimed = db.session.execute(
        update(RmaItem).where(RmaItem.id == item_id, *_overdue_conditions(today))
        .values(unit_overdue_flagged_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    if claimed != 1:
        db.session.rollback()
        return None
    item = db.session.scalar(
        select(RmaItem).where(RmaItem.id == item_id)
        .options(joinedload(RmaItem.rma).joinedload(Rma.customer))
        .execution_options(populate_existing=True)
    )
    if not is_unit_overdue(item.unit_due_back_on, today, unit_received=False):
        db.session.rollback()  # the query and the rule disagree: leave it, loudly
        log.error("RMA item %s matched the overdue query but not warranty.is_unit_overdue",
                  item_id)
        return None
    rma = item.rma
    due = item.unit_due_back_on.isoformat()
    db.session.add(RmaEvent(rma_id=rma.id, item_id=item.id, at=now, kind="unit_overdue",
                            actor_label="", data={"serial": item.serial, "due_back_on": due}))
    message = enqueue(
        to=rma.contact_email, language=rma.language, template="unit_overdue",
        dedupe_key=f"unit-overdue:{item.id}",
        context={
            "contact_name": rma.contact_name,
            "number": rma.number,
            "serial": item.serial,
            "due_back_on": due,
            "customer_name": rma.customer.name,
            "return_address": current_app.config["RETURN_ADDRESS"],
            "vendor_name": current_app.config["VENDOR_NAME"],
            "url": rma_url(rma),
        },
    )
    event = record(Actor(label=OVERDUE_ACTOR), "rma_item.unit_overdue_flagged", "rma_item",
                   item.id, before={"unit_overdue_flagged_at": None},
                   after={"unit_overdue_flagged_at": now.isoformat(), "unit_due_back_on": due,
                          "serial": item.serial, "e-mailed": rma.contact_email})
    event.at = now
    db.session.commit()
    return 0 if message is None else 1


def _overdue_text(data: dict, actor: str) -> str:
    return _("The faulty unit %(serial)s was due back by %(date)s and has not arrived; the "
             "replacement may become chargeable.", serial=data["serial"],
             date=data["due_back_on"])


TIMELINE_TEXTS["unit_overdue"] = _overdue_text

__all__ = ["CLOCK_RUNNING", "JobResult", "Recipient", "at_risk_candidates", "at_risk_job",
           "check_settings", "flag_unit_overdue", "notify_at_risk",
           "overdue_candidates", "staff_item_url", "unit_overdue_job", "warehouse_recipients"]
