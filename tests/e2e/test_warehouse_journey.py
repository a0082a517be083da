"""Journey 3: the warehouse (issue 4). An RMA goes from submission (API) through remote
confirmation by support, scan-receiving on a 390 px handheld with the keyboard alone
(one unexpected unit, one double scan), inspection, shipping a scanned spare and delivery
within the 72-hour target; a second RMA, confirmed 74 hours earlier, misses the target
and shows as breached, then missed with its reason (R-R3, D-1, D-3, D-4, D-6, R-R4).

The server's clock is pinned to 2026-11-25 12:00 China time and a delivery time in the
future is refused, so the late RMA is confirmed through a second gunicorn on the same
database whose clock says 2026-11-22 10:00 China time: its clock really started then, and
is really past due at the main server's "now". Selectors are ids and data attributes.
"""

from __future__ import annotations

import json
import re
import urllib.request
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import ON_SQLITE, Server, _gunicorn, cli_session

PASSWORD = "e2e-warehouse-password"
EARLIER_NOW = "2026-11-22T02:00:00+00:00"  # 10:00 China time, 74 hours before "now"
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy
pytestmark = ON_SQLITE  # the PostgreSQL half is test_warehouse_journey_pg.py (its own worker)
# Counts the tones the page plays (Web Audio), to check the loud warning really sounds.
COUNT_TONES = """
(() => {
  window.__tones = 0;
  const Ctx = window.AudioContext || window.webkitAudioContext;
  if (!Ctx) { return; }
  const create = Ctx.prototype.createOscillator;
  Ctx.prototype.createOscillator = function () { window.__tones += 1; return create.call(this); };
})();
"""


def _api(base: str, token: str, path: str, body: dict) -> dict:
    request = urllib.request.Request(  # noqa: S310 - the test server's loopback http URL
        base + path, data=json.dumps(body).encode(), method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json",
                 "Accept-Language": "en"})
    with _DIRECT.open(request, timeout=20) as response:
        assert response.status in (200, 201), response.status
        return json.loads(response.read())


@pytest.fixture(scope="module")
def wh(server: Server, tmp_path_factory) -> dict:
    """A model, a customer with four units in warranty, three spares in stock (imported
    with no customer), a customer user with an API token, and staff users."""
    with cli_session(server) as rma:  # the setup commands in one process
        rma.ok("add-model", "TK3W", "--name", "TK3W token", "--kind", "hardware",
               "--life-months", "36", "--basis", "ship", "--price", "80")
        contract = rma.ok("add-customer", "华中仓储银行", "--accepted-on", "2025-01-10",
                          "--address", "武汉市江汉区建设大道 8 号").strip().splitlines()[-1]
        csv_path = tmp_path_factory.mktemp("warehouse") / "units.csv"
        rows = [f"TK3W-C000{n},TK3W,{contract},L1,2025-06-01," for n in range(1, 5)]
        rows += [f"TK3W-S000{n},TK3W,,L9,," for n in range(1, 4)]  # spare stock
        csv_path.write_text("serial,model,customer_contract,lot,shipped_on,activated_on\n"
                            + "\n".join(rows) + "\n", encoding="utf-8")
        rma.ok("import-units", str(csv_path))
        users = {"customer": "buyer@wh-bank.example", "support": "support@wh.example",
                 "warehouse": "warehouse@wh.example", "manager": "manager@wh.example"}
        for role, email in users.items():
            extra = ["--customer", contract] if role == "customer" else []
            rma.ok("create-user", email, "--role", role, "--language", "en", *extra,
                   input=PASSWORD + "\n")
        tokens = {role: rma.ok("create-token", users[role]).strip().splitlines()[-1]
                  for role in ("customer", "support")}
    return {"contract": contract, "users": users, "tokens": tokens}


