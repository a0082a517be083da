"""End-to-end harness: the real app under gunicorn, driven by a real Chromium.

``server`` starts ``gunicorn 'rma:create_app()'`` on a free loopback port against a
database migrated with ``rma init-db``, once per test module and database (SQLite always;
PostgreSQL too when ``RMA_TEST_DATABASE_URL`` is set, in a fresh ``rma_e2e_<hex>``
database dropped afterwards). Tests in one module therefore share the server's data:
each test uses its own codes and serials. ``run_cli`` runs the ``rma`` console script
against the same database. ``new_page`` opens a fresh browser context (cookies, viewport)
per call; on failure every page opened by the test is saved as a screenshot in the test's
``tmp_path``.

Everything under ``tests/e2e`` carries the ``e2e`` marker: ``pytest -m "not e2e"`` skips it.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

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
FIXED_NOW = "2026-11-25T04:00:00+00:00"  # 12:00 in Shanghai: "today" is 2026-11-25
READY_TIMEOUT = 20.0
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


@contextmanager
def _postgres_database() -> Iterator[str]:
    """A fresh, empty PostgreSQL database on the RMA_TEST_DATABASE_URL server; dropped after."""
    import psycopg
    from psycopg import sql
    from sqlalchemy.engine import make_url

    base = make_url(PG_URL)
    admin_dsn = base.set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"rma_e2e_{secrets.token_hex(6)}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                         .format(sql.Identifier(name)))


@contextmanager
def _gunicorn(workdir: Path, env: dict[str, str]) -> Iterator[str]:
    """Start gunicorn on a free loopback port; yield its base URL once GET / answers."""
    for attempt in range(3):  # the free port may be taken between probe and bind
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        log_path = workdir / f"gunicorn-{port}.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [GUNICORN, "--no-control-socket", "--workers", "2",
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


@pytest.fixture(scope="module", params=DATABASES)
def server(request, tmp_path_factory, mailbox) -> Iterator[Server]:
    """The real app under gunicorn (2 workers) on a migrated database of its own; its
    e-mail goes to ``mailbox`` when ``rma tick`` runs (``run_cli(server, "tick")``)."""
    workdir = tmp_path_factory.mktemp(f"e2e-{request.param}")
    with ExitStack() as stack:
        if request.param == "sqlite":
            database_url = f"sqlite:///{workdir / 'e2e.sqlite3'}"
        else:
            database_url = stack.enter_context(_postgres_database())
        env = _base_env(workdir, database_url, mailbox.port)
        probe = Server("", env, workdir, request.param)
        migrated = run_cli(probe, "init-db")
        assert migrated.returncode == 0, f"rma init-db failed:\n{migrated.stderr}"
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
def page(new_page):
    """A page in a fresh context (see ``new_page``)."""
    return new_page()
