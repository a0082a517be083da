"""The staff warehouse pages (issue 4 points 2-7): triage, the scan station, inspection
with a manager's override, finance's release, shipping with the packing slip, delivery
and the replacements dashboard with the 72-hour clock (R-R3, R-R4, R-W3..R-W5, D-1..D-4,
D-6). Each page checks roles on the server; each action's refusal is shown on the page
(never a 500) and leaves the database as it was.

The test clock says 2026-11-25 04:00 UTC, 12:00 China time; a clock started then is due
2026-11-28 12:00 China time.
"""

from __future__ import annotations

import io
import re
from datetime import date
from html import unescape

import pytest
from PIL import Image
from sqlalchemy import func, select

from rma.extensions import db
from rma.models import (
    AuditEvent,
    ItemStatus,
    RmaItem,
    ScanEvent,
    Shipment,
    Unit,
    UnitStatus,
    User,
)
from tests.conftest import TEST_PASSWORD, count_queries

EN = {"Accept-Language": "en"}
EARLIER = "2026-11-20T04:00:00+00:00"  # five days before the test clock
ROLES = ("support", "warehouse", "finance", "manager", "admin")


# -- data -------------------------------------------------------------------------------
@pytest.fixture
def world(app, make_model, make_customer, make_user):
    """Customer A with units in and out of warranty, spares in stock, a customer user
    and one staff user per role."""
    tk3 = make_model("TK3", 36, "ship")
    other = make_model("SRV", 12, "ship", kind="appliance")
    contract = make_customer("华东示范银行", "2025-06-15")
    contract_b = make_customer("Other Bank", "2025-06-15")
    customer_user = make_user("a@example.com", "customer", contract)
    staff = {role: make_user(f"{role}@example.com", role) for role in ROLES}
    with app.app_context():
        from rma.services.catalog import customer_by_contract

        customer = customer_by_contract(contract)
        customer_b = customer_by_contract(contract_b)
        units = [Unit(serial=f"TK3-A{n:04d}", model_id=tk3, customer_id=customer.id,
                      shipped_on=date(2025, 1, 1)) for n in range(1, 30)]
        units += [
            Unit(serial="TK3-OLD01", model_id=tk3, customer_id=customer.id,
                 shipped_on=date(2022, 5, 15)),  # out of warranty (R-W5)
            Unit(serial="TK3-B0001", model_id=tk3, customer_id=customer_b.id,
                 shipped_on=date(2025, 1, 1)),
            Unit(serial="SRV-A0001", model_id=other, customer_id=customer.id,
                 shipped_on=date(2026, 6, 1)),
        ]
        units += [Unit(serial=f"TK3-SPARE{n}", model_id=tk3, customer_id=None,
                       status=UnitStatus.IN_STOCK, shipped_on=None) for n in range(1, 6)]
        units.append(Unit(serial="SRV-SPARE1", model_id=other, customer_id=None,
                          status=UnitStatus.IN_STOCK))
        db.session.add_all(units)
        db.session.commit()
        ids = {"customer": customer.id, "customer_b": customer_b.id}
    return {"contract": contract, "customer_user": customer_user, "staff": staff, **ids}


def _client(app, role: str):
    client = app.test_client()
    email = "a@example.com" if role == "customer" else f"{role}@example.com"
    response = client.post("/login", data={"email": email, "password": TEST_PASSWORD})
    assert response.status_code == 302, response.data
    return client


@pytest.fixture
def as_role(app, world):
    clients = {}

    def _get(role: str):
        if role not in clients:
            clients[role] = _client(app, role)
        return clients[role]

    return _get


def _open(app, world, *serials: str, photos: bool = False) -> str:
    """An RMA submitted by customer A's user; returns its number."""
    from rma.services.audit import Actor
    from rma.services.rmas import ContactInput, ItemInput, PhotoInput, open_rma

    pictures = (PhotoInput("fault.png", _png()),) if photos else ()
    with app.test_request_context(headers=EN):
        user = db.session.get(User, world["customer_user"])
        rma = open_rma(Actor(user=user), world["customer"],
                       ContactInput("张伟", "+86 21 5555 0101", "a@example.com"),
                       "上海市浦东新区世纪大道 100 号",
                       [ItemInput(s, f"{s}: no display", photos=pictures) for s in serials],
                       language="en")
        return rma.number


