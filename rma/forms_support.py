"""Forms of the staff incident pages (issue 6): recording a phone call, the actions on an
incident (contact, assign, diagnose, priority, support mode, on-site visit, arrival,
daily brief, end with the final report, resolve, note), the queue's and the compliance
table's filters, notifications, and the admin's office calendar and escalation ladder.

The fields only bound sizes and say what is required; every rule (R-I1..R-I7, R-C4,
D-7) is the services', whose errors the views put beside the field they name. Times are
typed in China time: a ``datetime-local`` input sends "YYYY-MM-DDTHH:MM"; typed text
"YYYY-MM-DD HH:MM" is read too.
"""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    DateTimeLocalField,
    HiddenField,
    IntegerField,
    SelectField,
    StringField,
    SubmitField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice as C
from wtforms.validators import DataRequired, Length, NumberRange, Optional, Regexp

from rma.services.escalation_setup import ROLE_LABELS
from rma.services.incidents import (
    CHANNEL_LABELS,
    MODE_LABELS,
    PRIORITY_HELP,
    PRIORITY_LABELS,
    VISIT_KIND_LABELS,
)
from warranty.policy import PRIORITIES, ROLES

TEXT_MAX = 4000
NOTE_MAX = 2000
LOCAL_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"]
LADDER_HOURS_MAX = 8760  # the table's check constraint (a year)

#: Codes in the staff's words: the services' own labels (R-I3 priorities with their
#: definitions, R-I4 roles, R-I5 modes, R-I6/R-C4 visit kinds, channels).
PRIORITY_WORDS = PRIORITY_LABELS
PRIORITY_DEFINITIONS = PRIORITY_HELP
ESCALATION_ROLE_WORDS = ROLE_LABELS
MODE_WORDS = MODE_LABELS
VISIT_KIND_WORDS = VISIT_KIND_LABELS
CHANNEL_WORDS = CHANNEL_LABELS
OFFICE_DAY_WORDS = {
    "holiday": _l("Holiday (no office hours)"),
    "workday": _l("Working day (e.g. a make-up day)"),
}


def priority_choices() -> list[C]:
    return [C(p, PRIORITY_WORDS[p]) for p in PRIORITIES]


def priority_help():
    """R-I3: the three definitions, shown under every priority select."""
    return _l("Urgent: %(urgent)s Serious: %(serious)s General: %(general)s",
              urgent=PRIORITY_DEFINITIONS["urgent"], serious=PRIORITY_DEFINITIONS["serious"],
              general=PRIORITY_DEFINITIONS["general"])


def _local_time(label, description=None):
    return DateTimeLocalField(label, format=LOCAL_FORMATS, validators=[Optional()],
                         description=description,
                         render_kw={"placeholder": "YYYY-MM-DD HH:MM"})


# -- recording a phone call -------------------------------------------------------------
class IncidentForm(FlaskForm):
    """An engineer records a call (or an e-mail) after the fact: every clock counts from
    ``reported_at`` (R-I1, R-I2, R-I4)."""

    contract = StringField(_l("Customer contract number"),
                           validators=[DataRequired(), Length(max=32)])
    priority = SelectField(_l("Priority"), choices=priority_choices, validate_choice=False,
                           description=priority_help())
    title = StringField(_l("Title"), validators=[DataRequired(), Length(max=200)])
    description = TextAreaField(_l("Description"),
                                validators=[DataRequired(), Length(max=TEXT_MAX)])
    serials = TextAreaField(_l("Affected serials"), validators=[Optional(), Length(max=4000)],
                            description=_l("One per line; they must be this customer's units."))
    models = StringField(_l("Affected product models"), validators=[Optional(), Length(max=400)],
                         description=_l("Model codes, separated by spaces or commas."))
    reporter_name = StringField(_l("Reported by"), validators=[Optional(), Length(max=200)])
    reporter_contact = StringField(_l("Reporter's phone or e-mail"),
                                   validators=[Optional(), Length(max=254)])
    reported_at = _local_time(
        _l("Reported at (China time)"),
        _l("When the customer called, as YYYY-MM-DD HH:MM; empty means now. At most 7 "
           "days back. Every deadline counts from it."))
    channel = SelectField(_l("Channel"), validate_choice=False,
                          choices=[C("phone", CHANNEL_WORDS["phone"]),
                                   C("email", CHANNEL_WORDS["email"])])
    submit = SubmitField(_l("Record the incident"))


