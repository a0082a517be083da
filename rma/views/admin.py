"""Administration: product models, customers and users (admin role only)."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import func, or_, select

from rma.extensions import db
from rma.forms import CustomerForm, ProductModelForm, SuccessorsForm, UserForm
from rma.models import AuditEvent, Customer, ProductModel, Role, Unit, User
from rma.services import ServiceError
from rma.services.audit import Actor
from rma.services.catalog import (
    create_customer,
    create_product_model,
    customer_by_contract,
    set_successors,
    update_customer,
    update_product_model,
)
from rma.services.users import create_user, update_user
from rma.views import form_errors, roles_required

bp = Blueprint("admin", __name__, url_prefix="/admin")
PAGE = 50


@bp.before_request
@roles_required(Role.ADMIN)
def _admins_only():
    return None


def _page() -> int:
    try:
        return max(1, int(request.args.get("page", 1)))
    except ValueError:
        return 1


@bp.get("/")
def home():
    counts = {
        "models": db.session.scalar(select(func.count(ProductModel.id))),
        "customers": db.session.scalar(select(func.count(Customer.id))),
        "users": db.session.scalar(select(func.count(User.id))),
        "units": db.session.scalar(select(func.count(Unit.id))),
    }
    events = db.session.scalars(
        select(AuditEvent).order_by(AuditEvent.id.desc()).limit(20)
    ).all()
    return render_template("admin/home.html", counts=counts, events=events)


# -- product models -------------------------------------------------------------------
@bp.get("/models")
def models():
    rows = db.session.execute(
        select(ProductModel, func.count(Unit.id))
        .outerjoin(Unit, Unit.model_id == ProductModel.id)
        .group_by(ProductModel.id)
        .order_by(ProductModel.code)
    ).all()
    return render_template("admin/models.html", rows=rows)


@bp.route("/models/new", methods=["GET", "POST"])
def model_new():
    form = ProductModelForm()
    if form.validate_on_submit():
        try:
            model = create_product_model(
                Actor.current(), form.code.data, form.name.data, form.kind.data,
                form.life_months.data, form.basis.data, form.replacement_price.data,
                unit_cost=form.unit_cost.data,
            )
        except ServiceError as error:
            form_errors(form, error)
        else:
            flash(_("Product model %(code)s added.", code=model.code), "success")
            return redirect(url_for("admin.models"))
    return render_template("admin/model_form.html", form=form, model=None)


@bp.route("/models/<int:model_id>", methods=["GET", "POST"])
def model_edit(model_id: int):
    model = db.session.get(ProductModel, model_id) or abort(404)
    form = ProductModelForm(obj=model if request.method == "GET" else None)
    if request.method == "GET":
        form.basis.data = str(model.warranty_basis)
        form.kind.data = str(model.kind)
    form.code.data = model.code
    if form.validate_on_submit():
        try:
            update_product_model(
                Actor.current(), model.id, name=form.name.data, kind=form.kind.data,
                life_months=form.life_months.data, basis=form.basis.data,
                replacement_price=form.replacement_price.data,
                unit_cost=form.unit_cost.data,
            )
        except ServiceError as error:
            form_errors(form, error)
        else:
            flash(_("Product model %(code)s saved.", code=model.code), "success")
            return redirect(url_for("admin.models"))
    return render_template("admin/model_form.html", form=form, model=model,
                           successors_form=_successors_form(model, formdata=None))


def _successors_form(model: ProductModel, **kwargs) -> SuccessorsForm:
    """The replacement-model checkboxes: every other model; ticked as stored unless
    ``formdata`` (default: the posted form) says otherwise."""
    others = db.session.scalars(
        select(ProductModel).where(ProductModel.id != model.id).order_by(ProductModel.code)
    ).all()
    form = SuccessorsForm(data={"successors": [m.id for m in model.successors]}, **kwargs)
    form.successors.choices = [(m.id, f"{m.code} \u2013 {m.name}") for m in others]
    return form


@bp.post("/models/<int:model_id>/successors")
def model_successors(model_id: int):
    model = db.session.get(ProductModel, model_id) or abort(404)
    # Explicit formdata: with every box unticked the post may carry no field at all, and
    # Flask-WTF would then fall back to the stored list.
    form = _successors_form(model, formdata=request.form)
    if form.validate_on_submit():
        try:
            set_successors(Actor.current(), model.id, form.successors.data or [])
        except ServiceError as error:
            form_errors(form, error)
        else:
            flash(_("Replacement models of %(code)s saved.", code=model.code), "success")
            return redirect(url_for("admin.model_edit", model_id=model.id))
    details = ProductModelForm(formdata=None, obj=model)
    details.basis.data = str(model.warranty_basis)
    details.kind.data = str(model.kind)
    return render_template("admin/model_form.html", form=details, model=model,
                           successors_form=form)


# -- customers --------------------------------------------------------------------------
@bp.get("/customers")
def customers():
    query = request.args.get("q", "").strip()
    stmt = select(Customer).order_by(Customer.name)
    if query:
        like = f"%{query}%"
        stmt = stmt.where(or_(Customer.name.ilike(like), Customer.contract_number.ilike(like)))
    page = _page()
    rows = db.session.scalars(stmt.offset((page - 1) * PAGE).limit(PAGE + 1)).all()
    unit_counts = dict(db.session.execute(
        select(Unit.customer_id, func.count(Unit.id))
        .where(Unit.customer_id.in_([c.id for c in rows[:PAGE]]))
        .group_by(Unit.customer_id)
    ).all()) if rows else {}
    return render_template("admin/customers.html", rows=rows[:PAGE], unit_counts=unit_counts,
                           page=page, has_more=len(rows) > PAGE, query=query)


@bp.route("/customers/new", methods=["GET", "POST"])
def customer_new():
    form = CustomerForm()
    if form.validate_on_submit():
        try:
            customer = create_customer(Actor.current(), form.name.data, form.accepted_on.data,
                                       form.contract_months.data, form.address.data or "")
        except ServiceError as error:
            form_errors(form, error)
        else:
            flash(_("Customer %(name)s registered with contract number %(number)s.",
                    name=customer.name, number=customer.contract_number), "success")
            return redirect(url_for("admin.customers"))
    return render_template("admin/customer_form.html", form=form, customer=None)


@bp.route("/customers/<int:customer_id>", methods=["GET", "POST"])
def customer_edit(customer_id: int):
    customer = db.session.get(Customer, customer_id) or abort(404)
    form = CustomerForm(obj=customer if request.method == "GET" else None)
    if form.validate_on_submit():
        try:
            update_customer(Actor.current(), customer.id, name=form.name.data,
                            address=form.address.data, accepted_on=form.accepted_on.data,
                            contract_months=form.contract_months.data)
        except ServiceError as error:
            form_errors(form, error)
        else:
            flash(_("Customer %(name)s saved.", name=customer.name), "success")
            return redirect(url_for("admin.customers"))
    return render_template("admin/customer_form.html", form=form, customer=customer)


# -- users ------------------------------------------------------------------------------
@bp.get("/users")
def users():
    page = _page()
    rows = db.session.scalars(
        select(User).order_by(User.email).offset((page - 1) * PAGE).limit(PAGE + 1)
    ).all()
    customers = {c.id: c for c in db.session.scalars(
        select(Customer).where(Customer.id.in_({u.customer_id for u in rows if u.customer_id}))
    )}
    return render_template("admin/users.html", rows=rows[:PAGE], customers=customers,
                           page=page, has_more=len(rows) > PAGE)


def _customer_from(form) -> Customer | None:
    number = (form.customer.data or "").strip()
    return customer_by_contract(number) if number else None


@bp.route("/users/new", methods=["GET", "POST"])
def user_new():
    form = UserForm()
    if form.validate_on_submit():
        try:
            if not form.password.data:
                raise ServiceError(_("A new user needs a password."), "password")
            user = create_user(Actor.current(), form.email.data, form.role.data,
                               form.password.data, _customer_from(form), form.language.data)
        except ServiceError as error:
            form_errors(form, error)
        else:
            flash(_("User %(email)s created.", email=user.email), "success")
            return redirect(url_for("admin.users"))
    return render_template("admin/user_form.html", form=form, user=None)


@bp.route("/users/<int:user_id>", methods=["GET", "POST"])
def user_edit(user_id: int):
    user = db.session.get(User, user_id) or abort(404)
    form = UserForm()
    if request.method == "GET":
        form.email.data = user.email
        form.role.data = str(user.role)
        form.customer.data = user.customer.contract_number if user.customer else ""
        form.language.data = user.language
        form.is_active.data = user.is_active
    form.email.data = user.email
    if form.validate_on_submit():
        try:
            update_user(Actor.current(), user.id, role=form.role.data,
                        customer=_customer_from(form), language=form.language.data,
                        is_active=form.is_active.data, password=form.password.data or None)
        except ServiceError as error:
            form_errors(form, error)
        else:
            flash(_("User %(email)s saved.", email=user.email), "success")
            return redirect(url_for("admin.users"))
    return render_template("admin/user_form.html", form=form, user=user)
