"""Checklist items, or parts of them, that no other test showed (see docs/security.md).

Each test names the item it stands for. They use the shared fixtures and real parts only:
the app, its database, the local SMTP server and, for the request limits, a real gunicorn.
"""

from __future__ import annotations

import http.client
import json
import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import pytest
from flask import Flask
from flask.testing import FlaskClient
from limits import parse

from modelport.config import SETTINGS
from modelport.ops.logging import SECURITY_LOGGER, JsonFormatter
from tests.support.databases import migrated_sqlite, rows, table_counts
from tests.support.html import csrf_from, csrf_token, text
from tests.support.http import HOSTILE, assert_api_error, assert_same_origin, basic, bearer
from tests.support.tokens import issue_token
from tests.support.users import NEW_PASSWORD, PASSWORD, is_signed_in, login, make_user, user_row

ROOT = Path(__file__).resolve().parent.parent
FORMATTER = JsonFormatter()


def _default(name: str) -> str:
    return next(s.default for s in SETTINGS if s.name == name)


def _log_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Every captured record as the app's JSON formatter writes it."""
    return [FORMATTER.format(record) for record in caplog.records]


def _security_events(caplog: pytest.LogCaptureFixture) -> list[dict]:
    return [
        json.loads(FORMATTER.format(record))
        for record in caplog.records
        if record.name == SECURITY_LOGGER
    ]


# --- 8: HTTP Basic on the API does not reveal accounts either ------------------------------


@pytest.mark.db
def test_basic_auth_answers_the_same_for_an_unknown_account_and_a_wrong_password(app, verify_calls):
    make_user(app)
    answers = []
    for email in ("ann@example.com", "nobody@example.com"):
        verify_calls.clear()
        response = app.test_client().get(
            "/api/v1/me", headers=basic(email, "not the password at all")
        )
        assert len(verify_calls) == 1, email  # one hash check either way: same cost
        answers.append(response)
    known, unknown = answers
    assert_api_error(known, 401, "invalid_credentials")
    assert known.get_json() == unknown.get_json()
    assert known.headers["WWW-Authenticate"] == unknown.headers["WWW-Authenticate"]
    assert known.headers.getlist("Set-Cookie") == unknown.headers.getlist("Set-Cookie") == []


# --- 10: the default limit stops guessing well before 100 failures -------------------------


def _bad_login(client: FlaskClient, ip: str, password: str = "wrong password guess") -> int:
    token = csrf_token(client)
    return client.post(
        "/auth/login",
        data={"email": "ann@example.com", "password": password, "csrf_token": token},
        environ_base={"REMOTE_ADDR": ip},
    ).status_code


@pytest.mark.db
def test_default_account_limit_refuses_guessing_long_before_100_failures(app_factory, monkeypatch):
    for name in ("LOGIN_LIMIT_ACCOUNT", "LOGIN_LIMIT_IP"):
        monkeypatch.delenv(f"MODELPORT_{name}", raising=False)
    app = app_factory()  # the shipped defaults, not a test's lower limit
    limit = parse(app.settings.login_limit_account)
    assert app.settings.login_limit_account == _default("LOGIN_LIMIT_ACCOUNT")
    assert 1 <= limit.amount <= 100  # ASVS 6.3.1: at most 100 consecutive failures
    make_user(app)
    client = app.test_client()
    # From a new address each time, as a credential-stuffing botnet would try.
    for n in range(limit.amount):
        assert _bad_login(client, f"10.77.{n // 250}.{n % 250 + 1}") == 400
    assert _bad_login(client, "10.78.0.1") == 429
    assert _bad_login(client, "10.78.0.2", PASSWORD) == 429


# --- 11: no default accounts -------------------------------------------------------------


def test_a_started_app_has_no_accounts_and_no_default_credentials(app):
    client = app.test_client()
    for path in ("/", "/healthz", "/readyz", "/auth/login", "/api/openapi.json"):
        assert client.get(path).status_code == 200, path
    assert table_counts(app)["users"] == 0
    for email, password in [
        ("admin@example.com", "admin"),
        ("admin@localhost", "admin"),
        ("admin@example.com", "changeme"),
        ("root@localhost", "root"),
    ]:
        response = login(app.test_client(), email, password)
        assert response.status_code == 400
        assert "Wrong e-mail or password." in text(response)
        assert_api_error(
            app.test_client().get("/api/v1/me", headers=basic(email, password)),
            401,
            "invalid_credentials",
        )
    assert table_counts(app)["users"] == 0


