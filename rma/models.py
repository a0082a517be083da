"""Database models (SQLAlchemy 2 typed declarative).

Rules live in ``warranty/``; these classes hold the facts and convert them to the
engine's plain dataclasses (``Unit.facts``).
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from flask_login import UserMixin
from sqlalchemy import (
    JSON,
    CheckConstraint,
    Date,
    Enum,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, backref, mapped_column, relationship

from rma import clock
from rma.extensions import db
from rma.types import UTCDateTime
from warranty import Basis, UnitFacts
from warranty.lifecycle import FINAL_STATES, ItemState


class ProductKind(enum.StrEnum):
    HARDWARE = "hardware"
    SOFTWARE = "software"
    APPLIANCE = "appliance"


class Role(enum.StrEnum):
    CUSTOMER = "customer"
    SUPPORT = "support"
    WAREHOUSE = "warehouse"
    FINANCE = "finance"
    MANAGER = "manager"
    ADMIN = "admin"


class UnitStatus(enum.StrEnum):
    IN_STOCK = "in_stock"  # spare, held by the vendor
    IN_SERVICE = "in_service"  # shipped to a customer
    RETURNED = "returned"  # back at the vendor for inspection
    REPLACED = "replaced"  # a replacement took its place
    SCRAPPED = "scrapped"


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    # Stored as VARCHAR + CHECK so adding a value later is a small migration on both DBs.
    return Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=20,
        values_callable=lambda e: [m.value for m in e],
        validate_strings=True,
    )


class ProductModel(db.Model):
    """A product model: its life in months is its warranty (R-W1, R-W2)."""

    __tablename__ = "product_models"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[ProductKind] = mapped_column(_enum(ProductKind, "product_kind"))
    life_months: Mapped[int] = mapped_column(Integer)
    warranty_basis: Mapped[Basis] = mapped_column(_enum(Basis, "warranty_basis"))
    replacement_price: Mapped[Decimal] = mapped_column(Numeric(12, 2), default=Decimal("0.00"))
    # What one unit costs the vendor: a free replacement's warranty cost (issue 7).
    unit_cost: Mapped[Decimal] = mapped_column(Numeric(12, 2), default=Decimal("0.00"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    # Models the admin allows to ship as a replacement for this one (issue 4).
    successors: Mapped[list[ProductModel]] = relationship(
        secondary="model_successors",
        primaryjoin="ProductModel.id == model_successors.c.model_id",
        secondaryjoin="ProductModel.id == model_successors.c.successor_id",
        order_by="ProductModel.code",
    )

    __table_args__ = (
        CheckConstraint("life_months >= 1 AND life_months <= 240", name="life_months_range"),
        CheckConstraint("replacement_price >= 0", name="price_not_negative"),
        CheckConstraint("unit_cost >= 0", name="unit_cost_not_negative"),
    )

    def as_audit(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "name": self.name,
            "kind": str(self.kind),
            "life_months": self.life_months,
            "warranty_basis": str(self.warranty_basis),
            "replacement_price": str(self.replacement_price),
            "unit_cost": str(self.unit_cost),
        }


class Customer(db.Model):
    """An organisation under a service contract (R-C1, R-C2)."""

    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    contract_number: Mapped[str] = mapped_column(String(32), unique=True)
    address: Mapped[str] = mapped_column(Text, default="")
    accepted_on: Mapped[date | None] = mapped_column(Date)
    contract_months: Mapped[int] = mapped_column(Integer, default=12)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    # -- billing (issue 5): printed on invoices; credit terms let finance release paid
    # replacements before payment (D-3).
    billing_name: Mapped[str] = mapped_column(String(200), default="")
    billing_address: Mapped[str] = mapped_column(Text, default="")
    tax_id: Mapped[str] = mapped_column(String(64), default="")
    billing_email: Mapped[str] = mapped_column(String(254), default="")
    language: Mapped[str] = mapped_column(String(8), default="zh_CN")  # of its documents
    credit_terms: Mapped[bool] = mapped_column(default=False)
    payment_terms_days: Mapped[int] = mapped_column(Integer, default=30)

    __table_args__ = (
        CheckConstraint("contract_months >= 1", name="contract_months_positive"),
        CheckConstraint("payment_terms_days >= 0 AND payment_terms_days <= 365",
                        name="payment_terms_range"),
        CheckConstraint("language IN ('zh_CN', 'en')", name="language_known"),
        Index("ix_customers_name", "name"),
    )

    def as_audit(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "contract_number": self.contract_number,
            "address": self.address,
            "accepted_on": self.accepted_on.isoformat() if self.accepted_on else None,
            "contract_months": self.contract_months,
            "billing_name": self.billing_name,
            "billing_address": self.billing_address,
            "tax_id": self.tax_id,
            "billing_email": self.billing_email,
            "language": self.language,
            "credit_terms": bool(self.credit_terms),
            "payment_terms_days": self.payment_terms_days,
        }


class User(UserMixin, db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[Role] = mapped_column(_enum(Role, "user_role"))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True)
    language: Mapped[str] = mapped_column(String(8), default="zh_CN")
    is_active_flag: Mapped[bool] = mapped_column("is_active", default=True)
    # A customer's admin invites colleagues and manages its organisation's users.
    is_customer_admin: Mapped[bool] = mapped_column(default=False)
    full_name: Mapped[str] = mapped_column(String(200), default="")
    phone: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    customer: Mapped[Customer | None] = relationship()

    __table_args__ = (
        # A customer user belongs to exactly one customer; staff belong to none.
        CheckConstraint(
            "(role = 'customer' AND customer_id IS NOT NULL)"
            " OR (role <> 'customer' AND customer_id IS NULL)",
            name="customer_role_has_customer",
        ),
        CheckConstraint("language IN ('zh_CN', 'en')", name="language_known"),
    )

    @property
    def is_active(self) -> bool:  # Flask-Login: inactive users cannot log in
        return bool(self.is_active_flag)

    def has_role(self, *roles: Role | str) -> bool:
        return self.role in {Role(r) for r in roles}

    @property
    def is_staff(self) -> bool:
        return self.role != Role.CUSTOMER

    def as_audit(self) -> dict[str, Any]:
        return {
            "email": self.email,
            "role": str(self.role),
            "customer_id": self.customer_id,
            "language": self.language,
            "is_active": bool(self.is_active_flag),
            "is_customer_admin": bool(self.is_customer_admin),
        }


class ApiToken(db.Model):
    """A bearer token for the API; only its SHA-256 is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship()


