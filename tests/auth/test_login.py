"""Sign-in and sign-up: no account enumeration, throttling, mass assignment (8-10, 29)."""

from __future__ import annotations

import logging
import re
from http.cookies import SimpleCookie

import pytest
from argon2 import PasswordHasher
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.support.databases import table_counts
from tests.support.html import csrf_token, field_errors, text
from tests.support.mail import reset_link
from tests.support.users import (
    NEW_PASSWORD,
    PASSWORD,
    is_signed_in,
    login,
    make_user,
    reset_with,
    signup,
    user_row,
)


@pytest.fixture
def hash_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = PasswordHasher.hash

    def counting(self, password, *, salt=None):  # noqa: ANN001, ANN202
        calls.append("hash")
        return real(self, password, salt=salt)

    monkeypatch.setattr(PasswordHasher, "hash", counting)
    return calls


def _normalised(response: TestResponse, *secrets: str) -> str:
    """The body with the per-session CSRF token and the typed e-mail blanked out."""
    body = re.sub(r'(name="csrf_token"[^>]*value=")[^"]+', r"\1CSRF", text(response))
    body = re.sub(r'(value=")[^"]+(" name="csrf_token")', r"\1CSRF\2", body)
    for secret in secrets:
        body = body.replace(secret, "EMAIL")
    return body


def _cookie_shape(response: TestResponse) -> list[tuple[str, tuple[str, ...]]]:
    """Names and attributes of every Set-Cookie, without the values."""
    shape = []
    for header in response.headers.getlist("Set-Cookie"):
        parsed = SimpleCookie(header)
        for name, morsel in parsed.items():
            shape.append((name, tuple(sorted(k for k, v in morsel.items() if v))))
    return sorted(shape)


def _attempt(client: FlaskClient, email: str, password: str) -> TestResponse:
    token = csrf_token(client)
    return client.post(
        "/auth/login", data={"email": email, "password": password, "csrf_token": token}
    )


# --- 8: the same answer for an unknown e-mail and a wrong password -------------------------


@pytest.mark.db
def test_unknown_email_and_wrong_password_look_the_same(app, verify_calls, hash_calls):
    make_user(app)
    before = table_counts(app)

    verify_calls.clear()
    hash_calls.clear()
    wrong = _attempt(app.test_client(), "ann@example.com", "not the password at all")
    assert len(verify_calls) == 1
    wrong_hashes = len(hash_calls)

    verify_calls.clear()
    hash_calls.clear()
    unknown = _attempt(app.test_client(), "nobody@example.com", "not the password at all")
    assert len(verify_calls) == 1
    assert len(hash_calls) == wrong_hashes == 0

    assert wrong.status_code == unknown.status_code == 400
    assert "Wrong e-mail or password." in field_errors(wrong)
    assert _normalised(wrong, "ann@example.com") == _normalised(unknown, "nobody@example.com")
    assert _cookie_shape(wrong) == _cookie_shape(unknown)
    assert table_counts(app) == before


@pytest.mark.db
def test_disabled_account_fails_like_a_wrong_password(app, verify_calls):
    from modelport.auth import accounts
    from modelport.extensions import db

    make_user(app)
    with app.app_context():
        user = accounts.find_user_by_email("ann@example.com")
        user.active = False
        db.session.commit()
    verify_calls.clear()
    disabled = _attempt(app.test_client(), "ann@example.com", PASSWORD)
    unknown = _attempt(app.test_client(), "nobody@example.com", PASSWORD)
    assert len(verify_calls) == 2
    assert disabled.status_code == unknown.status_code == 400
    assert _normalised(disabled, "ann@example.com") == _normalised(unknown, "nobody@example.com")


@pytest.mark.db
@pytest.mark.parametrize(
    "data",
    [
        {},
        {"email": "ann@example.com"},
        {"password": PASSWORD},
        {"email": "a" * 300 + "@example.com", "password": PASSWORD},
        {"email": "ann@example.com", "password": "x" * 2000},
    ],
    ids=["empty", "no-password", "no-email", "long-email", "long-password"],
)
def test_malformed_login_is_a_400_with_a_message(app, client, data):
    make_user(app)
    before = table_counts(app)
    response = client.post("/auth/login", data={**data, "csrf_token": csrf_token(client)})
    assert response.status_code == 400
    assert field_errors(response)
    assert table_counts(app) == before
    assert not is_signed_in(client)


