"""Staff warehouse pages under ``/staff/wh`` (issue 4): support's triage queue, the scan
station, inspection with a manager's override, finance's release, shipping with the
packing slip, delivery, and the replacements dashboard with the 72-hour clock (R-R3,
R-R4, R-W3..R-W5, D-1..D-4, D-6).

Roles are checked here, on the server (``roles_required``), and again by the services.
Views translate: form → one ``rma.services.warehouse`` call → flash and redirect, or the
page again with the refusal beside its field (a 409 names the item's current state);
never a 500. Times are shown in China time.
"""

from __future__ import annotations

import io
from datetime import datetime

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
from flask_babel import force_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import defer, joinedload, selectinload
from sqlalchemy.orm.attributes import set_committed_value
from wtforms.fields.choices import SelectChoice as C

from rma import clock
from rma.extensions import db
from rma.forms_warehouse import (
    CAUSE_WORDS,
    OUTCOME_WORDS,
    ConfirmRemoteForm,
    DeliverForm,
    InspectForm,
    OverrideForm,
    RejectForm,
    ReleaseForm,
    ReplacementFilterForm,
    RequestUnitForm,
    ScanForm,
    ShipForm,
)
from rma.models import (
    Customer,
    ItemStatus,
    Rma,
    RmaItem,
    RmaPhoto,
    Role,
    ScanEvent,
    Shipment,
    User,
)
from rma.services import NotFoundError, ServiceError
from rma.services import warehouse as wh
from rma.services.audit import Actor
from rma.services.rmas import PhotoInput, get_rma
from rma.views import refused, roles_required
from warranty import ClockState, ItemFacts, allowed_actions

bp = Blueprint("warehouse", __name__, url_prefix="/staff/wh")

# Who may open each page: the services' own table (``ACTION_ROLES``), checked again there.
TRIAGE = tuple(wh.ACTION_ROLES["triage"])
WAREHOUSE = tuple(wh.ACTION_ROLES["scan"])
SHIP = tuple(wh.ACTION_ROLES["ship"])
INSPECT = tuple(wh.ACTION_ROLES["inspect"])
DELIVER = tuple(wh.ACTION_ROLES["deliver"])
RELEASE = tuple(wh.ACTION_ROLES["release"])
OVERRIDE = tuple(wh.ACTION_ROLES["override"])
STAFF = tuple(wh.ACTION_ROLES["view"])
PER_PAGE = 20
SCAN_LOG = 8
LOCAL_INPUT = "%Y-%m-%dT%H:%M"

# Item statuses in the staff's words.
STATUS_WORDS = {
    ItemStatus.SUBMITTED.value: _l("Submitted, awaiting triage"),
    ItemStatus.AWAITING_UNIT.value: _l("Awaiting the unit"),
    ItemStatus.RECEIVED.value: _l("Received, to inspect"),
    ItemStatus.CONFIRMED.value: _l("Confirmed"),
    ItemStatus.WAITING_PAYMENT.value: _l("Waiting for payment"),
    ItemStatus.RELEASED.value: _l("Released by finance"),
    ItemStatus.SHIPPED.value: _l("Shipped"),
    ItemStatus.DELIVERED.value: _l("Delivered"),
    ItemStatus.CLOSED.value: _l("Closed"),
    ItemStatus.CANCELLED.value: _l("Cancelled"),
    ItemStatus.REJECTED.value: _l("Rejected"),
}
# The 72-hour clock (R-R3) in words: shown with its colour, never by colour alone.
CLOCK_WORDS = wh.CLOCK_WORDS
OPEN_CLOCK_STATES = (ClockState.ON_TRACK, ClockState.AT_RISK, ClockState.BREACHED)
# Statuses in which an item's replacement clock runs (the dashboard's status filter).
CLOCK_STATUSES = wh.CLOCK_RUNNING_STATUSES
# Scan outcomes: the banner's tone and the sound static/js/scan.js plays.
SCAN_TONES = {
    "opened_rma": ("info", "ok"),
    "found_rma": ("info", "ok"),
    "received": ("ok", "ok"),
    "already_received": ("warn", "warn"),
    "unexpected": ("alarm", "alarm"),
    "unknown": ("alarm", "alarm"),
    "malformed": ("alarm", "alarm"),
    "refused": ("alarm", "alarm"),
}
SCAN_WORDS = {
    "opened_rma": _l("RMA opened"),
    "found_rma": _l("RMA found"),
    "received": _l("Received"),
    "already_received": _l("Already received"),
    "unexpected": _l("Unexpected unit"),
    "unknown": _l("Unknown code"),
    "malformed": _l("Not a code"),
    "refused": _l("Not received"),
}


