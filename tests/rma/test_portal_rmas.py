"""The customer portal's RMA pages (issue 3 points 2-4): the RMA form with live checks,
pasted and CSV lines and photos (R-R1), the RMA page with its label links and barcode
(R-R2, D-1), the list with search, filter and paging; customers never see another
customer's RMA or photo. The test clock says 2026-11-25 (China time)."""

from __future__ import annotations

import io
import re
from datetime import date
from html import unescape

import pytest
from PIL import Image
from sqlalchemy import func, select

from rma.extensions import db
from rma.models import AuditEvent, ItemStatus, OutboxMessage, Rma, RmaItem, RmaStatus, Unit, User
from tests.conftest import TEST_PASSWORD, count_queries

EN = {"Accept-Language": "en"}
ADDRESS_A = "上海市浦东新区世纪大道 100 号\n华东示范银行 信息科技部"


@pytest.fixture
def world(app, make_model, make_customer, make_user):
    """Customers A and B with their units, and one customer user each."""
    tk3 = make_model("TK3", 36, "ship")
    contract_a = make_customer("华东示范银行", "2025-06-15")
    contract_b = make_customer("Other Bank", "2025-06-15")
    a_id = make_user("a@example.com", "customer", contract_a)
    b_id = make_user("b@example.com", "customer", contract_b)
    with app.app_context():
        from rma.services.catalog import customer_by_contract

        customer_a = customer_by_contract(contract_a)
        customer_a.address = ADDRESS_A
        customer_b = customer_by_contract(contract_b)
        user_a = db.session.get(User, a_id)
        user_a.full_name, user_a.phone = "张伟", "+86 21 5555 0101"
        units = [
            Unit(serial="TK3-A0001", model_id=tk3, customer_id=customer_a.id,
                 shipped_on=date(2024, 2, 29)),  # R-W2: in warranty through 2027-02-28
            Unit(serial="TK3-OLD01", model_id=tk3, customer_id=customer_a.id,
                 shipped_on=date(2023, 5, 15)),  # through 2026-05-14: out of warranty
            Unit(serial="TK3-B0001", model_id=tk3, customer_id=customer_b.id,
                 shipped_on=date(2024, 2, 29)),
            Unit(serial="TK3-B0002", model_id=tk3, customer_id=customer_b.id,
                 shipped_on=date(2024, 2, 29)),
        ]
        units += [Unit(serial=f"TK3-A{n:04d}", model_id=tk3, customer_id=customer_a.id,
                       shipped_on=date(2025, 1, 1)) for n in range(2, 41)]
        db.session.add_all(units)
        db.session.commit()
        ids = {"a": customer_a.id, "b": customer_b.id}
    return {"contract_a": contract_a, "contract_b": contract_b, "user_a": a_id,
            "user_b": b_id, "customer_a": ids["a"], "customer_b": ids["b"]}


def _client(app, email: str):
    client = app.test_client()
    response = client.post("/login", data={"email": email, "password": TEST_PASSWORD})
    assert response.status_code == 302, response.data
    return client


@pytest.fixture
def client_a(app, world):
    return _client(app, "a@example.com")


@pytest.fixture
def client_b(app, world):
    return _client(app, "b@example.com")


def _form(*rows, **extra) -> dict:
    """A filled RMA form: rows of (serial, fault[, category])."""
    data = {"contact_name": "张伟", "contact_phone": "+86 21 5555 0101",
            "contact_email": "a@example.com", "ship_to": ADDRESS_A, "action": "submit"}
    for n, row in enumerate(rows):
        data[f"items-{n}-serial"] = row[0]
        data[f"items-{n}-fault_description"] = row[1]
        data[f"items-{n}-fault_category"] = row[2] if len(row) > 2 else ""
    data.update(extra)
    return data


