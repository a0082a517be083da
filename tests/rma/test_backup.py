"""``rma backup`` / ``rma restore`` (rma/backup.py; issue 8, point 3).

The round trip is checked by comparing every table of ``db.metadata`` (and
``alembic_version``) with the snapshot taken before the backup. Refusals exit non-zero
with one clear line and change nothing. Runs on SQLite and, with RMA_TEST_DATABASE_URL,
on PostgreSQL (pg_dump / pg_restore).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from flask_migrate import stamp
from sqlalchemy import delete, select, text, update

from rma import backup
from rma.extensions import db
from rma.models import AuditEvent, Customer, Invoice, Rma, Unit
from tests.conftest import PG_URL, mark_postgres_schema_dirty
from tests.rma.finance_helpers import build_finance_world
from tests.rma.test_invoices import invoiced

HEAD = "0006"


def _is_pg(app) -> bool:
    return not app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite")


@pytest.fixture
def stamped(app):
    """The test schema is made by create_all; stamp it at head as `rma init-db` would."""
    if _is_pg(app):
        mark_postgres_schema_dirty()  # alembic_version is left behind, restores recreate
    with app.app_context():
        stamp()
        db.session.remove()
    return app


@pytest.fixture
def world(stamped, make_model, make_customer, make_user):
    """Customers A and B, staff, units, prices, an RMA with a paid item and its invoice."""
    app = stamped
    world = build_finance_world(app, make_model, make_customer, make_user)
    with app.test_request_context(headers={"Accept-Language": "en"}):
        invoiced(app, world)
        db.session.remove()
    return world


def snapshot(app) -> dict[str, list[str]]:
    """Every row of every table, as sorted reprs (JSON values are not hashable)."""
    with app.app_context():
        tables = {t.name: sorted(repr(tuple(row)) for row in db.session.execute(select(t)))
                  for t in db.metadata.sorted_tables}
        tables["alembic_version"] = sorted(
            repr(tuple(row)) for row in db.session.execute(
                text("SELECT version_num FROM alembic_version")))
        db.session.remove()
    return tables


def change_everything(app, make_customer) -> None:
    """Delete, update and insert, so a restore has something to undo."""
    make_customer("Late Arrival Ltd", "2026-02-01")
    with app.app_context():
        db.session.execute(delete(AuditEvent))
        db.session.execute(update(Customer).values(name=Customer.name + " (renamed)"))
        db.session.execute(update(Unit).values(lot="CHANGED"))
        db.session.commit()
        db.session.remove()


def one_line(result) -> str:
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    return lines[0]


def test_backup_and_restore_round_trip_every_table(world, runner, tmp_path, make_customer):
    app = runner.app
    before = snapshot(app)
    assert set(before) == {t.name for t in db.metadata.sorted_tables} | {"alembic_version"}
    # The world really fills the tables that matter.
    with app.app_context():
        for model in (Customer, Unit, Rma, Invoice, AuditEvent):
            assert db.session.scalar(select(model.id).limit(1)) is not None, model
        db.session.remove()
    target = tmp_path / "nightly.backup"

    made = runner.invoke(args=["backup", str(target)])

    assert made.exit_code == 0, made.output
    rows = sum(len(v) for v in before.values())
    tables = len(before)
    assert made.output.strip().splitlines()[-1] == (
        f"backup written to {target} ({tables} tables, {rows} rows)")
    assert target.is_file()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []

    change_everything(app, make_customer)
    assert snapshot(app) != before

    restored = runner.invoke(args=["restore", str(target), "--yes"])

    assert restored.exit_code == 0, restored.output
    assert f"database restored from {target}; schema revision {HEAD}" in restored.output
    assert "init-db" not in restored.output
    after = snapshot(app)
    for name in before:
        assert after[name] == before[name], name
    # The restored database is the app's database again: it keeps working.
    client = app.test_client()
    assert client.post("/login", data={"email": "alice@a.example",
                                       "password": "correct-horse-battery"}).status_code == 302


def test_backup_refuses_an_existing_file_unless_forced(stamped, runner, tmp_path):
    target = tmp_path / "db.backup"
    target.write_bytes(b"keep me")

    refused = runner.invoke(args=["backup", str(target)])

    assert refused.exit_code == 1
    assert one_line(refused) == f"Error: {target} already exists (use --force to overwrite it)"
    assert target.read_bytes() == b"keep me"
    forced = runner.invoke(args=["backup", str(target), "--force"])
    assert forced.exit_code == 0, forced.output
    assert target.read_bytes()[:5] in (b"SQLit", b"PGDMP")
    missing_folder = runner.invoke(args=["backup", str(tmp_path / "nope" / "db.backup")])
    assert missing_folder.exit_code == 1 and "does not exist" in one_line(missing_folder)


def test_a_failed_backup_leaves_no_file(stamped, tmp_path):
    target = tmp_path / "half.backup"

    def fail(done: int, total: int) -> None:
        raise backup.BackupError("disk full (simulated)")

    with pytest.raises(backup.BackupError, match="simulated"):
        backup.backup_database(stamped.config["SQLALCHEMY_DATABASE_URI"], target,
                               progress=fail)
    assert not target.exists()
    assert [p.name for p in tmp_path.iterdir() if "half" in p.name] == []


def _garbage(path: Path) -> Path:
    path.write_bytes(b"this is not a backup\n" * 10)
    return path


def _other_kind(app, path: Path) -> Path:
    """A backup file of the database kind the app does not use."""
    if _is_pg(app):
        with sqlite3.connect(path) as connection:
            connection.execute("CREATE TABLE alembic_version (version_num TEXT)")
            connection.execute("INSERT INTO alembic_version VALUES ('0006')")
        connection.close()
    else:
        path.write_bytes(b"PGDMP\x01\x0e\x00" + b"\x00" * 100)
    return path


def test_restore_refusals_change_nothing(world, runner, tmp_path):
    app = runner.app
    before = snapshot(app)
    plain_sqlite = tmp_path / "plain.sqlite3"
    with sqlite3.connect(plain_sqlite) as connection:
        connection.execute("CREATE TABLE t (x)")
    connection.close()
    kind = "PostgreSQL" if _is_pg(app) else "SQLite"
    other = "SQLite" if _is_pg(app) else "PostgreSQL"
    cases = [
        (tmp_path / "missing.backup", "does not exist"),
        (_garbage(tmp_path / "garbage.backup"), "is not a backup made by rma backup"),
        (_other_kind(app, tmp_path / "other.backup"),
         f"is an {other} backup; the configured database is {kind}"
         if other == "SQLite" else
         f"is a {other} backup; the configured database is {kind}"),
    ]
    if not _is_pg(app):
        cases.append((plain_sqlite, "is an SQLite database but not an RMA backup"))
    for path, words in cases:
        result = runner.invoke(args=["restore", str(path), "--yes"])
        assert result.exit_code == 1, (path, result.output)
        line = one_line(result)
        assert line.startswith(f"Error: {path} ") and words in line, line
    assert snapshot(app) == before


def test_restore_asks_first_and_no_changes_nothing(world, runner, tmp_path, make_customer):
    app = runner.app
    target = tmp_path / "db.backup"
    assert runner.invoke(args=["backup", str(target)]).exit_code == 0
    change_everything(app, make_customer)
    changed = snapshot(app)

    answered_no = runner.invoke(args=["restore", str(target)], input="n\n")

    assert answered_no.exit_code == 1
    assert "replaces every table of the database" in answered_no.output
    assert answered_no.output.strip().splitlines()[-1] == (
        "Error: restore cancelled; the database was not changed")
    no_answer = runner.invoke(args=["restore", str(target)], input="")
    assert no_answer.exit_code == 1
    assert no_answer.output.strip().splitlines()[-1] == (
        "Error: restore cancelled; the database was not changed")
    assert snapshot(app) == changed
    answered_yes = runner.invoke(args=["restore", str(target)], input="y\n")
    assert answered_yes.exit_code == 0, answered_yes.output
    assert snapshot(app) != changed


def test_restore_of_an_older_schema_suggests_init_db(stamped, runner, tmp_path):
    app = runner.app
    with app.app_context():
        stamp(revision="0005")
        db.session.remove()
    target = tmp_path / "old.backup"
    assert runner.invoke(args=["backup", str(target)]).exit_code == 0
    with app.app_context():
        stamp(revision="0006")
        db.session.remove()

    result = runner.invoke(args=["restore", str(target), "--yes"])

    assert result.exit_code == 0, result.output
    assert "schema revision 0005" in result.output
    assert "the latest schema is revision 0006: run `rma init-db` to migrate" in result.output


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_sqlite_backup_is_safe_while_a_writer_is_busy(stamped, runner, tmp_path):
    """The online backup reads one snapshot: a writer's open transaction neither blocks
    it nor leaks into it (WAL)."""
    app = runner.app
    database = app.config["SQLALCHEMY_DATABASE_URI"].removeprefix("sqlite:///")
    writer = sqlite3.connect(database, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("INSERT INTO alembic_version VALUES ('uncommitted')")
        result = runner.invoke(args=["backup", str(tmp_path / "live.backup")])
        writer.execute("COMMIT")
    finally:
        writer.close()
    assert result.exit_code == 0, result.output
    with sqlite3.connect(tmp_path / "live.backup") as copy:
        assert copy.execute("SELECT version_num FROM alembic_version").fetchall() == [(HEAD,)]
        assert copy.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    copy.close()


@pytest.mark.parametrize("database_url", [pytest.param(
    "postgresql", marks=pytest.mark.skipif(not PG_URL, reason="needs PostgreSQL"))],
    indirect=True)
def test_postgres_backup_without_pg_dump_is_a_clear_error(stamped, runner, tmp_path,
                                                          monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    target = tmp_path / "db.backup"
    result = runner.invoke(args=["backup", str(target)])
    assert result.exit_code == 1
    assert one_line(result).startswith("Error: pg_dump was not found on PATH")
    assert not target.exists()
