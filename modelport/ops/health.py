"""Liveness and readiness for load balancers and Kubernetes probes."""

from __future__ import annotations

import os

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from flask import Blueprint, current_app
from flask_migrate import Migrate
from sqlalchemy.exc import SQLAlchemyError

from modelport.config import current_settings
from modelport.extensions import db, limiter

bp = Blueprint("health", __name__)


@bp.get("/healthz")
@limiter.exempt
def healthz() -> tuple[dict, int]:
    """The process answers. Nothing else is checked, so a slow database never restarts pods."""
    return {"status": "ok"}, 200


def _scripts() -> ScriptDirectory:
    # Flask-Migrate's config object, as its own commands read it; tests/test_upstream.py.
    migrate: Migrate = current_app.extensions["migrate"].migrate
    return ScriptDirectory.from_config(migrate.get_config())


def database_revisions() -> set[str]:
    """The database's current Alembic revisions. Raises SQLAlchemyError when the database
    does not answer."""
    with db.engine.connect() as connection:
        return set(MigrationContext.configure(connection).get_current_heads())


def schema_state(current: set[str]) -> tuple[bool, str]:
    """Whether this code may serve a database whose schema is at ``current``, and why not.

    At this code's newest migration: yes. Past it, at revisions this code does not know
    because a newer release's migration wrote them: yes too. A release's migration only
    expands the schema the release before it uses (docs/operations.md), and during a rolling
    update the old pods must go on serving until the new ones are ready; refusing would take
    every old pod out of the Service the moment the migration Job ran. Behind it, empty, or
    partly unknown: no. The readiness probe and ``modelport wait-for-migrations`` ask this.
    """
    scripts = _scripts()
    expected = set(scripts.get_heads())
    if current == expected:
        return True, "ok"
    known = {revision for revision in current if _is_known(scripts, revision)}
    if current and not known:
        return True, (
            f"ok: the database is at {_describe(current)}, newer than this code's "
            f"{_describe(expected)} (a later release migrated it)"
        )
    return False, (
        f"not at this code's migration: the database is at {_describe(current)}, the code "
        f"needs {_describe(expected)}; run `modelport db upgrade`"
    )


def _is_known(scripts: ScriptDirectory, revision: str) -> bool:
    try:
        return scripts.get_revision(revision) is not None
    except CommandError:  # "Can't locate revision": written by newer code
        return False


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
        current = database_revisions()
    except SQLAlchemyError as exc:
        # The class name only: driver messages can carry host names and user names.
        current_app.logger.warning("readiness: database unavailable (%s)", type(exc).__name__)
        checks["database"] = "unavailable: the database does not answer"
        checks["migrations"] = "unknown"
        ready = False
    else:
        checks["database"] = "ok"
        ready, checks["migrations"] = schema_state(current)
        if ready:
            checks["models"] = _models_check()
            ready = checks["models"] == "ok"
    return {"status": "ready" if ready else "not ready", "checks": checks}, 200 if ready else 503
