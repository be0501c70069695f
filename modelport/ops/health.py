"""Liveness and readiness for load balancers and Kubernetes probes."""

from __future__ import annotations

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Blueprint, current_app
from flask_migrate import Migrate
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from modelport.extensions import db, limiter

bp = Blueprint("health", __name__)


@bp.get("/healthz")
@limiter.exempt
def healthz() -> tuple[dict, int]:
    """The process answers. Nothing else is checked, so a slow database never restarts pods."""
    return {"status": "ok"}, 200


def _migration_heads() -> set[str]:
    migrate: Migrate = current_app.extensions["migrate"].migrate
    config = migrate.get_config()
    return set(ScriptDirectory.from_config(config).get_heads())


@bp.get("/readyz")
@limiter.exempt
def readyz() -> tuple[dict, int]:
    """Ready to serve: the database answers and its schema is at the newest migration."""
    checks: dict[str, str] = {}
    try:
        with db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
            current = set(MigrationContext.configure(connection).get_current_heads())
        checks["database"] = "ok"
        checks["migrations"] = (
            "ok" if current == _migration_heads() else "pending: run `flask db upgrade`"
        )
    except SQLAlchemyError:
        checks["database"] = "unavailable"
        checks["migrations"] = "unknown"
    ready = all(value == "ok" for value in checks.values())
    return {"status": "ready" if ready else "not ready", "checks": checks}, 200 if ready else 503
