"""Pages anyone may open: home and the public warranty check."""

from __future__ import annotations

from flask import Blueprint, current_app, render_template
from flask_babel import gettext as _

from rma import ratelimit
from rma.forms import WarrantyForm
from rma.services.warranty_check import check_many

bp = Blueprint("public", __name__)


@bp.route("/")
def index():
    return render_template("public/index.html", form=WarrantyForm())


@bp.route("/warranty", methods=["GET", "POST"])
@ratelimit.limit("WARRANTY_RATE_LIMIT", methods=("POST",))
def warranty():
    """One serial, or up to 50 pasted one per line (R-W1, R-W2)."""
    form = WarrantyForm()
    results = None
    if form.validate_on_submit():
        lines = form.serials.data.splitlines()
        limit = current_app.config["WARRANTY_BATCH_MAX"]
        if len([line for line in lines if line.strip()]) > limit:
            form.serials.errors = [_("At most %(n)d serials at a time.", n=limit)]
        else:
            results = check_many(lines)
    return render_template("public/warranty.html", form=form, results=results)