# -- template helpers (app-wide: the portal's RMA page shows the clock too) -------------
@bp.app_template_global()
def item_clock(item: RmaItem) -> ClockState | None:
    """The item's 72-hour clock state now (R-R3), or None when no clock runs."""
    return wh.clock_of(item)


@bp.app_template_global()
def clock_word(state) -> str:
    return str(CLOCK_WORDS.get(str(state), state or ""))


@bp.app_template_global()
def wh_status_word(status) -> str:
    return str(STATUS_WORDS.get(str(status), status))


@bp.app_template_global()
def cause_word(cause) -> str:
    return str(CAUSE_WORDS.get(str(cause), cause or ""))


@bp.app_template_global()
def outcome_word(outcome) -> str:
    return str(OUTCOME_WORDS.get(str(outcome), outcome or ""))


@bp.app_template_global()
def item_actions(item: RmaItem) -> frozenset[str]:
    """The lifecycle actions the item allows now (``warranty.lifecycle``): the pages offer
    only these, and the service checks again."""
    facts = ItemFacts(state=str(item.status), outcome=item.decision or None,
                      unit_received=item.unit_received_at is not None,
                      remote=bool(item.remote_confirmation))
    return frozenset(str(action) for action in allowed_actions(facts))


@bp.app_template_global()
def item_shipments(items) -> dict[int, Shipment]:
    """The shipments of ``items`` by item id, loaded in one query and set on each item,
    so the clock and the page read them without a query per item."""
    items = list(items)
    wh.preload_shipments(items)
    return {item.id: item.shipment for item in items if item.shipment is not None}


@bp.app_template_global()
def decision_words(item: RmaItem) -> str:
    """The rule the decision applied, in words in the reader's language."""
    return wh.decision_text(item) if item.decision_rule else ""


@bp.app_template_global()
def wh_may(action: str) -> bool:
    """Whether the viewer's role may do ``action`` (``ACTION_ROLES``): pages offer only
    what the viewer can use; the server checks again."""
    return wh.may(current_user, action)


@bp.app_template_global()
def scan_tone(outcome: str) -> tuple[str, str]:
    return SCAN_TONES.get(outcome, ("alarm", "alarm"))


@bp.app_template_global()
def scan_word(outcome: str) -> str:
    return str(SCAN_WORDS.get(outcome, outcome))


# -- helpers ----------------------------------------------------------------------------
def _page() -> int:
    try:
        return max(1, int(request.args.get("page", 1)))
    except ValueError:
        return 1


def _has_role(*roles: Role) -> bool:
    return current_user.has_role(*roles)


def _preload_photos(items: list[RmaItem]) -> None:
    """The items' photos (without their bytes) in one query."""
    if not items:
        return
    found: dict[int, list[RmaPhoto]] = {item.id: [] for item in items}
    for photo in db.session.scalars(
            select(RmaPhoto).where(RmaPhoto.item_id.in_(list(found)))
            .options(defer(RmaPhoto.data)).order_by(RmaPhoto.id)):
        found[photo.item_id].append(photo)
    for item in items:
        set_committed_value(item, "photos", found[item.id])


def _item_or_404(item_id: int) -> RmaItem:
    """One item with what its pages show, loaded at once."""
    item = db.session.scalar(
        select(RmaItem).where(RmaItem.id == item_id).options(
            joinedload(RmaItem.rma).joinedload(Rma.customer),
            joinedload(RmaItem.unit),
            selectinload(RmaItem.photos).defer(RmaPhoto.data),
        )
    )
    if item is None:
        abort(404)
    return item


def _local_now() -> datetime:
    return clock.to_local(clock.now()).replace(second=0, microsecond=0, tzinfo=None)


