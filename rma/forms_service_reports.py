"""The staff service-report form (issue 7, R-R4): which customer and which period.

A GET form (no CSRF token; nothing changes): the customer choices are set by the view,
the period ("2026-11" or "2026-Q4") is checked by ``service_reports.period_bounds``,
whose refusal the view shows beside the field.
"""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from wtforms import Form, SelectField, StringField
from wtforms.validators import Length, Optional


class ServiceReportForm(Form):
    customer = SelectField(_l("Customer"), choices=[], validate_choice=False)
    period = StringField(
        _l("Period"), validators=[Optional(), Length(max=7)],
        description=_l("A month as YYYY-MM (2026-11) or a quarter as YYYY-Q1 to YYYY-Q4."))
