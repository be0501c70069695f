"""Server-side sessions, remember-me and their cookies (checklist 13-15, 17-20)."""

from __future__ import annotations

import secrets
from datetime import timedelta
from http.cookies import SimpleCookie

import pytest
import sqlalchemy as sa
from flask import Flask, session

from modelport.auth import sessions
from modelport.models import UserSession
from modelport.models.types import utcnow
from tests.support.cookies import remember_cookie, replay_remember, replay_session, session_cookie
from tests.support.databases import execute, rows, table_counts
from tests.support.html import csrf_from, csrf_token
from tests.support.mail import reset_link
from tests.support.tokens import make_token, me_status
from tests.support.users import (
    NEW_PASSWORD,
    PASSWORD,
    change_password,
    is_signed_in,
    login,
    make_user,
    reset_with,
)

# --- 13: a new session id at sign-in -------------------------------------------------------


@pytest.mark.db
def test_session_cookie_changes_at_login_and_the_old_one_stays_anonymous(app, client):
    make_user(app)
    client.get("/auth/login")
    before = session_cookie(app, client)
    assert before

    assert login(client).status_code == 302
    after = session_cookie(app, client)
    assert after and after != before
    assert is_signed_in(client)
    assert not is_signed_in(replay_session(app, before))
    assert is_signed_in(replay_session(app, after))


@pytest.mark.db
def test_signing_in_again_ends_the_previous_session_on_the_server(app, client):
    make_user(app)
    login(client)
    first = session_cookie(app, client)
    response = client.post(
        "/auth/login",
        data={
            "email": "ann@example.com",
            "password": PASSWORD,
            "csrf_token": csrf_token(client, "/account"),
        },
    )
    assert response.status_code == 302
    assert session_cookie(app, client) != first
    assert not is_signed_in(replay_session(app, first))
    assert len(rows(app, "user_sessions")) == 1


# --- 14: logout ends the session on the server ---------------------------------------------


@pytest.mark.db
def test_logout_invalidates_a_copied_cookie(app, client):
    make_user(app)
    login(client, remember=True)
    copied = session_cookie(app, client)
    copied_remember = remember_cookie(app, client)
    assert copied and copied_remember

    response = client.post("/auth/logout", data={"csrf_token": csrf_token(client, "/account")})
    assert response.status_code == 302
    assert table_counts(app)["user_sessions"] == 0

    replayed = replay_session(app, copied)
    response = replayed.get("/account")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/auth/login")
    assert replayed.get("/api/v1/me").status_code == 401
    assert replay_remember(app, copied_remember).get("/api/v1/me").status_code == 401


# --- 15: a password change or reset ends every other way in ----------------------------------


def _three_ways_in(app: Flask) -> tuple:
    """Client B signed in, the remember cookie alone (client C), and an API token."""
    other = app.test_client()
    login(other, remember=True)
    remember_only = replay_remember(app, remember_cookie(app, other))
    token = make_token(app)
    assert is_signed_in(other)
    assert is_signed_in(remember_only)
    assert me_status(app, token) == 200
    return other, remember_only, token


@pytest.mark.db
def test_password_change_ends_other_sessions_remember_cookies_and_tokens(app, client):
    make_user(app)
    login(client)
    other, remember_only, token = _three_ways_in(app)

    assert change_password(client, PASSWORD, NEW_PASSWORD).status_code == 302

    assert client.get("/account").status_code == 200  # A stays signed in
    assert other.get("/api/v1/me").status_code == 401
    assert remember_only.get("/api/v1/me").status_code == 401
    assert me_status(app, token) == 401
    assert table_counts(app)["api_tokens"] == 0
    assert table_counts(app)["user_sessions"] == 1


@pytest.mark.db
def test_password_reset_ends_every_session_remember_cookie_and_token(app, client, mailbox):
    make_user(app)
    login(client)
    other, remember_only, token = _three_ways_in(app)

    anonymous = app.test_client()
    path = reset_link(anonymous, mailbox, "ann@example.com")
    assert reset_with(anonymous, path, NEW_PASSWORD).status_code == 302

    for signed_in in (client, other, remember_only):
        assert signed_in.get("/api/v1/me").status_code == 401
    assert me_status(app, token) == 401
    assert table_counts(app)["user_sessions"] == 0
    assert login(anonymous, password=NEW_PASSWORD).status_code == 302


# --- 17: idle and absolute lifetimes, remember-me bounded ----------------------------------


