"""Journey 5: incidents (issue 6). A customer reports an urgent incident in the portal on a
390 px phone and sees the targets it is promised (R-I1, R-I2, R-I3). Another urgent fault
was phoned in at 07:30 China time; the hotline logs the call only at noon, with the time
the customer called (a call logged after the fact), and nobody answers it: ``rma tick``
climbs the ladder (R-I4) to the account manager (1 h), the technical lead and the lead's
deputy (2 h) and the service director (4 h), not yet the CTO (12 h); each is told once by
e-mail and in the app, also when two ticks run at the same moment (two machines), and a
later tick tells nobody again. The director sees the notice on
a phone; the engineer then contacts the customer (late: the 30-minute target is missed)
and gives the diagnosis, which the customer reads in the portal and by e-mail.

The server's clock is pinned to 2026-11-25 12:00 China time (``FIXED_NOW``); every target
runs on calendar hours (the default, D-7), so at noon the 07:30 call is 4 h 30 min old.
The admin sets the role holders on the escalation page (there is no CLI command for
them), which is part of the journey. Selectors are ids, names and data attributes.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import ON_SQLITE, Server, cli_session, run_cli

PASSWORD = "e2e-incident-password"
CUSTOMER_NAME = "西南清算银行"
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
INCIDENT_NUMBER = re.compile(r"INC-2026-\d{6}")
CALLED_AT = "2026-11-25T07:30"  # China time: 4 h 30 min before the server's "now"
STAFF = {  # key: (e-mail, role); the escalation holders are managers
    "engineer": ("engineer@inc.example", "support"),
    "admin": ("admin@inc.example", "admin"),
    "account_manager": ("am@inc.example", "manager"),
    "lead": ("lead@inc.example", "manager"),
    "lead_deputy": ("lead-deputy@inc.example", "manager"),
    "director": ("director@inc.example", "manager"),
    "cto": ("cto@inc.example", "manager"),
}
pytestmark = ON_SQLITE  # the PostgreSQL half is test_incident_journey_pg.py (its own worker)


@pytest.fixture(scope="module")
def inc(server: Server, tmp_path_factory) -> dict:
    """A customer with two units in service and a portal user, a support engineer, an
    admin, and managers who will hold the escalation roles."""
    with cli_session(server) as rma:  # the setup commands in one process
        rma.ok("add-model", "HSM9", "--name", "HSM9 signing server", "--kind", "hardware",
               "--life-months", "36", "--basis", "ship", "--price", "9000")
        contract = rma.ok("add-customer", CUSTOMER_NAME, "--accepted-on", "2025-03-01",
                          "--address", "成都市高新区天府大道 66 号").strip().splitlines()[-1]
        csv_path = tmp_path_factory.mktemp("incidents") / "units.csv"
        rows = [f"HSM9-C000{n},HSM9,{contract},L1,2025-02-15," for n in (1, 2)]
        csv_path.write_text("serial,model,customer_contract,lot,shipped_on,activated_on\n"
                            + "\n".join(rows) + "\n", encoding="utf-8")
        rma.ok("import-units", str(csv_path))
        customer = "ops@sw-clearing.example"
        rma.ok("create-user", customer, "--role", "customer", "--customer", contract,
               "--language", "en", input=PASSWORD + "\n")
        for email, role in STAFF.values():
            rma.ok("create-user", email, "--role", role, "--language", "en",
                   input=PASSWORD + "\n")
    return {"contract": contract, "customer": customer,
            "staff": {key: email for key, (email, _role) in STAFF.items()}}


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


def _set_holder(page: Page, role: str, email: str, *, deputy: str | None = None,
                customer: str | None = None) -> None:
    """Fill the admin's "Set a holder" form (options read "<email> (<role>)")."""
    form = page.locator("#holder-form")
    form.locator("#role").select_option(role)
    form.locator("#user_id").select_option(label=f"{email} ({dict(STAFF.values())[email]})")
    if deputy is not None:
        form.locator("#deputy_id").select_option(
            label=f"{deputy} ({dict(STAFF.values())[deputy]})")
    if customer is not None:
        form.locator("#customer_id").select_option(label=customer)
    form.locator("#save-holder").click()
    expect(page.locator(".flash.success")).to_contain_text("holder saved")


def _rung(page: Page, role: str):
    return page.locator(f'#rungs tr[data-role="{role}"]')