def _item(app, serial: str) -> RmaItem:
    """The newest RMA item of ``serial`` (detached, its columns loaded)."""
    with app.app_context():
        item = db.session.scalar(select(RmaItem).where(RmaItem.serial == serial)
                                 .order_by(RmaItem.id.desc()))
        db.session.expunge(item)
        return item


def _staff_do(app, world, role: str, call, **kwargs):
    """Run a warehouse service as a staff user (to prepare a state)."""
    from rma.services import warehouse as wh
    from rma.services.audit import Actor

    with app.test_request_context(headers=EN):
        user = db.session.get(User, world["staff"][role])
        return getattr(wh, call)(Actor(user=user), **kwargs)


def _png(color=(200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 6), color).save(out, "PNG")
    return out.getvalue()


def _count(app, model, *where) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model).where(*where))


def _text(response) -> str:
    return unescape(response.get_data(as_text=True))


def _confirmed(app, world, serial: str, cause: str = "quality_defect") -> RmaItem:
    _open(app, world, serial)
    item = _item(app, serial)
    _staff_do(app, world, "support", "confirm_remote", item_id=item.id, cause=cause)
    return _item(app, serial)


def _received(app, world, serial: str) -> RmaItem:
    number = _open(app, world, serial)
    item = _item(app, serial)
    _staff_do(app, world, "support", "request_unit", item_id=item.id)
    _staff_do(app, world, "warehouse", "receive", rma_number=number, serial=serial)
    return _item(app, serial)


def _shipped(app, world, serial: str, spare: str) -> RmaItem:
    item = _confirmed(app, world, serial)
    _staff_do(app, world, "warehouse", "ship", item_id=item.id, replacement_serial=spare,
              carrier="SF Express", tracking_number=f"SF{item.id:08d}")
    return _item(app, serial)


# -- roles ------------------------------------------------------------------------------
PAGES = {
    # page: roles that may open it (others: 403; anonymous: the log-in page)
    "/staff/wh/triage": {"support", "manager", "admin"},
    "/staff/wh/scan": {"warehouse", "manager", "admin"},
    "/staff/wh/replacements": {"support", "warehouse", "finance", "manager", "admin"},
}


@pytest.mark.parametrize("path", sorted(PAGES))
def test_pages_check_roles_on_the_server(app, world, as_role, path):
    anonymous = app.test_client().get(path)
    assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]
    assert as_role("customer").get(path, headers=EN).status_code == 403
    for role in ROLES:
        expected = 200 if role in PAGES[path] else 403
        assert as_role(role).get(path, headers=EN).status_code == expected, (role, path)


def test_item_pages_check_roles(app, world, as_role):
    """Inspection: support + warehouse; ship: warehouse; deliver: warehouse + support;
    override: manager; release on credit: finance (managers and admins may do all)."""
    received = _received(app, world, "TK3-A0001")
    shipped = _shipped(app, world, "TK3-A0002", "TK3-SPARE1")
    cases = [
        (f"/staff/wh/items/{received.id}/inspect", {"support", "warehouse", "manager", "admin"}),
        (f"/staff/wh/items/{received.id}/ship", {"warehouse", "manager", "admin"}),
        (f"/staff/wh/items/{shipped.id}/deliver", {"warehouse", "support", "manager", "admin"}),
        (f"/staff/wh/items/{received.id}", set(ROLES)),
        (f"/staff/wh/items/{shipped.id}/packing-slip.pdf",
         {"warehouse", "support", "manager", "admin"}),
    ]
    for path, allowed in cases:
        assert as_role("customer").get(path).status_code == 403, path
        for role in ROLES:
            expected = 200 if role in allowed else 403
            assert as_role(role).get(path, headers=EN).status_code == expected, (role, path)
    posts = [  # D-6: managers only override; D-3: finance only releases on credit
        (f"/staff/wh/items/{received.id}/override", {"manager"}),
        (f"/staff/wh/items/{received.id}/release", {"finance"}),
        (f"/staff/wh/items/{received.id}/confirm-remote", {"support", "manager", "admin"}),
        (f"/staff/wh/items/{received.id}/reject", {"support", "manager", "admin"}),
    ]
    for path, allowed in posts:
        for role in set(ROLES) - allowed:
            assert as_role(role).post(path, data={}).status_code == 403, (role, path)
    assert _item(app, "TK3-A0001").status == ItemStatus.RECEIVED


