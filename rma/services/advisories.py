"""Security advisories (issue 7; R-A1..R-A3): write, notify the affected customers,
publish, and track each customer's notice (sent, opened in the portal, acknowledged).

* R-A1: an advisory carries a severity (``warranty.SEVERITY_GUIDANCE`` tells the author
  what each means), the affected product models and versions, a description, the
  solution and references. Its number is ``SA-<year>-<4 digits>``.
* The affected customers are computed from the installed base: customers holding units
  (tokens, licences, appliances) of an affected model in any status but scrapped.
* R-A2: ``notify_due_on`` is the official patch date plus 2 working days on the office
  calendar. ``notify_customers`` writes one ``AdvisoryNotice`` per affected customer and
  e-mails every active customer user of that customer through the outbox (one e-mail per
  user, ever: dedupe key ``advisory:<id>:customer:<cid>:user:<uid>``). Running it again
  notices only customers that became affected since (a correction of the models, units
  shipped later); the others are not e-mailed again. The tick job ``advisory-deadline``
  tells the author and every manager once when the due day has come and no customer was
  notified yet.
* R-A3: a vendor-found vulnerability may be published no earlier than 14 days after the
  first notice (``public_from_on``); ``publish`` refuses before that with the date. An
  advisory the vendor did not find may be published at once (it is public knowledge
  already; its customers must still be notified per R-A2).

Staff (support, manager, admin) write, notify and publish; an actor without a user (the
CLI, the demo data) is the system and may too. A customer user opens and acknowledges
its own customer's notice. Every use case runs in one transaction with its audit event
and commits once; a refusal changes nothing.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

from flask import current_app
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import String, case, cast, exists, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload
from werkzeug.routing import BuildError

from rma import clock
from rma.extensions import db
from rma.models import (
    Advisory,
    AdvisoryNotice,
    AdvisorySeverity,
    AdvisoryStatus,
    AuditEvent,
    Customer,
    ProductModel,
    Role,
    Unit,
    UnitStatus,
    User,
    advisory_models,
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
from rma.services.notifications import notify
from rma.services.numbers import next_value
from rma.services.office_calendar import load_calendar
from rma.services.outbox import enqueue
from rma.services.replacement_jobs import JobResult
from warranty import SEVERITY_GUIDANCE, may_publish
from warranty import notify_due_on as _notify_due_on
from warranty import public_from_on as _public_from_on

log = logging.getLogger(__name__)

STAFF_ROLES = (Role.SUPPORT, Role.MANAGER, Role.ADMIN)
TITLE_MAX = 200
TEXT_MAX = 20000
MODELS_MAX = 100
DUE_ACTOR = "tick:advisory-deadline"
DUE_MARKER = "advisory.notify_due_alerted"  # audit action: the job's exactly-once marker

SEVERITY_LABELS = {"high": _l("High"), "medium": _l("Medium"), "low": _l("Low")}
STATUS_LABELS = {
    "draft": _l("draft"),
    "notified": _l("customers notified"),
    "published": _l("published"),
}
#: R-A1 guidance per severity, in the reader's language (the English text lives in
#: ``warranty.SEVERITY_GUIDANCE``; these are its translations).
SEVERITY_HELP = {
    "high": _l("High: the vulnerability can be exploited remotely or without credentials, "
               "or lets an attacker bypass authentication, forge one-time passwords or read "
               "secrets (token seeds, keys). Customers should patch at once."),
    "medium": _l("Medium: exploiting it needs credentials, access to the internal network "
                 "or user interaction, or it degrades the service without exposing "
                 "secrets. Customers should patch in their next maintenance window."),
    "low": _l("Low: limited impact or hard to exploit (local access, unusual "
              "configuration, information of little value). Customers may patch with the "
              "next regular upgrade."),
}
assert set(SEVERITY_HELP) == set(SEVERITY_GUIDANCE)


class AdvisoryError(ValidationError, ValueError):
    """Bad input (422); ``field`` names the form field or JSON member."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message, field)


class AdvisoryStateError(ConflictError):
    """The advisory's state does not allow the action (409). ``possible_on`` is the day
    a refused publication becomes possible (R-A3), when there is one."""

    def __init__(self, message: str, field: str | None = None,
                 possible_on: date | None = None):
        super().__init__(message, field)
        self.possible_on = possible_on


class AdvisoryNotFoundError(NotFoundError, LookupError):
    """No such advisory, or no notice of it for the customer (404)."""


