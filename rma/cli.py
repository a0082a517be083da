"""Command line: ``rma --help`` (or ``flask --app rma ...``).

Every command exits non-zero with one clear line on bad input, so provisioning scripts
can rely on it (issue 2, CLI).
"""

from __future__ import annotations

import csv
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup, with_appcontext

from rma.services import (
    ServiceError,
    advisories,
    analytics_snapshots,  # issue 7: precomputed failure analytics (helper S2)
    incident_jobs,
    quotes,
    replacement_jobs,
    service_reports,  # issue 7: R-R4 (helper R)
)
from rma.services.audit import Actor


def main() -> None:
    """Console script ``rma``."""
    from rma import create_app

    group = FlaskGroup(create_app=lambda: create_app(), name="rma",
                       help="RMA and warranty service.")
    group.main(prog_name="rma")


def _fail(error: ServiceError | Exception) -> None:
    field = getattr(error, "field", None)
    message = getattr(error, "message", str(error))
    prefix = f"{field}: " if field and not message.startswith(field) else ""
    raise click.ClickException(prefix + message)


@click.command("init-db")
@with_appcontext
def init_db() -> None:
    """Create or migrate the database to the latest schema."""
    from flask_migrate import upgrade

    upgrade()
    from rma.services.schema import current_revision

    click.echo(f"database is at the latest schema (revision {current_revision()})")


@click.command("demo-data")
@with_appcontext
def demo_data() -> None:
    """Load demo product models, customers, units and one user per role (idempotent)."""
    from rma.demo import load_demo

    logins = load_demo(echo=click.echo)
    click.echo("Demo log-ins (http://127.0.0.1:8000/login):")
    for email, password, role in logins:
        click.echo(f"  {role:<10} {email:<28} {password}")


@click.command("add-model")
@click.argument("code")
@click.option("--name", required=True, help="Display name.")
@click.option("--kind", required=True, type=click.Choice(["hardware", "software", "appliance"]))
@click.option("--life-months", required=True, type=int, help="Rated life = warranty (R-W2).")
@click.option("--basis", default="ship", show_default=True,
              type=click.Choice(["ship", "activation", "acceptance"]),
              help="What starts the warranty.")
@click.option("--price", default="0", show_default=True, help="Replacement price in CNY.")
@click.option("--unit-cost", default="0", show_default=True,
              help="What one unit costs the vendor, in CNY (warranty cost in analytics).")
@with_appcontext
def add_model(code, name, kind, life_months, basis, price, unit_cost) -> None:
    """Add a product model CODE."""
    from rma.services.catalog import create_product_model

    try:
        model = create_product_model(Actor.cli("add-model"), code, name, kind, life_months,
                                     basis, price, unit_cost=unit_cost)
    except ServiceError as error:
        _fail(error)
    click.echo(f"added product model {model.code}: {model.life_months} months from {basis}")


@click.command("add-customer")
@click.argument("name")
@click.option("--accepted-on", default="", help="Acceptance certificate date, YYYY-MM-DD.")
@click.option("--contract-months", default=12, show_default=True, type=int)
@click.option("--address", default="")
@with_appcontext
def add_customer(name, accepted_on, contract_months, address) -> None:
    """Register customer NAME; prints its new contract number as the last line (R-C1)."""
    from rma.services.catalog import create_customer

    try:
        customer = create_customer(Actor.cli("add-customer"), name, accepted_on or None,
                                   contract_months, address)
    except ServiceError as error:
        _fail(error)
    click.echo(f"registered {customer.name}")
    click.echo(customer.contract_number)


@click.command("create-user")
@click.argument("email")
@click.option("--role", required=True,
              type=click.Choice(["customer", "support", "warehouse", "finance", "manager",
                                 "admin"]))
@click.option("--customer", "contract", default="", help="Contract number (customer role).")
@click.option("--language", type=click.Choice(["zh_CN", "en"]), default=None)
@click.option("--customer-admin", is_flag=True,
              help="The customer's administrator: invites and manages colleagues.")
