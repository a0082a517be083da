"""Faults (issue 8 point 3): ``rma import-units`` killed with SIGKILL half-way.

The real CLI runs in a child process against the test database (SQLite file or
PostgreSQL). Its progress bar is drawn on a pseudo-terminal (click draws it only on a
terminal), which the test reads as it goes; at 45 % or more of the file read, the child
gets SIGKILL. The import writes its rows in batches but inside ONE transaction, committed
after the last row (rma/services/unit_import.py), in both modes, so:

* default (all-or-nothing) mode: every table is exactly as before the import;
* ``--skip-invalid`` mode: the same, and running the same command again imports the
  whole file, so the end state is that of a clean one-shot import (every valid row once,
  every invalid row in the rejects file once, one ``units.imported`` audit event).

No sleeps: the test waits on the child's output, with a generous deadline.
"""

from __future__ import annotations

import csv
import hashlib
import os
import random
import re
import signal
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from select import select as wait_readable

import pytest
from sqlalchemy import func, select

from rma.extensions import db
from rma.models import AuditEvent, Customer, ProductModel, Unit
from tests.conftest import FIXED_NOW

REPO = Path(__file__).resolve().parents[2]
HEADER = ["serial", "model", "customer_contract", "lot", "shipped_on", "activated_on"]
# Big enough that the import runs for a few seconds (the progress bar moves every MiB of
# the file, about 16,000 rows), small enough to keep the test short.
ROWS = 120_000
KILL_AT = 45  # percent of the file read
INVALID_EVERY = 5_987  # --skip-invalid file: one invalid row in about 6,000
DEADLINE = 300  # seconds; only ever reached when something hangs


