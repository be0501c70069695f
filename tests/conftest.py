"""Fixtures shared by the whole suite.

Tests that touch the database are marked ``db`` and run once per backend: SQLite always,
PostgreSQL and MariaDB when ``MODELPORT_TEST_POSTGRES_URL`` / ``MODELPORT_TEST_MYSQL_URL``
are set. Without them a laptop skips those runs with a reason; CI sets
``MODELPORT_TEST_REQUIRE_SERVICES=1`` and a missing service is then a failure.
Every pytest-xdist worker gets databases of its own, migrated once with ``flask db upgrade``.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import threading
from collections.abc import Iterator
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher
from flask import Flask
from flask.testing import FlaskClient

from modelport import create_app
from modelport.extensions import db, dispose_engines, limiter

BACKENDS = ("sqlite", "postgres", "mysql")
URL_ENV = {"postgres": "MODELPORT_TEST_POSTGRES_URL", "mysql": "MODELPORT_TEST_MYSQL_URL"}
REQUIRE_SERVICES = os.environ.get("MODELPORT_TEST_REQUIRE_SERVICES") == "1"
PASSWORD = "correct horse battery staple"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        backends = BACKENDS if metafunc.definition.get_closest_marker("db") else ("sqlite",)
        metafunc.parametrize("backend", backends, scope="function")


def _worker() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def service_url(name: str) -> str:
    """The server URL of a test service from its variable, or skip/fail with the reason."""
    env = {
        "postgres": URL_ENV["postgres"],
        "mysql": URL_ENV["mysql"],
        "redis": "MODELPORT_TEST_REDIS_URL",
    }[name]
    url = os.environ.get(env)
    if not url:
        reason = f"{env} is not set: {name} tests need a running {name} server"
        if REQUIRE_SERVICES:
            pytest.fail(reason)
        pytest.skip(reason)
    return url


def server_database(base_url: str, name: str) -> str:
    """Create (anew) database ``name`` on the server of ``base_url``; return its URL."""
    url = sa.make_url(base_url)
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    quoted = f'"{name}"' if url.get_backend_name() == "postgresql" else f"`{name}`"
    with admin.connect() as connection:
        if url.get_backend_name() == "postgresql":
            connection.execute(sa.text(f"DROP DATABASE IF EXISTS {quoted} WITH (FORCE)"))
            connection.execute(sa.text(f"CREATE DATABASE {quoted}"))
        else:
            connection.execute(sa.text(f"DROP DATABASE IF EXISTS {quoted}"))
            connection.execute(
                sa.text(f"CREATE DATABASE {quoted} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
            )
    admin.dispose()
    made = url.set(database=name)
    if url.get_backend_name() != "postgresql":
        made = made.update_query_dict({"charset": "utf8mb4"})
    return made.render_as_string(hide_password=False)


def empty_database_url(backend: str, tmp_path: Path, label: str) -> str:
    """A URL of a brand-new empty database of ``backend``, private to this worker."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / f'{label}.db'}"
    base = service_url(backend)
    # The pid keeps concurrent pytest runs on one server out of each other's databases.
    name = f"mp_{label}_{_worker()}_{os.getpid()}"
    _CREATED.append((base, name))
    return server_database(base, name)


_CREATED: list[tuple[str, str]] = []


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Drop the server databases this process created."""
    for base, name in _CREATED:
        url = sa.make_url(base)
        engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
        quoted = f'"{name}"' if url.get_backend_name() == "postgresql" else f"`{name}`"
        force = " WITH (FORCE)" if url.get_backend_name() == "postgresql" else ""
        try:
            with engine.connect() as connection:
                connection.execute(sa.text(f"DROP DATABASE IF EXISTS {quoted}{force}"))
        except sa.exc.SQLAlchemyError:
            pass
        engine.dispose()


@pytest.fixture(scope="session")
def migrated_urls(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Per backend, a database migrated once (lazily) with ``flask db upgrade``."""
    return {}


def _migrated_url(backend: str, cache: dict[str, str], tmp_path: Path) -> str:
    if backend not in cache:
        url = empty_database_url(backend, tmp_path, "suite")
        app = create_app(
            {"ENV": "testing", "DATABASE_URL": url, "INSTANCE_PATH": str(tmp_path / "instance")}
        )
        from flask_migrate import upgrade

        with app.app_context():
            upgrade()
            db.engine.dispose()
        cache[backend] = url
    return cache[backend]