def _open(app, user_id: int, customer_id: int, *serials: str) -> str:
    """An RMA opened through the service, as its customer user; returns its number."""
    from rma.services.audit import Actor
    from rma.services.rmas import ContactInput, ItemInput, open_rma

    with app.test_request_context(headers=EN):
        user = db.session.get(User, user_id)
        rma = open_rma(Actor(user=user), customer_id,
                       ContactInput("Contact", "+86 10 1234 5678", "c@example.com"),
                       "Somewhere 1", [ItemInput(s, "No display") for s in serials],
                       language="en")
        return rma.number


def _count(app, model) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


def _row_html(html: str, index: int) -> str:
    """The HTML of item row ``index`` of the RMA form."""
    start = html.index(f'id="item-{index}"')
    end = html.find('<fieldset class="item-row"', start + 1)
    end = html.index('id="add-row"', start) if end == -1 else end
    return html[start:end]


def _png(color=(200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 6), color).save(out, "PNG")
    return out.getvalue()


# -- access -----------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/portal/", "/portal/rmas", "/portal/rmas/new",
                                  "/portal/rmas/check-serial?serial=TK3-A0001",
                                  "/portal/rmas/RMA-2026-000001",
                                  "/portal/rmas/RMA-2026-000001/photos/1"])
def test_anonymous_is_sent_to_log_in(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")


def test_customer_lands_on_portal_home_after_log_in(client, world):
    response = client.post("/login", data={"email": "a@example.com", "password": TEST_PASSWORD})
    assert response.headers["Location"] == "/portal/"
    page = client.get("/portal/", headers=EN).get_data(as_text=True)
    assert world["contract_a"] in page
    for link in ('href="/portal/rmas/new"', 'href="/portal/rmas"', 'href="/warranty"'):
        assert link in page


# -- the form (R-R1) --------------------------------------------------------------------
def test_R_R1_form_is_prefilled_from_user_and_customer(client_a):
    page = client_a.get("/portal/rmas/new", headers=EN).get_data(as_text=True)
    assert 'value="张伟"' in page and 'value="+86 21 5555 0101"' in page
    assert 'value="a@example.com"' in page
    assert "上海市浦东新区世纪大道 100 号" in page
    for name in ("items-0-serial", "items-0-fault_description", "items-0-fault_category",
                 "items-0-photos"):
        assert f'name="{name}"' in page
    assert 'accept="image/jpeg,image/png"' in page and "multiple" in page
    assert 'name="contract_number"' not in page  # customers submit for themselves only
    assert "/static/js/portal.js" in page
    # Enter in a field submits with the first button, which only checks (never creates).
    assert page.index('value="check"') < page.index('value="submit"')


def test_R_R1_R_R2_D_1_submit_one_item_shows_rma_and_label_links(app, client_a, world):
    response = client_a.post("/portal/rmas/new", headers=EN, data=_form(
        (" tk3-a0001 ", "Display stays blank", "no_display")))
    assert response.status_code == 302
    assert response.headers["Location"] == "/portal/rmas/RMA-2026-000001?new=1"
    page = client_a.get(response.headers["Location"], headers=EN).get_data(as_text=True)
    assert "RMA RMA-2026-000001 submitted" in page
    assert '<h1 id="rma-number" class="rma-number">RMA-2026-000001</h1>' in page
    assert "<svg" in page  # the Code128 barcode of the number
    assert 'href="/rmas/RMA-2026-000001/label.pdf?size=a4"' in page
    assert 'href="/rmas/RMA-2026-000001/label.pdf?size=thermal"' in page
    assert "Download label (A4)" in page and "Thermal 100×150 mm" in page
    label = client_a.get("/rmas/RMA-2026-000001/label.pdf?size=thermal")
    assert label.status_code == 200 and label.data.startswith(b"%PDF")
    assert "TK3-A0001" in page and "Display stays blank" in page and "No display" in page
    assert "Submitted, awaiting support" in page
    assert "In warranty until 2027-02-28" in page
    assert "RMA submitted with 1 item by a@example.com." in page  # the timeline
    assert "2026-11-25 12:00" in page  # China time
    with app.app_context():
        rma = db.session.scalar(select(Rma))
        assert rma.number == "RMA-2026-000001" and rma.customer_id == world["customer_a"]
        assert [(i.serial, i.fault_category) for i in rma.items] == [("TK3-A0001",
                                                                       "no_display")]
        assert rma.contact_name == "张伟" and rma.language == "en"


def test_R_R1_D_8_each_problem_beside_its_line_and_nothing_created(app, client_a):
    data = _form(("ab#1", "Bad serial typed"),
                 ("TK3-B0001", "Foreign unit"),
                 ("TK3-A0002", "Good one", "buttons"),
                 ("tk3-a0002", "Same again"),
                 ("TK3-NOPE9", "Unknown unit"),
                 contact_email="not-an-address")
    response = client_a.post("/portal/rmas/new", headers=EN, data=data)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "The RMA was not submitted: 5 problems are marked below." in html
    rows = [unescape(_row_html(html, n)) for n in range(5)]
    assert "'ab#1' is not a valid serial number" in rows[0]  # shows what was read (D-8)
    assert 'value="ab#1"' in rows[0] and "Bad serial typed" in rows[0]
    assert "TK3-B0001 is not registered to your organisation" in rows[1]
    assert 'class="error"' not in rows[2]
    assert "In warranty until" in rows[2]  # coverage shown for the good line
    assert '<option selected value="buttons">' in rows[2]
    assert "TK3-A0002 is already on line 3 of this form" in rows[3]
    assert "TK3-NOPE9 is not known" in rows[4]
    for n in (0, 1, 3, 4):  # errors linked to their fields
        assert f'aria-describedby="items-{n}-serial-error"' in rows[n]
    assert 'aria-describedby="contact_email-error"' in html
    assert "is not a valid e-mail address" in unescape(html)
    assert _count(app, Rma) == 0 and _count(app, RmaItem) == 0
    assert _count(app, OutboxMessage) == 0
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "rma.submitted")) == 0