class Unit(db.Model):
    """A token, licence or server tracked by its normalised serial (D-8)."""

    __tablename__ = "units"

    id: Mapped[int] = mapped_column(primary_key=True)
    serial: Mapped[str] = mapped_column(String(32), unique=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("product_models.id"))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))
    lot: Mapped[str | None] = mapped_column(String(64))
    shipped_on: Mapped[date | None] = mapped_column(Date)
    activated_on: Mapped[date | None] = mapped_column(Date)
    status: Mapped[UnitStatus] = mapped_column(
        _enum(UnitStatus, "unit_status"), default=UnitStatus.IN_SERVICE
    )
    replaces_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now, onupdate=clock.now)

    # "unnested": an outer join to units (an RMA item's unit) must not wrap units JOIN
    # product_models in a subquery SQLite cannot flatten (bench/scan.py found it).
    model: Mapped[ProductModel] = relationship(lazy="joined", innerjoin="unnested")
    customer: Mapped[Customer | None] = relationship()
    replaces: Mapped[Unit | None] = relationship(remote_side="Unit.id")

    __table_args__ = (
        Index("ix_units_customer_id", "customer_id"),
        # (model, lot, shipped_on) covers the per-lot and per-shipment-month unit counts of
        # the failure analytics (issue 7) as well as the lookups by model and lot.
        Index("ix_units_model_id_lot_shipped_on", "model_id", "lot", "shipped_on"),
        Index("ix_units_model_id_shipped_on", "model_id", "shipped_on"),
        Index("ix_units_replaces_id", "replaces_id"),
        Index("ix_units_status", "status"),
    )

    def facts(self, depth: int = 0) -> UnitFacts:
        """This unit as the warranty engine sees it, with its replacement chain."""
        if depth > 50:
            raise RuntimeError(f"replacement chain of {self.serial} is longer than 50 units")
        model = self.model
        return UnitFacts(
            serial=self.serial,
            life_months=model.life_months,
            basis=Basis(model.warranty_basis),
            shipped_on=self.shipped_on,
            activated_on=self.activated_on,
            acceptance_on=self.customer.accepted_on if self.customer else None,
            replaces=self.replaces.facts(depth + 1) if self.replaces is not None else None,
        )

    def as_audit(self) -> dict[str, Any]:
        return {
            "serial": self.serial,
            "model_id": self.model_id,
            "customer_id": self.customer_id,
            "lot": self.lot,
            "shipped_on": self.shipped_on.isoformat() if self.shipped_on else None,
            "activated_on": self.activated_on.isoformat() if self.activated_on else None,
            "status": str(self.status),
            "replaces_id": self.replaces_id,
        }


class AuditEvent(db.Model):
    """Who did what, when, with the state before and after (R-R4).

    Written by the service that makes the change, in the same transaction.
    """

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    actor_label: Mapped[str] = mapped_column(String(254))
    action: Mapped[str] = mapped_column(String(64))
    entity_type: Mapped[str] = mapped_column(String(32))
    entity_id: Mapped[str] = mapped_column(String(64))
    before: Mapped[dict | None] = mapped_column(JSON)
    after: Mapped[dict | None] = mapped_column(JSON)

    actor: Mapped[User | None] = relationship()

    __table_args__ = (
        Index("ix_audit_events_entity", "entity_type", "entity_id"),
        Index("ix_audit_events_at", "at"),
        Index("ix_audit_events_actor_id", "actor_id"),
    )


class NumberSequence(db.Model):
    """Counters for numbers issued to people (contract, RMA, invoice numbers).

    Incremented with a single ``UPDATE ... RETURNING`` so two writers never get the same
    number and a rolled-back transaction leaves no gap.
    """

    __tablename__ = "number_sequences"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(32))
    year: Mapped[int] = mapped_column(Integer)
    last_value: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (UniqueConstraint("name", "year", name="uq_number_sequences_name_year"),)


# -- customer portal (issue 3) ----------------------------------------------------------
class ApplicationStatus(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


class RegistrationApplication(db.Model):
    """An organisation asking to be registered; staff approve it into a ``Customer`` with
    its service contract number (R-C1) and an invitation for the contact."""

    __tablename__ = "registration_applications"

    id: Mapped[int] = mapped_column(primary_key=True)
    organisation_name: Mapped[str] = mapped_column(String(200))
    address: Mapped[str] = mapped_column(Text)
    contact_name: Mapped[str] = mapped_column(String(200))
    contact_email: Mapped[str] = mapped_column(String(254))
    contact_phone: Mapped[str] = mapped_column(String(64))
    other_contacts: Mapped[str] = mapped_column(Text, default="")
    holdings: Mapped[str] = mapped_column(Text, default="")  # products and serials held
    accepted_on: Mapped[date | None] = mapped_column(Date)
    language: Mapped[str] = mapped_column(String(8), default="zh_CN")
    status: Mapped[ApplicationStatus] = mapped_column(
        _enum(ApplicationStatus, "application_status"), default=ApplicationStatus.PENDING
    )
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reviewed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    review_note: Mapped[str] = mapped_column(Text, default="")
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))

    customer: Mapped[Customer | None] = relationship()
    reviewed_by: Mapped[User | None] = relationship()

    __table_args__ = (
        Index("ix_registration_applications_status", "status", "submitted_at"),
        # One pending application per e-mail, also when two arrive at the same moment.
        Index("uq_registration_applications_pending_email", "contact_email", unique=True,
              sqlite_where=text("status = 'pending'"),
              postgresql_where=text("status = 'pending'")),
        CheckConstraint("language IN ('zh_CN', 'en')", name="language_known"),
    )

    def as_audit(self) -> dict[str, Any]:
        return {
            "organisation_name": self.organisation_name,
            "contact_email": self.contact_email,
            "status": str(self.status),
            "customer_id": self.customer_id,
            "review_note": self.review_note,
        }


class Invitation(db.Model):
    """A one-time link to set a password and join a customer (or staff). Only the
    token's SHA-256 is stored."""

    __tablename__ = "invitations"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), index=True)
    role: Mapped[Role] = mapped_column(_enum(Role, "invitation_role"))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True)
    is_customer_admin: Mapped[bool] = mapped_column(default=False)
    language: Mapped[str] = mapped_column(String(8), default="zh_CN")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    invited_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    customer: Mapped[Customer | None] = relationship()
    invited_by: Mapped[User | None] = relationship(foreign_keys=[invited_by_id])

    def as_audit(self) -> dict[str, Any]:
        return {
            "email": self.email,
            "role": str(self.role),
            "customer_id": self.customer_id,
            "is_customer_admin": bool(self.is_customer_admin),
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
            "accepted_at": self.accepted_at.isoformat() if self.accepted_at else None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }


class RmaStatus(enum.StrEnum):
    OPEN = "open"  # at least one item still in progress
    CLOSED = "closed"  # every item closed, cancelled or rejected
    CANCELLED = "cancelled"


# An RMA item's state is the engine's: the transitions live in warranty.lifecycle.
ItemStatus = ItemState
FINAL_ITEM_STATUSES = FINAL_STATES


class Rma(db.Model):
    """A return authorisation: its number is issued on submit (R-R2, D-1)."""

    __tablename__ = "rmas"

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    status: Mapped[RmaStatus] = mapped_column(
        _enum(RmaStatus, "rma_status"), default=RmaStatus.OPEN
    )
    contact_name: Mapped[str] = mapped_column(String(200))
    contact_phone: Mapped[str] = mapped_column(String(64))
    contact_email: Mapped[str] = mapped_column(String(254))
    ship_to: Mapped[str] = mapped_column(Text)  # delivery address for the replacement
    language: Mapped[str] = mapped_column(String(8), default="zh_CN")  # of its e-mails
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    submitted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now, onupdate=clock.now)

    customer: Mapped[Customer] = relationship()
    submitted_by: Mapped[User | None] = relationship()
    items: Mapped[list[RmaItem]] = relationship(
        back_populates="rma", order_by="RmaItem.line_no", cascade="all, delete-orphan"
    )
    events: Mapped[list[RmaEvent]] = relationship(
        back_populates="rma", order_by="RmaEvent.id", cascade="all, delete-orphan"
    )

    __table_args__ = (
        Index("ix_rmas_customer_submitted", "customer_id", "submitted_at"),
        Index("ix_rmas_status_submitted", "status", "submitted_at"),
        CheckConstraint("language IN ('zh_CN', 'en')", name="language_known"),
    )

    def as_audit(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "customer_id": self.customer_id,
            "status": str(self.status),
            "contact_name": self.contact_name,
            "contact_phone": self.contact_phone,
            "contact_email": self.contact_email,
            "ship_to": self.ship_to,
        }


