"""A customer's service contract as the database knows it (R-C2, R-C3) and its billing
details (issue 5).

The rule is ``warranty.contract``: the project term from the acceptance date, then the
paid-support periods (``SupportPeriod``, created when a support invoice is paid in full,
``invoices.record_payment``) as renewals. This module only loads the facts and asks.
"""

from __future__ import annotations

from datetime import date

from flask_babel import gettext as _
from sqlalchemy import select

from rma.extensions import db
from rma.models import Customer, Role, SupportPeriod
from rma.services import ForbiddenError, NotFoundError, ValidationError, clean_text
from rma.services.audit import Actor, record
from rma.services.users import normalize_email
from warranty import contract_status
from warranty.contract import ContractStatus, Term, project_term

BILLING_ROLES = frozenset({Role.FINANCE, Role.ADMIN})
LANGUAGES = ("zh_CN", "en")
BILLING_NAME_MAX = 200
BILLING_ADDRESS_MAX = 2000
TAX_ID_MAX = 64
PAYMENT_TERMS_MAX = 365


def support_periods(customer: Customer) -> list[SupportPeriod]:
    """The customer's paid-support periods (R-C3), earliest first."""
    return list(db.session.scalars(
        select(SupportPeriod).where(SupportPeriod.customer_id == customer.id)
        .order_by(SupportPeriod.starts_on, SupportPeriod.id)))


def _renewals(customer: Customer) -> list[Term]:
    return [Term(period.starts_on, period.ends_on, "paid_support")
            for period in support_periods(customer)]


def support_status(customer: Customer, on: date) -> ContractStatus:
    """Whether the customer's contract covers support on ``on`` (R-C2, R-C3): inside the
    project term, or inside a paid-support period bought after it. Hardware warranty is
    not affected (it follows each unit, R-W2)."""
    return contract_status(customer.accepted_on, on, customer.contract_months or 12,
                           _renewals(customer))


def cover_ends_on(customer: Customer) -> date | None:
    """The last day of the customer's support cover: the latest end of its project term
    (R-C2) and of its paid-support periods (R-C3); ``None`` while the contract has no
    acceptance date and no period was bought."""
    ends = [term.end_on for term in _renewals(customer)]
    if customer.accepted_on is not None:
        ends.append(project_term(customer.accepted_on, customer.contract_months or 12).end_on)
    return max(ends) if ends else None


# -- billing details (printed on invoices; credit terms, D-3) -----------------------------
def _ensure_billing_role(actor: Actor) -> None:
    user = actor.user
    if user is None:
        return
    if not user.is_active or user.role not in BILLING_ROLES:
        raise ForbiddenError(_("Your role (%(role)s) may not change billing details.",
                               role=str(user.role)))


def set_billing(actor: Actor, customer_id: int, *, billing_name: str, billing_address: str,
                tax_id: str, billing_email: str, language: str, credit_terms: bool,
                payment_terms_days: int) -> Customer:
    """Set the customer's billing details (finance or admin), audited
    (``customer.billing_updated``). They are copied onto each invoice when it is issued,
    so a change never alters an issued invoice. ``credit_terms`` lets finance release a
    paid replacement before its invoice is paid (D-3); ``payment_terms_days`` (0 to 365)
    sets an invoice's due date. ``ValidationError`` names the field."""
    _ensure_billing_role(actor)
    values = {
        "billing_name": clean_text(billing_name, "billing_name", BILLING_NAME_MAX),
        "billing_address": clean_text(billing_address, "billing_address", BILLING_ADDRESS_MAX),
        "tax_id": clean_text(tax_id, "tax_id", TAX_ID_MAX),
    }
    email = clean_text(billing_email, "billing_email", 254)
    if email:
        try:
            email = normalize_email(email)
        except ValidationError:
            raise ValidationError(_("%(value)s is not a valid e-mail address.",
                                    value=email), "billing_email") from None
    values["billing_email"] = email
    if language not in LANGUAGES:
        raise ValidationError(_("Choose the language of the documents: %(choices)s.",
                                choices=", ".join(LANGUAGES)), "language")
    values["language"] = language
    if not isinstance(credit_terms, bool):
        raise ValidationError(_("Credit terms are yes or no."), "credit_terms")
    values["credit_terms"] = credit_terms
    if isinstance(payment_terms_days, bool) or not isinstance(payment_terms_days, int) \
            or not 0 <= payment_terms_days <= PAYMENT_TERMS_MAX:
        raise ValidationError(_("Payment terms are a whole number of days from 0 to "
                                "%(max)d.", max=PAYMENT_TERMS_MAX), "payment_terms_days")
    values["payment_terms_days"] = payment_terms_days
    try:
        key = int(customer_id)
    except (TypeError, ValueError):
        key = None
    try:
        customer = None if key is None else db.session.scalar(
            select(Customer).where(Customer.id == key).with_for_update()
            .execution_options(populate_existing=True))
        if customer is None:
            raise NotFoundError(_("There is no such customer."), "customer")
        before = customer.as_audit()
        for name, value in values.items():
            setattr(customer, name, value)
        record(actor, "customer.billing_updated", "customer", customer.id, before,
               customer.as_audit())
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    return customer


__all__ = ["BILLING_ROLES", "cover_ends_on", "set_billing", "support_periods",
           "support_status"]
