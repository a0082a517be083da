"""Failure analytics at ``/staff/analytics`` (issue 7) for managers, admins, support
engineers and finance: flagged lots on top, then returns per product model, lot and
shipment month, the cause mix, time to failure, warranty cost and the 72-hour
compliance trend, each as an SVG chart beside its table; ``?export=<table>&format=
csv|xlsx`` downloads one table with the same filters.

A standard filter (every model or one model, over the default range) is read from its
snapshot (``rma.services.analytics_snapshots``, rebuilt by ``rma tick``), and so is its
export; managers and admins may recompute it at once (POST ``/recompute``). Any other
filter is computed live, and the page says which."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import DateField, Form, HiddenField, SelectField
from wtforms.fields.choices import SelectChoice as C
from wtforms.validators import Optional

from rma import clock
from rma.exports import EXPORT_FORMATS, export_response
from rma.extensions import db
from rma.models import ProductModel, Role
from rma.policy import current_policy
from rma.services import ValidationError
from rma.services import analytics as service
from rma.services import analytics_snapshots as snapshots
from rma.services.audit import Actor
from rma.views import roles_required

bp = Blueprint("analytics", __name__, url_prefix="/staff/analytics")

#: Who sees the analytics (FINANCE sees the cost figures too, issue 7).
VIEW = (Role.MANAGER, Role.ADMIN, Role.SUPPORT, Role.FINANCE)
#: Who may recompute a snapshot at once.
RECOMPUTE = (Role.MANAGER, Role.ADMIN)


class FilterForm(Form):
    """The dashboard's filters (a GET form: nothing changes, no CSRF token)."""

    model = SelectField(_l("Product model"), choices=[], validate_choice=False)
    date_from = DateField(_l("RMAs submitted from"), validators=[Optional()])
    date_to = DateField(_l("Through"), validators=[Optional()])


class RecomputeForm(FlaskForm):
    """"Recompute now" for one standard filter (``model``: a model id, or empty)."""

    model = HiddenField()


@bp.app_template_global()
def an_sees() -> bool:
    """Whether the viewer sees the analytics (the staff navigation's link)."""
    return current_user.is_authenticated and current_user.has_role(*VIEW)


@bp.app_template_global()
def an_cell(value, kind: str = "text") -> str:
    """A table cell as shown: rates and shares with one decimal, money with two."""
    if value is None:
        return "\u2014"
    if kind in ("pct", "hours"):
        return f"{value:,.1f}"
    if kind == "money":
        return f"{value:,.2f}"
    if kind == "int":
        return f"{value:,}"
    return str(value)


def _filters(form: FilterForm, models: list[ProductModel]) -> service.Filters:
    today = clock.today()
    model_id = next((m.id for m in models if str(m.id) == (form.model.data or "")), None)
    default = service.default_filters(today, model_id)
    filters = service.Filters(form.date_from.data or default.date_from,
                              form.date_to.data or default.date_to, model_id)
    try:
        service.check_filters(filters)
    except ValidationError as error:
        field = getattr(form, error.field)
        field.errors = [*list(field.errors), error.message]
        filters = default
    form.date_from.data, form.date_to.data = filters.date_from, filters.date_to
    return filters


@bp.get("/")
@roles_required(*VIEW)
def dashboard():
    models = list(db.session.scalars(select(ProductModel).order_by(ProductModel.code)))
    form = FilterForm(request.args)
    form.model.choices = [C("", _l("Every model")),
                          *(C(str(m.id), f"{m.code} \u00b7 {m.name}") for m in models)]
    form.validate()
    filters = _filters(form, models)
    export = request.args.get("export")
    if export is not None and (export not in service.TABLE_KEYS
                               or request.args.get("format") not in EXPORT_FORMATS):
        abort(404)
    figures = snapshots.figures(filters, clock.now(), {m.id: m.code for m in models})
    board = figures.board
    if export is not None:
        return export_response(board.tables[export], request.args["format"])
    filter_args = {"model": form.model.data or "", "date_from": filters.date_from.isoformat(),
                   "date_to": filters.date_to.isoformat()}
    policy = current_policy()
    return render_template("analytics/dashboard.html", board=board, form=form,
                           filter_args=filter_args, lots_shown=service.LOTS_SHOWN,
                           charts=_charts(board), policy_ratio=policy.lot_flag_ratio,
                           policy_min=policy.lot_flag_min_returns, figures=figures,
                           built_at=clock.to_local(figures.built_at),
                           refresh_minutes=snapshots.refresh_minutes(),
                           recompute_form=_recompute_form(figures, filters))


