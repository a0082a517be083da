"""End-to-end harness: the real app under gunicorn, driven by a real Chromium.

``server`` starts ``gunicorn 'rma:create_app()'`` on a free loopback port against a
database migrated with ``rma init-db``, once per test module and database (SQLite always;
PostgreSQL too when ``RMA_TEST_DATABASE_URL`` is set, in a fresh ``rma_e2e_<hex>``
database dropped afterwards). ``rma init-db`` runs once per test run and database kind
(``migrated``), into a template that each server's database is copied from. A module
pinned with ``pytestmark = ON_SQLITE`` runs on SQLite only; its PostgreSQL half lives in
a module of its own (``pytestmark = ON_POSTGRESQL``), so that ``--dist loadfile`` runs
the halves on two workers. Tests in one module share the server's data: each test uses
its own codes and serials. ``run_cli`` runs the ``rma`` console script against the same
database; ``cli_session`` runs several commands (setup data) in one process. ``new_page``
opens a fresh browser context (cookies, viewport) per call; on failure every page opened
by the test is saved as a screenshot in the test's ``tmp_path``.

Everything under ``tests/e2e`` carries the ``e2e`` marker: ``pytest -m "not e2e"`` skips it.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
GUNICORN = str(BIN / "gunicorn")
RMA = str(BIN / "rma")
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]
PG_URL = os.environ.get("RMA_TEST_DATABASE_URL", "")
DATABASES = ["sqlite"] + (["postgresql"] if PG_URL else [])
# A module's ``pytestmark``: its ``server`` on one database only (the fixture's scope).
ON_SQLITE = pytest.mark.parametrize("server", ["sqlite"], indirect=True)
ON_POSTGRESQL = [pytest.mark.skipif(not PG_URL, reason="needs RMA_TEST_DATABASE_URL"),
                 pytest.mark.parametrize("server", ["postgresql"], indirect=True)]
FIXED_NOW = "2026-11-25T04:00:00+00:00"  # 12:00 in Shanghai: "today" is 2026-11-25
READY_TIMEOUT = 60.0  # a deadline, not a wait: 20 s was too short on 2 busy CPUs
PAGE_TIMEOUT_MS = 10_000
CLI_TIMEOUT = 60


# -- marker -------------------------------------------------------------------------------
@pytest.hookimpl(tryfirst=True)  # before -m deselects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(item.path).resolve().is_relative_to(HERE):
            item.add_marker(pytest.mark.e2e)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """Keep each phase's report on the item, so fixtures can tell a failed test."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


# -- server ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Server:
    url: str  # http://127.0.0.1:<port>, no trailing slash
    env: dict[str, str]  # what gunicorn and the CLI run with
    workdir: Path
    database: str  # "sqlite" or "postgresql"


def run_cli(server: Server, *args: str, input: str | None = None,
            timeout: float = CLI_TIMEOUT) -> subprocess.CompletedProcess[str]:
    """Run ``rma ARGS`` with the server's environment (same database); asserts nothing."""
    stdin = {"input": input} if input is not None else {"stdin": subprocess.DEVNULL}
    return subprocess.run(
        [RMA, *args], env=server.env, cwd=server.workdir, capture_output=True, text=True,
        encoding="utf-8", timeout=timeout, check=False, **stdin,
    )


# The other end of ``cli_session``: reads one JSON line [args, stdin] at a time, runs it
# through the console script's own entry point (rma.cli:main, so a fresh app each time)
# with its own standard input and output, and answers one JSON line [code, out, err].
_CLI_SESSION = """
import json, sys, traceback
from click.testing import CliRunner
from rma.cli import main

answers = sys.stdout
for line in sys.stdin:
    args, stdin = json.loads(line)
    sys.argv = ["rma", *args]
    with CliRunner().isolation(input=stdin) as (out, err, _):
        try:
            main()
            code = 0
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else 0 if stop.code is None else 1
            if code and not isinstance(stop.code, int):
                print(stop.code, file=sys.stderr)
        except Exception:
            traceback.print_exc()
            code = 1
        sys.stdout.flush()
        sys.stderr.flush()
        answer = [code, out.getvalue().decode(), err.getvalue().decode()]
    answers.write(json.dumps(answer) + "\\n")
    answers.flush()
"""


