"""RMA use cases: check serials, open an RMA, list and read RMAs, its label and timeline
(R-R1, R-R2, R-R4, D-1, D-8).

``open_rma`` is all-or-nothing: every problem of the form is collected and raised at
once as :class:`RmaInvalid` before anything is written; otherwise the RMA, its items,
photos, timeline event, audit event and the e-mail with the label are written in one
transaction. Messages are translated (English source strings).

Scoping: a customer user sees and submits only for its own customer; staff see all.
Another customer's RMA is answered exactly like an unknown number (404), and another
customer's serial exactly like a spare in stock ("not registered to your organisation").
"""

from __future__ import annotations

import codecs
import csv
import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

from flask import current_app
from flask_babel import force_locale, ngettext
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import exists, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload, selectinload
from sqlalchemy.orm.attributes import set_committed_value

from rma import clock
from rma.extensions import db
from rma.models import (
    Customer,
    ItemStatus,
    Rma,
    RmaEvent,
    RmaItem,
    RmaPhoto,
    RmaStatus,
    Unit,
    UnitStatus,
    User,
)
from rma.policy import current_policy
from rma.services import ForbiddenError, NotFoundError, ValidationError
from rma.services.audit import Actor, record
from rma.services.numbers import next_value
from rma.services.outbox import Attachment, enqueue
from rma.services.photos import CheckedPhoto, PhotoError, check_photo
from rma.services.users import normalize_email
from warranty import SerialError, coverage, normalize_serial

FAULT_CATEGORIES = (
    ("no_display", _l("No display")),
    ("buttons", _l("Buttons do not work")),
    ("battery", _l("Battery flat")),
    ("wrong_codes", _l("Wrong or out-of-sync codes")),
    ("physical_damage", _l("Physical damage")),
    ("activation", _l("Cannot be activated")),
    ("licence", _l("Licence problem")),
    ("other", _l("Other")),
)
_CATEGORY_KEYS = frozenset(key for key, _label in FAULT_CATEGORIES)

NAME_MAX = 200
PHONE_MAX = 64
EMAIL_MAX = 254
SHIP_TO_MAX = 2000
FAULT_MAX = 2000
LABEL_SIZES = ("a4", "thermal")
PER_PAGE_MAX = 100
_SHOWN_MAX = 40
_OUT_OF_SERVICE = (UnitStatus.REPLACED, UnitStatus.SCRAPPED)


# -- inputs and answers -----------------------------------------------------------------
@dataclass(frozen=True)
class PhotoInput:
    filename: str
    data: bytes


@dataclass(frozen=True)
class ItemInput:
    serial: str
    fault_description: str
    fault_category: str | None = None
    photos: tuple[PhotoInput, ...] = ()
    # The pasted line or CSV row (1-based) this item came from, for messages; optional.
    source_line: int | None = None


@dataclass(frozen=True)
class ContactInput:
    name: str
    phone: str
    email: str


@dataclass(frozen=True)
class ItemProblem:
    """One refusal. ``item`` is the 0-based item index (for ``parse_bulk``: the line
    index), ``None`` for the form as a whole."""

    item: int | None
    field: str
    code: str
    message: str


@dataclass(frozen=True)
class ItemCoverage:
    """A unit's warranty as the customer is told it (R-W1..R-W5), judged on ``judged_on``
    (the report date: today for a check, the submission date for a stored item)."""

    serial: str
    model_code: str
    model_name: str
    in_warranty: bool
    warranty_end: date | None
    basis_used: str
    meaning: str
    kind: str = ""
    warranty_start: date | None = None
    days_left: int = 0
    replacement_of: str | None = None
    judged_on: date | None = None


@dataclass(frozen=True)
class ItemCheck:
    index: int
    serial: str  # normalised when valid, else as typed
    coverage: ItemCoverage | None
    problems: tuple[ItemProblem, ...]

    @property
    def is_ok(self) -> bool:
        return not self.problems


class RmaInvalid(ValidationError):
    """The RMA was refused; ``problems`` lists every problem found. Nothing was written."""

    def __init__(self, problems: Sequence[ItemProblem]):
        self.problems = list(problems)
        first = self.problems[0] if self.problems else None
        message = ngettext(
            "The RMA was not submitted: %(num)d problem. %(first)s",
            "The RMA was not submitted: %(num)d problems. The first: %(first)s",
            len(self.problems),
            first=first.message if first else "",
        )
        super().__init__(message, first.field if first else None)


@dataclass(frozen=True)
class RmaPage:
    items: list[Rma]
    total: int
    page: int
    per_page: int
    pages: int


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    text: str
    serial: str | None
    actor: str