# --- 21: CSRF on a cookie-authenticated JSON DELETE ----------------------------------------


@pytest.mark.db
def test_cookie_authenticated_token_delete_needs_the_csrf_header(app, client):
    user_id = make_user(app)
    token = issue_token(app, user_id, ["full"])
    (row,) = rows(app, "api_tokens")
    login(client)
    before = table_counts(app)
    for headers in ({}, {"X-CSRFToken": "forged"}, {"X-CSRFToken": csrf_token(app.test_client())}):
        response = client.delete(f"/api/v1/tokens/{row['id']}", headers=headers)
        assert_api_error(response, 400, "csrf_failed")
        assert table_counts(app) == before
        assert client.get("/api/v1/me", headers=bearer(token)).status_code == 200
    # Reading needs no token: a GET changes nothing.
    assert client.get("/api/v1/tokens").status_code == 200
    response = client.delete(
        f"/api/v1/tokens/{row['id']}", headers={"X-CSRFToken": csrf_token(client, "/account")}
    )
    assert response.status_code == 204
    assert_api_error(app.test_client().get("/api/v1/me", headers=bearer(token)), 401)


# --- 26: logout, reset and re-authentication never send the browser off-site ----------------


@pytest.mark.db
def test_logout_reset_and_reauth_never_redirect_off_site(app_factory):
    from modelport.auth.accounts import find_user_by_email
    from modelport.auth.links import make_link_token

    # Many reset requests from one address: not what this test is about.
    app = app_factory(SIGNUP_LIMIT="1000 per hour")
    make_user(app)
    password = PASSWORD
    for target in HOSTILE:
        query = "?next=" + quote(target, safe="")

        client = app.test_client()
        assert login(client, password=password).status_code == 302
        page = client.get("/auth/reauth" + query)
        assert page.status_code == 200
        assert '<input type="hidden" name="next" value="/account">' in text(page)
        response = client.post(
            "/auth/reauth" + query,
            data={"password": password, "next": target, "csrf_token": csrf_from(text(page))},
        )
        assert response.status_code == 302, target
        assert_same_origin(response.headers["Location"])
        assert response.headers["Location"] == "/account", target

        response = client.post(
            "/auth/logout" + query,
            data={"next": target, "csrf_token": csrf_token(client, "/account")},
        )
        assert response.status_code == 302, target
        assert response.headers["Location"] == "/", target
        assert not is_signed_in(client)

        response = client.post(
            "/auth/reset" + query,
            data={
                "email": "ann@example.com",
                "next": target,
                "csrf_token": csrf_token(client, "/auth/reset"),
            },
        )
        assert response.status_code == 302, target
        assert response.headers["Location"] == "/auth/login", target

        with app.app_context():
            link = "/auth/reset/" + make_link_token(find_user_by_email("ann@example.com"), "reset")
        password = NEW_PASSWORD if password == PASSWORD else PASSWORD
        page = client.get(link + query)
        assert page.status_code == 200
        response = client.post(
            link + query,
            data={
                "password": password,
                "password2": password,
                "next": target,
                "csrf_token": csrf_from(text(page)),
            },
        )
        assert response.status_code == 302, target
        assert response.headers["Location"] == "/auth/login", target


# --- 28: the profile: account actions act on the signed-in member only --------------------


@pytest.mark.db
def test_account_actions_ignore_another_members_id(app, mailbox):
    make_user(app)
    bob_id = make_user(app, "bob@example.com", name="Bob")
    bob = app.test_client()
    login(bob, "bob@example.com")
    bob_token = issue_token(app, bob_id)
    bob_before = user_row(app, "bob@example.com")
    ann_hash = user_row(app, "ann@example.com")["password_hash"]
    other = {"id": str(bob_id), "user_id": str(bob_id), "email": "bob@example.com"}

    ann = app.test_client()
    login(ann)
    for query in (f"id={bob_id}", f"user_id={bob_id}", "email=bob@example.com"):
        assert ann.get(f"/api/v1/me?{query}").get_json()["email"] == "ann@example.com"

    response = ann.post(
        f"/account/password?user_id={bob_id}",
        data={
            **other,
            "current_password": PASSWORD,
            "new_password": NEW_PASSWORD,
            "new_password2": NEW_PASSWORD,
            "csrf_token": csrf_token(ann, "/account"),
        },
    )
    assert response.status_code == 302
    assert user_row(app, "ann@example.com")["password_hash"] != ann_hash
    assert user_row(app, "bob@example.com") == bob_before

    response = ann.post(
        f"/account/delete?user_id={bob_id}",
        data={**other, "password": NEW_PASSWORD, "csrf_token": csrf_token(ann, "/account")},
    )
    assert response.status_code == 302
    assert user_row(app, "ann@example.com") is None
    assert user_row(app, "bob@example.com") == bob_before
    assert is_signed_in(bob)
    assert bob.get("/api/v1/me", headers=bearer(bob_token)).get_json()["id"] == bob_id
    assert mailbox.messages == []