def migrated_sqlite(tmp_path: Path, name: str = "served") -> str:
    """A SQLite file of the test's own, migrated as `flask db upgrade` leaves it; its URL."""
    from flask_migrate import upgrade

    url = f"sqlite:///{tmp_path / f'{name}.db'}"
    app = create_app({"ENV": "testing", "DATABASE_URL": url, "INSTANCE_PATH": str(tmp_path)})
    with app.app_context():
        upgrade()
        db.engine.dispose()
    return url


def _truncate_all() -> None:
    with db.engine.begin() as connection:
        for table in reversed(db.metadata.sorted_tables):
            connection.execute(table.delete())


class Mailbox:
    """Messages received by the local SMTP server a test started.

    The app hands mail to a background thread; reading waits until it has been delivered.
    """

    def __init__(self) -> None:
        self.port = 0
        self._received: list[Message] = []
        self._lock = threading.Lock()

    def receive(self, message: Message) -> None:
        with self._lock:
            self._received.append(message)

    @property
    def messages(self) -> list[Message]:
        from modelport.mail import wait_for_delivery

        wait_for_delivery()
        with self._lock:
            return list(self._received)

    def to(self, address: str) -> list[Message]:
        return [m for m in self.messages if address.lower() in m["To"].lower()]

    def links(self, address: str) -> list[str]:
        found = []
        for message in self.to(address):
            body = message.get_payload(decode=True).decode()
            found += re.findall(r"https?://\S+", body)
        return found


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
    url = _migrated_url(backend, migrated_urls, base_tmp)
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
            _truncate_all()
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


def csrf_from(html: str) -> str:
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or re.search(
        r'name="csrf_token" value="([^"]+)"', html
    )
    assert match, "no CSRF token on the page"
    return match.group(1)


def csrf_token(client: FlaskClient, path: str = "/auth/login") -> str:
    """A CSRF token valid for this client's current session."""
    return csrf_from(client.get(path).get_data(as_text=True))


def make_user(
    app: Flask,
    email: str = "ann@example.com",
    password: str = PASSWORD,
    *,
    name: str = "Ann",
    role: str = "user",
) -> int:
    """Create a confirmed account directly through the service; return its id."""
    from modelport.auth import accounts
    from modelport.models import Role

    with app.app_context():
        return accounts.create_user(email, name, password, role=Role(role)).id


def login(
    client: FlaskClient,
    email: str = "ann@example.com",
    password: str = PASSWORD,
    *,
    remember: bool = False,
) -> Any:
    data = {"email": email, "password": password, "csrf_token": csrf_token(client)}
    if remember:
        data["remember"] = "y"
    return client.post("/auth/login", data=data)


def table_counts(app: Flask) -> dict[str, int]:
    """Rows per table: compare before and after a bad request to show nothing changed."""
    with app.app_context(), db.engine.connect() as connection:
        return {
            t.name: connection.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
            for t in db.metadata.sorted_tables
        }


@pytest.fixture(scope="session")
def demo_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The four demo models, trained once per test process (about 2 s, no network)."""
    from modelport.serving.demo import train_demo_models

    trained = train_demo_models(tmp_path_factory.mktemp("demo"), progress=False)
    return {model.name: model for model in trained}


def register_demo(
    app: Flask, demo_models: dict[str, Any], *names: str, visibility: str = "public"
) -> None:
    """Register demo models (all when no name is given) as version 1, alias ``champion``."""
    from modelport.serving import registry

    with app.app_context():
        for name in names or tuple(demo_models):
            registry.register_trained(demo_models[name], visibility=visibility)


IRIS_ROW = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
DIABETES_ROW = {
    "age": 59.0,
    "sex": 2.0,
    "bmi": 32.1,
    "bp": 101.0,
    "s1": 157.0,
    "s2": 93.2,
    "s3": 38.0,
    "s4": 4.0,
    "s5": 4.8598,
    "s6": 87.0,
}


def register_colour_model(app: Flask, folder: Path) -> str:
    """Register ``colour``: a skops pipeline over iris plus a categorical ``colour`` column
    (one-hot encoded), classes 0, 1 and 2; return its name."""
    import numpy as np
    import skops.io as sio
    from sklearn.compose import make_column_transformer
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    from modelport.serving import registry

    X, y = load_iris(return_X_y=True, as_frame=True)
    X.columns = list(IRIS_ROW)
    frame = X.assign(colour=np.where(y > 0, "red", "blue"))
    pipeline = make_pipeline(
        make_column_transformer((OneHotEncoder(), ["colour"]), remainder="passthrough"),
        LogisticRegression(max_iter=1000),
    ).fit(frame, y)
    path = folder / "colour.skops"
    sio.dump(pipeline, path)
    with app.app_context():
        model = registry.create_model("colour", task="classification")
        registry.register_version(model, path, filename=path.name, sample=frame)
    return "colour"