def test_r_i1_r_i3_a_customer_reports_an_urgent_incident_on_a_phone(
        server: Server, inc: dict, new_page, mailbox):
    mail_mark = len(mailbox.messages)
    page = new_page(**PHONE)
    _log_in(page, inc["customer"], "/portal/incidents")
    page.click("#report-incident")
    expect(page).to_have_url(re.compile(r"/portal/incidents/new$"))
    # R-I3: each priority is explained beside its choice.
    urgent = page.locator('input[name="priority"][value="urgent"]')
    help_id = urgent.get_attribute("aria-describedby")
    expect(page.locator(f'[id="{help_id}"]')).to_contain_text("business system crashed")
    _no_sideways_scroll(page)
    urgent.check()
    page.fill("#title", "Signing service down")
    page.fill("#description", "HSM9-C0001 answers no signing request since 11:50.")
    page.fill("#serials", "hsm9-c0001")
    page.fill("#reporter_contact", "+86 28 8555 0101")
    page.click("#submit-incident")

    expect(page).to_have_url(re.compile(r"/portal/incidents/INC-2026-\d{6}$"))
    number = page.locator("#incident-number").inner_text().strip()
    assert INCIDENT_NUMBER.fullmatch(number), number
    expect(page.locator(".flash.success")).to_contain_text("30 minutes")
    expect(page.locator("#incident-priority")).to_have_text("Urgent")
    expect(page.locator("#incident-facts .serials")).to_contain_text("HSM9-C0001")
    # R-I1: contact within 30 minutes; R-I2: the diagnosis within 24 hours (calendar hours).
    contact = page.locator("#target-contact")
    expect(contact).to_have_attribute("data-state", "on_track")
    expect(contact).to_contain_text("2026-11-25 12:30")
    expect(page.locator("#target-diagnosis")).to_contain_text("2026-11-26 12:00")
    _no_sideways_scroll(page)
    page.goto("/portal/incidents")
    expect(page.locator(f'[id="incident-{number}"]')).to_contain_text("Signing service down")
    _no_sideways_scroll(page)

    # The support engineer is told in the app at once.
    engineer = new_page()
    _log_in(engineer, inc["staff"]["engineer"], "/staff/support/notifications")
    notice = engineer.locator('#notices li[data-kind="incident_reported"]',
                              has_text=number)
    expect(notice).to_have_count(1)
    expect(notice).to_contain_text("Signing service down")
    # The queue lists it, next due: the contact at 12:30.
    engineer.goto("/staff/support/")
    row = engineer.locator(f'#queue tr[data-number="{number}"]')
    expect(row).to_contain_text("2026-11-25 12:30")

    # The acknowledgement reaches the customer with the mail job of the next tick.
    _tick(server)
    acks = [m for m in _mails_to(mailbox, inc["customer"], mail_mark)
            if number in str(m["Subject"])]
    assert len(acks) == 1, [str(m["Subject"]) for m in mailbox.messages[mail_mark:]]
    assert "2026-11-25 12:30" in _body(acks[0])


