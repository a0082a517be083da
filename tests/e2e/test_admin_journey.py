"""Journey 1: an administrator sets up the catalogue, units arrive by CSV, and anyone can
check their warranty, in a real browser against gunicorn (R-W1, R-W2, R-C1, D-8).

The server's clock is pinned to 2026-11-25 (China time). Selectors are ids, classes and
data attributes; dates and serials are asserted, translated text is not.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import ON_SQLITE, Server, cli_session, run_cli

pytestmark = ON_SQLITE  # the PostgreSQL half is test_admin_journey_pg.py (its own worker)

ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "e2e-admin-password"
CUSTOMER_NAME = "华东测试银行"
CONTRACT = re.compile(r"^SC-\d{4}-\d{5}$")
# serial, shipped_on, activated_on, last covered day, in warranty on 2026-11-25
UNITS = [
    ("TK3E-000001", "2024-02-29", "", "2027-02-28", True),  # month end: Feb 29 -> 28
    ("TK3E-000002", "2023-05-15", "2023-06-02", "2026-05-14", False),  # basis ship: not activation
    ("TK3E-000003", "2023-11-26", "", "2026-11-25", True),  # today is the last covered day
]


@pytest.fixture(scope="module")
def admin(server: Server) -> str:
    """An admin created with the CLI, password piped on stdin; returns the e-mail."""
    result = run_cli(server, "create-user", ADMIN_EMAIL, "--role", "admin", "--language", "en",
                     input=ADMIN_PASSWORD + "\n")
    assert result.returncode == 0, result.stderr
    assert f"created admin user {ADMIN_EMAIL}" in result.stdout
    assert "password:" not in result.stdout  # the piped one was used, none generated
    return ADMIN_EMAIL


@pytest.fixture(scope="module")
def scanned_units(server: Server, tmp_path_factory) -> dict[str, tuple[str, bool]]:
    """Units of a model TK3S set up with the CLI alone, for the tests that only check
    warranty (independent of the journey test's data): serial -> (last day, in warranty)."""
    with cli_session(server) as rma:  # the setup commands in one process
        rma.ok("add-model", "TK3S", "--name", "TK3S token", "--kind", "hardware",
               "--life-months", "36", "--basis", "ship", "--price", "80")
        registered = rma.ok("add-customer", "华南扫描银行", "--accepted-on", "2024-01-10")
        contract = registered.strip().splitlines()[-1]
        assert CONTRACT.match(contract), registered
        csv_path = tmp_path_factory.mktemp("scan") / "units.csv"
        csv_path.write_text(
            "serial,model,customer_contract,lot,shipped_on,activated_on\n"
            f"TK3S-000001,TK3S,{contract},L1,2024-02-29,\n"
            f"TK3S-000002,TK3S,{contract},L1,2023-05-15,\n",
            encoding="utf-8",
        )
        rma.ok("import-units", str(csv_path))
    return {"TK3S-000001": ("2027-02-28", True), "TK3S-000002": ("2026-05-14", False)}


def log_in(page: Page, email: str, password: str) -> None:
    page.goto("/login")
    page.locator("#email").fill(email)
    page.locator("#password").fill(password)
    page.locator("input[type=submit]").click()


def path_of(page: Page) -> str:
    return re.sub(r"^https?://[^/]+", "", page.url).split("?")[0]


def check_serials(page: Page, text: str) -> None:
    page.goto("/warranty")
    page.locator("#serials").fill(text)
    page.locator("form.narrow input[type=submit]").click()
    expect(page.locator("#warranty-results")).to_be_visible()


def expect_unit(page: Page, serial: str, end_on: str, in_warranty: bool) -> None:
    row = page.locator(f'#warranty-results tr[data-serial="{serial}"]')
    expect(row).to_be_visible()
    expect(row).to_have_class("ok" if in_warranty else "out")
    expect(row.locator(".end-on")).to_have_text(end_on)


def test_admin_sets_up_catalogue_and_anyone_checks_warranty(server, admin, new_page, tmp_path):
    # -- the admin logs in (UI in English: the user's language preference) ----------------
    page = new_page()
    log_in(page, admin, ADMIN_PASSWORD)
    expect(page.locator("header .who")).to_have_text(admin)
    expect(page.locator("html")).to_have_attribute("lang", "en")
    assert path_of(page) == "/"

    # -- a product model: 36 months of life from the ship date (R-W2) -----------------------
    page.goto("/admin/models/new")
    page.locator("#code").fill("tk3e")  # codes are stored upper-case
    page.locator("#name").fill("TK3E token")
    page.locator("#kind").select_option("hardware")
    page.locator("#life_months").fill("36")
    page.locator("#basis").select_option("ship")
    page.locator("#replacement_price").fill("80.00")
    page.locator("input[type=submit]").click()
    expect(page).to_have_url(re.compile(r"/admin/models$"))
    expect(page.locator(".flash.success")).to_contain_text("TK3E")
    model_row = page.locator("table#models tbody tr", has_text="TK3E token")
    expect(model_row).to_have_count(1)
    expect(model_row).to_contain_text("¥80.00")

    # -- a customer; the system assigns the contract number (R-C1) ------------------------
    page.goto("/admin/customers/new")
    page.locator("#name").fill(CUSTOMER_NAME)
    page.locator("#accepted_on").fill("2024-03-15")
    page.locator("#contract_months").fill("12")
    page.locator("input[type=submit]").click()
    expect(page).to_have_url(re.compile(r"/admin/customers$"))
    customer_row = page.locator("table#customers tbody tr", has_text=CUSTOMER_NAME)
    expect(customer_row).to_have_count(1)
    contract = customer_row.locator("td").first.inner_text().strip()
    assert CONTRACT.match(contract), contract
    expect(page.locator(".flash.success")).to_contain_text(contract)
    expect(customer_row.locator("td").nth(2)).to_have_text("2024-03-15")

    # -- units arrive by CSV through the CLI, into the same database ----------------------
    csv_path = tmp_path / "units.csv"
    lines = ["serial,model,customer_contract,lot,shipped_on,activated_on"]
    lines += [f"{serial},TK3E,{contract},LOT-E2E,{shipped},{activated}"
              for serial, shipped, activated, _, _ in UNITS]
    csv_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = run_cli(server, "import-units", str(csv_path))
    assert result.returncode == 0, result.stderr
    assert (f"imported {len(UNITS)} new units, updated 0, unchanged 0, rejected 0 "
            f"of {len(UNITS)} rows") in result.stdout
    page.goto("/admin/customers")
    expect(customer_row.locator("td").nth(4)).to_have_text(str(len(UNITS)))

    # -- an anonymous visitor pastes serials; input is normalised (D-8) ---------------------
    visitor = new_page()
    check_serials(visitor, "TK3E-000001\n   tk3e-000002  \n\nTk3e-000003\n")
    assert visitor.locator("header .who").count() == 0  # not logged in
    expect(visitor.locator("html")).to_have_attribute("lang", "en")  # Accept-Language en-US
    for serial, _, _, end_on, in_warranty in UNITS:
        expect_unit(visitor, serial, end_on, in_warranty)
    expect(visitor.locator("#warranty-results tbody tr")).to_have_count(len(UNITS))
    first = visitor.locator('#warranty-results tr[data-serial="TK3E-000001"]')
    expect(first.locator(".status")).to_contain_text("96")  # days left, counting today
    # the public answer carries no customer data
    expect(visitor.locator("#warranty-results")).not_to_contain_text(CUSTOMER_NAME)
    expect(visitor.locator("#warranty-results")).not_to_contain_text(contract)


def test_barcode_scan_submits_single_line_on_enter(new_page, scanned_units):
    """A USB scanner types the serial and presses Enter: one line submits at once."""
    page = new_page()
    page.goto("/warranty")
    box = page.locator("#serials")
    expect(box).to_be_focused()  # autofocus: the scanner types straight in
    page.keyboard.type("tk3s-000001")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    expect_unit(page, "TK3S-000001", *scanned_units["TK3S-000001"])
    expect(page.locator("#warranty-results tbody tr")).to_have_count(1)
    assert path_of(page) == "/warranty"

    # with two lines in the box, Enter is a new line (pasted lists), not a submit
    page.goto("/warranty")
    box.fill("TK3S-000001\nTK3S-000002")
    box.press("End")
    box.press("Enter")
    expect(box).to_have_value("TK3S-000001\nTK3S-000002\n")
    expect(page.locator("#warranty-results")).to_have_count(0)

    # the home page's one-line box takes a scan too (a plain input: Enter submits)
    page.goto("/")
    expect(page.locator("#serials")).to_be_focused()
    page.keyboard.type("tk3s-000002")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    expect_unit(page, "TK3S-000002", *scanned_units["TK3S-000002"])


def test_results_readable_on_a_phone(new_page, scanned_units):
    """390 px wide: the table turns into cards and nothing scrolls sideways."""
    page = new_page(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    check_serials(page, "TK3S-000001\nTK3S-000002\nNO-SUCH-1")
    for serial, (end_on, in_warranty) in scanned_units.items():
        expect_unit(page, serial, end_on, in_warranty)
    expect(page.locator("#warranty-results tr.bad")).to_contain_text("NO-SUCH-1")
    expect(page.locator("#warranty-results thead")).to_be_hidden()
    scroll_width, inner_width = page.evaluate(
        "[document.documentElement.scrollWidth, window.innerWidth]")
    assert scroll_width <= inner_width, (scroll_width, inner_width)
    end_on = page.locator('#warranty-results tr[data-serial="TK3S-000001"] .end-on')
    box = end_on.bounding_box()
    assert box is not None and 0 <= box["x"] and box["x"] + box["width"] <= inner_width, box


@pytest.mark.usefixtures("admin")
def test_wrong_password_shows_error_at_password_field(page):
    log_in(page, ADMIN_EMAIL, "not-the-password")
    password_field = page.locator(".field", has=page.locator("#password"))
    expect(password_field).to_have_class(re.compile(r"\bhas-error\b"))
    expect(password_field.locator("#password-error")).to_be_visible()
    expect(page.locator("#password-error")).not_to_be_empty()
    expect(page.locator("#password")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#password")).to_have_value("")  # never echoed back
    expect(page.locator("#email-error")).to_have_count(0)
    expect(page.locator("header .who")).to_have_count(0)
    assert path_of(page) == "/login"
    # and the right password still works afterwards
    log_in(page, ADMIN_EMAIL, ADMIN_PASSWORD)
    expect(page.locator("header .who")).to_have_text(ADMIN_EMAIL)


def test_model_form_shows_server_side_field_error(new_page, admin):
    """life 0 passes the browser (novalidate) and is refused by the server, at the field."""
    page = new_page()
    log_in(page, admin, ADMIN_PASSWORD)
    expect(page.locator("header .who")).to_have_text(admin)
    page.goto("/admin/models/new")
    page.locator("#code").fill("ZERO-LIFE")
    page.locator("#name").fill("Never lives")
    page.locator("#kind").select_option("software")
    page.locator("#life_months").fill("0")
    page.locator("#basis").select_option("activation")
    page.locator("input[type=submit]").click()
    life_field = page.locator(".field", has=page.locator("#life_months"))
    expect(life_field).to_have_class(re.compile(r"\bhas-error\b"))
    expect(life_field.locator("#life_months-error")).to_be_visible()
    assert path_of(page) == "/admin/models/new"
    expect(page.locator("#life_months")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#life_months")).to_have_value("0")
    expect(page.locator("#code")).to_have_value("ZERO-LIFE")  # the rest is kept
    expect(page.locator("#code-error")).to_have_count(0)
    page.goto("/admin/models")
    expect(page.locator("table#models")).not_to_contain_text("ZERO-LIFE")