class RmaItem(db.Model):
    """One unit on an RMA: serial, fault, the coverage seen on submit, and later the
    inspection's cause and decision (R-R1, R-W3..R-W5)."""

    __tablename__ = "rma_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    rma_id: Mapped[int] = mapped_column(ForeignKey("rmas.id"))
    line_no: Mapped[int] = mapped_column(Integer)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    # Equal to unit_id while the item is open, NULL once final: the UNIQUE constraint
    # makes "a serial already in an open RMA" hold under concurrent submissions.
    open_unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"), unique=True)
    serial: Mapped[str] = mapped_column(String(32), index=True)
    fault_description: Mapped[str] = mapped_column(Text)
    fault_category: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[ItemStatus] = mapped_column(
        _enum(ItemStatus, "item_status"), default=ItemStatus.SUBMITTED
    )
    # Coverage as shown to the customer on submit (the decision uses the report date).
    in_warranty_on_submit: Mapped[bool] = mapped_column(default=False)
    warranty_end_on: Mapped[date | None] = mapped_column(Date)
    basis_used: Mapped[str] = mapped_column(String(40), default="")
    cause: Mapped[str | None] = mapped_column(String(32))
    decision: Mapped[str | None] = mapped_column(String(20))
    decision_rule: Mapped[str | None] = mapped_column(String(64))
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # R-R3: 72 h target
    status_changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    # -- triage, receiving, inspection, release, the 72-hour clock (issue 4) -------------
    remote_confirmation: Mapped[bool] = mapped_column(default=False)  # D-1 advance
    cause_notes: Mapped[str] = mapped_column(Text, default="")
    computed_decision: Mapped[str | None] = mapped_column(String(20))  # before any override
    decision_reason: Mapped[str] = mapped_column(Text, default="")  # the rule, in words
    override_reason: Mapped[str | None] = mapped_column(Text)  # D-6
    overridden_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    overridden_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    confirmed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    unit_received_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    unit_received_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    unit_due_back_on: Mapped[date | None] = mapped_column(Date)  # D-2: advance replacement
    unit_overdue_flagged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # D-3
    released_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    release_note: Mapped[str] = mapped_column(Text, default="")
    clock_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # R-R3 start
    at_risk_notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    rejected_reason: Mapped[str | None] = mapped_column(Text)
    breach_reason: Mapped[str | None] = mapped_column(Text)  # why the 72 h target was missed
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    rma: Mapped[Rma] = relationship(back_populates="items")
    unit: Mapped[Unit] = relationship(foreign_keys=[unit_id])
    photos: Mapped[list[RmaPhoto]] = relationship(
        back_populates="item", order_by="RmaPhoto.id", cascade="all, delete-orphan"
    )

    __table_args__ = (
        UniqueConstraint("rma_id", "line_no", name="uq_rma_items_rma_id_line_no"),
        Index("ix_rma_items_rma_id", "rma_id"),
        Index("ix_rma_items_status", "status"),
    )

    def as_audit(self) -> dict[str, Any]:
        return {
            "rma_id": self.rma_id,
            "line_no": self.line_no,
            "serial": self.serial,
            "status": str(self.status),
            "fault_category": self.fault_category,
            "cause": self.cause,
            "decision": self.decision,
            "due_at": self.due_at.isoformat() if self.due_at else None,
        }


class Shipment(db.Model):
    """What went back to the customer for an item: a replacement from spare stock, or
    (no fault found) the customer's own unit; delivery stops the 72-hour clock (R-R3)."""

    __tablename__ = "shipments"

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("rma_items.id"), unique=True)
    kind: Mapped[str] = mapped_column(String(20))  # "replacement" | "return"
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    carrier: Mapped[str] = mapped_column(String(100))
    tracking_number: Mapped[str] = mapped_column(String(100))
    shipped_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    shipped_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    received_by: Mapped[str | None] = mapped_column(String(200))  # who signed
    delivery_recorded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    delivery_recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    item: Mapped[RmaItem] = relationship(backref=backref("shipment", uselist=False))
    unit: Mapped[Unit] = relationship()

    __table_args__ = (
        CheckConstraint("kind IN ('replacement', 'return')", name="kind_known"),
    )

    def as_audit(self) -> dict[str, Any]:
        return {
            "item_id": self.item_id,
            "kind": self.kind,
            "unit_id": self.unit_id,
            "carrier": self.carrier,
            "tracking_number": self.tracking_number,
            "shipped_at": self.shipped_at.isoformat() if self.shipped_at else None,
            "delivered_at": self.delivered_at.isoformat() if self.delivered_at else None,
            "received_by": self.received_by,
        }


class ScanEvent(db.Model):
    """Every scan at a warehouse station, with what it did: received a unit, opened an
    RMA, or a loud warning (unexpected unit, second scan, unknown code)."""

    __tablename__ = "scan_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    station: Mapped[str] = mapped_column(String(64), default="")
    code: Mapped[str] = mapped_column(String(100))  # as scanned
    serial: Mapped[str | None] = mapped_column(String(32), index=True)
    rma_id: Mapped[int | None] = mapped_column(ForeignKey("rmas.id"), index=True)
    item_id: Mapped[int | None] = mapped_column(ForeignKey("rma_items.id"))
    outcome: Mapped[str] = mapped_column(String(20))

    user: Mapped[User | None] = relationship()

    # The scan station's "my last scans": WHERE user_id = ? ORDER BY id DESC LIMIT n.
    __table_args__ = (Index("ix_scan_events_user_id_id", "user_id", "id"),)


model_successors = db.Table(
    "model_successors",
    db.Column("model_id", ForeignKey("product_models.id"), primary_key=True),
    db.Column("successor_id", ForeignKey("product_models.id"), primary_key=True),
)


class RmaPhoto(db.Model):
    """A customer's photo of a fault (JPEG/PNG, checked by content, 5 MB at most)."""

    __tablename__ = "rma_photos"

    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("rma_items.id"), index=True)
    filename: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(32))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    uploaded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)

    item: Mapped[RmaItem] = relationship(back_populates="photos")


