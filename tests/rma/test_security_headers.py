"""Security headers, cookie flags and CSRF (issue 8, point 4).

* every page carries a Content-Security-Policy whose script and style sources allow no
  'unsafe-inline' or 'unsafe-eval', denies framing (frame-ancestors 'none' and
  X-Frame-Options DENY), nosniff and a Referrer-Policy; the API gets its own short set;
* since the policy forbids inline code, no page may rely on it: no inline <script>, no
  ``on…=`` handler and no ``style=`` attribute (the browser would silently ignore them);
* with ``RMA_SESSION_COOKIE_SECURE=true`` the session cookie is Secure, HttpOnly and
  SameSite=Lax, and HSTS is sent;
* every form that POSTs, on every page any role can open, carries a ``csrf_token``; a
  POST without it is refused with 400 and changes nothing.

This module runs with CSRF protection on (the conftest turns it off for other tests).
"""

from __future__ import annotations

import re
import shutil
from html.parser import HTMLParser

import pytest
from sqlalchemy import func, select

from rma.extensions import db
from rma.models import Incident, IncidentEvent, Rma
from tests.conftest import TEST_PASSWORD, _reset_postgres, _sqlite_schema, make_app
from tests.rma.test_authz_matrix import (
    ADMIN,
    CUSTOMER_A,
    EMAILS,
    FINANCE,
    MANAGER,
    MAY_BE_UNAVAILABLE,
    SUPPORT,
    build_objects,
    routes,
)

EN = {"Accept-Language": "en"}
PAGE_HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


@pytest.fixture
def app_config() -> dict:
    return {"WTF_CSRF_ENABLED": True}


# -- helpers ---------------------------------------------------------------------------
def csp_directives(header: str) -> dict[str, list[str]]:
    directives = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            directives[words[0].lower()] = words[1:]
    return directives


def assert_page_headers(response, what: str) -> None:
    for name, value in PAGE_HEADERS.items():
        assert response.headers.get(name) == value, (what, name)
    csp = csp_directives(response.headers.get("Content-Security-Policy", ""))
    assert csp.get("frame-ancestors") == ["'none'"], what
    for directive in ("script-src", "style-src"):
        sources = csp.get(directive, csp.get("default-src"))
        assert sources, (what, directive)
        assert "'unsafe-inline'" not in sources and "'unsafe-eval'" not in sources, (
            what, directive, sources)
    assert "default-src" in csp and "'none'" in csp["object-src"], what