# -- coverage in words ------------------------------------------------------------------
def coverage_meaning(in_warranty: bool, warranty_end: date | None) -> str:
    """What the coverage means for a replacement, in the current language (R-W3..R-W5)."""
    if in_warranty and warranty_end is not None:
        return _(
            "In warranty until %(date)s: the replacement is free if the fault is a quality "
            "defect and paid if it comes from misuse (dropped, crushed, heat, water); the "
            "inspection decides.",
            date=warranty_end.isoformat(),
        )
    if warranty_end is None:
        return _("No warranty is recorded for this unit: a replacement is paid.")
    return _(
        "Out of warranty (the last covered day was %(date)s): a replacement is paid.",
        date=warranty_end.isoformat(),
    )


def _coverage_of(unit: Unit, on: date) -> ItemCoverage:
    facts = unit.facts()
    cov = coverage(facts, on, current_policy())
    return ItemCoverage(
        serial=unit.serial,
        model_code=unit.model.code,
        model_name=unit.model.name,
        in_warranty=cov.in_warranty,
        warranty_end=cov.end_on,
        basis_used=cov.basis_used,
        meaning=coverage_meaning(cov.in_warranty, cov.end_on),
        kind=str(unit.model.kind),
        warranty_start=cov.start_on,
        days_left=cov.days_left,
        replacement_of=facts.replaces.serial if facts.replaces is not None else None,
        judged_on=on,
    )


def submitted_on(rma: Rma) -> date:
    """The report date of an RMA: its submission day in China time (SPEC, Warranty)."""
    return clock.to_local(rma.submitted_at).date()


def stored_coverage(item: RmaItem) -> ItemCoverage:
    """The coverage recorded on submit for ``item`` (judged on the submission date); the
    start date and replacement chain are read from the unit."""
    on = submitted_on(item.rma)
    unit = item.unit
    live = coverage(unit.facts(), on, current_policy())
    end = item.warranty_end_on
    in_warranty = bool(item.in_warranty_on_submit)
    return ItemCoverage(
        serial=item.serial,
        model_code=unit.model.code,
        model_name=unit.model.name,
        in_warranty=in_warranty,
        warranty_end=end,
        basis_used=item.basis_used,
        meaning=coverage_meaning(in_warranty, end),
        kind=str(unit.model.kind),
        warranty_start=live.start_on,
        days_left=(end - on).days + 1 if in_warranty and end is not None else 0,
        replacement_of=live.chain[-2] if len(live.chain) > 1 else None,
        judged_on=on,
    )


# -- serial checks (D-8) ----------------------------------------------------------------
def _shown(text: str) -> str:
    """The value as read, quoted, with invisible characters made visible."""
    cut = text if len(text) <= _SHOWN_MAX else text[:_SHOWN_MAX] + "..."
    return repr(cut)


def _load_units(serials: set[str]) -> dict[str, Unit]:
    """Units by serial with their model and customer, and every unit of their replacement
    chains: one query, plus one per chain link level (not per unit)."""
    if not serials:
        return {}
    units = db.session.scalars(
        select(Unit).options(joinedload(Unit.customer)).where(Unit.serial.in_(serials))
    ).unique().all()
    preload_chains(units)
    return {unit.serial: unit for unit in units}


def preload_chains(units: Sequence[Unit]) -> None:
    """Load the units these replaced (and what those replaced ...) level by level, so
    ``Unit.facts()`` finds them in the session instead of one query per unit."""
    by_id = {unit.id: unit for unit in units}
    level = list(units)
    for _depth in range(51):
        pending = {u.replaces_id for u in level if u.replaces_id is not None} - set(by_id)
        if pending:
            loaded = db.session.scalars(
                select(Unit).options(joinedload(Unit.customer)).where(Unit.id.in_(pending))
            ).unique().all()
            by_id.update((unit.id, unit) for unit in loaded)
        for unit in level:
            # The session holds objects weakly: link them so the chain stays loaded.
            if unit.replaces_id in by_id and "replaces" not in unit.__dict__:
                set_committed_value(unit, "replaces", by_id[unit.replaces_id])
        level = loaded if pending else []
        if not level:
            break


def _open_items(unit_ids: Sequence[int], exclude_rma_id: int | None) -> dict[int, tuple]:
    """Open RMA items of these units (any customer's RMA): unit id → (number, customer id)."""
    if not unit_ids:
        return {}
    stmt = (
        select(RmaItem.open_unit_id, Rma.number, Rma.customer_id)
        .join(Rma, Rma.id == RmaItem.rma_id)
        .where(RmaItem.open_unit_id.in_(list(unit_ids)))
    )
    if exclude_rma_id is not None:
        stmt = stmt.where(RmaItem.rma_id != exclude_rma_id)
    return {row[0]: (row[1], row[2]) for row in db.session.execute(stmt)}