# --- 9: sign-up and reset do not reveal accounts -------------------------------------------


@pytest.mark.db
def test_signup_with_a_taken_address_answers_like_a_new_one(app, mailbox, hash_calls):
    make_user(app, "taken@example.com")
    hash_calls.clear()
    taken = signup(app.test_client(), "taken@example.com", "another quite long passphrase")
    taken_hashes = len(hash_calls)
    hash_calls.clear()
    fresh = signup(app.test_client(), "fresh@example.com", "another quite long passphrase")
    assert taken_hashes == len(hash_calls) == 1

    assert taken.status_code == fresh.status_code == 302
    assert taken.headers["Location"] == fresh.headers["Location"]
    assert _cookie_shape(taken) == _cookie_shape(fresh)
    follow_taken = app.test_client()
    follow_fresh = app.test_client()
    for follower, email in ((follow_taken, "taken2@example.com"), (follow_fresh, "new@x.com")):
        signup(follower, email, "another quite long passphrase")
    assert _normalised(follow_taken.get("/auth/login")) == _normalised(
        follow_fresh.get("/auth/login")
    )

    # Only the real owner hears about it; the taken account is unchanged.
    assert len(mailbox.to("taken@example.com")) == 1
    assert mailbox.to("fresh@example.com") == []
    assert user_row(app, "taken@example.com")["name"] == "Ann"
    assert login(app.test_client(), "taken@example.com", PASSWORD).status_code == 302


@pytest.mark.db
def test_reset_request_answers_the_same_for_unknown_and_known(app, mailbox):
    make_user(app)
    before = table_counts(app)
    answers = []
    for email in ("ann@example.com", "nobody@example.com"):
        client = app.test_client()
        response = client.post(
            "/auth/reset",
            data={"email": email, "csrf_token": csrf_token(client, "/auth/reset")},
        )
        answers.append((response.status_code, response.headers["Location"], client))
    assert answers[0][:2] == answers[1][:2] == (302, "/auth/login")
    pages = [client.get("/auth/login") for _status, _location, client in answers]
    assert "If an account uses that address" in text(pages[0])
    assert _normalised(pages[0]) == _normalised(pages[1])
    assert len(mailbox.to("ann@example.com")) == 1
    assert mailbox.to("nobody@example.com") == []
    assert len(mailbox.messages) == 1
    assert table_counts(app) == before


# --- 10: throttling per account and per address --------------------------------------------


def _from(client: FlaskClient, ip: str, email: str, password: str) -> TestResponse:
    token = csrf_token(client)
    return client.post(
        "/auth/login",
        data={"email": email, "password": password, "csrf_token": token},
        environ_base={"REMOTE_ADDR": ip},
    )


@pytest.mark.db
def test_account_is_throttled_across_rotating_addresses(app_factory, mailbox, caplog):
    app = app_factory(LOGIN_LIMIT_ACCOUNT="3 per 15 minutes", LOGIN_LIMIT_IP="50 per 15 minutes")
    user_id = make_user(app)
    client = app.test_client()
    for n in range(3):
        response = _from(client, f"10.0.0.{n + 1}", "ann@example.com", "wrong password guess")
        assert response.status_code == 400
    caplog.set_level(logging.INFO, logger="modelport.security")
    throttled = _from(client, "10.0.0.9", "ann@example.com", "wrong password guess")
    assert throttled.status_code == 429
    assert int(throttled.headers["Retry-After"]) > 0
    assert "Too many failed sign-ins" in text(throttled)
    # Even the right password waits: that is what stops the guessing.
    assert _from(client, "10.0.0.10", "ann@example.com", PASSWORD).status_code == 429
    events = [
        r for r in caplog.records if getattr(r, "fields", {}).get("event") == "login_throttled"
    ]
    assert events
    assert events[0].fields["user_id"] == user_id
    assert events[0].fields["ip"] == "10.0.0.9"

    # Another account is not affected by this account's failures.
    make_user(app, "bob@example.com", name="Bob")
    assert _from(app.test_client(), "10.0.0.11", "bob@example.com", PASSWORD).status_code == 302

    # A password reset clears the account's failures: the owner is back in at once.
    path = reset_link(app.test_client(), mailbox, "ann@example.com")
    assert reset_with(app.test_client(), path, NEW_PASSWORD).status_code == 302
    assert _from(app.test_client(), "10.0.0.12", "ann@example.com", NEW_PASSWORD).status_code == 302