def test_the_warehouse_home_sends_each_role_to_its_page(app, world, as_role):
    starts = {"support": "/staff/wh/triage", "warehouse": "/staff/wh/scan",
              "finance": "/staff/wh/replacements", "manager": "/staff/wh/replacements"}
    for role, path in starts.items():
        response = as_role(role).get("/staff/wh/")
        assert response.status_code == 302 and response.headers["Location"] == path, role
    assert as_role("customer").get("/staff/wh/").status_code == 403


def test_staff_nav_links_follow_the_role(app, world, as_role):
    home = {role: _text(as_role(role).get("/portal/rmas", headers=EN)) for role in ROLES}
    assert 'id="nav-triage"' in home["support"] and 'id="nav-scan"' not in home["support"]
    assert 'id="nav-scan"' in home["warehouse"] and 'id="nav-triage"' not in home["warehouse"]
    assert 'id="nav-triage"' not in home["finance"] and 'id="nav-scan"' not in home["finance"]
    assert all('id="nav-replacements"' in html for html in home.values())
    assert 'id="nav-triage"' in home["manager"] and 'id="nav-scan"' in home["manager"]
    customer = _text(as_role("customer").get("/portal/rmas", headers=EN))
    assert "nav-replacements" not in customer


# -- triage -----------------------------------------------------------------------------
def test_triage_lists_new_rmas_oldest_first_with_coverage_photos_and_history(
        app, world, as_role):
    # The unit's history: an earlier RMA of TK3-A0003 (rejected), and TK3-A0004 is the
    # replacement of TK3-OLD01.
    _open(app, world, "TK3-A0003")
    _staff_do(app, world, "support", "reject_item", item_id=_item(app, "TK3-A0003").id,
              reason="Duplicate report")
    with app.app_context():
        old = db.session.scalar(select(Unit).where(Unit.serial == "TK3-OLD01"))
        new = db.session.scalar(select(Unit).where(Unit.serial == "TK3-A0004"))
        new.replaces_id = old.id
        db.session.commit()
    first = _open(app, world, "TK3-A0003", "TK3-OLD01", photos=True)
    second = _open(app, world, "TK3-A0004")
    html = _text(as_role("support").get("/staff/wh/triage", headers=EN))
    assert html.index(f'id="rma-{first}"') < html.index(f'id="rma-{second}"')
    item = _item(app, "TK3-A0003")
    block = html[html.index(f'id="triage-item-{item.id}"'):]
    block = block[:block.index("</article>")]
    assert "TK3-A0003: no display" in block
    assert "In warranty until 2027-12-31" in block  # coverage at submit (R-W3)
    assert "/photos/" in block  # the customer's photo
    assert "Rejected" in block  # the earlier, rejected RMA of this unit
    old_item = _item(app, "TK3-OLD01")
    old_block = html[html.index(f'id="triage-item-{old_item.id}"'):]
    assert "Out of warranty" in old_block[:old_block.index("</article>")]
    replaced = _item(app, "TK3-A0004")
    chain = html[html.index(f'id="history-{replaced.id}"'):]
    chain = chain[:chain.index("</dd>")]
    assert chain.index("TK3-OLD01") < chain.index("TK3-A0004")  # original → replacement
    # Causes are offered with their translated words (D-4).
    assert "Quality defect (free in warranty, R-W3)" in html


def test_triage_queue_runs_a_constant_number_of_queries(app, world, as_role):
    client = as_role("support")

    def queries() -> int:
        with count_queries(app) as statements:
            assert client.get("/staff/wh/triage", headers=EN).status_code == 200
        return len(statements)

    _open(app, world, "TK3-A0001", "TK3-A0002", photos=True)
    few = queries()
    for n in range(3, 13, 2):  # more RMAs, items, photos and earlier RMAs of the units
        _open(app, world, f"TK3-A{n:04d}", f"TK3-A{n + 1:04d}", photos=True)
        _staff_do(app, world, "support", "reject_item",
                  item_id=_item(app, f"TK3-A{n:04d}").id, reason="Duplicate")
        _open(app, world, f"TK3-A{n:04d}")
    assert queries() == few


def test_confirm_remotely_shows_decision_rule_and_due_time_R_R3(app, world, as_role):
    _open(app, world, "TK3-A0001")
    item = _item(app, "TK3-A0001")
    client = as_role("support")
    response = client.post(f"/staff/wh/items/{item.id}/confirm-remote",
                           data={f"confirm-{item.id}-cause": "quality_defect",
                                 f"confirm-{item.id}-notes": "Display dead on the phone"},
                           headers=EN, follow_redirects=True)
    assert response.status_code == 200
    html = _text(response)
    assert "Free replacement" in html and "R-W3" in html
    assert "2026-11-28 12:00" in html  # 72 h after confirmation, China time (R-R3)
    after = _item(app, "TK3-A0001")
    assert after.status == ItemStatus.CONFIRMED and after.remote_confirmation
    # The item left the queue; its page shows the running clock in words.
    page = _text(client.get(f"/staff/wh/items/{item.id}", headers=EN))
    assert 'data-clock="on_track"' in page and "On track" in page


