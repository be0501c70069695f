"""Erased prediction inputs leave SQLite's files, not only its rows (checklist 16).

In WAL mode a changed page is appended to the ``-wal`` file and reaches the database file at
a checkpoint; the old versions stay in both until then, and without ``secure_delete`` the
freed space of the rewritten pages keeps the old bytes even after it. These tests look for a
distinctive input in the bytes of both files.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from modelport.extensions import db
from modelport.models.predictions import PredictionRecord
from tests.support.databases import execute
from tests.support.html import csrf_token
from tests.support.http import bearer
from tests.support.models import IRIS_ROW, register_demo
from tests.support.tokens import issue_token
from tests.support.users import PASSWORD, login, make_user

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")


def _marked(digits: str) -> dict[str, float]:
    """An iris row whose sepal length is a number no other row holds: findable as text."""
    value = float(f"5.{digits}")
    assert repr(value) == f"5.{digits}"
    return {**IRIS_ROW, "sepal_length": value}


def _files(app: Flask) -> dict[str, bytes]:
    """The bytes of the database file and of its WAL (empty when there is none)."""
    with app.app_context():
        path = Path(db.engine.url.database)
    wal = path.with_name(path.name + "-wal")
    return {"db": path.read_bytes(), "wal": wal.read_bytes() if wal.exists() else b""}


def _where(app: Flask, marker: str) -> set[str]:
    """Which of the two files hold ``marker``."""
    return {name for name, data in _files(app).items() if marker.encode() in data}


def _checkpoint(app: Flask) -> None:
    """Move everything into the database file, as SQLite's automatic checkpoint would."""
    with app.app_context():
        path = db.engine.url.database
    connection = sqlite3.connect(path)
    try:
        assert connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0
    finally:
        connection.close()


def _predict(app: Flask, token: str, row: dict[str, float]) -> int:
    response = app.test_client().post(
        "/api/v1/models/iris/predict", json={"inputs": row}, headers=bearer(token)
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["record_id"]


@pytest.fixture
def served(app_factory: Any, demo_models: dict[str, Any]) -> Flask:
    app = app_factory()
    with app.app_context():
        assert db.engine.dialect.name == "sqlite"
    register_demo(app, demo_models, "iris")
    return app


def test_withdrawal_leaves_no_erased_input_in_the_database_or_wal_file(served: Flask) -> None:
    app = served
    email = "erasable-9f3c@example.com"
    token = issue_token(app, make_user(app, email), ["predict"])
    # One input checkpointed into the database file (its page may be in the WAL again, with
    # the next record), one only in the WAL.
    _predict(app, token, _marked("918273645546372"))
    _checkpoint(app)
    _predict(app, token, _marked("827364554637291"))
    assert "db" in _where(app, "5.918273645546372")
    assert _where(app, "5.827364554637291") == {"wal"}
    assert _where(app, email)

    client = app.test_client()
    assert login(client, email).status_code == 302
    deleted = client.post(
        "/account/delete", data={"password": PASSWORD, "csrf_token": csrf_token(client, "/account")}
    )
    assert deleted.status_code == 302

    for marker in ("5.918273645546372", "5.827364554637291", email):
        assert _where(app, marker) == set(), marker
    assert _files(app)["wal"] == b""


def _age(app: Flask, record_id: int) -> None:
    table = PredictionRecord.__table__
    execute(
        app,
        sa.update(table)
        .where(table.c.id == record_id)
        .values(created_at=datetime.now(UTC) - timedelta(days=45)),
    )


def test_purge_leaves_no_erased_input_in_the_database_or_wal_file(served: Flask) -> None:
    app = served
    token = issue_token(app, make_user(app), ["predict"])
    # Two records past the retention period: one in the database file (as above), one only
    # in the WAL.
    _age(app, _predict(app, token, _marked("736455463729182")))
    _checkpoint(app)
    _age(app, _predict(app, token, _marked("645546372918273")))
    _predict(app, token, _marked("554637291827364"))
    assert "db" in _where(app, "5.736455463729182")
    assert _where(app, "5.645546372918273") == {"wal"}

    result = app.test_cli_runner().invoke(args=["purge", "--days", "30"])
    assert result.exit_code == 0, result.output
    assert "of 2 prediction records" in result.output

    assert _where(app, "5.736455463729182") == set()
    assert _where(app, "5.645546372918273") == set()
    assert _where(app, "5.554637291827364") == {"db"}  # within the retention period: kept
    assert _files(app)["wal"] == b""


def test_every_sqlite_connection_zeroes_freed_space(app: Flask) -> None:
    # Without it (python.org's and macOS's SQLite) the erased inputs above stay in the
    # database file's free space after the checkpoint; Debian's SQLite has it on anyway.
    with app.app_context():
        for engine in db.engines.values():
            with engine.connect() as connection:
                assert connection.exec_driver_sql("PRAGMA secure_delete").scalar() == 1


def test_an_erasure_that_cannot_checkpoint_still_succeeds_and_says_so(
    app_factory: Any, demo_models: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    app = app_factory(SQLITE_BUSY_TIMEOUT_MS=100)
    register_demo(app, demo_models, "iris")
    token = issue_token(app, make_user(app), ["predict"])
    _age(app, _predict(app, token, _marked("463729182736455")))
    with app.app_context():
        path = db.engine.url.database
    reader = sqlite3.connect(path, isolation_level=None)
    try:
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM predictions").fetchone()  # holds its snapshot
        result = app.test_cli_runner().invoke(args=["purge", "--days", "30"])
    finally:
        reader.close()
    assert result.exit_code == 0, result.output
    assert "of 1 prediction records" in result.output
    assert "The WAL could not be checkpointed after an erasure" in caplog.text
    # The next checkpoint, with nobody reading, takes the value out of both files.
    _checkpoint(app)
    assert _where(app, "5.463729182736455") == set()
