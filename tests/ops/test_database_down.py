"""A database that does not answer gives 503 with Retry-After, never a 500 (reliability 1)."""

from __future__ import annotations

import socket
import threading

import pytest
from flask import Flask
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from modelport import create_app
from modelport.extensions import db
from tests.support.databases import empty_database_url
from tests.support.html import csrf_from
from tests.support.servers import closed_port


@pytest.fixture(
    params=[
        "postgresql+psycopg://postgres@127.0.0.1:{port}/test",
        "mysql+pymysql://root@127.0.0.1:{port}/test",
    ]
)
def unreachable_app(request: pytest.FixtureRequest, tmp_path) -> Flask:
    url = request.param.format(port=closed_port())
    return create_app(
        {
            "ENV": "testing",
            "DATABASE_URL": url,
            "INSTANCE_PATH": str(tmp_path),
            "DB_POOL_TIMEOUT": 1,
        }
    )


def test_api_answers_503_json_when_the_database_is_down(unreachable_app, caplog):
    response = unreachable_app.test_client().get(
        "/api/v1/me", headers={"Authorization": "Bearer mp_0000_notarealtoken"}
    )
    assert response.status_code == 503
    assert response.json["error"]["code"] == "database_unavailable"
    assert "Try again" in response.json["error"]["message"]
    assert response.headers["Retry-After"] == "5"
    assert "Traceback" not in response.get_data(as_text=True)
    assert "127.0.0.1" not in response.get_data(as_text=True)
    assert any(r.getMessage() == "database unavailable" for r in caplog.records)


def test_sign_in_page_answers_503_when_the_database_is_down(unreachable_app):
    client = unreachable_app.test_client()
    page = client.get("/auth/login")  # an anonymous page needs no database
    assert page.status_code == 200
    response = client.post(
        "/auth/login",
        data={"email": "ann@example.com", "password": "x" * 20, "csrf_token": csrf_from(page.text)},
    )
    assert response.status_code == 503
    assert "Try again" in response.get_data(as_text=True)
    assert response.mimetype == "text/html"


def test_a_refused_connection_is_reported_as_a_lost_one(unreachable_app):
    """The error handler answers 503 at once for a lost connection, without asking the
    database again (which, after a restart, may answer by then)."""
    with unreachable_app.app_context(), pytest.raises(DBAPIError) as caught:
        db.engine.connect()
    assert caught.value.connection_invalidated


def test_readiness_says_not_ready(unreachable_app):
    response = unreachable_app.test_client().get("/readyz")
    assert response.status_code == 503
    assert unreachable_app.test_client().get("/healthz").status_code == 200


def test_a_database_host_that_never_answers_gives_503_instead_of_a_hung_worker(tmp_path):
    """A server that takes the TCP connection and then says nothing (frozen, overloaded):
    without a connect timeout the request would wait for it forever."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # the kernel completes the handshake; nobody ever reads
        app = create_app(
            {
                "ENV": "testing",
                "DATABASE_URL": f"postgresql+psycopg://postgres@127.0.0.1:{silent.getsockname()[1]}/x",
                "INSTANCE_PATH": str(tmp_path),
                "DB_CONNECT_TIMEOUT": 1,
            }
        )
        answers = []

        def call() -> None:
            headers = {"Authorization": "Bearer mp_0000_notarealtoken"}
            answers.append(app.test_client().get("/api/v1/me", headers=headers))

        caller = threading.Thread(target=call, daemon=True)
        caller.start()
        caller.join(timeout=60)  # a liveness bound, far above the 1 s timeout
        assert not caller.is_alive(), "the request hung on a database that never answers"
    (response,) = answers
    assert response.status_code == 503
    assert response.json["error"]["code"] == "database_unavailable"


# Ends every other connection to the test's database.
DROP_OTHERS = (
    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
)


@pytest.mark.services
def test_a_connection_the_database_drops_as_the_request_ends_is_no_500(tmp_path) -> None:
    """A restart can end the connection between the answer and the request's ROLLBACK: the
    answer stands, the next request gets a new connection (seen under load in CI)."""
    from flask_migrate import upgrade
    from sqlalchemy import create_engine, text

    url = empty_database_url("postgres", tmp_path, "dropped")
    app = create_app({"ENV": "testing", "DATABASE_URL": url, "INSTANCE_PATH": str(tmp_path)})
    with app.app_context():
        upgrade()
    other = create_engine(url, poolclass=NullPool)

    @app.after_request
    def drop_the_connection(response):  # noqa: ANN001, ANN202
        # The view used the session; its connection dies before the teardown's ROLLBACK.
        with other.connect() as connection:
            assert connection.execute(text(DROP_OTHERS)).all()
        return response

    client = app.test_client()
    first = client.get("/models")
    assert first.status_code == 200, first.get_data(as_text=True)[:500]
    second = client.get("/models")
    assert second.status_code == 200
    other.dispose()
    with app.app_context():
        db.engine.dispose()
