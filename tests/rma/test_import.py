"""``rma import-units``: all-or-nothing by default, clear per-line errors (D-8)."""

from __future__ import annotations

import csv

import pytest
from sqlalchemy import func, select

from rma.extensions import db
from rma.models import AuditEvent, Unit, UnitStatus

HEADER = "serial,model,customer_contract,lot,shipped_on,activated_on\n"


@pytest.fixture
def setup(make_model, make_customer):
    make_model("TK3", 36, "ship")
    make_model("TK5", 60, "activation")
    return {"a": make_customer("A"), "b": make_customer("B")}


def _write(tmp_path, text: str, name="units.csv", encoding="utf-8") -> str:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return str(path)


def _units(app) -> dict[str, Unit]:
    with app.app_context():
        return {u.serial: u for u in db.session.scalars(select(Unit))}


def test_valid_file_imports_every_row(runner, setup, tmp_path):
    a = setup["a"]
    path = _write(tmp_path, HEADER + (
        f"tk3-000001 ,TK3,{a},L2024-02,2024-02-29,\n"
        f"TK5-000001,tk5,{a},L2024-03,2024-03-01,2024-03-15\n"
        "TK3-SPARE1,TK3,,SPARE,,\n"))
    result = runner.invoke(args=["import-units", path])
    assert result.exit_code == 0, result.output
    assert "imported 3 new units" in result.output
    units = _units(runner.app)
    assert set(units) == {"TK3-000001", "TK5-000001", "TK3-SPARE1"}
    assert units["TK3-000001"].status == UnitStatus.IN_SERVICE
    assert units["TK3-SPARE1"].status == UnitStatus.IN_STOCK
    assert units["TK3-SPARE1"].customer_id is None
    assert str(units["TK5-000001"].activated_on) == "2024-03-15"
    with runner.app.app_context():
        event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "units.imported"))
        assert event.after["inserted"] == 3 and event.actor_label == "cli:import-units"


def test_excel_bom_and_crlf_are_read(runner, setup, tmp_path):
    a = setup["a"]
    text = HEADER.replace("\n", "\r\n") + f"TK3-BOM001,TK3,{a},L1,2025-01-01,\r\n"
    path = _write(tmp_path, text, encoding="utf-8-sig")
    result = runner.invoke(args=["import-units", path])
    assert result.exit_code == 0, result.output
    assert "TK3-BOM001" in _units(runner.app)


def test_all_or_nothing_lists_errors_with_line_and_field(runner, setup, tmp_path):
    a = setup["a"]
    path = _write(tmp_path, HEADER + (
        f"TK3-000001,TK3,{a},L1,2024-01-01,\n"  # line 2 valid
        f"TK3-000002,TK3,{a},L1,2024-13-01,\n"  # line 3 bad date
        f"TK3-000003,TK9,{a},L1,2024-01-01,\n"  # line 4 unknown model
        "TK3-000004,TK3,SC-1999-00009,L1,2024-01-01,\n"  # line 5 unknown contract
        f"ab#1,TK3,{a},L1,2024-01-01,\n"  # line 6 malformed serial
        f"tk3-000001,TK3,{a},L1,2024-01-01,\n"  # line 7 duplicate of line 2
        f"TK3-000008,TK3,{a},L1,2027-01-01,\n"  # line 8 ship date in the future
        f"TK5-000009,TK5,{a},L1,2024-05-01,2024-04-01\n"  # line 9 activated before shipped
        f"TK3-000010,TK3,{a}\n"))  # line 10 short row
    result = runner.invoke(args=["import-units", path])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert "line 3: shipped_on '2024-13-01' is not a date (YYYY-MM-DD)" in lines
    assert "line 4: model 'TK9' is not a known product model" in lines
    assert "line 5: customer_contract 'SC-1999-00009' is not a known contract number" in lines
    assert any(line.startswith("line 6: serial 'ab#1' is not valid") for line in lines)
    assert "line 7: serial 'TK3-000001' is a duplicate of line 2" in lines
    assert "line 8: shipped_on '2027-01-01' is in the future" in lines
    assert "line 9: activated_on '2024-04-01' is before shipped_on '2024-05-01'" in lines
    assert "line 10: expected 6 columns, found 3" in lines
    assert "nothing imported: 8 invalid rows of 9 read" in lines
    assert _units(runner.app) == {}
    with runner.app.app_context():
        assert db.session.scalar(select(func.count(AuditEvent.id)).where(
            AuditEvent.action == "units.imported")) == 0