class Clock:
    """What ``sessions.utcnow`` returns: the real time moved by ``offset``."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self):  # noqa: ANN204
        return utcnow() + self.offset


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    moved = Clock()
    monkeypatch.setattr(sessions, "utcnow", moved)
    return moved


@pytest.mark.db
def test_idle_session_ends(app_factory, clock):
    app = app_factory(SESSION_IDLE_MINUTES=30, SESSION_ABSOLUTE_HOURS=12)
    make_user(app)
    client = app.test_client()
    login(client)
    clock.offset = timedelta(minutes=29)
    assert is_signed_in(client)
    clock.offset = timedelta(minutes=29 + 31)
    assert not is_signed_in(client)


@pytest.mark.db
def test_absolute_lifetime_ends_an_active_session(app_factory, clock):
    app = app_factory(SESSION_IDLE_MINUTES=30, SESSION_ABSOLUTE_HOURS=1)
    make_user(app)
    client = app.test_client()
    login(client)
    for minutes in (20, 40, 59):  # active every 20 minutes: never idle
        clock.offset = timedelta(minutes=minutes)
        assert is_signed_in(client)
    clock.offset = timedelta(minutes=61)
    assert not is_signed_in(client)


@pytest.mark.db
def test_remember_cookie_restores_a_non_fresh_session_within_remember_days(app_factory, clock):
    app = app_factory(REMEMBER_DAYS=3)
    make_user(app)
    client = app.test_client()
    response = login(client, remember=True)
    max_age = SimpleCookie(
        [v for v in response.headers.getlist("Set-Cookie") if "remember" in v][0]
    )
    assert int(next(iter(max_age.values()))["max-age"]) == 3 * 24 * 3600

    # The browser was closed: only the remember cookie is left.
    restored = replay_remember(app, remember_cookie(app, client))
    clock.offset = timedelta(days=2)
    assert is_signed_in(restored)
    with restored.session_transaction() as data:
        assert data[sessions.FRESH_KEY] is False

    clock.offset = timedelta(days=3, minutes=1)
    assert not is_signed_in(replay_remember(app, remember_cookie(app, client)))
    assert not is_signed_in(restored)


@pytest.mark.db
def test_remember_session_is_bounded_even_when_used_every_day(app_factory, clock):
    app = app_factory(REMEMBER_DAYS=3)
    make_user(app)
    client = app.test_client()
    login(client, remember=True)
    for day in (1, 2):
        clock.offset = timedelta(days=day)
        assert is_signed_in(client)
    clock.offset = timedelta(days=3, hours=1)
    assert not is_signed_in(client)


@pytest.mark.db
def test_rows_aged_in_the_database_expire(app):
    """The same limits, judged from the stored timestamps alone (no clock moved)."""
    make_user(app)
    client = app.test_client()
    login(client)
    idle = app.settings.session_idle_minutes
    execute(
        app,
        sa.update(UserSession.__table__).values(
            last_seen_at=utcnow() - timedelta(minutes=idle + 1)
        ),
    )
    assert not is_signed_in(client)


@pytest.mark.db
def test_remember_me_session_idle_past_the_plain_limit_is_no_longer_fresh(app_factory, clock):
    app = app_factory(SESSION_IDLE_MINUTES=30, REMEMBER_DAYS=14)
    make_user(app)
    client = app.test_client()
    login(client, remember=True)
    assert client.get("/account/tokens").status_code == 200
    clock.offset = timedelta(hours=2)
    assert is_signed_in(client)
    response = client.get("/account/tokens")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/auth/reauth")


# --- 18: sensitive pages need a fresh sign-in ----------------------------------------------


@pytest.mark.db
def test_remember_restored_session_must_reenter_the_password_for_tokens(app):
    make_user(app)
    first = app.test_client()
    login(first, remember=True)
    restored = replay_remember(app, remember_cookie(app, first))

    response = restored.get("/account/tokens")
    assert response.status_code == 302
    assert response.headers["Location"] == "/auth/reauth?next=/account/tokens"

    page = restored.get(response.headers["Location"])
    assert page.status_code == 200
    wrong = restored.post(
        "/auth/reauth",
        data={
            "password": "not the password at all",
            "next": "/account/tokens",
            "csrf_token": csrf_from(page.get_data(as_text=True)),
        },
    )
    assert wrong.status_code == 400
    assert "The password is not correct." in wrong.get_data(as_text=True)
    assert restored.get("/account/tokens").status_code == 302

    before = session_cookie(app, restored)
    response = restored.post(
        "/auth/reauth",
        data={
            "password": PASSWORD,
            "next": "/account/tokens",
            "csrf_token": csrf_token(restored, "/auth/reauth"),
        },
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/account/tokens"
    assert restored.get("/account/tokens").status_code == 200
    # Re-authentication starts a new session too; the remembered one is gone.
    assert session_cookie(app, restored) != before
    assert not is_signed_in(replay_session(app, before))


@pytest.mark.db
@pytest.mark.parametrize(
    ("path", "data"),
    [
        (
            "/account/password",
            {"new_password": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
        ),
        ("/account/email", {"email": "new@example.com"}),
        ("/account/delete", {}),
    ],
    ids=["password", "email", "delete"],
)
def test_password_change_email_change_and_delete_always_ask_for_the_password(
    app, client, mailbox, path, data
):
    make_user(app)
    login(client)  # a fresh session: still the password is needed
    before = table_counts(app)
    stored = rows(app, "users")
    response = client.post(path, data={**data, "csrf_token": csrf_token(client, "/account")})
    assert response.status_code == 400
    assert "This field is required." in response.get_data(as_text=True)
    assert table_counts(app) == before
    assert rows(app, "users") == stored
    assert mailbox.messages == []


# --- 19, 20: cookie attributes -------------------------------------------------------------


def cookie_problems(set_cookie: str, *, production: bool) -> list[str]:
    """What is wrong with one Set-Cookie header for a session, remember or device cookie."""
    parsed = SimpleCookie()
    parsed.load(set_cookie)
    ((name, morsel),) = parsed.items()
    problems = []
    if not morsel["httponly"]:
        problems.append(f"{name}: no HttpOnly")
    if morsel["samesite"].lower() not in {"lax", "strict"}:
        problems.append(f"{name}: SameSite is {morsel['samesite']!r}")
    if morsel["path"] != "/":
        problems.append(f"{name}: Path is {morsel['path']!r}")
    if morsel["domain"]:
        problems.append(f"{name}: has Domain")
    if production:
        if not morsel["secure"]:
            problems.append(f"{name}: no Secure")
        if not name.startswith("__Host-"):
            problems.append(f"{name}: no __Host- prefix")
    return problems


def _login_cookies(app: Flask, base_url: str = "http://localhost") -> list[str]:
    client = app.test_client()
    page = client.get("/auth/login", base_url=base_url)
    response = client.post(
        "/auth/login",
        base_url=base_url,
        headers={"Referer": f"{base_url}/auth/login"},
        data={
            "email": "ann@example.com",
            "password": PASSWORD,
            "remember": "y",
            "csrf_token": csrf_from(page.get_data(as_text=True)),
        },
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    return response.headers.getlist("Set-Cookie")


def _plain_flask_cookie() -> str:
    plain = Flask("plain")
    plain.secret_key = "x" * 32

    @plain.get("/")
    def index() -> str:
        session["user"] = 1
        return "ok"

    return plain.test_client().get("/").headers["Set-Cookie"]


@pytest.mark.db
def test_session_and_remember_cookies_are_httponly_lax_path_root(app):
    make_user(app)
    cookies = _login_cookies(app)
    names = {SimpleCookie(c).popitem()[0] for c in cookies}
    assert names == {
        app.config["SESSION_COOKIE_NAME"],
        app.config["MODELPORT_REMEMBER_COOKIE"],
        app.config["DEVICE_COOKIE_NAME"],
    }
    for header in cookies:
        assert cookie_problems(header, production=False) == []
    # The same check fails on an unconfigured Flask app (no SameSite, no Secure, no prefix).
    plain = _plain_flask_cookie()
    assert cookie_problems(plain, production=False)
    assert len(cookie_problems(plain, production=True)) >= 3


@pytest.mark.db
def test_production_cookies_are_secure_with_the_host_prefix(app_factory):
    app = app_factory(
        ENV="production",
        SECRET_KEY=secrets.token_urlsafe(36)[:48],
        BASE_URL="https://models.example",
    )
    make_user(app)
    cookies = _login_cookies(app, base_url="https://localhost")
    names = {SimpleCookie(c).popitem()[0] for c in cookies}
    assert names == {
        "__Host-modelport_session",
        "__Host-modelport_remember",
        "__Host-modelport_device",
    }
    for header in cookies:
        assert cookie_problems(header, production=True) == []