def _check_serials(
    customer_id: int, raws: Sequence[object], exclude_rma_id: int | None = None
) -> tuple[list[ItemCheck], dict[str, Unit]]:
    """D-8 and ownership checks of many serials in two queries (plus chain levels)."""
    policy = current_policy()
    parsed: list[tuple[str, str | None, ItemProblem | None]] = []
    for index, raw in enumerate(raws):
        if raw is None:
            raw = ""
        if not isinstance(raw, str):
            parsed.append(("", None, ItemProblem(
                index, "serial", "malformed", _("The serial number must be text."))))
            continue
        text = raw.strip()
        if not text:
            parsed.append((raw, None, ItemProblem(
                index, "serial", "required", _("Enter the serial number."))))
            continue
        try:
            parsed.append((raw, normalize_serial(raw, policy), None))
        except SerialError:
            parsed.append((raw, None, ItemProblem(index, "serial", "malformed", _(
                "%(serial)s is not a valid serial number: use %(min)d to %(max)d "
                "characters A-Z, 0-9 and '-'.",
                serial=_shown(text), min=policy.serial_min_length,
                max=policy.serial_max_length))))
    units = _load_units({serial for _raw, serial, _p in parsed if serial})
    own_ids = [u.id for u in units.values() if u.customer_id == customer_id]
    open_by_unit = _open_items(own_ids, exclude_rma_id)
    today = clock.today()
    first_index: dict[str, int] = {}
    checks = []
    for index, (raw, serial, problem) in enumerate(parsed):
        if serial is None:
            checks.append(ItemCheck(index, raw, None, (problem,)))
            continue
        unit = units.get(serial)
        own = unit is not None and unit.customer_id == customer_id
        cov = _coverage_of(unit, today) if own else None
        problem = None
        if serial in first_index:
            problem = ItemProblem(index, "serial", "duplicate", _(
                "Serial %(serial)s is already on line %(line)d of this form.",
                serial=serial, line=first_index[serial] + 1))
        elif unit is None:
            problem = ItemProblem(index, "serial", "unknown", _(
                "Serial %(serial)s is not known. Check the number on the unit's label.",
                serial=serial))
        elif not own:
            # Another customer's unit and a spare in stock get the same answer.
            problem = ItemProblem(index, "serial", "foreign", _(
                "Serial %(serial)s is not registered to your organisation.", serial=serial))
        elif unit.status in _OUT_OF_SERVICE:
            problem = ItemProblem(index, "serial", "invalid", _(
                "Serial %(serial)s was replaced or scrapped and is no longer in service.",
                serial=serial))
        elif unit.id in open_by_unit:
            number, holder = open_by_unit[unit.id]
            if holder == customer_id:
                message = _("Serial %(serial)s is already in open RMA %(number)s.",
                            serial=serial, number=number)
            else:
                message = _("Serial %(serial)s is already in an open RMA.", serial=serial)
            problem = ItemProblem(index, "serial", "open_rma", message)
        first_index.setdefault(serial, index)
        checks.append(ItemCheck(index, serial, cov, (problem,) if problem else ()))
    return checks, units


def check_serial(customer_id: int, raw_serial: str, *, exclude_rma_id: int | None = None
                 ) -> ItemCheck:
    """The live check of one form line (D-8, ownership, open RMA); never writes."""
    checks, _units = _check_serials(customer_id, [raw_serial], exclude_rma_id)
    return checks[0]


def _category(raw: object) -> str | None:
    """A category key from a key or its label (English or Chinese); None if unknown."""
    if raw is None:
        return ""
    if not isinstance(raw, str):
        return None
    text = raw.strip()
    if not text:
        return ""
    key = text.lower().replace(" ", "_").replace("-", "_")
    if key in _CATEGORY_KEYS:
        return key
    folded = text.casefold()
    for language in ("en", "zh_CN"):
        with force_locale(language):
            for key, label in FAULT_CATEGORIES:
                if str(label).casefold() == folded:
                    return key
    return None


@dataclass
class _Checked:
    checks: list[ItemCheck]
    units: dict[str, Unit]
    photos: list[list[CheckedPhoto]] = field(default_factory=list)
    descriptions: list[str] = field(default_factory=list)
    categories: list[str | None] = field(default_factory=list)