@dataclass(frozen=True)
class AdvisoryRow:
    """One line of the staff list: the advisory, its notices sent/opened/acknowledged,
    the R-A2 due day and whether it is overdue (due day passed, nobody notified)."""

    advisory: Advisory
    sent: int
    opened: int
    acknowledged: int
    notify_due_on: date | None
    overdue: bool
    due: bool  # the due day has come (today or past) and nobody was notified yet

    @property
    def number(self) -> str:
        return self.advisory.number


# -- helpers ------------------------------------------------------------------------------
def is_staff_user(user: User | None) -> bool:
    """True for an active support, manager or admin user (who may write advisories)."""
    return (user is not None and bool(getattr(user, "is_authenticated", True))
            and user.is_active and user.role in STAFF_ROLES)


def _ensure_staff(actor: Actor) -> None:
    if actor.user is not None and not is_staff_user(actor.user):
        raise ForbiddenError(_("Only support, managers and administrators may do this."))


def _user_id(actor: Actor) -> int | None:
    return actor.user.id if actor.user is not None else None


def _text(raw: object, field: str, limit: int, required: bool = False) -> str:
    return clean_text(raw, field, limit, error=AdvisoryError,
                      required=_("This field is required.") if required else None)


def _severity(raw: object) -> AdvisorySeverity:
    if isinstance(raw, str):
        try:
            return AdvisorySeverity(raw.strip().lower())
        except ValueError:
            pass
    raise AdvisoryError(_("Choose a severity: high, medium or low."), "severity")


def _patch_day(raw: object) -> date | None:
    if raw is None or raw == "":
        return None
    if isinstance(raw, datetime):
        raise AdvisoryError(_("Give the patch date as a date like 2026-11-25."),
                            "patch_released_on")
    if isinstance(raw, date):
        return raw
    if isinstance(raw, str):
        try:
            return date.fromisoformat(raw.strip())
        except ValueError:
            pass
    raise AdvisoryError(_("Give the patch date as a date like 2026-11-25."),
                        "patch_released_on")


def _vendor_found(raw: object) -> bool:
    if not isinstance(raw, bool):
        raise AdvisoryError(_("Say whether the vendor found the vulnerability (yes or no)."),
                            "vendor_found")
    return raw


def _models(raw: object) -> list[ProductModel]:
    if isinstance(raw, str):
        raw = [raw]
    try:
        codes = [str(c).strip() for c in (raw or ()) if str(c).strip()]
    except TypeError:
        raise AdvisoryError(_("Choose the affected product models."), "model_codes") from None
    codes = list(dict.fromkeys(codes))
    if not codes:
        raise AdvisoryError(_("Choose at least one affected product model."), "model_codes")
    if len(codes) > MODELS_MAX:
        raise AdvisoryError(_("At most %(max)d product models.", max=MODELS_MAX),
                            "model_codes")
    found = {m.code: m for m in db.session.scalars(
        select(ProductModel).where(ProductModel.code.in_(codes)))}
    unknown = [c for c in codes if c not in found]
    if unknown:
        raise AdvisoryError(_("Unknown product model(s): %(codes)s.", codes=", ".join(unknown)),
                            "model_codes")
    return sorted(found.values(), key=lambda m: m.code)


def _first_notified_on(advisory: Advisory) -> date | None:
    if advisory.notified_at is None:
        return None
    return clock.to_local(advisory.notified_at).date()


def _locked(advisory: Advisory) -> Advisory:
    """The advisory re-read and locked for this transaction (PostgreSQL ``FOR UPDATE``)
    so two requests on one advisory run one after the other."""
    locked = db.session.scalar(
        select(Advisory).where(Advisory.id == advisory.id).with_for_update(of=Advisory)
        .execution_options(populate_existing=True))
    if locked is None:
        raise AdvisoryNotFoundError(_("No such advisory."))
    return locked


def _due_on(patch: date | None) -> date | None:
    if patch is None:
        return None
    try:
        return _notify_due_on(patch, load_calendar(), current_policy())
    except OverflowError:  # 9999-12-31: its due day would be past the last date there is
        raise AdvisoryError(_("Give the patch date as a date like 2026-11-25."),
                            "patch_released_on") from None


def severity_help() -> dict[str, str]:
    """R-A1 guidance per severity, in the current language."""
    return {key: str(text) for key, text in SEVERITY_HELP.items()}


