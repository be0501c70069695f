"""The schema changes only through migrations, and they match the models on all three databases.

``flask db upgrade`` on an empty database, then Alembic autogenerate with the settings of
modelport/migrations/env.py, must find no difference from the models; downgrade to base and up again
must work (migrations are the only way the schema changes; checklist 11: no default accounts).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Flask, current_app
from flask_migrate import downgrade, upgrade

from modelport import create_app
from modelport.extensions import db
from modelport.models import User
from tests.support.databases import empty_database_url


def _compare_settings() -> dict[str, Any]:
    """The options env.py gives Alembic (compare_type and friends), minus its callbacks."""
    args = dict(current_app.extensions["migrate"].configure_args)
    args.pop("process_revision_directives", None)
    return args


def schema_differences() -> list[Any]:
    """What ``flask db migrate`` would put in a new revision for the current database."""
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts=_compare_settings())
        return compare_metadata(context, db.metadata)


def table_names() -> set[str]:
    return set(sa.inspect(db.engine).get_table_names())


def current_revisions() -> set[str]:
    with db.engine.connect() as connection:
        return set(MigrationContext.configure(connection).get_current_heads())


def script_directory() -> ScriptDirectory:
    return ScriptDirectory.from_config(current_app.extensions["migrate"].migrate.get_config())


def test_env_compares_column_types(empty_app: Flask) -> None:
    """Without compare_type, a column of the wrong type would pass as no difference."""
    assert _compare_settings().get("compare_type") not in (None, False)
    assert _compare_settings().get("render_as_batch") is True  # SQLite can alter tables


@pytest.mark.db
def test_upgrade_from_empty_matches_the_models(empty_app: Flask) -> None:
    assert table_names() == set()

    upgrade()

    assert table_names() == set(db.metadata.tables) | {"alembic_version"}
    assert current_revisions() == set(script_directory().get_heads())
    assert schema_differences() == []
    # Checklist 11: a fresh installation has no accounts until an admin is created.
    assert db.session.scalar(sa.select(sa.func.count()).select_from(User)) == 0


@pytest.mark.db
def test_downgrade_to_base_and_upgrade_again(empty_app: Flask) -> None:
    upgrade()

    downgrade(revision="base")

    assert table_names() <= {"alembic_version"}
    assert current_revisions() == set()

    upgrade()

    assert table_names() == set(db.metadata.tables) | {"alembic_version"}
    assert schema_differences() == []


@pytest.mark.db
def test_comparison_notices_a_schema_that_drifted(empty_app: Flask) -> None:
    """The no-difference check above can fail: a column added outside migrations is seen."""
    upgrade()
    with db.engine.begin() as connection:
        connection.execute(sa.text("ALTER TABLE users ADD COLUMN nickname VARCHAR(20)"))

    found = schema_differences()

    assert [(d[0], d[2], d[3].name) for d in found] == [("remove_column", "users", "nickname")]


@pytest.mark.services
def test_comparison_notices_lost_fractional_seconds_on_mariadb(tmp_path: Path) -> None:
    """MariaDB's plain DATETIME keeps no microseconds; env.py's compare_type must see that."""
    url = empty_database_url("mysql", tmp_path, "fsp")
    app = create_app({"ENV": "testing", "DATABASE_URL": url, "INSTANCE_PATH": str(tmp_path)})
    with app.app_context():
        try:
            upgrade()
            with db.engine.begin() as connection:
                connection.execute(sa.text("ALTER TABLE users MODIFY created_at DATETIME NOT NULL"))

            found = schema_differences()

            assert [(d[0][0], d[0][2], d[0][3]) for d in found] == [
                ("modify_type", "users", "created_at")
            ]
        finally:
            db.engine.dispose()


def test_one_head_that_creates_every_model_table(tmp_path: Path) -> None:
    """A model without a migration, or two heads, would make `flask db upgrade` incomplete."""
    url = f"sqlite:///{tmp_path / 'heads.db'}"
    app = create_app({"ENV": "testing", "DATABASE_URL": url, "INSTANCE_PATH": str(tmp_path)})
    with app.app_context():
        try:
            scripts = script_directory()
            heads = scripts.get_heads()
            assert len(heads) == 1, f"expected one migration head, found {heads}"
            assert len(scripts.get_bases()) == 1
            # Every revision lies on the one line from base to head.
            assert {r.revision for r in scripts.walk_revisions()} == {
                r.revision for r in scripts.iterate_revisions(heads[0], "base")
            }

            upgrade(revision=heads[0])

            assert table_names() - {"alembic_version"} == set(db.metadata.tables)
        finally:
            db.engine.dispose()