def _check(customer_id: int, items: Sequence[ItemInput], exclude_rma_id=None) -> _Checked:
    serial_checks, units = _check_serials(
        customer_id, [item.serial for item in items], exclude_rma_id)
    per_item = current_app.config["PHOTOS_PER_ITEM"]
    result = _Checked(checks=[], units=units)
    for index, (item, check) in enumerate(zip(items, serial_checks, strict=True)):
        problems = list(check.problems)
        description = item.fault_description
        if description is None:
            description = ""
        if not isinstance(description, str):
            problems.append(ItemProblem(index, "fault_description", "invalid",
                                        _("The fault description must be text.")))
            description = ""
        description = description.strip()
        if isinstance(item.fault_description, str | None) and not description:
            problems.append(ItemProblem(index, "fault_description", "required",
                                        _("Describe the fault.")))
        elif len(description) > FAULT_MAX:
            problems.append(ItemProblem(index, "fault_description", "too_long", _(
                "The fault description is longer than %(max)d characters.", max=FAULT_MAX)))
        category = _category(item.fault_category)
        if category is None:
            shown = item.fault_category if isinstance(item.fault_category, str) else "?"
            problems.append(ItemProblem(index, "fault_category", "unknown_category", _(
                "%(value)s is not a fault category.", value=_shown(shown.strip()))))
        photos: list[CheckedPhoto] = []
        if len(item.photos) > per_item:
            problems.append(ItemProblem(index, "photos", "too_many_photos", ngettext(
                "At most %(num)d photo per unit.", "At most %(num)d photos per unit.",
                per_item)))
        else:
            for photo in item.photos:
                try:
                    photos.append(check_photo(photo.filename, photo.data))
                except PhotoError as error:
                    problems.append(ItemProblem(index, "photos", error.code, error.message))
        result.checks.append(ItemCheck(index, check.serial, check.coverage, tuple(problems)))
        result.photos.append(photos)
        result.descriptions.append(description)
        result.categories.append(category or None)
    return result


def check_items(customer_id: int, items: Sequence[ItemInput]) -> list[ItemCheck]:
    """Check every item of a form (R-R1, D-8) in a constant number of queries; a serial
    on a later line that repeats an earlier line is flagged ``duplicate``. Never writes."""
    return _check(customer_id, list(items)).checks


# -- pasted lines and CSV files ---------------------------------------------------------
def parse_bulk(text: str) -> tuple[list[ItemInput], list[ItemProblem]]:
    """Items from pasted lines ``serial<TAB>fault description`` (a spreadsheet copy; an
    optional third column that names a fault category is taken as the category). Blank
    lines are skipped; a line without a tab is a problem with ``item`` = its line index."""
    items: list[ItemInput] = []
    problems: list[ItemProblem] = []
    for index, line in enumerate((text or "").splitlines()):
        if not line.strip():
            continue
        if "\t" not in line:
            problems.append(ItemProblem(index, "bulk", "invalid", _(
                "Line %(n)d: put a tab between the serial number and the fault description "
                "(copy two columns from a spreadsheet).", n=index + 1)))
            continue
        parts = line.split("\t")
        category = None
        if len(parts) >= 3 and _category(parts[-1]):
            category = _category(parts[-1])
            parts = parts[:-1]
        items.append(ItemInput(parts[0].strip(), "\t".join(parts[1:]).strip(), category,
                               source_line=index + 1))
    return items, problems


_COLUMN_ALIASES = {
    "serial": "serial", "serial_number": "serial", "serial_no": "serial", "sn": "serial",
    "序列号": "serial",
    "fault_description": "fault_description", "fault": "fault_description",
    "description": "fault_description", "故障描述": "fault_description",
    "fault_category": "fault_category", "category": "fault_category",
    "故障类别": "fault_category", "故障类型": "fault_category",
}
_REQUIRED_COLUMNS = ("serial", "fault_description")


def _decode_csv(data: bytes) -> str | None:
    for bom, encoding in ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"),
                          (codecs.BOM_UTF16_BE, "utf-16-be")):
        if data.startswith(bom):
            try:
                return data[len(bom):].decode(encoding)
            except UnicodeDecodeError:
                return None
    for encoding in ("utf-8", "gb18030"):  # Excel on Chinese Windows saves GB18030/GBK
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return None