# --- 33: a body limit is set by default (Flask sets none) and enforced --------------------


@pytest.mark.db
def test_the_default_body_limit_is_set_and_gives_413(app_factory, monkeypatch):
    monkeypatch.delenv("MODELPORT_MAX_CONTENT_LENGTH", raising=False)
    app = app_factory()
    assert Flask.default_config["MAX_CONTENT_LENGTH"] is None
    limit = app.config["MAX_CONTENT_LENGTH"]
    assert limit == int(_default("MAX_CONTENT_LENGTH")) > 0
    user_id = make_user(app)
    auth = bearer(issue_token(app, user_id, ["full"]))
    client = app.test_client()
    before = table_counts(app)

    body = json.dumps({"name": "t", "pad": ""}).encode()
    oversized = body.replace(b'""', b'"' + b"x" * (limit + 1 - len(body)) + b'"')
    assert len(oversized) == limit + 1
    response = client.post(
        "/api/v1/tokens", data=oversized, headers={**auth, "Content-Type": "application/json"}
    )
    assert_api_error(response, 413, "payload_too_large")

    token = csrf_token(client)
    response = client.post(
        "/auth/login",
        data={"email": "ann@example.com", "password": "p" * limit, "csrf_token": token},
    )
    assert response.status_code == 413 and response.mimetype == "text/html"
    assert "The request body is too large." in text(response)
    assert table_counts(app) == before


# --- 37: authorisation denials and administrators' actions are logged ----------------------


def _recent_utc(event: dict) -> None:
    when = datetime.fromisoformat(event["time"])
    assert when.utcoffset() == UTC.utcoffset(None), event
    assert abs((datetime.now(UTC) - when).total_seconds()) < 3600, event


@pytest.mark.db
def test_denials_and_admin_actions_are_logged_with_who_what_when_where(app, caplog):
    caplog.set_level(logging.INFO, logger="modelport")
    ann_id = make_user(app)
    root_id = make_user(app, "root@example.com", name="Root", role="admin")
    predict = bearer(issue_token(app, ann_id, ["predict"]))
    member = app.test_client()
    member.environ_base["REMOTE_ADDR"] = "192.0.2.10"
    login(member)
    admin = app.test_client()
    admin.environ_base["REMOTE_ADDR"] = "192.0.2.20"
    login(admin, "root@example.com")
    caplog.clear()

    assert member.get("/admin/users").status_code == 403
    assert member.get("/api/v1/tokens", headers=predict).status_code == 403
    assert member.get("/api/v1/me", headers=bearer("mp_00000000_not-a-token")).status_code == 401
    for path, data in [
        (f"/admin/users/{ann_id}/role", {"role": "admin"}),
        (f"/admin/users/{ann_id}/disable", {}),
    ]:
        response = admin.post(path, data={**data, "csrf_token": csrf_token(admin, "/admin/users")})
        assert response.status_code == 302

    events = {event["event"]: event for event in _security_events(caplog)}
    expected = {
        "authorisation_denied": (ann_id, "192.0.2.10"),
        "scope_denied": (ann_id, "192.0.2.10"),
        "token_rejected": (None, "192.0.2.10"),
        "role_changed": (ann_id, "192.0.2.20"),
        "account_disabled": (ann_id, "192.0.2.20"),
    }
    assert set(expected) <= set(events)
    for name, (user_id, ip) in expected.items():
        event = events[name]
        assert (event["user_id"], event["ip"]) == (user_id, ip), name
        _recent_utc(event)
    assert events["authorisation_denied"]["path"] == "/admin/users"
    assert events["scope_denied"]["scope"] == "full"
    assert (events["role_changed"]["actor_id"], events["role_changed"]["new"]) == (root_id, "admin")
    assert events["account_disabled"]["actor_id"] == root_id


# --- 38: credentials sent to the API never reach the log -----------------------------------