def _recompute_form(figures: snapshots.Figures, filters: service.Filters):
    """The "Recompute now" form for a standard filter shown to a manager or admin."""
    if figures.live or not current_user.has_role(*RECOMPUTE):
        return None
    form = RecomputeForm()
    form.model.data = "" if filters.model_id is None else str(filters.model_id)
    return form


@bp.post("/recompute")
@roles_required(*RECOMPUTE)
def recompute():
    form = RecomputeForm()
    if not form.validate_on_submit():
        abort(400)
    raw = (form.model.data or "").strip()
    model_id = int(raw) if raw.isdigit() else None
    figures = snapshots.recompute(Actor.current(), model_id, clock.now())
    flash(_("Figures recomputed."), "success")
    args = {"model": str(figures.board.filters.model_id)} \
        if figures.board.filters.model_id is not None else {}
    return redirect(url_for("analytics.dashboard", **args))


def _charts(board: service.Dashboard) -> dict:
    """The SVG chart of each section, by table key (built here from plain data)."""
    from flask_babel import gettext as _

    from rma.charts import Series, bar_chart, line_chart, stacked_bar_chart

    empty = _("Nothing to show.")
    lots = board.lots[:service.LOTS_SHOWN]
    models = {row.key for row in board.cost_by_model}
    months = [row.key for row in board.cost_by_month]
    return {
        "by-model": bar_chart(_("Return rate per product model (%)"),
                              [r.code for r in board.models], [r.rate for r in board.models],
                              chart_id="chart-by-model", unit="%", empty_text=empty),
        "by-lot": bar_chart(_("Return rate of the lots with the highest rates (%)"),
                            [f"{r.model_code} {r.lot}" for r in lots], [r.rate for r in lots],
                            chart_id="chart-by-lot", unit="%",
                            highlight=[r.flagged for r in lots], empty_text=empty),
        "by-shipment-month": line_chart(
            _("Return rate per shipment month (%)"),
            [r.month for r in board.shipment_months],
            [Series(_("Rate (%)"), tuple(r.rate for r in board.shipment_months))],
            chart_id="chart-by-shipment-month", unit="%", empty_text=empty),
        "causes": bar_chart(_("Cause mix (returns)"),
                            [service.cause_label(c) for c, _n, _s in board.causes],
                            [n for _c, n, _s in board.causes], chart_id="chart-causes",
                            empty_text=empty),
        "months-of-service": bar_chart(
            _("Time to failure (returns per months of service)"),
            [service.months_label(k) for k, _n in board.months_of_service],
            [n for _k, n in board.months_of_service], chart_id="chart-months-of-service",
            empty_text=empty),
        "cost-by-month": stacked_bar_chart(
            _("Warranty cost per month (CNY)"), months,
            [Series(code, tuple(_cost_of(board, code, month) for month in months))
             for code in sorted(models)],
            chart_id="chart-cost-by-month", empty_text=empty),
        "cost-by-model": bar_chart(_("Warranty cost per product model (CNY)"),
                                   [r.key for r in board.cost_by_model],
                                   [r.cost for r in board.cost_by_model],
                                   chart_id="chart-cost-by-model", empty_text=empty),
        "compliance": line_chart(
            _("Replacements on site within 72 hours (%)"),
            [f.month for f in board.compliance],
            [Series(_("Share within (%)"),
                    tuple(row[4] for row in board.tables["compliance"].rows))],
            chart_id="chart-compliance", unit="%", y_max=100, empty_text=empty),
    }


def _cost_of(board: service.Dashboard, code: str, month: str):
    return board.cost_by_month_model.get((month, code))
