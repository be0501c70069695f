"""/healthz says the process lives; /readyz says the database answers and is migrated."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_migrate import upgrade
from sqlalchemy import text

from modelport import create_app
from modelport.extensions import db
from tests.support.databases import empty_database_url
from tests.support.servers import closed_port


@pytest.fixture
def app_on(tmp_path: Path) -> Iterator[Callable[[str], Flask]]:
    """Apps on a given database URL; their pools are closed afterwards."""
    made: list[Flask] = []

    def make(url: str) -> Flask:
        app = create_app(
            {"ENV": "testing", "DATABASE_URL": url, "INSTANCE_PATH": str(tmp_path / "instance")}
        )
        made.append(app)
        return app

    yield make
    for app in made:
        with app.app_context():
            db.engine.dispose()


@pytest.mark.db
def test_ready_when_the_database_is_migrated(app: Flask) -> None:
    response = app.test_client().get("/readyz")

    assert response.status_code == 200
    assert response.json == {
        "status": "ready",
        "checks": {"database": "ok", "migrations": "ok", "models": "ok"},
    }


@pytest.mark.db
def test_not_ready_while_a_served_model_cannot_load(app: Flask, demo_models) -> None:
    from modelport.serving.registry import artifact_store, get_model, served_version
    from tests.support.models import register_demo

    register_demo(app, demo_models, "iris")
    client = app.test_client()
    assert client.get("/readyz").json["checks"]["models"] == "ok"
    with app.app_context():
        version = served_version(get_model("iris"))
        # A lost artifact (say, a volume not mounted on this pod) makes the pod not ready.
        version.compiled_sha256 = None
        version.artifact_sha256 = "0" * 64
        version.model.revision += 1
        from modelport.extensions import db

        db.session.commit()
        assert not artifact_store().exists("0" * 64)
    app.extensions.pop("modelport_predictor", None)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json["checks"]["models"].startswith("iris: Version 1 cannot be loaded")


@pytest.mark.db
def test_not_ready_on_an_empty_database(
    backend: str, tmp_path: Path, app_on: Callable[[str], Flask]
) -> None:
    app = app_on(empty_database_url(backend, tmp_path, "unmigrated"))

    response = app.test_client().get("/readyz")

    assert response.status_code == 503
    assert response.json["status"] == "not ready"
    assert response.json["checks"]["database"] == "ok"
    message = response.json["checks"]["migrations"]
    assert "the database is at none" in message
    assert "modelport db upgrade" in message


@pytest.mark.db
def test_ready_when_a_later_release_has_migrated_the_database(
    backend: str, tmp_path: Path, app_on: Callable[[str], Flask]
) -> None:
    """During a rolling update the migration Job runs before the old pods are gone: they go
    on serving a database a newer release has expanded (docs/operations.md), and the new
    release's init container passes on it too."""
    app = app_on(empty_database_url(backend, tmp_path, "ahead"))
    with app.app_context():
        upgrade()
        with db.engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = 'f00dface_later'"))
    response = app.test_client().get("/readyz")

    assert response.status_code == 200, response.json
    assert response.json["checks"]["migrations"].startswith(
        "ok: the database is at f00dface_later, newer than this code's "
    )
    result = app.test_cli_runner().invoke(args=["wait-for-migrations", "--timeout", "0"])
    assert result.exit_code == 0, result.output
    assert "newer than this code's" in result.output


@pytest.mark.db
def test_not_ready_when_the_database_is_behind_this_code(
    backend: str, tmp_path: Path, app_on: Callable[[str], Flask]
) -> None:
    app = app_on(empty_database_url(backend, tmp_path, "behind"))
    with app.app_context():
        upgrade(revision="0001_accounts")
    response = app.test_client().get("/readyz")

    assert response.status_code == 503
    message = response.json["checks"]["migrations"]
    assert message.startswith("not at this code's migration: the database is at 0001_accounts")
    assert "models" not in response.json["checks"]


@pytest.mark.parametrize(
    "url",
    [
        pytest.param(
            lambda tmp: f"postgresql+psycopg://postgres@127.0.0.1:{closed_port()}/x", id="pg"
        ),
        pytest.param(lambda tmp: f"mysql+pymysql://root@127.0.0.1:{closed_port()}/x", id="mysql"),
        pytest.param(lambda tmp: f"sqlite:///{tmp / 'no-such-dir' / 'x.db'}", id="sqlite"),
    ],
)
def test_not_ready_when_the_database_is_unreachable(
    url: Callable[[Path], str], tmp_path: Path, app_on: Callable[[str], Flask]
) -> None:
    app = app_on(url(tmp_path))
    client = app.test_client()

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json == {
        "status": "not ready",
        "checks": {
            "database": "unavailable: the database does not answer",
            "migrations": "unknown",
        },
    }
    assert "127.0.0.1" not in response.get_data(as_text=True)
    # Liveness does not depend on the database: a restart would not bring it back.
    assert client.get("/healthz").status_code == 200
    assert client.get("/healthz").json == {"status": "ok"}


def test_healthz_answers(client: FlaskClient) -> None:
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json == {"status": "ok"}
