"""Command line: ``modelport ...`` (also ``flask --app modelport ...``)."""

from __future__ import annotations

import os
import sys
from typing import NoReturn

import click
from flask import Flask
from flask.cli import FlaskGroup
from sqlalchemy.exc import OperationalError, ProgrammingError

from modelport.auth import accounts
from modelport.models import Role


def _fail(message: str) -> NoReturn:
    raise click.ClickException(message)


@click.command("create-admin")
@click.option("--email", required=True, help="E-mail address of the new administrator.")
@click.option("--name", required=True, help="Display name.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def create_admin(email: str, name: str, password_stdin: bool) -> None:
    """Create an administrator account (there are no default accounts)."""
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        # A script piping text into a hidden prompt is a mistake waiting to happen: say how.
        _fail("No terminal to ask for the password: pipe it in with --password-stdin.")
    try:
        user = accounts.create_user(email, name, password, role=Role.ADMIN)
    except (OperationalError, ProgrammingError):
        _fail("The database is not reachable or not migrated: run `modelport db upgrade`.")
    except accounts.AccountError as exc:
        _fail(exc.message)
    except accounts.FieldErrors as exc:
        _fail(" ".join(m for messages in exc.errors.values() for m in messages))
    click.echo(f"Created administrator {user.email} (id {user.id}).")


@click.command("serve")
@click.option("--bind", default=None, help="Address to listen on (default 127.0.0.1:5000).")
@click.option("--workers", default=None, type=int, help="gunicorn worker processes.")
def serve(bind: str | None, workers: int | None) -> None:
    """Serve with gunicorn using modelport/ops/gunicorn_conf.py (Linux and macOS)."""
    args = [sys.executable, "-m", "gunicorn", "--config", "python:modelport.ops.gunicorn_conf"]
    if bind:
        args += ["--bind", bind]
    if workers:
        args += ["--workers", str(workers)]
    args.append("modelport:create_app()")
    os.execv(sys.executable, args)  # noqa: S606 - replaces this process with gunicorn


def register_commands(app: Flask) -> None:
    app.cli.add_command(create_admin)
    app.cli.add_command(serve)


def _factory() -> Flask:
    from modelport import create_app

    return create_app()


cli = FlaskGroup(create_app=_factory, add_version_option=False, help="Modelport command line.")


def main() -> None:
    """Entry point of the ``modelport`` console script."""
    cli.main(prog_name="modelport")