def parse_csv(data: bytes) -> tuple[list[ItemInput], list[ItemProblem]]:
    """Items from a CSV file with the header ``serial,fault_description[,fault_category]``
    (also tab- or semicolon-separated), UTF-8 with or without BOM (Excel), UTF-16 with
    BOM, GB18030 otherwise. Every problem names the CSV row number and the column;
    ``ItemInput.source_line`` is the row number of each item."""
    problems: list[ItemProblem] = []

    def refuse(code: str, message: str) -> None:
        problems.append(ItemProblem(None, "csv", code, message))

    text = _decode_csv(bytes(data or b""))
    if text is None:
        refuse("invalid", _("The file is not UTF-8 or GB18030 text. Save it as CSV."))
        return [], problems
    if not text.strip():
        refuse("required", _("The CSV file is empty."))
        return [], problems
    first_line = text.lstrip("\r\n").splitlines()[0]
    delimiter = max((",", ";", "\t"), key=first_line.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    limit = current_app.config["RMA_MAX_ITEMS"]
    items: list[ItemInput] = []
    try:
        header = next(reader)
        columns = [_COLUMN_ALIASES.get("_".join(h.strip().lower().replace("-", " ").split()))
                   for h in header]
        missing = [c for c in _REQUIRED_COLUMNS if c not in columns]
        for column in missing:
            refuse("required", _("Row 1: the header has no column %(column)s (expected: "
                                 "serial, fault_description, fault_category).",
                                 column=column))
        if missing:
            return [], problems
        position = {c: columns.index(c) for c in set(columns) if c is not None}
        for row in reader:
            number = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) > len(header) and any(cell.strip() for cell in row[len(header):]):
                refuse("invalid", _("Row %(row)d: more cells than columns in the header.",
                                    row=number))
                continue
            values = {c: (row[i].strip() if i < len(row) else "") for c, i in position.items()}
            empty = [c for c in _REQUIRED_COLUMNS if not values[c]]
            for column in empty:
                refuse("required", _("Row %(row)d, column %(column)s: the cell is empty.",
                                     row=number, column=column))
            if empty:
                continue
            if len(items) >= limit:
                refuse("too_many_items", ngettext(
                    "Row %(row)d: an RMA holds at most %(num)d unit.",
                    "Row %(row)d: an RMA holds at most %(num)d units.", limit, row=number))
                break
            items.append(ItemInput(values["serial"], values["fault_description"],
                                   values.get("fault_category") or None, source_line=number))
    except csv.Error as error:
        refuse("invalid", _("Row %(row)d: the CSV file cannot be read (%(error)s).",
                            row=reader.line_num, error=str(error)))
    if not items and not problems:
        refuse("required", _("The CSV file has a header but no rows."))
    return items, problems


# -- opening an RMA (R-R1, R-R2, D-1) ---------------------------------------------------
def _text_problem(value: object, field_name: str, limit: int, missing: str) -> tuple[
        str, ItemProblem | None]:
    if value is None:
        value = ""
    if not isinstance(value, str):
        return "", ItemProblem(None, field_name, "invalid", _("This value must be text."))
    text = value.strip()
    if not text:
        return "", ItemProblem(None, field_name, "required", missing)
    if len(text) > limit:
        return text, ItemProblem(None, field_name, "too_long", _(
            "At most %(max)d characters.", max=limit))
    return text, None


def _check_form(contact: ContactInput, ship_to: str, language: str
                ) -> tuple[dict[str, str], list[ItemProblem]]:
    values: dict[str, str] = {}
    problems: list[ItemProblem] = []
    for name, raw, limit, missing in (
        ("contact_name", contact.name, NAME_MAX, _("Enter the contact's name.")),
        ("contact_phone", contact.phone, PHONE_MAX, _("Enter the contact's phone number.")),
        ("contact_email", contact.email, EMAIL_MAX, _("Enter the contact's e-mail address.")),
        ("ship_to", ship_to, SHIP_TO_MAX, _("Enter the address the replacement goes to.")),
    ):
        values[name], problem = _text_problem(raw, name, limit, missing)
        if problem is not None:
            problems.append(problem)
    phone = values["contact_phone"]
    if phone and sum(ch.isdigit() for ch in phone) < 5:
        problems.append(ItemProblem(None, "contact_phone", "invalid", _(
            "%(phone)s is not a phone number.", phone=_shown(phone))))
    email = values["contact_email"]
    if email and not any(p.field == "contact_email" for p in problems):
        try:
            values["contact_email"] = normalize_email(email)
        except ValidationError:
            problems.append(ItemProblem(None, "contact_email", "invalid", _(
                "%(email)s is not a valid e-mail address.", email=_shown(email))))
    if language not in current_app.config["LANGUAGES"]:
        problems.append(ItemProblem(None, "language", "invalid", _(
            "Language %(value)s is not one of: zh_CN, en.", value=_shown(str(language)))))
    return values, problems


def _validate(customer_id: int | None, contact: ContactInput, ship_to: str,
              items: list[ItemInput], language: str):
    values, problems = _check_form(contact, ship_to, language)
    limit = current_app.config["RMA_MAX_ITEMS"]
    checked = None
    if not items:
        problems.append(ItemProblem(None, "items", "required", _("Add at least one unit.")))
    elif len(items) > limit:
        problems.append(ItemProblem(None, "items", "too_many_items", ngettext(
            "An RMA holds at most %(num)d unit.", "An RMA holds at most %(num)d units.",
            limit)))
    elif customer_id is not None:
        checked = _check(customer_id, items)
        problems.extend(p for check in checked.checks for p in check.problems)
    return values, checked, problems


