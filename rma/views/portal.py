"""The customer portal: RMA form, list, RMA page and photos (issue 3; R-R1, R-R2, D-1).

Customers see their own organisation only: ``get_rma``/``list_rmas`` enforce it, and an
RMA of another customer answers 404 like an unknown number. Staff see every RMA under
the same URLs and may submit one on a customer's behalf by naming its contract number.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import get_locale, ngettext
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from markupsafe import Markup
from sqlalchemy import select

from rma import ratelimit
from rma.errors import problem
from rma.extensions import db, login_manager
from rma.forms_portal import ItemForm, RmaForm, RmaSearchForm
from rma.models import Customer, ItemStatus, RmaItem, RmaPhoto, RmaStatus
from rma.services import NotFoundError, ServiceError
from rma.services.audit import Actor
from rma.services.catalog import customer_by_contract
from rma.services.rmas import (
    FAULT_CATEGORIES,
    ContactInput,
    ItemInput,
    ItemProblem,
    PhotoInput,
    RmaInvalid,
    check_items,
    check_serial,
    coverage_meaning,
    get_rma,
    list_rmas,
    open_rma,
    parse_bulk,
    parse_csv,
    timeline,
)
from rma.views import form_errors

bp = Blueprint("portal", __name__, url_prefix="/portal")
PER_PAGE = 20

# One place for the words a customer reads for an RMA's or an item's status.
STATUS_WORDS = {
    RmaStatus.OPEN.value: _l("Open"),
    ItemStatus.SUBMITTED.value: _l("Submitted, awaiting support"),
    ItemStatus.AWAITING_UNIT.value: _l("Waiting for your unit"),
    ItemStatus.RECEIVED.value: _l("Unit received, being inspected"),
    ItemStatus.CONFIRMED.value: _l("Fault confirmed"),
    ItemStatus.WAITING_PAYMENT.value: _l("Waiting for payment"),
    ItemStatus.RELEASED.value: _l("Replacement being prepared"),
    ItemStatus.SHIPPED.value: _l("Replacement shipped"),
    ItemStatus.DELIVERED.value: _l("Replacement delivered"),
    ItemStatus.CLOSED.value: _l("Closed"),
    ItemStatus.CANCELLED.value: _l("Cancelled"),
    ItemStatus.REJECTED.value: _l("Rejected"),
}
_CATEGORY_WORDS = dict(FAULT_CATEGORIES)
DECISION_WORDS = {
    "free": _l("Free replacement"),
    "paid": _l("Paid replacement"),
    "return_unit": _l("No fault found: the unit is returned to you"),
}


@bp.app_template_global()
def rma_status_word(value) -> str:
    """The customer's words for an ``RmaStatus`` or ``ItemStatus`` value."""
    return str(STATUS_WORDS.get(str(value), value))


@bp.app_template_global()
def rma_decision_word(value) -> str:
    return str(DECISION_WORDS.get(str(value), value))


@bp.app_template_global()
def rma_item_coverage(item: RmaItem) -> str:
    """The coverage an item had when it was submitted, in words (R-W3..R-W5)."""
    return coverage_meaning(item.in_warranty_on_submit, item.warranty_end_on)


@bp.app_template_global()
def fault_category_word(key: str | None) -> str:
    return str(_CATEGORY_WORDS.get(key or "", key or ""))


@bp.app_template_global()
def rma_label_url(number: str, size: str = "a4") -> str:
    """The label PDF (R-R2), served by the labels blueprint."""
    return url_for("labels.label", number=number, size=size)


@bp.before_request
def _logged_in_only():
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    return None


def _page() -> int:
    try:
        return max(1, int(request.args.get("page", 1)))
    except ValueError:
        return 1


# -- home -------------------------------------------------------------------------------
@bp.get("/")
def home():
    recent = list_rmas(current_user, per_page=5)
    return render_template("portal/home.html", customer=current_user.customer, recent=recent,
                           summaries=_summaries(recent.items),
                           finance=portal_finance.home_facts(current_user))