class RmaEvent(db.Model):
    """The RMA's timeline as the customer sees it, one row per event in plain words
    (rendered from ``kind`` and ``data`` in the reader's language). The technical audit
    record (R-R4) is ``AuditEvent``; both are written in the same transaction."""

    __tablename__ = "rma_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    rma_id: Mapped[int] = mapped_column(ForeignKey("rmas.id"), index=True)
    item_id: Mapped[int | None] = mapped_column(ForeignKey("rma_items.id"))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    kind: Mapped[str] = mapped_column(String(40))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    actor_label: Mapped[str] = mapped_column(String(254), default="")
    data: Mapped[dict] = mapped_column(JSON, default=dict)

    rma: Mapped[Rma] = relationship(back_populates="events")
    item: Mapped[RmaItem | None] = relationship()


# -- e-mail outbox ----------------------------------------------------------------------
class OutboxStatus(enum.StrEnum):
    PENDING = "pending"
    SENT = "sent"


class OutboxMessage(db.Model):
    """An e-mail written in the same transaction as the change that caused it, sent later
    by ``rma tick``. A failed send is retried with back-off; a message is never dropped."""

    __tablename__ = "outbox_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    template: Mapped[str] = mapped_column(String(64))
    to_address: Mapped[str] = mapped_column(String(254))
    language: Mapped[str] = mapped_column(String(8))
    subject: Mapped[str] = mapped_column(String(300))
    body_text: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str | None] = mapped_column(Text)
    # Optional: an enqueue with a key already present adds nothing (exactly once).
    dedupe_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    status: Mapped[OutboxStatus] = mapped_column(
        _enum(OutboxStatus, "outbox_status"), default=OutboxStatus.PENDING
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    attachments: Mapped[list[OutboxAttachment]] = relationship(
        back_populates="message", order_by="OutboxAttachment.id", cascade="all, delete-orphan"
    )

    __table_args__ = (Index("ix_outbox_messages_due", "status", "next_attempt_at"),)


class OutboxAttachment(db.Model):
    __tablename__ = "outbox_attachments"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("outbox_messages.id"), index=True)
    filename: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(100))
    data: Mapped[bytes] = mapped_column(LargeBinary)

    message: Mapped[OutboxMessage] = relationship(back_populates="attachments")


# -- finance (issue 5: R-W4, R-W5, R-C3, D-3, D-5) -------------------------------------
class PriceKind(enum.StrEnum):
    REPLACEMENT = "replacement"  # per product model
    SHIPPING = "shipping"  # one fee per quote of replacements
    SUPPORT = "support"  # 12 months of paid support after the term (R-C3)
    VAT = "vat"  # the VAT rate (D-5), a fraction in ``rate``


class PriceEntry(db.Model):
    """One dated price (or VAT rate): valid from ``valid_from`` through ``valid_to``
    (inclusive; open-ended when NULL). A quote copies the prices valid on its issue date
    onto its lines, so a later price change never alters it."""

    __tablename__ = "price_entries"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[PriceKind] = mapped_column(_enum(PriceKind, "price_kind"))
    model_id: Mapped[int | None] = mapped_column(ForeignKey("product_models.id"))
    amount: Mapped[Decimal | None] = mapped_column(Numeric(12, 2))
    rate: Mapped[Decimal | None] = mapped_column(Numeric(6, 4))
    valid_from: Mapped[date] = mapped_column(Date)
    valid_to: Mapped[date | None] = mapped_column(Date)
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    model: Mapped[ProductModel | None] = relationship()

    __table_args__ = (
        CheckConstraint("(kind = 'replacement') = (model_id IS NOT NULL)",
                        name="model_for_replacement"),
        CheckConstraint("(kind = 'vat' AND rate IS NOT NULL AND amount IS NULL)"
                        " OR (kind <> 'vat' AND amount IS NOT NULL AND rate IS NULL)",
                        name="amount_or_rate"),
        CheckConstraint("amount IS NULL OR amount >= 0", name="amount_not_negative"),
        CheckConstraint("rate IS NULL OR (rate >= 0 AND rate < 1)", name="rate_range"),
        CheckConstraint("valid_to IS NULL OR valid_to >= valid_from", name="valid_range"),
        Index("ix_price_entries_lookup", "kind", "model_id", "valid_from"),
    )

    def as_audit(self) -> dict[str, Any]:
        return {
            "kind": str(self.kind),
            "model_id": self.model_id,
            "amount": None if self.amount is None else str(self.amount),
            "rate": None if self.rate is None else str(self.rate),
            "valid_from": self.valid_from.isoformat() if self.valid_from else None,
            "valid_to": self.valid_to.isoformat() if self.valid_to else None,
            "note": self.note,
        }


class QuoteKind(enum.StrEnum):
    REPLACEMENT = "replacement"  # paid replacements of one RMA (R-W4, R-W5)
    SUPPORT = "support"  # paid support after the term (R-C3)


class QuoteStatus(enum.StrEnum):
    OPEN = "open"  # waiting for the customer's answer
    ACCEPTED = "accepted"  # an invoice was issued
    DECLINED = "declined"
    EXPIRED = "expired"  # not answered within its validity
    SUPERSEDED = "superseded"  # replaced by a newer quote for the same RMA
    WITHDRAWN = "withdrawn"  # nothing left to quote (e.g. overridden to free)


