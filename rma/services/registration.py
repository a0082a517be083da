"""Registration: an organisation applies, staff approve it into a ``Customer`` with its
unique service contract number (R-C1) and an invitation for its contact, or reject it
with a reason. Every step writes its audit event in the same transaction (R-R4) and
sends its e-mail through the outbox in the applicant's language.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload

from rma import clock
from rma.extensions import db
from rma.models import (
    ApplicationStatus,
    Customer,
    RegistrationApplication,
    Role,
    Unit,
    UnitStatus,
    User,
)
from rma.policy import current_policy
from rma.services import ConflictError, NotFoundError, ValidationError
from rma.services.audit import Actor, record
from rma.services.catalog import add_customer, parse_date
from rma.services.invitations import _, add_invitation, expiry_text, invitation_link
from rma.services.outbox import enqueue
from rma.services.users import normalize_email
from warranty import SerialError, normalize_serial

MAX_HELD_SERIALS = 5000
_MODEL_SEPARATOR = re.compile(r"[:：]")
_SERIAL_SEPARATORS = re.compile(r"[\s,;，、；]+")
_PHONE = re.compile(r"^[0-9+()\-\s./#*extEXT]{5,64}$")


class HoldingsError(ValidationError):
    """Malformed serials in the holdings list; ``messages`` has one line per problem."""

    def __init__(self, messages: list[str]):
        super().__init__(messages[0], "holdings")
        self.messages = messages


@dataclass(frozen=True)
class HeldSerial:
    """One serial the applicant says it holds, normalised (D-8), with its line."""

    serial: str
    line: int
    model_text: str  # what the applicant wrote before ':' ("" when nothing)


def parse_holdings(text: str | None) -> list[HeldSerial]:
    """Read the holdings list: one serial per line, or ``model: serial, serial ...``.

    Serials are normalised by D-8 and de-duplicated; malformed ones raise
    ``HoldingsError`` naming each line and what was read there."""
    policy = current_policy()
    held: dict[str, HeldSerial] = {}
    errors: list[str] = []
    for number, line in enumerate((text or "").splitlines(), start=1):
        if not line.strip():
            continue
        model_text, serials = "", line
        parts = _MODEL_SEPARATOR.split(line, maxsplit=1)
        if len(parts) == 2:
            model_text, serials = " ".join(parts[0].split())[:100], parts[1]
        for token in _SERIAL_SEPARATORS.split(serials.strip()):
            if not token:
                continue
            try:
                serial = normalize_serial(token, policy)
            except SerialError:
                errors.append(_('Line %(n)d: %(serial)s is not a valid serial. Use 4 to 32 '
                                'characters A-Z, 0-9 and "-".', n=number, serial=token[:40]))
                continue
            held.setdefault(serial, HeldSerial(serial, number, model_text))
    if errors:
        raise HoldingsError(errors)
    if len(held) > MAX_HELD_SERIALS:
        raise HoldingsError([_("At most %(n)d serials per application.", n=MAX_HELD_SERIALS)])
    return list(held.values())


def _text(raw: str | None, field: str, limit: int, required: bool = True,
          multiline: bool = False) -> str:
    if multiline:
        value = "\n".join(line.rstrip() for line in (raw or "").strip().splitlines())
    else:
        value = " ".join((raw or "").split())
    if required and not value:
        raise ValidationError(_("This field is required."), field)
    if len(value) > limit:
        raise ValidationError(_("At most %(n)d characters.", n=limit), field)
    return value


def _email(raw: str | None, field: str) -> str:
    try:
        return normalize_email(raw or "")
    except ValidationError:
        raise ValidationError(_("This is not a valid e-mail address."), field) from None


def _phone(raw: str | None) -> str:
    value = _text(raw, "contact_phone", 64)
    if not _PHONE.match(value):
        raise ValidationError(_("Use digits, spaces and + - ( ) only."), "contact_phone")
    return value


def _past_date(raw, field: str) -> date | None:
    try:
        value = parse_date(raw, field)
    except ValidationError:
        raise ValidationError(_("Use a date like 2026-03-10."), field) from None
    if value is not None and value > clock.today():
        raise ValidationError(_("This date is in the future."), field)
    return value


def _language(raw: str | None) -> str:
    if raw not in ("zh_CN", "en"):
        raise ValidationError(_("Choose Chinese or English."), "language")
    return raw


def submit_application(
    organisation_name: str,
    address: str,
    contact_name: str,
    contact_email: str,
    contact_phone: str,
    other_contacts: str = "",
    holdings: str = "",
    accepted_on: date | str | None = None,
    language: str = "zh_CN",
) -> RegistrationApplication:
    """Record a pending application, audit it, and e-mail the contact that it arrived.

    Serials in ``holdings`` must be well-formed (D-8); unknown ones are allowed (staff see
    them flagged). A second pending application for the same e-mail is a
    ``ConflictError``."""
    try:
        email = _email(contact_email, "contact_email")
        application = RegistrationApplication(
            organisation_name=_text(organisation_name, "organisation_name", 200),
            address=_text(address, "address", 2000, multiline=True),
            contact_name=_text(contact_name, "contact_name", 200),
            contact_email=email,
            contact_phone=_phone(contact_phone),
            other_contacts=_text(other_contacts, "other_contacts", 2000, required=False,
                                 multiline=True),
            holdings=_text(holdings, "holdings", 100_000, required=False, multiline=True),
            accepted_on=_past_date(accepted_on, "accepted_on"),
            language=_language(language),
            status=ApplicationStatus.PENDING,
            submitted_at=clock.now(),
        )
        parse_holdings(application.holdings)
        pending = db.session.scalar(
            select(RegistrationApplication.id).where(
                RegistrationApplication.contact_email == email,
                RegistrationApplication.status == ApplicationStatus.PENDING,
            )
        )
        if pending is not None:
            raise ConflictError(
                _("An application for %(email)s is already waiting for review. We will "
                  "write to you when it has been reviewed.", email=email), "contact_email")
        db.session.add(application)
        try:
            db.session.flush()
        except IntegrityError:  # the same e-mail applied at the same moment
            db.session.rollback()
            raise ConflictError(
                _("An application for %(email)s is already waiting for review. We will "
                  "write to you when it has been reviewed.", email=email),
                "contact_email") from None
        record(Actor(label=f"applicant:{email}"[:254]), "application.submitted",
               "registration_application", application.id, None, application.as_audit())
        enqueue(
            to=email,
            language=application.language,
            template="registration_received",
            context={"application": application, "vendor": current_app.config["VENDOR_NAME"]},
        )
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return application


# -- staff review -------------------------------------------------------------------------
FREE, UNKNOWN, OTHER_CUSTOMER, THIS_CUSTOMER, NOT_IN_SERVICE = (
    "free", "unknown", "other_customer", "this_customer", "not_in_service")


@dataclass(frozen=True)
class HeldMatch:
    """A held serial matched against the units table, for the reviewer."""

    held: HeldSerial
    unit: Unit | None
    state: str  # FREE (assignable), UNKNOWN, OTHER_CUSTOMER, THIS_CUSTOMER, NOT_IN_SERVICE

    @property
    def assignable(self) -> bool:
        return self.state == FREE


def _units_by_serial(serials: Iterable[str], lock: bool = False) -> dict[str, Unit]:
    serials = list(serials)
    found: dict[str, Unit] = {}
    for start in range(0, len(serials), 500):
        chunk = serials[start:start + 500]
        if lock:
            stmt = select(Unit).where(Unit.serial.in_(chunk)).with_for_update(of=Unit)
        else:
            stmt = select(Unit).options(joinedload(Unit.customer)).where(Unit.serial.in_(chunk))
        found.update({unit.serial: unit for unit in db.session.scalars(stmt).unique()})
    return found


def _state(unit: Unit | None, customer_id: int | None) -> str:
    if unit is None:
        return UNKNOWN
    if unit.customer_id is not None:
        return THIS_CUSTOMER if unit.customer_id == customer_id else OTHER_CUSTOMER
    if unit.status != UnitStatus.IN_SERVICE:
        return NOT_IN_SERVICE
    return FREE


def match_holdings(application: RegistrationApplication) -> list[HeldMatch]:
    """The application's serials against the units table: known and free, known and
    registered to another customer, not in service, or unknown. One query per 500."""
    try:
        held = parse_holdings(application.holdings)
    except ValidationError:
        return []
    units = _units_by_serial(h.serial for h in held)
    return [HeldMatch(h, units.get(h.serial), _state(units.get(h.serial),
                                                     application.customer_id))
            for h in held]


def get_application(application_id: int) -> RegistrationApplication:
    application = db.session.get(RegistrationApplication, application_id)
    if application is None:
        raise NotFoundError(_("No such application."))
    return application


def contact_has_account(application: RegistrationApplication) -> bool:
    return db.session.scalar(
        select(User.id).where(User.email == application.contact_email)) is not None


def _pending_for_review(application_id: int) -> RegistrationApplication:
    # Locked, so two reviewers acting at once are serialised and the second sees the
    # first one's decision.
    application = db.session.scalar(
        select(RegistrationApplication)
        .where(RegistrationApplication.id == application_id)
        .with_for_update()
    )
    if application is None:
        raise NotFoundError(_("No such application."))
    if application.status != ApplicationStatus.PENDING:
        raise ConflictError(_("This application was already %(status)s; nothing was changed.",
                              status=status_label(application.status)))
    return application


def status_label(status) -> str:
    return {
        ApplicationStatus.PENDING: _("pending"),
        ApplicationStatus.APPROVED: _("approved"),
        ApplicationStatus.REJECTED: _("rejected"),
    }.get(ApplicationStatus(status), str(status))


@dataclass(frozen=True)
class Approval:
    application: RegistrationApplication
    customer: Customer
    assigned: list[str]
    invitation_link: str


def approve_application(
    actor: Actor,
    application_id: int,
    name: str | None = None,
    address: str | None = None,
    accepted_on: date | str | None = None,
    assign_serials: Iterable[str] = (),
) -> Approval:
    """Approve a pending application, all in one transaction: create the customer with
    its unique contract number (R-C1, through ``catalog.add_customer``), optionally give
    it the listed units that are known, unassigned and in service (never another
    customer's), invite the contact as the customer's admin, and e-mail the contract
    number and the invitation link in the applicant's language.

    Raises ``ConflictError`` when the application is no longer pending, a chosen serial
    is not free, or the contact already has an account; nothing is changed then."""
    try:
        application = _pending_for_review(application_id)
        if contact_has_account(application):
            raise ConflictError(_("%(email)s already has an account, so it cannot be invited "
                                  "as the new customer's administrator. Reject the "
                                  "application and explain.", email=application.contact_email))
        before = application.as_audit()
        customer = add_customer(
            actor,
            name if name not in (None, "") else application.organisation_name,
            accepted_on if accepted_on not in (None, "") else application.accepted_on,
            12,
            address if address not in (None, "") else application.address,
        )
        assigned = _assign_units(actor, application, customer, assign_serials)
        application.status = ApplicationStatus.APPROVED
        application.customer_id = customer.id
        application.reviewed_by_id = actor.user.id if actor.user is not None else None
        application.reviewed_at = clock.now()
        record(actor, "application.approved", "registration_application", application.id,
               before, {**application.as_audit(), "contract_number": customer.contract_number,
                        "assigned_serials": assigned})
        invitation, raw = add_invitation(actor, application.contact_email, Role.CUSTOMER,
                                         customer.id, True, application.language)
        link = invitation_link(raw)
        enqueue(
            to=application.contact_email,
            language=application.language,
            template="registration_approved",
            context={
                "application": application,
                "customer": customer,
                "assigned": assigned,
                "link": link,
                "expires": expiry_text(invitation),
                "vendor": current_app.config["VENDOR_NAME"],
            },
        )
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return Approval(application, customer, assigned, link)


def _assign_units(actor: Actor, application: RegistrationApplication, customer: Customer,
                  chosen: Iterable[str]) -> list[str]:
    held = {h.serial for h in parse_holdings(application.holdings)}
    wanted: list[str] = []
    for raw in chosen:
        try:
            serial = normalize_serial(raw, current_policy())
        except SerialError:
            raise ValidationError(_("%(serial)s is not a valid serial.", serial=str(raw)[:40]),
                                  "assign") from None
        if serial not in held:
            raise ValidationError(_("%(serial)s is not in this application's list.",
                                    serial=serial), "assign")
        if serial not in wanted:
            wanted.append(serial)
    if not wanted:
        return []
    units = _units_by_serial(wanted, lock=True)
    for serial in wanted:
        state = _state(units.get(serial), None)
        if state != FREE:
            raise ConflictError(_("Unit %(serial)s cannot be given to the new customer: it is "
                                  "unknown, registered to another customer or not in service. "
                                  "Nothing was changed.", serial=serial), "assign")
    for serial in wanted:
        unit = units[serial]
        before = unit.as_audit()
        unit.customer_id = customer.id
        record(actor, "unit.updated", "unit", unit.serial, before,
               {**unit.as_audit(), "registration_application_id": application.id})
    return wanted


def reject_application(actor: Actor, application_id: int, reason: str) -> RegistrationApplication:
    """Reject a pending application with a reason (required), which is e-mailed to the
    contact in their language. A non-pending application is a ``ConflictError``."""
    try:
        text = _text(reason, "reason", 2000, multiline=True)
        application = _pending_for_review(application_id)
        before = application.as_audit()
        application.status = ApplicationStatus.REJECTED
        application.review_note = text
        application.reviewed_by_id = actor.user.id if actor.user is not None else None
        application.reviewed_at = clock.now()
        record(actor, "application.rejected", "registration_application", application.id,
               before, application.as_audit())
        enqueue(
            to=application.contact_email,
            language=application.language,
            template="registration_rejected",
            context={"application": application, "reason": text,
                     "vendor": current_app.config["VENDOR_NAME"]},
        )
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return application


def list_applications(status: str | None, page: int, per_page: int
                      ) -> tuple[list[RegistrationApplication], bool]:
    """Applications, pending ones first, each group newest first. ``status`` filters;
    returns (rows, has_more)."""
    stmt = select(RegistrationApplication)
    if status:
        stmt = stmt.where(RegistrationApplication.status == ApplicationStatus(status))
    pending_first = (RegistrationApplication.status != ApplicationStatus.PENDING)
    stmt = stmt.order_by(pending_first, RegistrationApplication.submitted_at.desc(),
                         RegistrationApplication.id.desc())
    rows = list(db.session.scalars(stmt.offset((page - 1) * per_page).limit(per_page + 1)))
    return rows[:per_page], len(rows) > per_page