def test_confirm_remotely_paid_for_misuse_waits_for_payment_R_W4(app, world, as_role):
    _open(app, world, "TK3-A0001")
    item = _item(app, "TK3-A0001")
    response = as_role("manager").post(
        f"/staff/wh/items/{item.id}/confirm-remote",
        data={f"confirm-{item.id}-cause": "misuse_water"}, headers=EN, follow_redirects=True)
    assert "Paid replacement" in _text(response) and "R-W4" in _text(response)
    assert _item(app, "TK3-A0001").status == ItemStatus.WAITING_PAYMENT


def test_triage_refusals_are_shown_inline_and_change_nothing(app, world, as_role):
    _open(app, world, "TK3-A0001", "TK3-A0002")
    item = _item(app, "TK3-A0001")
    client = as_role("support")
    audits = _count(app, AuditEvent)
    # No cause: beside the field.
    response = client.post(f"/staff/wh/items/{item.id}/confirm-remote",
                           data={f"confirm-{item.id}-cause": ""}, headers=EN)
    assert response.status_code == 422
    assert f'id="confirm-{item.id}-cause-error"' in _text(response)
    # A reason is required to reject.
    response = client.post(f"/staff/wh/items/{item.id}/reject",
                           data={f"reject-{item.id}-reason": "  "}, headers=EN)
    assert response.status_code == 422  # the form again, refused
    assert f'id="reject-{item.id}-reason-error"' in _text(response)
    assert _item(app, "TK3-A0001").status == ItemStatus.SUBMITTED
    assert _count(app, AuditEvent) == audits
    # A transition the item no longer allows: a 409 naming its state, never a 500.
    _staff_do(app, world, "support", "reject_item", item_id=item.id, reason="Not ours")
    response = client.post(f"/staff/wh/items/{item.id}/confirm-remote",
                           data={f"confirm-{item.id}-cause": "quality_defect"}, headers=EN)
    assert response.status_code == 409
    html = _text(response)
    assert 'id="action-error"' in html and "rejected" in html.lower()
    assert _item(app, "TK3-A0001").status == ItemStatus.REJECTED


def test_ask_for_the_unit_and_reject_with_a_reason(app, world, as_role):
    _open(app, world, "TK3-A0001", "TK3-A0002")
    first, second = _item(app, "TK3-A0001"), _item(app, "TK3-A0002")
    client = as_role("support")
    response = client.post(f"/staff/wh/items/{first.id}/request-unit",
                           data={f"unit-{first.id}-notes": "Please send it"}, headers=EN)
    assert response.status_code == 302
    assert _item(app, "TK3-A0001").status == ItemStatus.AWAITING_UNIT
    response = client.post(f"/staff/wh/items/{second.id}/reject",
                           data={f"reject-{second.id}-reason": "Not a fault of the token"},
                           headers=EN)
    assert response.status_code == 302
    rejected = _item(app, "TK3-A0002")
    assert rejected.status == ItemStatus.REJECTED
    assert rejected.rejected_reason == "Not a fault of the token"
    # The awaited item stays in the queue, without "ask for the unit" any more.
    html = _text(client.get("/staff/wh/triage", headers=EN))
    assert f'id="confirm-form-{first.id}"' in html and f'id="unit-form-{first.id}"' not in html


# -- scan station -----------------------------------------------------------------------
def _scan(client, code: str, rma: str = ""):
    return client.post("/staff/wh/scan" + (f"?rma={rma}" if rma else ""),
                       data={"code": code, "rma": rma}, headers=EN)


def _banner(html: str) -> str:
    start = html.index('<div class="scan-banner')
    return html[start:html.index("</div>", start)]


def test_scan_station_page_is_built_for_a_scanner(app, world, as_role):
    html = _text(as_role("warehouse").get("/staff/wh/scan", headers=EN))
    field = re.search(r"<input[^>]*data-scan-input[^>]*>", html).group(0)
    assert "autofocus" in field and 'autocomplete="off"' in field
    assert "js/scan.js" in html and "<script>" not in html  # CSP: no inline script