class Quote(db.Model):
    """A price offer for paid replacements of one RMA (one line per paid item plus
    shipping) or for 12 months of paid support (R-C3), in the customer's language."""

    __tablename__ = "quotes"

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)  # Q-2026-000042
    kind: Mapped[QuoteKind] = mapped_column(_enum(QuoteKind, "quote_kind"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    rma_id: Mapped[int | None] = mapped_column(ForeignKey("rmas.id"))
    status: Mapped[QuoteStatus] = mapped_column(
        _enum(QuoteStatus, "quote_status"), default=QuoteStatus.OPEN)
    language: Mapped[str] = mapped_column(String(8), default="zh_CN")
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    issued_on: Mapped[date] = mapped_column(Date)  # China date: prices valid on it
    valid_until: Mapped[date] = mapped_column(Date)  # last day it may be accepted
    issued_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    net_total: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    vat_total: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    gross_total: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    support_months: Mapped[int | None] = mapped_column(Integer)  # support quotes
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    answered_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    # portal | api | fax | email (the last two recorded by finance, with the document)
    answered_via: Mapped[str | None] = mapped_column(String(20))
    answer_note: Mapped[str] = mapped_column(Text, default="")
    decline_disposition: Mapped[str | None] = mapped_column(String(20))  # return | scrap
    document_filename: Mapped[str | None] = mapped_column(String(200))
    document_content_type: Mapped[str | None] = mapped_column(String(100))
    document_data: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # expired/superseded
    superseded_by_id: Mapped[int | None] = mapped_column(ForeignKey("quotes.id"))

    customer: Mapped[Customer] = relationship()
    rma: Mapped[Rma | None] = relationship()
    lines: Mapped[list[QuoteLine]] = relationship(
        back_populates="quote", order_by="QuoteLine.line_no", cascade="all, delete-orphan")
    answered_by: Mapped[User | None] = relationship(foreign_keys=[answered_by_id])

    __table_args__ = (
        Index("ix_quotes_customer_issued", "customer_id", "issued_at"),
        Index("ix_quotes_status_valid_until", "status", "valid_until"),
        Index("ix_quotes_rma_id", "rma_id"),
        CheckConstraint("(kind = 'replacement') = (rma_id IS NOT NULL)",
                        name="rma_for_replacement"),
        CheckConstraint("language IN ('zh_CN', 'en')", name="language_known"),
        CheckConstraint("decline_disposition IS NULL OR decline_disposition IN "
                        "('return', 'scrap')", name="disposition_known"),
    )

    def as_audit(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "kind": str(self.kind),
            "customer_id": self.customer_id,
            "rma_id": self.rma_id,
            "status": str(self.status),
            "valid_until": self.valid_until.isoformat() if self.valid_until else None,
            "net_total": str(self.net_total),
            "vat_total": str(self.vat_total),
            "gross_total": str(self.gross_total),
            "answered_via": self.answered_via,
            "decline_disposition": self.decline_disposition,
            "superseded_by_id": self.superseded_by_id,
        }


class _DocumentLine:
    """Columns shared by quote and invoice lines: amounts as ``warranty.money`` computes
    them (net and VAT rounded per line, D-5)."""

    id: Mapped[int] = mapped_column(primary_key=True)
    line_no: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(20))  # replacement | shipping | support | credit
    model_id: Mapped[int | None] = mapped_column(ForeignKey("product_models.id"))
    serial: Mapped[str | None] = mapped_column(String(32))
    description: Mapped[str] = mapped_column(Text)
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    unit_price: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    vat_rate: Mapped[Decimal] = mapped_column(Numeric(6, 4))
    net: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    vat: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    gross: Mapped[Decimal] = mapped_column(Numeric(12, 2))

    def as_audit(self) -> dict[str, Any]:
        return {
            "line_no": self.line_no, "kind": self.kind, "serial": self.serial,
            "description": self.description, "quantity": self.quantity,
            "unit_price": str(self.unit_price), "vat_rate": str(self.vat_rate),
            "net": str(self.net), "vat": str(self.vat), "gross": str(self.gross),
        }


class QuoteLine(_DocumentLine, db.Model):
    __tablename__ = "quote_lines"

    quote_id: Mapped[int] = mapped_column(ForeignKey("quotes.id"))
    item_id: Mapped[int | None] = mapped_column(ForeignKey("rma_items.id"), index=True)

    quote: Mapped[Quote] = relationship(back_populates="lines")
    item: Mapped[RmaItem | None] = relationship()

    __table_args__ = (
        UniqueConstraint("quote_id", "line_no", name="uq_quote_lines_quote_id_line_no"),
    )


class InvoiceKind(enum.StrEnum):
    INVOICE = "invoice"
    CREDIT_NOTE = "credit_note"


class InvoiceStatus(enum.StrEnum):
    UNPAID = "unpaid"
    PARTIALLY_PAID = "partially_paid"
    PAID = "paid"  # payments (and credit notes) cover the total
    CREDITED = "credited"  # credit notes cover the total; nothing was paid
    ISSUED = "issued"  # a credit note


class Invoice(db.Model):
    """An invoice (``INV-2026-000123``, gapless per year, D-5) or a credit note
    (``CN-2026-000007``) that corrects one. Never edited once issued: the billing
    details are copied onto it; payments and credit notes change only the settled
    figures and the status."""

    __tablename__ = "invoices"

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)
    kind: Mapped[InvoiceKind] = mapped_column(_enum(InvoiceKind, "invoice_kind"))
    year: Mapped[int] = mapped_column(Integer)
    sequence: Mapped[int] = mapped_column(Integer)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    quote_id: Mapped[int | None] = mapped_column(ForeignKey("quotes.id"), unique=True)
    credited_invoice_id: Mapped[int | None] = mapped_column(ForeignKey("invoices.id"), index=True)
    status: Mapped[InvoiceStatus] = mapped_column(_enum(InvoiceStatus, "invoice_status"))
    language: Mapped[str] = mapped_column(String(8), default="zh_CN")
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    issued_on: Mapped[date] = mapped_column(Date)  # China date, starts the ageing
    due_on: Mapped[date] = mapped_column(Date)
    issued_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    billing_name: Mapped[str] = mapped_column(String(200))
    billing_address: Mapped[str] = mapped_column(Text, default="")
    tax_id: Mapped[str] = mapped_column(String(64), default="")
    contract_number: Mapped[str] = mapped_column(String(32))
    net_total: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    vat_total: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    gross_total: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    paid_total: Mapped[Decimal] = mapped_column(Numeric(12, 2), default=Decimal("0.00"))
    credited_total: Mapped[Decimal] = mapped_column(Numeric(12, 2), default=Decimal("0.00"))
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reason: Mapped[str] = mapped_column(Text, default="")  # a credit note's reason

    customer: Mapped[Customer] = relationship()
    quote: Mapped[Quote | None] = relationship(backref=backref("invoice", uselist=False))
    credited_invoice: Mapped[Invoice | None] = relationship(
        remote_side="Invoice.id", backref=backref("credit_notes", order_by="Invoice.id"))
    lines: Mapped[list[InvoiceLine]] = relationship(
        back_populates="invoice", order_by="InvoiceLine.line_no", cascade="all, delete-orphan")
    payments: Mapped[list[Payment]] = relationship(
        back_populates="invoice", order_by="Payment.id", cascade="all, delete-orphan")

    __table_args__ = (
        UniqueConstraint("kind", "year", "sequence", name="uq_invoices_kind_year_sequence"),
        Index("ix_invoices_customer_issued", "customer_id", "issued_on"),
        Index("ix_invoices_status_issued", "status", "issued_on"),
        CheckConstraint("(kind = 'credit_note') = (credited_invoice_id IS NOT NULL)",
                        name="credit_note_references_invoice"),
        CheckConstraint("paid_total >= 0 AND credited_total >= 0", name="settled_not_negative"),
        CheckConstraint("paid_total + credited_total <= gross_total", name="not_overpaid"),
        CheckConstraint("language IN ('zh_CN', 'en')", name="language_known"),
    )

    @property
    def outstanding(self) -> Decimal:
        """What is still to pay (0 for a credit note)."""
        if self.kind == InvoiceKind.CREDIT_NOTE:
            return Decimal("0.00")
        return self.gross_total - self.paid_total - self.credited_total

    def as_audit(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "kind": str(self.kind),
            "customer_id": self.customer_id,
            "quote_id": self.quote_id,
            "credited_invoice_id": self.credited_invoice_id,
            "status": str(self.status),
            "issued_on": self.issued_on.isoformat() if self.issued_on else None,
            "due_on": self.due_on.isoformat() if self.due_on else None,
            "net_total": str(self.net_total),
            "vat_total": str(self.vat_total),
            "gross_total": str(self.gross_total),
            "paid_total": str(self.paid_total),
            "credited_total": str(self.credited_total),
            "reason": self.reason,
        }


class InvoiceLine(_DocumentLine, db.Model):
    __tablename__ = "invoice_lines"

    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"))
    item_id: Mapped[int | None] = mapped_column(ForeignKey("rma_items.id"), index=True)

    invoice: Mapped[Invoice] = relationship(back_populates="lines")
    item: Mapped[RmaItem | None] = relationship()

    __table_args__ = (
        UniqueConstraint("invoice_id", "line_no", name="uq_invoice_lines_invoice_id_line_no"),
    )


class PaymentMethod(enum.StrEnum):
    BANK_TRANSFER = "bank_transfer"
    CHEQUE = "cheque"
    CASH = "cash"
    ONLINE = "online"