def test_duplicate_across_batches_and_known_serial(app, setup, tmp_path):
    from rma.services.audit import Actor
    from rma.services.unit_import import import_units

    a = setup["a"]
    rows = "".join(f"TK3-{n:06d},TK3,{a},L1,2024-01-01,\n" for n in range(1, 8))
    rows += f"TK3-000002,TK3,{a},L1,2024-01-01,\n"  # line 9: repeats line 3, another batch
    with app.app_context():
        with open(_write(tmp_path, HEADER + rows), "rb") as stream:
            report = import_units(Actor.cli("test"), stream, batch_size=3)
        assert not report.committed
        assert [str(e) for e in report.errors] == [
            "line 9: serial 'TK3-000002' appears earlier in this file"]
        assert db.session.scalar(select(func.count(Unit.id))) == 0
        with open(_write(tmp_path, HEADER + rows.rsplit("\n", 2)[0] + "\n"), "rb") as stream:
            assert import_units(Actor.cli("test"), stream, batch_size=3).inserted == 7
        again = f"TK3-000005,TK3,{a},L1,2024-01-01,\n"
        with open(_write(tmp_path, HEADER + again, "again.csv"), "rb") as stream:
            report = import_units(Actor.cli("test"), stream)
        assert [str(e) for e in report.errors] == [
            "line 2: serial 'TK3-000005' is already known (use --update to change it)"]


def test_skip_invalid_imports_valid_rows_and_writes_rejects(runner, setup, tmp_path):
    a = setup["a"]
    path = _write(tmp_path, HEADER + (
        f"TK3-000001,TK3,{a},L1,2024-01-01,\n"
        f"TK3-000002,TK3,{a},L1,01/02/2024,\n"
        f"TK3-000003,TK3,{a},L1,2024-01-03,\n"))
    rejects = tmp_path / "rej.csv"
    result = runner.invoke(args=["import-units", path, "--skip-invalid",
                                 "--rejects", str(rejects)])
    assert result.exit_code == 0, result.output
    assert "imported 2 new units" in result.output and "rejected 1" in result.output
    assert set(_units(runner.app)) == {"TK3-000001", "TK3-000003"}
    with open(rejects, encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0][0] == "line" and rows[0][-1] == "error"
    assert rows[1][0] == "3" and rows[1][1] == "TK3-000002"
    assert rows[1][-1] == "shipped_on '01/02/2024' is not a date (YYYY-MM-DD)"


def test_update_changes_known_serials_with_audit(runner, setup, tmp_path):
    a, b = setup["a"], setup["b"]
    first = _write(tmp_path, HEADER + f"TK3-000001,TK3,{a},L1,2024-01-01,\nTK3-SP0001,TK3,,S,,\n")
    assert runner.invoke(args=["import-units", first]).exit_code == 0
    second = _write(tmp_path, HEADER + (
        f"TK3-000001,TK3,{b},L1,2024-01-02,\n"
        f"TK3-SP0001,TK3,{a},S,2025-05-05,\n"
        f"TK3-000003,TK3,{a},L1,2024-01-03,\n"), name="second.csv")
    refused = runner.invoke(args=["import-units", second])
    assert refused.exit_code == 1 and "use --update" in refused.output
    result = runner.invoke(args=["import-units", second, "--update"])
    assert result.exit_code == 0, result.output
    assert "imported 1 new units, updated 2" in result.output
    units = _units(runner.app)
    assert str(units["TK3-000001"].shipped_on) == "2024-01-02"
    assert units["TK3-SP0001"].status == UnitStatus.IN_SERVICE
    with runner.app.app_context():
        events = db.session.scalars(select(AuditEvent).where(
            AuditEvent.action == "unit.updated_by_import").order_by(AuditEvent.id)).all()
        assert [e.entity_id for e in events] == ["TK3-000001", "TK3-SP0001"]
        assert events[0].before["shipped_on"] == "2024-01-01"
        assert events[0].after["shipped_on"] == "2024-01-02"


@pytest.mark.parametrize("header, message", [
    ("serial,model,lot,shipped_on", "header is missing column 'customer_contract'"),
    ("serial,model,customer_contract,lot,shipped_on,colour", "unknown column 'colour'"),
    ("", "the file is empty"),
])
def test_bad_header_imports_nothing(runner, setup, tmp_path, header, message):
    path = _write(tmp_path, header + ("\n" if header else ""))
    result = runner.invoke(args=["import-units", path])
    assert result.exit_code == 1
    assert message in result.output


def test_file_not_in_utf8_is_refused_clearly(runner, setup, tmp_path):
    a = setup["a"]
    path = _write(tmp_path, HEADER + f"TK3-000001,TK3,{a},批次一,2024-01-01,\n",
                  encoding="gbk")
    result = runner.invoke(args=["import-units", path])
    assert result.exit_code == 1
    assert "not UTF-8" in result.output
    assert _units(runner.app) == {}


def test_error_list_stops_at_fifty(runner, setup, tmp_path):
    a = setup["a"]
    rows = "".join(f"TK3-{n:06d},TK3,{a},L1,2024-99-01,\n" for n in range(80))
    result = runner.invoke(args=["import-units", _write(tmp_path, HEADER + rows)])
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("line ")]
    assert len(errors) == 50
    assert "stopped after 50 errors" in result.output