def _as_aware(local: datetime) -> datetime:
    """A ``datetime-local`` value (China time, naive) as an aware instant."""
    return local.replace(tzinfo=clock.local_zone())


@bp.get("/")
@roles_required(*STAFF)
def home():
    """The page each role starts from."""
    if _has_role(Role.SUPPORT):
        return redirect(url_for("warehouse.triage"))
    if _has_role(Role.WAREHOUSE):
        return redirect(url_for("warehouse.scan"))
    return redirect(url_for("warehouse.replacements"))


# -- triage (support) -------------------------------------------------------------------
def _triage_forms(item: RmaItem, bound: dict | None):
    """The three action forms of one item; ``bound`` holds the one just posted."""
    bound = bound or {}
    return {
        "confirm": bound.get(("confirm", item.id))
        or ConfirmRemoteForm(formdata=None, prefix=f"confirm-{item.id}"),
        "unit": bound.get(("unit", item.id))
        or RequestUnitForm(formdata=None, prefix=f"unit-{item.id}"),
        "reject": bound.get(("reject", item.id))
        or RejectForm(formdata=None, prefix=f"reject-{item.id}"),
    }


def _render_triage(bound: dict | None = None, error: str | None = None, status: int = 200):
    queue = wh.triage_queue(page=_page(), per_page=PER_PAGE)
    items = [item for rma in queue.items for item in rma.items]
    histories = wh.unit_histories([item.unit for item in items])
    _preload_photos(items)
    forms = {item.id: _triage_forms(item, bound) for item in items}
    return render_template("warehouse/triage.html", queue=queue, forms=forms,
                           histories=histories, error=error), status


@bp.get("/triage")
@roles_required(*TRIAGE)
def triage():
    """New RMAs, oldest first: confirm remotely, ask for the unit, or reject (D-1)."""
    return _render_triage()


def _triage_action(item_id: int, key: str, form, call):
    """Run one triage action; the queue again with the refusal beside the item."""
    if form.validate_on_submit():
        try:
            item = call(form)
        except ServiceError as refusal:
            error, status = refused(form, refusal)
            return _render_triage({(key, item_id): form}, error, status)
        return item
    return _render_triage({(key, item_id): form}, None, _invalid(form))


def _after_triage(item: RmaItem, message: str):
    flash(message, "success")
    return redirect(url_for("warehouse.triage", _anchor=f"rma-{item.rma.number}"))


def _decision_text(item: RmaItem) -> str:
    """The computed decision, the rule it applied and, when a clock runs, the due time."""
    text = _("%(serial)s: %(decision)s. %(reason)s", serial=item.serial,
             decision=outcome_word(item.decision), reason=decision_words(item))
    if item.due_at is not None:
        text += " " + _("Replacement due by %(at)s (China time).",
                        at=clock.to_local(item.due_at).strftime("%Y-%m-%d %H:%M"))
    return text


@bp.post("/items/<int:item_id>/confirm-remote")
@roles_required(*TRIAGE)
def confirm_remote(item_id: int):
    """Confirm the fault remotely (D-1): the decision is computed and, for a free
    replacement, the 72-hour clock starts (R-R3)."""
    form = ConfirmRemoteForm(prefix=f"confirm-{item_id}")
    result = _triage_action(item_id, "confirm", form, lambda f: wh.confirm_remote(
        Actor.current(), item_id, f.cause.data or "", f.notes.data or ""))
    if not isinstance(result, RmaItem):
        return result
    return _after_triage(result, _("Fault confirmed remotely.") + " " + _decision_text(result))


@bp.post("/items/<int:item_id>/request-unit")
@roles_required(*TRIAGE)
def request_unit(item_id: int):
    form = RequestUnitForm(prefix=f"unit-{item_id}")
    result = _triage_action(item_id, "unit", form, lambda f: wh.request_unit(
        Actor.current(), item_id, f.notes.data or ""))
    if not isinstance(result, RmaItem):
        return result
    return _after_triage(result, _("%(serial)s: the customer was asked to send the unit.",
                                   serial=result.serial))