# -- list -------------------------------------------------------------------------------
_STATUS_ORDER = {status.value: n for n, status in enumerate(ItemStatus)}


def _summaries(rmas) -> dict[int, list[tuple[str, int]]]:
    """Per RMA: (item status, count) pairs in the order of the item's life. ``list_rmas``
    loads the items with the page, so this runs no query."""
    summary = {}
    for rma in rmas:
        counts = Counter(str(item.status) for item in rma.items)
        summary[rma.id] = sorted(counts.items(), key=lambda pair: _STATUS_ORDER.get(pair[0], 99))
    return summary


def _status_choices() -> list[tuple[str, object]]:
    """Any status, the RMA's own, then "has an item that is …" (closed/cancelled once)."""
    values = [s.value for s in RmaStatus] + [s.value for s in ItemStatus
                                             if s.value not in {r.value for r in RmaStatus}]
    return [("", _l("Any status")), *((value, STATUS_WORDS[value]) for value in values)]


@bp.get("/rmas")
def rma_list():
    form = RmaSearchForm(request.args)
    form.status.choices = _status_choices()
    query = (form.q.data or "").strip()
    status = form.status.data or None
    if status not in STATUS_WORDS:
        status = None
    result = list_rmas(current_user, q=query, status=status, page=_page(), per_page=PER_PAGE)
    return render_template("portal/rmas.html", form=form, result=result, query=query,
                           status=status, summaries=_summaries(result.items))


# -- one RMA ----------------------------------------------------------------------------
def _rma_or_404(number: str):
    try:
        return get_rma(current_user, number)
    except NotFoundError:
        abort(404)


@bp.get("/rmas/<number>")
def rma_detail(number: str):
    from rma.documents.barcodes import code128_svg  # reportlab: loaded on first use

    rma = _rma_or_404(number)  # items, units and photos (without their bytes) loaded
    return render_template(
        "portal/rma_detail.html", rma=rma, events=timeline(rma, current_user),
        barcode=Markup(code128_svg(rma.number)),  # noqa: S704 # nosec B704 # our own SVG, no user markup
    )


@bp.get("/rmas/<number>/photos/<int:photo_id>")
def rma_photo(number: str, photo_id: int):
    rma = _rma_or_404(number)
    photo = db.session.scalar(
        select(RmaPhoto)
        .join(RmaItem, RmaItem.id == RmaPhoto.item_id)
        .where(RmaPhoto.id == photo_id, RmaItem.rma_id == rma.id)
    )
    if photo is None:
        abort(404)
    response = current_app.response_class(photo.data, mimetype=photo.content_type)
    response.headers["Cache-Control"] = "private, max-age=3600"
    response.headers["Content-Disposition"] = "inline"
    return response


# -- live serial check ------------------------------------------------------------------
@bp.get("/rmas/check-serial")
@ratelimit.limit("WARRANTY_RATE_LIMIT", methods=("GET",))
def check_serial_json():
    """The RMA form's per-line check (R-R1, D-8): coverage meaning or the problem."""
    raw = request.args.get("serial", "")
    if not raw.strip():
        return problem(400, _("Serial missing"), _("Give a serial to check."))
    customer = _customer(request.args.get("contract", ""))
    if isinstance(customer, str):
        return problem(400, _("Customer missing"), customer)
    check = check_serial(customer.id, raw)
    cov = check.coverage
    return jsonify({
        "serial": check.serial,
        "ok": not check.problems,
        "problems": [{"field": p.field, "code": p.code, "message": str(p.message)}
                     for p in check.problems],
        "message": str(check.problems[0].message) if check.problems else (
            str(cov.meaning) if cov else ""),
        "model_code": cov.model_code if cov else None,
        "model_name": cov.model_name if cov else None,
        "in_warranty": cov.in_warranty if cov else None,
        "warranty_end": cov.warranty_end.isoformat() if cov and cov.warranty_end else None,
        "meaning": str(cov.meaning) if cov else None,
    })


