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
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from rma import clock
from rma.extensions import db
from rma.types import UTCDateTime
from warranty import Basis, UnitFacts


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
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=clock.now)

    __table_args__ = (
        CheckConstraint("life_months >= 1 AND life_months <= 240", name="life_months_range"),
        CheckConstraint("replacement_price >= 0", name="price_not_negative"),
    )

    def as_audit(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "name": self.name,
            "kind": str(self.kind),
            "life_months": self.life_months,
            "warranty_basis": str(self.warranty_basis),
            "replacement_price": str(self.replacement_price),
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

    __table_args__ = (
        CheckConstraint("contract_months >= 1", name="contract_months_positive"),
        Index("ix_customers_name", "name"),
    )

    def as_audit(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "contract_number": self.contract_number,
            "address": self.address,
            "accepted_on": self.accepted_on.isoformat() if self.accepted_on else None,
            "contract_months": self.contract_months,
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

    model: Mapped[ProductModel] = relationship(lazy="joined", innerjoin=True)
    customer: Mapped[Customer | None] = relationship()
    replaces: Mapped[Unit | None] = relationship(remote_side="Unit.id")

    __table_args__ = (
        Index("ix_units_customer_id", "customer_id"),
        Index("ix_units_model_id_lot", "model_id", "lot"),
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