def validate_rma(customer_id: int | None, contact: ContactInput, ship_to: str,
                 items: Sequence[ItemInput], language: str = "zh_CN") -> list[ItemProblem]:
    """Every problem ``open_rma`` would raise, without writing anything. With
    ``customer_id=None`` the items' serials are not checked (no customer to check them
    against); the form fields are."""
    return _validate(customer_id, contact, ship_to, list(items), language)[2]


def open_rma(
    actor: Actor,
    customer_id: int,
    contact: ContactInput,
    ship_to: str,
    items: Sequence[ItemInput],
    language: str = "zh_CN",
) -> Rma:
    """Open an RMA for ``customer_id`` (R-R1) and issue its number at once (R-R2, D-1).

    Checks everything first and raises :class:`RmaInvalid` listing ALL problems (nothing
    written, no number used). Otherwise writes the RMA ``RMA-YYYY-NNNNNN`` (year of the
    China date), its items (status ``submitted``, coverage as on the report date), photos,
    the timeline event, the audit event (R-R4) and the e-mail to the contact in
    ``language`` with the A4 label attached, and commits once. When a unit is submitted
    by two forms at the same moment, the UNIQUE ``open_unit_id`` lets one through and the
    other gets :class:`RmaInvalid` with code ``open_rma``.

    Raises ``NotFoundError`` for an unknown customer, ``ForbiddenError`` when a customer
    user acts for another customer.
    """
    customer = db.session.get(Customer, customer_id)
    if customer is None:
        raise NotFoundError(_("There is no such customer."), "customer")
    user = actor.user
    if user is not None and not user.is_staff and user.customer_id != customer.id:
        raise ForbiddenError(_("You can submit RMAs only for your own organisation."),
                             "customer")
    items = list(items)
    values, checked, problems = _validate(customer.id, contact, ship_to, items, language)
    if problems or checked is None:
        raise RmaInvalid(problems)
    try:
        rma = _write_rma(actor, customer, values, language, checked)
        db.session.commit()
    except IntegrityError as error:
        db.session.rollback()
        if "open_unit_id" not in str(error.orig):
            raise
        raise RmaInvalid(_conflicts(customer.id, items)) from None
    except BaseException:
        db.session.rollback()
        raise
    return rma


def _conflicts(customer_id: int, items: Sequence[ItemInput]) -> list[ItemProblem]:
    """After a lost race on ``open_unit_id``: which items are now in an open RMA."""
    checks, _units = _check_serials(customer_id, [item.serial for item in items])
    found = [p for c in checks for p in c.problems if p.code in ("open_rma", "duplicate")]
    return found or [ItemProblem(None, "items", "open_rma", _(
        "One of these units was just submitted in another RMA. Check the list and submit "
        "again."))]


def _write_rma(actor: Actor, customer: Customer, values: dict[str, str], language: str,
               checked: _Checked) -> Rma:
    now = clock.now()
    year = clock.today().year
    rma = Rma(
        number=f"RMA-{year}-{next_value('rma', year):06d}",
        customer=customer,
        status=RmaStatus.OPEN,
        contact_name=values["contact_name"],
        contact_phone=values["contact_phone"],
        contact_email=values["contact_email"],
        ship_to=values["ship_to"],
        language=language,
        submitted_at=now,
        submitted_by_id=actor.user.id if actor.user is not None else None,
        updated_at=now,
    )
    for index, check in enumerate(checked.checks):
        unit = checked.units[check.serial]
        cov = check.coverage
        assert cov is not None  # noqa: S101 - an own unit always has its coverage
        item = RmaItem(
            line_no=index + 1,
            unit=unit,
            open_unit_id=unit.id,
            serial=unit.serial,
            fault_description=checked.descriptions[index],
            fault_category=checked.categories[index],
            status=ItemStatus.SUBMITTED,
            in_warranty_on_submit=cov.in_warranty,
            warranty_end_on=cov.warranty_end,
            basis_used=cov.basis_used,
            status_changed_at=now,
        )
        item.photos = [
            RmaPhoto(filename=p.filename, content_type=p.content_type, size=p.size,
                     sha256=p.sha256, data=p.data, uploaded_at=now)
            for p in checked.photos[index]
        ]
        rma.items.append(item)
    db.session.add(rma)
    db.session.flush()
    rma.events.append(RmaEvent(
        at=now, kind="submitted", actor_id=rma.submitted_by_id, actor_label=actor.label,
        data={"items": len(rma.items), "serials": [item.serial for item in rma.items]},
    ))
    after = {**rma.as_audit(), "language": language, "items": [
        {**item.as_audit(), "in_warranty_on_submit": item.in_warranty_on_submit,
         "warranty_end_on": item.warranty_end_on.isoformat() if item.warranty_end_on else None,
         "basis_used": item.basis_used,
         "photos": [{"sha256": p.sha256, "size": p.size, "content_type": p.content_type}
                    for p in item.photos]}
        for item in rma.items
    ]}
    record(actor, "rma.submitted", "rma", rma.number, None, after)
    _queue_submitted_email(rma)
    return rma


