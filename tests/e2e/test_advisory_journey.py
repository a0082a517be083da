"""Journey 6: security advisories, service reports and failure analytics (issue 7).

A support engineer, on a 390 px phone, writes a HIGH advisory about a vulnerability we
found ourselves in a model the customer holds units of: the guidance of R-A1 stands
beside the severity, the notification deadline of R-A2 follows from the patch date, and
"Notify customers" sends the customer's contact an e-mail with the next ``rma tick``.
Publishing is refused until 14 days after that notice (R-A3): the button is disabled
saying the date, and the server refuses a forced post naming it too. The customer reads
the advisory in the portal (the staff page shows it opened) and acknowledges it; the
public list does not show it and another customer's portal answers 404.

On 1 December ``rma tick`` e-mails November's service report with its PDF (R-R4); the
customer downloads it from the portal. A manager opens the failure analytics on a phone:
SVG charts beside their tables, nothing scrolls sideways, and a table's CSV export.

The server's clock is pinned to 2026-11-25 12:00 China time (``FIXED_NOW``); the
1 December tick runs the CLI with its own ``RMA_FIXED_NOW``. Selectors are ids and data
attributes; the e-mails and the PDF are checked by their content.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import re
import urllib.request
from datetime import date, timedelta
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, expect
from pypdf import PdfReader

from tests.e2e import conftest
from tests.e2e.conftest import ON_SQLITE, Server, cli_session, run_cli

PASSWORD = "e2e-advisory-password"
CUSTOMER_NAME = "西北证券结算公司"
OTHER_NAME = "Southern Lottery Centre"
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
ADVISORY_NUMBER = re.compile(r"SA-2026-\d{4}")
TODAY = date(2026, 11, 25)  # FIXED_NOW's China date
# R-A2: the official patch on Tuesday 2026-11-24 + 2 working days (no holiday in late
# November in China) -> Thursday 2026-11-26.
PATCH_ON = date(2026, 11, 24)
NOTIFY_DUE_ON = date(2026, 11, 26)
# R-A3: the first notice goes out today; publishing is possible 14 calendar days later.
PUBLIC_FROM = TODAY + timedelta(days=14)
DECEMBER_FIRST = "2026-12-01T01:00:00+00:00"  # 09:00 China time on the 1st
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy
pytestmark = ON_SQLITE  # the PostgreSQL half is test_advisory_journey_pg.py (its own worker)


@pytest.fixture(scope="module")
def adv(server: Server, tmp_path_factory) -> dict:
    """A customer holding three SAFE7 units (and one of another model) with a portal user
    and an API token; another customer holding only the other model, with a portal user;
    a support engineer and a manager. The customer returns one SAFE7 unit through the API
    today, so November has an RMA and the analytics have a return."""
    with cli_session(server) as rma:  # the setup commands in one process
        rma.ok("add-model", "SAFE7", "--name", "SAFE7 signing appliance", "--kind",
               "hardware", "--life-months", "36", "--basis", "ship", "--price", "12000",
               "--unit-cost", "8000")
        rma.ok("add-model", "OTP2", "--name", "OTP2 token", "--kind", "hardware",
               "--life-months", "36", "--basis", "ship", "--price", "80")
        contract = rma.ok("add-customer", CUSTOMER_NAME, "--accepted-on", "2025-01-10",
                          "--address", "西安市高新区锦业路 8 号").strip().splitlines()[-1]
        other = rma.ok("add-customer", OTHER_NAME, "--accepted-on", "2025-01-10"
                       ).strip().splitlines()[-1]
        csv_path = tmp_path_factory.mktemp("advisories") / "units.csv"
        rows = [f"SAFE7-C000{n},SAFE7,{contract},L1,2025-0{n}-15," for n in (1, 2, 3)]
        rows += [f"OTP2-C0001,OTP2,{contract},T1,2025-02-01,",
                 f"OTP2-O0001,OTP2,{other},T1,2025-02-01,"]
        csv_path.write_text("serial,model,customer_contract,lot,shipped_on,activated_on\n"
                            + "\n".join(rows) + "\n", encoding="utf-8")
        rma.ok("import-units", str(csv_path))
        users = {"customer": "security@nw-settle.example", "other": "it@south-lottery.example",
                 "engineer": "engineer@adv.example", "manager": "manager@adv.example"}
        for key, email in users.items():
            extra = {"customer": ["--role", "customer", "--customer", contract],
                     "other": ["--role", "customer", "--customer", other],
                     "engineer": ["--role", "support"], "manager": ["--role", "manager"]}[key]
            rma.ok("create-user", email, *extra, "--language", "en", input=PASSWORD + "\n")
        token = rma.ok("create-token", users["customer"]).strip().splitlines()[-1]
    rma_number = _submit(server.url, token, users["customer"], "SAFE7-C0002")
    return {"contract": contract, "other": other, "users": users, "rma": rma_number}


def _submit(base: str, token: str, email: str, serial: str) -> str:
    """The customer submits an RMA through the API; returns its number."""
    body = {"contact": {"name": "Wang Lei", "phone": "+86 29 8888 0000", "email": email},
            "ship_to": "西安市高新区锦业路 8 号", "language": "en",
            "items": [{"serial": serial, "fault_description": "Fails its power-on self test"}]}
    request = urllib.request.Request(  # noqa: S310 - the test server's loopback http URL
        base + "/api/v1/rmas", data=json.dumps(body).encode(), method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json",
                 "Accept-Language": "en"})
    with _DIRECT.open(request, timeout=20) as response:
        assert response.status == 201, response.status
        return json.loads(response.read())["number"]


@pytest.fixture
def expected_statuses(monkeypatch) -> set[tuple[int, str]]:
    """(status, path) pairs the test expects an error answer from (a 404 for another
    customer's advisory, the 409 of a forced publish). Chromium logs such an answer as a
    console error, which the harness (``new_page``) would report; only the pairs put in
    the returned set are let through, any other console error still fails the test."""
    expected: set[tuple[int, str]] = set()
    note = conftest._note_console

    def _note(message, page, problems: list[str]) -> None:
        source = (message.location or {}).get("url", "")
        if message.type == "error" and any(
                f"status of {status}" in message.text and urlsplit(source).path == path
                for status, path in expected):
            return
        note(message, page, problems)

    monkeypatch.setattr(conftest, "_note_console", _note)
    return expected


def _log_in(page: Page, email: str, to: str) -> None:
    page.goto(f"/login?next={to}")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.locator("main input[type=submit]").click()
    expect(page).to_have_url(re.compile(re.escape(to.split("?")[0])))


def _no_sideways_scroll(page: Page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"{page.url} scrolls sideways: {width}px wide"


def _tick(server: Server) -> str:
    result = run_cli(server, "tick")
    assert result.returncode == 0, f"rma tick:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def _mails_to(mailbox, address: str, since: int) -> list:
    """Messages to ``address`` that arrived after the first ``since`` (the mailbox is
    shared by every server of the session)."""
    return [m for m in mailbox.messages[since:] if address in str(m["To"])]


def _body(message) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def _pdf_text(data: bytes) -> str:
    assert data.startswith(b"%PDF"), data[:20]
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def test_r_a1_r_a3_a_vendor_found_high_advisory_goes_to_its_customers_first(
        server: Server, adv: dict, new_page, mailbox, expected_statuses):
    users = adv["users"]
    engineer = new_page(**PHONE)
    _log_in(engineer, users["engineer"], "/staff/advisories/")
    engineer.click("#new-advisory")
    expect(engineer).to_have_url(re.compile(r"/staff/advisories/new$"))
    # R-A1: what each severity means stands beside the severity field.
    severity = engineer.locator("#severity")
    assert "severity-guidance" in (severity.get_attribute("aria-describedby") or "")
    expect(engineer.locator('#severity-guidance li[data-severity="high"]')).to_contain_text(
        "exploited remotely")
    expect(engineer.locator('#severity-guidance li[data-severity="low"]')).to_be_visible()
    _no_sideways_scroll(engineer)
    engineer.fill("#title", "SAFE7 firmware accepts unsigned updates")
    severity.select_option("high")
    engineer.check('input[name="models"][value="SAFE7"]')
    engineer.fill("#affected_versions", "SAFE7 firmware before 3.2.1")
    engineer.fill("#description", "The update service of the SAFE7 installs a firmware "
                                  "image without checking its signature.")
    engineer.fill("#solution", "Install firmware 3.2.1.")
    engineer.fill("#references", "CVE-2026-40001\nhttps://security.example/SA-SAFE7")
    engineer.check("#vendor_found")
    engineer.fill("#patch_released_on", PATCH_ON.isoformat())
    engineer.click("#save-advisory")

    expect(engineer).to_have_url(re.compile(r"/staff/advisories/SA-2026-\d{4}$"))
    number = engineer.locator("#advisory-number").inner_text().strip()
    assert ADVISORY_NUMBER.fullmatch(number), number
    expect(engineer.locator("#advisory-status")).to_have_attribute("data-status", "draft")
    expect(engineer.locator('#advisory-severity [data-severity="high"]')).to_have_text("High")
    # R-A2: notify within 2 working days of the patch.
    expect(engineer.locator("#notify-due")).to_contain_text(NOTIFY_DUE_ON.isoformat())
    expect(engineer.locator("#notify-overdue")).to_have_count(0)
    # R-A3: a vulnerability we found goes to the customers first.
    expect(engineer.locator("#publish")).to_be_disabled()
    expect(engineer.locator("#publish-when")).to_contain_text("Notify the customers first")
    # The installed base: the customer holding SAFE7 units, not the other one.
    row = engineer.locator(f'#affected-customers tr[data-contract="{adv["contract"]}"]')
    expect(row).to_have_attribute("data-noticed", "0")
    expect(row).to_contain_text(CUSTOMER_NAME)
    expect(engineer.locator(f'#affected-customers tr[data-contract="{adv["other"]}"]')
           ).to_have_count(0)
    _no_sideways_scroll(engineer)

    mail_mark = len(mailbox.messages)
    engineer.click("#notify-customers")
    expect(engineer.locator(".flash.success")).to_contain_text(f"{number}: 1 customer")
    expect(engineer.locator("#advisory-status")).to_have_attribute("data-status", "notified")
    expect(row).to_have_attribute("data-noticed", "1")
    expect(row.locator(".sent")).to_contain_text(users["customer"])
    expect(row.locator(".opened")).not_to_contain_text("2026")
    expect(engineer.locator("#public-from")).to_have_text(PUBLIC_FROM.isoformat())
    publish = engineer.locator("#publish")
    expect(publish).to_be_disabled()
    expect(engineer.locator("#publish-when")).to_contain_text(
        f"possible from {PUBLIC_FROM.isoformat()}")
    _no_sideways_scroll(engineer)
    # A forced post is refused by the server too, naming the same date.
    expected_statuses.add((409, f"/staff/advisories/{number}/publish"))
    publish.evaluate("button => { button.disabled = false; }")
    publish.click()
    expect(engineer.locator("#publish-form")).to_contain_text(PUBLIC_FROM.isoformat())
    expect(engineer.locator("#advisory-status")).to_have_attribute("data-status", "notified")

    # The notice reaches the customer's contact with the next tick; nobody else's.
    _tick(server)
    notices = [m for m in _mails_to(mailbox, users["customer"], mail_mark)
               if number in str(m["Subject"])]
    assert len(notices) == 1, [str(m["Subject"]) for m in mailbox.messages[mail_mark:]]
    assert "(high)" in str(notices[0]["Subject"]).lower(), notices[0]["Subject"]
    body = _body(notices[0])
    assert "SAFE7 firmware accepts unsigned updates" in body, body
    assert "please do not share it before it is published" in body, body
    assert f"/portal/advisories/{number}" in body, body
    assert not _mails_to(mailbox, users["other"], mail_mark)

    # The customer reads it in the portal on a phone: opening it marks the notice opened.
    customer = new_page(**PHONE)
    _log_in(customer, users["customer"], "/portal/")
    customer.click("#portal-advisories")
    listed = customer.locator(f'#advisories tr[data-number="{number}"]')
    expect(listed).to_contain_text("SAFE7 firmware accepts unsigned updates")
    expect(listed).to_have_class(re.compile(r"\bunacknowledged\b"))
    _no_sideways_scroll(customer)
    listed.locator("a").first.click()
    expect(customer).to_have_url(re.compile(re.escape(f"/portal/advisories/{number}") + "$"))
    expect(customer.locator("#advisory-solution")).to_have_text("Install firmware 3.2.1.")
    expect(customer.locator("#notice-acknowledged")).to_contain_text("Not yet")
    _no_sideways_scroll(customer)
    engineer.reload()
    expect(row.locator(".opened time")).to_have_count(1)
    expect(row.locator(".acknowledged time")).to_have_count(0)
    customer.click("#acknowledge")
    expect(customer.locator(".flash.success")).to_contain_text(f"{number} is acknowledged")
    expect(customer.locator("#notice-acknowledged time")).to_have_count(1)
    expect(customer.locator("#acknowledge")).to_have_count(0)
    engineer.reload()
    expect(row.locator(".acknowledged time")).to_have_count(1)
    engineer.goto("/staff/advisories/")
    counts = engineer.locator(f'#advisories tr[data-number="{number}"]')
    expect(counts.locator(".sent")).to_have_text("1")
    expect(counts.locator(".opened")).to_have_text("1")
    expect(counts.locator(".acknowledged")).to_have_text("1")

    # Not public yet: the public list does not show it, its public page is unknown.
    visitor = new_page()
    visitor.goto("/advisories")
    expect(visitor.locator("h1")).to_have_text("Security advisories")
    expect(visitor.locator(f'[data-number="{number}"]')).to_have_count(0)
    assert number not in visitor.content()
    # Another customer's portal does not know it.
    other = new_page()
    _log_in(other, users["other"], "/portal/advisories/")
    expect(other.locator(f'[data-number="{number}"]')).to_have_count(0)
    expected_statuses.add((404, f"/portal/advisories/{number}"))
    response = other.goto(f"/portal/advisories/{number}")
    assert response is not None and response.status == 404, response
    assert "SAFE7 firmware" not in other.content()


def test_r_r4_november_s_service_report_is_mailed_on_the_1st_and_downloaded_in_the_portal(
        server: Server, adv: dict, new_page, mailbox, tmp_path):
    customer_email = adv["users"]["customer"]
    # 1 December, 09:00 China time: the tick sends November's report, once.
    december = dataclasses.replace(server, env={**server.env, "RMA_FIXED_NOW": DECEMBER_FIRST})
    mail_mark = len(mailbox.messages)
    output = _tick(december)
    assert re.search(r"service-reports: sent \d+ \(2026-11\)", output), output
    reports = _mails_to(mailbox, customer_email, mail_mark)
    assert len(reports) == 1, [f'{m["To"]}: {m["Subject"]}'
                               for m in mailbox.messages[mail_mark:]]
    report_mail = reports[0]
    assert "2026-11" in str(report_mail["Subject"]), report_mail["Subject"]
    attachments = list(report_mail.iter_attachments())
    assert [a.get_content_type() for a in attachments] == ["application/pdf"], attachments
    mailed_pdf = attachments[0].get_content()
    mailed_text = _pdf_text(mailed_pdf)
    assert "服务报告" in mailed_text or "Service report" in mailed_text, mailed_text
    assert CUSTOMER_NAME in mailed_text, mailed_text
    assert "/portal/reports" in _body(report_mail)
    # A second tick that day sends nothing more.
    again_mark = len(mailbox.messages)
    output = _tick(december)
    assert "service-reports: sent" not in output or "sent 0" in output, output
    assert not _mails_to(mailbox, customer_email, again_mark)

    # The customer downloads it from the portal on a phone.
    customer = new_page(**PHONE)
    _log_in(customer, customer_email, "/portal/")
    customer.click("#portal-reports")
    expect(customer).to_have_url(re.compile(r"/portal/reports/$"))
    report_rows = customer.locator("#reports tbody tr")
    expect(report_rows).to_have_count(1)
    expect(report_rows.first).to_contain_text("2026-11")
    expect(report_rows.first).to_contain_text("2026-11-01")
    expect(report_rows.first).to_contain_text("2026-11-30")
    expect(report_rows.first).to_contain_text("2026-12-01")  # sent on the 1st
    _no_sideways_scroll(customer)
    with customer.expect_download() as download_info:
        report_rows.first.locator("a").click()
    download = download_info.value
    assert download.suggested_filename == f"service-report-{adv['contract']}-2026-11.pdf"
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    data = saved.read_bytes()
    text = _pdf_text(data)
    assert "服务报告" in text or "Service report" in text, text
    assert CUSTOMER_NAME in text, text
    assert adv["contract"] in text, text
    assert data == mailed_pdf  # the stored report is the one that was sent


def test_analytics_charts_and_tables_fit_a_phone_and_export_csv(
        server: Server, adv: dict, new_page, tmp_path):
    manager = new_page(**PHONE)
    _log_in(manager, adv["users"]["manager"], "/staff/analytics/")
    expect(manager.locator("h1")).to_have_text("Failure analytics")
    titles = {"by-model": "Return rate per product model", "causes": "Cause mix",
              "by-shipment-month": "Return rate per shipment month"}
    for key, title in titles.items():
        chart = manager.locator(f"#figure-{key} svg")
        expect(chart).to_have_count(1)
        expect(chart).to_have_attribute("role", "img")
        expect(chart.locator(":scope > title")).to_contain_text(title)
        expect(manager.locator(f"#table-{key} tbody tr").first).to_be_visible()
    # The SAFE7 line: 3 units shipped, the one returned today.
    safe7 = manager.locator("#table-by-model tbody tr", has_text="SAFE7")
    expect(safe7).to_have_count(1)
    expect(safe7).to_contain_text("33.3")  # 1 return of 3 units shipped, in percent
    _no_sideways_scroll(manager)

    with manager.expect_download() as download_info:
        manager.click("#export-by-model-csv")
    download = download_info.value
    saved = tmp_path / (download.suggested_filename or "by-model.csv")
    download.save_as(saved)
    data = saved.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf"), data[:20]
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    header = [cell.strip() for cell in
              manager.locator("#table-by-model thead th").all_inner_texts()]
    assert rows[0] == header, (rows[0], header)
    assert any(row and row[0] == "SAFE7" for row in rows[1:]), rows
