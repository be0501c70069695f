"""A migrated database with iris registered, shared by a test and the gunicorn it starts."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import select

from modelport import create_app
from modelport.auth import accounts, tokens
from modelport.extensions import db
from modelport.models import Role
from modelport.models.predictions import PredictionRecord
from tests.support.models import register_demo
from tests.support.servers import Master, gunicorn_master, wait_for_workers
from tests.support.users import PASSWORD

ADMIN_EMAIL = "serving-admin@example.com"
PREDICT = "/api/v1/models/iris/predict"
# Far above what the load reaches: these tests are about records and reloads, not limits.
SETTINGS = {"MODELPORT_PREDICT_LIMIT_USER": "1000000 per minute"}


@dataclass
class Deployment:
    """A migrated database with iris registered, and what the server shares."""

    tmp_path: Path
    app: Flask
    database_url: str
    artifacts: Path
    token: str
    user_id: int

    @property
    def env(self) -> dict[str, str]:
        return {**SETTINGS, "MODELPORT_ARTIFACTS_DIR": str(self.artifacts)}

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @contextlib.contextmanager
    def serve(
        self, *options: str, env: dict[str, str] | None = None, workers: int = 2
    ) -> Iterator[Master]:
        """gunicorn with ``workers`` workers on this database; stopped afterwards."""
        with gunicorn_master(
            self.tmp_path,
            self.database_url,
            "-w",
            str(workers),
            *options,
            env={**self.env, **(env or {})},
        ) as master:
            wait_for_workers(master, workers)
            yield master

    def records(self, *conditions: Any) -> list[PredictionRecord]:
        with self.app.app_context():
            found = list(db.session.scalars(select(PredictionRecord).where(*conditions)))
            db.session.remove()
            return found

    def close(self) -> None:
        with self.app.app_context():
            db.session.remove()
            db.engine.dispose()


def deploy(tmp_path: Path, url: str, demo_models: dict[str, Any]) -> Deployment:
    """Migrate the empty database of ``url``; an admin with a full-scope token; iris v1."""
    from flask_migrate import upgrade

    artifacts = tmp_path / "artifacts"
    app = create_app(
        {
            "ENV": "testing",
            "DATABASE_URL": url,
            # The server's instance folder (tests.support.servers.launch) and artifact store.
            "INSTANCE_PATH": str(tmp_path / "instance"),
            "ARTIFACTS_DIR": str(artifacts),
        }
    )
    with app.app_context():
        upgrade()
        user = accounts.create_user(ADMIN_EMAIL, "Admin", PASSWORD, role=Role.ADMIN)
        _, token = tokens.create_token(user, "serving load", scopes=["full"])
        user_id = user.id
        db.session.remove()
    register_demo(app, demo_models, "iris")
    return Deployment(tmp_path, app, url, artifacts, token, user_id)