def rma_url(rma: Rma) -> str:
    """The RMA's portal page, for e-mails (``PUBLIC_URL``)."""
    return f"{current_app.config['PUBLIC_URL'].rstrip('/')}/portal/rmas/{rma.number}"


def _queue_submitted_email(rma: Rma) -> None:
    pdf = render_rma_label(rma, "a4", language=rma.language)
    with force_locale(rma.language):
        lines = [
            {"line": item.line_no, "serial": item.serial, "model": item.unit.model.code,
             "meaning": coverage_meaning(item.in_warranty_on_submit, item.warranty_end_on)}
            for item in rma.items
        ]
    enqueue(
        to=rma.contact_email,
        language=rma.language,
        template="rma_submitted",
        context={
            "rma": rma, "number": rma.number, "customer_name": rma.customer.name,
            "contact_name": rma.contact_name, "items": lines, "url": rma_url(rma),
            "return_address": current_app.config["RETURN_ADDRESS"],
            "vendor_name": current_app.config["VENDOR_NAME"],
            "label_filename": label_filename(rma),
        },
        attachments=[Attachment(label_filename(rma), "application/pdf", pdf)],
        dedupe_key=f"rma_submitted:{rma.number}",
    )


# -- reading ----------------------------------------------------------------------------
def _status_filter(status: str):
    text = status.strip().lower()
    if text in {s.value for s in RmaStatus}:
        return Rma.status == RmaStatus(text)
    if text in {s.value for s in ItemStatus}:
        return exists().where(RmaItem.rma_id == Rma.id, RmaItem.status == ItemStatus(text))
    raise ValidationError(_("Status %(value)s is not an RMA or item status.",
                            value=_shown(status)), "status")


def list_rmas(
    viewer: User,
    *,
    q: str = "",
    status: str | None = None,
    customer_id: int | None = None,
    page: int = 1,
    per_page: int = 20,
    serial: str | None = None,
) -> RmaPage:
    """RMAs ``viewer`` may see, newest first: a customer only its own customer's, staff
    all (``customer_id`` narrows). ``q`` matches part of an RMA number or a whole serial
    (normalised, D-8); ``serial`` only a serial; ``status`` is an RMA status or an item
    status (an RMA with such an item). Items are loaded with the page (no N+1)."""
    stmt = select(Rma)
    if not viewer.is_staff:
        if customer_id is not None and customer_id != viewer.customer_id:
            return RmaPage([], 0, 1, per_page, 1)
        customer_id = viewer.customer_id
    if customer_id is not None:
        stmt = stmt.where(Rma.customer_id == customer_id)
    text = (q or "").strip()
    if text:
        condition = Rma.number.contains(text.upper(), autoescape=True)
        try:
            wanted = normalize_serial(text, current_policy())
        except SerialError:
            pass
        else:
            condition = condition | exists().where(RmaItem.rma_id == Rma.id,
                                                   RmaItem.serial == wanted)
        stmt = stmt.where(condition)
    if serial is not None and serial.strip():
        try:
            wanted = normalize_serial(serial, current_policy())
        except SerialError:
            raise ValidationError(_("%(serial)s is not a valid serial number.",
                                    serial=_shown(serial.strip())), "serial") from None
        stmt = stmt.where(exists().where(RmaItem.rma_id == Rma.id, RmaItem.serial == wanted))
    if status:
        stmt = stmt.where(_status_filter(status))
    per_page = min(max(int(per_page), 1), PER_PAGE_MAX)
    total = db.session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    pages = max(1, math.ceil(total / per_page))
    page = max(int(page), 1)
    rows = db.session.scalars(
        stmt.options(joinedload(Rma.customer), selectinload(Rma.items))
        .order_by(Rma.submitted_at.desc(), Rma.id.desc())
        .offset((page - 1) * per_page)
        .limit(per_page)
    ).unique().all()
    return RmaPage(list(rows), total, page, per_page, pages)


def get_rma(viewer: User, number: str) -> Rma:
    """The RMA ``number`` with its items, units, photos (without their bytes) and events.
    ``NotFoundError`` for an unknown number and, identically, for another customer's."""
    text = (number or "").strip().upper()[:64]
    rma = None
    if text:
        rma = db.session.scalar(
            select(Rma)
            .where(Rma.number == text)
            .options(
                joinedload(Rma.customer),
                selectinload(Rma.items).options(
                    joinedload(RmaItem.unit),
                    selectinload(RmaItem.photos).defer(RmaPhoto.data),
                ),
                selectinload(Rma.events),
            )
        )
    if rma is None or (not viewer.is_staff and rma.customer_id != viewer.customer_id):
        raise NotFoundError(_("There is no RMA %(number)s.", number=text or "-"), "number")
    preload_chains([item.unit for item in rma.items])
    return rma


