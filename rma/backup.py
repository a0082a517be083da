"""Backup and restore of the whole database (``rma backup`` / ``rma restore``, issue 8).

SQLite: SQLite's online backup API copies the live database page by page inside one read
transaction, so the copy is one consistent snapshot while the app keeps writing (WAL lets
writers go on). Restore runs the same API the other way.

PostgreSQL: ``pg_dump --format=custom`` of the configured database, run in a snapshot
exported by a repeatable-read transaction that also counts the rows, so the reported
counts are exactly what the file holds; ``pg_restore --clean --if-exists
--single-transaction`` puts it back (all or nothing). The password goes to the tools in
``PGPASSWORD``, never on their command line.

Every function here works from a database URL and raises :class:`BackupError` with one
line for the user; a failed backup leaves no file behind.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import sqlite3
import subprocess  # nosec B404
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import NullPool

SQLITE_MAGIC = b"SQLite format 3\x00"
PGDUMP_MAGIC = b"PGDMP"
SQLITE_PAGES_PER_STEP = 256  # 1 MB at 4 kB pages: a progress update per step

# progress(done, total): pages for SQLite, tables for PostgreSQL.
Progress = Callable[[int, int], None]


class BackupError(Exception):
    """A backup or restore that did not happen; the message is one line for the user."""


@dataclass(frozen=True)
class BackupReport:
    path: Path
    tables: int
    rows: int


@dataclass(frozen=True)
class RestoreReport:
    path: Path
    revision: str | None  # alembic revision of the restored database


def database_kind(url: str) -> str:
    """``"sqlite"`` or ``"postgresql"``; BackupError for any other database."""
    backend = make_url(url).get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise BackupError(f"cannot back up a {backend} database (SQLite or PostgreSQL only)")
    return backend


def backup_database(url: str, path: Path, *, force: bool = False,
                    progress: Progress | None = None) -> BackupReport:
    """Write a backup of the database at ``url`` to ``path``.

    Refuses an existing ``path`` unless ``force``. The file is written under a temporary
    name in the same folder and renamed when complete. Raises BackupError.
    """
    kind = database_kind(url)
    path = Path(path)
    if path.is_dir():
        raise BackupError(f"{path} is a directory; give a file name")
    if not path.parent.is_dir():
        raise BackupError(f"folder {path.parent} does not exist")
    if path.exists() and not force:
        raise BackupError(f"{path} already exists (use --force to overwrite it)")
    if kind == "sqlite" and path.exists() and _same_file(path, _sqlite_path(url)):
        raise BackupError(f"{path} is the database itself")
    with _temporary(path) as tmp:
        if kind == "sqlite":
            tables, rows = _sqlite_backup(_sqlite_path(url), tmp, progress)
        else:
            tables, rows = _pg_backup(url, tmp, progress)
        _fsync(tmp)
        if force:
            os.replace(tmp, path)
        else:
            try:  # link() refuses a file that appeared meanwhile, replace() would not
                os.link(tmp, path)
            except FileExistsError:
                raise BackupError(f"{path} already exists (use --force to overwrite it)"
                                  ) from None
    return BackupReport(path, tables, rows)


def check_backup(url: str, path: Path) -> None:
    """Refuse (BackupError) a file ``rma restore`` cannot put into the database at ``url``:
    missing, not a backup, a backup of the other database kind, not of this app."""
    kind = database_kind(url)
    path = Path(path)
    if not path.exists():
        raise BackupError(f"{path} does not exist")
    if not path.is_file():
        raise BackupError(f"{path} is not a file")
    with open(path, "rb") as stream:
        head = stream.read(len(SQLITE_MAGIC))
    if head.startswith(PGDUMP_MAGIC):
        if kind == "sqlite":
            raise BackupError(f"{path} is a PostgreSQL backup; the configured database is "
                              "SQLite")
        _pg_check(path)
    elif head == SQLITE_MAGIC:
        if kind == "postgresql":
            raise BackupError(f"{path} is an SQLite backup; the configured database is "
                              "PostgreSQL")
        if _same_file(path, _sqlite_path(url)):
            raise BackupError(f"{path} is the database itself")
        _sqlite_check(path)
    else:
        raise BackupError(f"{path} is not a backup made by rma backup")


def restore_database(url: str, path: Path, *,
                     progress: Progress | None = None) -> RestoreReport:
    """Replace the database at ``url`` with the backup ``path`` (checked first by
    :func:`check_backup`). All or nothing. Raises BackupError."""
    check_backup(url, path)
    path = Path(path)
    if database_kind(url) == "sqlite":
        _sqlite_restore(path, _sqlite_path(url), progress)
    else:
        _pg_restore(url, path, progress)
    return RestoreReport(path, schema_revision(url))


def schema_revision(url: str) -> str | None:
    """The alembic revision of the database at ``url``, or None without one."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except Exception:  # noqa: BLE001 - no table or no row: no revision
        return None
    finally:
        engine.dispose()


