"""RMA use cases (rma/services/rmas.py): serial checks (D-8), the form (R-R1), opening an
RMA all-or-nothing with its number and label (R-R2, D-1), audit and timeline (R-R4),
scoping, search, bulk paste and CSV files."""

from __future__ import annotations

import codecs
import io
import threading
from datetime import date

import pytest
from PIL import Image
from sqlalchemy import func, select

from rma.extensions import db
from rma.models import (
    AuditEvent,
    ItemStatus,
    NumberSequence,
    OutboxAttachment,
    OutboxMessage,
    Rma,
    RmaEvent,
    RmaItem,
    RmaPhoto,
    Unit,
    UnitStatus,
    User,
)
from rma.services import ForbiddenError, NotFoundError, ValidationError
from rma.services.audit import Actor
from rma.services.catalog import customer_by_contract
from tests.conftest import PG_URL, count_queries

EN = "en"


# -- the installed base (the test clock says 2026-11-25, China time) --------------------
def build_world(app, make_model, make_customer, make_user) -> dict:
    """Customers A and B with units, a spare in stock, and a user per side + staff."""
    tk3 = make_model("TK3", 36, "ship")
    lic = make_model("LIC", 12, "acceptance", kind="software")
    contract_a = make_customer("Acme Bank", "2026-03-10")
    contract_b = make_customer("Beta Bank", "2026-01-05")
    make_user("alice@a.example", "customer", contract_a, language="en")
    make_user("carol@a.example", "customer", contract_a, language="zh_CN")
    make_user("bob@b.example", "customer", contract_b, language="en")
    make_user("sam@vendor.example", "support")
    with app.app_context():
        a = customer_by_contract(contract_a).id
        b = customer_by_contract(contract_b).id
        rows = [Unit(serial=f"TK3-A{n:04d}", model_id=tk3, customer_id=a,
                     shipped_on=date(2025, 1, 10)) for n in range(1, 31)]
        rows += [
            Unit(serial="TK3-AOLD", model_id=tk3, customer_id=a, shipped_on=date(2022, 1, 10)),
            Unit(serial="TK3-AGONE", model_id=tk3, customer_id=a, shipped_on=date(2024, 1, 10),
                 status=UnitStatus.REPLACED),
            Unit(serial="LIC-A001", model_id=lic, customer_id=a, shipped_on=date(2026, 3, 1)),
            Unit(serial="TK3-SPARE1", model_id=tk3, status=UnitStatus.IN_STOCK),
        ]
        rows += [Unit(serial=f"TK3-B{n:04d}", model_id=tk3, customer_id=b,
                      shipped_on=date(2025, 6, 1)) for n in range(1, 6)]
        db.session.add_all(rows)
        db.session.commit()
    return {"a": a, "b": b, "contract_a": contract_a, "contract_b": contract_b}


@pytest.fixture
def world(app, make_model, make_customer, make_user):
    return build_world(app, make_model, make_customer, make_user)


def user(email: str) -> User:
    return db.session.scalar(select(User).where(User.email == email))


def contact(email="alice@a.example"):
    from rma.services.rmas import ContactInput

    return ContactInput("Alice Wang", "+86 21 5555 0101", email)


def items(*serials, description="No codes shown"):
    from rma.services.rmas import ItemInput

    return [ItemInput(s, description) for s in serials]


def submit(serials, email="alice@a.example", customer="a", world=None, language="en", **kw):
    from rma.services.rmas import open_rma

    who = user(email)
    customer_id = world[customer] if world else who.customer_id
    return open_rma(Actor(user=who), customer_id, kw.pop("contact", contact()),
                    kw.pop("ship_to", "Acme Bank IT, 1 Bund Road, Shanghai"),
                    items(*serials) if isinstance(serials, tuple) else serials,
                    language, **kw)


def png_bytes(size=(8, 8)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, "PNG")
    return buffer.getvalue()


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


