"""The engine as configured: SQLite pragmas, pool settings, cascades and UTC timestamps."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlalchemy.exc import StatementError

from modelport import create_app
from modelport.auth import sessions, tokens
from modelport.extensions import db
from modelport.models import ApiToken, User, UserSession
from tests.support.databases import service_url
from tests.support.users import make_user


def _pragma(connection: sa.Connection, name: str) -> object:
    return connection.exec_driver_sql(f"PRAGMA {name}").scalar()


def test_sqlite_connections_have_foreign_keys_wal_and_busy_timeout(app: Flask) -> None:
    with app.app_context(), db.engine.connect() as connection:
        assert _pragma(connection, "foreign_keys") == 1
        assert _pragma(connection, "journal_mode") == "wal"
        assert _pragma(connection, "busy_timeout") == 5000


def test_sqlite_busy_timeout_comes_from_settings(app_factory: Callable[..., Flask]) -> None:
    app = app_factory(SQLITE_BUSY_TIMEOUT_MS=1234)
    with app.app_context(), db.engine.connect() as connection:
        assert _pragma(connection, "busy_timeout") == 1234


@pytest.mark.services
@pytest.mark.parametrize("server", ["postgres", "mysql"])
def test_server_pool_comes_from_settings(server: str, tmp_path: Path) -> None:
    app = create_app(
        {
            "ENV": "testing",
            "DATABASE_URL": service_url(server),
            "INSTANCE_PATH": str(tmp_path),
            "DB_POOL_SIZE": 3,
            "DB_MAX_OVERFLOW": 4,
            "DB_POOL_RECYCLE": 321,
            "DB_POOL_TIMEOUT": 7,
            "DB_POOL_PRE_PING": "true",
        }
    )
    with app.app_context():
        try:
            pool = db.engine.pool
            assert isinstance(pool, sa.QueuePool)
            assert pool.size() == 3
            assert pool._max_overflow == 4
            assert pool._recycle == 321
            assert pool._timeout == 7
            assert pool._pre_ping is True
            with db.engine.connect() as connection:
                assert connection.execute(sa.text("SELECT 1")).scalar() == 1
            # The connection went back to the pool instead of being closed.
            assert pool.checkedin() == 1
        finally:
            db.engine.dispose()


def test_pre_ping_can_be_turned_off(tmp_path: Path) -> None:
    app = create_app(
        {
            "ENV": "testing",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'p.db'}",
            "INSTANCE_PATH": str(tmp_path),
            "DB_POOL_PRE_PING": "false",
        }
    )
    with app.app_context():
        assert db.engine.pool._pre_ping is False
        db.engine.dispose()


def _child_rows(user_id: int) -> tuple[int, int]:
    with db.engine.connect() as connection:
        return tuple(  # type: ignore[return-value]
            connection.execute(
                sa.select(sa.func.count()).select_from(table).where(table.c.user_id == user_id)
            ).scalar_one()
            for table in (UserSession.__table__, ApiToken.__table__)
        )


@pytest.mark.db
def test_deleting_a_user_row_cascades_to_sessions_and_tokens(app: Flask) -> None:
    """Withdrawal rests on ON DELETE CASCADE in the database itself, not on the ORM."""
    user_id = make_user(app)
    other_id = make_user(app, "bob@example.com", name="Bob")
    with app.app_context():
        for uid in (user_id, other_id):
            user = db.session.get(User, uid)
            for _ in range(2):
                with app.test_request_context("/"):
                    sessions.start_session(user, remember=True)
                    db.session.commit()
            tokens.create_token(user, "laptop")
            tokens.create_token(user, "ci", scopes=["full"])
        db.session.remove()
        assert _child_rows(user_id) == (2, 2)

        with db.engine.begin() as connection:
            connection.execute(sa.text("DELETE FROM users WHERE id = :id"), {"id": user_id})

        assert _child_rows(user_id) == (0, 0)
        assert _child_rows(other_id) == (2, 2)  # nobody else's rows went with it


@pytest.mark.db
def test_aware_datetimes_round_trip_in_utc(app: Flask) -> None:
    seoul = timezone(timedelta(hours=9))
    written = datetime(2024, 2, 29, 23, 59, 58, 123456, tzinfo=seoul)
    user_id = make_user(app)
    with app.app_context():
        db.session.get(User, user_id).email_confirmed_at = written
        db.session.commit()
        db.session.remove()

        read = db.session.get(User, user_id).email_confirmed_at

        assert read == written
        assert read.tzinfo == UTC
        assert read.isoformat() == "2024-02-29T14:59:58.123456+00:00"


@pytest.mark.db
def test_naive_datetime_is_refused(app: Flask) -> None:
    """A naive value has no defined instant; storing it would corrupt every comparison."""
    user_id = make_user(app)
    with app.app_context():
        db.session.get(User, user_id).email_confirmed_at = datetime(2024, 1, 1)
        with pytest.raises(StatementError, match="naive datetime"):
            db.session.commit()
        db.session.rollback()