# -- the RMA form -----------------------------------------------------------------------
def _customer(contract: str) -> Customer | str:
    """The customer an RMA is for: the user's own, or (staff) the one named by its
    contract number. A string is the reason there is none."""
    if not current_user.is_staff:
        return current_user.customer
    if not contract.strip():
        return _("Enter the customer's contract number.")
    try:
        return customer_by_contract(contract)
    except NotFoundError:
        return _("No customer has contract number %(n)s.", n=contract.strip())


@dataclass
class _Row:
    """One item line as shown again: its fields, coverage and whether photos were lost."""

    form: ItemForm
    coverage: str = ""
    in_warranty: bool | None = None
    photos_dropped: bool = False
    errors: list | None = None


def _typed_items(form: RmaForm) -> tuple[list[ItemInput], list[bool]]:
    """The item rows that hold anything (empty rows are skipped), with their photos."""
    items, had_photos = [], []
    for entry in form.items:
        sub = entry.form
        photos = tuple(
            PhotoInput(filename=f.filename or "", data=f.read())
            for f in (sub.photos.data or []) if getattr(f, "filename", "")
        )
        fields = (sub.serial.data, sub.fault_description.data, sub.fault_category.data)
        if not any((value or "").strip() for value in fields) and not photos:
            continue
        items.append(ItemInput(serial=sub.serial.data or "",
                               fault_description=sub.fault_description.data or "",
                               fault_category=sub.fault_category.data or None,
                               photos=photos))
        had_photos.append(bool(photos))
    return items, had_photos


def _pasted_items(form: RmaForm) -> tuple[list[ItemInput], list[ItemProblem], bool]:
    """Items from the paste box and the CSV file. A source with a problem adds nothing
    (its text stays in the box to be fixed); returns whether the paste box was used up."""
    items: list[ItemInput] = []
    problems: list[ItemProblem] = []
    bulk_used = False
    if (form.bulk.data or "").strip():
        parsed, found = parse_bulk(form.bulk.data)
        problems += found
        if not found:
            items += parsed
            bulk_used = True
    upload = form.csv.data
    if upload is not None and getattr(upload, "filename", ""):
        parsed, found = parse_csv(upload.read())
        problems += found
        if not found:
            items += parsed
    return items, problems, bulk_used


_FORM_FIELDS = {"contact_name", "contact_phone", "contact_email", "ship_to", "bulk", "csv",
                "contract_number"}
_ITEM_FIELDS = {"serial", "fault_description", "fault_category", "photos"}


def _show_problems(form: RmaForm, rows: list[_Row], problems, items_errors: list) -> None:
    """Each problem next to its line and field (aria-describedby in the templates)."""
    for p in problems:
        message = str(p.message)
        if p.field in _FORM_FIELDS:  # bulk problems carry their line index in ``item``
            field = form[p.field]
            field.errors = [*field.errors, message]
        elif p.item is not None and p.field in _ITEM_FIELDS and 0 <= p.item < len(rows):
            field = rows[p.item].form[p.field]
            field.errors = [*field.errors, message]
        elif p.item is not None and 0 <= p.item < len(rows):
            rows[p.item].errors = [*(rows[p.item].errors or []), message]
        else:
            items_errors.append(message)


def _rows_again(form: RmaForm, items: list[ItemInput], had_photos: list[bool],
                extra_row: bool) -> list[_Row]:
    """Rebuild the item rows from ``items`` so row n is item n of the service's problems."""
    while form.items.entries:
        form.items.pop_entry()
    for item in items:
        entry = form.items.append_entry({"serial": item.serial,
                                         "fault_description": item.fault_description,
                                         "fault_category": item.fault_category or ""})
        select_field = entry.form.fault_category
        if item.fault_category and item.fault_category not in _CATEGORY_WORDS:
            # As read (a CSV may name a category in words): shown, so it is not lost.
            select_field.choices = [*select_field.choices,
                                    (item.fault_category, item.fault_category)]
    if extra_row or not items:
        form.items.append_entry()
    return [_Row(form=entry.form, photos_dropped=n < len(had_photos) and had_photos[n])
            for n, entry in enumerate(form.items)]


