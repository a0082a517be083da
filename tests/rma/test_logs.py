"""Issue 8: ``LOG_FORMAT=json`` writes one JSON object per line on standard error, with the
request id of the response, and one access line per request."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

import pytest

from rma import create_app, logs


@pytest.fixture
def app_config() -> dict:
    return {"LOG_FORMAT": "json"}


@pytest.fixture(autouse=True)
def _text_logs_after():
    """The ``rma`` logger is process-wide: leave it as a text-mode app would."""
    yield
    logger = logging.getLogger("rma")
    for handler in [h for h in logger.handlers if isinstance(h, logs._StderrHandler)]:
        logger.removeHandler(handler)
    logger.propagate = True
    logger.setLevel(logging.NOTSET)


def _lines(capsys) -> list[dict]:
    """Every line written to stderr, each parsed as JSON (fails on a line that is not)."""
    return [json.loads(line) for line in capsys.readouterr().err.splitlines() if line]


def _access(lines: list[dict], path: str) -> dict:
    (line,) = [x for x in lines if x["logger"] == "rma.access" and x["path"] == path]
    return line


def test_json_access_line_carries_the_request_id_of_the_response(client, capsys):
    capsys.readouterr()
    response = client.get("/healthz?probe=secret", headers={"X-Request-ID": "lb-42"})
    assert response.headers["X-Request-ID"] == "lb-42"
    line = _access(_lines(capsys), "/healthz")
    assert line["request_id"] == "lb-42"
    assert line["level"] == "INFO"
    assert line["method"] == "GET"
    assert line["status"] == 200
    assert line["user_id"] is None
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
    assert line["message"] == "GET /healthz 200"
    ts = datetime.fromisoformat(line["ts"])
    assert ts.utcoffset().total_seconds() == 0
    assert abs((datetime.now(UTC) - ts).total_seconds()) < 60  # the real time, not FIXED_NOW
    # The query string may carry secrets: only the path is logged.
    assert "secret" not in json.dumps(line)


def test_a_generated_request_id_is_logged_too(client, capsys):
    capsys.readouterr()
    response = client.get("/no-such-page")
    assert response.status_code == 404
    line = _access(_lines(capsys), "/no-such-page")
    assert line["status"] == 404
    assert line["request_id"] == response.headers["X-Request-ID"] != ""


def test_access_line_names_the_user_by_id_never_by_email(app, client, login, capsys):
    login("support", email="eng@example.com")
    capsys.readouterr()
    response = client.get("/staff/support/")
    assert response.status_code == 200
    lines = _lines(capsys)
    line = _access(lines, "/staff/support/")
    with app.app_context():
        from rma.services.users import user_by_email

        assert line["user_id"] == user_by_email("eng@example.com").id
    assert "eng@example.com" not in json.dumps(lines)


def test_access_line_of_an_api_call_names_the_token_user(app, client, make_user, capsys):
    from rma.services.audit import Actor
    from rma.services.users import create_token

    user_id = make_user("api@example.com", "support")
    with app.app_context():
        from rma.extensions import db
        from rma.models import User

        token = create_token(Actor.cli("test"), db.session.get(User, user_id), "test")
    capsys.readouterr()
    response = client.get("/api/v1/incidents", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    line = _access(_lines(capsys), "/api/v1/incidents")
    assert (line["user_id"], line["status"]) == (user_id, 200)
    assert line["request_id"] == response.headers["X-Request-ID"]


def test_an_error_logged_in_a_request_is_one_json_line_with_its_traceback(app, capsys):
    @app.get("/test-boom")
    def boom():
        raise RuntimeError("kaboom")

    client = app.test_client()
    capsys.readouterr()
    response = client.get("/test-boom")
    assert response.status_code == 500
    lines = _lines(capsys)
    (error,) = [x for x in lines if x["level"] == "ERROR"]
    assert error["logger"] == "rma"
    assert error["message"] == "unhandled error"
    assert error["request_id"] == response.headers["X-Request-ID"]
    assert "RuntimeError: kaboom" in error["exc"]
    assert _access(lines, "/test-boom")["status"] == 500


def test_a_log_line_outside_a_request_has_no_request_id(app, capsys):
    capsys.readouterr()
    logging.getLogger("rma.services.outbox").warning("smtp %s", "down")
    (line,) = _lines(capsys)
    assert line["logger"] == "rma.services.outbox"
    assert line["message"] == "smtp down"
    assert line["level"] == "WARNING"
    assert "request_id" not in line


def test_rma_log_format_comes_from_the_environment_when_the_app_is_built(
        monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("RMA_INSTANCE_PATH", str(tmp_path))
    monkeypatch.setenv("RMA_LOG_FORMAT", "json")
    app = create_app({"TESTING": True, "SECRET_KEY": "x",
                      "DATABASE_URL": f"sqlite:///{tmp_path / 'x.sqlite3'}"})
    assert app.config["LOG_FORMAT"] == "json"
    capsys.readouterr()
    app.test_client().get("/healthz")
    assert _access(_lines(capsys), "/healthz")["status"] == 200


@pytest.mark.parametrize("app_config", [{}], indirect=False)
def test_text_is_the_default_and_adds_nothing_per_request(app, client, capsys):
    assert app.config["LOG_FORMAT"] == "text"
    assert not isinstance(app.wsgi_app, logs.AccessLog)
    assert not [h for h in logging.getLogger("rma").handlers
                if isinstance(h, logs._StderrHandler)]
    capsys.readouterr()
    client.get("/healthz")
    assert capsys.readouterr().err == ""


def test_an_unknown_log_format_stops_the_app_at_start(tmp_path, monkeypatch):
    monkeypatch.setenv("RMA_INSTANCE_PATH", str(tmp_path))
    with pytest.raises(ValueError, match="LOG_FORMAT must be one of text, json, not 'xml'"):
        create_app({"TESTING": True, "SECRET_KEY": "x", "LOG_FORMAT": "xml",
                    "DATABASE_URL": f"sqlite:///{tmp_path / 'x.sqlite3'}"})


def test_gunicorn_logger_class_writes_json_in_json_mode(monkeypatch, capsys):
    from gunicorn.config import Config

    from rma.gunicorn_logger import JsonLogger

    monkeypatch.setenv("RMA_LOG_FORMAT", "json")
    logger = JsonLogger(Config())
    capsys.readouterr()
    logger.info("Booting worker with pid: %s", 123)
    (line,) = _lines(capsys)
    assert (line["logger"], line["level"]) == ("gunicorn.error", "INFO")
    assert line["message"] == "Booting worker with pid: 123"