@pytest.mark.db
def test_api_credentials_never_reach_the_log(app, caplog):
    caplog.set_level(logging.DEBUG)
    make_user(app)
    client = app.test_client()
    wrong = "a wrong password for the log test"
    bogus = "mp_0badc0de_" + "q" * 43
    created = client.post("/api/v1/tokens", json={"name": "script"}, headers=basic())
    assert created.status_code == 201
    plaintext = created.get_json()["token"]
    assert client.get("/api/v1/me", headers=bearer(plaintext)).status_code == 200
    assert client.get("/api/v1/me", headers=bearer(bogus)).status_code == 401
    assert client.get("/api/v1/me", headers=basic(password=wrong)).status_code == 401
    assert client.get(f"/api/v1/me?access_token={plaintext}").status_code == 400
    assert client.get(f"/api/v1/me?token={bogus}").status_code == 400

    secrets_sent = {
        PASSWORD,
        wrong,
        plaintext,
        plaintext.split("_", 2)[2],  # the random part alone
        bogus,
        basic()["Authorization"].split()[1],
        basic(password=wrong)["Authorization"].split()[1],
        app.config["SECRET_KEY"],
    }
    logged = caplog.text + "\n" + "\n".join(_log_lines(caplog))
    assert any(e["event"] == "login_failed" for e in _security_events(caplog))
    for secret in secrets_sent:
        assert secret not in logged


# --- 40: no secret key or database password in the source ---------------------------------

# A database or Redis URL with a password in it; `user:pass` is the documented placeholder.
CREDENTIAL_URL = re.compile(r"\b[a-z][a-z0-9+]*://(?!user:pass@)[^\s/:@\"'`]+:[^\s/@\"'`]+@")
SECRET_LITERAL = re.compile(
    r"""(SECRET_KEY|PASSWORD)["']?\s*[:=]\s*["'][^"'\s]{4,}["']""", re.IGNORECASE
)


def _source_files() -> Iterator[Path]:
    for path in sorted((ROOT / "modelport").rglob("*")):  # migrations included
        if path.suffix in {".py", ".ini", ".cfg", ".toml", ".html", ".mako", ".env"}:
            yield path
    yield from (ROOT / name for name in ("pyproject.toml", "Makefile", "babel.cfg"))


def test_no_secret_key_or_database_password_in_the_source():
    offenders = []
    for path in _source_files():
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if CREDENTIAL_URL.search(line) or SECRET_LITERAL.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []
    # The patterns do find what they are for.
    assert CREDENTIAL_URL.search("postgresql+psycopg://modelport:s3cr3t@db/modelport")
    assert SECRET_LITERAL.search('SECRET_KEY = "hard-coded-in-source"')
    # Secrets come from the environment only: no default values, and .env stays out of git.
    assert _default("SECRET_KEY") == _default("MAIL_PASSWORD") == ""
    assert ".env" in (ROOT / ".gitignore").read_text().split()


# --- reliability 6: gunicorn refuses oversized request lines and headers -------------------


@pytest.fixture
def served_database(tmp_path: Path) -> str:
    return migrated_sqlite(tmp_path, "limits")


def _raw_status(port: int, path: str, headers: dict[str, str] | None = None) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path, headers=headers or {})
        return connection.getresponse().status
    finally:
        connection.close()


@pytest.mark.slow
def test_gunicorn_refuses_an_oversized_request_line_and_header(tmp_path, served_database):
    from tests.support.servers import gunicorn, server_settings

    gunicorn_conf = server_settings()
    line_limit = gunicorn_conf.limit_request_line
    field_limit = gunicorn_conf.limit_request_field_size
    with gunicorn(tmp_path, served_database) as server:
        assert _raw_status(server.port, "/healthz") == 200
        # gunicorn 27 names the problem: 414 URI Too Long, 431 Header Fields Too Large.
        assert _raw_status(server.port, "/healthz?q=" + "a" * line_limit) == 414
        assert _raw_status(server.port, "/healthz", {"X-Big": "b" * field_limit}) == 431
        # The server shed them and carries on.
        assert _raw_status(server.port, "/healthz?q=" + "a" * 100) == 200


def test_access_log_format_leaves_out_the_query_string():
    """Checklist 38: a token wrongly sent in the URL is refused, and not logged either."""
    from tests.support.servers import server_settings

    gunicorn_conf = server_settings()

    assert "%(r)s" not in gunicorn_conf.access_log_format
    assert "%(q)s" not in gunicorn_conf.access_log_format
    assert "%(U)s" in gunicorn_conf.access_log_format
