"""Fixtures of the tests that run a real gunicorn."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelport import create_app
from modelport.auth import accounts
from modelport.extensions import db
from tests.support.databases import migrated_sqlite
from tests.support.servers import EMAIL
from tests.support.users import PASSWORD


@pytest.fixture
def database(tmp_path: Path) -> str:
    """A migrated SQLite file with one member (``EMAIL``), as `flask db upgrade` leaves it."""
    url = migrated_sqlite(tmp_path)
    app = create_app({"ENV": "testing", "DATABASE_URL": url, "INSTANCE_PATH": str(tmp_path)})
    with app.app_context():
        accounts.create_user(EMAIL, "Victim", PASSWORD)
        db.session.remove()
        db.engine.dispose()
    return url
