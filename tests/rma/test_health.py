"""Issue 8: ``/healthz`` (process up) and ``/readyz`` (database answers, schema at the
migrations head), on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from rma.extensions import db
from tests.conftest import make_app

VERSIONS = Path(__file__).resolve().parents[2] / "migrations" / "versions"


def _head_from_files() -> str:
    """The revision no other migration names as its ``down_revision``, read from the
    files themselves (independent of alembic)."""
    revisions, parents = set(), set()
    for path in VERSIONS.glob("*.py"):
        source = path.read_text(encoding="utf-8")
        revisions.add(re.search(r"^revision\s*=\s*['\"](\w+)['\"]", source, re.M).group(1))
        parent = re.search(r"^down_revision\s*=\s*['\"](\w+)['\"]", source, re.M)
        if parent:
            parents.add(parent.group(1))
    (head,) = revisions - parents
    return head


HEAD = _head_from_files()


@pytest.fixture
def stamp(app):
    """``stamp(revision)``: the database says it is at ``revision`` (the test schema is
    made by ``create_all``, without Alembic's table). The table is dropped afterwards:
    the PostgreSQL schema is shared by the tests of a session."""

    def _stamp(revision: str) -> None:
        with app.app_context():
            db.session.execute(text("DROP TABLE IF EXISTS alembic_version"))
            db.session.execute(text("CREATE TABLE alembic_version "
                                    "(version_num VARCHAR(32) NOT NULL PRIMARY KEY)"))
            db.session.execute(text("INSERT INTO alembic_version VALUES (:v)"), {"v": revision})
            db.session.commit()

    yield _stamp
    with app.app_context():
        db.session.execute(text("DROP TABLE IF EXISTS alembic_version"))
        db.session.commit()


def _unreachable_url(database_url: str, tmp_path: Path) -> str:
    if database_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / 'no-such-folder' / 'rma.sqlite3'}"
    return make_url(database_url).set(host="127.0.0.1", port=1).render_as_string(
        hide_password=False)


def _assert_not_ready(response, detail: str) -> dict:
    assert response.status_code == 503
    assert response.mimetype == "application/problem+json"
    assert int(response.headers["Retry-After"]) > 0
    body = response.get_json()
    assert body["status"] == 503
    assert body["title"] == "Service Unavailable"
    assert body["detail"] == detail
    assert body["instance"] == "/readyz"
    return body


def test_healthz_answers_ok(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}
    assert response.headers["Cache-Control"] == "no-store"


def test_readyz_at_head_answers_ready(client, stamp):
    stamp(HEAD)
    response = client.get("/readyz")
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"status": "ready", "database": "ok",
                                   "migrations": "head", "revision": HEAD}


def test_readyz_reports_the_head_of_the_migrations_folder():
    from rma.views.health import migrations

    head, known = migrations(str(VERSIONS.parent))
    assert head == HEAD == "0006"  # this release's last migration
    assert {"0001", HEAD} <= known


def test_readyz_behind_a_stamped_older_revision_is_503(client, stamp):
    older = f"{int(HEAD) - 1:04d}"
    stamp(older)
    body = _assert_not_ready(client.get("/readyz"),
                             f"migrations behind: at {older}, head {HEAD}")
    assert body["database"] == "ok"
    assert body["migrations"] == "behind"
    assert (body["revision"], body["head"]) == (older, HEAD)


def test_readyz_without_any_migration_is_503(client):
    # The test schema comes from create_all: no alembic_version table at all.
    _assert_not_ready(client.get("/readyz"), f"migrations behind: at none, head {HEAD}")


def test_readyz_on_a_database_migrated_by_a_newer_release_is_503(client, stamp):
    stamp("9999")
    body = _assert_not_ready(client.get("/readyz"), f"migrations ahead: at 9999, head {HEAD}")
    assert body["migrations"] == "ahead"


def test_database_unreachable_readyz_503_while_healthz_stays_200(database_url, tmp_path):
    app = make_app(_unreachable_url(database_url, tmp_path), tmp_path)
    client = app.test_client()
    body = _assert_not_ready(client.get("/readyz"), "database unreachable")
    assert body["database"] == "unreachable"
    # /healthz does no database work: the process is up.
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_probes_skip_session_rate_limits_and_log_in(app, path, stamp):
    """A logged-in browser's cookie is neither needed, refreshed nor varied on; the rate
    limiter does not count probes (a balancer polls every few seconds)."""
    stamp(HEAD)
    app.config["RATELIMIT_ENABLED"] = True
    client = app.test_client()
    with client.session_transaction() as session:
        session["_user_id"] = "1"
    for _ in range(3):
        response = client.get(path)
        assert response.status_code == 200
        assert "Set-Cookie" not in response.headers
        assert "Cookie" not in response.headers.get("Vary", "")
        assert not [h for h in response.headers.keys() if h.startswith("X-RateLimit")]
    # Without any cookie (a load balancer): no redirect to the log-in page either.
    response = app.test_client().get(path)
    assert response.status_code == 200
    assert response.headers["X-Request-ID"]