def test_R_R1_open_rma_line_is_refused(app, client_a, world):
    number = _open(app, world["user_a"], world["customer_a"], "TK3-A0005")
    response = client_a.post("/portal/rmas/new", headers=EN,
                             data=_form(("TK3-A0005", "Again")))
    row = unescape(_row_html(response.get_data(as_text=True), 0))
    assert f"TK3-A0005 is already in open RMA {number}" in row
    assert _count(app, Rma) == 1


def test_R_R1_add_row_without_javascript_keeps_typed_input(app, client_a):
    data = _form(("TK3-A0003", "Typed fault", "battery"), action="add_row")
    response = client_a.post("/portal/rmas/new", headers=EN, data=data)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    first = _row_html(html, 0)
    assert 'value="TK3-A0003"' in first and "Typed fault" in first
    assert '<option selected value="battery">' in first
    assert 'name="items-1-serial"' in html and 'name="items-2-serial"' not in html
    assert 'class="error"' not in html  # adding a row reports nothing yet
    assert _count(app, Rma) == 0


def test_R_R1_empty_form_asks_for_a_unit(app, client_a):
    response = client_a.post("/portal/rmas/new", headers=EN, data=_form())
    assert response.status_code == 200
    assert "Add at least one unit." in response.get_data(as_text=True)
    assert _count(app, Rma) == 0


def test_R_R1_bulk_paste_of_30_lines_creates_30_items(app, client_a):
    lines = "\n".join(f"tk3-a{n:04d}\tCodes out of sync {n}" for n in range(2, 32))
    response = client_a.post("/portal/rmas/new", headers=EN,
                             data=_form(bulk=lines + "\n\n"))
    assert response.status_code == 302, unescape(response.get_data(as_text=True))
    with app.app_context():
        rma = db.session.scalar(select(Rma))
        assert len(rma.items) == 30
        assert rma.items[0].serial == "TK3-A0002" and rma.items[-1].serial == "TK3-A0031"
        assert rma.items[-1].fault_description == "Codes out of sync 31"