@bp.post("/items/<int:item_id>/reject")
@roles_required(*TRIAGE)
def reject(item_id: int):
    form = RejectForm(prefix=f"reject-{item_id}")
    result = _triage_action(item_id, "reject", form, lambda f: wh.reject_item(
        Actor.current(), item_id, f.reason.data or ""))
    if not isinstance(result, RmaItem):
        return result
    return _after_triage(result, _("%(serial)s: rejected.", serial=result.serial))


# -- scan station (warehouse) -----------------------------------------------------------
def _recent_scans(limit: int = SCAN_LOG) -> list[ScanEvent]:
    """This user's last scans, newest first (the station's log)."""
    return list(db.session.scalars(
        select(ScanEvent).where(ScanEvent.user_id == current_user.id)
        .order_by(ScanEvent.id.desc()).limit(limit)
    ))


def _held_rma(number: str):
    """The RMA being received, with its items and units, or None."""
    if not number:
        return None
    try:
        return get_rma(current_user, number)
    except NotFoundError:
        return None


def _receivers(items: list[RmaItem]) -> dict[int, str]:
    """Who received each unit (e-mail by user id), in one query."""
    ids = {item.unit_received_by_id for item in items if item.unit_received_by_id}
    if not ids:
        return {}
    return {user.id: user.email
            for user in db.session.scalars(select(User).where(User.id.in_(ids)))}


def _unexpected(rma) -> list[ScanEvent]:
    """Units scanned for this RMA that are not on it (recorded, never accepted)."""
    return list(db.session.scalars(
        select(ScanEvent).where(ScanEvent.rma_id == rma.id, ScanEvent.outcome == "unexpected")
        .options(joinedload(ScanEvent.user)).order_by(ScanEvent.id)
    ))


@bp.route("/scan", methods=["GET", "POST"])
@roles_required(*WAREHOUSE)
def scan():
    """The scan station: one always-focused input for a USB scanner. An RMA label opens
    its receiving view (held in ``?rma=``); a serial is checked off against it; a serial
    with no RMA at hand finds its open RMA. Every scan is recorded (``ScanEvent``). The
    answer is the page with the outcome's banner (200), also for a warning."""
    form = ScanForm()
    held = (request.values.get("rma") or "").strip().upper()[:32]
    station = (request.values.get("station") or "").strip()[:64]
    result, error = None, None
    if form.is_submitted():
        code = (form.code.data or "").strip()
        if form.validate() and code:  # a code too long is shown beside the input
            try:
                result = wh.scan(Actor.current(), code, rma_number=held or None,
                                 station=station or "web")
            except ServiceError as problem:  # e.g. the RMA held in the URL is unknown
                db.session.rollback()
                error = problem.message
    rma = None
    if result is not None and result.rma is not None:
        rma = _held_rma(result.rma.number)
    elif held:
        rma = _held_rma(held)
        if rma is None and error is None:
            error = _("There is no RMA %(number)s.", number=held)
    form.code.data = ""
    form.rma.data = rma.number if rma is not None else ""
    form.station.data = station
    items = list(rma.items) if rma is not None else []
    item_shipments(items)
    return render_template(
        "warehouse/scan.html", form=form, result=result, rma=rma, error=error, items=items,
        receivers=_receivers(items), unexpected=_unexpected(rma) if rma is not None else [],
        log=_recent_scans(), station=station,
    )


# -- one item ---------------------------------------------------------------------------
def _invalid(form) -> int:
    """The status for a posted form that did not validate (CSRF is checked before): the
    page again with the errors beside the fields, answered 422 so that a refused post is
    never mistaken for a success."""
    if not form.errors:
        abort(400)
    return 422


def _render_item(item: RmaItem, release_form: ReleaseForm, error: str | None = None,
                 status: int = 200):
    return render_template("warehouse/item.html", item=item, rma=item.rma,
                           release_form=release_form, error=error), status


@bp.get("/items/<int:item_id>")
@roles_required(*STAFF)
def item(item_id: int):
    """Everything about one item, with the actions the viewer's role may take now."""
    return _render_item(_item_or_404(item_id), ReleaseForm())


