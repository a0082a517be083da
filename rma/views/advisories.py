"""Staff security advisory pages under ``/staff/advisories`` (issue 7; R-A1..R-A3).

The list shows each advisory with its notices sent / opened / acknowledged and the
notification deadline (R-A2), marking those whose deadline passed without notices. The
form carries the severity with the guidance of R-A1 beside it, the affected product
models, vendor-found explained (R-A3) and the official patch date. An advisory's page
shows the computed deadline, the affected customers (from the installed base) with each
notice's times, and the buttons "Notify customers" and "Publish" (disabled, saying from
when, while R-A3 forbids it; the server refuses a forced request with the same words).

Support engineers, managers and admins author, notify and publish; every other role gets
403. Views translate: form → one ``rma.services.advisories`` call → flash and redirect,
or the page again with the refusal beside its field or button.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import select

from rma import clock
from rma.extensions import db
from rma.forms_advisories import AdvisoryForm, NotifyForm, PublishForm
from rma.models import Advisory, AdvisoryNotice, AdvisoryStatus, Customer, ProductModel, Role
from rma.services import ServiceError
from rma.services import advisories as service
from rma.services.audit import Actor
from rma.views import refused, roles_required

bp = Blueprint("advisories", __name__, url_prefix="/staff/advisories")

#: Who authors, notifies and publishes advisories (the services check again).
AUTHORS = (Role.SUPPORT, Role.MANAGER, Role.ADMIN)
#: The services' field names → the form's.
FIELD_ALIASES = {"model_codes": "models"}
STATUS_WORDS = {
    "draft": _l("Draft"),
    "notified": _l("Customers notified"),
    "published": _l("Published"),
}


# -- template helpers -------------------------------------------------------------------
@bp.app_template_global()
def adv_sees() -> bool:
    """Whether the viewer sees the staff advisory pages (the navigation's link)."""
    return current_user.is_authenticated and current_user.has_role(*AUTHORS)


@bp.app_template_global()
def advisory_status_word(value) -> str:
    code = str(getattr(value, "value", value) or "")
    return str(STATUS_WORDS.get(code, code))


@bp.app_template_global()
def severity_guidance() -> list[tuple[str, str]]:
    """R-A1: (severity code, guidance in the reader's language), high to low."""
    return list(service.severity_help().items())


# -- helpers ----------------------------------------------------------------------------
@dataclass(frozen=True)
class _Refusal:
    message: str
    field: str | None
    status: int


def _refused(form, error: ServiceError) -> tuple[str | None, int]:
    field = FIELD_ALIASES.get(error.field or "", error.field)
    return refused(form, _Refusal(error.message, field, error.status))


def _advisory_or_404(number: str) -> Advisory:
    advisory = service.get_advisory(number)
    if advisory is None:
        abort(404)
    return advisory


def _model_choices() -> list[tuple[str, str]]:
    models = db.session.scalars(select(ProductModel).order_by(ProductModel.code))
    return [(m.code, f"{m.code} \u2013 {m.name}") for m in models]


def _form(advisory: Advisory | None = None, formdata=None) -> AdvisoryForm:
    if advisory is None or formdata is not None:
        form = AdvisoryForm(formdata=formdata) if formdata is not None else AdvisoryForm()
    else:
        form = AdvisoryForm(formdata=None, obj=advisory,
                            data={"models": [m.code for m in advisory.product_models]})
    form.models.choices = _model_choices()
    return form


def _fields(form: AdvisoryForm) -> dict:
    """The form's values as the services' keyword arguments."""
    return {
        "title": form.title.data or "", "severity": form.severity.data or "",
        "description": form.description.data or "", "solution": form.solution.data or "",
        "references": form.references.data or "",
        "affected_versions": form.affected_versions.data or "",
        "model_codes": list(form.models.data or []),
        "vendor_found": bool(form.vendor_found.data),
        "patch_released_on": form.patch_released_on.data,
    }


@dataclass(frozen=True)
class PublishState:
    """Whether "Publish" is offered now (R-A3): ``possible_on`` is the first day it is,
    ``notify_first`` says a vendor-found advisory was not notified yet."""

    allowed: bool
    possible_on: object
    notify_first: bool


def _publish_state(advisory: Advisory) -> PublishState:
    allowed, possible_on = service.publish_check(advisory, clock.today())
    return PublishState(allowed, possible_on, not allowed and possible_on is None)


@dataclass(frozen=True)
class CustomerRow:
    """An affected customer (from the installed base) with its notice, if sent."""

    customer: Customer
    notice: AdvisoryNotice | None
    affected: bool


def _customer_rows(advisory: Advisory) -> list[CustomerRow]:
    """The customers affected now, and those noticed earlier that no longer are."""
    notices = {notice.customer_id: notice for notice in service.notices(advisory)}
    rows = [CustomerRow(c, notices.pop(c.id, None), True)
            for c in service.affected_customers(advisory)]
    rows += [CustomerRow(n.customer, n, False) for n in notices.values()]
    return rows


# -- list -------------------------------------------------------------------------------
@bp.get("/")
@roles_required(*AUTHORS)
def advisory_list():
    """Every advisory with its notice counts and R-A2 deadline (``?status=``)."""
    status = request.args.get("status") or None
    if status is not None and status not in STATUS_WORDS:
        status = None
    return render_template("advisories/list.html", rows=service.staff_list(status),
                           status=status, statuses=STATUS_WORDS, today=clock.today())


# -- new and edit -----------------------------------------------------------------------
@bp.route("/new", methods=["GET", "POST"])
@roles_required(*AUTHORS)
def advisory_new():
    form = _form()
    if request.method == "GET":
        form.severity.data = "medium"
        return render_template("advisories/form.html", form=form, advisory=None, error=None)
    error, status = None, 422
    if form.validate_on_submit():
        try:
            advisory = service.create_advisory(Actor.current(), **_fields(form))
        except ServiceError as problem:
            error, status = _refused(form, problem)
        else:
            flash(_("Advisory %(number)s saved as a draft.", number=advisory.number),
                  "success")
            return redirect(url_for("advisories.advisory_detail", number=advisory.number))
    elif not form.errors:
        abort(400)
    return render_template("advisories/form.html", form=form, advisory=None,
                           error=error), status


@bp.route("/<number>/edit", methods=["GET", "POST"])
@roles_required(*AUTHORS)
def advisory_edit(number: str):
    """A draft, or a correction after the notices (recorded; not sent again)."""
    advisory = _advisory_or_404(number)
    if request.method == "GET":
        return render_template("advisories/form.html", form=_form(advisory),
                               advisory=advisory, error=None)
    form = _form(advisory, formdata=request.form)
    error, status = None, 422
    if form.validate_on_submit():
        try:
            service.update_advisory(Actor.current(), advisory, **_fields(form))
        except ServiceError as problem:
            error, status = _refused(form, problem)
            advisory = _advisory_or_404(number)
        else:
            flash(_("Advisory %(number)s saved.", number=advisory.number), "success")
            return redirect(url_for("advisories.advisory_detail", number=advisory.number))
    elif not form.errors:
        abort(400)
    return render_template("advisories/form.html", form=form, advisory=advisory,
                           error=error), status


# -- an advisory's page -----------------------------------------------------------------
def _render_detail(advisory: Advisory, notify_form=None, publish_form=None,
                   status: int = 200):
    today = clock.today()
    return render_template(
        "advisories/detail.html", advisory=advisory, rows=_customer_rows(advisory),
        publish=_publish_state(advisory), today=today,
        overdue=advisory.notify_due_on is not None and advisory.notified_at is None
        and advisory.notify_due_on < today,
        editable=advisory.status in (AdvisoryStatus.DRAFT, AdvisoryStatus.NOTIFIED),
        notify_form=notify_form or NotifyForm(formdata=None),
        publish_form=publish_form or PublishForm(formdata=None)), status


@bp.get("/<number>")
@roles_required(*AUTHORS)
def advisory_detail(number: str):
    return _render_detail(_advisory_or_404(number))


@bp.post("/<number>/notify")
@roles_required(*AUTHORS)
def notify(number: str):
    """R-A2: a notice to every affected customer not noticed yet (a re-run adds only the
    newly affected)."""
    advisory = _advisory_or_404(number)
    form = NotifyForm()
    if not form.validate():
        abort(400)
    try:
        count = service.notify_customers(Actor.current(), advisory)
    except ServiceError as problem:
        message, status = _refused(form, problem)
        if message:
            form.form_errors.append(message)
        return _render_detail(_advisory_or_404(number), notify_form=form, status=status)
    flash(_("%(number)s: %(n)d customer(s) notified.", number=advisory.number, n=count),
          "success")
    return redirect(url_for("advisories.advisory_detail", number=advisory.number))


@bp.post("/<number>/publish")
@roles_required(*AUTHORS)
def publish(number: str):
    """R-A3: on the public pages; refused, naming the date, before it is allowed."""
    advisory = _advisory_or_404(number)
    form = PublishForm()
    if not form.validate():
        abort(400)
    try:
        service.publish(Actor.current(), advisory, clock.today())
    except ServiceError as problem:
        message, status = _refused(form, problem)
        if message:
            form.form_errors.append(message)
        return _render_detail(_advisory_or_404(number), publish_form=form, status=status)
    flash(_("%(number)s is published.", number=advisory.number), "success")
    return redirect(url_for("advisories.advisory_detail", number=advisory.number))