class Payment(db.Model):
    """Money received against an invoice; partial payments add up, an overpayment is
    refused (the invoice's CHECK holds it on the database too)."""

    __tablename__ = "payments"

    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), index=True)
    amount: Mapped[Decimal] = mapped_column(Numeric(12, 2))
    received_on: Mapped[date] = mapped_column(Date, index=True)
    method: Mapped[PaymentMethod] = mapped_column(_enum(PaymentMethod, "payment_method"))
    reference: Mapped[str] = mapped_column(String(100), default="")
    note: Mapped[str] = mapped_column(Text, default="")
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    invoice: Mapped[Invoice] = relationship(back_populates="payments")
    recorded_by: Mapped[User | None] = relationship()

    __table_args__ = (CheckConstraint("amount > 0", name="amount_positive"),)

    def as_audit(self) -> dict[str, Any]:
        return {
            "invoice_id": self.invoice_id,
            "amount": str(self.amount),
            "received_on": self.received_on.isoformat() if self.received_on else None,
            "method": str(self.method),
            "reference": self.reference,
            "note": self.note,
        }


class SupportPeriod(db.Model):
    """Paid support bought after the project term (R-C3): covered ``starts_on`` through
    ``ends_on`` inclusive. Created when the support invoice is paid in full."""

    __tablename__ = "support_periods"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    starts_on: Mapped[date] = mapped_column(Date)
    ends_on: Mapped[date] = mapped_column(Date)
    months: Mapped[int] = mapped_column(Integer)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id"), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)

    customer: Mapped[Customer] = relationship()
    invoice: Mapped[Invoice] = relationship()

    __table_args__ = (
        Index("ix_support_periods_customer_starts", "customer_id", "starts_on"),
        CheckConstraint("ends_on >= starts_on", name="period_range"),
    )


# -- incidents (issue 6: R-I1..R-I7, R-C4, D-7) -----------------------------------------
class OfficeDayKind(enum.StrEnum):
    HOLIDAY = "holiday"  # a day off that the holiday package does not know (or overrides)
    WORKDAY = "workday"  # a working day (e.g. a make-up day, 调休) that wins over it


class OfficeDay(db.Model):
    """An admin-edited day of the office calendar (R-I7); wins over ``chinesecalendar``."""

    __tablename__ = "office_days"

    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[date] = mapped_column(Date, unique=True)
    kind: Mapped[OfficeDayKind] = mapped_column(_enum(OfficeDayKind, "office_day_kind"))
    note: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)

    def as_audit(self) -> dict[str, Any]:
        return {"day": self.day.isoformat(), "kind": str(self.kind), "note": self.note}


class OfficeCalendarYear(db.Model):
    """A year whose holidays and make-up days the admin has entered in ``office_days``
    in full: the calendar then has data for it even where the package has none."""

    __tablename__ = "office_calendar_years"

    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    note: Mapped[str] = mapped_column(String(200), default="")
    confirmed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    confirmed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    __table_args__ = (CheckConstraint("year >= 2000 AND year <= 2200", name="year_range"),)


class EscalationRung(db.Model):
    """One row of the R-I4 ladder as the admin edited it. An empty table means SPEC's
    table (``warranty.DEFAULT_ESCALATION_LADDER``)."""

    __tablename__ = "escalation_rungs"

    id: Mapped[int] = mapped_column(primary_key=True)
    priority: Mapped[str] = mapped_column(String(16))
    hours: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(32))

    __table_args__ = (
        UniqueConstraint("priority", "role", name="uq_escalation_rungs_priority_role"),
        CheckConstraint("hours >= 1 AND hours <= 8760", name="hours_range"),
        CheckConstraint("priority IN ('urgent', 'serious', 'general')", name="priority_known"),
    )


class EscalationHolder(db.Model):
    """Who holds an escalation role (R-I4), and their deputy. The account manager is per
    customer (``customer_id`` set; a row with no customer is the fallback for customers
    without one); the other roles are global (``customer_id`` NULL)."""

    __tablename__ = "escalation_holders"

    id: Mapped[int] = mapped_column(primary_key=True)
    role: Mapped[str] = mapped_column(String(32))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    deputy_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now, onupdate=clock.now)

    customer: Mapped[Customer | None] = relationship()
    user: Mapped[User] = relationship(foreign_keys=[user_id])
    deputy: Mapped[User | None] = relationship(foreign_keys=[deputy_id])

    __table_args__ = (
        UniqueConstraint("role", "customer_id", name="uq_escalation_holders_role_customer"),
        # NULLs are distinct in a unique constraint: one global holder per role needs this.
        Index("ux_escalation_holders_global_role", "role", unique=True,
              sqlite_where=text("customer_id IS NULL"),
              postgresql_where=text("customer_id IS NULL")),
        CheckConstraint(
            "role IN ('account_manager', 'technical_lead', 'service_director', 'cto', "
            "'president')", name="role_known"),
        CheckConstraint("customer_id IS NULL OR role = 'account_manager'",
                        name="only_account_manager_per_customer"),
        CheckConstraint("deputy_id IS NULL OR deputy_id <> user_id", name="deputy_not_holder"),
    )

    def as_audit(self) -> dict[str, Any]:
        return {"role": self.role, "customer_id": self.customer_id, "user_id": self.user_id,
                "deputy_id": self.deputy_id}


class IncidentPriority(enum.StrEnum):
    URGENT = "urgent"
    SERIOUS = "serious"
    GENERAL = "general"


class IncidentStatus(enum.StrEnum):
    NEW = "new"  # reported; nobody has contacted the customer yet (R-I1 clock runs)
    CONTACTED = "contacted"  # contacted and an engineer assigned; diagnosis due (R-I2)
    DIAGNOSED = "diagnosed"  # diagnosis given; resolution due
    RESOLVED = "resolved"  # final: no more escalation


class SupportMode(enum.StrEnum):
    PHONE = "phone"  # phone or e-mail (R-I5: minor)
    REMOTE = "remote"  # remote login or guiding the customer (R-I5: normal)
    ONSITE = "onsite"  # on site (R-I5: severe; R-I6)


class IncidentChannel(enum.StrEnum):
    PORTAL = "portal"
    API = "api"
    PHONE = "phone"
    EMAIL = "email"