@bp.post("/items/<int:item_id>/release")
@roles_required(*RELEASE)
def release(item_id: int):
    """Finance releases a paid replacement on credit, with a reason, for a customer with
    credit terms (a paid invoice releases its items itself): its clock starts (D-3)."""
    form = ReleaseForm()
    error = None
    if not form.validate_on_submit():
        status = _invalid(form)
    else:
        try:
            released = wh.release(Actor.current(), item_id, form.reason.data or "")
        except ServiceError as refusal:
            error, status = refused(form, refusal)
        else:
            flash(_("%(serial)s released on credit for shipping.", serial=released.serial) + " "
                  + _decision_text(released), "success")
            return redirect(url_for("warehouse.item", item_id=item_id))
    return _render_item(_item_or_404(item_id), form, error, status)


# -- inspection -------------------------------------------------------------------------
def _render_inspect(item: RmaItem, form: InspectForm, override_form: OverrideForm,
                    error: str | None = None, status: int = 200):
    return render_template("warehouse/inspect.html", item=item, rma=item.rma, form=form,
                           override_form=override_form, error=error), status


def _inspect_form(item: RmaItem) -> InspectForm:
    form = InspectForm(formdata=None)
    form.cause.data = item.cause or ""
    form.notes.data = item.cause_notes or ""
    return form


@bp.route("/items/<int:item_id>/inspect", methods=["GET", "POST"])
@roles_required(*INSPECT)
def inspect(item_id: int):
    """Inspect a received unit: cause (D-4), notes, photos; the decision is computed from
    the coverage on the report date and shown with its rule (R-W3..R-W5)."""
    if request.method == "GET":
        item = _item_or_404(item_id)
        return _render_inspect(item, _inspect_form(item), OverrideForm(formdata=None))
    form = InspectForm()
    error = None
    if not form.validate_on_submit():
        status = _invalid(form)
    else:
        photos = tuple(PhotoInput(filename=f.filename or "", data=f.read())
                       for f in (form.photos.data or []) if getattr(f, "filename", ""))
        try:
            done = wh.inspect(Actor.current(), item_id, form.cause.data or "",
                              form.notes.data or "", photos)
        except ServiceError as refusal:
            error, status = refused(form, refusal)
        else:
            flash(_("Inspection saved.") + " " + _decision_text(done), "success")
            return redirect(url_for("warehouse.inspect", item_id=item_id))
    return _render_inspect(_item_or_404(item_id), form, OverrideForm(formdata=None), error,
                           status)


@bp.post("/items/<int:item_id>/override")
@roles_required(*OVERRIDE)
def override(item_id: int):
    """A manager overrides the computed decision with a reason (D-6), recorded."""
    form = OverrideForm()
    error = None
    if not form.validate_on_submit():
        status = _invalid(form)
    else:
        try:
            done = wh.override_decision(Actor.current(), item_id, form.outcome.data or "",
                                        form.reason.data or "")
        except ServiceError as refusal:
            error, status = refused(form, refusal)
        else:
            flash(_("Decision overridden.") + " " + _decision_text(done), "success")
            return redirect(url_for("warehouse.inspect", item_id=item_id))
    item = _item_or_404(item_id)
    return _render_inspect(item, _inspect_form(item), form, error, status)


# -- shipping ---------------------------------------------------------------------------
@bp.route("/items/<int:item_id>/ship", methods=["GET", "POST"])
@roles_required(*SHIP)
def ship(item_id: int):
    """Scan the spare's serial, carrier and tracking number; the packing slip follows.
    A spare just taken by another station or of a wrong model is refused beside the
    serial; an item that may not ship (a paid one not released, D-3) at the top (409)."""
    form = ShipForm()
    error, status = None, 200
    if request.method == "POST":
        if not form.validate_on_submit():
            status = _invalid(form)
        else:
            try:
                wh.ship(Actor.current(), item_id,
                        (form.replacement_serial.data or "").strip() or None,
                        form.carrier.data or "", form.tracking_number.data or "")
            except ServiceError as refusal:
                error, status = refused(form, refusal)
            else:
                flash(_("Shipped. Print the packing slip and put it in the parcel."),
                      "success")
                return redirect(url_for("warehouse.ship", item_id=item_id))
    item = _item_or_404(item_id)
    return render_template("warehouse/ship.html", item=item, rma=item.rma, form=form,
                           error=error), status


