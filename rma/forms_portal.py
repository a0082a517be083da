"""The customer portal's forms: the RMA form (R-R1) and the RMA list's search.

The RMA form only carries what was typed; every check (serials, ownership, photos,
lengths) is the service's (``rma.services.rmas.open_rma``), so the form and the live
check never disagree. Item fields are named ``items-<n>-serial``, ``items-<n>-photos`` ….
"""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, MultipleFileField
from wtforms import (
    EmailField,
    FieldList,
    Form,
    FormField,
    SearchField,
    SelectField,
    StringField,
    TelField,
    TextAreaField,
)

from rma.services.rmas import FAULT_CATEGORIES

PHOTO_TYPES = "image/jpeg,image/png"


def _category_choices() -> list[tuple[str, object]]:
    return [("", _l("Not sure / choose later")), *FAULT_CATEGORIES]


class ItemForm(Form):
    """One returned unit. A plain ``Form``: the enclosing ``RmaForm`` carries the CSRF token."""

    serial = StringField(_l("Serial number"))
    fault_description = TextAreaField(_l("Fault description"))
    fault_category = SelectField(_l("Fault category (optional)"), choices=_category_choices,
                                 validate_choice=False)
    photos = MultipleFileField(
        _l("Photos (optional)"),
        description=_l("Up to 3 JPEG or PNG photos, 5 MB each."),
    )


class RmaForm(FlaskForm):
    # Only shown to staff submitting on a customer's behalf.
    contract_number = StringField(
        _l("Customer contract number"),
        description=_l("Staff only: the RMA is submitted on behalf of this customer."),
    )
    contact_name = StringField(_l("Contact person"))
    contact_phone = TelField(_l("Phone"))
    contact_email = EmailField(_l("E-mail"))
    ship_to = TextAreaField(
        _l("Delivery address for the replacement"),
        description=_l("Where the replacement units are sent."),
    )
    items = FieldList(FormField(ItemForm), min_entries=1)
    bulk = TextAreaField(
        _l("Paste many items"),
        description=_l(
            "One item per line: serial, a Tab, then the fault description "
            "(two columns copied from a spreadsheet)."
        ),
    )
    csv = FileField(
        _l("Or upload a CSV file"),
        description=_l(
            "Columns serial, fault_description and optionally fault_category, with a "
            "header line. UTF-8 (Excel's CSV UTF-8) or GB18030."
        ),
    )


class RmaSearchForm(Form):
    """The RMA list's filters: a GET form (``RmaSearchForm(request.args)``), no CSRF token."""

    q = SearchField(_l("RMA number or serial"))
    # Choices are set by the view, from the status words it shows (``STATUS_WORDS``).
    status = SelectField(_l("Status"), choices=[], validate_choice=False)