@pytest.fixture
def setup(app, runner, make_model, make_customer, tmp_path):
    """Two models, three customers and 100 units imported earlier (the state to keep)."""
    make_model("TK3", 36, "ship")
    make_model("TK5", 60, "activation")
    contracts = [make_customer(name) for name in ("Metro Bank", "Power Grid", "City Health")]
    earlier = tmp_path / "earlier.csv"
    with open(earlier, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(HEADER)
        for n in range(100):
            writer.writerow([f"TK3-OLD{n:05d}", "TK3", contracts[n % 3], "L-OLD",
                             "2024-05-01", ""])
    result = runner.invoke(args=["import-units", str(earlier)])
    assert result.exit_code == 0 and "imported 100 new units" in result.output, result.output
    return contracts


def _generate(path: Path, contracts: list[str], invalid_every: int | None
              ) -> tuple[set[tuple], list[int]]:
    """Write ``ROWS`` rows like a factory shipment file (bench/common.py's shape: lots of
    1,000 of one model to one customer, 5 % spares without contract or dates, ship dates
    in lot order, 70 % activated). Returns the valid rows as the importer stores them
    (serial, model, contract, lot, shipped_on, activated_on, status) and the line numbers
    of the invalid ones."""
    rng = random.Random(8)
    today = date.fromisoformat(FIXED_NOW[:10])
    first = today - timedelta(days=5 * 365)
    expected: set[tuple] = set()
    invalid: list[int] = []
    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(HEADER)
        for n in range(ROWS):
            line = n + 2
            lot_no = n // 1000
            model = ("TK3", "TK5")[lot_no % 2]
            spare = lot_no % 20 == 7
            contract = None if spare else contracts[lot_no % len(contracts)]
            shipped = None if spare else first + timedelta(days=(5 * 365 - 10) * n // ROWS)
            activated = None
            if shipped is not None and rng.random() < 0.7:
                activated = min(shipped + timedelta(days=rng.randint(0, 90)), today)
            serial = f"{model}-{n:08d}"
            lot = f"L{lot_no:05d}"
            row = [serial, model, contract or "", lot, shipped.isoformat() if shipped else "",
                   activated.isoformat() if activated else ""]
            if invalid_every and n % invalid_every == invalid_every // 2:
                row[1] = "XX-999"  # an unknown model: rejected with its reason
                invalid.append(line)
            else:
                expected.add((serial, model, contract, lot, shipped, activated,
                              "in_service" if contract else "in_stock"))
            writer.writerow(row)
    return expected, invalid


def _snapshot() -> dict[str, tuple[int, str]]:
    """Every table: (row count, sha256 of its rows in primary-key order)."""
    tables = {}
    with db.engine.connect() as conn:
        for table in db.metadata.sorted_tables:
            digest = hashlib.sha256()
            count = 0
            for row in conn.execute(select(table).order_by(*table.primary_key.columns)):
                digest.update(repr(tuple(row)).encode())
                count += 1
            tables[table.name] = (count, digest.hexdigest())
    return tables


def _units() -> set[tuple]:
    rows = db.session.execute(
        select(Unit.serial, ProductModel.code, Customer.contract_number, Unit.lot,
                   Unit.shipped_on, Unit.activated_on, Unit.status)
        .join(ProductModel, Unit.model_id == ProductModel.id)
        .outerjoin(Customer, Unit.customer_id == Customer.id)
    )
    return {(*row[:6], str(row[6])) for row in rows}


def _env(database_url: str, tmp_path: Path) -> dict[str, str]:
    env = {**os.environ, "RMA_DATABASE_URL": database_url,
           "RMA_INSTANCE_PATH": str(tmp_path / "child-instance"),
           "RMA_SECRET_KEY": "import-kill-test", "RMA_FIXED_NOW": FIXED_NOW,
           "PYTHONUNBUFFERED": "1"}
    env.pop("RMA_TEST_DATABASE_URL", None)
    return env


def _command(*args: str) -> list[str]:
    return [sys.executable, "-c", "from rma.cli import main; main()", "import-units", *args]


def _kill_half_way(args: list[str], env: dict[str, str]) -> tuple[int, int, str]:
    """Run the import with its standard error on a pseudo-terminal; SIGKILL it once the
    progress bar shows ``KILL_AT`` % or more. Returns (percent shown when killed, exit
    code, what it printed)."""
    import pty

    master, slave = pty.openpty()
    process = subprocess.Popen(args, cwd=REPO, env=env, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=slave, start_new_session=True)
    os.close(slave)
    seen = b""
    percent = -1
    deadline = time.monotonic() + DEADLINE
    try:
        while time.monotonic() < deadline:
            ready, _, _ = wait_readable([master], [], [], 1.0)
            if not ready:
                if process.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the child closed its terminal (it exited)
                break
            if not chunk:
                break
            seen += chunk
            shown = re.findall(rb"(\d+)%", seen[-200:])
            if shown and int(shown[-1]) >= KILL_AT:
                percent = int(shown[-1])
                os.kill(process.pid, signal.SIGKILL)
                break
    finally:
        if process.poll() is None and percent < 0:
            process.kill()  # deadline passed: never leave the child behind
        stdout, _ = process.communicate(timeout=60)
        os.close(master)
    return percent, process.returncode, seen.decode(errors="replace") + stdout.decode()


@pytest.mark.parametrize("skip_invalid", [False, True], ids=["all-or-nothing", "skip-invalid"])
def test_import_killed_half_way_leaves_the_database_as_before(app, runner, setup, tmp_path,
                                                              database_url, skip_invalid):
    """SIGKILL at about half of the file: nothing of the import is left, in any table
    (units, audit events, ...). With --skip-invalid, running the same command again then
    imports everything exactly once, as a clean one-shot import would."""
    contracts = setup
    path = tmp_path / "shipment.csv"
    expected, invalid = _generate(path, contracts, INVALID_EVERY if skip_invalid else None)
    assert bool(invalid) == skip_invalid
    rejects = tmp_path / "shipment.rejects.csv"
    args = _command(str(path), *(["--skip-invalid", "--rejects", str(rejects)]
                                 if skip_invalid else []))
    env = _env(database_url, tmp_path)
    with app.app_context():
        before = _snapshot()
        old_units = _units()
    assert before["units"][0] == 100

    percent, code, output = _kill_half_way(args, env)

    assert code == -signal.SIGKILL, (
        f"the import was not killed half-way (exit {code}; grow ROWS?):\n{output[-2000:]}")
    assert KILL_AT <= percent < 100, output[-2000:]
    assert "imported" not in output  # it never got to its summary line
    with app.app_context():
        db.session.remove()
        after = _snapshot()
    changed = sorted(name for name in before if before[name] != after[name])
    assert changed == [], f"killed at {percent} %, these tables changed: {changed}"

    if not skip_invalid:
        return
    # Resume: the same command again completes the import.
    done = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=DEADLINE, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines()[0] == (
        f"imported {len(expected)} new units, updated 0, unchanged 0, "
        f"rejected {len(invalid)} of {ROWS} rows")
    with app.app_context():
        db.session.remove()
        assert _units() == old_units | expected  # every valid row, once (serials unique)
        assert db.session.scalar(select(func.count()).select_from(Unit)) == (
            100 + len(expected))
        events = db.session.scalars(select(AuditEvent).where(
            AuditEvent.action == "units.imported").order_by(AuditEvent.id)).all()
        assert len(events) == 2  # the earlier import and this one; none of the killed run
        assert events[-1].after["inserted"] == len(expected)
        assert events[-1].after["rejected"] == len(invalid)
        final = _snapshot()
    # Only the units and the audit trail changed, as with a clean import.
    assert sorted(n for n in before if before[n] != final[n]) == ["audit_events", "units"]
    with open(rejects, encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f))
    assert [int(r[0]) for r in rows[1:]] == invalid  # each invalid row once, in order
    assert {r[-1] for r in rows[1:]} == {"model 'XX-999' is not a known product model"}