@bp.get("/items/<int:item_id>/packing-slip.pdf")
@roles_required(*DELIVER)
def packing_slip(item_id: int):
    """The packing slip of a shipped item (A4 PDF, Code128 barcodes), in the RMA's
    language."""
    from rma.documents.packing_slip import render_packing_slip

    item = _item_or_404(item_id)
    if item.shipment is None:
        abort(404)
    with force_locale(item.rma.language):
        pdf = render_packing_slip(wh.packing_slip_data(item))
    response = send_file(io.BytesIO(pdf), mimetype="application/pdf", as_attachment=False,
                         download_name=f"{item.rma.number}-{item.serial}-packing-slip.pdf",
                         max_age=0)
    response.headers["Cache-Control"] = "private, no-store"
    return response


# -- delivery ---------------------------------------------------------------------------
def _delivered_message(serial: str, done) -> tuple[str, str]:
    if done.within_target is None:
        return _("%(serial)s: delivery recorded.", serial=serial), "success"
    if done.within_target:
        return _("%(serial)s: delivered within the 72-hour target, in %(hours)s hours.",
                 serial=serial, hours=done.hours), "success"
    return _("%(serial)s: delivered late, after %(hours)s hours: the 72-hour target was "
             "missed.", serial=serial, hours=done.hours), "error"


@bp.route("/items/<int:item_id>/deliver", methods=["GET", "POST"])
@roles_required(*DELIVER)
def deliver(item_id: int):
    """Record the delivery (time in China time, who signed): it stops the clock (R-R3).
    A delivery after the due time asks why (the breach's reason)."""
    item = _item_or_404(item_id)
    form = DeliverForm()
    form.due_local = clock.to_local(item.due_at).replace(tzinfo=None) if item.due_at else None
    error, status = None, 200
    if request.method == "GET":
        form.delivered_at.data = _local_now()
    elif not form.validate_on_submit():
        status = _invalid(form)
    else:
        try:
            done = wh.deliver(Actor.current(), item_id, _as_aware(form.delivered_at.data),
                              form.received_by.data or "", form.late_reason.data or "")
        except ServiceError as refusal:
            error, status = refused(form, refusal)
            item = _item_or_404(item_id)
        else:
            flash(*_delivered_message(item.serial, done))
            return redirect(url_for("warehouse.item", item_id=item_id))
    due_local = clock.to_local(item.due_at).strftime(LOCAL_INPUT) if item.due_at else ""
    return render_template("warehouse/deliver.html", item=item, rma=item.rma, form=form,
                           due_local=due_local, error=error), status


# -- replacements dashboard -------------------------------------------------------------
def _filter_form(customers) -> ReplacementFilterForm:
    form = ReplacementFilterForm(request.args)
    form.customer.choices = [C("", _l("Any customer")),
                             *(C(str(c.id), f"{c.name} · {c.contract_number}")
                               for c in customers)]
    form.status.choices = [C("", _l("Any status")),
                           *(C(s.value, STATUS_WORDS[s.value]) for s in CLOCK_STATUSES)]
    form.state.choices = [C("", _l("Any clock state")),
                          *(C(s.value, CLOCK_WORDS[s.value]) for s in OPEN_CLOCK_STATES)]
    return form


@bp.get("/replacements")
@roles_required(*STAFF)
def replacements():
    """Open replacements by time left, with their clock state (on track / at risk /
    breached), filters, the monthly figures and the breaches with their reasons (R-R3)."""
    customers = db.session.scalars(select(Customer).order_by(Customer.name)).all()
    form = _filter_form(customers)
    state = form.state.data if form.state.data in {s.value for s in OPEN_CLOCK_STATES} else None
    status = form.status.data if form.status.data in {s.value for s in CLOCK_STATUSES} else None
    customer_id = None
    if (form.customer.data or "").isdigit():
        customer_id = int(form.customer.data)
    rows = wh.replacements(state=state, customer_id=customer_id, item_status=status)
    report = wh.monthly_report(months=12)
    return render_template("warehouse/replacements.html", form=form, rows=rows,
                           report=report, filtered=bool(state or status or customer_id))