# -- serial checks (D-8) ----------------------------------------------------------------
@pytest.mark.parametrize("raw, code, fragment", [
    ("ab#12", "malformed", "'ab#12' is not a valid serial number"),
    ("  ", "required", "Enter the serial number"),
    ("X1", "malformed", "'X1'"),
    ("TK3-A0001\u200b", "malformed", "\\u200b"),  # an invisible character is shown
    ("NOPE-0001", "unknown", "NOPE-0001 is not known"),
    ("TK3-B0001", "foreign", "TK3-B0001 is not registered to your organisation"),
    ("tk3-spare1", "foreign", "TK3-SPARE1 is not registered to your organisation"),
    ("TK3-AGONE", "invalid", "no longer in service"),
])
def test_D_8_check_serial_refusals(app, world, raw, code, fragment):
    from rma.services.rmas import check_serial

    with app.test_request_context(headers={"Accept-Language": EN}):
        check = check_serial(world["a"], raw)
    assert [p.code for p in check.problems] == [code]
    assert check.problems[0].field == "serial" and check.problems[0].item == 0
    assert fragment in check.problems[0].message
    assert check.coverage is None or code == "invalid"


def test_D_8_another_customers_unit_and_a_spare_get_the_same_message(app, world):
    from rma.services.rmas import check_serial

    with app.test_request_context(headers={"Accept-Language": EN}):
        foreign = check_serial(world["a"], "TK3-B0001").problems[0]
        spare = check_serial(world["a"], "TK3-SPARE1").problems[0]
    assert foreign.code == spare.code == "foreign"
    assert foreign.message.replace("TK3-B0001", "X") == spare.message.replace("TK3-SPARE1", "X")
    assert "Beta" not in foreign.message and "stock" not in spare.message


@pytest.mark.parametrize("raw, serial, in_warranty, end, basis", [
    (" tk3-a0001 ", "TK3-A0001", True, date(2028, 1, 9), "ship"),  # R-W2, 36 months
    ("TK3-AOLD", "TK3-AOLD", False, date(2025, 1, 9), "ship"),  # R-W5
    ("lic-a001", "LIC-A001", True, date(2027, 3, 10), "acceptance"),  # R-W1 + R-C2 start
])
def test_R_W2_check_serial_gives_coverage_in_words(app, world, raw, serial, in_warranty, end,
                                                  basis):
    from rma.services.rmas import check_serial

    with app.test_request_context(headers={"Accept-Language": EN}):
        check = check_serial(world["a"], raw)
    assert check.problems == () and check.serial == serial
    cov = check.coverage
    assert (cov.serial, cov.in_warranty, cov.warranty_end, cov.basis_used) == (
        serial, in_warranty, end, basis)
    assert cov.judged_on == date(2026, 11, 25)
    if in_warranty:
        assert cov.meaning.startswith(f"In warranty until {end.isoformat()}: the replacement is "
                                      "free if the fault is a quality defect")
    else:
        assert "a replacement is paid" in cov.meaning


def test_D_8_open_rma_is_named_for_the_same_customer(app, world):
    from rma.services.rmas import check_serial

    with app.test_request_context(headers={"Accept-Language": EN}):
        rma = submit(("TK3-A0001",))
        check = check_serial(world["a"], "tk3-a0001")
        assert [p.code for p in check.problems] == ["open_rma"]
        assert f"already in open RMA {rma.number}" in check.problems[0].message
        # Editing that RMA itself: its own items do not count.
        assert check_serial(world["a"], "TK3-A0001", exclude_rma_id=rma.id).problems == ()


def test_D_8_open_rma_of_another_customer_is_not_named(app, world):
    """A unit moved from B to A while in B's open RMA: A is told, without B's number."""
    from rma.services.rmas import check_serial

    with app.test_request_context(headers={"Accept-Language": EN}):
        number_b = submit(("TK3-B0001",), email="bob@b.example",
                          contact=contact("bob@b.example")).number
        unit = db.session.scalar(select(Unit).where(Unit.serial == "TK3-B0001"))
        unit.customer_id = world["a"]
        db.session.commit()
        message = check_serial(world["a"], "TK3-B0001").problems[0]
    assert message.code == "open_rma"
    assert "already in an open RMA" in message.message and number_b not in message.message


def test_R_R1_duplicate_lines_flag_the_later_lines(app, world):
    from rma.services.rmas import check_items

    with app.test_request_context(headers={"Accept-Language": EN}):
        checks = check_items(world["a"], items("TK3-A0001", "TK3-A0002", "tk3-a0001 ",
                                               "TK3-A0001"))
    assert [c.problems for c in checks[:2]] == [(), ()]
    for check in checks[2:]:
        assert [p.code for p in check.problems] == ["duplicate"]
        assert "already on line 1 of this form" in check.problems[0].message