# -- files ------------------------------------------------------------------------------
@contextmanager
def _temporary(path: Path) -> Iterator[Path]:
    """A temporary name beside ``path``, removed (with any SQLite side files) on exit."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        yield tmp
    finally:
        for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm"), Path(f"{tmp}-journal")):
            with suppress(FileNotFoundError):
                leftover.unlink()


def _fsync(path: Path) -> None:
    with open(path, "rb") as stream:
        os.fsync(stream.fileno())


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


# -- SQLite -----------------------------------------------------------------------------
def _sqlite_path(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file::memory:"):
        raise BackupError("the configured database is an in-memory SQLite database; "
                          "there is nothing to back up or restore")
    return Path(database)


def _copy(source: sqlite3.Connection, target: sqlite3.Connection,
          progress: Progress | None) -> None:
    def step(_status: int, remaining: int, total: int) -> None:
        if progress is not None:
            progress(total - remaining, total)

    source.backup(target, pages=SQLITE_PAGES_PER_STEP, progress=step, sleep=0.05)


def _sqlite_backup(database: Path, tmp: Path, progress: Progress | None) -> tuple[int, int]:
    if not database.is_file():
        raise BackupError(f"database file {database} does not exist")
    source = sqlite3.connect(f"{database.resolve().as_uri()}?mode=ro", uri=True, timeout=10,
                             isolation_level=None)
    try:
        # One read transaction around every step: the copy is one snapshot, and with WAL
        # the app's writers are not blocked (without it, each write restarts the copy).
        source.execute("BEGIN")
        source.execute("SELECT count(*) FROM sqlite_master").fetchone()
        target = sqlite3.connect(tmp, isolation_level=None)
        try:
            _copy(source, target, progress)
            # A copy of a WAL database is marked WAL; a backup is one self-contained file.
            target.execute("PRAGMA journal_mode = DELETE")
        finally:
            target.close()
        source.execute("COMMIT")
    except sqlite3.Error as error:
        raise BackupError(f"SQLite backup failed: {error}") from None
    finally:
        source.close()
    return _sqlite_counts(tmp)


def _sqlite_counts(path: Path) -> tuple[int, int]:
    connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        names = [name for (name,) in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
        # Names from sqlite_master, quoted: not user input.
        counts = [f'SELECT count(*) FROM "{name}"' for name in names]  # noqa: S608 # nosec B608
        rows = sum(connection.execute(sql).fetchone()[0] for sql in counts)
    finally:
        connection.close()
    return len(names), rows


def _sqlite_check(path: Path) -> None:
    try:
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            if connection.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                raise BackupError(f"{path} is a damaged SQLite database")
            known = connection.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' "
                                       "AND name = 'alembic_version'").fetchone()
            revision = known and connection.execute(
                "SELECT version_num FROM alembic_version").fetchone()
        finally:
            connection.close()
    except sqlite3.Error as error:
        raise BackupError(f"{path} cannot be read as an SQLite database: {error}") from None
    if not revision:
        raise BackupError(f"{path} is an SQLite database but not an RMA backup "
                          "(no alembic_version)")


def _sqlite_restore(path: Path, database: Path, progress: Progress | None) -> None:
    if not database.parent.is_dir():
        raise BackupError(f"folder {database.parent} does not exist")
    source = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        target = sqlite3.connect(database, timeout=10, isolation_level=None)
        try:
            target.execute("PRAGMA busy_timeout = 10000")
            _copy(source, target, progress)
        finally:
            target.close()
    except sqlite3.Error as error:
        raise BackupError(f"SQLite restore failed: {error}") from None
    finally:
        source.close()


# -- PostgreSQL -------------------------------------------------------------------------
# URL query parameters libpq also reads from its environment.
_PG_QUERY_ENV = {"host": "PGHOST", "port": "PGPORT", "sslmode": "PGSSLMODE",
                 "sslrootcert": "PGSSLROOTCERT", "sslcert": "PGSSLCERT", "sslkey": "PGSSLKEY",
                 "connect_timeout": "PGCONNECT_TIMEOUT", "options": "PGOPTIONS"}


def _pg_env(url: URL) -> dict[str, str]:
    env = dict(os.environ)  # libpq reads PG* as the app's driver does; the URL wins
    env["LC_MESSAGES"] = "C"  # the verbose lines are parsed for progress
    for key, value in {"PGHOST": url.host, "PGPORT": url.port, "PGUSER": url.username,
                       "PGPASSWORD": url.password, "PGDATABASE": url.database}.items():
        if value is not None:
            env[key] = str(value)
    for key, value in url.query.items():
        if key in _PG_QUERY_ENV:
            env[_PG_QUERY_ENV[key]] = value if isinstance(value, str) else value[-1]
    return env


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError(f"{name} was not found on PATH; install the PostgreSQL client "
                          "tools (Debian: apt-get install postgresql-client)")
    return found


def _run(args: list[str], env: dict[str, str], marker: str | None = None,
         on_line: Callable[[], None] | None = None) -> list[str]:
    """Run a pg tool; call ``on_line`` for each stderr line containing ``marker``.
    Returns stdout lines; BackupError with the tool's last error line on failure."""
    errors: list[str] = []
    out: list[str] = []
    with subprocess.Popen(args, env=env, stdout=subprocess.PIPE,  # nosec B603
                          stderr=subprocess.PIPE, text=True) as process:
        # stdout in a thread, so a full pipe cannot stall the tool while stderr is read.
        reader = threading.Thread(target=lambda: out.extend(process.stdout.read().splitlines()),
                                  daemon=True)
        reader.start()
        try:
            for line in process.stderr:  # type: ignore[union-attr]
                if marker and marker in line:
                    if on_line is not None:
                        on_line()
                elif line.strip():
                    errors.append(line.strip())
        except BaseException:  # progress failed or Ctrl-C: stop the tool, then re-raise
            process.kill()
            raise
        finally:
            process.wait()
            reader.join()
    if process.returncode != 0:
        messages = [e for e in errors if "error" in e.lower()] or errors
        detail = messages[-1] if messages else f"exit status {process.returncode}"
        raise BackupError(f"{Path(args[0]).name} failed: {detail}")
    return out