@pytest.mark.db
def test_address_is_throttled_across_accounts(app_factory):
    app = app_factory(LOGIN_LIMIT_ACCOUNT="50 per 15 minutes", LOGIN_LIMIT_IP="3 per 15 minutes")
    make_user(app)
    client = app.test_client()
    for n in range(3):
        response = _from(client, "10.9.9.9", f"user{n}@example.com", "wrong password guess")
        assert response.status_code == 400
    throttled = _from(client, "10.9.9.9", "other@example.com", "wrong password guess")
    assert throttled.status_code == 429
    assert "Retry-After" in throttled.headers
    assert "Too many failed sign-ins" in text(throttled)
    # Another address can still sign in to the real account.
    assert _from(app.test_client(), "10.1.1.1", "ann@example.com", PASSWORD).status_code == 302


@pytest.mark.db
def test_successful_sign_in_clears_the_account_count(app_factory):
    app = app_factory(LOGIN_LIMIT_ACCOUNT="3 per 15 minutes")
    make_user(app)
    client = app.test_client()
    for _round in range(2):
        for n in range(2):
            assert _from(client, f"10.2.0.{n}", "ann@example.com", "bad guess x").status_code == 400
        assert _from(app.test_client(), "10.2.1.1", "ann@example.com", PASSWORD).status_code == 302


@pytest.mark.db
def test_reauthentication_is_throttled_too(app_factory):
    # Signing in gave this browser a device cookie, whose own count then applies.
    app = app_factory(LOGIN_LIMIT_ACCOUNT="3 per 15 minutes", LOGIN_LIMIT_DEVICE="3 per 15 minutes")
    make_user(app)
    client = app.test_client()
    login(client)
    for _ in range(3):
        response = client.post(
            "/account/delete",
            data={"password": "not my password", "csrf_token": csrf_token(client, "/account")},
        )
        assert response.status_code == 400
    response = client.post(
        "/account/delete",
        data={"password": PASSWORD, "csrf_token": csrf_token(client, "/account")},
    )
    assert response.status_code == 400
    assert "Too many attempts. Try again later." in field_errors(response)
    assert user_row(app, "ann@example.com") is not None


# --- 29: no mass assignment ----------------------------------------------------------------


EXTRA_FIELDS = {
    "role": "admin",
    "is_active": "1",
    "active": "1",
    "id": "999",
    "email_verified": "1",
    "email_confirmed_at": "2020-01-01",
    "is_admin": "1",
}


@pytest.mark.db
def test_signup_ignores_role_and_other_privileged_fields(app_factory, mailbox):
    app = app_factory(REQUIRE_EMAIL_CONFIRMATION=True)
    client = app.test_client()
    assert signup(client, "mallory@example.com", PASSWORD, **EXTRA_FIELDS).status_code == 302
    row = user_row(app, "mallory@example.com")
    assert row["role"] == "user"
    assert row["id"] != 999
    assert row["email_confirmed_at"] is None


@pytest.mark.db
def test_account_forms_ignore_role_fields(app, client):
    make_user(app)
    login(client)
    response = client.post(
        "/account/password",
        data={
            "current_password": PASSWORD,
            "new_password": NEW_PASSWORD,
            "new_password2": NEW_PASSWORD,
            "csrf_token": csrf_token(client, "/account"),
            **EXTRA_FIELDS,
        },
    )
    assert response.status_code == 302
    response = client.post(
        "/account/email",
        data={
            "email": "ann2@example.com",
            "password": NEW_PASSWORD,
            "csrf_token": csrf_token(client, "/account"),
            **EXTRA_FIELDS,
        },
    )
    assert response.status_code == 302
    row = user_row(app, "ann@example.com")
    assert row["role"] == "user"
    assert row["active"] in (True, 1)
    assert client.get("/admin/users").status_code == 403