class CliSession:
    """``rma`` commands run one after the other in ONE Python process (see ``cli_session``)."""

    def __init__(self, proc: subprocess.Popen, log_path: Path) -> None:
        self.proc = proc
        self.log_path = log_path

    def run(self, *args: str, input: str | None = None,
            timeout: float = CLI_TIMEOUT) -> subprocess.CompletedProcess[str]:
        """As ``run_cli(server, *args, input=input)``; asserts nothing."""
        self.proc.stdin.write(json.dumps([list(args), input]) + "\n")
        self.proc.stdin.flush()
        watchdog = threading.Timer(timeout, self.proc.kill)  # a hung command ends the session
        watchdog.start()
        try:
            line = self.proc.stdout.readline()
        finally:
            watchdog.cancel()
        if not line:
            log = self.log_path.read_text(errors="replace")
            pytest.fail(f"the rma session died during rma {' '.join(args)}:\n{log}",
                        pytrace=False)
        code, out, err = json.loads(line)
        return subprocess.CompletedProcess([RMA, *args], code, out, err)

    def ok(self, *args: str, input: str | None = None) -> str:
        """``run``, asserting the command succeeded; its standard output."""
        result = self.run(*args, input=input)
        assert result.returncode == 0, (
            f"rma {' '.join(args)}:\n{result.stdout}\n{result.stderr}")
        return result.stdout


@contextmanager
def cli_session(server: Server) -> Iterator[CliSession]:
    """A session of ``rma`` commands against the server's database, for setup data: each
    ``session.run(*args, input=...)`` is what ``run_cli`` does, but in one long-lived
    process, where starting Python and importing the app for each command (1-2 s of CPU)
    was most of a module's setup. Commands that are themselves a journey's step (``rma
    tick``, say) still use ``run_cli``: a process of their own."""
    log_path = server.workdir / f"cli-session-{secrets.token_hex(4)}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", _CLI_SESSION], env=server.env, cwd=server.workdir,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True,
            encoding="utf-8",
        )
    try:
        yield CliSession(proc, log_path)
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=CLI_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()


# -- mail -----------------------------------------------------------------------------------
class Mailbox:
    """A real SMTP server (aiosmtpd) on a free loopback port; keeps what arrives."""

    def __init__(self) -> None:
        self.messages: list = []
        self.port = 0

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd API)
        import email
        from email import policy

        self.messages.append(email.message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"

    def to(self, address: str) -> list:
        return [m for m in self.messages if address in str(m["To"])]


@pytest.fixture(scope="session")
def mailbox() -> Iterator[Mailbox]:
    from aiosmtpd.controller import Controller

    box = Mailbox()
    port = _free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    box.port = port
    try:
        yield box
    finally:
        controller.stop()


def _base_env(workdir: Path, database_url: str, smtp_port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RMA_", "FLASK_"))}
    # Let Python cache the app's bytecode: where the environment forbids it, every start of
    # ``rma`` or a gunicorn worker compiled the app's ~100 modules again (~0.3 s of CPU).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update({
        "RMA_MAIL_BACKEND": "smtp",
        "RMA_SMTP_HOST": "127.0.0.1",
        "RMA_SMTP_PORT": str(smtp_port),
        "RMA_INSTANCE_PATH": str(workdir / "instance"),
        "RMA_DATABASE_URL": database_url,
        "RMA_SECRET_KEY": "e2e-secret",
        "RMA_PASSWORD_HASH_METHOD": "pbkdf2:sha256:1000",
        "RMA_FIXED_NOW": FIXED_NOW,
        "PYTHONUNBUFFERED": "1",
        "PYTHONIOENCODING": "utf-8",
    })
    return env


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy


