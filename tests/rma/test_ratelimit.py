"""The fixed-window rate limiter on the warranty check, the API and the log-in form."""

from __future__ import annotations

import pytest

from rma.ratelimit import FixedWindowCounter, LimitSyntaxError, parse_limit
from tests.conftest import make_app

EN = {"Accept-Language": "en"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("120/minute", (120, 60)),
        ("5/second", (5, 1)),
        ("20 per hour", (20, 3600)),
        ("1000/day", (1000, 86400)),
        (" 3 / Minutes ", (3, 60)),
    ],
)
def test_limit_text_parses(text, expected):
    assert parse_limit(text) == expected


@pytest.mark.parametrize("text", ["", "120", "0/minute", "-1/minute", "ten/minute", "5/week"])
def test_limit_text_refused(text):
    with pytest.raises(LimitSyntaxError):
        parse_limit(text)


def test_window_counts_then_resets():
    now = [120.0]
    counter = FixedWindowCounter(clock=lambda: now[0])
    key = ("api.warranty", "10.0.0.1", 60)
    results = [counter.hit(key, 2, 60) for _ in range(3)]
    assert [allowed for allowed, _, _ in results] == [True, True, False]
    assert [remaining for _, remaining, _ in results] == [1, 0, 0]
    assert results[0][2] == pytest.approx(60)
    now[0] = 179.5
    assert counter.hit(key, 2, 60)[0] is False
    now[0] = 180.0  # a new window
    assert counter.hit(key, 2, 60) == (True, 1, 60.0)


def test_stale_windows_are_pruned():
    now = [0.0]
    counter = FixedWindowCounter(clock=lambda: now[0])
    for n in range(100):
        counter.hit(("e", f"10.0.0.{n}", 60), 5, 60)
    now[0] = 500.0
    counter.hit(("e", "10.0.0.200", 60), 5, 60)
    assert len(counter._counts) == 1


def test_a_bad_configured_limit_stops_the_app_at_start(database_url, tmp_path):
    with pytest.raises(LimitSyntaxError, match="ten/minute"):
        make_app(database_url, tmp_path, WARRANTY_RATE_LIMIT="ten/minute")


@pytest.fixture
def app_config():
    return {"RATELIMIT_ENABLED": True, "WARRANTY_RATE_LIMIT": "2/minute",
            "LOGIN_RATE_LIMIT": "2/minute", "WTF_CSRF_ENABLED": False}


def test_api_answers_carry_the_window(client):
    first = client.get("/api/v1/warranty/NOPE-0001")
    assert first.status_code == 404
    assert first.headers["X-RateLimit-Limit"] == "2"
    assert first.headers["X-RateLimit-Remaining"] == "1"
    assert 0 < int(first.headers["X-RateLimit-Reset"]) <= 60
    client.get("/api/v1/warranty/NOPE-0001")
    refused = client.get("/api/v1/warranty/NOPE-0001")
    assert refused.status_code == 429
    assert refused.mimetype == "application/problem+json"
    assert refused.get_json()["status"] == 429
    assert refused.headers["Retry-After"] == refused.headers["X-RateLimit-Reset"]
    assert refused.headers["X-RateLimit-Remaining"] == "0"


def test_api_never_reads_the_session_cookie(app, login):
    """The API is CSRF-exempt, so a browser's log-in cookie must not authenticate it."""
    client = login("admin")
    cookie = client.get_cookie("session")
    assert cookie is not None
    headers = {"Cookie": f"session={cookie.value}"}
    with app.test_request_context("/login", headers=headers):
        from flask import request

        assert "_user_id" in app.session_interface.open_session(app, request)
    with app.test_request_context("/api/v1/warranty/X", headers=headers):
        from flask import request

        assert dict(app.session_interface.open_session(app, request)) == {}
    response = client.get("/api/v1/warranty/NOPE-0001")
    assert "Set-Cookie" not in response.headers


def test_warranty_page_limits_posts_only(client):
    for _ in range(5):
        assert client.get("/warranty", headers=EN).status_code == 200
    codes = [client.post("/warranty", data={"serials": "NOPE-1"}, headers=EN).status_code
             for _ in range(3)]
    assert codes == [200, 200, 429]
    refused = client.post("/warranty", data={"serials": "NOPE-1"}, headers=EN)
    assert "Too many requests" in refused.get_data(as_text=True)
    assert refused.mimetype == "text/html"
    assert int(refused.headers["Retry-After"]) > 0


def test_login_is_throttled_per_address(client):
    data = {"email": "nobody@example.com", "password": "wrong-password"}
    codes = [client.post("/login", data=data, headers=EN).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    other = client.post("/login", data=data, headers=EN,
                        environ_base={"REMOTE_ADDR": "10.0.0.9"})
    assert other.status_code == 200


def test_limits_are_per_endpoint(client):
    for _ in range(2):
        client.get("/api/v1/warranty/NOPE-0001")
    assert client.get("/api/v1/warranty/NOPE-0001").status_code == 429
    assert client.post("/warranty", data={"serials": "NOPE-1"}, headers=EN).status_code == 200