def test_scan_outcomes_opened_received_unexpected_again_and_found(app, world, as_role):
    number = _open(app, world, "TK3-A0001", "TK3-A0002")
    client = as_role("warehouse")
    # The RMA label opens the receiving view.
    response = _scan(client, number)
    html = _text(response)
    assert response.status_code == 200
    assert 'data-outcome="opened_rma"' in html
    assert f'id="scan-rma-number" data-rma="{number}"' in html
    field = re.search(r'<input[^>]*id="scan-rma-field"[^>]*>', html).group(0)
    assert f'value="{number}"' in field  # held for the next scan
    # A serial on it is checked off.
    html = _text(_scan(client, "tk3-a0001", number))  # typed in lower case (D-8)
    assert 'data-outcome="received"' in html
    assert re.search(r'data-serial="TK3-A0001" data-received="yes"', html)
    assert re.search(r'data-serial="TK3-A0002" data-received="no"', html)
    received_at = _item(app, "TK3-A0001").unit_received_at
    assert received_at is not None
    # A unit not on this RMA: a loud, recorded warning; nothing received.
    html = _text(_scan(client, "TK3-A0009", number))
    banner = _banner(html)
    assert 'data-outcome="unexpected"' in banner and 'role="alert"' in banner
    assert "scan-alarm" in banner and 'data-sound="alarm"' in banner
    assert _count(app, ScanEvent, ScanEvent.outcome == "unexpected",
                  ScanEvent.serial == "TK3-A0009") == 1
    assert 'id="scan-unexpected"' in html and "TK3-A0009" in html
    assert _count(app, RmaItem, RmaItem.serial == "TK3-A0009") == 0  # not added to the RMA
    # A second scan says when and by whom, and changes nothing.
    html = _text(_scan(client, "TK3-A0001", number))
    banner = _banner(html)
    assert 'data-outcome="already_received"' in banner and "scan-warn" in banner
    assert "12:00" in banner and "warehouse@example.com" in banner
    assert _item(app, "TK3-A0001").unit_received_at == received_at
    # A serial with no RMA at hand finds its open RMA and opens it.
    other = _open(app, world, "TK3-A0005")
    html = _text(_scan(client, "TK3-A0005"))
    assert 'data-outcome="found_rma"' in html
    assert f'data-rma="{other}"' in html
    # Every scan was recorded, and the log shows the last ones, newest first.
    assert _count(app, ScanEvent) == 5
    log = html[html.index('id="scan-log"'):]
    assert log.index("TK3-A0005") < log.index("TK3-A0009")


def test_scan_of_an_unknown_code_is_a_loud_warning(app, world, as_role):
    html = _text(_scan(as_role("warehouse"), "NOPE-0000"))
    banner = _banner(html)
    assert "scan-alarm" in banner and 'role="alert"' in banner
    html = _text(_scan(as_role("warehouse"), "bad#code"))
    assert "scan-alarm" in _banner(html)


def test_scan_holds_the_rma_in_the_url(app, world, as_role):
    number = _open(app, world, "TK3-A0001")
    html = _text(as_role("warehouse").get(f"/staff/wh/scan?rma={number}", headers=EN))
    assert f'data-rma="{number}"' in html and 'data-received="no"' in html
    assert f"/staff/wh/scan?rma={number}" in html  # the form posts back to the same RMA
    # An unknown RMA in the URL: said on the page, nothing recorded.
    response = _scan(as_role("warehouse"), "TK3-A0001", "RMA-2026-999999")
    assert response.status_code == 200
    assert "There is no RMA RMA-2026-999999" in _banner(_text(response))
    assert _count(app, ScanEvent) == 0