def staff_url(number: str) -> str:
    """The advisory's staff page (``PUBLIC_URL``), for e-mails."""
    return _url("advisories.advisory_detail", f"/staff/advisories/{number}", number)


def portal_url(number: str) -> str:
    """The advisory's portal page for a customer (``PUBLIC_URL``), for e-mails."""
    return _url("portal_advisories.advisory_detail", f"/portal/advisories/{number}", number)


def _url(endpoint: str, fallback: str, number: str) -> str:
    base = current_app.config["PUBLIC_URL"].rstrip("/")
    try:
        path = current_app.url_map.bind("localhost").build(endpoint, {"number": number})
    except BuildError:
        path = fallback
    return base + path


# -- writing (R-A1) -------------------------------------------------------------------------
def create_advisory(actor: Actor, *, title: str, severity: str, description: str,
                    solution: str = "", references: str = "", affected_versions: str = "",
                    model_codes: Iterable[str], vendor_found: bool,
                    patch_released_on: date | None) -> Advisory:
    """R-A1: a new advisory, status draft, numbered ``SA-<year>-<4 digits>``; its R-A2
    due day is computed from the patch date. Staff only (``ForbiddenError``); bad input
    raises ``AdvisoryError`` naming the field. Audited; commits."""
    _ensure_staff(actor)
    with transaction():
        fields = {
            "title": _text(title, "title", TITLE_MAX, required=True),
            "severity": _severity(severity),
            "description": _text(description, "description", TEXT_MAX, required=True),
            "solution": _text(solution, "solution", TEXT_MAX),
            "references": _text(references, "references", TEXT_MAX),
            "affected_versions": _text(affected_versions, "affected_versions", TEXT_MAX),
            "vendor_found": _vendor_found(vendor_found),
            "patch_released_on": _patch_day(patch_released_on),
        }
        models = _models(model_codes)
        year = clock.today().year
        advisory = Advisory(number=f"SA-{year}-{next_value('advisory', year):04d}",
                            status=AdvisoryStatus.DRAFT, created_by_id=_user_id(actor),
                            notify_due_on=_due_on(fields["patch_released_on"]),
                            created_at=clock.now(), updated_at=clock.now(), **fields)
        advisory.product_models = models
        db.session.add(advisory)
        db.session.flush()
        record(actor, "advisory.created", "advisory", advisory.id, after=_snapshot(advisory))
    return advisory


_KEEP = object()


def _snapshot(advisory: Advisory) -> dict:
    """Every field an update can change, for its audit event's before/after."""
    return {**advisory.as_audit(), "description": advisory.description,
            "solution": advisory.solution, "references": advisory.references,
            "model_codes": [m.code for m in advisory.product_models]}


def update_advisory(actor: Actor, advisory: Advisory, *, title=_KEEP, severity=_KEEP,
                    description=_KEEP, solution=_KEEP, references=_KEEP,
                    affected_versions=_KEEP, model_codes=_KEEP, vendor_found=_KEEP,
                    patch_released_on=_KEEP) -> Advisory:
    """Change a draft or notified advisory (R-A1); fields not given stay. A change after
    the notices went out is a correction: it is recorded (``correction`` in the audit
    event) and nobody is notified again (customers newly affected by a change of models
    get theirs from the next ``notify_customers``). A published advisory cannot change
    (``AdvisoryStateError``). Staff only; audited; commits."""
    _ensure_staff(actor)
    with transaction():
        advisory = _locked(advisory)
        if advisory.status == AdvisoryStatus.PUBLISHED:
            raise AdvisoryStateError(_("Advisory %(number)s is published and can no longer "
                                       "be changed.", number=advisory.number))
        before = _snapshot(advisory)
        checks = {
            "title": lambda v: _text(v, "title", TITLE_MAX, required=True),
            "severity": _severity,
            "description": lambda v: _text(v, "description", TEXT_MAX, required=True),
            "solution": lambda v: _text(v, "solution", TEXT_MAX),
            "references": lambda v: _text(v, "references", TEXT_MAX),
            "affected_versions": lambda v: _text(v, "affected_versions", TEXT_MAX),
            "vendor_found": _vendor_found,
            "patch_released_on": _patch_day,
        }
        given = {"title": title, "severity": severity, "description": description,
                 "solution": solution, "references": references,
                 "affected_versions": affected_versions, "vendor_found": vendor_found,
                 "patch_released_on": patch_released_on}
        values = {name: checks[name](raw) for name, raw in given.items() if raw is not _KEEP}
        models = _models(model_codes) if model_codes is not _KEEP else None
        for name, value in values.items():
            setattr(advisory, name, value)
        if models is not None:
            advisory.product_models = models
        advisory.notify_due_on = _due_on(advisory.patch_released_on)
        first = _first_notified_on(advisory)
        advisory.public_from_on = (_public_from_on(first, current_policy())
                                   if advisory.vendor_found and first is not None else None)
        after = _snapshot(advisory)
        if after == before:
            return advisory  # nothing changed: nothing to record
        advisory.updated_at = clock.now()
        after["correction"] = advisory.status == AdvisoryStatus.NOTIFIED
        record(actor, "advisory.updated", "advisory", advisory.id, before=before, after=after)
    return advisory