def test_R_R1_bulk_paste_with_a_bad_line_creates_nothing_and_keeps_the_text(app, client_a):
    text = "TK3-A0002\tNo display\nTK3-A0003 no tab here\nTK3-A0004\tBattery"
    response = client_a.post("/portal/rmas/new", headers=EN, data=_form(bulk=text))
    assert response.status_code == 200
    html = unescape(response.get_data(as_text=True))
    assert "Line 2: put a tab between the serial number and the fault description" in html
    assert 'aria-describedby="bulk-error"' in html
    assert text in html  # nothing lost: the text is shown again to be fixed
    assert _count(app, Rma) == 0


def test_R_R1_bad_paste_and_bad_rows_are_all_reported_at_once(app, client_a):
    data = _form(("TK3-B0001", "Foreign"), bulk="TK3-A0002 without tab")
    html = unescape(client_a.post("/portal/rmas/new", headers=EN, data=data).get_data(
        as_text=True))
    assert "Line 1: put a tab" in html
    assert "TK3-B0001 is not registered to your organisation" in _row_html(html, 0)
    assert "The RMA was not submitted: 2 problems are marked below." in html
    assert _count(app, Rma) == 0


def test_R_R1_bulk_lines_are_checked_per_line_after_filling(app, client_a):
    text = "TK3-A0002\tNo display\nTK3-B0002\tNot ours"
    response = client_a.post("/portal/rmas/new", headers=EN, data=_form(bulk=text))
    html = unescape(response.get_data(as_text=True))
    assert response.status_code == 200
    assert 'value="TK3-A0002"' in _row_html(html, 0)
    assert "TK3-B0002 is not registered to your organisation" in _row_html(html, 1)
    assert '<textarea id="bulk" name="bulk"' in html and text not in html  # moved to rows
    assert _count(app, Rma) == 0


def test_R_R1_csv_with_bom_fills_rows_without_creating(app, client_a):
    content = ("serial,fault_description,fault_category\r\n"
               "TK3-A0003,按键失灵,buttons\r\n"
               "tk3-a0004,\"Screen blank, then nothing\",\r\n"
               "TK3-A0005,Empty,Battery flat\r\n").encode("utf-8-sig")
    data = _form(action="load")
    data["csv"] = (io.BytesIO(content), "returns.csv")
    response = client_a.post("/portal/rmas/new", headers=EN, data=data,
                             content_type="multipart/form-data")
    assert response.status_code == 200
    html = unescape(response.get_data(as_text=True))
    first, second = _row_html(html, 0), _row_html(html, 1)
    assert 'value="TK3-A0003"' in first and "按键失灵" in first
    assert '<option selected value="buttons">' in first
    assert 'value="tk3-a0004"' in second and "Screen blank, then nothing" in second
    assert "In warranty until" in second
    # A category named in words is shown as read, not silently dropped.
    assert '<option selected value="Battery flat">Battery flat</option>' in _row_html(html, 2)
    assert 'class="error"' not in html
    assert _count(app, Rma) == 0
    # The filled rows submit as they are.
    submit = _form(("TK3-A0003", "按键失灵", "buttons"),
                   ("tk3-a0004", "Screen blank, then nothing"),
                   ("TK3-A0005", "Empty", "Battery flat"))
    assert client_a.post("/portal/rmas/new", data=submit).status_code == 302
    with app.app_context():
        assert [i.fault_category for i in db.session.scalar(select(Rma)).items] == [
            "buttons", None, "battery"]