# -- inspection and override (D-4, D-6) -------------------------------------------------
def test_inspection_computes_the_decision_and_a_manager_overrides_it(app, world, as_role):
    item = _received(app, world, "TK3-A0001")
    client = as_role("warehouse")
    page = _text(client.get(f"/staff/wh/items/{item.id}/inspect", headers=EN))
    assert 'id="override-form"' not in page  # only a manager overrides
    response = client.post(f"/staff/wh/items/{item.id}/inspect",
                           data={"cause": "misuse_drop", "notes": "Cracked case",
                                 "photos": [(io.BytesIO(_png()), "crack.png")]},
                           content_type="multipart/form-data", headers=EN,
                           follow_redirects=True)
    html = _text(response)
    assert "Paid replacement" in html and "R-W4" in html
    inspected = _item(app, "TK3-A0001")
    assert inspected.status == ItemStatus.WAITING_PAYMENT and inspected.cause == "misuse_drop"
    manager = as_role("manager")
    page = _text(manager.get(f"/staff/wh/items/{item.id}/inspect", headers=EN))
    assert 'id="override-form"' in page
    # No reason: refused beside the field, nothing changed (D-6).
    response = manager.post(f"/staff/wh/items/{item.id}/override",
                            data={"outcome": "free", "reason": ""}, headers=EN)
    assert response.status_code == 422 and 'id="reason-error"' in _text(response)
    assert _item(app, "TK3-A0001").decision == "paid"
    response = manager.post(f"/staff/wh/items/{item.id}/override",
                            data={"outcome": "free", "reason": "Goodwill for a key account"},
                            headers=EN, follow_redirects=True)
    html = _text(response)
    assert "Free replacement" in html and "Goodwill for a key account" in html
    after = _item(app, "TK3-A0001")
    assert after.decision == "free" and after.computed_decision == "paid"
    assert after.override_reason == "Goodwill for a key account"
    assert after.status == ItemStatus.CONFIRMED and after.due_at is not None


def test_inspection_of_an_item_not_received_is_refused_inline(app, world, as_role):
    _open(app, world, "TK3-A0001")
    item = _item(app, "TK3-A0001")
    response = as_role("support").post(f"/staff/wh/items/{item.id}/inspect",
                                       data={"cause": "quality_defect"}, headers=EN)
    assert response.status_code == 409
    html = _text(response)
    assert 'id="action-error"' in html and "cannot record an inspection" in html
    assert _item(app, "TK3-A0001").status == ItemStatus.SUBMITTED


# -- finance release on credit (D-3) ----------------------------------------------------
def test_D_3_finance_releases_a_paid_item_on_credit_from_its_page(app, world, as_role):
    item = _confirmed(app, world, "TK3-A0001", cause="misuse_heat")
    assert item.status == ItemStatus.WAITING_PAYMENT
    finance = as_role("finance")
    page = _text(finance.get(f"/staff/wh/items/{item.id}", headers=EN))
    assert 'id="release-form"' in page
    assert 'id="release-form"' not in _text(as_role("warehouse").get(
        f"/staff/wh/items/{item.id}", headers=EN))
    # A reason is required (beside the field); without credit terms: 409, nothing changes.
    response = finance.post(f"/staff/wh/items/{item.id}/release", data={"reason": ""},
                            headers=EN)
    assert response.status_code == 422 and "This field is required." in _text(response)
    response = finance.post(f"/staff/wh/items/{item.id}/release",
                            data={"reason": "Trusted customer"}, headers=EN)
    assert response.status_code == 409
    assert "no credit terms: the item ships once its invoice is paid (D-3)." in _text(response)
    assert _item(app, "TK3-A0001").status == ItemStatus.WAITING_PAYMENT
    with app.app_context():
        db.session.get(RmaItem, item.id).rma.customer.credit_terms = True
        db.session.commit()
    response = finance.post(f"/staff/wh/items/{item.id}/release",
                            data={"reason": "Credit terms, invoice to follow"}, headers=EN,
                            follow_redirects=True)
    assert response.status_code == 200
    released = _item(app, "TK3-A0001")
    assert released.status == ItemStatus.RELEASED and released.due_at is not None
    assert "2026-11-28 12:00" in _text(response)  # D-3: the clock starts on release
    # A second release: refused on the page, a 409 naming the state.
    response = finance.post(f"/staff/wh/items/{item.id}/release", data={"reason": "again"},
                            headers=EN)
    assert response.status_code == 409 and 'role="alert"' in _text(response)


# -- shipping ---------------------------------------------------------------------------
def test_ship_a_scanned_spare_and_print_the_packing_slip(app, world, as_role):
    item = _confirmed(app, world, "TK3-A0001")
    client = as_role("warehouse")
    assert client.get(f"/staff/wh/items/{item.id}/packing-slip.pdf").status_code == 404
    page = _text(client.get(f"/staff/wh/items/{item.id}/ship", headers=EN))
    serial_field = re.search(r'<input[^>]*id="replacement_serial"[^>]*>', page).group(0)
    assert "autofocus" in serial_field and 'data-enter-next="carrier"' in serial_field
    response = client.post(f"/staff/wh/items/{item.id}/ship",
                           data={"replacement_serial": "tk3-spare1", "carrier": "SF Express",
                                 "tracking_number": "SF1234567890"},
                           headers=EN, follow_redirects=True)
    html = _text(response)
    assert 'id="packing-slip"' in html and "SF1234567890" in html
    assert _item(app, "TK3-A0001").status == ItemStatus.SHIPPED
    pdf = client.get(f"/staff/wh/items/{item.id}/packing-slip.pdf")
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
    assert pdf.data.startswith(b"%PDF")


