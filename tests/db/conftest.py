"""Fixtures of the SQL-layer tests: apps on brand-new, empty databases."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from modelport import create_app
from modelport.extensions import db
from tests.support.databases import empty_database_url


@pytest.fixture
def empty_app(backend: str, tmp_path: Path) -> Iterator[Flask]:
    """An app on a new empty database of ``backend``, inside its app context."""
    url = empty_database_url(backend, tmp_path, "schema")
    app = create_app(
        {"ENV": "testing", "DATABASE_URL": url, "INSTANCE_PATH": str(tmp_path / "instance")}
    )
    with app.app_context():
        yield app
        db.session.remove()
        # Open connections would keep MariaDB's DROP DATABASE waiting at the end of the run.
        db.engine.dispose()