def test_R_R1_check_items_runs_a_constant_number_of_queries(app, world):
    from rma.services.rmas import check_items

    with app.test_request_context():
        with count_queries(app) as one:
            check_items(world["a"], items("TK3-A0001"))
        serials = [f"TK3-A{n:04d}" for n in range(1, 21)] + ["TK3-B0001", "NOPE-1", "bad#"]
        with count_queries(app) as many:
            checks = check_items(world["a"], items(*serials))
    assert len(many) == len(one) <= 2
    assert sum(1 for c in checks if c.problems) == 3


def test_replacement_chain_is_loaded_per_level_not_per_unit(app, world):
    from rma.services.rmas import check_items

    with app.app_context():
        old = db.session.scalar(select(Unit).where(Unit.serial == "TK3-AOLD"))
        for n in range(1, 6):
            unit = db.session.scalar(select(Unit).where(Unit.serial == f"TK3-A{n:04d}"))
            unit.replaces_id = old.id
        db.session.commit()
    with app.test_request_context():
        with count_queries(app) as statements:
            checks = check_items(world["a"], items(*[f"TK3-A{n:04d}" for n in range(1, 6)]))
    assert len(statements) == 3  # units, replaced units, open items
    assert {c.coverage.replacement_of for c in checks} == {"TK3-AOLD"}


# -- the form (R-R1) --------------------------------------------------------------------
def _form_problems(app, world, **change):
    from rma.services.rmas import ContactInput, ItemInput, RmaInvalid

    fields = {"name": "Alice Wang", "phone": "+86 21 5555 0101", "email": "alice@a.example"}
    fields.update(change.pop("contact", {}))
    with app.test_request_context(headers={"Accept-Language": EN}):
        with pytest.raises(RmaInvalid) as caught:
            submit(change.pop("items", [ItemInput("TK3-A0001", "No display")]),
                   contact=ContactInput(**fields), **change)
        return [(p.item, p.field, p.code, p.message) for p in caught.value.problems]


@pytest.mark.parametrize("change, expected", [
    ({"contact": {"name": ""}}, (None, "contact_name", "required")),
    ({"contact": {"name": "x" * 201}}, (None, "contact_name", "too_long")),
    ({"contact": {"phone": " "}}, (None, "contact_phone", "required")),
    ({"contact": {"phone": "call me"}}, (None, "contact_phone", "invalid")),
    ({"contact": {"email": "not-an-address"}}, (None, "contact_email", "invalid")),
    ({"contact": {"email": ""}}, (None, "contact_email", "required")),
    ({"ship_to": ""}, (None, "ship_to", "required")),
    ({"ship_to": "x" * 2001}, (None, "ship_to", "too_long")),
    ({"language": "fr"}, (None, "language", "invalid")),
    ({"items": []}, (None, "items", "required")),
])
def test_R_R1_form_level_refusals(app, world, change, expected):
    problems = _form_problems(app, world, **change)
    assert [p[:3] for p in problems] == [expected]


@pytest.mark.parametrize("item, expected", [
    (("TK3-A0001", ""), (0, "fault_description", "required")),
    (("TK3-A0001", "x" * 2001), (0, "fault_description", "too_long")),
    (("TK3-A0001", "ok", "melted"), (0, "fault_category", "unknown_category")),
    (("bad#", "ok"), (0, "serial", "malformed")),
])
def test_R_R1_item_refusals(app, world, item, expected):
    from rma.services.rmas import ItemInput

    problems = _form_problems(app, world, items=[ItemInput(*item)])
    assert [p[:3] for p in problems] == [expected]


def test_R_R1_fault_description_of_2000_characters_and_known_categories_pass(app, world):
    from rma.services.rmas import FAULT_CATEGORIES, ItemInput, check_items

    keys = [key for key, _label in FAULT_CATEGORIES]
    assert keys == ["no_display", "buttons", "battery", "wrong_codes", "physical_damage",
                    "activation", "licence", "other"]
    with app.test_request_context(headers={"Accept-Language": EN}):
        checks = check_items(world["a"], [
            ItemInput("TK3-A0001", "x" * 2000, "battery"),
            ItemInput("TK3-A0002", "y", "Wrong or out-of-sync codes"),  # its label
            ItemInput("TK3-A0003", "z", None),
        ])
    assert [c.problems for c in checks] == [(), (), ()]