def test_ship_refusals_are_shown_next_to_the_field(app, world, as_role):
    item = _confirmed(app, world, "TK3-A0001")
    _shipped(app, world, "TK3-A0002", "TK3-SPARE1")
    client = as_role("warehouse")
    shipments = _count(app, Shipment)
    refusals = {"TK3-SPARE1": (409, "was just shipped for RMA-"),  # taken by another item
                "SRV-SPARE1": (422, "this item needs TK3"),  # wrong model
                "NOPE-0001": (422, "not a known serial")}
    for serial, (status, words) in refusals.items():
        response = client.post(f"/staff/wh/items/{item.id}/ship",
                               data={"replacement_serial": serial, "carrier": "SF",
                                     "tracking_number": "SF1"}, headers=EN)
        assert response.status_code == status, serial
        html = _text(response)
        error = html[html.index('id="replacement_serial-error"'):]
        assert words in error[:300], serial
    assert _count(app, Shipment) == shipments
    # A paid item cannot ship until finance releases it (D-3).
    paid = _confirmed(app, world, "TK3-A0003", cause="misuse_drop")
    response = client.post(f"/staff/wh/items/{paid.id}/ship",
                           data={"replacement_serial": "TK3-SPARE2", "carrier": "SF",
                                 "tracking_number": "SF2"}, headers=EN)
    assert response.status_code == 409
    assert 'role="alert"' in _text(response)
    assert _item(app, "TK3-A0003").status == ItemStatus.WAITING_PAYMENT


def test_no_fault_found_ships_the_customers_own_unit_back_D_4(app, world, as_role):
    item = _received(app, world, "TK3-A0001")
    client = as_role("warehouse")
    response = client.post(f"/staff/wh/items/{item.id}/inspect",
                           data={"cause": "no_fault_found"}, headers=EN, follow_redirects=True)
    assert "No fault found: return the unit" in _text(response) and "D-4" in _text(response)
    response = client.post(f"/staff/wh/items/{item.id}/ship",
                           data={"replacement_serial": "", "carrier": "SF",
                                 "tracking_number": "SF9"}, headers=EN, follow_redirects=True)
    assert 'id="shipped-serial">TK3-A0001<' in _text(response)
    with app.app_context():
        shipment = db.session.scalar(select(Shipment).where(Shipment.item_id == item.id))
        assert shipment.kind == "return"


# -- delivery ---------------------------------------------------------------------------
def test_deliver_within_target_R_R3(app, world, as_role):
    item = _shipped(app, world, "TK3-A0001", "TK3-SPARE1")
    client = as_role("warehouse")
    page = _text(client.get(f"/staff/wh/items/{item.id}/deliver", headers=EN))
    assert 'value="2026-11-25T12:00"' in page  # default: now, China time
    response = client.post(f"/staff/wh/items/{item.id}/deliver",
                           data={"delivered_at": "2026-11-25T12:00", "received_by": "王芳"},
                           headers=EN, follow_redirects=True)
    html = _text(response)
    assert "within the 72-hour target" in html
    assert 'data-clock="met"' in html
    with app.app_context():
        shipment = db.session.scalar(select(Shipment).where(Shipment.item_id == item.id))
        assert shipment.received_by == "王芳"
        assert shipment.delivered_at.isoformat().startswith("2026-11-25T04:00")