# -- the installed base ---------------------------------------------------------------------
def _affected_query(advisory_id: int):
    models = select(advisory_models.c.model_id).where(
        advisory_models.c.advisory_id == advisory_id)
    return (select(Customer)
            .join(Unit, Unit.customer_id == Customer.id)
            .where(Unit.model_id.in_(models), Unit.status != UnitStatus.SCRAPPED)
            .group_by(Customer.id)
            .order_by(Customer.name, Customer.id))


def affected_customers(advisory: Advisory) -> list[Customer]:
    """The customers holding units (tokens, licences, appliances) of the advisory's
    product models in any status but scrapped, by name; one grouped query."""
    return list(db.session.scalars(_affected_query(advisory.id)))


def _notice_key(advisory_id: int, customer_id: int, user: User) -> str:
    key = f"advisory:{advisory_id}:customer:{customer_id}:user:{user.id}"
    return key if len(key) <= 200 else "advisory:sha256:" + hashlib.sha256(
        key.encode()).hexdigest()


def _notice_context(advisory: Advisory, customer: Customer, user: User) -> dict:
    return {
        "name": user.full_name or user.email,
        "customer_name": customer.name,
        "number": advisory.number,
        "title": advisory.title,
        "severity": SEVERITY_LABELS[str(advisory.severity)],
        "affected_versions": advisory.affected_versions,
        "models": ", ".join(m.code for m in advisory.product_models),
        "description": advisory.description,
        "solution": advisory.solution,
        "references": [line.strip() for line in advisory.references.splitlines()
                       if line.strip()],
        "patch_released_on": (advisory.patch_released_on.isoformat()
                              if advisory.patch_released_on else ""),
        "vendor_found": bool(advisory.vendor_found),
        "url": portal_url(advisory.number),
        "vendor_name": current_app.config["VENDOR_NAME"],
    }


def notify_customers(actor: Actor, advisory: Advisory) -> int:
    """R-A2: notice every affected customer not noticed yet: one ``AdvisoryNotice`` each
    and an e-mail (template ``advisory_notice``) to every active customer user of that
    customer, in the user's language. The first run sets ``notified_at``, for a
    vendor-found vulnerability ``public_from_on`` (R-A3), and the status to notified (a
    published advisory stays published). A later run notices only the customers affected
    since; when there are none it changes nothing. A customer without an active user
    gets its notice (shown in the portal later) and no e-mail. Returns the notices
    created. Staff only; audited; commits."""
    _ensure_staff(actor)
    with transaction():
        advisory = _locked(advisory)
        now = clock.now()
        noticed = set(db.session.scalars(
            select(AdvisoryNotice.customer_id).where(AdvisoryNotice.advisory_id == advisory.id)))
        customers = [c for c in affected_customers(advisory) if c.id not in noticed]
        first = advisory.notified_at is None
        if not customers and not first:
            return 0
        users: dict[int, list[User]] = {c.id: [] for c in customers}
        if customers:
            for user in db.session.scalars(
                    select(User).where(User.customer_id.in_(list(users)),
                                       User.role == Role.CUSTOMER,
                                       User.is_active_flag.is_(True))
                    .order_by(User.email)):
                users[user.customer_id].append(user)
        emails = 0
        for customer in customers:
            recipients = users[customer.id]
            db.session.add(AdvisoryNotice(advisory_id=advisory.id, customer_id=customer.id,
                                          queued_at=now,
                                          recipients=[u.email for u in recipients]))
            for user in recipients:
                message = enqueue(to=user.email, language=user.language or customer.language,
                                  template="advisory_notice",
                                  context=_notice_context(advisory, customer, user),
                                  dedupe_key=_notice_key(advisory.id, customer.id, user))
                emails += message is not None
        before = {"status": str(advisory.status),
                  "notified_at": advisory.notified_at.isoformat() if advisory.notified_at
                  else None,
                  "public_from_on": (advisory.public_from_on.isoformat()
                                     if advisory.public_from_on else None)}
        if first:
            advisory.notified_at = now
            if advisory.vendor_found:
                advisory.public_from_on = _public_from_on(clock.to_local(now).date(),
                                                          current_policy())
        if advisory.status == AdvisoryStatus.DRAFT:
            advisory.status = AdvisoryStatus.NOTIFIED
        advisory.updated_at = now
        record(actor, "advisory.notified", "advisory", advisory.id, before=before,
               after={"status": str(advisory.status),
                      "notified_at": advisory.notified_at.isoformat(),
                      "public_from_on": (advisory.public_from_on.isoformat()
                                         if advisory.public_from_on else None),
                      "customer_ids": [c.id for c in customers],
                      "notices": len(customers), "emails": emails,
                      "late": bool(advisory.notify_due_on is not None
                                   and clock.to_local(now).date() > advisory.notify_due_on)})
    return len(customers)


