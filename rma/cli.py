"""Command line: ``rma --help`` (or ``flask --app rma ...``).

Every command exits non-zero with one clear line on bad input, so provisioning scripts
can rely on it (issue 2, CLI).
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import click
from flask import Flask
from flask.cli import FlaskGroup, with_appcontext

from rma.services import ServiceError
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
@with_appcontext
def add_model(code, name, kind, life_months, basis, price) -> None:
    """Add a product model CODE."""
    from rma.services.catalog import create_product_model

    try:
        model = create_product_model(Actor.cli("add-model"), code, name, kind, life_months,
                                     basis, price)
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
@with_appcontext
def create_user_command(email, role, contract, language) -> None:
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
        user = create_user(Actor.cli("create-user"), email, role, password, customer, language)
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


COMMANDS = [init_db, demo_data, add_model, add_customer, create_user_command,
            create_token_command, warranty_command, import_units_command]


def init_app(app: Flask) -> None:
    for command in COMMANDS:
        app.cli.add_command(command)