def test_R_R1_csv_problems_name_row_and_column(app, client_a):
    content = b"serial,fault_description\nTK3-A0003,\n"
    data = _form(("TK3-A0002", "Typed row"))
    data["csv"] = (io.BytesIO(content), "bad.csv")
    response = client_a.post("/portal/rmas/new", headers=EN, data=data,
                             content_type="multipart/form-data")
    html = unescape(response.get_data(as_text=True))
    assert "Row 2, column fault_description: the cell is empty." in html
    assert 'aria-describedby="csv-error"' in html
    assert 'value="TK3-A0002"' in _row_html(html, 0)  # the typed row is kept
    assert _count(app, Rma) == 0


# -- photos -----------------------------------------------------------------------------
def test_a_request_over_the_upload_limit_is_413_and_opens_nothing(app, world, client_a):
    """Issue 8 (uploads checked by size): a body over MAX_CONTENT_LENGTH (40 MB by
    default, 64 KiB here) is refused before the form is read: a clear 413 page, the
    API a problem document, and no RMA."""
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024
    data = _form(("TK3-A0001", "Cracked case", "physical_damage"))
    data["items-0-photos"] = [(io.BytesIO(b"\x89PNG" + bytes(100 * 1024)), "big.png")]
    response = client_a.post("/portal/rmas/new", data=data, headers=EN,
                             content_type="multipart/form-data")
    assert response.status_code == 413
    assert "text/html" in response.content_type and "<h1" in response.get_data(as_text=True)
    from rma.services.audit import Actor
    from rma.services.users import create_token

    with app.app_context():
        token = create_token(Actor.cli("test"), db.session.get(User, world["user_a"]), "t")
    api = app.test_client().post("/api/v1/rmas", data=b"{" + b" " * (100 * 1024) + b"}",
                                 content_type="application/json",
                                 headers={"Authorization": f"Bearer {token}"})
    assert api.status_code == 413
    assert api.content_type == "application/problem+json" and api.json["status"] == 413
    with app.app_context():
        assert db.session.scalar(select(func.count(Rma.id))) == 0


def test_R_R1_photo_is_stored_and_served_only_to_its_customer(app, client_a, client_b):
    png = _png()
    data = _form(("TK3-A0001", "Cracked case", "physical_damage"))
    data["items-0-photos"] = [(io.BytesIO(png), "case.png")]
    response = client_a.post("/portal/rmas/new", data=data, content_type="multipart/form-data")
    assert response.status_code == 302
    number = "RMA-2026-000001"
    with app.app_context():
        photo_id = db.session.scalar(select(RmaItem)).photos[0].id
    page = client_a.get(f"/portal/rmas/{number}", headers=EN).get_data(as_text=True)
    url = f"/portal/rmas/{number}/photos/{photo_id}"
    assert f'src="{url}"' in page
    served = client_a.get(url)
    assert served.status_code == 200 and served.mimetype == "image/png"
    assert served.data == png
    assert client_b.get(url).status_code == 404  # another customer
    # B's own RMA number with A's photo id: still 404.
    with app.app_context():
        b_id = db.session.scalar(select(User.id).where(User.email == "b@example.com"))
        b_customer = db.session.get(User, b_id).customer_id
    b_number = _open(app, b_id, b_customer, "TK3-B0001")
    assert client_b.get(f"/portal/rmas/{b_number}/photos/{photo_id}").status_code == 404
    assert client_a.get(f"/portal/rmas/{number}/photos/{photo_id + 99}").status_code == 404


def test_R_R1_a_fake_photo_is_refused_beside_its_field_and_must_be_chosen_again(app,
                                                                              client_a):
    data = _form(("TK3-A0001", "Cracked"), ("TK3-A0002", "Also cracked"))
    data["items-0-photos"] = [(io.BytesIO(b"<svg>not a png</svg>"), "evil.png")]
    data["items-1-photos"] = [(io.BytesIO(_png()), "fine.png")]
    response = client_a.post("/portal/rmas/new", headers=EN, data=data,
                             content_type="multipart/form-data")
    assert response.status_code == 200
    html = unescape(response.get_data(as_text=True))
    first, second = _row_html(html, 0), _row_html(html, 1)
    assert "evil.png is not a JPEG or PNG photo." in first
    assert 'aria-describedby="items-0-photos-error"' in first
    assert "please choose them again" in first and "please choose them again" in second
    assert 'value="TK3-A0001"' in first and "Cracked" in first
    assert _count(app, Rma) == 0


