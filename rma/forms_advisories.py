"""Forms of the advisory pages (issue 7): the staff's advisory form (R-A1 severity with its
guidance, affected product models, vendor-found per R-A3, the official patch date of
R-A2), the staff's "notify customers" and "publish" buttons and the customer's
"acknowledge" button.

The fields only bound sizes and say what is required; every rule (R-A1..R-A3) is the
services', whose errors the views put beside the field they name.
"""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    SelectField,
    SelectMultipleField,
    StringField,
    SubmitField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice as C
from wtforms.validators import DataRequired, Length, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from rma.services.advisories import SEVERITY_LABELS

TITLE_MAX = 200
TEXT_MAX = 20000

#: The severities of R-A1 in the staff's and the customers' words.
SEVERITY_WORDS = SEVERITY_LABELS


def severity_choices() -> list[C]:
    return [C(code, word) for code, word in SEVERITY_WORDS.items()]


class AdvisoryForm(FlaskForm):
    """A security advisory (R-A1). The view sets ``models.choices`` to the product
    models (code → "code – name"); the service checks the codes."""

    title = StringField(_l("Title"), validators=[DataRequired(), Length(max=TITLE_MAX)])
    severity = SelectField(_l("Severity"), choices=severity_choices, validate_choice=False)
    models = SelectMultipleField(
        _l("Affected product models"), validate_choice=False,
        widget=ListWidget(prefix_label=False), option_widget=CheckboxInput(),
        description=_l("The customers holding units of these models are notified."))
    affected_versions = TextAreaField(
        _l("Affected platforms and versions"), validators=[Optional(), Length(max=TEXT_MAX)],
        description=_l("For example: firmware before 2.4.1; Windows and Linux clients."))
    description = TextAreaField(_l("Description"),
                                validators=[DataRequired(), Length(max=TEXT_MAX)])
    solution = TextAreaField(_l("Solution"), validators=[Optional(), Length(max=TEXT_MAX)],
                             description=_l("The fix or the workaround customers should apply."))
    references = TextAreaField(
        _l("References"), validators=[Optional(), Length(max=TEXT_MAX)],
        description=_l("One per line: CVE identifiers or web addresses (http or https)."))
    vendor_found = BooleanField(
        _l("Found by us in our own products"),
        description=_l("A vulnerability we found ourselves goes to the affected customers "
                       "first; the public advisory can be published no earlier than 14 days "
                       "after their notices (R-A3)."))
    patch_released_on = DateField(
        _l("Official patch released on"), validators=[Optional()],
        description=_l("Affected customers must be notified within 2 working days of this "
                       "date (office calendar, R-A2). Leave empty while there is no patch."))
    submit = SubmitField(_l("Save the advisory"))


class NotifyForm(FlaskForm):
    """R-A2: send each affected customer its notice (customers already noticed are not
    sent another)."""

    submit_notify = SubmitField(_l("Notify customers"))


class PublishForm(FlaskForm):
    """R-A3: put the advisory on the public pages."""

    submit_publish = SubmitField(_l("Publish"))


class AcknowledgeForm(FlaskForm):
    """A customer user confirms the advisory was read."""

    submit_acknowledge = SubmitField(_l("Acknowledge"))
