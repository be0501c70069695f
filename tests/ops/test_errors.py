"""The last-resort error handler and the web error pages.

Checklist 35 (generic error bodies, no traceback, SQL or config value), 36 (JSON 500 for
/api with one log record carrying the request id; nothing committed), and the web side of
"errors are data": pages answer with the HTML error page and its message.
"""

from __future__ import annotations

import json
import logging

import pytest
import sqlalchemy as sa
from flask import Flask

from modelport.extensions import db
from modelport.models import User
from tests.support.databases import table_counts
from tests.support.html import csrf_token
from tests.support.users import make_user

LEAK = "SELECT password_hash FROM users WHERE 1=1"


def _add_failing_routes(app: Flask) -> None:
    """Views that write a row and then fail, as a bug in a real view would."""

    def explode() -> str:
        db.session.add(
            User(email="ghost@example.com", name="Ghost", password_hash="x", role="user")
        )
        db.session.flush()  # the row is in the transaction, not yet committed
        raise RuntimeError(f"{LEAK} secret={app.config['SECRET_KEY']}")

    def bad_sql() -> str:
        db.session.execute(sa.text("SELECT no_such_column FROM users"))
        return "unreachable"

    app.add_url_rule("/api/v1/explode", "api_explode", explode)
    app.add_url_rule("/explode", "page_explode", explode)
    app.add_url_rule("/api/v1/bad-sql", "api_bad_sql", bad_sql)
    app.add_url_rule("/bad-sql", "page_bad_sql", bad_sql)


def _assert_no_leak(app: Flask, text: str) -> None:
    for secret in (
        "Traceback",
        "RuntimeError",
        "no_such_column",
        "SELECT",
        LEAK,
        app.config["SECRET_KEY"],
        app.config["SQLALCHEMY_DATABASE_URI"],
        "sqlalchemy",
        'File "',
    ):
        assert secret not in text, secret


@pytest.mark.db
def test_an_api_500_is_generic_json_logged_once_and_commits_nothing(app_factory, caplog):
    app = app_factory()
    _add_failing_routes(app)
    client = app.test_client()
    before = table_counts(app)
    caplog.set_level(logging.INFO)
    for path in ("/api/v1/explode", "/api/v1/bad-sql"):
        caplog.clear()
        response = client.get(path, headers={"X-Request-ID": "req-abc.123"})
        assert response.status_code == 500
        assert response.mimetype == "application/json"
        body = response.get_json()
        assert body == {
            "error": {
                "code": "internal_error",
                "message": "Something went wrong on our side. The error was logged.",
                "details": None,
            }
        }
        _assert_no_leak(app, response.get_data(as_text=True))
        assert response.headers["X-Request-ID"] == "req-abc.123"
        errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1, [r.getMessage() for r in errors]
        assert errors[0].name == "modelport.errors"
        assert errors[0].fields["request_id"] == "req-abc.123"
        assert errors[0].exc_info is not None  # the log, not the client, gets the traceback
    assert table_counts(app) == before
    with app.app_context():
        assert db.session.scalar(sa.select(User).where(User.email == "ghost@example.com")) is None


@pytest.mark.db
def test_the_request_id_is_made_when_missing_or_unsafe(app_factory, caplog):
    app = app_factory()
    _add_failing_routes(app)
    client = app.test_client()
    caplog.set_level(logging.ERROR)
    for sent in (None, "bad id; forged=1", "x" * 65):
        caplog.clear()
        response = client.get("/api/v1/explode", headers={"X-Request-ID": sent} if sent else {})
        rid = response.headers["X-Request-ID"]
        assert rid != sent and len(rid) == 32
        (record,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert record.fields["request_id"] == rid


@pytest.mark.db
def test_a_page_500_is_the_error_page_without_internals(app_factory, caplog):
    app = app_factory()
    _add_failing_routes(app)
    client = app.test_client()
    make_user(app)
    before = table_counts(app)
    caplog.set_level(logging.ERROR)
    for path in ("/explode", "/bad-sql"):
        caplog.clear()
        response = client.get(path)
        assert response.status_code == 500
        assert response.mimetype == "text/html"
        html = response.get_data(as_text=True)
        assert "Something went wrong on our side" in html
        _assert_no_leak(app, html)
        assert "object-src 'none'" in response.headers["Content-Security-Policy"]
        assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 1
    assert table_counts(app) == before


def test_web_pages_get_the_html_error_page_with_the_message(app):
    client = app.test_client()
    response = client.get("/no/such/page")
    assert response.status_code == 404 and response.mimetype == "text/html"
    assert "There is no page at this address." in response.get_data(as_text=True)

    response = client.get("/auth/logout")  # POST only (checklist 22)
    assert response.status_code == 405 and response.mimetype == "text/html"
    assert response.headers["Allow"].replace(" ", "").split(",").count("POST") == 1
    assert "GET is not allowed here; use POST." in response.get_data(as_text=True)


def test_a_csrf_failure_on_a_page_is_a_400_page_that_says_so(app):
    client = app.test_client()
    client.get("/auth/login")
    response = client.post("/auth/login", data={"email": "a@example.com", "password": "x"})
    assert response.status_code == 400 and response.mimetype == "text/html"
    assert "CSRF" in response.get_data(as_text=True)


def test_an_oversized_form_is_a_413_page(app_factory):
    app = app_factory(MAX_CONTENT_LENGTH=1024)
    client = app.test_client()
    token = csrf_token(client)
    response = client.post(
        "/auth/login", data={"email": "a@example.com", "password": "p" * 4000, "csrf_token": token}
    )
    assert response.status_code == 413 and response.mimetype == "text/html"
    assert "The request body is too large." in response.get_data(as_text=True)


def test_v2_errors_keep_the_protocol_shape(app):
    response = app.test_client().get("/v2/models/nope/ready/really-not")
    assert response.status_code == 404
    assert response.mimetype == "application/json"
    body = json.loads(response.get_data(as_text=True))
    assert set(body) == {"error"} and isinstance(body["error"], str) and body["error"]


def test_error_pages_render_when_the_credentials_themselves_are_bad(app):
    client = app.test_client()
    cases = [
        ({"Authorization": "Bearer mp_bogus"}, "The API token is invalid"),
        ({"Authorization": "Basic !!"}, "HTTP Basic (e-mail and password) is only accepted"),
    ]
    for headers, message in cases:
        response = client.get("/no/such/page", headers=headers)
        assert response.status_code == 404 and response.mimetype == "text/html"
        assert "There is no page at this address." in response.get_data(as_text=True)
        response = client.get("/account", headers=headers)
        assert response.status_code == 401 and response.mimetype == "text/html"
        assert message in response.get_data(as_text=True)
