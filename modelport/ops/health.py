"""Liveness and readiness for load balancers and Kubernetes probes."""

from __future__ import annotations

import os

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import Blueprint, current_app
from flask_migrate import Migrate
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from modelport.config import current_settings
from modelport.extensions import db, limiter

bp = Blueprint("health", __name__)


@bp.get("/healthz")
@limiter.exempt
def healthz() -> tuple[dict, int]:
    """The process answers. Nothing else is checked, so a slow database never restarts pods."""
    return {"status": "ok"}, 200


def _migration_heads() -> set[str]:
    # Flask-Migrate's config object, as its own commands read it; tests/test_upstream.py.
    migrate: Migrate = current_app.extensions["migrate"].migrate
    config = migrate.get_config()
    return set(ScriptDirectory.from_config(config).get_heads())


def migration_state() -> tuple[set[str], set[str]]:
    """The database's current Alembic revisions and the heads of this code's migrations.
    Raises SQLAlchemyError when the database does not answer."""
    with db.engine.connect() as connection:
        current = set(MigrationContext.configure(connection).get_current_heads())
    return current, _migration_heads()


def _describe(revisions: set[str]) -> str:
    return ", ".join(sorted(revisions)) or "none"


def _models_check() -> str:
    from modelport.serving.predictor import load_served_models

    try:
        problems = load_served_models()
    except SQLAlchemyError as exc:
        current_app.logger.warning("readiness: registry unreadable (%s)", type(exc).__name__)
        return "unknown: the registry cannot be read"
    return "ok" if not problems else "; ".join(problems)


@bp.get("/readyz")
@limiter.exempt
def readyz() -> tuple[dict, int]:
    """Ready to serve: the database answers, its schema is at the newest migration and every
    model's served version is loaded in this worker. Not ready, with nothing else checked,
    once the drain file exists (``modelport drain``): the pod is on its way out."""
    drain_file = current_settings().drain_file
    if drain_file and os.path.exists(drain_file):
        return {"status": "not ready", "checks": {"draining": "shutting down"}}, 503
    checks: dict[str, str] = {}
    try:
        with db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
            current = set(MigrationContext.configure(connection).get_current_heads())
    except SQLAlchemyError as exc:
        # The class name only: driver messages can carry host names and user names.
        current_app.logger.warning("readiness: database unavailable (%s)", type(exc).__name__)
        checks["database"] = "unavailable: the database does not answer"
        checks["migrations"] = "unknown"
    else:
        checks["database"] = "ok"
        expected = _migration_heads()
        checks["migrations"] = (
            "ok"
            if current == expected
            else f"not at this code's migration: the database is at {_describe(current)}, "
            f"the code needs {_describe(expected)}; run `flask db upgrade`"
        )
        if checks["migrations"] == "ok":
            checks["models"] = _models_check()
    ready = all(value == "ok" for value in checks.values())
    return {"status": "ready" if ready else "not ready", "checks": checks}, 200 if ready else 503
