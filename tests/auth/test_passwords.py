"""Password policy and storage (checklist 1-7)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from modelport.config import flask_config, read_settings
from tests.support.databases import table_counts
from tests.support.html import field_errors
from tests.support.mail import reset_link
from tests.support.users import (
    NEW_PASSWORD,
    PASSWORD,
    change_password,
    login,
    make_user,
    reset_with,
    signup,
    user_row,
)

PASSWORD_14 = "kq7 zebra lamp"
PASSWORD_15 = "kq7 zebra lamps"
TOO_SHORT = "Use at least 15 characters."
TOO_COMMON = "This password is too common or too easy to guess; choose another."


def test_boundary_passwords_have_the_lengths_they_claim():
    assert len(PASSWORD_14) == 14
    assert len(PASSWORD_15) == 15


@pytest.mark.db
def test_signup_refuses_14_characters_and_accepts_15(app, client):
    before = table_counts(app)
    response = signup(client, "ann@example.com", PASSWORD_14)
    assert response.status_code == 400
    assert TOO_SHORT in field_errors(response)
    assert table_counts(app) == before

    response = signup(client, "ann@example.com", PASSWORD_15)
    assert response.status_code == 302
    assert user_row(app, "ann@example.com") is not None
    assert login(client, "ann@example.com", PASSWORD_15).status_code == 302


@pytest.mark.db
def test_password_change_refuses_14_characters_and_accepts_15(app, client):
    make_user(app)
    login(client)
    stored = user_row(app, "ann@example.com")["password_hash"]
    before = table_counts(app)

    response = change_password(client, PASSWORD, PASSWORD_14)
    assert response.status_code == 400
    assert TOO_SHORT in field_errors(response)
    assert user_row(app, "ann@example.com")["password_hash"] == stored
    assert table_counts(app) == before

    response = change_password(client, PASSWORD, PASSWORD_15)
    assert response.status_code == 302
    assert user_row(app, "ann@example.com")["password_hash"] != stored
    assert login(app.test_client(), "ann@example.com", PASSWORD_15).status_code == 302


@pytest.mark.db
def test_reset_refuses_14_characters_and_accepts_15(app, client, mailbox):
    make_user(app)
    path = reset_link(client, mailbox, "ann@example.com")
    stored = user_row(app, "ann@example.com")["password_hash"]
    before = table_counts(app)

    response = reset_with(client, path, PASSWORD_14)
    assert response.status_code == 400
    assert TOO_SHORT in field_errors(response)
    assert user_row(app, "ann@example.com")["password_hash"] == stored
    assert table_counts(app) == before

    response = reset_with(client, path, PASSWORD_15)
    assert response.status_code == 302
    assert login(app.test_client(), "ann@example.com", PASSWORD_15).status_code == 302


@pytest.mark.db
@pytest.mark.parametrize("length", [64, 128])
def test_long_passphrases_are_accepted_and_work(app, length):
    words = "granite meadow lantern violet orbit thunder pepper saddle " * 3
    passphrase = words[:length]
    assert len(passphrase) == length
    client = app.test_client()
    assert signup(client, "long@example.com", passphrase).status_code == 302
    assert login(client, "long@example.com", passphrase).status_code == 302
    assert client.get("/api/v1/me").json["email"] == "long@example.com"


@pytest.mark.db
@pytest.mark.parametrize(
    "passphrase",
    ["mellowcitruskayakfog", "zebra 🦓 lamps drift ok", "  leading and trailing spaces  "],
    ids=["lowercase-20", "emoji-and-spaces", "edge-spaces"],
)
def test_no_composition_rules_unicode_and_spaces_accepted(app, client, passphrase):
    assert signup(client, "free@example.com", passphrase).status_code == 302
    assert login(client, "free@example.com", passphrase).status_code == 302
    # Spaces are part of the password: the stripped version is a different password.
    if passphrase != passphrase.strip():
        assert login(app.test_client(), "free@example.com", passphrase.strip()).status_code == 400


def test_validators_have_no_composition_rules():
    """Grep the policy and the forms: no rule demands digits, capitals or symbols."""
    auth = Path(__file__).resolve().parents[2] / "modelport" / "auth"
    source = (auth / "passwords.py").read_text() + (auth / "web" / "forms.py").read_text()
    for rule in (r"must contain", r"isdigit", r"isupper", r"islower", r"\[0-9\]", r"\[A-Z\]"):
        assert not re.search(rule, source, re.I), rule


@pytest.mark.db
def test_password_is_verified_exactly_as_sent(app):
    password = "Quartz Falcon Meadow Lantern Violet Orbit Thunder Pepper Saddle Copper Anthem!!!"
    assert len(password.encode()) == 80
    make_user(app, "exact@example.com", password)
    assert login(app.test_client(), "exact@example.com", password[:72]).status_code == 400
    assert login(app.test_client(), "exact@example.com", password.swapcase()).status_code == 400
    assert login(app.test_client(), "exact@example.com", password + " ").status_code == 400
    assert login(app.test_client(), "exact@example.com", password).status_code == 302


@pytest.mark.db
def test_common_password_is_refused_with_a_reason_everywhere(app, client, mailbox):
    before = table_counts(app)
    response = signup(client, "new@example.com", "passwordpassword")
    assert response.status_code == 400
    assert TOO_COMMON in field_errors(response)
    assert table_counts(app) == before

    make_user(app)
    login(client)
    stored = user_row(app, "ann@example.com")["password_hash"]
    response = change_password(client, PASSWORD, "passwordpassword")
    assert response.status_code == 400
    assert TOO_COMMON in field_errors(response)

    path = reset_link(app.test_client(), mailbox, "ann@example.com")
    response = reset_with(app.test_client(), path, "passwordpassword")
    assert response.status_code == 400
    assert TOO_COMMON in field_errors(response)
    assert user_row(app, "ann@example.com")["password_hash"] == stored


@pytest.mark.db
def test_password_built_from_the_users_own_email_is_refused(app, client):
    response = signup(client, "marmaladesky@example.com", "marmaladesky@example.com")
    assert response.status_code == 400
    assert TOO_COMMON in field_errors(response)


@pytest.mark.db
def test_signup_with_mismatched_repeat_is_refused(app, client):
    before = table_counts(app)
    response = signup(client, "ann@example.com", PASSWORD, password2=PASSWORD + "x")
    assert response.status_code == 400
    assert "The passwords do not match." in field_errors(response)
    assert table_counts(app) == before


@pytest.mark.db
@pytest.mark.parametrize("current", [None, "", "not the right password at all"])
def test_change_needs_the_current_password(app, client, current):
    make_user(app)
    login(client)
    stored = user_row(app, "ann@example.com")["password_hash"]
    before = table_counts(app)
    response = change_password(client, current, NEW_PASSWORD)
    assert response.status_code == 400
    expected = "The password is not correct." if current else "This field is required."
    assert expected in field_errors(response)
    assert user_row(app, "ann@example.com")["password_hash"] == stored
    assert table_counts(app) == before
    # The session was not touched: still signed in, old password still the one.
    assert client.get("/account").status_code == 200
    assert login(app.test_client()).status_code == 302


@pytest.mark.db
def test_hashes_are_salted_argon2id(app):
    make_user(app, "one@example.com")
    make_user(app, "two@example.com")
    first = user_row(app, "one@example.com")
    second = user_row(app, "two@example.com")
    assert first["password_hash"].startswith("$argon2id$")
    assert second["password_hash"].startswith("$argon2id$")
    assert first["password_hash"] != second["password_hash"]
    for row in (first, second):
        assert all(PASSWORD not in str(value) for value in row.values())


def test_production_argon2_parameters_meet_owasp(tmp_path):
    settings = read_settings(
        {
            "MODELPORT_ENV": "production",
            "MODELPORT_SECRET_KEY": "k" * 48,
            "MODELPORT_BASE_URL": "https://models.example",
        }
    )
    params = flask_config(settings, tmp_path)["ARGON2_PARAMS"]
    assert params["memory_cost"] >= 19456  # KiB, i.e. 19 MiB
    assert params["time_cost"] >= 2
    assert params["parallelism"] == 1
    development = flask_config(read_settings({"MODELPORT_ENV": "development"}), tmp_path)
    assert development["ARGON2_PARAMS"] == params  # only testing is cheaper