def test_R_R1_too_many_items(app, world):
    app.config["RMA_MAX_ITEMS"] = 3
    problems = _form_problems(app, world, items=items(*[f"TK3-A{n:04d}" for n in range(1, 5)]))
    assert [p[:3] for p in problems] == [(None, "items", "too_many_items")]


def test_R_R1_every_problem_is_listed_at_once(app, world):
    from rma.services.rmas import ItemInput

    problems = _form_problems(
        app, world, contact={"email": "nope"}, ship_to="",
        items=[ItemInput("TK3-A0001", "ok"), ItemInput("TK3-B0001", ""),
               ItemInput("NOPE-0001", "ok")])
    assert sorted((p[0] if p[0] is not None else -1, p[1], p[2]) for p in problems) == [
        (-1, "contact_email", "invalid"), (-1, "ship_to", "required"),
        (1, "fault_description", "required"), (1, "serial", "foreign"),
        (2, "serial", "unknown"),
    ]


# -- opening an RMA (R-R1, R-R2, R-R4, D-1) ---------------------------------------------
def test_R_R2_open_rma_writes_everything_in_one_go(app, world):
    from rma.services.rmas import ItemInput, PhotoInput

    with app.test_request_context(headers={"Accept-Language": EN}):
        rma = submit([
            ItemInput(" tk3-a0001 ", " Screen blank after drop ", "no_display",
                      (PhotoInput("front.jpg", png_bytes()),)),
            ItemInput("TK3-AOLD", "Codes rejected", ""),
        ], language="en")
        number = rma.number
    assert number == "RMA-2026-000001"
    with app.app_context():
        rma = db.session.scalar(select(Rma).where(Rma.number == number))
        assert (rma.contact_name, rma.contact_email, rma.language) == (
            "Alice Wang", "alice@a.example", "en")
        assert rma.submitted_by.email == "alice@a.example"
        first, second = rma.items
        assert (first.line_no, first.serial, first.status) == (1, "TK3-A0001",
                                                               ItemStatus.SUBMITTED)
        assert first.open_unit_id == first.unit_id and first.unit.serial == "TK3-A0001"
        assert first.fault_description == "Screen blank after drop"
        assert first.fault_category == "no_display" and second.fault_category is None
        assert (first.in_warranty_on_submit, first.warranty_end_on, first.basis_used) == (
            True, date(2028, 1, 9), "ship")
        assert (second.in_warranty_on_submit, second.warranty_end_on) == (False,
                                                                         date(2025, 1, 9))
        photo = first.photos[0]
        assert (photo.content_type, photo.filename, photo.size) == (
            "image/png", "front.jpg", len(png_bytes()))
        assert len(photo.sha256) == 64
        [event] = rma.events
        assert event.kind == "submitted" and event.data["items"] == 2
        assert event.actor_label == "alice@a.example"
        audit = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "rma.submitted"))
        assert audit.entity_id == number and audit.actor.email == "alice@a.example"
        assert [i["serial"] for i in audit.after["items"]] == ["TK3-A0001", "TK3-AOLD"]
        assert audit.after["contact_email"] == "alice@a.example"
        message = db.session.scalar(select(OutboxMessage))
        assert (message.template, message.to_address, message.language) == (
            "rma_submitted", "alice@a.example", "en")
        assert number in message.subject
        body = message.body_text
        assert "TK3-A0001 (TK3)" in body and "In warranty until 2028-01-09" in body
        assert "Out of warranty (the last covered day was 2025-01-09)" in body
        assert "Print the attached label RMA-2026-000001-label.pdf." in body
        assert "Beijing 100081" in body  # the return address
        assert "http://127.0.0.1:8000/portal/rmas/RMA-2026-000001" in body
        [attachment] = message.attachments
        assert attachment.filename == "RMA-2026-000001-label.pdf"
        assert attachment.content_type == "application/pdf"
        assert attachment.data.startswith(b"%PDF")


def test_R_R2_e_mail_is_in_the_contacts_language(app, world):
    with app.test_request_context(headers={"Accept-Language": EN}):
        submit(("TK3-A0001",), email="carol@a.example", contact=contact("carol@a.example"),
               language="zh_CN")
    with app.app_context():
        message = db.session.scalar(select(OutboxMessage))
        assert message.language == "zh_CN" and message.to_address == "carol@a.example"
        assert message.attachments[0].data.startswith(b"%PDF")