def test_R_R1_four_photos_are_too_many(app, client_a):
    data = _form(("TK3-A0001", "Cracked"))
    data["items-0-photos"] = [(io.BytesIO(_png()), f"p{n}.png") for n in range(4)]
    response = client_a.post("/portal/rmas/new", headers=EN, data=data,
                             content_type="multipart/form-data")
    assert "At most 3 photos per unit." in _row_html(response.get_data(as_text=True), 0)
    assert _count(app, Rma) == 0


# -- live serial check ------------------------------------------------------------------
@pytest.mark.parametrize("raw, expected", [
    (" tk3-a0001", {"serial": "TK3-A0001", "ok": True, "in_warranty": True,
                    "warranty_end": "2027-02-28", "model_code": "TK3"}),
    ("TK3-OLD01", {"serial": "TK3-OLD01", "ok": True, "in_warranty": False,
                   "warranty_end": "2026-05-14", "model_code": "TK3"}),
    ("TK3-B0001", {"serial": "TK3-B0001", "ok": False, "in_warranty": None,
                   "warranty_end": None, "model_code": None}),
    ("ab#1", {"serial": "ab#1", "ok": False, "in_warranty": None, "warranty_end": None,
              "model_code": None}),
])
def test_R_W2_D_8_check_serial_json(client_a, raw, expected):
    response = client_a.get("/portal/rmas/check-serial", query_string={"serial": raw},
                            headers=EN)
    assert response.status_code == 200
    body = response.get_json()
    assert {key: body[key] for key in expected} == expected
    if expected["ok"] and expected["in_warranty"]:
        assert body["message"].startswith("In warranty until 2027-02-28")
        assert body["problems"] == []
    elif expected["ok"]:
        assert body["message"].startswith("Out of warranty")
    elif raw == "TK3-B0001":
        assert body["problems"][0]["code"] == "foreign"
        assert body["message"] == "Serial TK3-B0001 is not registered to your organisation."
    else:
        assert body["problems"][0]["code"] == "malformed"
        assert "'ab#1'" in body["message"]  # what was read


def test_check_serial_without_serial_is_a_problem_document(client_a):
    response = client_a.get("/portal/rmas/check-serial?serial=%20")
    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"


# -- list -------------------------------------------------------------------------------
@pytest.fixture
def many(app, world):
    """23 RMAs of A (one serial each, TK3-A0002..A0024) and one of B."""
    numbers = [_open(app, world["user_a"], world["customer_a"], f"TK3-A{n:04d}")
               for n in range(2, 25)]
    b_number = _open(app, world["user_b"], world["customer_b"], "TK3-B0001")
    return numbers, b_number


def _listed(page: str) -> list[str]:
    return re.findall(r'<tr data-rma="([^"]+)">', page)


def test_list_newest_first_with_paging_and_never_another_customer(client_a, many):
    numbers, b_number = many
    first = client_a.get("/portal/rmas", headers=EN).get_data(as_text=True)
    assert _listed(first) == list(reversed(numbers))[:20]
    assert "23 RMAs" in first and "Page 1 of 2" in first
    second = client_a.get("/portal/rmas?page=2", headers=EN).get_data(as_text=True)
    assert _listed(second) == list(reversed(numbers))[20:]
    assert b_number not in first + second
    assert "Submitted, awaiting support × 1" in first
    assert "2026-11-25 12:00" in first