def _is_up(url: str) -> bool:
    try:
        with _DIRECT.open(url + "/", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return False


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


def _postgres_admin():
    import psycopg
    from sqlalchemy.engine import make_url

    base = make_url(PG_URL).set(drivername="postgresql")
    return psycopg.connect(base.render_as_string(hide_password=False), autocommit=True)


def _postgres_url(name: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(PG_URL).set(database=name).render_as_string(hide_password=False)


def _create_postgres(template: str | None = None) -> str:
    """A new database ``rma_e2e_<hex>``, empty or a copy of ``template``; its name."""
    from psycopg import sql

    name = f"rma_e2e_{secrets.token_hex(6)}"
    create = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template is not None:
        create += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
    with _postgres_admin() as conn:
        conn.execute(create)
        # commits need not reach the disk in a throw-away database (as tests/conftest.py)
        conn.execute(sql.SQL("ALTER DATABASE {} SET synchronous_commit = off")
                     .format(sql.Identifier(name)))
    return name


def _drop_postgres(name: str) -> None:
    from psycopg import sql

    with _postgres_admin() as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                     .format(sql.Identifier(name)))


@contextmanager
def _postgres_database() -> Iterator[str]:
    """A fresh, empty PostgreSQL database on the RMA_TEST_DATABASE_URL server; dropped after."""
    name = _create_postgres()
    try:
        yield _postgres_url(name)
    finally:
        _drop_postgres(name)


@contextmanager
def _gunicorn(workdir: Path, env: dict[str, str],
              workers: tuple[str, ...] = ("--workers", "2")) -> Iterator[str]:
    """Start gunicorn on a free loopback port; yield its base URL once GET / answers.
    ``workers``: gunicorn's worker options (2 sync workers unless told)."""
    for attempt in range(3):  # the free port may be taken between probe and bind
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        log_path = workdir / f"gunicorn-{port}.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [GUNICORN, "--no-control-socket", *workers,
                 "--bind", f"127.0.0.1:{port}", "rma:create_app()"],
                env=env, cwd=workdir, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            )
        try:
            deadline = time.monotonic() + READY_TIMEOUT
            while proc.poll() is None and time.monotonic() < deadline:
                if _is_up(url):
                    break
                time.sleep(0.1)
            else:
                log_text = log_path.read_text(errors="replace")
                if proc.poll() is not None and "Address already in use" in log_text \
                        and attempt < 2:
                    continue
                code = proc.poll()
                why = (f"exited with code {code}" if code is not None
                       else f"did not answer within {READY_TIMEOUT:.0f} s")
                pytest.fail(f"gunicorn {why} (GET {url}/); its stderr:\n{log_text}",
                            pytrace=False)
            yield url
            return
        finally:
            _stop(proc)


class Migrated:
    """Databases migrated by ``rma init-db`` (the real Alembic migrations, as a deployment
    runs them) once per test run and database kind, kept as templates: each ``database()``
    is a copy of one (a file copy on SQLite, ``CREATE DATABASE ... TEMPLATE`` on
    PostgreSQL), which takes a fraction of a second where ``rma init-db`` took seconds of
    CPU for every server. The pytest-xdist workers of one run share the templates through
    ``shared`` (their common temporary folder), under a file lock; a worker that finishes
    drops the PostgreSQL template, and one that needs it again makes it again."""

    def __init__(self, shared: Path) -> None:
        self.shared = shared

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self.shared / "e2e-migrated.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
            yield

    def _init_db(self, kind: str, url: str) -> None:
        probe = Server("", _base_env(self.shared, url, smtp_port=9), self.shared, kind)
        migrated = run_cli(probe, "init-db")
        assert migrated.returncode == 0, f"rma init-db failed:\n{migrated.stderr}"

    def _sqlite_template(self) -> Path:  # under the lock
        path = self.shared / "e2e-template.sqlite3"
        if not path.exists():
            part = self.shared / f"e2e-template-{secrets.token_hex(4)}.sqlite3"
            self._init_db("sqlite", f"sqlite:///{part}")
            with closing(sqlite3.connect(part)) as connection:  # fold the WAL into the file
                connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            part.rename(path)
        return path

    def _postgres_template(self) -> str:  # under the lock
        note = self.shared / "e2e-template.postgresql"
        if not note.exists():
            name = _create_postgres()
            try:
                self._init_db("postgresql", _postgres_url(name))
            except BaseException:
                _drop_postgres(name)
                raise
            note.write_text(name, encoding="utf-8")
        return note.read_text(encoding="utf-8")

    @contextmanager
    def database(self, kind: str, workdir: Path) -> Iterator[str]:
        """A migrated database of its own (on SQLite a file in ``workdir``); its URL."""
        if kind == "sqlite":
            path = workdir / "e2e.sqlite3"
            with self._locked():
                shutil.copyfile(self._sqlite_template(), path)
            yield f"sqlite:///{path}"
            return
        with self._locked():
            name = _create_postgres(template=self._postgres_template())
        try:
            yield _postgres_url(name)
        finally:
            _drop_postgres(name)

    def close(self) -> None:
        """Drop the PostgreSQL template, if there is one."""
        with self._locked():
            note = self.shared / "e2e-template.postgresql"
            if note.exists():
                _drop_postgres(note.read_text(encoding="utf-8"))
                note.unlink()