def test_R_R2_numbers_are_unique_and_sequential(app, world):
    with app.test_request_context():
        numbers = [submit((f"TK3-A{n:04d}",)).number for n in range(1, 4)]
    assert numbers == ["RMA-2026-000001", "RMA-2026-000002", "RMA-2026-000003"]


def test_D_1_all_or_nothing_a_bad_item_writes_nothing_and_uses_no_number(app, world):
    from rma.services.rmas import ItemInput, PhotoInput, RmaInvalid

    with app.test_request_context():
        with pytest.raises(RmaInvalid) as caught:
            submit([ItemInput("TK3-A0001", "ok", None, (PhotoInput("a.png", png_bytes()),)),
                    ItemInput("TK3-B0001", "ok")])
        assert [(p.item, p.code) for p in caught.value.problems] == [(1, "foreign")]
        db.session.rollback()
        assert [count(m) for m in (Rma, RmaItem, RmaPhoto, RmaEvent, OutboxMessage,
                                   OutboxAttachment)] == [0] * 6
        assert db.session.scalar(
            select(func.count()).where(AuditEvent.action == "rma.submitted")) == 0
        assert db.session.scalar(select(NumberSequence.last_value)
                                 .where(NumberSequence.name == "rma")) is None
        assert submit(("TK3-A0001",)).number == "RMA-2026-000001"


def test_R_R1_a_unit_cannot_be_in_two_open_rmas(app, world):
    from rma.services.rmas import RmaInvalid

    with app.test_request_context(headers={"Accept-Language": EN}):
        first = submit(("TK3-A0001",))
        with pytest.raises(RmaInvalid) as caught:
            submit(("TK3-A0002", "TK3-A0001"))
        [problem] = caught.value.problems
        assert (problem.item, problem.code) == (1, "open_rma")
        assert first.number in problem.message
        assert submit(("TK3-A0002",)).number == "RMA-2026-000002"


def test_R_R1_lost_race_on_open_unit_id_is_refused_not_a_500(app, world, monkeypatch):
    """Both forms passed the check; the UNIQUE open_unit_id stops the second at insert."""
    from rma.services import rmas

    with app.test_request_context(headers={"Accept-Language": EN}):
        first = submit(("TK3-A0001",))
        real = rmas._open_items
        calls = []

        def blind(unit_ids, exclude_rma_id):
            calls.append(1)
            return {} if len(calls) == 1 else real(unit_ids, exclude_rma_id)

        monkeypatch.setattr(rmas, "_open_items", blind)
        with pytest.raises(rmas.RmaInvalid) as caught:
            submit(("TK3-A0002", "TK3-A0001"))
        [problem] = caught.value.problems
        assert (problem.item, problem.field, problem.code) == (1, "serial", "open_rma")
        assert first.number in problem.message
        assert count(Rma) == 1 and count(RmaItem) == 1 and count(OutboxMessage) == 1
        monkeypatch.setattr(rmas, "_open_items", real)
        assert submit(("TK3-A0002",)).number == "RMA-2026-000002"  # no number was lost


def test_customer_user_cannot_open_an_rma_for_another_customer(app, world):
    with app.test_request_context():
        with pytest.raises(ForbiddenError):
            submit(("TK3-B0001",), customer="b", world=world)
        assert count(Rma) == 0


def test_staff_opens_an_rma_on_behalf_of_a_customer(app, world):
    with app.test_request_context():
        rma = submit(("TK3-B0001",), email="sam@vendor.example", customer="b", world=world,
                     contact=contact("bob@b.example"))
        assert rma.customer_id == world["b"] and rma.submitted_by.email == "sam@vendor.example"


def test_unknown_customer_is_not_found(app, world):
    with app.test_request_context(), pytest.raises(NotFoundError):
        submit(("TK3-A0001",), email="sam@vendor.example", customer="x", world={"x": 999})


# -- concurrency (PostgreSQL: real row locks and unique index waits) ---------------------
needs_postgres = pytest.mark.parametrize("database_url", [
    pytest.param("postgresql", marks=pytest.mark.skipif(not PG_URL, reason="needs PostgreSQL"))
], indirect=True)


