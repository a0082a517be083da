"""Forms of registration, review, invitations and colleagues (Flask-WTF: CSRF on each).

The fields only bound sizes; the rules live in ``rma/services/registration.py`` and
``rma/services/invitations.py``, whose errors the views put beside the field named here.
"""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    EmailField,
    PasswordField,
    SelectField,
    StringField,
    SubmitField,
    TelField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, Optional

from rma.forms import LANGUAGES


class RegistrationForm(FlaskForm):
    organisation_name = StringField(_l("Organisation name"),
                                    validators=[DataRequired(), Length(max=200)])
    address = TextAreaField(_l("Address"), validators=[DataRequired(), Length(max=2000)])
    contact_name = StringField(_l("Contact name"), validators=[DataRequired(), Length(max=200)])
    contact_email = EmailField(_l("Contact e-mail"), validators=[DataRequired(), Length(max=254)],
                               description=_l("We send the result of the review here."))
    contact_phone = TelField(_l("Contact phone"), validators=[DataRequired(), Length(max=64)])
    other_contacts = TextAreaField(
        _l("Other contacts"), validators=[Optional(), Length(max=2000)],
        description=_l("Names, roles, phones and e-mails of other people we may contact."))
    holdings = TextAreaField(
        _l("Products and serial numbers you hold"),
        validators=[Optional(), Length(max=100_000)],
        description=_l('One serial per line, or a product followed by its serials, e.g. '
                       '"TK3 token: TK3-0001, TK3-0002".'))
    accepted_on = DateField(_l("Acceptance certificate signed on"), validators=[Optional()],
                            description=_l("Optional. The service term starts the day after."))
    language = SelectField(_l("Preferred language"), choices=LANGUAGES)
    # Honeypot: hidden from people by CSS and from assistive technology; bots fill it.
    website = StringField(_l("Leave this field empty"), validators=[Optional()])
    submit = SubmitField(_l("Send application"))


class ApproveForm(FlaskForm):
    name = StringField(_l("Customer name"), validators=[DataRequired(), Length(max=200)])
    address = TextAreaField(_l("Address"), validators=[Optional(), Length(max=2000)])
    accepted_on = DateField(_l("Acceptance certificate signed on"), validators=[Optional()])
    approve = SubmitField(_l("Approve and invite the contact"))


class RejectForm(FlaskForm):
    reason = TextAreaField(_l("Reason"), validators=[Length(max=2000)],
                           description=_l("Required. It is e-mailed to the applicant."))
    reject = SubmitField(_l("Reject"))


class InviteForm(FlaskForm):
    email = EmailField(_l("E-mail"), validators=[DataRequired(), Length(max=254)])
    is_customer_admin = BooleanField(
        _l("Administrator (may invite and manage colleagues)"), default=False)
    language = SelectField(_l("Language of the invitation"), choices=LANGUAGES)
    submit = SubmitField(_l("Send invitation"))


class AcceptInvitationForm(FlaskForm):
    full_name = StringField(_l("Full name"), validators=[DataRequired(), Length(max=200)])
    phone = TelField(_l("Phone"), validators=[DataRequired(), Length(max=64)])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=256)])
    password_confirm = PasswordField(_l("Password again"),
                                     validators=[DataRequired(), Length(max=256)])
    language = SelectField(_l("Language"), choices=LANGUAGES)
    submit = SubmitField(_l("Create my account"))


class ActionForm(FlaskForm):
    """A button that changes something: only the CSRF token is checked."""
