"""Numbers issued to people: contract numbers (R-C1), later RMA and invoice numbers.

One row per (name, year) in ``number_sequences``, bumped with ``UPDATE ... RETURNING``
inside the caller's transaction: concurrent callers serialise on the row lock, and a
rollback takes the number back, so numbers are unique and gapless.
"""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.dialects import postgresql, sqlite

from rma.extensions import db
from rma.models import NumberSequence


def next_value(name: str, year: int) -> int:
    """The next value of counter ``name`` for ``year`` (1, 2, 3, ...); the caller commits."""
    table = NumberSequence.__table__
    bump = (
        update(table)
        .where(table.c.name == name, table.c.year == year)
        .values(last_value=table.c.last_value + 1)
        .returning(table.c.last_value)
    )
    value = db.session.execute(bump).scalar_one_or_none()
    if value is not None:
        return value
    dialect = db.session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    db.session.execute(
        insert(table)
        .values(name=name, year=year, last_value=0)
        .on_conflict_do_nothing(index_elements=["name", "year"])
    )
    return db.session.execute(bump).scalar_one()


def contract_number(year: int) -> str:
    """R-C1: ``SC-2026-00042``, unique for the life of the system."""
    return f"SC-{year}-{next_value('contract', year):05d}"