class PageScan(HTMLParser):
    """Collects POST forms (and whether each has a csrf_token input) and inline code."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict] = []
        self.inline: list[str] = []
        self._form: dict | None = None
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        for name, _value in attrs:
            if name == "style" or name.startswith("on"):
                self.inline.append(f"<{tag} {name}=…>")
        if tag == "form":
            self._form = {"method": (attributes.get("method") or "get").lower(),
                          "action": attributes.get("action") or "", "csrf": False}
            self.forms.append(self._form)
        elif tag == "input" and self._form is not None:
            name = attributes.get("name") or ""
            # a form built with a prefix names it "<prefix>-csrf_token"
            if (name == "csrf_token" or name.endswith("-csrf_token")) and attributes.get("value"):
                self._form["csrf"] = True
        elif tag == "script":
            self._in_script = "src" not in attributes
        elif tag == "style":
            self.inline.append("<style> block")

    def handle_endtag(self, tag):
        if tag == "form":
            self._form = None
        elif tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script and data.strip():
            self.inline.append(f"inline <script>: {data.strip()[:40]}")


def csrf_token_of(html: str) -> str:
    match = re.search(r'name="(?:[\w-]+-)?csrf_token"[^>]*value="([^"]+)"', html)
    assert match is not None, "no csrf_token on the page"
    return match.group(1)


def log_in(client, email: str) -> None:
    page = client.get("/login", headers=EN).get_data(as_text=True)
    response = client.post("/login", data={"email": email, "password": TEST_PASSWORD,
                                           "csrf_token": csrf_token_of(page)}, headers=EN)
    assert response.status_code == 302, response.status_code


# -- headers -----------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/", "/login", "/warranty", "/advisories", "/nope",
                                  "/static/css/app.css"])
def test_pages_error_pages_and_static_files_carry_the_headers(client, path):
    response = client.get(path, headers=EN)
    response.close()
    assert response.status_code in (200, 404)
    assert_page_headers(response, path)
    assert "Strict-Transport-Security" not in response.headers  # plain HTTP in tests


def test_the_api_gets_its_own_strict_set(client):
    response = client.get("/api/v1/openapi.json")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    csp = csp_directives(response.headers["Content-Security-Policy"])
    assert csp["default-src"] == ["'none'"] and csp["frame-ancestors"] == ["'none'"]


@pytest.fixture
def secure_app(database_url, tmp_path, tmp_path_factory, monkeypatch):
    """An app configured as in production over HTTPS: ``RMA_SESSION_COOKIE_SECURE=true``."""
    if database_url.startswith("sqlite:///"):
        shutil.copyfile(_sqlite_schema(tmp_path_factory), database_url[len("sqlite:///"):])
    monkeypatch.setenv("RMA_SESSION_COOKIE_SECURE", "true")
    app = make_app(database_url, tmp_path)
    with app.app_context():
        if database_url.startswith("sqlite"):
            db.create_all()
        else:
            _reset_postgres()
    return app


def test_session_cookie_is_secure_httponly_and_lax_when_configured(secure_app):
    from rma.services.audit import Actor
    from rma.services.users import create_user

    with secure_app.app_context():
        create_user(Actor.cli("test"), "adam@vendor.example", "admin", TEST_PASSWORD, None,
                    "en")
    client = secure_app.test_client()
    response = client.post("/login", data={"email": "adam@vendor.example",
                                           "password": TEST_PASSWORD},
                           base_url="https://localhost", headers=EN)
    assert response.status_code == 302
    cookies = [value for name, value in response.headers.items() if name == "Set-Cookie"]
    session = [c for c in cookies if c.startswith("session=")]
    assert len(session) == 1, cookies
    flags = {part.strip().lower() for part in session[0].split(";")[1:]}
    assert {"secure", "httponly", "samesite=lax"} <= flags, flags
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")


def test_session_cookie_is_httponly_and_lax_by_default(client, make_user):
    make_user("adam@vendor.example", "admin")
    log_in(client, "adam@vendor.example")
    response = client.get("/", headers=EN)
    assert response.status_code == 200
    cookie = client.get_cookie("session")
    assert cookie is not None and cookie.http_only and cookie.same_site == "Lax"


# -- every form carries a CSRF token; pages use no inline code -------------------------------
def test_every_post_form_on_every_page_has_a_csrf_token_and_no_inline_code(app):
    objects = build_objects(app)
    pages = [path for endpoint, method, path, _ in routes(app, objects)
             if method == "GET" and not path.startswith(("/api/", "/static/"))
             and endpoint not in MAY_BE_UNAVAILABLE]
    anonymous = app.test_client()
    missing: list[str] = []
    inline: list[str] = []
    checked_forms = 0
    # admin sees nearly every staff action; finance and manager own the rest (payments,
    # credit notes, release on credit, the override); customer A sees the portal's.
    for role in [None, CUSTOMER_A, FINANCE, MANAGER, ADMIN]:
        client = anonymous if role is None else app.test_client()
        if role is not None:
            log_in(client, EMAILS[role])
        for path in pages:
            response = client.get(path, headers=EN)
            assert response.status_code < 500, (role, path, response.status_code)
            if not response.mimetype == "text/html":
                continue
            assert_page_headers(response, path)
            scan = PageScan()
            scan.feed(response.get_data(as_text=True))
            for form in scan.forms:
                if form["method"] == "post":
                    checked_forms += 1
                    if not form["csrf"]:
                        missing.append(f"{role} {path}: form → {form['action']}")
            inline += [f"{role} {path}: {item}" for item in scan.inline]
    assert checked_forms > 50  # the walk reached the action forms, not just the log-in
    assert not missing, "\n".join(sorted(set(missing)))
    assert not inline, "\n".join(sorted(set(inline)))


# -- a POST without the token is refused ----------------------------------------------------
def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def test_login_without_a_csrf_token_is_400(client, make_user):
    make_user("adam@vendor.example", "admin")
    response = client.post("/login", data={"email": "adam@vendor.example",
                                           "password": TEST_PASSWORD}, headers=EN)
    assert response.status_code == 400
    assert client.get_cookie("session") is None or client.get("/admin/").status_code == 302


def test_rma_form_without_a_csrf_token_is_400_and_opens_nothing(app, client):
    objects = build_objects(app)
    log_in(client, EMAILS[CUSTOMER_A])
    with app.app_context():
        before = count(Rma)
    response = client.post("/portal/rmas/new", headers=EN, data={
        "contact_name": "Alice", "contact_phone": "+86 21 5555 0101",
        "contact_email": "alice@a.example", "ship_to": "1 Bund Road",
        "serials": "TK3-A0004", "description": "Dead"})
    assert response.status_code == 400
    with app.app_context():
        assert count(Rma) == before
    assert objects["rma"]


def test_incident_action_without_a_csrf_token_is_400_and_changes_nothing(app, client):
    objects = build_objects(app)
    log_in(client, EMAILS[SUPPORT])
    with app.app_context():
        before = count(IncidentEvent)
    response = client.post(f"/staff/support/incidents/{objects['incident']}/note",
                           headers=EN, data={"note-text": "Called the bank."})
    assert response.status_code == 400
    with app.app_context():
        assert count(IncidentEvent) == before
        assert db.session.scalar(select(func.count()).select_from(Incident)) == 1


def test_the_same_incident_action_with_the_token_is_accepted(app, client):
    """The 400 above is the missing token, not a bad form."""
    objects = build_objects(app)
    log_in(client, EMAILS[SUPPORT])
    page = client.get(f"/staff/support/incidents/{objects['incident']}", headers=EN)
    token = csrf_token_of(page.get_data(as_text=True))
    with app.app_context():
        before = count(IncidentEvent)
    response = client.post(f"/staff/support/incidents/{objects['incident']}/note",
                           headers=EN, data={"note-text": "Called the bank.",
                                             "note-csrf_token": token})
    assert response.status_code == 302
    with app.app_context():
        assert count(IncidentEvent) == before + 1


def test_the_api_needs_no_csrf_token(app, client):
    """The JSON API is CSRF-exempt because only a bearer token authenticates it (a
    browser's cookie never does; see test_authz_matrix)."""
    objects = build_objects(app)
    response = client.get(f"/api/v1/rmas/{objects['rma']}",
                          headers={"Authorization": f"Bearer {objects['token_a']}", **EN})
    assert response.status_code == 200