def test_a_late_delivery_needs_a_reason_and_shows_as_missed_R_R3(app, world, as_role):
    app.config["FIXED_NOW"] = EARLIER  # confirmed and shipped five days ago
    item = _shipped(app, world, "TK3-A0001", "TK3-SPARE1")
    app.config["FIXED_NOW"] = "2026-11-25T04:00:00+00:00"
    client = as_role("warehouse")
    board = _text(client.get("/staff/wh/replacements", headers=EN))
    assert re.search(r'data-serial="TK3-A0001" data-clock="breached"', board)
    response = client.post(f"/staff/wh/items/{item.id}/deliver",
                           data={"delivered_at": "2026-11-25T10:00", "received_by": "王芳"},
                           headers=EN)
    assert response.status_code == 422 and 'id="late_reason-error"' in _text(response)
    assert _item(app, "TK3-A0001").status == ItemStatus.SHIPPED
    response = client.post(f"/staff/wh/items/{item.id}/deliver",
                           data={"delivered_at": "2026-11-25T10:00", "received_by": "王芳",
                                 "late_reason": "Road closed by snow"},
                           headers=EN, follow_redirects=True)
    assert "72-hour target was missed" in _text(response)
    board = _text(client.get("/staff/wh/replacements", headers=EN))
    breaches = board[board.index('id="breaches"'):]
    assert "TK3-A0001" in breaches and "Road closed by snow" in breaches
    assert 'data-clock="missed"' in breaches


# -- the replacements dashboard (R-R3) --------------------------------------------------
def test_dashboard_orders_by_time_left_and_filters(app, world, as_role):
    app.config["FIXED_NOW"] = EARLIER  # due 2026-11-23: breached now
    _confirmed(app, world, "TK3-A0001")
    app.config["FIXED_NOW"] = "2026-11-23T00:00:00+00:00"  # due 11-26 00:00Z: at risk
    _confirmed(app, world, "TK3-A0002")
    app.config["FIXED_NOW"] = "2026-11-25T04:00:00+00:00"  # due 11-28: on track
    _confirmed(app, world, "TK3-A0003")
    client = as_role("warehouse")
    html = _text(client.get("/staff/wh/replacements", headers=EN))
    rows = re.findall(r'data-serial="(TK3-A\d+)" data-clock="(\w+)"', html)
    assert rows == [("TK3-A0001", "breached"), ("TK3-A0002", "at_risk"),
                    ("TK3-A0003", "on_track")]
    for word in ("Breached", "At risk", "On track"):  # words, not colour alone
        assert word in html
    only = _text(client.get("/staff/wh/replacements?state=at_risk", headers=EN))
    assert re.findall(r'data-serial="(TK3-A\d+)" data-clock=', only) == ["TK3-A0002"]
    other = _text(client.get(f"/staff/wh/replacements?customer={world['customer_b']}",
                             headers=EN))
    assert 'id="replacements-empty"' in other
    figures = html[html.index('id="monthly-figures"'):]
    assert 'data-month="2026-11"' in figures


def test_dashboard_runs_a_constant_number_of_queries(app, world, as_role):
    client = as_role("manager")

    def queries() -> int:
        with count_queries(app) as statements:
            assert client.get("/staff/wh/replacements", headers=EN).status_code == 200
        return len(statements)

    _confirmed(app, world, "TK3-A0001")
    _shipped(app, world, "TK3-A0002", "TK3-SPARE1")
    few = queries()
    for n in range(3, 9):
        _confirmed(app, world, f"TK3-A{n:04d}")
    _shipped(app, world, "TK3-A0010", "TK3-SPARE2")
    assert queries() == few


# -- the clock wherever the item appears ------------------------------------------------
def test_portal_rma_page_shows_clock_due_time_carrier_and_delivery(app, world, as_role):
    item = _shipped(app, world, "TK3-A0001", "TK3-SPARE1")
    number = _open(app, world, "TK3-A0002")
    html = _text(as_role("customer").get(f"/portal/rmas/{_rma_of(app, item)}", headers=EN))
    row = html[html.index('data-serial="TK3-A0001"'):]
    row = row[:row.index("</tr>")]
    assert 'data-clock="on_track"' in row and "On track" in row
    assert "2026-11-28 12:00" in row and "SF Express" in row
    assert f"SF{item.id:08d}" in row
    _staff_do(app, world, "warehouse", "deliver", item_id=item.id,
              delivered_at=_utc("2026-11-25T04:00:00"), received_by="王芳")
    html = _text(as_role("customer").get(f"/portal/rmas/{_rma_of(app, item)}", headers=EN))
    row = html[html.index('data-serial="TK3-A0001"'):]
    assert "Delivered 2026-11-25 12:00" in row[:row.index("</tr>")]
    assert number  # another RMA, untouched


def _rma_of(app, item: RmaItem) -> str:
    with app.app_context():
        return db.session.get(RmaItem, item.id).rma.number


def _utc(text: str):
    from datetime import UTC, datetime

    return datetime.fromisoformat(text).replace(tzinfo=UTC)
