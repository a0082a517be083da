"""Successor models (issue 4, point 5): the admin says which other models may ship as a
replacement for a model; ``set_successors`` refuses the model itself and unknown ids,
changes nothing when it refuses, and is audited (R-R4)."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from rma.extensions import db
from rma.models import AuditEvent, ProductModel, model_successors
from rma.services import NotFoundError, ValidationError
from rma.services.audit import Actor
from rma.services.catalog import set_successors
from tests.conftest import count_queries


def codes(app, model_id: int) -> list[str]:
    with app.app_context():
        return [m.code for m in db.session.get(ProductModel, model_id).successors]


def audits(app) -> list[AuditEvent]:
    with app.app_context():
        return db.session.scalars(select(AuditEvent).where(
            AuditEvent.action == "product_model.successors_set").order_by(AuditEvent.id)).all()


@pytest.fixture
def models(make_model):
    return {code: make_model(code) for code in ("TK3", "TK4", "TK5", "LIC")}


def test_set_successors_replaces_the_list_and_audits_codes(app, models):
    with app.app_context():
        set_successors(Actor.cli("test"), models["TK3"], [models["TK5"], str(models["TK4"])])
    assert codes(app, models["TK3"]) == ["TK4", "TK5"]
    assert codes(app, models["TK4"]) == []  # one direction only
    with app.app_context():
        set_successors(Actor.cli("test"), models["TK3"], [models["TK5"], models["TK5"]])
    assert codes(app, models["TK3"]) == ["TK5"]
    events = audits(app)
    assert [(e.entity_id, e.before, e.after, e.actor_label) for e in events] == [
        ("TK3", {"successors": []}, {"successors": ["TK4", "TK5"]}, "cli:test"),
        ("TK3", {"successors": ["TK4", "TK5"]}, {"successors": ["TK5"]}, "cli:test"),
    ]


def test_set_successors_unchanged_list_writes_no_audit_and_empty_clears(app, models):
    with app.app_context():
        set_successors(Actor.cli("test"), models["TK3"], [models["TK4"]])
        set_successors(Actor.cli("test"), models["TK3"], [models["TK4"]])
    assert len(audits(app)) == 1
    with app.app_context():
        set_successors(Actor.cli("test"), models["TK3"], [])
    assert codes(app, models["TK3"]) == []
    assert audits(app)[-1].after == {"successors": []}


@pytest.mark.parametrize(("bad", "message"), [
    ("self", "TK3 cannot be its own replacement model"),
    ("unknown", "No product model has the id 9999"),
    ("text", "'x1' is not a product model id"),
    ("bool", "True is not a product model id"),
])
def test_set_successors_refuses_and_changes_nothing(app, models, bad, message):
    with app.app_context():
        set_successors(Actor.cli("test"), models["TK3"], [models["TK4"]])
    ids = {"self": [models["TK5"], models["TK3"]], "unknown": [models["TK5"], 9999],
           "text": [models["TK5"], "x1"], "bool": [True]}[bad]
    with app.app_context(), pytest.raises(ValidationError, match=message) as error:
        set_successors(Actor.cli("test"), models["TK3"], ids)
    assert error.value.field == "successors"
    assert codes(app, models["TK3"]) == ["TK4"]
    assert len(audits(app)) == 1


def test_set_successors_of_an_unknown_model_is_not_found(app, models):
    with app.app_context(), pytest.raises(NotFoundError):
        set_successors(Actor.cli("test"), 9999, [models["TK3"]])
    with app.app_context():
        assert db.session.execute(select(model_successors)).all() == []


# -- the admin page --------------------------------------------------------------------
def checkboxes(html: str) -> dict[str, bool]:
    """Checkbox value → ticked, in the replacement-models form."""
    found = {}
    for tag in re.findall(r'<input[^>]*name="successors"[^>]*>', html):
        value = re.search(r'value="(\d+)"', tag).group(1)
        found[value] = "checked" in tag
    return found


def test_admin_ticks_replacement_models_on_the_edit_page(login, app, models):
    client = login("admin")
    page = client.get(f"/admin/models/{models['TK3']}", headers={"Accept-Language": "en"})
    html = page.get_data(as_text=True)
    assert "Allowed replacement models" in html
    assert checkboxes(html) == {str(models[c]): False for c in ("LIC", "TK4", "TK5")}
    response = client.post(f"/admin/models/{models['TK3']}/successors",
                           data={"successors": [str(models["TK4"]), str(models["LIC"])]})
    assert response.status_code == 302
    assert response.headers["Location"] == f"/admin/models/{models['TK3']}"
    assert codes(app, models["TK3"]) == ["LIC", "TK4"]
    [event] = audits(app)
    assert event.actor_label == "admin@example.com" and event.actor_id is not None
    html = client.get(f"/admin/models/{models['TK3']}").get_data(as_text=True)
    assert checkboxes(html) == {str(models["LIC"]): True, str(models["TK4"]): True,
                                str(models["TK5"]): False}
    # Nothing ticked: the list is cleared.
    assert client.post(f"/admin/models/{models['TK3']}/successors",
                       data={}).status_code == 302
    assert codes(app, models["TK3"]) == []


@pytest.mark.parametrize(("value", "message"), [
    ("self", "TK3 cannot be its own replacement model"),
    ("9999", "No product model has the id 9999"),
    ("abc", "could not be coerced"),
])
def test_admin_bad_choice_is_shown_next_to_the_field(login, app, models, value, message):
    client = login("admin")
    posted = str(models["TK3"]) if value == "self" else value
    response = client.post(f"/admin/models/{models['TK3']}/successors",
                           data={"successors": [str(models["TK4"]), posted]},
                           headers={"Accept-Language": "en"})
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert 'id="successors-error"' in html and message in html
    assert 'value="TK3"' in html  # the details form is shown as stored
    assert codes(app, models["TK3"]) == []
    assert audits(app) == []


@pytest.mark.parametrize("role", ["warehouse", "manager", "support"])
def test_only_admins_set_replacement_models(login, app, models, role):
    client = login(role)
    response = client.post(f"/admin/models/{models['TK3']}/successors",
                           data={"successors": [str(models["TK4"])]})
    assert response.status_code == 403
    assert codes(app, models["TK3"]) == []


def test_unknown_model_successors_page_is_404(login, models):
    client = login("admin")
    assert client.post("/admin/models/9999/successors",
                       data={"successors": [str(models["TK4"])]}).status_code == 404


def test_edit_page_queries_do_not_grow_with_models(login, app, make_model, models):
    with app.app_context():
        set_successors(Actor.cli("test"), models["TK3"], [models["TK4"], models["TK5"]])
    client = login("admin")
    url = f"/admin/models/{models['TK3']}"
    with count_queries(app) as statements:
        assert client.get(url).status_code == 200
    few = len(statements)
    for n in range(10):
        make_model(f"NEW{n}")
    with app.app_context():
        set_successors(Actor.cli("test"), models["TK3"],
                       [models["TK4"], *[m.id for m in db.session.scalars(
                           select(ProductModel).where(ProductModel.code.like("NEW%")))]])
    with count_queries(app) as statements:
        assert client.get(url).status_code == 200
    assert len(statements) == few
