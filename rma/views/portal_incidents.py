"""The customer portal's incidents (issue 6; R-I1..R-I6, R-C4).

Blueprint ``portal_incidents`` under ``/portal``: the customer's incidents, the report
form (priority with the R-I3 definitions, own serials, description), an incident's page
(status, engineer, the contact and diagnosis targets, public timeline, on-site visits
with their arrival deadline and daily briefs) with "request on-site help" and "add a
note", and the final emergency response report as PDF once a visit has ended.
``incidents.get_incident`` scopes to the user's customer: another customer's number
answers 404 like an unknown one. Staff work on ``/staff/support``; the list and an
incident's page send them there.
"""

from __future__ import annotations

import io

from flask import (
    Blueprint,
    abort,
    flash,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from werkzeug.routing import BuildError

from rma import clock
from rma.documents.incident import render_onsite_report
from rma.extensions import login_manager
from rma.forms_portal_incidents import (
    IncidentNoteForm,
    OnsiteRequestForm,
    ReportIncidentForm,
)
from rma.models import Incident, IncidentChannel, OnsiteVisit
from rma.services import ServiceError
from rma.services import incidents as service
from rma.services.audit import Actor
from rma.views import refused

bp = Blueprint("portal_incidents", __name__, url_prefix="/portal")
PER_PAGE = 20

# The customer's words for an incident's status; the other words are the service's.
STATUS_WORDS = {
    "new": _l("Reported, we call you back"),
    "contacted": _l("Engineer assigned, diagnosing"),
    "diagnosed": _l("Diagnosis given, being resolved"),
    "resolved": _l("Resolved"),
}
# The targets a customer follows on its incident page (R-I1, R-I2).
CUSTOMER_TARGETS = ("contact", "diagnosis")


def _word(words: dict, value) -> str:
    return str(words.get(str(value), value)) if value is not None else ""


@bp.app_template_global()
def incident_status_word(value) -> str:
    return _word(STATUS_WORDS, value)


@bp.app_template_global()
def incident_priority_word(value) -> str:
    return _word(service.PRIORITY_LABELS, value)


@bp.app_template_global()
def support_mode_word(value) -> str:
    return _word(service.MODE_LABELS, value)


@bp.app_template_global()
def incident_target_word(value) -> str:
    return _word(service.TARGET_LABELS, value)


@bp.app_template_global()
def target_state_word(value) -> str:
    return _word(service.TARGET_STATE_LABELS, value)


@bp.app_template_global()
def visit_kind_word(value) -> str:
    return _word(service.VISIT_KIND_LABELS, value)


@bp.before_request
def _logged_in_only():
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    return None


# -- shared with the API ----------------------------------------------------------------
def visible_incident(number: str) -> Incident | None:
    return service.get_incident(number, current_user._get_current_object())


def mail_language() -> str:
    return "zh_CN" if get_locale().language == "zh" else "en"


def report_pdf_response(visit: OnsiteVisit):
    """The final report of an ended visit as a PDF download (R-I6)."""
    data = render_onsite_report(service.final_report_document(visit))
    response = send_file(io.BytesIO(data), mimetype="application/pdf", as_attachment=True,
                         download_name=service.report_filename(visit), max_age=0)
    response.headers["Cache-Control"] = "private, no-store"
    return response


# -- pages ------------------------------------------------------------------------------
def _staff_page(endpoint: str, **values):
    """Staff follow incidents on the support pages."""
    try:
        return redirect(url_for(endpoint, **values))
    except BuildError:
        abort(403)


def _page() -> int:
    try:
        return max(1, int(request.args.get("page", 1)))
    except ValueError:
        return 1


@bp.get("/incidents")
def incident_list():
    if current_user.is_staff:
        return _staff_page("support.queue")
    result = service.list_incidents(current_user._get_current_object(), page=_page(),
                                    per_page=PER_PAGE)
    return render_template("portal/incidents.html", incidents=result.rows, total=result.total,
                           page=result.page, has_more=result.page < result.pages)


def _render_new(form: ReportIncidentForm, status: int = 200):
    return render_template("portal/incident_form.html", form=form,
                           priority_help=service.PRIORITY_HELP), status


@bp.route("/incidents/new", methods=["GET", "POST"])
def incident_new():
    """Report a fault (R-I1..R-I3): the incident number is issued at once and the
    contact and diagnosis targets start from now."""
    if current_user.is_staff:
        return _staff_page("support.new_incident")
    form = ReportIncidentForm()
    if not form.is_submitted():
        form.reporter_name.data = current_user.full_name
        form.reporter_contact.data = current_user.phone or current_user.email
        return _render_new(form)
    if not form.validate():
        return _render_new(form, 422)
    try:
        incident = service.report_incident(
            Actor.current(), customer=current_user.customer, priority=form.priority.data,
            title=form.title.data or "", description=form.description.data or "",
            serials=form.serial_list(), channel=IncidentChannel.PORTAL.value,
            reporter_name=form.reporter_name.data or "",
            reporter_contact=form.reporter_contact.data or "", language=mail_language())
    except ServiceError as error:
        message, status = refused(form, error)
        if message:
            form.form_errors.append(message)
        return _render_new(form, status)
    flash(_("Incident %(number)s reported. We will call you back within 30 minutes.",
            number=incident.number), "success")
    return redirect(url_for("portal_incidents.incident_detail", number=incident.number))


def _incident_or_404(number: str) -> Incident:
    incident = visible_incident(number)
    if incident is None:
        abort(404)
    return incident


def _render_detail(incident: Incident, onsite_form=None, note_form=None, error=None,
                   status: int = 200):
    clocks = service.incident_clocks(incident, clock.now())
    targets = [target for target in clocks.targets if target.target in CUSTOMER_TARGETS]
    if onsite_form is None:
        onsite_form = OnsiteRequestForm(prefix="onsite", formdata=None)
        onsite_form.site_address.data = incident.customer.address
    return render_template(
        "portal/incident.html", incident=incident, targets=targets,
        warnings=clocks.warnings,
        timeline=service.timeline(incident, current_user._get_current_object()),
        can_request_onsite=incident.status != "resolved" and service.open_visit(incident) is None
        and not current_user.is_staff,
        can_add_note=not current_user.is_staff,
        onsite_form=onsite_form,
        note_form=note_form or IncidentNoteForm(prefix="note", formdata=None),
        error=error), status


@bp.get("/incidents/<number>")
def incident_detail(number: str):
    incident = _incident_or_404(number)
    if current_user.is_staff:
        return _staff_page("support.incident", number=incident.number)
    return _render_detail(incident)


@bp.post("/incidents/<number>/onsite")
def request_onsite(number: str):
    """Ask for an engineer on site (R-I6: arrival within 8 hours; R-C4 for a change)."""
    incident = _incident_or_404(number)
    form = OnsiteRequestForm(prefix="onsite")
    if not form.validate():
        return _render_detail(incident, onsite_form=form, status=422)
    try:
        visit = service.request_onsite(Actor.current(), incident, kind=form.kind.data,
                                       site_address=form.site_address.data or "",
                                       note=form.note.data or "")
    except ServiceError as error:
        message, status = refused(form, error)
        return _render_detail(_incident_or_404(number), onsite_form=form, error=message,
                              status=status)
    flash(_("On-site help requested: an engineer is due on site by %(at)s (China time).",
            at=clock.to_local(visit.arrival_due_at).strftime("%Y-%m-%d %H:%M")), "success")
    return redirect(url_for("portal_incidents.incident_detail", number=number))


@bp.post("/incidents/<number>/notes")
def add_note(number: str):
    incident = _incident_or_404(number)
    form = IncidentNoteForm(prefix="note")
    if not form.validate():
        return _render_detail(incident, note_form=form, status=422)
    try:
        service.add_note(Actor.current(), incident, form.text.data or "", public=True)
    except ServiceError as error:
        message, status = refused(form, error)
        return _render_detail(_incident_or_404(number), note_form=form, error=message,
                              status=status)
    flash(_("Your note was added."), "success")
    return redirect(url_for("portal_incidents.incident_detail", number=number))


@bp.get("/visits/<int:visit_id>/report.pdf")
def visit_report_pdf(visit_id: int):
    """The final emergency response report (R-I6): own visits only, once ended."""
    visit = service.get_visit(visit_id, current_user._get_current_object())
    if visit is None or visit.ended_at is None:
        abort(404)
    return report_pdf_response(visit)
