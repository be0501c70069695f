"""The ``modelport`` console script and ``flask --app modelport``, run as real processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from modelport.extensions import db
from tests.support.databases import migrated_sqlite
from tests.support.users import PASSWORD

pytestmark = pytest.mark.slow  # every test starts a Python process

BIN = Path(sys.executable).parent
ADMIN = "root@example.com"


def run(
    args: list[str], database: str, tmp_path: Path, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a command of the virtualenv against ``database``, away from any .env file."""
    env = {
        **os.environ,
        "MODELPORT_ENV": "testing",
        "MODELPORT_DATABASE_URL": database,
        "MODELPORT_INSTANCE_PATH": str(tmp_path / "instance"),
        "MODELPORT_LOG_FORMAT": "text",
    }
    env.pop("FLASK_APP", None)
    return subprocess.run(
        [str(BIN / args[0]), *args[1:]],
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )


@pytest.fixture
def database(tmp_path: Path) -> str:
    """A migrated SQLite file of this test's own."""
    return migrated_sqlite(tmp_path, "cli")


def users(database: str) -> list[tuple[str, str, str, str]]:
    engine = sa.create_engine(database)
    with engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT email, name, role, password_hash FROM users"))
        found = [tuple(row) for row in rows]
    engine.dispose()
    return found  # type: ignore[return-value]


def create_admin(
    database: str, tmp_path: Path, password: str | None, email: str = ADMIN
) -> subprocess.CompletedProcess[str]:
    args = ["modelport", "create-admin", "--email", email, "--name", "Root"]
    if password is not None:
        args.append("--password-stdin")
    return run(args, database, tmp_path, stdin=None if password is None else password + "\n")


def test_create_admin_with_password_from_stdin(database: str, tmp_path: Path) -> None:
    result = create_admin(database, tmp_path, PASSWORD, email="Root@Example.com ")

    assert result.returncode == 0, result.stderr
    assert "Created administrator root@example.com" in result.stdout
    assert PASSWORD not in result.stdout + result.stderr
    [(email, name, role, password_hash)] = users(database)
    assert (email, name, role) == (ADMIN, "Root", "admin")
    assert password_hash.startswith("$argon2id$")


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("", "Use at least 15 characters."),
        ("passwordpassword", "This password is too common or too easy to guess"),
    ],
    ids=["empty", "common"],
)
def test_create_admin_refuses_a_weak_password(
    database: str, tmp_path: Path, password: str, reason: str
) -> None:
    result = create_admin(database, tmp_path, password)

    assert result.returncode != 0
    assert f"Error: {reason}" in result.stderr
    assert "Traceback" not in result.stderr
    assert users(database) == []


def test_create_admin_refuses_a_taken_email(database: str, tmp_path: Path) -> None:
    assert create_admin(database, tmp_path, PASSWORD).returncode == 0

    result = create_admin(
        database, tmp_path, "another long passphrase here", email="ROOT@example.com"
    )

    assert result.returncode != 0
    assert "Error: An account with this e-mail address already exists." in result.stderr
    assert "Traceback" not in result.stderr
    assert len(users(database)) == 1


def test_create_admin_without_a_terminal_needs_password_stdin(
    database: str, tmp_path: Path
) -> None:
    """Never an account without a password, and never a hidden prompt fed by a pipe."""
    result = create_admin(database, tmp_path, None)

    assert result.returncode != 0
    assert "Error: No terminal to ask for the password" in result.stderr
    assert "--password-stdin" in result.stderr
    assert users(database) == []


def test_create_admin_on_an_unmigrated_database_says_what_to_do(tmp_path: Path) -> None:
    result = create_admin(f"sqlite:///{tmp_path / 'empty.db'}", tmp_path, PASSWORD)

    assert result.returncode != 0
    assert "modelport db upgrade" in result.stderr
    assert "Traceback" not in result.stderr


def test_modelport_db_upgrade_migrates_an_empty_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"

    result = run(["modelport", "db", "upgrade"], url, tmp_path)

    assert result.returncode == 0, result.stderr
    engine = sa.create_engine(url)
    assert set(sa.inspect(engine).get_table_names()) == set(db.metadata.tables) | {
        "alembic_version"
    }
    engine.dispose()
    assert users(url) == []  # checklist 11: no default accounts


def test_flask_finds_the_factory(tmp_path: Path) -> None:
    result = run(
        ["flask", "--app", "modelport", "routes"], f"sqlite:///{tmp_path / 'r.db'}", tmp_path
    )

    assert result.returncode == 0, result.stderr
    for path in ("/auth/login", "/api/v1/me", "/healthz", "/readyz"):
        assert path in result.stdout
