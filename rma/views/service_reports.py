"""Staff service reports under ``/staff/reports`` (issue 7, R-R4): pick a customer and a
period (a month or a quarter) to see the report's figures as the customer gets them, with
its PDF; below, the reports already sent. A sent period shows the stored report (what the
customer received); an unsent one is computed now, and its PDF rendered on demand
without storing anything. Support, managers and admins see these pages.
"""

from __future__ import annotations

import io
from datetime import timedelta

from flask import Blueprint, abort, render_template, request, send_file
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from rma import clock
from rma.extensions import db
from rma.forms_service_reports import ServiceReportForm
from rma.models import Customer, Role
from rma.services import service_reports as service
from rma.services.service_reports import ServiceReportError
from rma.views import roles_required

bp = Blueprint("service_reports", __name__, url_prefix="/staff/reports")

#: Who sees the service reports (engineering and management).
VIEW = (Role.SUPPORT, Role.MANAGER, Role.ADMIN)


@bp.app_template_global()
def srep_sees() -> bool:
    """Whether the viewer sees the staff service reports (the navigation's link)."""
    return current_user.is_authenticated and current_user.has_role(*VIEW)


def _last_month() -> str:
    last = clock.today().replace(day=1) - timedelta(days=1)
    return f"{last.year:04d}-{last.month:02d}"


def _customer(raw: str | None) -> Customer | None:
    try:
        return db.session.get(Customer, int(raw)) if raw else None
    except (TypeError, ValueError):
        return None


@bp.get("/")
@roles_required(*VIEW)
def index():
    form = ServiceReportForm(request.args)
    customers = db.session.scalars(select(Customer).order_by(Customer.name, Customer.id)).all()
    form.customer.choices = [("", "-")] + [(str(c.id), f"{c.name} ({c.contract_number})")
                                           for c in customers]
    if not form.period.data:
        form.period.data = _last_month()
    customer = _customer(form.customer.data)
    status, figures, sent = 200, None, None
    if form.customer.data and customer is None:
        form.customer.errors = [*list(form.customer.errors),
                                _("Choose a customer from the list.")]
        status = 422
    elif customer is not None:
        try:
            period = service.normalize_period(form.period.data)
        except ServiceReportError as error:
            form.period.errors = [*list(form.period.errors), error.message]
            status = 422
        else:
            form.period.data = period
            sent = service.sent_report(customer.id, period)
            figures = (sent.figures if sent is not None
                       else service.report_figures(customer, period, clock.now()).as_dict())
    reports = (service.customer_reports(customer.id) if customer is not None
               else service.recent_sent_reports())
    return render_template(
        "service_reports/index.html", form=form, customer=customer, figures=figures,
        sent=sent, reports=reports,
        summary=service.summary_facts(figures) if figures else [],
        tables=service.report_tables(figures) if figures else []), status


@bp.get("/<int:customer_id>/<period>.pdf")
@roles_required(*VIEW)
def report_pdf(customer_id: int, period: str):
    """The PDF of a period: the stored one once sent, else rendered now (not stored)."""
    customer = db.session.get(Customer, customer_id)
    if customer is None:
        abort(404)
    try:
        period = service.normalize_period(period)
    except ServiceReportError:
        abort(404)
    data, _sent = service.report_pdf(customer, period, clock.now())
    response = send_file(io.BytesIO(data), mimetype="application/pdf", as_attachment=True,
                         download_name=service.report_filename(customer, period), max_age=0)
    response.headers["Cache-Control"] = "private, no-store"
    return response