# -- publishing (R-A3) ----------------------------------------------------------------------
def publish_check(advisory: Advisory, today: date) -> tuple[bool, date | None]:
    """R-A3 for ``advisory`` on ``today``: ``warranty.may_publish`` with the first
    notice's China date. (False, None) with a published advisory too."""
    if advisory.status == AdvisoryStatus.PUBLISHED:
        return False, None
    return may_publish(bool(advisory.vendor_found), _first_notified_on(advisory), today,
                       current_policy())


def publish(actor: Actor, advisory: Advisory, today: date) -> Advisory:
    """R-A3: put the advisory on the public pages. A vendor-found vulnerability needs its
    customers notified first and then 14 days (from the first notice's China date; on
    that day it may): before, ``AdvisoryStateError`` naming the date (``possible_on``).
    Any other advisory may be published at once. Staff only; audited; commits."""
    _ensure_staff(actor)
    with transaction():
        advisory = _locked(advisory)
        if advisory.status == AdvisoryStatus.PUBLISHED:
            raise AdvisoryStateError(_("Advisory %(number)s is already published.",
                                       number=advisory.number))
        allowed, possible_on = publish_check(advisory, today)
        if not allowed and possible_on is None:
            raise AdvisoryStateError(_(
                "The vendor found this vulnerability: notify the affected customers first; "
                "it can be published %(days)d days after that (R-A3).",
                days=current_policy().public_disclosure_delay_days))
        if not allowed:
            raise AdvisoryStateError(_(
                "The vendor found this vulnerability and its customers were notified on "
                "%(notified)s: it can be published from %(date)s (R-A3).",
                notified=_first_notified_on(advisory).isoformat(),
                date=possible_on.isoformat()), possible_on=possible_on)
        before = {"status": str(advisory.status), "published_at": None}
        now = clock.now()
        advisory.status = AdvisoryStatus.PUBLISHED
        advisory.published_at = now
        advisory.updated_at = now
        record(actor, "advisory.published", "advisory", advisory.id, before=before,
               after={"status": str(advisory.status), "published_at": now.isoformat(),
                      "today": today.isoformat()})
    return advisory


# -- the customer's side ----------------------------------------------------------------------
def notice_for(customer_id: int, advisory: Advisory) -> AdvisoryNotice | None:
    """The customer's notice of ``advisory``, if it was noticed."""
    return db.session.scalar(
        select(AdvisoryNotice).where(AdvisoryNotice.advisory_id == advisory.id,
                                     AdvisoryNotice.customer_id == customer_id))


def mark_opened(user: User, advisory: Advisory) -> None:
    """A customer user viewed the advisory in the portal: the first view sets the
    notice's ``opened_at``/``opened_by`` (audited; commits). Later views, staff, and a
    customer without a notice change nothing."""
    if user is None or user.role != Role.CUSTOMER or user.customer_id is None:
        return
    now = clock.now()
    with transaction():
        changed = db.session.execute(
            update(AdvisoryNotice)
            .where(AdvisoryNotice.advisory_id == advisory.id,
                   AdvisoryNotice.customer_id == user.customer_id,
                   AdvisoryNotice.opened_at.is_(None))
            .values(opened_at=now, opened_by_id=user.id)
            .execution_options(synchronize_session=False)
        ).rowcount
        if changed != 1:
            return
        notice = notice_for(user.customer_id, advisory)
        db.session.refresh(notice)
        record(Actor(user=user), "advisory_notice.opened", "advisory_notice", notice.id,
               before={"opened_at": None},
               after={"opened_at": now.isoformat(), "advisory": advisory.number,
                      "customer_id": user.customer_id})