def _submit(base: str, wh: dict, *serials: str) -> str:
    answer = _api(base, wh["tokens"]["customer"], "/api/v1/rmas", {
        "contact": {"name": "Zhao Min", "phone": "+86 27 8888 0000",
                    "email": wh["users"]["customer"]},
        "ship_to": "武汉市江汉区建设大道 8 号", "language": "en",
        "items": [{"serial": s, "fault_description": f"{s}: no display"} for s in serials],
    })
    return answer["number"]


def _log_in(page: Page, email: str, to: str) -> None:
    page.goto(f"/login?next={to}")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.locator("main input[type=submit]").click()
    expect(page).to_have_url(re.compile(re.escape(to.split("?")[0])))


def _item_id(page: Page, serial: str) -> str:
    """The item id from a link to the item's page next to ``serial``."""
    href = page.locator(f'a.serial:text-is("{serial}")').first.get_attribute("href")
    return re.search(r"/staff/wh/items/(\d+)", href).group(1)


def _scan(page: Page, code: str, outcome: str) -> None:
    """What a USB scanner does: type the code, press Enter; wait for the answer."""
    expect(page.locator("#code")).to_be_focused()  # the station keeps its input focused
    page.keyboard.type(code)
    page.keyboard.press("Enter")
    expect(page.locator("#scan-banner")).to_have_attribute("data-outcome", outcome)
    expect(page.locator("#scan-banner")).to_contain_text(code.upper())


