"""The customer portal's service reports (issue 7, R-R4): the reports sent to the user's
customer, newest first, each downloadable as the PDF it received. Another customer's or
an unsent report answers 404 like an unknown one. Staff are sent to ``/staff/reports``.
"""

from __future__ import annotations

import io

from flask import Blueprint, abort, redirect, render_template, send_file, url_for
from flask_login import current_user

from rma.extensions import login_manager
from rma.services import service_reports as service

bp = Blueprint("portal_reports", __name__, url_prefix="/portal/reports")


@bp.before_request
def _logged_in_only():
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    return None


@bp.get("/")
def report_list():
    if current_user.is_staff:
        return redirect(url_for("service_reports.index"))
    return render_template("portal/reports.html",
                           reports=service.customer_reports(current_user.customer_id))


@bp.get("/<int:report_id>.pdf")
def report_pdf(report_id: int):
    if current_user.is_staff:
        abort(404)
    report = service.get_customer_report(current_user.customer_id, report_id)
    if report is None:
        abort(404)
    response = send_file(io.BytesIO(report.pdf), mimetype="application/pdf",
                         as_attachment=True,
                         download_name=service.report_filename(report.customer, report.period),
                         max_age=0)
    response.headers["Cache-Control"] = "private, no-store"
    return response