def acknowledge(actor: Actor, advisory: Advisory) -> AdvisoryNotice:
    """A customer user acknowledges its customer's notice, once: the first call sets
    ``acknowledged_at``/``by`` (and ``opened_at`` if the notice was never opened) and is
    audited; a later call returns the notice unchanged. Only a customer user
    (``ForbiddenError``); a customer without a notice gets ``AdvisoryNotFoundError``.
    Commits."""
    user = actor.user
    if user is None or user.role != Role.CUSTOMER or user.customer_id is None:
        raise ForbiddenError(_("Only the customer's users acknowledge an advisory."))
    now = clock.now()
    with transaction():
        notice = db.session.scalar(
            select(AdvisoryNotice).where(AdvisoryNotice.advisory_id == advisory.id,
                                         AdvisoryNotice.customer_id == user.customer_id)
            .with_for_update(of=AdvisoryNotice).execution_options(populate_existing=True))
        if notice is None:
            raise AdvisoryNotFoundError(_("No such advisory."))
        if notice.acknowledged_at is not None:
            return notice
        notice.acknowledged_at = now
        notice.acknowledged_by_id = user.id
        if notice.opened_at is None:
            notice.opened_at = now
            notice.opened_by_id = user.id
        record(actor, "advisory_notice.acknowledged", "advisory_notice", notice.id,
               before={"acknowledged_at": None},
               after={"acknowledged_at": now.isoformat(), "advisory": advisory.number,
                      "customer_id": user.customer_id})
    return notice


def customer_advisories(customer_id: int) -> list[tuple[Advisory, AdvisoryNotice]]:
    """The customer's noticed advisories with its notices, newest notice first."""
    rows = db.session.execute(
        select(Advisory, AdvisoryNotice)
        .join(AdvisoryNotice, AdvisoryNotice.advisory_id == Advisory.id)
        .where(AdvisoryNotice.customer_id == customer_id)
        .options(selectinload(Advisory.product_models))
        .order_by(AdvisoryNotice.queued_at.desc(), Advisory.id.desc())
    ).all()
    return [(advisory, notice) for advisory, notice in rows]


# -- reading ----------------------------------------------------------------------------------
def public_advisories() -> list[Advisory]:
    """Published advisories, newest first (no customer data)."""
    return list(db.session.scalars(
        select(Advisory).where(Advisory.status == AdvisoryStatus.PUBLISHED)
        .options(selectinload(Advisory.product_models))
        .order_by(Advisory.published_at.desc(), Advisory.id.desc())))


def get_public(number: str) -> Advisory | None:
    """The published advisory ``number``, or None (unknown or not published)."""
    return db.session.scalar(
        select(Advisory).where(Advisory.number == str(number).strip().upper(),
                               Advisory.status == AdvisoryStatus.PUBLISHED))


def get_advisory(number: str) -> Advisory | None:
    """The advisory ``number`` in any status (for staff), or None."""
    return db.session.scalar(
        select(Advisory).where(Advisory.number == str(number).strip().upper()))


def visible_advisory(user: User | None, number: str) -> tuple[Advisory, AdvisoryNotice | None]:
    """The advisory ``number`` as ``user`` may see it: staff any, a customer user a
    published one or one its customer was noticed of (with the notice), anyone else a
    published one. ``AdvisoryNotFoundError`` otherwise (another customer's notice reads
    like an unknown number)."""
    advisory = get_advisory(number)
    if advisory is None:
        raise AdvisoryNotFoundError(_("No such advisory."))
    if is_staff_user(user):
        return advisory, None
    notice = None
    if user is not None and user.role == Role.CUSTOMER and user.customer_id is not None:
        notice = notice_for(user.customer_id, advisory)
    if notice is None and advisory.status != AdvisoryStatus.PUBLISHED:
        raise AdvisoryNotFoundError(_("No such advisory."))
    return advisory, notice


def _status(raw: object) -> AdvisoryStatus | None:
    if raw is None or raw == "":
        return None
    try:
        return AdvisoryStatus(str(raw))
    except ValueError:
        raise AdvisoryError(_("Unknown status %(status)s: use draft, notified or published.",
                              status=str(raw)[:40]), "status") from None


