"""The customer portal's incident forms (issue 6): report a fault, ask for on-site help,
add a note.

They carry what the customer typed; every rule (own units only, one open visit per
incident, the deadlines) is ``rma.services.incidents``'s, and its refusals are shown
beside the field they name.
"""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import RadioField, SelectField, StringField, SubmitField, TextAreaField
from wtforms.fields.choices import SelectChoice as C
from wtforms.validators import DataRequired, Length, Optional

from rma.services.incidents import PRIORITY_LABELS, VISIT_KIND_LABELS

TITLE_MAX = 200
TEXT_MAX = 10000

# R-I3: the definitions shown beside each choice are ``incidents.PRIORITY_HELP``.
PRIORITY_CHOICES = [C(value, label) for value, label in PRIORITY_LABELS.items()]
VISIT_KIND_CHOICES = [C(value, label) for value, label in VISIT_KIND_LABELS.items()]


class ReportIncidentForm(FlaskForm):
    priority = RadioField(_l("Priority"), choices=PRIORITY_CHOICES,
                          validators=[DataRequired(_l("Choose a priority."))])
    title = StringField(_l("Short summary"),
                        validators=[DataRequired(_l("Give a short summary.")),
                                    Length(max=TITLE_MAX)])
    description = TextAreaField(
        _l("What happened"), validators=[DataRequired(_l("Describe the fault.")),
                                         Length(max=TEXT_MAX)],
        description=_l("What stopped working, since when, what you already tried."))
    serials = TextAreaField(
        _l("Affected serial numbers (optional)"), validators=[Optional(), Length(max=TEXT_MAX)],
        description=_l("One per line; only units of your organisation."))
    reporter_name = StringField(_l("Contact person"), validators=[Optional(), Length(max=200)])
    reporter_contact = StringField(
        _l("Phone or e-mail to reach you"), validators=[Optional(), Length(max=254)],
        description=_l("We call you back at this number within 30 minutes."))
    submit = SubmitField(_l("Report the incident"))

    def serial_list(self) -> list[str]:
        return [line.strip() for line in (self.serials.data or "").splitlines() if line.strip()]


class OnsiteRequestForm(FlaskForm):
    kind = SelectField(
        _l("Kind of visit"), choices=VISIT_KIND_CHOICES, default="emergency",
        description=_l("An engineer arrives within 8 hours of an emergency request. One "
                       "visit for a change on your side is included per contract year; "
                       "a further one is charged."))
    site_address = TextAreaField(_l("Site address"), validators=[Optional(), Length(max=2000)])
    note = TextAreaField(_l("Note (optional)"), validators=[Optional(), Length(max=TEXT_MAX)])
    submit = SubmitField(_l("Request on-site help"))


class IncidentNoteForm(FlaskForm):
    text = TextAreaField(_l("Your note"), validators=[DataRequired(_l("Write a note.")),
                                                      Length(max=TEXT_MAX)])
    submit = SubmitField(_l("Add the note"))