# -- actions on an incident -------------------------------------------------------------
class ContactForm(FlaskForm):
    """R-I1: the customer was contacted and an engineer assigned."""

    engineer = SelectField(_l("Engineer"), validate_choice=False)
    note = TextAreaField(_l("Note"), validators=[Optional(), Length(max=NOTE_MAX)])
    submit = SubmitField(_l("Customer contacted"))


class AssignForm(FlaskForm):
    engineer = SelectField(_l("Engineer"), validate_choice=False)
    submit = SubmitField(_l("Assign"))


class DiagnosisForm(FlaskForm):
    """R-I2: the diagnosis, e-mailed to the customer."""

    diagnosis = TextAreaField(_l("Diagnosis"), validators=[DataRequired(), Length(max=TEXT_MAX)],
                              description=_l("The customer receives it by e-mail."))
    submit = SubmitField(_l("Give the diagnosis"))


class PriorityForm(FlaskForm):
    """D-7: a change recomputes every deadline from the report time."""

    priority = SelectField(_l("New priority"), choices=priority_choices, validate_choice=False,
                           description=priority_help())
    reason = TextAreaField(_l("Reason"), validators=[DataRequired(), Length(max=NOTE_MAX)],
                           description=_l("Required; it is recorded."))
    submit = SubmitField(_l("Change the priority"))


class SupportModeForm(FlaskForm):
    mode = SelectField(_l("Support mode"), validate_choice=False,
                       choices=[C(k, v) for k, v in MODE_WORDS.items()])
    note = TextAreaField(_l("Note"), validators=[Optional(), Length(max=NOTE_MAX)])
    submit = SubmitField(_l("Set the support mode"))


class OnsiteForm(FlaskForm):
    """R-I6 / R-C4: request an on-site visit."""

    kind = SelectField(_l("Kind of visit"), validate_choice=False,
                       choices=[C(k, v) for k, v in VISIT_KIND_WORDS.items()],
                       description=_l("Emergency: arrive within 8 hours, a brief every day, "
                                      "a final report (R-I6). Customer-side change: one "
                                      "free visit per contract year, the next is "
                                      "chargeable (R-C4)."))
    requested_at = _local_time(_l("Requested at (China time)"),
                               _l("When the customer asked; empty means now."))
    site_address = TextAreaField(_l("Site address"), validators=[Optional(), Length(max=NOTE_MAX)])
    note = TextAreaField(_l("Note"), validators=[Optional(), Length(max=NOTE_MAX)])
    submit = SubmitField(_l("Request on-site support"))


class ArrivalForm(FlaskForm):
    arrived_at = _local_time(_l("Arrived at (China time)"), _l("Empty means now."))
    submit = SubmitField(_l("Record the arrival"))


class BriefForm(FlaskForm):
    """R-I6: one brief per China-time day of the response."""

    day = DateField(_l("Day"), validators=[DataRequired()])
    text = TextAreaField(_l("Brief"), validators=[DataRequired(), Length(max=TEXT_MAX)])
    submit = SubmitField(_l("File the daily brief"))


class EndVisitForm(FlaskForm):
    """R-I6: the detailed emergency response report, turned into a PDF for the customer."""

    final_report = TextAreaField(_l("Final emergency response report"),
                                 validators=[Optional(), Length(max=20000)],
                                 description=_l("Required. The customer receives it as a PDF."))
    submit = SubmitField(_l("End the on-site response"))


class ResolveForm(FlaskForm):
    resolution = TextAreaField(_l("Resolution"), validators=[DataRequired(), Length(max=TEXT_MAX)],
                               description=_l("The customer receives it by e-mail."))
    submit = SubmitField(_l("Resolve the incident"))