def staff_list(status: str | AdvisoryStatus | None = None,
               today: date | None = None) -> list[AdvisoryRow]:
    """Every advisory (or those of ``status``), newest first, with its notices sent,
    opened and acknowledged (one grouped query), the R-A2 due day and the overdue flag
    (the due day passed and no customer was notified). ``today`` defaults to China's
    date now. Raises ``AdvisoryError`` (field ``status``) for an unknown status."""
    wanted = _status(status)
    today = today or clock.today()
    query = (select(Advisory).options(selectinload(Advisory.product_models))
             .order_by(Advisory.created_at.desc(), Advisory.id.desc()))
    if wanted is not None:
        query = query.where(Advisory.status == wanted)
    return _rows(list(db.session.scalars(query)), today)


def staff_row(advisory: Advisory, today: date | None = None) -> AdvisoryRow:
    """``advisory`` as a line of ``staff_list`` (notice counts, due day, overdue)."""
    return _rows([advisory], today or clock.today())[0]


def _rows(advisories: list[Advisory], today: date) -> list[AdvisoryRow]:
    counts: dict[int, tuple[int, int, int]] = {}
    if advisories:
        counts = {row[0]: (row[1], int(row[2] or 0), int(row[3] or 0)) for row in
                  db.session.execute(
                      select(AdvisoryNotice.advisory_id, func.count(),
                             func.sum(case((AdvisoryNotice.opened_at.is_not(None), 1),
                                           else_=0)),
                             func.sum(case((AdvisoryNotice.acknowledged_at.is_not(None), 1),
                                           else_=0)))
                      .where(AdvisoryNotice.advisory_id.in_([a.id for a in advisories]))
                      .group_by(AdvisoryNotice.advisory_id))}
    rows = []
    for advisory in advisories:
        sent, opened, acked = counts.get(advisory.id, (0, 0, 0))
        waiting = advisory.notified_at is None and advisory.notify_due_on is not None
        rows.append(AdvisoryRow(
            advisory=advisory, sent=sent, opened=opened, acknowledged=acked,
            notify_due_on=advisory.notify_due_on,
            overdue=waiting and today > advisory.notify_due_on,
            due=waiting and today >= advisory.notify_due_on))
    return rows


def notices(advisory: Advisory) -> list[AdvisoryNotice]:
    """The advisory's notices with their customers, by customer name (staff detail)."""
    return list(db.session.scalars(
        select(AdvisoryNotice).where(AdvisoryNotice.advisory_id == advisory.id)
        .join(Customer, Customer.id == AdvisoryNotice.customer_id)
        .options(selectinload(AdvisoryNotice.customer))
        .order_by(Customer.name, AdvisoryNotice.id)))


# -- the tick job (R-A2) ------------------------------------------------------------------------
def _marked():
    return exists().where(AuditEvent.action == DUE_MARKER,
                          AuditEvent.entity_type == "advisory",
                          AuditEvent.entity_id == cast(Advisory.id, String))


def _due_conditions(today: date) -> tuple:
    return (Advisory.patch_released_on.is_not(None), Advisory.notify_due_on.is_not(None),
            Advisory.notify_due_on <= today, Advisory.notified_at.is_(None),
            Advisory.status == AdvisoryStatus.DRAFT)


def due_candidates(now: datetime) -> list[int]:
    """Ids of the advisories ``advisory_deadline_job`` would alert about at ``now``."""
    today = clock.to_local(now).date()
    return list(db.session.scalars(
        select(Advisory.id).where(*_due_conditions(today), ~_marked())
        .order_by(Advisory.notify_due_on, Advisory.id)))


def _due_recipients(advisory: Advisory) -> list[User]:
    people = list(db.session.scalars(
        select(User).where(User.role == Role.MANAGER, User.is_active_flag.is_(True))
        .order_by(User.email)))
    author = advisory.created_by
    if author is not None and author.is_active:
        people.insert(0, author)
    return list({u.id: u for u in people}.values())