def _mail_language() -> str:
    if current_user.is_staff:
        return "zh_CN"  # on a customer's behalf: Chinese, the customers' default
    return "zh_CN" if get_locale().language == "zh" else "en"


def _prefill(form: RmaForm) -> None:
    if current_user.is_staff:
        return
    form.contact_name.data = current_user.full_name
    form.contact_phone.data = current_user.phone
    form.contact_email.data = current_user.email
    form.ship_to.data = current_user.customer.address


def _render_form(form: RmaForm, rows: list[_Row], items_errors=()):
    template_row = ItemForm(prefix="items-__INDEX__-")
    return render_template("portal/rma_form.html", form=form, rows=rows,
                           items_errors=list(items_errors), template_row=template_row)


def _submit(form: RmaForm, customer: Customer, items: list[ItemInput]):
    """``open_rma`` with the form's values: the new RMA, or the problems found."""
    try:
        return open_rma(
            Actor.current(), customer.id,
            ContactInput(name=form.contact_name.data or "", phone=form.contact_phone.data or "",
                         email=form.contact_email.data or ""),
            form.ship_to.data or "", items, language=_mail_language(),
        )
    except RmaInvalid as error:
        return error.problems
    except ServiceError as error:
        form_errors(form, error)
        return []


@bp.route("/rmas/new", methods=["GET", "POST"])
def rma_new():
    """The RMA form (R-R1): rows typed, pasted or uploaded; nothing is created until every
    line is valid; on success the RMA number is issued at once (D-1, R-R2).

    Buttons: ``action=submit`` creates, ``add_row`` adds an empty row, ``load`` fills rows
    from the paste box or CSV, ``check`` (Enter in a field) checks without creating."""
    form = RmaForm()
    if not form.is_submitted():
        _prefill(form)
        return _render_form(form, [_Row(form=entry.form) for entry in form.items])
    action = request.form.get("action", "check")
    customer = _customer(form.contract_number.data or "")
    if isinstance(customer, str):
        if action != "add_row":
            form.contract_number.errors = [customer]
        customer = None
    elif current_user.is_staff and not (form.ship_to.data or "").strip():
        form.ship_to.data = customer.address
    typed, had_photos = _typed_items(form)
    pasted, problems, bulk_used = _pasted_items(form)
    items = typed + pasted
    submitted = action == "submit" and customer is not None and not problems
    if submitted:
        result = _submit(form, customer, items)
        if not isinstance(result, list):
            flash(_("RMA %(number)s submitted", number=result.number), "success")
            return redirect(url_for("portal.rma_detail", number=result.number, new=1))
        problems = result
    if bulk_used:
        form.bulk.data = ""
    rows = _rows_again(form, items, had_photos, extra_row=action == "add_row")
    if customer is not None and items:
        for check in check_items(customer.id, items):  # coverage of each line, and its
            row = rows[check.index]                    # problems when not submitted yet
            if check.coverage is not None:
                row.coverage = str(check.coverage.meaning)
                row.in_warranty = check.coverage.in_warranty
            if action != "add_row" and not submitted:
                problems += check.problems
    if action == "submit" and (problems or form.contract_number.errors):
        count = len(problems) + len(form.contract_number.errors)
        form.form_errors.append(ngettext(
            "The RMA was not submitted: %(num)d problem is marked below.",
            "The RMA was not submitted: %(num)d problems are marked below.", count))
    items_errors: list[str] = []
    _show_problems(form, rows, problems, items_errors)
    return _render_form(form, rows, items_errors)


# issue 5: the customer's quotes and invoices are routes of this blueprint too.
from rma.views import portal_finance  # noqa: E402
