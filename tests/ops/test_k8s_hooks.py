"""What Kubernetes' pod runs beside the server: the drain flag that turns /readyz to 503
(preStop) and ``modelport wait-for-migrations`` (the init container), on SQLite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask
from flask_migrate import upgrade

from modelport import create_app
from modelport.cli import drain
from modelport.extensions import db


@pytest.fixture
def make_app(tmp_path: Path) -> Iterator:
    made: list[Flask] = []

    def make(**settings: str) -> Flask:
        app = create_app(
            {
                "ENV": "testing",
                "DATABASE_URL": f"sqlite:///{tmp_path / 'k8s.db'}",
                "INSTANCE_PATH": str(tmp_path / "instance"),
                **settings,
            }
        )
        made.append(app)
        return app

    yield make
    for app in made:
        with app.app_context():
            db.engine.dispose()


def test_readyz_answers_503_while_draining_and_healthz_stays_200(make_app, tmp_path: Path):
    flag = tmp_path / "draining"
    app = make_app(DRAIN_FILE=str(flag))
    with app.app_context():
        upgrade()
    client = app.test_client()
    assert client.get("/readyz").status_code == 200

    result = CliRunner().invoke(drain, [], env={"MODELPORT_DRAIN_FILE": str(flag)})
    assert result.exit_code == 0, result.output
    assert flag.exists()

    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json == {"status": "not ready", "checks": {"draining": "shutting down"}}
    assert client.get("/healthz").status_code == 200


def test_drain_refuses_without_a_drain_file_setting():
    result = CliRunner().invoke(drain, [], env={"MODELPORT_DRAIN_FILE": ""})
    assert result.exit_code == 1
    assert "MODELPORT_DRAIN_FILE is not set" in result.output


def test_wait_for_migrations_gives_up_before_the_upgrade_and_passes_after(make_app):
    app = make_app()
    runner = app.test_cli_runner()

    result = runner.invoke(args=["wait-for-migrations", "--timeout", "0.2", "--interval", "0.1"])
    assert result.exit_code == 1
    assert "Gave up after 0.2 s: not at this code's migration: the database is at none" in (
        result.output
    )

    with app.app_context():
        upgrade()
    result = runner.invoke(args=["wait-for-migrations", "--timeout", "0"])
    assert result.exit_code == 0, result.output
    assert result.output == "The database is at this code's newest migration.\n"


def test_secrets_come_from_files_a_mounted_secret_holds(tmp_path: Path):
    from modelport.config import ConfigError, read_settings

    key = tmp_path / "secret-key"
    key.write_text("k" * 40 + "\n")
    url = tmp_path / "database-url"
    url.write_text(f"sqlite:///{tmp_path / 'x.db'}")
    environ = {
        "MODELPORT_SECRET_KEY_FILE": str(key),
        "MODELPORT_DATABASE_URL_FILE": str(url),
    }

    values = read_settings(environ)
    assert values["SECRET_KEY"] == "k" * 40
    assert values["DATABASE_URL"] == f"sqlite:///{tmp_path / 'x.db'}"

    with pytest.raises(ConfigError, match="not both"):
        read_settings({**environ, "MODELPORT_SECRET_KEY": "x" * 40})
    with pytest.raises(ConfigError, match="cannot read") as refused:
        read_settings({"MODELPORT_REDIS_URL_FILE": str(tmp_path / "missing")})
    assert "k" * 40 not in str(refused.value)
