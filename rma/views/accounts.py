"""Registration applications, their review by staff, invitations and colleagues (issue 3)."""

from __future__ import annotations

from functools import wraps

from flask import (
    Blueprint,
    abort,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_login import current_user, login_user
from sqlalchemy import or_, select

from rma import ratelimit
from rma.extensions import db, login_manager
from rma.forms_accounts import (
    AcceptInvitationForm,
    ActionForm,
    ApproveForm,
    InviteForm,
    RegistrationForm,
    RejectForm,
)
from rma.models import ApplicationStatus, Customer, Role
from rma.services import ConflictError, NotFoundError, ServiceError
from rma.services import invitations as inv
from rma.services import registration as reg
from rma.services.audit import Actor
from rma.views import form_errors, roles_required

bp = Blueprint("accounts", __name__)
STAFF = (Role.SUPPORT, Role.MANAGER, Role.ADMIN)
PAGE = 50
PORTAL_HOME = "/portal/"


def _show(form, error: ServiceError) -> None:
    """A service error beside its field; a holdings error lists every bad line."""
    messages = getattr(error, "messages", None)
    field = getattr(form, error.field or "", None)
    if messages and field is not None:
        field.errors = [*list(field.errors), *messages]
    else:
        form_errors(form, error)


def _page() -> int:
    try:
        return max(1, int(request.args.get("page", 1)))
    except ValueError:
        return 1


def _ui_language() -> str:
    locale = get_locale()
    return "en" if locale is not None and locale.language == "en" else "zh_CN"


# -- public registration ----------------------------------------------------------------
@bp.route("/register", methods=["GET", "POST"])
@ratelimit.limit("REGISTRATION_RATE_LIMIT", methods=("POST",))
def register():
    """An organisation applies to be registered (R-C1 follows on approval)."""
    form = RegistrationForm()
    if request.method == "GET":
        form.language.data = _ui_language()
    if form.validate_on_submit():
        if form.website.data:  # the honeypot: a bot; say thanks, keep nothing
            return redirect(url_for("accounts.register_thanks"))
        try:
            reg.submit_application(
                form.organisation_name.data, form.address.data, form.contact_name.data,
                form.contact_email.data, form.contact_phone.data, form.other_contacts.data,
                form.holdings.data, form.accepted_on.data, form.language.data,
            )
        except ServiceError as error:
            _show(form, error)
        else:
            return redirect(url_for("accounts.register_thanks"))
    return render_template("accounts/register.html", form=form)


@bp.get("/register/thanks")
def register_thanks():
    return render_template("accounts/register_thanks.html")


# -- staff review -------------------------------------------------------------------------
@bp.get("/staff/applications")
@roles_required(*STAFF)
def applications():
    status = request.args.get("status", "")
    if status not in {s.value for s in ApplicationStatus}:
        status = ""
    page = _page()
    rows, has_more = reg.list_applications(status or None, page, PAGE)
    return render_template("accounts/applications.html", rows=rows, status=status, page=page,
                           has_more=has_more, statuses=list(ApplicationStatus),
                           status_label=reg.status_label)


def _render_application(application, approve_form, reject_form, error=None, status=200):
    return render_template(
        "accounts/application.html", application=application,
        matches=reg.match_holdings(application), approve_form=approve_form,
        reject_form=reject_form, error=error, status_label=reg.status_label,
        contact_has_account=reg.contact_has_account(application),
    ), status


@bp.route("/staff/applications/<int:application_id>", methods=["GET", "POST"])
@roles_required(*STAFF)
def application(application_id: int):
    """Review one application: approve (customer, contract number, invitation) or reject."""
    try:
        app_row = reg.get_application(application_id)
    except NotFoundError:
        abort(404)
    action = request.form.get("action") if request.method == "POST" else None
    approve_form = ApproveForm(formdata=request.form if action == "approve" else None)
    reject_form = RejectForm(formdata=request.form if action == "reject" else None)
    if action != "approve":
        approve_form.name.data = app_row.organisation_name
        approve_form.address.data = app_row.address
        approve_form.accepted_on.data = app_row.accepted_on
    form = approve_form if action == "approve" else reject_form
    if action in ("approve", "reject") and form.validate_on_submit():
        try:
            if action == "approve":
                result = reg.approve_application(
                    Actor.current(), app_row.id, approve_form.name.data,
                    approve_form.address.data, approve_form.accepted_on.data,
                    request.form.getlist("assign"))
                flash(_("Approved: %(name)s has contract number %(number)s. The contact was "
                        "invited.", name=result.customer.name,
                        number=result.customer.contract_number), "success")
            else:
                reg.reject_application(Actor.current(), app_row.id, reject_form.reason.data)
                flash(_("Application rejected; the applicant was told why."), "success")
        except ConflictError as error:
            db.session.expire_all()
            return _render_application(reg.get_application(application_id), approve_form,
                                       reject_form, error.message, 409)
        except ServiceError as error:
            _show(form, error)
        else:
            return redirect(url_for("accounts.application", application_id=app_row.id))
    elif request.method == "POST" and action not in ("approve", "reject"):
        abort(400)
    return _render_application(app_row, approve_form, reject_form)


@bp.get("/staff/customers")
@roles_required(*STAFF)
def staff_customers():
    query = request.args.get("q", "").strip()[:100]
    stmt = select(Customer).order_by(Customer.name)
    if query:
        like = f"%{query}%"
        stmt = stmt.where(or_(Customer.name.ilike(like), Customer.contract_number.ilike(like)))
    page = _page()
    rows = db.session.scalars(stmt.offset((page - 1) * PAGE).limit(PAGE + 1)).all()
    return render_template("accounts/staff_customers.html", rows=rows[:PAGE], query=query,
                           page=page, has_more=len(rows) > PAGE)


def _render_staff_users(customer_id: int, form, status=200):
    try:
        org = inv.organisation(customer_id)
    except NotFoundError:
        abort(404)
    return render_template("accounts/staff_users.html", org=org, form=form,
                           action_form=ActionForm(), expiry=inv.expiry_text), status


@bp.get("/staff/customers/<int:customer_id>/users")
@roles_required(*STAFF)
def staff_users(customer_id: int):
    form = InviteForm()
    form.language.data = "zh_CN"
    return _render_staff_users(customer_id, form)


@bp.post("/staff/customers/<int:customer_id>/invite")
@roles_required(*STAFF)
def staff_invite(customer_id: int):
    """Staff invite a user of this customer (admin or not)."""
    if db.session.get(Customer, customer_id) is None:
        abort(404)
    form = InviteForm()
    if form.validate_on_submit():
        try:
            invitation, _raw = inv.invite(Actor.current(), form.email.data, Role.CUSTOMER,
                                          customer_id, form.is_customer_admin.data,
                                          form.language.data)
        except ServiceError as error:
            _show(form, error)
        else:
            flash(_("Invitation sent to %(email)s.", email=invitation.email), "success")
            return redirect(url_for("accounts.staff_users", customer_id=customer_id))
    return _render_staff_users(customer_id, form, 422)


@bp.post("/staff/customers/<int:customer_id>/invitations/<int:invitation_id>/revoke")
@roles_required(*STAFF)
def staff_revoke(customer_id: int, invitation_id: int):
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        inv.revoke_invitation(Actor.current(), invitation_id, customer_id)
    except NotFoundError:
        abort(404)
    except ServiceError as error:
        flash(error.message, "error")
    else:
        flash(_("Invitation withdrawn."), "success")
    return redirect(url_for("accounts.staff_users", customer_id=customer_id))


# -- accepting an invitation ------------------------------------------------------------
def _unusable(error: inv.InvitationUnusableError):
    return render_template("accounts/invitation_unusable.html", error=error), error.status


@bp.route("/invite/<token>", methods=["GET", "POST"])
@ratelimit.limit("LOGIN_RATE_LIMIT", methods=("POST",))
def accept(token: str):
    """Set name, phone, password and language; the account is created and logged in."""
    try:
        invitation = inv.invitation_for_token(token)
    except inv.InvitationUnusableError as error:
        return _unusable(error)
    form = AcceptInvitationForm()
    if request.method == "GET":
        form.language.data = invitation.language
    if form.validate_on_submit():
        try:
            user = inv.accept_invitation(token, form.full_name.data, form.phone.data,
                                         form.password.data, form.password_confirm.data,
                                         form.language.data)
        except inv.InvitationUnusableError as error:
            return _unusable(error)
        except ServiceError as error:
            _show(form, error)
        else:
            session.clear()
            login_user(user)
            flash(_("Welcome, %(name)s. Your account is ready.", name=user.full_name),
                  "success")
            return redirect(PORTAL_HOME if user.role == Role.CUSTOMER else url_for(
                "public.index"))
    return render_template("accounts/accept.html", form=form, invitation=invitation,
                           password_hint=inv.password_hint(),
                           expires=inv.expiry_text(invitation))


# -- colleagues (customer admins) -------------------------------------------------------
def customer_admin_required(view):
    """Anonymous → log-in page; anyone but an active customer admin → 403."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        if not current_user.is_authenticated:
            return login_manager.unauthorized()
        if current_user.role != Role.CUSTOMER or not current_user.is_customer_admin:
            abort(403)
        return view(*args, **kwargs)

    return wrapper


def _render_colleagues(form, status=200):
    org = inv.organisation(current_user.customer_id)
    return render_template("accounts/colleagues.html", org=org, form=form,
                           action_form=ActionForm(), expiry=inv.expiry_text), status


@bp.get("/portal/users")
@customer_admin_required
def colleagues():
    form = InviteForm()
    form.language.data = current_user.language
    return _render_colleagues(form)


@bp.post("/portal/users/invite")
@customer_admin_required
def colleague_invite():
    form = InviteForm()
    if form.validate_on_submit():
        try:
            invitation, _raw = inv.invite_colleague(Actor.current(), form.email.data,
                                                    form.is_customer_admin.data,
                                                    form.language.data)
        except ServiceError as error:
            _show(form, error)
        else:
            flash(_("Invitation sent to %(email)s.", email=invitation.email), "success")
            return redirect(url_for("accounts.colleagues"))
    return _render_colleagues(form, 422)


def _colleague_action(change):
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        change()
    except NotFoundError:
        abort(404)
    except ServiceError as error:
        flash(error.message, "error")
    else:
        flash(_("Saved."), "success")
    if not current_user.is_customer_admin:  # gave up their own admin rights
        return redirect(PORTAL_HOME)
    return redirect(url_for("accounts.colleagues"))


def _flag(name: str) -> bool:
    value = request.form.get(name, "")
    if value not in ("0", "1"):
        abort(400)
    return value == "1"


@bp.post("/portal/users/<int:user_id>/active")
@customer_admin_required
def colleague_active(user_id: int):
    active = _flag("active")
    return _colleague_action(lambda: inv.set_colleague_active(Actor.current(), user_id, active))


@bp.post("/portal/users/<int:user_id>/admin")
@customer_admin_required
def colleague_admin(user_id: int):
    flag = _flag("admin")
    return _colleague_action(lambda: inv.set_colleague_admin(Actor.current(), user_id, flag))


@bp.post("/portal/users/invitations/<int:invitation_id>/revoke")
@customer_admin_required
def colleague_revoke(invitation_id: int):
    customer_id = current_user.customer_id
    return _colleague_action(
        lambda: inv.revoke_invitation(Actor.current(), invitation_id, customer_id))