def test_list_search_by_number_and_by_serial(client_a, client_b, many):
    numbers, b_number = many
    page = client_a.get("/portal/rmas", query_string={"q": numbers[4].lower()}).get_data(
        as_text=True)
    assert _listed(page) == [numbers[4]]
    page = client_a.get("/portal/rmas", query_string={"q": " tk3-a0010 "}).get_data(
        as_text=True)
    assert _listed(page) == [numbers[8]]  # TK3-A0010 is the 9th RMA
    # B's RMA is not found by A, neither by its number nor by its serial.
    for q in (b_number, "TK3-B0001"):
        page = client_a.get("/portal/rmas", query_string={"q": q}, headers=EN).get_data(
            as_text=True)
        assert _listed(page) == [] and "No RMA matches this search." in page
    assert _listed(client_b.get("/portal/rmas").get_data(as_text=True)) == [b_number]


def test_list_status_filter(app, client_a, many):
    numbers, _b = many
    with app.app_context():
        rma = db.session.scalar(select(Rma).where(Rma.number == numbers[0]))
        rma.status = RmaStatus.CANCELLED
        rma.items[0].status = ItemStatus.CANCELLED
        other = db.session.scalar(select(Rma).where(Rma.number == numbers[1]))
        other.items[0].status = ItemStatus.WAITING_PAYMENT
        db.session.commit()
    page = client_a.get("/portal/rmas?status=cancelled").get_data(as_text=True)
    assert _listed(page) == [numbers[0]]
    page = client_a.get("/portal/rmas?status=waiting_payment", headers=EN).get_data(
        as_text=True)
    assert _listed(page) == [numbers[1]] and "Waiting for payment" in page
    assert '<option selected value="waiting_payment">Waiting for payment</option>' in page
    assert len(_listed(client_a.get("/portal/rmas?status=bogus").get_data(as_text=True))) == 20


def test_list_empty_state_explains_how_to_submit(client_a):
    page = client_a.get("/portal/rmas", headers=EN).get_data(as_text=True)
    assert "You have no RMAs yet." in page and 'href="/portal/rmas/new"' in page


def test_list_query_count_does_not_grow_with_rmas(app, client_a, world):
    def queries() -> int:
        with count_queries(app) as statements:
            assert client_a.get("/portal/rmas").status_code == 200
        return len(statements)

    for n in range(2, 5):
        _open(app, world["user_a"], world["customer_a"], f"TK3-A{n:04d}", f"TK3-A{n + 20:04d}")
    few = queries()
    for n in range(5, 15):
        _open(app, world["user_a"], world["customer_a"], f"TK3-A{n:04d}")
    assert queries() == few


# -- one RMA ----------------------------------------------------------------------------
def test_another_customers_rma_is_404_like_an_unknown_one(app, client_a, world):
    b_number = _open(app, world["user_b"], world["customer_b"], "TK3-B0001")
    foreign = client_a.get(f"/portal/rmas/{b_number}", headers=EN)
    unknown = client_a.get("/portal/rmas/RMA-2026-999999", headers=EN)
    assert foreign.status_code == unknown.status_code == 404

    def page(response, number: str) -> str:
        # The CSRF token is signed with a timestamp: two requests a second apart differ.
        text = re.sub(r'name="csrf_token" value="[^"]*"', "", response.get_data(as_text=True))
        return text.replace(number, "X")

    assert page(foreign, b_number) == page(unknown, "RMA-2026-999999")
    assert "TK3-B0001" not in foreign.get_data(as_text=True)


def test_rma_page_shows_decision_and_due_time_once_set(app, client_a, world):
    from datetime import UTC, datetime

    number = _open(app, world["user_a"], world["customer_a"], "TK3-OLD01")
    page = client_a.get(f"/portal/rmas/{number}", headers=EN).get_data(as_text=True)
    assert "Out of warranty (the last covered day was 2026-05-14)" in page
    assert "Not decided yet" in page
    with app.app_context():
        item = db.session.scalar(select(RmaItem))
        item.decision = "paid"
        item.status = ItemStatus.WAITING_PAYMENT
        item.due_at = datetime(2026, 11, 28, 4, 0, tzinfo=UTC)
        db.session.commit()
    page = client_a.get(f"/portal/rmas/{number}", headers=EN).get_data(as_text=True)
    assert "Paid replacement" in page and "Waiting for payment" in page
    assert "Replacement due by 2026-11-28 12:00 (China time)" in page


