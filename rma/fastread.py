"""A fixed Core SELECT run straight on a pooled DBAPI cursor, for the hottest read paths.

The public warranty API runs one indexed look-up per request. Through ``Connection.execute``
SQLAlchemy spends ≈35 µs per call on its execution context, result metadata and
transaction bookkeeping around an ≈8 µs SQLite query; under gunicorn that was a third of
the endpoint's CPU (``bench/warranty_lookup.py``). This keeps everything that matters:

- the SQL is SQLAlchemy's own compilation of the statement for the engine's dialect;
- parameters and result columns go through the column types' bind and result processors
  for that dialect, so rows hold the same Python values (``date``, enums) as Core returns;
- the connection comes from the engine's pool (``pool_pre_ping`` on PostgreSQL) and goes
  back with the pool's reset (a rollback), so no transaction is left open;
- with cursor event listeners or ``echo`` on the engine, it runs through
  ``Connection.execute`` instead, so SQL logging, tracing and query counts see it;
- DBAPI errors, a failed connect included, are wrapped as SQLAlchemy's ``DBAPIError``
  family, and a connection the dialect says is dead is invalidated, as ``Connection.execute``
  would do.

Use it only where no session of the caller may hold pending changes (see
``warranty_check._read``).
"""

from __future__ import annotations

from collections import namedtuple
from typing import Any

from sqlalchemy import exc
from sqlalchemy.engine import Engine
from sqlalchemy.sql import Select


class _Prepared:
    __slots__ = ("binds", "positions", "processors", "row", "sql")

    def __init__(self, statement: Select, engine: Engine) -> None:
        dialect = engine.dialect
        compiled = statement.compile(dialect=dialect)
        self.sql = str(compiled)
        self.positions = tuple(compiled.positiontup) if compiled.positiontup else None
        self.binds = {
            name: bind.type.dialect_impl(dialect).bind_processor(dialect)
            for name, bind in compiled.binds.items()
        }
        columns = list(statement.selected_columns)
        keys = [column.key for column in columns]
        if len(set(keys)) != len(keys):
            raise ValueError(f"result columns must have distinct names: {keys}")
        self.processors = tuple(
            column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns
        )
        self.row = namedtuple("Row", keys)  # noqa: PYI024 (field names come from the statement)


class CompiledRead:
    """``CompiledRead(select(...).where(col == bindparam("x")))`` then ``.one_or_none(engine,
    x=...)`` or ``.all(engine, x=...)``. Compiled once per engine."""

    def __init__(self, statement: Select) -> None:
        self._statement = statement
        self._prepared: dict[int, tuple[Engine, _Prepared]] = {}

    def _prepare(self, engine: Engine) -> _Prepared:
        entry = self._prepared.get(id(engine))
        if entry is None or entry[0] is not engine:
            entry = (engine, _Prepared(self._statement, engine))
            self._prepared[id(engine)] = entry
        return entry[1]

    def one_or_none(self, engine: Engine, **params: Any):
        """The row, or ``None``; ``MultipleResultsFound`` when there are two."""
        rows = self._run(engine, params, many=False, limit=2)
        return rows[0] if rows else None

    def first(self, engine: Engine, **params: Any):
        """The first row, or ``None``: for look-ups by a UNIQUE key, one fetch fewer."""
        rows = self._run(engine, params, many=False, limit=1)
        return rows[0] if rows else None

    def all(self, engine: Engine, **params: Any) -> list:
        return self._run(engine, params, many=True, limit=0)

    def _run(self, engine: Engine, params: dict[str, Any], many: bool, limit: int) -> list:
        if (
            engine.echo
            or engine.dispatch.before_cursor_execute
            or engine.dispatch.after_cursor_execute
        ):
            # Someone watches the SQL (echo, query counting in tests, tracing): give them
            # the ordinary execution path, which fires the events.
            with engine.connect() as connection:
                result = connection.execute(self._statement, params)
                return list(result.all() if many else result.fetchmany(limit))
        prepared = self._prepare(engine)
        values = {}
        for name, process in prepared.binds.items():
            value = params[name]
            values[name] = process(value) if process is not None else value
        arguments: Any = (
            tuple(values[name] for name in prepared.positions)
            if prepared.positions is not None
            else values
        )
        try:
            fairy = engine.raw_connection()
        except engine.dialect.loaded_dbapi.Error as error:
            # The pool hands out the driver's own error when it cannot connect (the server
            # is down or restarting); ``Engine.connect`` wraps it, and so does this.
            raise exc.DBAPIError.instance(
                None,
                None,
                error,
                engine.dialect.loaded_dbapi.Error,
                connection_invalidated=engine.dialect.is_disconnect(error, None, None),
                dialect=engine.dialect,
            ) from error
        try:
            cursor = fairy.cursor()
            try:
                cursor.execute(prepared.sql, arguments)
                if many:
                    raw = cursor.fetchall()
                elif limit == 1:
                    one = cursor.fetchone()
                    raw = [one] if one is not None else []
                else:
                    raw = cursor.fetchmany(limit)
            except engine.dialect.loaded_dbapi.Error as error:
                if engine.dialect.is_disconnect(error, fairy.dbapi_connection, cursor):
                    fairy.invalidate(error)
                raise exc.DBAPIError.instance(
                    prepared.sql,
                    arguments,
                    error,
                    engine.dialect.loaded_dbapi.Error,
                    dialect=engine.dialect,
                ) from error
            finally:
                cursor.close()
        finally:
            fairy.close()
        if not many and len(raw) > 1:
            raise exc.MultipleResultsFound("Multiple rows were found when one or none was required")
        processors = prepared.processors
        make = prepared.row._make
        return [
            make(
                value if process is None else process(value)
                for process, value in zip(processors, row, strict=True)
            )
            for row in raw
        ]
