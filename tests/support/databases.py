"""Test databases: which backends run, brand-new databases on the servers, reading rows back.

Tests that touch the database are marked ``db`` and run once per backend: SQLite always,
PostgreSQL and MariaDB when ``MODELPORT_TEST_POSTGRES_URL`` / ``MODELPORT_TEST_MYSQL_URL``
are set. Without them a laptop skips those runs with a reason; CI sets
``MODELPORT_TEST_REQUIRE_SERVICES=1`` and a missing service is then a failure.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from modelport import create_app
from modelport.extensions import db

BACKENDS = ("sqlite", "postgres", "mysql")
URL_ENV = {"postgres": "MODELPORT_TEST_POSTGRES_URL", "mysql": "MODELPORT_TEST_MYSQL_URL"}
REQUIRE_SERVICES = os.environ.get("MODELPORT_TEST_REQUIRE_SERVICES") == "1"

# (server URL, database name) of every server database this process created.
CREATED: list[tuple[str, str]] = []


def xdist_worker() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def service_url(name: str) -> str:
    """The server URL of a test service from its variable, or skip/fail with the reason."""
    env = {
        "postgres": URL_ENV["postgres"],
        "mysql": URL_ENV["mysql"],
        "redis": "MODELPORT_TEST_REDIS_URL",
    }[name]
    url = os.environ.get(env)
    if not url:
        reason = f"{env} is not set: {name} tests need a running {name} server"
        if REQUIRE_SERVICES:
            pytest.fail(reason)
        pytest.skip(reason)
    return url


def server_database(base_url: str, name: str) -> str:
    """Create (anew) database ``name`` on the server of ``base_url``; return its URL."""
    url = sa.make_url(base_url)
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    quoted = f'"{name}"' if url.get_backend_name() == "postgresql" else f"`{name}`"
    with admin.connect() as connection:
        if url.get_backend_name() == "postgresql":
            connection.execute(sa.text(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"))
            connection.execute(sa.text(f"CREATE DATABASE {quoted}"))
        else:
            connection.execute(sa.text(f"DROP DATABASE IF EXISTS {quoted}"))
            connection.execute(
                sa.text(f"CREATE DATABASE {quoted} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
            )
    admin.dispose()
    made = url.set(database=name)
    if url.get_backend_name() != "postgresql":
        made = made.update_query_dict({"charset": "utf8mb4"})
    return made.render_as_string(hide_password=False)


def empty_database_url(backend: str, tmp_path: Path, label: str) -> str:
    """A URL of a brand-new empty database of ``backend``, private to this worker."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / f'{label}.db'}"
    base = service_url(backend)
    # The pid keeps concurrent pytest runs on one server out of each other's databases.
    name = f"mp_{label}_{xdist_worker()}_{os.getpid()}"
    CREATED.append((base, name))
    return server_database(base, name)


def drop_created_databases() -> None:
    """Drop the server databases this process created."""
    for base, name in CREATED:
        url = sa.make_url(base)
        engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
        quoted = f'"{name}"' if url.get_backend_name() == "postgresql" else f"`{name}`"
        force = " WITH (FORCE)" if url.get_backend_name() == "postgresql" else ""
        try:
            with engine.connect() as connection:
                connection.execute(sa.text(f"DROP DATABASE IF EXISTS {quoted}{force}"))
        except sa.exc.SQLAlchemyError:
            pass
        engine.dispose()


def migrated_url(backend: str, cache: dict[str, str], tmp_path: Path) -> str:
    """The database of ``backend`` in ``cache``, made and migrated on first use."""
    if backend not in cache:
        url = empty_database_url(backend, tmp_path, "suite")
        app = create_app(
            {"ENV": "testing", "DATABASE_URL": url, "INSTANCE_PATH": str(tmp_path / "instance")}
        )
        from flask_migrate import upgrade

        with app.app_context():
            upgrade()
            db.engine.dispose()
        cache[backend] = url
    return cache[backend]


def migrated_sqlite(tmp_path: Path, name: str = "served") -> str:
    """A SQLite file of the test's own, migrated as `flask db upgrade` leaves it; its URL."""
    from flask_migrate import upgrade

    url = f"sqlite:///{tmp_path / f'{name}.db'}"
    app = create_app({"ENV": "testing", "DATABASE_URL": url, "INSTANCE_PATH": str(tmp_path)})
    with app.app_context():
        upgrade()
        db.engine.dispose()
    return url


def truncate_all() -> None:
    """Empty every table (inside an app context)."""
    with db.engine.begin() as connection:
        for table in reversed(db.metadata.sorted_tables):
            connection.execute(table.delete())


def table_counts(app: Flask) -> dict[str, int]:
    """Rows per table: compare before and after a bad request to show nothing changed."""
    with app.app_context(), db.engine.connect() as connection:
        return {
            t.name: connection.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
            for t in db.metadata.sorted_tables
        }


def rows(app: Flask, table: str) -> list[dict[str, Any]]:
    """Every row of ``table``, as dicts."""
    with app.app_context(), db.engine.connect() as connection:
        t = db.metadata.tables[table]
        return [dict(r._mapping) for r in connection.execute(sa.select(t).order_by(t.c.id))]


def execute(app: Flask, statement: sa.Executable) -> None:
    """Run one statement in its own transaction (to age rows, for example)."""
    with app.app_context(), db.engine.begin() as connection:
        connection.execute(statement)


def transactions(app: Flask, backend: str, ids: list[int]) -> set[str]:
    """The PostgreSQL transactions that wrote these prediction records (xmin)."""
    assert backend == "postgres"
    with app.app_context():
        found = db.session.execute(
            sa.text("SELECT xmin::text FROM predictions WHERE id = ANY(:ids)"), {"ids": ids}
        ).scalars()
        result = set(found)
        db.session.remove()
        return result