def test_rma_page_query_count_does_not_grow_with_items(app, client_a, world):
    def queries(number: str) -> int:
        with count_queries(app) as statements:
            assert client_a.get(f"/portal/rmas/{number}").status_code == 200
        return len(statements)

    small = _open(app, world["user_a"], world["customer_a"], "TK3-A0002")
    large = _open(app, world["user_a"], world["customer_a"],
                  *[f"TK3-A{n:04d}" for n in range(3, 15)])
    assert queries(large) == queries(small)


# -- staff ------------------------------------------------------------------------------
def test_staff_see_every_rma_and_submit_on_a_customers_behalf(app, world, make_user):
    a_number = _open(app, world["user_a"], world["customer_a"], "TK3-A0002")
    b_number = _open(app, world["user_b"], world["customer_b"], "TK3-B0001")
    make_user("support@example.com", "support")
    staff = _client(app, "support@example.com")
    listed = _listed(staff.get("/portal/rmas").get_data(as_text=True))
    assert set(listed) == {a_number, b_number}
    assert staff.get(f"/portal/rmas/{b_number}").status_code == 200
    form = staff.get("/portal/rmas/new", headers=EN).get_data(as_text=True)
    assert 'name="contract_number"' in form
    missing = staff.post("/portal/rmas/new", headers=EN, data=_form(("TK3-A0003", "Dead")))
    assert "Enter the customer&#39;s contract number." in missing.get_data(as_text=True)
    done = staff.post("/portal/rmas/new", data=_form(
        ("TK3-A0003", "Dead"), contract_number=world["contract_a"].lower()))
    assert done.status_code == 302
    with app.app_context():
        rma = db.session.scalar(select(Rma).order_by(Rma.id.desc()))
        assert rma.customer_id == world["customer_a"]
        assert rma.submitted_by.email == "support@example.com"
    answer = staff.get("/portal/rmas/check-serial", query_string={
        "serial": "TK3-B0002", "contract": world["contract_b"]}).get_json()
    assert answer["ok"] is True


# -- CSRF -------------------------------------------------------------------------------
@pytest.mark.parametrize("app_config", [{"WTF_CSRF_ENABLED": True}])
def test_form_refuses_a_post_without_csrf_token(app, world, app_config):
    client = app.test_client()
    with client.session_transaction() as session:
        session["_user_id"] = str(world["user_a"])
        session["_fresh"] = True
    refused = client.post("/portal/rmas/new", data=_form(("TK3-A0001", "Dead")))
    assert refused.status_code == 400
    assert _count(app, Rma) == 0
    page = client.get("/portal/rmas/new").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    accepted = client.post("/portal/rmas/new",
                           data=_form(("TK3-A0001", "Dead"), csrf_token=token))
    assert accepted.status_code == 302
    assert _count(app, Rma) == 1


def test_a_nul_character_in_a_form_or_query_is_a_400_never_a_500(app, client_a):
    """Issue 8 (hostile input): PostgreSQL refuses U+0000 in text, so the pages refuse it
    first, with a message, and open nothing (the API's own checks: test_api_fuzz.py)."""
    data = _form(("TK3-A0001", "Cracked\x00case", "physical_damage"))
    response = client_a.post("/portal/rmas/new", data=data, headers=EN)
    assert response.status_code == 400
    assert "NUL character" in response.get_data(as_text=True)
    assert client_a.get("/portal/rmas?q=RMA%00", headers=EN).status_code == 400
    assert client_a.get("/warranty?serial=TK3%00A0001", headers=EN).status_code == 400
    with app.app_context():
        assert db.session.scalar(select(func.count(Rma.id))) == 0
    assert client_a.get("/portal/rmas?q=RMA", headers=EN).status_code == 200