def _pg_backup(url_text: str, tmp: Path, progress: Progress | None) -> tuple[int, int]:
    pg_dump = _tool("pg_dump")
    url = make_url(url_text)
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn:
            snapshot = conn.execute(text("SELECT pg_export_snapshot()")).scalar()
            names = list(conn.execute(text(
                "SELECT quote_ident(table_schema) || '.' || quote_ident(table_name) "
                "FROM information_schema.tables WHERE table_type = 'BASE TABLE' AND "
                "table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1"
            )).scalars())
            done = 0

            def dumped() -> None:
                nonlocal done
                done += 1
                if progress is not None:
                    progress(min(done, len(names)), len(names))

            _run([pg_dump, "--format=custom", "--no-owner", "--no-privileges", "--verbose",
                  f"--snapshot={snapshot}", f"--file={tmp}"], _pg_env(url),
                 "dumping contents of table", dumped)
            # The same snapshot pg_dump read: the counts are the file's. The names come
            # from the catalogue, quoted by quote_ident: not user input.
            counts = [f"SELECT count(*) FROM {name}" for name in names]  # noqa: S608 # nosec B608
            rows = sum(conn.execute(text(sql)).scalar() for sql in counts)
    except BackupError:
        raise
    except Exception as error:  # noqa: BLE001 - connection errors become one line
        raise BackupError(f"cannot read the database: {_first_line(error)}") from None
    finally:
        engine.dispose()
    return len(names), rows


def _first_line(error: Exception) -> str:
    lines = str(getattr(error, "orig", None) or error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def _pg_check(path: Path) -> None:
    listing = _run([_tool("pg_restore"), "--list", str(path)], {**os.environ,
                                                                "LC_MESSAGES": "C"})
    # A table-of-contents line: "293; 1259 813556 TABLE public alembic_version owner".
    if not any(re.match(r"\d+; \d+ \d+ TABLE \S+ alembic_version\b", line)
               for line in listing):
        raise BackupError(f"{path} is a PostgreSQL backup but not an RMA backup "
                          "(no alembic_version)")


def _pg_restore(url_text: str, path: Path, progress: Progress | None) -> None:
    pg_restore = _tool("pg_restore")
    url = make_url(url_text)
    listing = _run([pg_restore, "--list", str(path)], {**os.environ, "LC_MESSAGES": "C"})
    total = sum(1 for line in listing if " TABLE DATA " in line and not line.startswith(";"))
    done = 0

    def restored() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(min(done, total), total)

    if not url.database:
        raise BackupError("the database URL names no database")
    _run([pg_restore, "--clean", "--if-exists", "--no-owner", "--no-privileges",
          "--single-transaction", "--exit-on-error", "--verbose",
          f"--dbname={url.database}", str(path)], _pg_env(url),
         "processing data for table", restored)
