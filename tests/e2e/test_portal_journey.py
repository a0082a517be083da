"""Journey 2: a customer submits an RMA in the portal, fixes the lines the server refused,
downloads the parcel label, and the confirmation e-mail with the label reaches a real SMTP
server when ``rma tick`` runs (R-R1, R-R2, D-1, D-8).

The server's clock is pinned to 2026-11-25 (China time). Selectors are ids and data
attributes; the e-mail and the PDF are checked by their content.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import ON_SQLITE, Server, cli_session, run_cli

pytestmark = ON_SQLITE  # the PostgreSQL half is test_portal_journey_pg.py (its own worker)

PASSWORD = "e2e-customer-password"
RMA_NUMBER = re.compile(r"RMA-2026-\d{6}")


def _cli(server: Server, *args: str, input: str | None = None) -> str:
    result = run_cli(server, *args, input=input)
    assert result.returncode == 0, f"rma {' '.join(args)}:\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def portal(server: Server, tmp_path_factory) -> dict[str, str]:
    """Customer A with a token in warranty and one out of warranty; customer B with a
    token of its own; a customer user of A who prefers English."""
    with cli_session(server) as rma:  # the setup commands in one process
        rma.ok("add-model", "TK3P", "--name", "TK3P token", "--kind", "hardware",
               "--life-months", "36", "--basis", "ship", "--price", "80")
        contract_a = rma.ok("add-customer", "华北门户银行", "--accepted-on", "2024-01-10",
                            "--address", "北京市西城区金融大街 1 号").strip().splitlines()[-1]
        contract_b = rma.ok("add-customer", "Other Bank", "--accepted-on",
                            "2024-01-10").strip().splitlines()[-1]
        csv_path = tmp_path_factory.mktemp("portal") / "units.csv"
        csv_path.write_text(
            "serial,model,customer_contract,lot,shipped_on,activated_on\n"
            f"TK3P-IN-0001,TK3P,{contract_a},L1,2025-01-01,\n"  # in warranty until 2027-12-31
            f"TK3P-OUT-0001,TK3P,{contract_a},L1,2022-01-01,\n"  # ended 2024-12-31
            f"TK3P-B-0001,TK3P,{contract_b},L1,2025-01-01,\n",
            encoding="utf-8",
        )
        rma.ok("import-units", str(csv_path))
        email = "buyer@portal-bank.example"
        rma.ok("create-user", email, "--role", "customer", "--customer", contract_a,
               "--language", "en", input=PASSWORD + "\n")
    return {"email": email, "contract": contract_a}


def _log_in(page: Page, email: str) -> None:
    page.goto("/login")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.locator("main input[type=submit]").click()
    expect(page).to_have_url(re.compile(r"/portal/$"))


def test_customer_submits_an_rma_fixes_errors_gets_label_and_email(
        server: Server, portal: dict[str, str], new_page, mailbox, tmp_path):
    page = new_page()
    _log_in(page, portal["email"])
    page.goto("/portal/rmas/new")
    # Contact and delivery address come prefilled from the user and the customer.
    expect(page.locator("#contact_email")).to_have_value(portal["email"])
    expect(page.locator("#ship_to")).to_have_value(re.compile("金融大街"))
    page.fill("#contact_name", "Li Lei")
    page.fill("#contact_phone", "+86 10 1234 5678")

    # Row 1: a malformed serial (D-8); row 2: another customer's token.
    page.fill("#items-0-serial", "bad#1")
    page.fill("#items-0-fault_description", "Display stays blank")
    page.click("#add-row")
    expect(page.locator("#items-1-serial")).to_be_visible()
    page.fill("#items-1-serial", "tk3p-b-0001")
    page.fill("#items-1-fault_description", "Codes rejected")
    page.click("#submit-rma")

    # Nothing was created: each error is beside its own line, typed text kept.
    expect(page).to_have_url(re.compile(r"/portal/rmas/new"))
    expect(page.locator("#items-0-serial-error")).to_contain_text("bad#1")
    expect(page.locator("#items-1-serial-error")).to_contain_text(
        "not registered to your organisation")
    expect(page.locator("#items-0-fault_description")).to_have_value("Display stays blank")
    expect(page.locator("#items-1-fault_description")).to_have_value("Codes rejected")

    # Fix both lines: one in warranty, one out; the live check shows the coverage.
    page.fill("#items-0-serial", "TK3P-IN-0001")
    page.press("#items-0-serial", "Enter")  # a scanner's Enter moves on, never submits
    expect(page.locator("#items-0-serial-check")).to_contain_text("2027-12-31")
    expect(page).to_have_url(re.compile(r"/portal/rmas/new"))
    page.fill("#items-1-serial", "TK3P-OUT-0001")
    page.press("#items-1-serial", "Tab")
    expect(page.locator("#items-1-serial-check")).to_have_class(re.compile(r"\bout\b"))
    page.click("#submit-rma")

    # The RMA page: number issued at once (D-1), both items, label links.
    expect(page).to_have_url(re.compile(r"/portal/rmas/RMA-2026-\d{6}"))
    number = RMA_NUMBER.search(page.url).group(0)
    expect(page.locator("body")).to_contain_text("TK3P-IN-0001")
    expect(page.locator("body")).to_contain_text("TK3P-OUT-0001")
    with page.expect_download() as download_info:
        page.click("#label-a4")
    download = download_info.value
    assert download.suggested_filename == f"{number}-label.pdf"
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    assert saved.read_bytes().startswith(b"%PDF")

    # The list finds it by a serial, as a scanner would type it.
    page.goto("/portal/rmas")
    page.fill("input[name=q]", "tk3p-out-0001")
    page.press("input[name=q]", "Enter")
    expect(page.locator("body")).to_contain_text(number)

    # The e-mail goes out when rma tick runs, with the label attached.
    before = len(mailbox.to(portal["email"]))
    _cli(server, "tick")
    arrived = mailbox.to(portal["email"])[before:]
    assert len(arrived) == 1, [m["Subject"] for m in mailbox.messages]
    message = arrived[0]
    assert number in message["Subject"]
    assert number in message.get_body(preferencelist=("plain",)).get_content()
    attachments = list(message.iter_attachments())
    assert [a.get_filename() for a in attachments] == [f"{number}-label.pdf"]
    assert attachments[0].get_content().startswith(b"%PDF")
    _cli(server, "tick")  # a second run sends nothing again
    assert len(mailbox.to(portal["email"])) == before + 1


def test_rma_form_fits_a_phone(server: Server, portal: dict[str, str], new_page, tmp_path):
    """Warehouse handhelds and phones: 390×844, no sideways scrolling, fields usable."""
    page = new_page(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    _log_in(page, portal["email"])
    page.goto("/portal/rmas/new")
    shot = page.screenshot(path=str(tmp_path / "rma-form-390.png"), full_page=True)
    assert shot[:8] == b"\x89PNG\r\n\x1a\n"
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the form scrolls sideways: {width}px wide"
    for selector in ("#contact_name", "#items-0-serial", "#items-0-fault_description",
                     "#submit-rma"):
        box = page.locator(selector).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390, selector