def test_r_i4_an_urgent_incident_goes_unanswered_and_climbs_to_the_service_director(
        server: Server, inc: dict, new_page, mailbox, refused_posts):
    staff = inc["staff"]

    # The admin names the holders: an account manager for this customer, the technical
    # lead with a deputy, the service director and the CTO; nobody is president yet.
    admin = new_page()
    _log_in(admin, staff["admin"], "/admin/escalation")
    expect(admin.locator("#ladder-source")).to_contain_text("SPEC R-I4")
    expect(admin.locator('#ladder tr[data-role="service_director"] input').first
           ).to_have_value("4")  # urgent column: the SPEC's 4 hours
    _set_holder(admin, "account_manager", staff["account_manager"],
                customer=f"{CUSTOMER_NAME} · {inc['contract']}")
    _set_holder(admin, "technical_lead", staff["lead"], deputy=staff["lead_deputy"])
    _set_holder(admin, "service_director", staff["director"])
    _set_holder(admin, "cto", staff["cto"])
    lead_row = admin.locator('#holders tr[data-role="technical_lead"]')
    expect(lead_row).to_contain_text(staff["lead"])
    expect(lead_row).to_contain_text(staff["lead_deputy"])
    expect(admin.locator('#holders tr[data-role="account_manager"]')).to_contain_text(
        CUSTOMER_NAME)
    expect(admin.locator('.missing-holder[data-role="president"]')).to_be_visible()
    expect(admin.locator('.missing-holder[data-role="service_director"]')).to_have_count(0)

    # Noon: the hotline logs the 07:30 call. A report time in the future is refused
    # beside its field; then the real one.
    engineer = new_page()
    _log_in(engineer, staff["engineer"], "/staff/support/incidents/new")
    refused_posts.add("/staff/support/incidents/new")
    engineer.fill("#contract", inc["contract"])
    engineer.select_option("#priority", "urgent")
    expect(engineer.locator("#incident-form")).to_contain_text("business system crashed")
    engineer.fill("#title", "Clearing link to the regional centre down")
    engineer.fill("#description", "Night shift called: no transaction reaches the "
                                  "regional clearing centre through HSM9-C0002.")
    engineer.fill("#serials", "HSM9-C0002")
    engineer.fill("#reporter_name", "Liu Yang")
    engineer.fill("#reporter_contact", "+86 28 8555 0199")
    engineer.select_option("#channel", "phone")
    engineer.fill("#reported_at", "2026-11-25T13:00")
    engineer.click("#record-incident")
    expect(engineer.locator("#reported_at-error")).to_be_visible()
    engineer.fill("#reported_at", CALLED_AT)
    engineer.click("#record-incident")
    expect(engineer).to_have_url(re.compile(r"/staff/support/incidents/INC-2026-\d{6}$"))
    number = engineer.locator("h1.rma-number").inner_text().strip()
    assert INCIDENT_NUMBER.fullmatch(number), number
    incident_url = f"/staff/support/incidents/{number}"
    # Every clock counts from 07:30 (R-I1): the contact was due at 08:00, already breached.
    expect(engineer.locator(".flash.success")).to_contain_text("2026-11-25 08:00")
    expect(engineer.locator("#reported-at")).to_contain_text("2026-11-25 07:30")
    contact = engineer.locator('#clocks tr[data-target="contact"]')
    expect(contact).to_have_attribute("data-state", "breached")
    expect(contact.locator(".due-at")).to_contain_text("2026-11-25 08:00")
    expect(engineer.locator('#clocks tr[data-target="diagnosis"] .due-at')).to_contain_text(
        "2026-11-26 07:30")
    # The ladder for an urgent incident (R-I4): nothing has fired before the tick runs.
    expected_due = {"account_manager": "2026-11-25 08:30", "technical_lead": "2026-11-25 09:30",
                    "service_director": "2026-11-25 11:30", "cto": "2026-11-25 19:30",
                    "president": "2026-11-26 07:30"}
    for role, due in expected_due.items():
        expect(_rung(engineer, role)).to_have_attribute("data-fired", "no")
        expect(_rung(engineer, role)).to_contain_text(due)
    expect(engineer.locator("#incident-escalated")).to_have_count(0)

    # Nobody answers. The tick runs late (three rungs are past) and on two machines at
    # the same moment: each rung fires once.
    mail_mark = len(mailbox.messages)
    with ThreadPoolExecutor(max_workers=2) as pool:
        outputs = list(pool.map(lambda _: _tick(server), range(2)))
    fired = [int(n) for out in outputs for n in re.findall(r"escalation: fired (\d+)", out)]
    assert sum(fired) == 3, outputs  # account manager, technical lead, service director
    engineer.goto(incident_url)
    for role in ("account_manager", "technical_lead", "service_director"):
        expect(_rung(engineer, role)).to_have_attribute("data-fired", "yes")
    for role in ("cto", "president"):
        expect(_rung(engineer, role)).to_have_attribute("data-fired", "no")
    expect(_rung(engineer, "service_director")).to_contain_text("2026-11-25 12:00")  # fired
    told_lead = _rung(engineer, "technical_lead").locator(".recipients")
    expect(told_lead).to_contain_text(staff["lead"])
    expect(told_lead).to_contain_text(staff["lead_deputy"])
    expect(_rung(engineer, "account_manager").locator(".recipients")).to_contain_text(
        staff["account_manager"])
    expect(_rung(engineer, "president").locator(".recipients")).to_contain_text(
        "nobody holds this role")
    expect(engineer.locator("#incident-escalated")).to_contain_text("Service director")
    expect(engineer.locator("#incident-escalated")).to_contain_text("4 h")
    expect(engineer.locator('#clocks tr[data-target="contact"]')).to_have_attribute(
        "data-state", "breached")
    escalated = engineer.locator('#timeline li[data-kind="escalated"]')
    expect(escalated).to_have_count(3)
    timeline_before = engineer.locator("#timeline").inner_text()

    # The e-mails: one to each holder and to the lead's deputy; none to the CTO yet.
    about = {key: [m for m in _mails_to(mailbox, staff[key], mail_mark)
                   if number in str(m["Subject"])]
             for key in ("account_manager", "lead", "lead_deputy", "director", "cto")}
    counts = {key: len(mails) for key, mails in about.items()}
    assert counts == {"account_manager": 1, "lead": 1, "lead_deputy": 1, "director": 1,
                      "cto": 0}, counts
    director_mail = about["director"][0]
    assert "4 h" in str(director_mail["Subject"]), director_mail["Subject"]
    body = _body(director_mail)
    assert "escalated to you as service director" in body, body
    assert "2026-11-25 07:30" in body and "No engineer is assigned yet." in body, body
    assert incident_url in body, body
    deputy_body = _body(about["lead_deputy"][0])
    assert "You are the deputy of the technical lead" in deputy_body, deputy_body

    # A second tick (twice, or on another machine) tells nobody again.
    mail_total = len(mailbox.messages)
    _tick(server)
    assert len(mailbox.messages) == mail_total, [
        f'{m["To"]}: {m["Subject"]}' for m in mailbox.messages[mail_total:]]
    engineer.goto(incident_url)
    expect(engineer.locator('#timeline li[data-kind="escalated"]')).to_have_count(3)
    assert engineer.locator("#timeline").inner_text() == timeline_before
    for role in ("account_manager", "technical_lead", "service_director"):
        expect(_rung(engineer, role)).to_have_attribute("data-fired", "yes")
    expect(_rung(engineer, "cto")).to_have_attribute("data-fired", "no")

    # The service director, on a phone: one unread notice, about this incident.
    director = new_page(**PHONE)
    _log_in(director, staff["director"], "/staff/support/notifications")
    expect(director.locator("#nav-unread")).to_have_text("1")
    notice = director.locator("#notices li.notice")
    expect(notice).to_have_count(1)
    expect(notice).to_have_attribute("data-kind", "escalation")
    expect(notice).to_contain_text(number)
    expect(notice).to_contain_text("service director")
    _no_sideways_scroll(director)
    notice.locator(f'a[href$="{incident_url}"]').click()
    expect(director).to_have_url(re.compile(re.escape(incident_url) + "$"))
    expect(director.locator("#incident-escalated")).to_contain_text("Service director")
    director.goto("/staff/support/notifications")
    director.locator("#mark-all-read button").click()
    expect(director.locator("#nav-unread")).to_have_count(0)
    # The deputy was told in the app too.
    deputy = new_page()
    _log_in(deputy, staff["lead_deputy"], "/staff/support/notifications")
    expect(deputy.locator('#notices li[data-kind="escalation_deputy"]')).to_contain_text(number)

    # The engineer finally calls the customer back, then gives the diagnosis (R-I1, R-I2).
    engineer.goto(incident_url)
    contact_form = engineer.locator("#action-contact")
    contact_form.locator("#contact-engineer").select_option(label=staff["engineer"])
    contact_form.locator("#contact-note").fill("Called Liu Yang back; link checked remotely.")
    engineer.click("#submit-contact")
    expect(engineer.locator("#incident-status")).to_have_attribute("data-status", "contacted")
    expect(engineer.locator("#incident-engineer")).to_have_text(staff["engineer"])
    expect(engineer.locator('#clocks tr[data-target="contact"]')).to_have_attribute(
        "data-state", "missed")  # done at 12:00, due at 08:00
    diagnosis = "The HSM9-C0002 uplink certificate expired at 07:00; a new one is issued."
    engineer.fill("#diagnose-diagnosis", diagnosis)
    engineer.click("#submit-diagnose")
    expect(engineer.locator("#incident-status")).to_have_attribute("data-status", "diagnosed")
    expect(engineer.locator("#incident-diagnosis")).to_have_text(diagnosis)
    expect(engineer.locator('#clocks tr[data-target="diagnosis"]')).to_have_attribute(
        "data-state", "met")

    # The customer, on a phone, reads the diagnosis; the escalations stay internal.
    customer = new_page(**PHONE)
    _log_in(customer, inc["customer"], f"/portal/incidents/{number}")
    expect(customer.locator("#incident-diagnosis")).to_have_text(diagnosis)
    expect(customer.locator("#incident-engineer")).to_contain_text(staff["engineer"])
    expect(customer.locator("#target-contact")).to_have_attribute("data-state", "missed")
    expect(customer.locator("#target-diagnosis")).to_have_attribute("data-state", "met")
    expect(customer.locator('#timeline li[data-kind="diagnosed"]')).to_have_count(1)
    expect(customer.locator('#timeline li[data-kind="escalated"]')).to_have_count(0)
    _no_sideways_scroll(customer)

    # The diagnosis e-mail goes out with the next tick; still no second escalation.
    mail_mark = len(mailbox.messages)
    _tick(server)
    diagnosed = [m for m in _mails_to(mailbox, inc["customer"], mail_mark)
                 if number in str(m["Subject"])]
    assert len(diagnosed) == 1, [str(m["Subject"]) for m in mailbox.messages[mail_mark:]]
    assert "uplink certificate expired" in _body(diagnosed[0])
    holders = [staff[k] for k in ("account_manager", "lead", "lead_deputy", "director", "cto")]
    assert not [m for m in mailbox.messages[mail_mark:]
                if any(h in str(m["To"]) for h in holders)]
