"""Fixtures, hooks and options shared by the whole suite; the helpers are in tests/support.

Tests that touch the database are marked ``db`` and run once per backend: SQLite always,
PostgreSQL and MariaDB when ``MODELPORT_TEST_POSTGRES_URL`` / ``MODELPORT_TEST_MYSQL_URL``
are set (tests/support/databases.py). Those two runs are marked ``services``, so that
``-m "not services"`` keeps to SQLite. Every pytest-xdist worker gets databases of its own,
migrated once with ``flask db upgrade``. ``--fast`` runs each property-based test on a tenth
of its examples (``make test-fast``).
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from email import message_from_bytes
from typing import Any

import pytest
from argon2 import PasswordHasher
from flask import Flask
from flask.testing import FlaskClient

from modelport import create_app
from modelport.extensions import db, dispose_engines, limiter
from tests.support.databases import (
    BACKENDS,
    drop_created_databases,
    migrated_url,
    truncate_all,
)
from tests.support.fuzzing import load_profile
from tests.support.mail import Mailbox


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--fast",
        action="store_true",
        help="property-based tests try a tenth of their examples (make test-fast)",
    )


def pytest_configure(config: pytest.Config) -> None:
    load_profile(fast=config.getoption("--fast"))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``backend``: every backend for a ``db`` test, SQLite alone otherwise. The runs on a
    server are marked ``services``."""
    if "backend" in metafunc.fixturenames:
        backends = BACKENDS if metafunc.definition.get_closest_marker("db") else ("sqlite",)
        params = [
            pytest.param(b, marks=() if b == "sqlite" else pytest.mark.services) for b in backends
        ]
        metafunc.parametrize("backend", params, scope="function")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Drop the server databases this process created."""
    drop_created_databases()


@pytest.fixture(scope="session")
def migrated_urls(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Per backend, a database migrated once (lazily) with ``flask db upgrade``."""
    return {}


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    """A real SMTP server (aiosmtpd) on a free loopback port."""
    from aiosmtpd.controller import Controller

    box = Mailbox()

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
            box.receive(message_from_bytes(envelope.content))
            return "250 OK"

    # aiosmtpd checks that its server is up by connecting to the configured port, so the
    # port is chosen before it starts (port=0 would make that check fail).
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        box.port = probe.getsockname()[1]
    controller = Controller(Handler(), hostname="127.0.0.1", port=box.port)
    controller.start()
    yield box
    controller.stop()


@pytest.fixture
def verify_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every call of argon2's PasswordHasher.verify (a spy on the library, not our code)."""
    calls: list[str] = []
    real = PasswordHasher.verify

    def counting(self, hash, password):  # noqa: A002, ANN001, ANN202
        calls.append(hash)
        return real(self, hash, password)

    monkeypatch.setattr(PasswordHasher, "verify", counting)
    return calls


@pytest.fixture
def app_factory(
    request: pytest.FixtureRequest,
    backend: str,
    migrated_urls: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Any]:
    """Build apps on this test's backend with extra settings; tables are emptied after."""
    base_tmp = tmp_path_factory.getbasetemp()
    url = migrated_url(backend, migrated_urls, base_tmp)
    made: list[Flask] = []
    mail: dict[str, Any] = {}
    if "mailbox" in request.fixturenames:
        box: Mailbox = request.getfixturevalue("mailbox")
        mail = {"MAIL_SERVER": "127.0.0.1", "MAIL_PORT": box.port}

    def make(**overrides: Any) -> Flask:
        settings = {
            "ENV": "testing",
            "DATABASE_URL": url,
            "INSTANCE_PATH": str(base_tmp / "instance"),
            "LOG_FORMAT": "json",
            **mail,
            **overrides,
        }
        app = create_app(settings)
        app.config["SERVER_NAME"] = None
        made.append(app)
        with app.app_context():
            limiter.reset()
        return app

    yield make
    for app in made:
        with app.app_context():
            db.session.remove()
            truncate_all()
            # A Redis test may have stopped its server.
            with contextlib.suppress(Exception):
                limiter.reset()
            dispose_engines()


@pytest.fixture
def app(app_factory: Any) -> Flask:
    return app_factory()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture(scope="session")
def demo_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The four demo models, trained once per test process (about 2 s, no network)."""
    from modelport.serving.demo import train_demo_models

    trained = train_demo_models(tmp_path_factory.mktemp("demo"), progress=False)
    return {model.name: model for model in trained}