@with_appcontext
def create_user_command(email, role, contract, language, customer_admin) -> None:
    """Create a user. The password is read from standard input when one is piped in;
    otherwise a generated one is printed."""
    from rma.services.catalog import customer_by_contract
    from rma.services.users import create_user, generate_password

    password = ""
    generated = False
    if not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        password, generated = generate_password(), True
    try:
        customer = customer_by_contract(contract) if contract else None
        user = create_user(Actor.cli("create-user"), email, role, password, customer, language,
                           is_customer_admin=customer_admin)
    except ServiceError as error:
        _fail(error)
    click.echo(f"created {user.role} user {user.email}")
    if generated:
        click.echo(f"password: {password}")


@click.command("create-token")
@click.argument("email")
@click.option("--name", default="", help="What the token is for.")
@with_appcontext
def create_token_command(email, name) -> None:
    """Create an API bearer token for EMAIL; prints it as the last line (shown once)."""
    from rma.services.users import create_token, user_by_email

    try:
        user = user_by_email(email)
        token = create_token(Actor.cli("create-token"), user, name)
    except ServiceError as error:
        _fail(error)
    click.echo(f"token for {user.email} (store it now; it is not shown again):")
    click.echo(token)


@click.command("warranty")
@click.argument("serial")
@click.option("--on", "on_text", default="", help="Date to judge, YYYY-MM-DD (default today).")
@with_appcontext
def warranty_command(serial, on_text) -> None:
    """Show the warranty coverage of SERIAL."""
    from rma.services.catalog import parse_date
    from rma.services.warranty_check import check_warranty
    from warranty import SerialError

    try:
        answer = check_warranty(serial, parse_date(on_text, "on") if on_text else None)
    except SerialError as error:
        raise click.ClickException(str(error)) from None
    except ServiceError as error:
        _fail(error)
    cov = answer.coverage
    click.echo(f"serial:        {answer.serial}")
    click.echo(f"product model: {answer.product_model} ({answer.product_name}, {answer.kind})")
    click.echo(f"basis:         {cov.basis_used}")
    click.echo(f"start:         {cov.start_on or '-'}")
    click.echo(f"last covered:  {cov.end_on or '-'}")
    if answer.replacement_of:
        click.echo(f"replaces:      {answer.replacement_of} (chain {' -> '.join(cov.chain)})")
    state = f"in warranty, {cov.days_left} days left" if cov.in_warranty else "out of warranty"
    click.echo(f"on {cov.on}:  {state}")


@click.command("import-units")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--skip-invalid", is_flag=True,
              help="Import the valid rows; write rejected rows with reasons to --rejects.")