def _no_sideways_scroll(page: Page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"{page.url} scrolls sideways: {width}px wide"


def test_rma_from_submission_to_delivery_within_target(server: Server, wh: dict, new_page):
    number = _submit(server.url, wh, "TK3W-C0001", "TK3W-C0002")

    # Support: the triage queue; confirm C0001 remotely (advance replacement, D-1), ask
    # for C0002 back.
    support = new_page()
    _log_in(support, wh["users"]["support"], "/staff/wh/triage")
    rma = support.locator(f'[id="rma-{number}"]')
    expect(rma).to_contain_text("TK3W-C0001")
    first = rma.locator('article[data-serial="TK3W-C0001"]')
    expect(first).to_contain_text("In warranty until 2028-05-31")  # coverage at submit
    confirm = first.locator("form.confirm-form")
    confirm.locator("select").select_option("quality_defect")
    confirm.locator("textarea").fill("Display dead, confirmed by phone")
    confirm.locator("[type=submit]").click()
    flash = support.locator(".flash.success")
    expect(flash).to_contain_text("Free replacement")
    expect(flash).to_contain_text("R-W3")
    expect(flash).to_contain_text("2026-11-28 12:00")  # 72 h later, China time (R-R3)
    second = support.locator(f'[id="rma-{number}"] article[data-serial="TK3W-C0002"]')
    second.locator("form.unit-form [type=submit]").click()
    expect(support.locator(".flash.success")).to_contain_text("TK3W-C0002")
    expect(support.locator(f'[id="rma-{number}"] article[data-serial="TK3W-C0002"]')
           ).to_have_attribute("data-status", "awaiting_unit")

    # Warehouse, on a 390 px handheld, keyboard only: the parcel arrives.
    page = new_page(**PHONE)
    page.add_init_script(COUNT_TONES)
    _log_in(page, wh["users"]["warehouse"], "/staff/wh/scan")
    code = page.locator("#code")
    expect(code).to_be_focused()
    _scan(page, number, "opened_rma")
    expect(page.locator("#scan-rma-number")).to_have_attribute("data-rma", number)
    expect(page).to_have_url(re.compile(re.escape(f"rma={number}")))
    _scan(page, "tk3w-c0002", "received")  # lower case from a wedge scanner (D-8)
    expect(page.locator('li[data-serial="TK3W-C0002"]')).to_have_attribute("data-received",
                                                                              "yes")
    expect(page.locator('li[data-serial="TK3W-C0001"]')).to_have_attribute("data-received",
                                                                              "no")
    # A unit that is not on this RMA: red, full width, announced, loud; recorded.
    before = page.evaluate("window.__tones")
    _scan(page, "TK3W-C0004", "unexpected")
    banner = page.locator("#scan-banner")
    expect(banner).to_have_attribute("role", "alert")
    expect(banner).to_have_class(re.compile(r"\bscan-alarm\b"))
    color = banner.evaluate("el => getComputedStyle(el).backgroundColor")
    assert color == "rgb(179, 38, 30)", color
    box = banner.bounding_box()
    main = page.locator("main").bounding_box()
    assert box["width"] >= main["width"] - 2 * 12, (box, main)  # the page's full width
    assert page.evaluate("window.__tones") > before  # the alarm sounded (Web Audio)
    expect(page.locator("#scan-unexpected")).to_contain_text("TK3W-C0004")
    # The same unit again: amber, "already received at 12:00 by ...", nothing changes.
    _scan(page, "TK3W-C0002", "already_received")
    expect(banner).to_have_class(re.compile(r"\bscan-warn\b"))
    expect(banner).to_contain_text("12:00")
    expect(banner).to_contain_text(wh["users"]["warehouse"])
    # The advance-replaced unit comes back with it (D-1): checked off too.
    _scan(page, "TK3W-C0001", "received")
    expect(page.locator("#scan-count")).to_contain_text("2 of 2")
    expect(code).to_be_focused()  # still ready for the next scan, never a click needed
    log = page.locator("#scan-log li")
    expect(log).to_have_count(5)
    expect(log.first).to_contain_text("TK3W-C0001")
    _no_sideways_scroll(page)
    c1, c2 = _item_id(page, "TK3W-C0001"), _item_id(page, "TK3W-C0002")

    # Inspection of the unit asked back: a quality defect in warranty → free (R-W3).
    page.goto(f"/staff/wh/items/{c2}/inspect")
    page.select_option("#cause", "quality_defect")
    page.fill("#notes", "Display driver failure")
    page.click("#inspect-save")
    expect(page.locator("#item-decision")).to_have_attribute("data-decision", "free")
    expect(page.locator("#item-rule")).to_have_text("R-W3")
    expect(page.locator("#item-status")).to_have_attribute("data-status", "confirmed")
    expect(page.locator(".item-line .clock")).to_have_attribute("data-clock", "on_track")

    # Ship a spare for C0001 with the keyboard: scan, Enter moves on, Enter submits.
    page.goto(f"/staff/wh/items/{c1}/ship")
    expect(page.locator("#replacement_serial")).to_be_focused()
    page.keyboard.type("TK3W-S0001")
    page.keyboard.press("Enter")
    expect(page.locator("#carrier")).to_be_focused()
    page.keyboard.type("SF Express")
    page.keyboard.press("Enter")
    expect(page.locator("#tracking_number")).to_be_focused()
    page.keyboard.type("SF1002003004")
    page.keyboard.press("Enter")
    expect(page.locator("#shipped-serial")).to_have_text("TK3W-S0001")
    slip = page.request.get(page.locator("#packing-slip").get_attribute("href"))
    assert slip.ok and slip.body().startswith(b"%PDF")
    _no_sideways_scroll(page)

    # Delivery within target: no late reason asked.
    page.goto(f"/staff/wh/items/{c1}/deliver")
    expect(page.locator("#delivered_at")).to_have_value("2026-11-25T12:00")
    expect(page.locator("#late-reason-box")).to_be_hidden()
    page.fill("#received_by", "王芳")
    page.click("#deliver-submit")
    expect(page.locator(".flash")).to_contain_text("within the 72-hour target")
    expect(page.locator(".item-line .clock")).to_have_attribute("data-clock", "met")
    expect(page.locator("#item-delivered")).to_contain_text("王芳")

    # The customer sees the clock, the carrier and tracking number, and the delivery.
    customer = new_page()
    customer.goto("/login")
    customer.fill("#email", wh["users"]["customer"])
    customer.fill("#password", PASSWORD)
    customer.locator("main input[type=submit]").click()
    customer.goto(f"/portal/rmas/{number}")
    row = customer.locator('tr[data-serial="TK3W-C0001"]')
    expect(row.locator(".clock")).to_have_attribute("data-clock", "met")
    expect(row).to_contain_text("SF1002003004")
    expect(row).to_contain_text("Delivered 2026-11-25 12:00")


def test_a_replacement_confirmed_74_hours_ago_is_breached_then_missed(
        server: Server, wh: dict, new_page, refused_posts):
    # Three days ago (a second server on the same database, its clock set back 74 hours):
    # the RMA is submitted and support confirms it remotely; its clock starts then (R-R3).
    earlier_env = {**server.env, "RMA_FIXED_NOW": EARLIER_NOW}
    with _gunicorn(server.workdir, earlier_env, ("--workers", "1")) as earlier:  # 2 calls
        number = _submit(earlier, wh, "TK3W-C0003")
        confirmed = _api(earlier, wh["tokens"]["support"],
                         f"/api/v1/rmas/{number}/items/TK3W-C0003/confirm",
                         {"cause": "quality_defect", "remote": True})
    assert confirmed["due_at"].startswith("2026-11-25T02:00")  # 10:00 today, China time

    # Now: the dashboard shows it breached, in words and colour, on a phone.
    page = new_page(**PHONE)
    _log_in(page, wh["users"]["manager"], "/staff/wh/replacements")
    row = page.locator('#replacements tr[data-serial="TK3W-C0003"]')
    expect(row).to_have_attribute("data-clock", "breached")
    expect(row).to_contain_text("Breached")
    expect(row).to_contain_text("2.0 h overdue")
    page.select_option("#state", "breached")
    page.locator("#replacement-filters button[type=submit]").click()
    expect(page.locator("#replacements tbody tr")).to_have_count(1)
    _no_sideways_scroll(page)

    # The spare ships; the delivery is recorded now, 74 hours after confirmation.
    item = _item_id(page, "TK3W-C0003")
    page.goto(f"/staff/wh/items/{item}/ship")
    expect(page.locator("#replacement_serial")).to_be_focused()  # else keys go nowhere
    page.keyboard.type("TK3W-S0002")
    page.keyboard.press("Enter")
    page.fill("#carrier", "EMS")
    page.fill("#tracking_number", "EMS7788")
    page.click("#ship-submit")
    expect(page.locator("#shipped-serial")).to_have_text("TK3W-S0002")
    deliver = f"/staff/wh/items/{item}/deliver"
    page.goto(deliver)
    expect(page.locator("#late-reason-box")).to_be_visible()  # it would be late
    expect(page.locator("#delivery-preview")).to_contain_text("74.0")
    page.fill("#received_by", "李雷")
    refused_posts.add(deliver)
    with page.expect_response(lambda r: r.request.method == "POST"
                              and urlsplit(r.url).path == deliver) as answer:
        page.click("#deliver-submit")
    assert answer.value.status == 422  # refused: nothing recorded
    expect(page.locator("#late_reason-error")).to_be_visible()  # why it was late
    page.fill("#late_reason", "Courier lost the first parcel")
    page.click("#deliver-submit")
    expect(page.locator(".flash")).to_contain_text("72-hour target was missed")
    expect(page.locator(".item-line .clock")).to_have_attribute("data-clock", "missed")

    # The dashboard: no longer open; a breach with its reason; the month counts it.
    page.goto("/staff/wh/replacements")
    expect(page.locator('#replacements tr[data-serial="TK3W-C0003"]')).to_have_count(0)
    breach = page.locator('#breaches tr[data-serial="TK3W-C0003"]')
    expect(breach).to_contain_text("Courier lost the first parcel")
    expect(breach).to_contain_text("2.0 h")
    expect(breach.locator(".clock")).to_have_attribute("data-clock", "missed")
    month = page.locator('#monthly-figures tr[data-month="2026-11"]')
    expect(month.locator(".breached")).not_to_have_text("0")
    _no_sideways_scroll(page)
