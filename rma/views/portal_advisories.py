"""The customer portal's security advisories (issue 7; R-A1, R-A2).

Blueprint ``portal_advisories`` under ``/portal/advisories``: the advisories the
customer was notified of, with when the notice was sent, opened and acknowledged; an
advisory's page (opening it marks the customer's notice opened, once) with an
"Acknowledge" button. Another customer's advisory, or one the customer was not notified
of, answers 404 like an unknown number. Staff work on ``/staff/advisories``.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_login import current_user

from rma.extensions import login_manager
from rma.forms_advisories import AcknowledgeForm
from rma.models import Advisory, AdvisoryNotice
from rma.services import ServiceError
from rma.services import advisories as service
from rma.services.audit import Actor
from rma.views import refused

bp = Blueprint("portal_advisories", __name__, url_prefix="/portal/advisories")


@bp.before_request
def _customers_only():
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    if current_user.is_staff:
        return redirect(url_for("advisories.advisory_list"))
    if current_user.customer_id is None:
        abort(403)
    return None


def _noticed_or_404(number: str) -> tuple[Advisory, AdvisoryNotice]:
    """The advisory ``number`` with this customer's notice; 404 without one."""
    advisory = service.get_advisory(number)
    notice = None if advisory is None else service.notice_for(current_user.customer_id, advisory)
    if notice is None:
        abort(404)
    return advisory, notice


@bp.get("/")
def advisory_list():
    return render_template("portal/advisories.html",
                           rows=service.customer_advisories(current_user.customer_id))


def _render(advisory: Advisory, notice: AdvisoryNotice, form=None, error=None,
            status: int = 200):
    return render_template("portal/advisory.html", advisory=advisory, notice=notice,
                           form=form or AcknowledgeForm(formdata=None), error=error), status


@bp.get("/<number>")
def advisory_detail(number: str):
    """Viewing the advisory marks the customer's notice opened (once)."""
    advisory, notice = _noticed_or_404(number)
    if notice.opened_at is None:
        service.mark_opened(current_user._get_current_object(), advisory)
    return _render(advisory, notice)


@bp.post("/<number>/acknowledge")
def acknowledge(number: str):
    """The customer confirms it has read the advisory (once; audited)."""
    advisory, notice = _noticed_or_404(number)
    form = AcknowledgeForm()
    if not form.validate():
        abort(400)
    try:
        service.acknowledge(Actor.current(), advisory)
    except ServiceError as error:
        message, status = refused(form, error)
        advisory, notice = _noticed_or_404(number)
        return _render(advisory, notice, form, message, status)
    flash(_("Thank you: advisory %(number)s is acknowledged.", number=advisory.number),
          "success")
    return redirect(url_for("portal_advisories.advisory_detail", number=advisory.number))