@click.option("--update", is_flag=True, help="Update known serials instead of refusing them.")
@click.option("--rejects", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where --skip-invalid writes rejected rows (default FILE.rejects.csv).")
@with_appcontext
def import_units_command(file: Path, skip_invalid: bool, update: bool, rejects) -> None:
    """Import units from FILE.csv: serial,model,customer_contract,lot,shipped_on[,activated_on].

    All-or-nothing unless --skip-invalid.
    """
    from rma.services.unit_import import ImportAborted, import_units

    rejects_path = rejects or file.with_name(file.stem + ".rejects.csv")
    rejects_file = None
    writer = None
    if skip_invalid:
        rejects_file = open(rejects_path, "w", newline="", encoding="utf-8-sig")  # noqa: SIM115
        writer = csv.writer(rejects_file)
        writer.writerow(["line", "serial", "model", "customer_contract", "lot", "shipped_on",
                         "activated_on", "error"])

    def on_reject(line: int, fields: list[str], reason: str) -> None:
        if writer is not None:
            writer.writerow([line, *(list(fields) + [""] * 6)[:6], reason])

    size = file.stat().st_size
    try:
        with open(file, "rb") as stream, click.progressbar(
            length=size, label=f"importing {file.name}", file=sys.stderr,
            show_pos=False, show_percent=True, show_eta=True,
        ) as bar:
            report = import_units(Actor.cli("import-units"), stream, source=file.name,
                                  skip_invalid=skip_invalid, update=update,
                                  rejects=on_reject, progress=bar.update)
    except ImportAborted as error:
        raise click.ClickException(str(error)) from None
    finally:
        if rejects_file is not None:
            rejects_file.close()
    if not report.committed:
        for error in report.errors:
            click.echo(str(error), err=True)
        more = report.error_count - len(report.errors)
        if report.stopped_early:
            click.echo(f"stopped after {len(report.errors)} errors", err=True)
        elif more > 0:
            click.echo(f"... and {more} more errors", err=True)
        click.echo(f"nothing imported: {report.rejected} invalid rows of {report.rows} read",
                   err=True)
        sys.exit(1)
    click.echo(
        f"imported {report.inserted} new units, updated {report.updated}, "
        f"unchanged {report.unchanged}, rejected {report.rejected} of {report.rows} rows"
    )
    if skip_invalid and report.rejected:
        click.echo(f"rejected rows with reasons: {rejects_path}")
    elif rejects_file is not None:
        rejects_path.unlink(missing_ok=True)


# -- periodic jobs: rma tick ----------------------------------------------------------
@dataclass(frozen=True)
class TickResult:
    summary: str  # one short phrase for the tick line, e.g. "mail: sent 1, failed 0, ..."
    busy: bool = True  # False when the run found nothing to do (the loop stays quiet)


@dataclass(frozen=True)
class TickJob:
    """One periodic job of ``rma tick``. ``run(now)`` does the work due at ``now`` and
    commits its own changes; ``check(app)`` validates the job's settings once at start
    and raises with a one-line message."""

    name: str
    run: Callable[[datetime], TickResult]
    check: Callable[[Flask], None] | None = None


def _mail_job(now: datetime) -> TickResult:
    from rma.services.outbox import pending_summary, send_due

    report = send_due(now=now)
    waiting = pending_summary(now)
    text = f"mail: sent {report.sent}, failed {report.failed}, pending {waiting.pending}"
    if report.errors:
        text += f" (last error: {report.errors[-1][1][:200]})"
    return TickResult(text, busy=bool(report.sent or report.failed))


def _check_mail(app: Flask) -> None:
    from rma.mail import backend_from_config

    backend_from_config(app.config)


# Later issues append their jobs here (escalations, reports ...); they run in this order.
# Jobs that queue e-mail run before "mail", so their messages go out in the same tick.
TICK_JOBS: list[TickJob] = [
    TickJob("at-risk", replacement_jobs.at_risk_job, replacement_jobs.check_settings),
    TickJob("unit-overdue", replacement_jobs.unit_overdue_job),
    TickJob("quote-expiry", quotes.expire_quotes_job),
    TickJob("escalation", incident_jobs.escalation_job),
    TickJob("incident-warnings", incident_jobs.warning_job),
    TickJob("daily-briefs", incident_jobs.brief_job),
    TickJob("analytics-snapshot", analytics_snapshots.analytics_snapshot_job),  # issue 7 (S2)
    TickJob("advisory-deadline", advisories.advisory_deadline_job),  # issue 7: R-A2
    TickJob("service-reports", service_reports.send_due_reports_job),  # issue 7: R-R4
    TickJob("mail", _mail_job, _check_mail),
]


def _check_jobs(app: Flask) -> None:
    for job in TICK_JOBS:
        if job.check is None:
            continue
        try:
            job.check(app)
        except Exception as error:  # noqa: BLE001 - a check's only output is its message
            raise click.ClickException(f"configuration error ({job.name}): {error}") from None


def _run_jobs(app: Flask) -> tuple[str, bool, bool]:
    """Run every job once; one failing job is logged and does not stop the others.
    Returns (line, busy, all_ok)."""
    from rma import clock
    from rma.errors import discard_session, is_database_unavailable

    now = clock.now()
    parts: list[str] = []
    busy = False
    ok = True
    for job in TICK_JOBS:
        try:
            result = job.run(now)
        except Exception as error:  # noqa: BLE001 - logged; the next job still runs
            if is_database_unavailable(error):  # one line, not a traceback per job
                app.logger.warning("tick job %s: database unavailable (%s)", job.name,
                                   str(error).splitlines()[0][:200])
                parts.append(f"{job.name}: FAILED (database unavailable)")
            else:
                app.logger.exception("tick job %s failed", job.name)
                parts.append(f"{job.name}: FAILED ({type(error).__name__}: {error})")
            busy, ok = True, False
        else:
            parts.append(result.summary)
            busy = busy or result.busy
        finally:
            discard_session(app.logger)  # a connection lost meanwhile must not stop the loop
    stamp = clock.to_local(now).strftime("%Y-%m-%d %H:%M:%S %Z")
    return f"tick {stamp}: " + "; ".join(parts), busy, ok


def _loop(app: Flask, interval: float) -> None:
    stop = threading.Event()

    def _stop(_signum, _frame) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    names = ", ".join(job.name for job in TICK_JOBS)
    click.echo(f"tick loop: {names} every {interval:g} s (Ctrl-C or SIGTERM stops)")
    last = None
    try:
        while not stop.is_set():
            line, busy, ok = _run_jobs(app)
            quiet = line.split(": ", 1)[1]
            if busy or not ok or quiet != last:  # idle repeats stay quiet
                click.echo(line)
                last = quiet
            stop.wait(interval)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    click.echo("tick loop stopped")


@click.command("tick")
@click.option("--loop", is_flag=True, help="Keep running every --interval seconds until "
              "SIGTERM or Ctrl-C.")
@click.option("--interval", default=10.0, show_default=True,
              type=click.FloatRange(min=0.1), help="Seconds between runs with --loop.")
@with_appcontext
def tick_command(loop: bool, interval: float) -> None:
    """Run the periodic jobs that are due (send queued e-mail ...) once, or with --loop
    for ever. Prints one line per run; exits 1 when a job failed (once) or on a
    configuration error."""
    app = current_app._get_current_object()
    _check_jobs(app)
    if loop:
        _loop(app, interval)
        return
    line, _busy, ok = _run_jobs(app)
    click.echo(line)
    if not ok:
        sys.exit(1)


@click.command("send-test-mail")
@click.argument("to")
@click.option("--language", type=click.Choice(["zh_CN", "en"]), default="zh_CN",
              show_default=True)
@with_appcontext
def send_test_mail_command(to: str, language: str) -> None:
    """Queue a test e-mail to TO and send what is due now: checks the MAIL_* and SMTP_*
    settings end to end. Exits 1 when the test message could not be sent."""
    from rma.services.outbox import pending_summary, queue_test_message, send_due

    _check_jobs(current_app._get_current_object())
    try:
        message = queue_test_message(Actor.cli("send-test-mail"), to, language)
    except ServiceError as error:
        _fail(error)
    message_id = message.id
    report = send_due()
    waiting = pending_summary()
    click.echo(f"mail: sent {report.sent}, failed {report.failed}, pending {waiting.pending}")
    if message_id in report.sent_ids:
        click.echo(f"test message #{message_id} sent to {to}")
        return
    errors = dict(report.errors)
    if message_id in errors:
        raise click.ClickException(f"test message #{message_id} not sent: {errors[message_id]}"
                                   " (it stays queued and is retried by `rma tick`)")
    raise click.ClickException(f"test message #{message_id} is queued behind older messages; "
                               "`rma tick` sends it")


# -- issue 8: rma backup / rma restore (helper I2) ----------------------------------------
class _PagesBar:
    """A progress bar on stderr whose length is known only at the first update."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.bar = None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            self.bar = click.progressbar(length=max(total, 1), label=self.label,
                                         file=sys.stderr, show_pos=True)
            self.bar.__enter__()
        self.bar.length = max(total, 1)
        self.bar.update(done - self.bar.pos)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


def _head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    config = current_app.extensions["migrate"].migrate.get_config()
    return ScriptDirectory.from_config(config).get_current_head()


@click.command("backup")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite PATH if it exists.")
@with_appcontext
def backup_command(path: Path, force: bool) -> None:
    """Write a consistent backup of the database to PATH while the app keeps running
    (SQLite: online backup API; PostgreSQL: pg_dump custom format)."""
    from rma.backup import BackupError, backup_database, database_kind

    url = current_app.config["SQLALCHEMY_DATABASE_URI"]
    bar = None
    try:
        unit = "pages" if database_kind(url) == "sqlite" else "tables"
        bar = _PagesBar(f"backing up ({unit})")
        report = backup_database(url, path, force=force, progress=bar)
    except BackupError as error:
        raise click.ClickException(str(error)) from None
    finally:
        if bar is not None:
            bar.close()
    click.echo(f"backup written to {report.path} ({report.tables} tables, {report.rows} rows)")


@click.command("restore")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@with_appcontext
def restore_command(path: Path, yes: bool) -> None:
    """Replace the whole database with the backup PATH made by `rma backup`.
    Stop the app (gunicorn, rma tick) first."""
    from rma.backup import BackupError, check_backup, database_kind, restore_database
    from rma.extensions import db

    url = current_app.config["SQLALCHEMY_DATABASE_URI"]
    try:
        check_backup(url, path)
    except BackupError as error:
        raise click.ClickException(str(error)) from None
    if not yes:
        try:
            go = click.confirm(f"This replaces every table of the database with the backup "
                               f"{path}. Continue?", default=False, err=True)
        except click.Abort:  # no answer (end of input, Ctrl-C)
            click.echo(err=True)
            go = False
        if not go:
            raise click.ClickException("restore cancelled; the database was not changed")
    # Our own pooled connections would hold locks the restore must take.
    db.session.remove()
    for engine in db.engines.values():
        engine.dispose()
    unit = "pages" if database_kind(url) == "sqlite" else "tables"
    bar = _PagesBar(f"restoring ({unit})")
    try:
        report = restore_database(url, path, progress=bar)
    except BackupError as error:
        raise click.ClickException(str(error)) from None
    finally:
        bar.close()
    head = _head_revision()
    click.echo(f"database restored from {report.path}; schema revision "
               f"{report.revision or 'none'}")
    if report.revision != head:
        click.echo(f"the latest schema is revision {head}: run `rma init-db` to migrate",
                   err=True)


@click.command("set-holder")
@click.argument("role", type=click.Choice(
    ["account_manager", "technical_lead", "service_director", "cto", "president"]))
@click.argument("email")
@click.option("--deputy", default="", help="The deputy's e-mail (told alongside the holder).")
@click.option("--customer", "contract", default="",
              help="Contract number: the account manager of this customer only.")
@with_appcontext
def set_holder_command(role, email, deputy, contract) -> None:
    """Set who holds an escalation ROLE (R-I4), as /admin/escalation does: an active
    staff user, with an optional deputy; the account manager globally (the fallback)
    or per customer. Replaces the existing holder."""
    from rma.services.catalog import customer_by_contract
    from rma.services.escalation_setup import set_holder
    from rma.services.users import user_by_email

    try:
        user = user_by_email(email)
        deputy_user = user_by_email(deputy) if deputy else None
        customer = customer_by_contract(contract) if contract else None
        row = set_holder(Actor.cli("set-holder"), role, user.id,
                         deputy_user.id if deputy_user else None,
                         customer.id if customer else None)
    except ServiceError as error:
        _fail(error)
    scope = f" for {customer.name} ({contract})" if customer else ""
    extra = f", deputy {deputy_user.email}" if deputy_user else ""
    click.echo(f"{row.role}{scope}: {user.email}{extra}")


@click.command("holders")
@with_appcontext
def holders_command() -> None:
    """List the escalation role holders (R-I4): role, customer, holder, deputy."""
    from rma.services.escalation_setup import holders

    rows = holders()
    if not rows:
        click.echo("no escalation holders are set: escalations go to the managers")
    for row in rows:
        scope = f" [{row.customer.contract_number}]" if row.customer else ""
        deputy = f" (deputy {row.deputy.email})" if row.deputy else ""
        click.echo(f"{row.role}{scope}: {row.user.email}{deputy}")


COMMANDS = [init_db, demo_data, add_model, add_customer, create_user_command,
            create_token_command, warranty_command, import_units_command, tick_command,
            send_test_mail_command, backup_command, restore_command, set_holder_command,
            holders_command]



def init_app(app: Flask) -> None:
    for command in COMMANDS:
        app.cli.add_command(command)
