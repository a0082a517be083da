"""The customer portal's finance forms (issue 5): accept or decline a quote.

They carry only what the customer chose; every rule (whose quote, still open, not
expired, what happens to each item) is ``rma.services.quotes``'s.
"""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import SubmitField, TextAreaField
from wtforms.validators import Length, Optional

NOTE_MAX = 2000


class AcceptQuoteForm(FlaskForm):
    note = TextAreaField(_l("Note for us (optional)"),
                         validators=[Optional(), Length(max=NOTE_MAX)],
                         description=_l("E.g. a purchase order number."))
    submit = SubmitField(_l("Accept the quote"))


class DeclineQuoteForm(FlaskForm):
    """Declining a replacement quote says what becomes of the faulty unit: one button
    sends it back (``send_back``), the other has it scrapped (``scrap``). A support quote
    has only ``decline``."""

    note = TextAreaField(_l("Reason (optional)"), validators=[Optional(), Length(max=NOTE_MAX)])
    send_back = SubmitField(_l("Decline and send my unit back"))
    scrap = SubmitField(_l("Decline and scrap my unit"))
    decline = SubmitField(_l("Decline the quote"))

    @property
    def disposition(self) -> str:
        return "scrap" if self.scrap.data else "return"
