"""Forms of the staff finance pages (issue 5): the price list, a customer's answer to a
quote received by fax or e-mail, payments, credit notes, release on credit, support
renewals and a customer's billing details.

The fields only bound sizes and say what is required; every money rule (overpayment,
price overlaps, quote validity, credit terms) is the services', whose errors the views
put beside the field they name. Amounts are text fields: ``warranty.money.parse_amount``
reads them as ``Decimal`` (never ``float``).
"""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import (
    BooleanField,
    DateField,
    EmailField,
    Form,
    IntegerField,
    SelectField,
    StringField,
    SubmitField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice as C
from wtforms.validators import (
    DataRequired,
    Email,
    InputRequired,
    Length,
    NumberRange,
    Optional,
)

from rma.models import PaymentMethod, PriceKind

NOTE_MAX = 2000
AMOUNT_MAX = 20

PRICE_KIND_WORDS = {
    PriceKind.REPLACEMENT.value: _l("Replacement price of a product model"),
    PriceKind.SHIPPING.value: _l("Shipping fee"),
    PriceKind.SUPPORT.value: _l("Paid support, 12 months (R-C3)"),
    PriceKind.VAT.value: _l("VAT rate (D-5)"),
}
METHOD_WORDS = {
    PaymentMethod.BANK_TRANSFER.value: _l("Bank transfer"),
    PaymentMethod.CHEQUE.value: _l("Cheque"),
    PaymentMethod.CASH.value: _l("Cash"),
    PaymentMethod.ONLINE.value: _l("Online payment"),
}
LANGUAGE_WORDS = {"zh_CN": _l("Chinese"), "en": _l("English")}
VIA_WORDS = {"fax": _l("Fax"), "email": _l("E-mail"), "portal": _l("Portal"),
             "api": _l("API")}
DISPOSITION_WORDS = {
    "return": _l("Send the faulty unit back to the customer"),
    "scrap": _l("Scrap the faulty unit (the customer asked)"),
}


# -- price list -------------------------------------------------------------------------
class PriceForm(FlaskForm):
    """A dated price or VAT entry (``pricing.add_price``). The model choices are set by
    the view."""

    kind = SelectField(_l("What"), choices=[C(k, w) for k, w in PRICE_KIND_WORDS.items()],
                       validate_choice=False)
    model_code = SelectField(_l("Product model"), choices=[], validate_choice=False,
                             description=_l("Only for a replacement price."))
    amount = StringField(_l("Amount (CNY, VAT excluded)"),
                         validators=[Optional(), Length(max=AMOUNT_MAX)],
                         description=_l("E.g. 80.00. Zero is allowed for shipping."))
    rate = StringField(_l("VAT rate"), validators=[Optional(), Length(max=AMOUNT_MAX)],
                       description=_l("Only for the VAT rate: 0.13 or 13%."))
    valid_from = DateField(_l("Valid from"),
                           validators=[InputRequired(message=_l("Enter the first day."))])
    valid_to = DateField(_l("Valid through (optional)"), validators=[Optional()],
                         description=_l("Empty: until a later entry replaces it."))
    note = StringField(_l("Note"), validators=[Optional(), Length(max=500)])
    submit = SubmitField(_l("Add to the price list"))


# -- quotes -----------------------------------------------------------------------------
class AnswerForm(FlaskForm):
    """The customer's answer to a quote, received by fax or e-mail, with the document
    (PDF, JPEG or PNG): finance records it."""

    answer = SelectField(_l("Answer"), choices=[C("accept", _l("Accepted")),
                                                C("decline", _l("Declined"))],
                         validate_choice=False)
    via = SelectField(_l("Received by"), choices=[C("fax", VIA_WORDS["fax"]),
                                                  C("email", VIA_WORDS["email"])],
                      validate_choice=False)
    disposition = SelectField(_l("If declined"),
                              choices=[C(k, w) for k, w in DISPOSITION_WORDS.items()],
                              validate_choice=False,
                              description=_l("Only for a declined replacement quote."))
    document = FileField(_l("The customer's document"),
                         description=_l("The signed fax or e-mail: PDF, JPEG or PNG, "
                                        "10 MB at most. Required."))
    note = TextAreaField(_l("Note"), validators=[Optional(), Length(max=NOTE_MAX)])
    submit = SubmitField(_l("Record the answer"))


class ReissueForm(FlaskForm):
    submit = SubmitField(_l("Reissue at today's prices"))


class SupportQuoteForm(FlaskForm):
    """Quote 12 months of paid support to one customer (R-C3)."""

    submit = SubmitField(_l("Quote 12 months of paid support"))


# -- invoices ---------------------------------------------------------------------------
class PaymentForm(FlaskForm):
    amount = StringField(_l("Amount received (CNY)"),
                         validators=[DataRequired(message=_l("Enter the amount.")),
                                     Length(max=AMOUNT_MAX)])
    received_on = DateField(_l("Received on"),
                            validators=[InputRequired(message=_l("Enter the date."))])
    method = SelectField(_l("Method"), choices=[C(k, w) for k, w in METHOD_WORDS.items()],
                         validate_choice=False)
    reference = StringField(_l("Reference"), validators=[Optional(), Length(max=100)],
                            description=_l("E.g. the bank's transaction number."))
    note = TextAreaField(_l("Note"), validators=[Optional(), Length(max=NOTE_MAX)])
    submit = SubmitField(_l("Record the payment"))


class CreditNoteForm(FlaskForm):
    amount = StringField(_l("Amount to credit (CNY, VAT included)"),
                         validators=[Optional(), Length(max=AMOUNT_MAX)],
                         description=_l("Empty: all that is still due."))
    reason = TextAreaField(_l("Reason"),
                           validators=[DataRequired(message=_l("Say why.")),
                                       Length(max=NOTE_MAX)],
                           description=_l("Required; printed on the credit note."))
    submit = SubmitField(_l("Issue the credit note"))


class ReleaseOnCreditForm(FlaskForm):
    """Release a paid replacement before payment, for a customer with credit terms
    (D-3). Built with ``prefix=f"release-{item.id}"``."""

    reason = TextAreaField(_l("Reason"),
                           validators=[DataRequired(message=_l("Say why.")),
                                       Length(max=NOTE_MAX)],
                           description=_l("Required; it is recorded."))
    submit = SubmitField(_l("Release on credit"))


# -- customers --------------------------------------------------------------------------
class BillingForm(FlaskForm):
    billing_name = StringField(_l("Billing name"), validators=[Optional(), Length(max=200)],
                               description=_l("Empty: the customer's name."))
    billing_address = TextAreaField(_l("Billing address"),
                                    validators=[Optional(), Length(max=1000)],
                                    description=_l("Empty: the customer's address."))
    tax_id = StringField(_l("Tax ID"), validators=[Optional(), Length(max=64)])
    billing_email = EmailField(_l("Billing e-mail"),
                               validators=[Optional(), Email(), Length(max=254)],
                               description=_l("Quotes and invoices are sent here."))
    language = SelectField(_l("Language of documents"),
                           choices=[C(k, w) for k, w in LANGUAGE_WORDS.items()],
                           validate_choice=False)
    credit_terms = BooleanField(_l("Credit terms: paid replacements may ship before "
                                   "payment (D-3)"))
    payment_terms_days = IntegerField(
        _l("Payment terms (days)"),
        validators=[InputRequired(message=_l("Enter a number of days.")),
                    NumberRange(min=0, max=365)])
    submit = SubmitField(_l("Save the billing details"))


# -- filters (GET forms: no CSRF token; choices set by the view) ------------------------
class QuoteFilterForm(Form):
    status = SelectField(_l("Status"), choices=[], validate_choice=False)
    customer = SelectField(_l("Customer"), choices=[], validate_choice=False)


class InvoiceFilterForm(Form):
    status = SelectField(_l("Status"), choices=[], validate_choice=False)
    customer = SelectField(_l("Customer"), choices=[], validate_choice=False)


class RevenueFilterForm(Form):
    date_from = DateField(_l("Issued from"), validators=[Optional()])
    date_to = DateField(_l("Issued through"), validators=[Optional()])