def _race(app, batches):
    from rma.services.rmas import RmaInvalid

    barrier = threading.Barrier(len(batches))
    results: list = [None] * len(batches)

    def run(index, serials):
        with app.test_request_context(headers={"Accept-Language": EN}):
            barrier.wait()
            try:
                results[index] = submit(serials).number
            except RmaInvalid as error:
                results[index] = error
            except Exception as error:  # noqa: BLE001 - the test reports any other error
                results[index] = ("crash", repr(error))
            finally:
                db.session.remove()

    threads = [threading.Thread(target=run, args=(i, s)) for i, s in enumerate(batches)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


@needs_postgres
def test_R_R2_concurrent_submissions_of_the_same_serial_one_wins(app, world):
    for _round in range(3):
        with app.app_context():
            db.session.execute(RmaItem.__table__.update().values(open_unit_id=None))
            db.session.commit()
        results = _race(app, [("TK3-A0001",), ("TK3-A0001",)])
        winners = [r for r in results if isinstance(r, str)]
        losers = [r for r in results if not isinstance(r, str)]
        assert len(winners) == 1 and len(losers) == 1, results
        assert [p.code for p in losers[0].problems] == ["open_rma"]
    with app.app_context():
        numbers = db.session.scalars(select(Rma.number).order_by(Rma.id)).all()
    assert numbers == [f"RMA-2026-{n:06d}" for n in range(1, 4)]  # no gap from the losers


@needs_postgres
def test_R_R2_concurrent_submissions_of_different_serials_get_consecutive_numbers(app, world):
    results = _race(app, [(f"TK3-A{n:04d}",) for n in range(1, 5)])
    assert sorted(results) == [f"RMA-2026-{n:06d}" for n in range(1, 5)], results


# -- reading: scoping, search, pages (no N+1) -------------------------------------------
def test_list_rmas_is_scoped_to_the_customer(app, world):
    from rma.services.rmas import list_rmas

    with app.test_request_context():
        a1 = submit(("TK3-A0001",)).number
        b1 = submit(("TK3-B0001",), email="bob@b.example", contact=contact("bob@b.example"))
        b1 = b1.number
        mine = list_rmas(user("alice@a.example"))
        assert [r.number for r in mine.items] == [a1] and mine.total == 1
        assert list_rmas(user("alice@a.example"), q="TK3-B0001").total == 0
        assert list_rmas(user("alice@a.example"), q=b1).total == 0
        assert list_rmas(user("alice@a.example"), customer_id=world["b"]).total == 0
        staff = list_rmas(user("sam@vendor.example"))
        assert {r.number for r in staff.items} == {a1, b1}
        assert [r.number for r in list_rmas(user("sam@vendor.example"),
                                            customer_id=world["b"]).items] == [b1]


def test_list_rmas_search_status_and_pages(app, world):
    from rma.services.rmas import list_rmas

    with app.test_request_context():
        numbers = [submit((f"TK3-A{n:04d}",)).number for n in range(1, 6)]
        alice = user("alice@a.example")
        assert [r.number for r in list_rmas(alice, q=" tk3-a0003 ").items] == [numbers[2]]
        assert [r.number for r in list_rmas(alice, q="000004").items] == [numbers[3]]
        assert [r.number for r in list_rmas(alice, serial="tk3-a0005").items] == [numbers[4]]
        assert list_rmas(alice, q="%").total == 0  # LIKE wildcards are escaped
        assert list_rmas(alice, status="open").total == 5
        assert list_rmas(alice, status="submitted").total == 5
        assert list_rmas(alice, status="closed").total == 0
        with pytest.raises(ValidationError):
            list_rmas(alice, status="bogus")
        with pytest.raises(ValidationError):
            list_rmas(alice, serial="bad#")
        page = list_rmas(alice, page=2, per_page=2)
        assert (page.total, page.pages, page.page, page.per_page) == (5, 3, 2, 2)
        assert [r.number for r in page.items] == [numbers[2], numbers[1]]  # newest first


def test_list_rmas_loads_items_with_the_page(app, world):
    from rma.services.rmas import list_rmas

    with app.test_request_context():
        submit(("TK3-A0001", "TK3-A0002"))
        viewer_id = user("alice@a.example").id

    def listed():
        with app.app_context():
            viewer = db.session.get(User, viewer_id)
            with count_queries(app) as statements:
                page = list_rmas(viewer)
                seen = [(rma.customer.name, [(i.serial, i.status) for i in rma.items])
                        for rma in page.items]
                assert all(serials for _name, serials in seen)
            return len(statements), page.total

    one, total_one = listed()
    with app.test_request_context():
        for n in range(3, 22):
            submit((f"TK3-A{n:04d}",))
    many, total_many = listed()
    assert (total_one, total_many) == (1, 20)
    assert one == many <= 3


def test_get_rma_another_customers_rma_is_not_found_like_an_unknown_one(app, world):
    from rma.services.rmas import get_rma

    with app.test_request_context(headers={"Accept-Language": EN}):
        number = submit(("TK3-B0001",), email="bob@b.example",
                        contact=contact("bob@b.example")).number
        with pytest.raises(NotFoundError) as foreign:
            get_rma(user("alice@a.example"), number)
        with pytest.raises(NotFoundError) as unknown:
            get_rma(user("alice@a.example"), "RMA-2026-999999")
        assert foreign.value.message.replace(number, "N") == \
            unknown.value.message.replace("RMA-2026-999999", "N")
        assert get_rma(user("bob@b.example"), number.lower()).number == number
        assert get_rma(user("sam@vendor.example"), number).number == number


def test_R_R4_timeline_in_plain_words(app, world):
    from rma.services.rmas import get_rma, timeline

    with app.test_request_context(headers={"Accept-Language": EN}):
        number = submit(("TK3-A0001", "TK3-A0002")).number
        rma = get_rma(user("alice@a.example"), number)
        rma.events.append(RmaEvent(kind="teleported", actor_label="sam@vendor.example",
                                   data={"x": 1}, item_id=rma.items[1].id))
        rma.events.append(RmaEvent(kind="submitted", actor_label="x", data={"items": "??"}))
        db.session.commit()
        rma = get_rma(user("alice@a.example"), number)
        entries = timeline(rma)
    assert entries[0].text == "RMA submitted with 2 items by alice@a.example."
    assert entries[0].at.isoformat() == "2026-11-25T04:00:00+00:00"
    assert entries[1].text == "The RMA was updated (teleported) by sam@vendor.example."
    assert entries[1].serial == "TK3-A0002"
    assert entries[2].text == "The RMA was updated (submitted) by x."  # bad data, no error


# -- label (R-R2) -----------------------------------------------------------------------
def test_R_R2_label_data_and_pdf(app, world):
    from rma.services.rmas import ItemInput, get_rma, label_data, render_rma_label

    with app.test_request_context(headers={"Accept-Language": EN}):
        number = submit([ItemInput("TK3-A0001", "Cracked case\nsecond line", "physical_damage"),
                         ItemInput("TK3-A0002", "Codes drift\nmore")]).number
        rma = get_rma(user("alice@a.example"), number)
        data = label_data(rma)
        assert (data.rma_number, data.customer_name, data.contract_number) == (
            number, "Acme Bank", world["contract_a"])
        assert data.submitted_on == date(2026, 11, 25)
        assert data.contact_name == "Alice Wang" and "Beijing" in data.return_address
        assert [(i.serial, i.model_code, i.fault) for i in data.items] == [
            ("TK3-A0001", "TK3", "Physical damage"), ("TK3-A0002", "TK3", "Codes drift")]
        assert render_rma_label(rma, "a4").startswith(b"%PDF")
        assert render_rma_label(rma, "thermal").startswith(b"%PDF")
        with pytest.raises(ValidationError):
            render_rma_label(rma, "a3")


# -- bulk paste and CSV -----------------------------------------------------------------
def test_R_R1_parse_bulk_lines(app):
    from rma.services.rmas import ItemInput, parse_bulk

    text = "TK3-A0001\tNo display\n\n  \nTK3-A0002 no tab here\r\nTK3-A0003\tCodes\tbattery\n"
    with app.test_request_context(headers={"Accept-Language": EN}):
        parsed, problems = parse_bulk(text)
    assert parsed == [ItemInput("TK3-A0001", "No display", None, source_line=1),
                      ItemInput("TK3-A0003", "Codes", "battery", source_line=5)]
    assert [(p.item, p.field, p.code) for p in problems] == [(3, "bulk", "invalid")]
    assert problems[0].message.startswith("Line 4:")


@pytest.mark.parametrize("data", [
    codecs.BOM_UTF8 + "serial,fault_description,fault_category\r\nTK3-A0001,屏幕不亮,no_display\r\n"
    "TK3-A0002,\"Codes, wrong\",\r\n".encode(),
    "serial,fault_description,fault_category\nTK3-A0001,屏幕不亮,no_display\n"
    "TK3-A0002,\"Codes, wrong\",\n".encode("gb18030"),
    "序列号;故障描述;故障类别\nTK3-A0001;屏幕不亮;no_display\n\nTK3-A0002;Codes, wrong;\n"
    .encode("gb18030"),
    codecs.BOM_UTF16_LE + "serial\tfault_description\tfault_category\r\nTK3-A0001\t屏幕不亮\t"
    "no_display\r\nTK3-A0002\tCodes, wrong\t\r\n".encode("utf-16-le"),
], ids=["utf8-bom-excel", "gb18030", "chinese-header-semicolon", "utf16"])
def test_R_R1_parse_csv_encodings(app, data):
    from rma.services.rmas import parse_csv

    with app.test_request_context():
        parsed, problems = parse_csv(data)
    assert problems == []
    assert [(i.serial, i.fault_description, i.fault_category) for i in parsed] == [
        ("TK3-A0001", "屏幕不亮", "no_display"), ("TK3-A0002", "Codes, wrong", None)]
    assert parsed[0].source_line == 2


@pytest.mark.parametrize("data, fragments", [
    (b"serial,fault\nTK3-A0001,x\n", None),  # "fault" is an alias: fine
    (b"serial,notes\nTK3-A0001,x\n", ["Row 1: the header has no column fault_description"]),
    (b"fault_description\nx\n", ["Row 1: the header has no column serial"]),
    (b"serial,fault_description\nTK3-A0001,\n,desc\n",
     ["Row 2, column fault_description: the cell is empty.",
      "Row 3, column serial: the cell is empty."]),
    (b"serial,fault_description\nTK3-A0001,x,extra\n", ["Row 2: more cells than columns"]),
    (b"", ["The CSV file is empty."]),
    (b"serial,fault_description\n", ["The CSV file has a header but no rows."]),
    (b"\xff\xfe\xfa\x00\x81", ["not UTF-8 or GB18030"]),
])
def test_R_R1_parse_csv_problems_name_row_and_column(app, data, fragments):
    from rma.services.rmas import parse_csv

    with app.test_request_context(headers={"Accept-Language": EN}):
        parsed, problems = parse_csv(data)
    if fragments is None:
        assert problems == [] and parsed[0].fault_description == "x"
        return
    assert all(p.field == "csv" and p.item is None for p in problems)
    assert len(problems) == len(fragments)
    for problem, fragment in zip(problems, fragments, strict=True):
        assert fragment in problem.message


def test_R_R1_csv_over_the_item_limit(app):
    from rma.services.rmas import parse_csv

    app.config["RMA_MAX_ITEMS"] = 2
    data = b"serial,fault_description\n" + b"".join(
        f"TK3-A{n:04d},x\n".encode() for n in range(1, 5))
    with app.test_request_context(headers={"Accept-Language": EN}):
        parsed, problems = parse_csv(data)
    assert len(parsed) == 2
    assert [(p.code, p.message) for p in problems] == [
        ("too_many_items", "Row 4: an RMA holds at most 2 units.")]


def test_R_R4_timeline_names_staff_as_the_service_centre_for_customers(app, world):
    """Customers read who did what, but staff e-mail addresses stay inside."""
    from rma.services.rmas import ItemInput, get_rma, timeline
    from rma.services.warehouse import request_unit

    with app.test_request_context(headers={"Accept-Language": EN}):
        number = submit([ItemInput("TK3-A0001", "Blank display")]).number
        rma = get_rma(user("sam@vendor.example"), number)
        request_unit(Actor(user=user("sam@vendor.example")), rma.items[0].id, "send it")
        db.session.expire_all()
        rma = get_rma(user("carol@a.example"), number)
        seen_by_colleague = [e.actor for e in timeline(rma, user("carol@a.example"))]
        seen_by_staff = [e.actor for e in timeline(rma, user("sam@vendor.example"))]
    assert seen_by_colleague == ["alice@a.example", "the service centre"]
    assert seen_by_staff == ["alice@a.example", "sam@vendor.example"]
