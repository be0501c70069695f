"""Password reset links: single use, short-lived, tamper-proof (checklist 12)."""

from __future__ import annotations

import re
import time
from types import SimpleNamespace

import itsdangerous.timed
import pytest
from werkzeug.test import TestResponse

from tests.support.databases import table_counts
from tests.support.html import csrf_token, field_errors, text
from tests.support.mail import reset_link
from tests.support.users import (
    NEW_PASSWORD,
    PASSWORD,
    change_password,
    login,
    make_user,
    reset_with,
    user_row,
)

INVALID = "This link is invalid or has expired"


def _invalid_page(response: TestResponse, token: str) -> str:
    assert response.status_code == 400
    assert INVALID in text(response)
    body = text(response).replace(token, "TOKEN")
    return re.sub(r'(name="csrf_token" value=")[^"]+', r"\1CSRF", body)


@pytest.mark.db
def test_reset_sets_the_new_password_and_the_link_is_then_spent(app, client, mailbox):
    make_user(app)
    path = reset_link(client, mailbox, "ann@example.com")
    assert "within 60 minutes" in mailbox.to("ann@example.com")[0].get_payload(decode=True).decode()
    response = reset_with(client, path, NEW_PASSWORD)
    assert response.status_code == 302
    assert response.headers["Location"] == "/auth/login"
    assert login(app.test_client(), password=NEW_PASSWORD).status_code == 302
    assert login(app.test_client(), password=PASSWORD).status_code == 400

    stored = user_row(app, "ann@example.com")["password_hash"]
    again = client.get(path)
    assert again.status_code == 400
    assert INVALID in text(again)
    # Posting to the spent link changes nothing either.
    posted = client.post(
        path,
        data={
            "password": "yet another long passphrase",
            "password2": "yet another long passphrase",
            "csrf_token": csrf_token(client, "/auth/reset"),
        },
    )
    assert posted.status_code == 400
    assert user_row(app, "ann@example.com")["password_hash"] == stored


@pytest.mark.db
def test_expired_link_is_invalid(app_factory, mailbox, monkeypatch):
    app = app_factory(RESET_TOKEN_MINUTES=5)
    make_user(app)
    client = app.test_client()
    path = reset_link(client, mailbox, "ann@example.com")
    assert client.get(path).status_code == 200

    real = time.time
    monkeypatch.setattr(itsdangerous.timed, "time", SimpleNamespace(time=lambda: real() + 4 * 60))
    assert client.get(path).status_code == 200
    monkeypatch.setattr(itsdangerous.timed, "time", SimpleNamespace(time=lambda: real() + 6 * 60))
    stored = user_row(app, "ann@example.com")["password_hash"]
    response = client.get(path)
    assert response.status_code == 400
    assert INVALID in text(response)
    monkeypatch.undo()
    assert user_row(app, "ann@example.com")["password_hash"] == stored


@pytest.mark.db
def test_tampered_link_gets_the_same_page_as_an_unknown_one(app, client, mailbox):
    make_user(app)
    path = reset_link(client, mailbox, "ann@example.com")
    token = path.rsplit("/", 1)[1]
    # Change a character inside the signature, not the last one: the last base64 character
    # carries padding bits, so swapping it can decode to the same bytes.
    middle = token[-10]
    tampered = token[:-10] + ("A" if middle != "A" else "B") + token[-9:]
    # A link for an account that does not exist, signed with another key.
    unknown = itsdangerous.URLSafeTimedSerializer("not the key", salt="modelport-reset").dumps(
        {"u": 424242, "f": "0" * 20}
    )
    before = table_counts(app)
    pages = {
        name: _invalid_page(app.test_client().get(f"/auth/reset/{value}"), value)
        for name, value in {"tampered": tampered, "unknown": unknown, "junk": "junk"}.items()
    }
    assert pages["tampered"] == pages["unknown"] == pages["junk"]
    assert table_counts(app) == before
    assert client.get(path).status_code == 200  # the real link still works


@pytest.mark.db
def test_link_is_invalid_once_the_password_changed(app, client, mailbox):
    make_user(app)
    path = reset_link(app.test_client(), mailbox, "ann@example.com")
    login(client)
    assert change_password(client, PASSWORD, NEW_PASSWORD).status_code == 302
    response = app.test_client().get(path)
    assert response.status_code == 400
    assert INVALID in text(response)


@pytest.mark.db
def test_only_the_newest_password_state_counts_for_two_links(app, mailbox):
    """Using one of two outstanding links spends the other as well."""
    make_user(app)
    first = reset_link(app.test_client(), mailbox, "ann@example.com")
    second = reset_link(app.test_client(), mailbox, "ann@example.com")
    assert reset_with(app.test_client(), second, NEW_PASSWORD).status_code == 302
    assert app.test_client().get(first).status_code == 400


@pytest.mark.db
@pytest.mark.parametrize(
    ("password", "password2", "message"),
    [
        ("", "", "This field is required."),
        (NEW_PASSWORD, NEW_PASSWORD + "x", "The passwords do not match."),
        ("short one", "short one", "Use at least 15 characters."),
    ],
    ids=["empty", "mismatch", "short"],
)
def test_bad_new_password_on_the_reset_page(app, client, mailbox, password, password2, message):
    make_user(app)
    path = reset_link(client, mailbox, "ann@example.com")
    stored = user_row(app, "ann@example.com")["password_hash"]
    before = table_counts(app)
    response = reset_with(client, path, password, password2)
    assert response.status_code == 400
    assert message in field_errors(response)
    assert user_row(app, "ann@example.com")["password_hash"] == stored
    assert table_counts(app) == before
    assert client.get(path).status_code == 200  # not spent by a failed attempt


@pytest.mark.db
@pytest.mark.parametrize("email", ["", "x" * 300 + "@example.com"], ids=["empty", "too-long"])
def test_malformed_reset_request_is_a_400(app, client, mailbox, email):
    before = table_counts(app)
    response = client.post(
        "/auth/reset", data={"email": email, "csrf_token": csrf_token(client, "/auth/reset")}
    )
    assert response.status_code == 400
    assert field_errors(response)
    assert table_counts(app) == before
    assert mailbox.messages == []