@pytest.fixture(scope="session")
def migrated(tmp_path_factory) -> Iterator[Migrated]:
    """The run's migrated templates (``Migrated``). Under pytest-xdist each worker's
    temporary folder is in the run's own, which the workers share."""
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent
    templates = Migrated(shared)
    try:
        yield templates
    finally:
        templates.close()


@pytest.fixture(scope="module", params=DATABASES)
def server(request, tmp_path_factory, mailbox, migrated) -> Iterator[Server]:
    """The real app under gunicorn (2 workers) on a migrated database of its own; its
    e-mail goes to ``mailbox`` when ``rma tick`` runs (``run_cli(server, "tick")``)."""
    workdir = tmp_path_factory.mktemp(f"e2e-{request.param}")
    with ExitStack() as stack:
        database_url = stack.enter_context(migrated.database(request.param, workdir))
        env = _base_env(workdir, database_url, mailbox.port)
        url = stack.enter_context(_gunicorn(workdir, env))
        yield Server(url, env, workdir, request.param)


# -- browser -------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def browser():
    """One headless Debian Chromium for the session (never ``playwright install``)."""
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    try:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
    finally:
        playwright.stop()


def _note_console(message, page, problems: list[str]) -> None:
    """Keep console errors, except the 404 of the /favicon.ico Chromium asks for by itself
    (the app links an SVG favicon; older requests may still ask)."""
    if message.type != "error":
        return
    source = (message.location or {}).get("url", "")
    if source.endswith("/favicon.ico"):
        return
    problems.append(f"console error on {page.url}: {message.text} ({source or 'page'})")


@pytest.fixture
def new_page(request, browser, server, tmp_path) -> Iterator[Callable[..., object]]:
    """``new_page(**context_options)``: a page in a fresh context (its own cookies) with
    ``base_url`` set to the server, locale en-US and a 10 s default timeout."""
    contexts = []
    problems: list[str] = []  # console errors, uncaught exceptions (a CSP violation, say)

    def _new_page(**options):
        options = {"locale": "en-US", "base_url": server.url, **options}
        context = browser.new_context(**options)
        context.set_default_timeout(PAGE_TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        page.on("console", lambda message: _note_console(message, page, problems))
        page.on("pageerror", lambda error: problems.append(f"error on {page.url}: {error}"))
        return page

    yield _new_page
    report = getattr(request.node, "rep_call", None)
    try:
        if report is not None and report.passed and problems:
            pytest.fail("the browser reported:\n" + "\n".join(problems), pytrace=False)
        if report is not None and report.failed:
            for i, context in enumerate(contexts):
                for j, page in enumerate(context.pages):
                    path = tmp_path / f"failure-{i}-{j}.png"
                    try:
                        page.screenshot(path=str(path), full_page=True)
                    except Exception as error:  # best effort: never hide the real failure
                        sys.stderr.write(f"screenshot failed: {error}\n")
                    else:
                        sys.stderr.write(f"screenshot of {page.url}: {path}\n")
    finally:
        for context in contexts:
            context.close()


@pytest.fixture
def refused_posts(monkeypatch) -> set[str]:
    """Paths whose 422 answer the test expects (a refused form post answers 422 with the
    error beside its field; Chromium logs that status as a console error, which the
    harness would report). Only a 422 of a path put in the returned set is let through;
    any other console error still fails the test."""
    expected: set[str] = set()
    note = _note_console

    def _note(message, page, problems: list[str]) -> None:
        source = (message.location or {}).get("url", "")
        if (message.type == "error" and "status of 422" in message.text
                and urlsplit(source).path in expected):
            return
        note(message, page, problems)

    monkeypatch.setitem(globals(), "_note_console", _note)
    return expected


@pytest.fixture
def page(new_page):
    """A page in a fresh context (see ``new_page``)."""
    return new_page()