# -- label (R-R2) -----------------------------------------------------------------------
def label_filename(rma: Rma) -> str:
    return f"{rma.number}-label.pdf"


def _label_fault(item: RmaItem) -> str:
    labels = dict(FAULT_CATEGORIES)
    if item.fault_category in labels:
        return str(labels[item.fault_category])
    first = (item.fault_description or "").strip().splitlines()
    return first[0][:80] if first else ""


def label_data(rma: Rma):
    """The plain data of the RMA's parcel label (``rma.documents.label.LabelData``)."""
    from rma.documents.label import LabelData, LabelItem

    config = current_app.config
    return LabelData(
        rma_number=rma.number,
        customer_name=rma.customer.name,
        contract_number=rma.customer.contract_number,
        return_address=config["RETURN_ADDRESS"],
        vendor_name=config["VENDOR_NAME"],
        submitted_on=submitted_on(rma),
        contact_name=rma.contact_name,
        contact_phone=rma.contact_phone,
        items=tuple(
            LabelItem(serial=item.serial, model_code=item.unit.model.code,
                      fault=_label_fault(item))
            for item in rma.items
        ),
    )


def render_rma_label(rma: Rma, size: str = "a4", language: str | None = None) -> bytes:
    """The label PDF (R-R2), ``a4`` or ``thermal``, in ``language`` (default: the current
    one). ``ValidationError`` (field ``size``) for another size."""
    if size not in LABEL_SIZES:
        raise ValidationError(_("Label size %(size)s is not one of: a4, thermal.",
                                size=_shown(str(size))), "size")
    from rma.documents.label import render_label

    if language is None:
        return render_label(label_data(rma), size)
    with force_locale(language):
        return render_label(label_data(rma), size)


# -- timeline (R-R4, as the customer reads it) ------------------------------------------
def _submitted_text(data: dict, actor: str) -> str:
    count = int(data.get("items", 0))
    return ngettext("RMA submitted with %(num)d item by %(actor)s.",
                    "RMA submitted with %(num)d items by %(actor)s.", count, actor=actor)


# kind → text(data, actor). Later work registers its event kinds here.
TIMELINE_TEXTS: dict[str, Callable[[dict, str], str]] = {
    "submitted": _submitted_text,
}


def timeline(rma: Rma, viewer: User | None = None) -> list[TimelineEntry]:
    """The RMA's events in plain words in the current language, oldest first. An event
    kind without a text gets a general sentence, never an error.

    For a customer ``viewer``, whoever is not of its own organisation (staff, the tick
    jobs, the CLI) is "the service centre": staff e-mail addresses stay inside."""
    entries = []
    items = {item.id: item for item in rma.items}
    own: set[int] | None = None
    if viewer is not None and not viewer.is_staff:
        actor_ids = {e.actor_id for e in rma.events if e.actor_id is not None}
        own = set(db.session.scalars(
            select(User.id).where(User.id.in_(actor_ids),
                                  User.customer_id == viewer.customer_id)
        )) if actor_ids else set()
    for event in rma.events:
        data = event.data if isinstance(event.data, dict) else {}
        actor = event.actor_label or _("the service centre")
        if own is not None and event.actor_id not in own:
            actor = _("the service centre")
        render = TIMELINE_TEXTS.get(event.kind)
        text = None
        if render is not None:
            try:
                text = render(data, actor)
            except (KeyError, TypeError, ValueError):
                text = None
        if text is None:
            text = _("The RMA was updated (%(what)s) by %(actor)s.",
                     what=(event.kind or "").replace("_", " "), actor=actor)
        item = items.get(event.item_id) if event.item_id is not None else None
        serial = item.serial if item is not None else data.get("serial")
        entries.append(TimelineEntry(at=event.at, text=text, serial=serial, actor=actor))
    return entries


__all__ = [
    "FAULT_CATEGORIES", "LABEL_SIZES", "TIMELINE_TEXTS", "ContactInput", "ItemCheck",
    "ItemCoverage", "ItemInput", "ItemProblem", "PhotoInput", "RmaInvalid", "RmaPage",
    "TimelineEntry", "check_items", "check_serial", "coverage_meaning", "get_rma",
    "validate_rma",
    "label_data", "label_filename", "list_rmas", "open_rma", "parse_bulk", "parse_csv",
    "render_rma_label", "rma_url", "stored_coverage", "submitted_on", "timeline",
]