def advisory_deadline_job(now: datetime) -> JobResult:
    """R-A2: an advisory with a patch date whose notice due day (patch + 2 working days)
    is today or past while no customer was notified yet: tell its author and every active
    manager once, in the app (``advisory_due``) and by e-mail (``advisory_due``).

    Exactly once per advisory, also with two ticks at the same moment: the advisory row is
    claimed by an ``UPDATE`` (row lock; SQLite's write lock) and the marker (an audit
    event ``DUE_MARKER``) re-checked under the lock; the e-mails carry dedupe keys the
    outbox's unique index holds, so a concurrent second run fails at commit and rolls
    back. Each advisory is
    its own transaction; a failure is logged and left for the next run."""
    ids = due_candidates(now)
    if not ids:
        return JobResult("advisory-deadline: none", busy=False)
    db.session.rollback()
    alerted = emails = notices = failed = 0
    for advisory_id in ids:
        try:
            outcome = alert_due(advisory_id, now)
        except Exception:  # noqa: BLE001 - logged; retried on the next run
            db.session.rollback()
            log.exception("advisory-deadline alert for advisory %s failed", advisory_id)
            failed += 1
            continue
        if outcome is None:
            continue
        alerted += 1
        notices += outcome[0]
        emails += outcome[1]
    text = f"advisory-deadline: alerted {alerted}, notices {notices}, e-mails {emails}"
    if failed:
        text += f", failed {failed}"
    return JobResult(text, busy=bool(alerted or failed), items=alerted, emails=emails,
                     failed=failed)


def alert_due(advisory_id: int, now: datetime) -> tuple[int, int] | None:
    """Alert about one due advisory; commits. Returns (in-app notices, e-mails), or None
    when another run alerted first, it is no longer due, or there is nobody to tell."""
    today = clock.to_local(now).date()
    # Claim the row first: a write takes SQLite's lock and PostgreSQL's row lock, so the
    # marker read next sees whatever a concurrent run committed before us.
    claimed = db.session.execute(
        update(Advisory).where(Advisory.id == advisory_id, *_due_conditions(today))
        .values(updated_at=Advisory.updated_at)
        .execution_options(synchronize_session=False)
    ).rowcount
    if claimed != 1 or db.session.scalar(
            select(_marked()).where(Advisory.id == advisory_id)):
        db.session.rollback()
        return None
    advisory = db.session.scalar(
        select(Advisory).where(Advisory.id == advisory_id)
        .execution_options(populate_existing=True))
    people = _due_recipients(advisory)
    if not people:
        db.session.rollback()
        log.warning("advisory %s is due for notice but there is no active manager or "
                    "author to tell", advisory.number)
        return None
    data = {"number": advisory.number, "title": advisory.title,
            "due": advisory.notify_due_on.isoformat(),
            "patch": advisory.patch_released_on.isoformat()}
    context = {"number": advisory.number, "title": advisory.title,
               "severity": SEVERITY_LABELS[str(advisory.severity)],
               "patch_released_on": data["patch"], "due": data["due"],
               "overdue": today > advisory.notify_due_on,
               "days": current_policy().advisory_notice_working_days,
               "affected": len(affected_customers(advisory)),
               "url": staff_url(advisory.number),
               "vendor_name": current_app.config["VENDOR_NAME"]}
    emails = 0
    for person in people:
        notify(person, "advisory_due", data).created_at = now
        message = enqueue(to=person.email, language=person.language or "zh_CN",
                          template="advisory_due",
                          context={**context, "name": person.full_name or person.email},
                          dedupe_key=f"advisory-due:{advisory.id}:user:{person.id}")
        emails += message is not None
    event = record(Actor(label=DUE_ACTOR), DUE_MARKER, "advisory", advisory.id,
                   after={"notify_due_on": data["due"], "patch_released_on": data["patch"],
                          "recipients": [p.email for p in people]})
    event.at = now
    try:
        db.session.commit()
    except IntegrityError:  # a concurrent run queued the same e-mails first
        db.session.rollback()
        return None
    return len(people), emails


__all__ = [
    "DUE_MARKER", "SEVERITY_HELP", "SEVERITY_LABELS", "STAFF_ROLES", "STATUS_LABELS",
    "AdvisoryError", "AdvisoryNotFoundError", "AdvisoryRow", "AdvisoryStateError",
    "acknowledge", "advisory_deadline_job", "affected_customers", "alert_due",
    "create_advisory", "customer_advisories", "due_candidates", "get_advisory", "get_public",
    "is_staff_user", "mark_opened", "notice_for", "notices", "notify_customers",
    "portal_url", "public_advisories", "publish", "publish_check", "severity_help",
    "staff_list", "staff_row", "staff_url", "update_advisory", "visible_advisory",
]