class NoteForm(FlaskForm):
    text = TextAreaField(_l("Note"), validators=[DataRequired(), Length(max=TEXT_MAX)])
    public = BooleanField(_l("Visible to the customer"))
    submit = SubmitField(_l("Add the note"))


# -- lists ------------------------------------------------------------------------------
class ComplianceFilterForm(FlaskForm):
    class Meta:
        csrf = False

    month = StringField(_l("Month"), validators=[Optional(), Regexp(r"^\d{4}-(0[1-9]|1[0-2])$",
                                                                    message=_l("Use YYYY-MM."))],
                        render_kw={"placeholder": "YYYY-MM"})
    customer = SelectField(_l("Customer"), validate_choice=False)


class MarkReadForm(FlaskForm):
    """Mark one notification (``id``) or, with no id, all of them read."""

    id = HiddenField()
    submit = SubmitField(_l("Mark read"))


# -- admin: office calendar (R-I7) ------------------------------------------------------
class OfficeDayForm(FlaskForm):
    day = DateField(_l("Day"), validators=[DataRequired()])
    kind = SelectField(_l("Kind"), validate_choice=False,
                       choices=[C(k, v) for k, v in OFFICE_DAY_WORDS.items()])
    note = StringField(_l("Note"), validators=[Optional(), Length(max=200)],
                       description=_l("e.g. the name of the holiday."))
    submit = SubmitField(_l("Save the day"))


class RemoveDayForm(FlaskForm):
    day = DateField(_l("Day"), validators=[DataRequired()])
    submit = SubmitField(_l("Remove"))


class ConfirmYearForm(FlaskForm):
    """The admin declares a year's holidays and make-up days entered in full."""

    year = IntegerField(_l("Year"), validators=[DataRequired(), NumberRange(2000, 2200)])
    note = StringField(_l("Note"), validators=[Optional(), Length(max=200)],
                       description=_l("e.g. the State Council notice the days come from."))
    submit = SubmitField(_l("Confirm the year is complete"))


class UnconfirmYearForm(FlaskForm):
    year = IntegerField(_l("Year"), validators=[DataRequired(), NumberRange(2000, 2200)])
    submit = SubmitField(_l("Withdraw the confirmation"))


# -- admin: escalation ladder and holders (R-I4) ----------------------------------------
def ladder_field_name(priority: str, role: str) -> str:
    return f"{priority}__{role}"


class LadderForm(FlaskForm):
    """The R-I4 table as a grid: one hours cell per priority × role; empty = no rung."""

    submit = SubmitField(_l("Save the ladder"))

    def rows(self) -> list[tuple[int, str, str]]:
        return [(getattr(self, ladder_field_name(p, r)).data, p, r)
                for p in PRIORITIES for r in ROLES
                if getattr(self, ladder_field_name(p, r)).data is not None]

    def cell(self, priority: str, role: str):
        return getattr(self, ladder_field_name(priority, role))


for _priority in PRIORITIES:
    for _role in ROLES:
        setattr(LadderForm, ladder_field_name(_priority, _role), IntegerField(
            _l("%(role)s, %(priority)s (hours)", role=ESCALATION_ROLE_WORDS[_role],
               priority=PRIORITY_WORDS[_priority]),
            validators=[Optional(), NumberRange(1, LADDER_HOURS_MAX,
                                                message=_l("Hours from 1 to 8760, or empty."))],
            render_kw={"inputmode": "numeric"}))


class ResetLadderForm(FlaskForm):
    submit = SubmitField(_l("Reset to the SPEC table"))


class HolderForm(FlaskForm):
    role = SelectField(_l("Role"), validate_choice=False,
                       choices=[C(r, ESCALATION_ROLE_WORDS[r]) for r in ROLES])
    user_id = SelectField(_l("Holder"), validate_choice=False)
    deputy_id = SelectField(_l("Deputy"), validate_choice=False)
    customer_id = SelectField(_l("Customer"), validate_choice=False,
                           description=_l("Only for an account manager: empty is the "
                                          "fallback for customers without their own."))
    submit = SubmitField(_l("Save the holder"))


class RemoveHolderForm(FlaskForm):
    submit = SubmitField(_l("Remove"))