class Incident(db.Model):
    """A fault report with its targets (R-I1, R-I2, resolution) and escalation (R-I4).

    The ``*_due_at`` columns are computed by ``warranty.incidents`` from ``reported_at``,
    the priority, the policy's clocks (D-7) and the office calendar (R-I7), and are
    recomputed from ``reported_at`` on a priority change. ``next_due_at`` is the earliest
    due time of a target not yet met (NULL once resolved): the queue sorts on it.
    """

    __tablename__ = "incidents"

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)  # INC-2026-000001
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    priority: Mapped[IncidentPriority] = mapped_column(_enum(IncidentPriority, "incident_priority"))
    status: Mapped[IncidentStatus] = mapped_column(
        _enum(IncidentStatus, "incident_status"), default=IncidentStatus.NEW)
    support_mode: Mapped[SupportMode] = mapped_column(
        _enum(SupportMode, "support_mode"), default=SupportMode.PHONE)
    channel: Mapped[IncidentChannel] = mapped_column(_enum(IncidentChannel, "incident_channel"))
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text)
    reporter_name: Mapped[str] = mapped_column(String(200), default="")
    reporter_contact: Mapped[str] = mapped_column(String(254), default="")  # phone or e-mail
    language: Mapped[str] = mapped_column(String(8), default="zh_CN")  # of its e-mails
    reported_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    reported_at: Mapped[datetime] = mapped_column(UTCDateTime)  # every clock counts from it
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now, onupdate=clock.now)
    engineer_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    contacted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    diagnosed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    diagnosis: Mapped[str] = mapped_column(Text, default="")
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolution: Mapped[str] = mapped_column(Text, default="")
    contact_due_at: Mapped[datetime] = mapped_column(UTCDateTime)  # R-I1
    diagnosis_due_at: Mapped[datetime] = mapped_column(UTCDateTime)  # R-I2
    resolution_due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    next_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The highest rung reached so far (R-I4): its role and hours; NULL before the first.
    escalated_role: Mapped[str | None] = mapped_column(String(32))
    escalated_hours: Mapped[int | None] = mapped_column(Integer)

    customer: Mapped[Customer] = relationship()
    engineer: Mapped[User | None] = relationship(foreign_keys=[engineer_id])
    reported_by: Mapped[User | None] = relationship(foreign_keys=[reported_by_id])
    units: Mapped[list[Unit]] = relationship(secondary="incident_units", order_by="Unit.serial")
    product_models: Mapped[list[ProductModel]] = relationship(
        secondary="incident_models", order_by="ProductModel.code")
    events: Mapped[list[IncidentEvent]] = relationship(
        back_populates="incident", order_by="IncidentEvent.id", cascade="all, delete-orphan")
    alerts: Mapped[list[IncidentAlert]] = relationship(
        back_populates="incident", order_by="IncidentAlert.id", cascade="all, delete-orphan")
    visits: Mapped[list[OnsiteVisit]] = relationship(
        back_populates="incident", order_by="OnsiteVisit.id", cascade="all, delete-orphan")

    __table_args__ = (
        Index("ix_incidents_customer_reported", "customer_id", "reported_at"),
        Index("ix_incidents_status_next_due", "status", "next_due_at"),
        Index("ix_incidents_engineer_status", "engineer_id", "status"),
        Index("ix_incidents_reported_at", "reported_at"),
        CheckConstraint("language IN ('zh_CN', 'en')", name="language_known"),
    )

    def as_audit(self) -> dict[str, Any]:
        def iso(moment: datetime | None) -> str | None:
            return moment.isoformat() if moment else None
        return {
            "number": self.number,
            "customer_id": self.customer_id,
            "priority": str(self.priority),
            "status": str(self.status),
            "support_mode": str(self.support_mode),
            "engineer_id": self.engineer_id,
            "reported_at": iso(self.reported_at),
            "contact_due_at": iso(self.contact_due_at),
            "diagnosis_due_at": iso(self.diagnosis_due_at),
            "resolution_due_at": iso(self.resolution_due_at),
            "contacted_at": iso(self.contacted_at),
            "diagnosed_at": iso(self.diagnosed_at),
            "resolved_at": iso(self.resolved_at),
            "escalated_role": self.escalated_role,
        }


incident_units = db.Table(
    "incident_units",
    db.Column("incident_id", ForeignKey("incidents.id", ondelete="CASCADE"), primary_key=True),
    db.Column("unit_id", ForeignKey("units.id"), primary_key=True),
    Index("ix_incident_units_unit_id", "unit_id"),
)

incident_models = db.Table(
    "incident_models",
    db.Column("incident_id", ForeignKey("incidents.id", ondelete="CASCADE"), primary_key=True),
    db.Column("model_id", ForeignKey("product_models.id"), primary_key=True),
)


class IncidentEvent(db.Model):
    """The incident's timeline, rendered from ``kind`` and ``data`` in the reader's
    language; ``public`` events are shown to the customer. The audit record (R-R4) is
    ``AuditEvent``, written in the same transaction."""

    __tablename__ = "incident_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    kind: Mapped[str] = mapped_column(String(40))
    public: Mapped[bool] = mapped_column(default=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    actor_label: Mapped[str] = mapped_column(String(254), default="")
    data: Mapped[dict] = mapped_column(JSON, default=dict)

    incident: Mapped[Incident] = relationship(back_populates="events")


class IncidentAlert(db.Model):
    """A notification that must go out exactly once per incident: an escalation rung
    (``kind`` "escalation", ``key`` the role, R-I4), a breach warning (``kind`` "warning",
    ``key`` the target, at 80 %), a missing daily brief (``kind`` "brief_overdue", ``key``
    "<visit id>:<date>", R-I6). The unique (incident, kind, key) is what makes a second
    tick, or a tick on a second machine, a no-op."""

    __tablename__ = "incident_alerts"

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"))
    kind: Mapped[str] = mapped_column(String(20))
    key: Mapped[str] = mapped_column(String(64))
    hours: Mapped[int | None] = mapped_column(Integer)  # escalation: the rung's hours
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)  # when it was due to fire
    fired_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Who was told: [{"user_id", "email", "as": "holder"|"deputy"|"engineer"}]
    recipients: Mapped[list] = mapped_column(JSON, default=list)

    incident: Mapped[Incident] = relationship(back_populates="alerts")

    __table_args__ = (
        UniqueConstraint("incident_id", "kind", "key", name="uq_incident_alerts_once"),
        Index("ix_incident_alerts_fired_at", "fired_at"),
    )


class OnsiteKind(enum.StrEnum):
    EMERGENCY = "emergency"  # R-I6: arrival within 8 hours, daily briefs, final report
    CHANGE = "change"  # R-C4: customer-side change; 1 free visit per contract year


class OnsiteVisit(db.Model):
    """An on-site response (R-I6) or a visit for a customer-side change (R-C4)."""

    __tablename__ = "onsite_visits"

    id: Mapped[int] = mapped_column(primary_key=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"), index=True)
    kind: Mapped[OnsiteKind] = mapped_column(_enum(OnsiteKind, "onsite_kind"))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime)
    arrival_due_at: Mapped[datetime] = mapped_column(UTCDateTime)  # R-I6: +8 h (D-7 clock)
    arrived_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    engineer_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    site_address: Mapped[str] = mapped_column(Text, default="")
    note: Mapped[str] = mapped_column(Text, default="")
    final_report: Mapped[str] = mapped_column(Text, default="")  # required to end (R-I6)
    # R-C4: the contract year the visit counts in, and whether it is over the free quota.
    contract_year_start: Mapped[date | None] = mapped_column(Date)
    chargeable: Mapped[bool] = mapped_column(default=False)

    incident: Mapped[Incident] = relationship(back_populates="visits")
    engineer: Mapped[User | None] = relationship()
    briefs: Mapped[list[DailyBrief]] = relationship(
        back_populates="visit", order_by="DailyBrief.day", cascade="all, delete-orphan")

    __table_args__ = (
        Index("ix_onsite_visits_open", "ended_at", "arrival_due_at"),
        CheckConstraint("ended_at IS NULL OR final_report <> ''", name="ended_has_report"),
    )

    def as_audit(self) -> dict[str, Any]:
        def iso(moment: datetime | None) -> str | None:
            return moment.isoformat() if moment else None
        return {"incident_id": self.incident_id, "kind": str(self.kind),
                "requested_at": iso(self.requested_at), "arrival_due_at": iso(self.arrival_due_at),
                "arrived_at": iso(self.arrived_at), "ended_at": iso(self.ended_at),
                "engineer_id": self.engineer_id, "chargeable": bool(self.chargeable)}


