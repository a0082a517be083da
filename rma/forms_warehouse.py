"""Forms of the staff warehouse pages: triage, scan station, inspection, override,
release, shipping, delivery and the replacements dashboard's filters (issue 4).

The fields only bound sizes and say what is required; every rule (transitions, causes,
spare stock, the 72-hour clock) is ``rma.services.warehouse``'s, whose errors the views
put beside the field they name. Several items' forms share the triage page: each is
built with ``prefix=f"<action>-<item id>"`` so field ids stay unique.
"""

from __future__ import annotations

from datetime import datetime

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import MultipleFileField
from wtforms import (
    DateTimeLocalField,
    Form,
    HiddenField,
    SelectField,
    StringField,
    SubmitField,
    TextAreaField,
)
from wtforms.fields.choices import SelectChoice as C
from wtforms.validators import DataRequired, InputRequired, Length, Optional, StopValidation

from warranty.decision import Cause, Outcome

NOTE_MAX = 2000
CODE_MAX = 100

# D-4: the causes, in the staff's words (values are ``warranty.Cause``).
CAUSE_WORDS = {
    Cause.QUALITY_DEFECT.value: _l("Quality defect (free in warranty, R-W3)"),
    Cause.MISUSE_DROP.value: _l("Misuse: dropped (paid, R-W4)"),
    Cause.MISUSE_HEAT.value: _l("Misuse: high temperature (paid, R-W4)"),
    Cause.MISUSE_WATER.value: _l("Misuse: water (paid, R-W4)"),
    Cause.MISUSE_PHYSICAL.value: _l("Misuse: crushed or physically damaged (paid, R-W4)"),
    Cause.MISUSE_OTHER.value: _l("Misuse: other abnormal use (paid, R-W4)"),
    Cause.NO_FAULT_FOUND.value: _l("No fault found (the unit goes back, D-4)"),
}
# The decision's outcome, in the staff's words (values are ``warranty.Outcome``).
OUTCOME_WORDS = {
    Outcome.FREE.value: _l("Free replacement"),
    Outcome.PAID.value: _l("Paid replacement"),
    Outcome.RETURN_UNIT.value: _l("No fault found: return the unit"),
}


def cause_choices(blank: bool = True) -> list[C]:
    choices = [C(cause.value, CAUSE_WORDS[cause.value]) for cause in Cause]
    return [C("", _l("Choose the cause")), *choices] if blank else choices


def outcome_choices() -> list[C]:
    """Free or paid: what an override may set (D-6)."""
    return [C(value, OUTCOME_WORDS[value]) for value in (Outcome.FREE.value, Outcome.PAID.value)]


# -- triage (support) -------------------------------------------------------------------
class ConfirmRemoteForm(FlaskForm):
    """Confirm the fault remotely (D-1): the 72-hour clock starts (R-R3)."""

    cause = SelectField(_l("Cause"), choices=cause_choices, validate_choice=False)
    notes = TextAreaField(_l("Notes"), validators=[Optional(), Length(max=NOTE_MAX)])
    submit = SubmitField(_l("Confirm the fault remotely"))


class RequestUnitForm(FlaskForm):
    """Ask the customer to send the unit back; the clock starts on inspection (D-1)."""

    notes = TextAreaField(_l("Notes"), validators=[Optional(), Length(max=NOTE_MAX)])
    submit = SubmitField(_l("Ask for the unit back"))


class RejectForm(FlaskForm):
    reason = TextAreaField(_l("Reason"), validators=[DataRequired(), Length(max=NOTE_MAX)],
                           description=_l("Required. The customer reads it."))
    submit = SubmitField(_l("Reject this item"))


# -- scan station (warehouse) -----------------------------------------------------------
class ScanForm(FlaskForm):
    """One input for a USB scanner (it types the code and presses Enter). ``rma`` holds
    the RMA being received, so a serial is checked against it."""

    code = StringField(_l("Scan an RMA label or a serial"),
                       validators=[Optional(), Length(max=CODE_MAX)])
    rma = HiddenField()
    station = HiddenField()
    submit = SubmitField(_l("Enter"))


# -- inspection -------------------------------------------------------------------------
class InspectForm(FlaskForm):
    cause = SelectField(_l("Cause"), choices=cause_choices, validate_choice=False)
    notes = TextAreaField(_l("Inspection notes"),
                          validators=[Optional(), Length(max=NOTE_MAX)])
    photos = MultipleFileField(_l("Photos (optional)"),
                               description=_l("JPEG or PNG, 5 MB each."))
    submit = SubmitField(_l("Save the inspection"))


class OverrideForm(FlaskForm):
    """A manager overrides the computed decision, with a reason (D-6)."""

    outcome = SelectField(_l("New decision"), choices=outcome_choices,
                          validate_choice=False)
    reason = TextAreaField(_l("Reason for the override"),
                           validators=[DataRequired(), Length(max=NOTE_MAX)],
                           description=_l("Required; it is recorded (D-6)."))
    submit = SubmitField(_l("Override the decision"))


# -- finance ----------------------------------------------------------------------------
class ReleaseForm(FlaskForm):
    """Finance releases a paid replacement on credit, before its invoice is paid: only for
    a customer with credit terms, with a reason; its clock starts (D-3)."""

    reason = TextAreaField(_l("Reason for releasing on credit"),
                           validators=[DataRequired(), Length(max=NOTE_MAX)],
                           description=_l("Required; it is recorded (D-3)."))
    submit = SubmitField(_l("Release on credit"))


# -- shipping and delivery --------------------------------------------------------------
class ShipForm(FlaskForm):
    replacement_serial = StringField(
        _l("Replacement serial"), validators=[Optional(), Length(max=CODE_MAX)],
        description=_l("Scan the spare unit's barcode. Empty only when the customer's own "
                       "unit goes back (no fault found)."))
    carrier = StringField(_l("Carrier"), validators=[DataRequired(), Length(max=100)])
    tracking_number = StringField(_l("Tracking number"),
                                  validators=[DataRequired(), Length(max=100)])
    submit = SubmitField(_l("Ship"))


class DeliverForm(FlaskForm):
    delivered_at = DateTimeLocalField(
        _l("Delivered at (China time)"), format=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"],
        validators=[InputRequired(message=_l("Enter the date and time of delivery."))])
    received_by = StringField(_l("Received by"), validators=[DataRequired(), Length(max=200)],
                              description=_l("Who signed for the parcel."))
    late_reason = TextAreaField(
        _l("Why was the 72-hour target missed?"),
        validators=[Length(max=NOTE_MAX)],
        description=_l("Needed when the delivery is later than the due time."))
    submit = SubmitField(_l("Record the delivery"))

    #: The due time in China time (naive, like ``delivered_at``), set by the view.
    due_local: datetime | None = None

    def validate_late_reason(self, field) -> None:
        """A delivery after the due time says why (the breach's reason, R-R3)."""
        when = self.delivered_at.data
        if self.due_local is not None and when is not None and when > self.due_local \
                and not (field.data or "").strip():
            raise StopValidation(_l("The delivery is later than the due time: say why the "
                                    "72-hour target was missed."))


# -- dashboard filters ------------------------------------------------------------------
class ReplacementFilterForm(Form):
    """A GET form (``ReplacementFilterForm(request.args)``): no CSRF token. Choices are
    set by the view."""

    customer = SelectField(_l("Customer"), choices=[], validate_choice=False)
    status = SelectField(_l("Item status"), choices=[], validate_choice=False)
    state = SelectField(_l("72-hour clock"), choices=[], validate_choice=False)
