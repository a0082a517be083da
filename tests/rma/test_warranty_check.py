"""Public warranty check: page and ``GET /api/v1/warranty/<serial>`` (R-W1, R-W2)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from rma.extensions import db
from rma.models import Unit, UnitStatus
from tests.conftest import count_queries, make_app

EN = {"Accept-Language": "en"}


@pytest.fixture
def units(app, make_model, make_customer):
    """A small installed base; the test clock says 2026-11-25 (China time)."""
    tk3 = make_model("TK3", 36, "ship")
    tk5 = make_model("TK5", 60, "activation")
    lic = make_model("LIC", 12, "acceptance", kind="software")
    contract = make_customer("Acme", "2026-03-10")
    with app.app_context():
        from rma.services.catalog import customer_by_contract

        customer_id = customer_by_contract(contract).id
        rows = [
            Unit(serial="TK3-LEAP", model_id=tk3, customer_id=customer_id,
                 shipped_on=_d("2024-02-29")),
            Unit(serial="TK3-OLD", model_id=tk3, customer_id=customer_id,
                 shipped_on=_d("2023-05-15")),
            Unit(serial="TK5-NOACT", model_id=tk5, customer_id=customer_id,
                 shipped_on=_d("2022-01-10")),
            Unit(serial="TK5-ACT", model_id=tk5, customer_id=customer_id,
                 shipped_on=_d("2021-01-10"), activated_on=_d("2022-06-01")),
            Unit(serial="LIC-0001", model_id=lic, customer_id=customer_id,
                 shipped_on=_d("2026-02-01")),
            Unit(serial="TK3-SPARE", model_id=tk3, status=UnitStatus.IN_STOCK),
        ]
        db.session.add_all(rows)
        db.session.flush()
        replacement = Unit(serial="TK3-REPL", model_id=tk3, customer_id=customer_id,
                           shipped_on=_d("2026-05-01"), replaces_id=rows[1].id)
        db.session.add(replacement)
        db.session.commit()


def _d(text):
    from datetime import date

    return date.fromisoformat(text)


@pytest.mark.parametrize("serial, basis, start, end, in_warranty, days_left", [
    ("TK3-LEAP", "ship", "2024-02-29", "2027-02-28", True, 96),  # R-W2 + month rule
    ("TK3-OLD", "ship", "2023-05-15", "2026-05-14", False, 0),  # R-W2, expired
    ("TK5-NOACT", "ship_fallback", "2022-01-10", "2027-01-09", True, 46),  # not activated
    ("TK5-ACT", "activation", "2022-06-01", "2027-05-31", True, 188),
    ("LIC-0001", "acceptance", "2026-03-11", "2027-03-10", True, 106),  # R-W1, R-C2 start
    ("TK3-SPARE", "not_shipped", None, None, False, 0),
])
def test_R_W1_R_W2_api_answers(client, units, serial, basis, start, end, in_warranty,
                               days_left):
    response = client.get(f"/api/v1/warranty/{serial}")
    assert response.status_code == 200
    assert response.get_json() == {
        "serial": serial, "product_model": serial.split("-")[0], "kind": (
            "software" if serial.startswith("LIC") else "hardware"),
        "warranty_basis": basis, "warranty_start": start, "warranty_end": end,
        "in_warranty": in_warranty, "days_left": days_left, "replacement_of": None,
    }


def test_replacement_answer_names_the_original(client, units):
    body = client.get("/api/v1/warranty/tk3-repl").get_json()
    # inherit_min_days (default): later of original end 2026-05-14 and ship + 90 days
    assert body["replacement_of"] == "TK3-OLD"
    assert body["warranty_basis"] == "replacement_inherit_min_days"
    assert body["warranty_end"] == "2026-07-30"
    assert body["in_warranty"] is False


def test_D_8_malformed_serial_is_a_422_problem(client, units):
    response = client.get("/api/v1/warranty/ab%23c")
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["title"] == "Malformed serial" and "'ab#c'" in body["detail"]


def test_unknown_serial_is_a_404_problem(client, units):
    response = client.get("/api/v1/warranty/NOPE-0001")
    assert response.status_code == 404
    assert response.get_json()["detail"] == "serial 'NOPE-0001' is not known"


def test_public_answer_has_no_customer_data(client, units):
    text = client.get("/api/v1/warranty/TK3-LEAP").get_data(as_text=True)
    assert "Acme" not in text and "SC-" not in text and "customer" not in text


def test_lookup_is_one_query(app, client, units):
    with count_queries(app) as statements:
        assert client.get("/api/v1/warranty/TK3-LEAP").status_code == 200
    assert len(statements) == 1


def test_page_checks_many_serials_in_one_query(app, client, units):
    serials = "\n".join(["TK3-LEAP", " tk5-act ", "", "bad#", "NOPE-0001", "TK3-OLD"])
    with count_queries(app) as statements:
        page = client.post("/warranty", data={"serials": serials}, headers=EN)
    assert page.status_code == 200
    assert len(statements) == 1
    html = page.get_data(as_text=True)
    assert 'data-serial="TK3-LEAP"' in html and "2027-02-28" in html
    assert 'data-serial="TK5-ACT"' in html
    assert "Line 4: bad# is not a valid serial." in html
    assert "Line 5: serial NOPE-0001 is not known." in html
    assert "Out of warranty" in html


def test_page_refuses_more_than_fifty(client, units):
    serials = "\n".join(f"TK3-{n:04d}" for n in range(51))
    page = client.post("/warranty", data={"serials": serials}, headers=EN)
    assert page.status_code == 200
    assert "At most 50 serials at a time." in page.get_data(as_text=True)


def test_empty_submission_shows_field_error(client):
    page = client.post("/warranty", data={"serials": ""}, headers=EN)
    assert page.status_code == 200
    assert 'class="error" id="serials-error"' in page.get_data(as_text=True)


def test_rate_limited_per_client_address(database_url, tmp_path):
    app = make_app(database_url, tmp_path, RATELIMIT_ENABLED=True,
                   WARRANTY_RATE_LIMIT="3/minute")
    with app.app_context():
        if database_url.startswith("sqlite"):
            db.create_all()
        else:
            from tests.conftest import _reset_postgres

            _reset_postgres()
    client = app.test_client()
    codes = [client.get("/api/v1/warranty/NOPE-0001").status_code for _ in range(4)]
    assert codes == [404, 404, 404, 429]
    limited = client.get("/api/v1/warranty/NOPE-0001")
    assert limited.mimetype == "application/problem+json" and limited.headers["Retry-After"]
    other = client.get("/api/v1/warranty/NOPE-0001", environ_base={"REMOTE_ADDR": "10.0.0.9"})
    assert other.status_code == 404


def test_openapi_describes_the_warranty_endpoint(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    operation = spec["paths"]["/api/v1/warranty/{serial}"]["get"]
    assert set(operation["responses"]) >= {"200", "404", "422", "429"}
    fields = spec["components"]["schemas"]["Warranty"]["required"]
    assert fields == ["serial", "product_model", "kind", "warranty_basis", "warranty_start",
                      "warranty_end", "in_warranty", "days_left", "replacement_of"]


def test_unit_facts_follow_chain(app, units):
    with app.app_context():
        unit = db.session.scalar(select(Unit).where(Unit.serial == "TK3-REPL"))
        assert unit.facts().replaces.serial == "TK3-OLD"