class DailyBrief(db.Model):
    """The brief report due for each China-time day of an on-site response (R-I6)."""

    __tablename__ = "daily_briefs"

    id: Mapped[int] = mapped_column(primary_key=True)
    visit_id: Mapped[int] = mapped_column(ForeignKey("onsite_visits.id"))
    day: Mapped[date] = mapped_column(Date)
    text: Mapped[str] = mapped_column(Text)
    filed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    filed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    visit: Mapped[OnsiteVisit] = relationship(back_populates="briefs")

    __table_args__ = (UniqueConstraint("visit_id", "day", name="uq_daily_briefs_visit_day"),)


class Notification(db.Model):
    """An in-app notice to a staff user (escalations, breach warnings, overdue briefs),
    rendered from ``kind`` and ``data`` in the reader's language."""

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id"))
    kind: Mapped[str] = mapped_column(String(40))
    data: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    incident: Mapped[Incident | None] = relationship()

    __table_args__ = (Index("ix_notifications_user_read", "user_id", "read_at", "created_at"),)


# -- advisories and service reports (issue 7: R-A1..R-A3, R-R4) --------------------------
class AdvisorySeverity(enum.StrEnum):
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class AdvisoryStatus(enum.StrEnum):
    DRAFT = "draft"  # being written; no customer has seen it
    NOTIFIED = "notified"  # affected customers were sent their notices (R-A2)
    PUBLISHED = "published"  # on the public advisory pages (R-A3: not before 14 days)


class Advisory(db.Model):
    """A security advisory (R-A1). Affected customers are computed from the installed
    base: customers holding units of the affected product models. ``notify_due_on`` is
    the official patch date plus 2 working days on the office calendar (R-A2);
    ``public_from_on`` is the first notice's China date plus 14 days for a vulnerability
    the vendor found itself (R-A3), before which it cannot be published."""

    __tablename__ = "advisories"

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(32), unique=True)  # SA-2026-0001
    title: Mapped[str] = mapped_column(String(200))
    severity: Mapped[AdvisorySeverity] = mapped_column(_enum(AdvisorySeverity, "advisory_severity"))
    status: Mapped[AdvisoryStatus] = mapped_column(
        _enum(AdvisoryStatus, "advisory_status"), default=AdvisoryStatus.DRAFT)
    affected_versions: Mapped[str] = mapped_column(Text, default="")  # platforms, versions
    description: Mapped[str] = mapped_column(Text)
    solution: Mapped[str] = mapped_column(Text, default="")
    references: Mapped[str] = mapped_column(Text, default="")  # one per line (CVE, URL)
    vendor_found: Mapped[bool] = mapped_column(default=False)  # R-A3
    patch_released_on: Mapped[date | None] = mapped_column(Date)  # the official patch (R-A2)
    notify_due_on: Mapped[date | None] = mapped_column(Date)  # R-A2
    notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # first notices queued
    public_from_on: Mapped[date | None] = mapped_column(Date)  # R-A3
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now, onupdate=clock.now)

    product_models: Mapped[list[ProductModel]] = relationship(
        secondary="advisory_models", order_by="ProductModel.code")
    notices: Mapped[list[AdvisoryNotice]] = relationship(
        back_populates="advisory", order_by="AdvisoryNotice.id", cascade="all, delete-orphan")
    created_by: Mapped[User | None] = relationship()

    __table_args__ = (
        Index("ix_advisories_status_published", "status", "published_at"),
        CheckConstraint("status <> 'published' OR published_at IS NOT NULL",
                        name="published_has_time"),
    )

    def as_audit(self) -> dict[str, Any]:
        def iso(value: date | datetime | None) -> str | None:
            return value.isoformat() if value else None
        return {
            "number": self.number, "title": self.title, "severity": str(self.severity),
            "status": str(self.status), "vendor_found": bool(self.vendor_found),
            "affected_versions": self.affected_versions,
            "patch_released_on": iso(self.patch_released_on),
            "notify_due_on": iso(self.notify_due_on), "notified_at": iso(self.notified_at),
            "public_from_on": iso(self.public_from_on), "published_at": iso(self.published_at),
            "model_ids": [m.id for m in self.product_models],
        }


advisory_models = db.Table(
    "advisory_models",
    db.Column("advisory_id", ForeignKey("advisories.id", ondelete="CASCADE"), primary_key=True),
    db.Column("model_id", ForeignKey("product_models.id"), primary_key=True),
    Index("ix_advisory_models_model_id", "model_id"),
)


class AdvisoryNotice(db.Model):
    """One affected customer's notice of an advisory (R-A2): queued to the outbox, opened
    in the portal, acknowledged by a customer user."""

    __tablename__ = "advisory_notices"

    id: Mapped[int] = mapped_column(primary_key=True)
    advisory_id: Mapped[int] = mapped_column(ForeignKey("advisories.id"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    queued_at: Mapped[datetime] = mapped_column(UTCDateTime)  # e-mails written to the outbox
    recipients: Mapped[list] = mapped_column(JSON, default=list)  # addresses written to
    opened_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # first view in the portal
    opened_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acknowledged_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    advisory: Mapped[Advisory] = relationship(back_populates="notices")
    customer: Mapped[Customer] = relationship()

    __table_args__ = (
        UniqueConstraint("advisory_id", "customer_id", name="uq_advisory_notices_once"),
        Index("ix_advisory_notices_customer_id", "customer_id"),
    )


class ServiceReport(db.Model):
    """A customer's periodic service report (R-R4) for a month ("2026-11") or a quarter
    ("2026-Q4"): the figures and the PDF as generated, kept so a past report reads the
    same later. ``sent_at`` is set once when ``rma tick`` e-mails it."""

    __tablename__ = "service_reports"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    period: Mapped[str] = mapped_column(String(7))
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date] = mapped_column(Date)  # inclusive
    language: Mapped[str] = mapped_column(String(8), default="zh_CN")
    generated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    figures: Mapped[dict] = mapped_column(JSON, default=dict)
    pdf: Mapped[bytes] = mapped_column(LargeBinary)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    customer: Mapped[Customer] = relationship()

    __table_args__ = (
        UniqueConstraint("customer_id", "period", name="uq_service_reports_customer_period"),
        CheckConstraint("period_start <= period_end", name="period_order"),
    )


class AnalyticsSnapshot(db.Model):
    """The failure-analytics dashboard computed by ``rma tick`` for a standard filter
    (``key``: "all" for every model, "model:<code>" for one), so the page answers from it at once
    and says when it was computed; other filters are computed live."""

    __tablename__ = "analytics_snapshots"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    built_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)
    payload: Mapped[dict] = mapped_column(JSON, default=dict)
