"""App factory, configuration layering, database settings and response headers."""

from __future__ import annotations

import os
import stat

import pytest
from sqlalchemy import text

from rma.extensions import db
from tests.conftest import make_app


def test_config_layers_defaults_env_then_test_mapping(tmp_path, monkeypatch):
    monkeypatch.setenv("RMA_TIMEZONE", "Asia/Urumqi")
    monkeypatch.setenv("RMA_WARRANTY_BATCH_MAX", "20")
    app = make_app(f"sqlite:///{tmp_path}/a.db", tmp_path, WARRANTY_BATCH_MAX=7)
    assert app.config["TIMEZONE"] == "Asia/Urumqi"  # environment beats the default
    assert app.config["WARRANTY_BATCH_MAX"] == 7  # the test mapping beats the environment
    assert app.config["LOGIN_RATE_LIMIT"] == "20/minute"  # default kept


def test_default_database_is_sqlite_in_the_instance_folder(tmp_path):
    app = make_app("", tmp_path)
    assert app.config["SQLALCHEMY_DATABASE_URI"] == (
        "sqlite:///" + str(tmp_path / "instance" / "rma.sqlite3"))


def test_secret_key_generated_once_and_kept_in_instance_folder(tmp_path):
    first = make_app(f"sqlite:///{tmp_path}/a.db", tmp_path, SECRET_KEY=None)
    second = make_app(f"sqlite:///{tmp_path}/a.db", tmp_path, SECRET_KEY=None)
    key_file = tmp_path / "instance" / "secret_key"
    assert first.config["SECRET_KEY"] == second.config["SECRET_KEY"] == key_file.read_text()
    assert len(first.config["SECRET_KEY"]) >= 40
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert not [p for p in key_file.parent.iterdir() if p.name.startswith("secret_key.")]


def test_secret_key_from_environment_wins(tmp_path, monkeypatch):
    monkeypatch.setenv("RMA_SECRET_KEY", "from-the-environment")
    app = make_app(f"sqlite:///{tmp_path}/a.db", tmp_path, SECRET_KEY=None)
    assert app.config["SECRET_KEY"] == "from-the-environment"
    assert not (tmp_path / "instance" / "secret_key").exists()


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path):
    app = make_app(f"sqlite:///{tmp_path}/wal.db", tmp_path)
    with app.app_context():
        assert db.session.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert db.session.execute(text("PRAGMA foreign_keys")).scalar() == 1


def test_postgres_url_uses_psycopg3(tmp_path):
    app = make_app("postgresql://u@127.0.0.1:5432/x", tmp_path)
    assert app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql+psycopg://")


@pytest.mark.parametrize("path", ["/", "/no-such-page", "/static/css/app.css", "/login"])
def test_security_headers_on_every_page(client, path):
    response = client.get(path)
    response.close()  # a static file is streamed
    csp = response.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert response.headers["X-Request-ID"]
    assert "Strict-Transport-Security" not in response.headers
    assert len(response.headers.getlist("Content-Security-Policy")) == 1


@pytest.mark.parametrize("path", ["/api/v1/openapi.json", "/api/v1/warranty/NOPE-1", "/api/x"])
def test_api_answers_get_the_rest_header_set(client, path):
    response = client.get(path)
    csp = response.headers["Content-Security-Policy"]
    assert csp == "default-src 'none'; frame-ancestors 'none'"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_request_id_is_echoed_when_sane_and_made_otherwise(client):
    assert client.get("/", headers={"X-Request-ID": "abc-123"}).headers["X-Request-ID"] == "abc-123"
    made = {client.get("/", headers={"X-Request-ID": bad}).headers["X-Request-ID"]
            for bad in ["", "a b", "x" * 65, "<script>", "abc\u00e9"]}
    assert len(made) == 5 and all(len(i) == 16 and i.isalnum() for i in made)


def test_hsts_when_cookies_are_secure(database_url, tmp_path):
    app = make_app(database_url, tmp_path, SESSION_COOKIE_SECURE=True)
    response = app.test_client().get("/static/css/app.css")
    response.close()
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000"


def test_unknown_page_is_a_404_page_and_api_gets_a_problem(client):
    page = client.get("/no-such-page")
    assert page.status_code == 404 and page.mimetype == "text/html"
    api = client.get("/api/v1/no-such-thing")
    assert api.status_code == 404
    assert api.mimetype == "application/problem+json"
    assert api.get_json()["status"] == 404


def test_session_cookie_is_httponly_and_samesite(login):
    client = login("admin")
    cookie = client.get_cookie("session")
    assert cookie is not None and cookie.http_only and cookie.same_site == "Lax"


def test_templates_do_not_use_inline_script_or_style():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "templates"
    for path in root.rglob("*.html"):
        source = path.read_text()
        assert "<script>" not in source and " style=" not in source and "<style" not in source, path


def test_numeric_secret_key_from_environment_stays_text(tmp_path, monkeypatch):
    monkeypatch.setenv("RMA_SECRET_KEY", "20261125")
    app = make_app(f"sqlite:///{tmp_path}/a.db", tmp_path, SECRET_KEY=None)
    assert app.config["SECRET_KEY"] == "20261125"
    with app.app_context():
        db.create_all()
    assert app.test_client().get("/login").status_code == 200
