"""Withdrawal: deleting one's own account after re-entering the password (checklist 16)."""

from __future__ import annotations

import pytest

from tests.support.cookies import remember_cookie, replay_remember
from tests.support.databases import rows, table_counts
from tests.support.html import csrf_token, field_errors
from tests.support.tokens import make_token, me_status
from tests.support.users import PASSWORD, is_signed_in, login, make_user, signup, user_row


def _delete(client, password: str):  # noqa: ANN001, ANN202
    return client.post(
        "/account/delete", data={"password": password, "csrf_token": csrf_token(client, "/account")}
    )


@pytest.mark.db
def test_wrong_password_deletes_nothing(app, client):
    make_user(app)
    login(client)
    token = make_token(app)
    before = table_counts(app)
    response = _delete(client, "not the password at all")
    assert response.status_code == 400
    assert "The password is not correct." in field_errors(response)
    assert table_counts(app) == before
    assert user_row(app, "ann@example.com") is not None
    assert is_signed_in(client)
    assert me_status(app, token) == 200


@pytest.mark.db
def test_deletion_removes_the_user_and_ends_every_way_in(app, client):
    user_id = make_user(app)
    bob_id = make_user(app, "bob@example.com", name="Bob")
    login(client)
    other = app.test_client()
    login(other, remember=True)
    remember_only = replay_remember(app, remember_cookie(app, other))
    token = make_token(app)
    bob = app.test_client()
    login(bob, "bob@example.com")
    bob_token = make_token(app, "bob@example.com")
    assert is_signed_in(other) and is_signed_in(remember_only) and me_status(app, token) == 200

    response = _delete(client, PASSWORD)
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    assert "Your account and its personal data were deleted" in client.get("/").get_data(
        as_text=True
    )

    # The very next request of every client, cookie and token is anonymous or refused.
    assert not is_signed_in(client)
    assert other.get("/api/v1/me").status_code == 401
    assert remember_only.get("/api/v1/me").status_code == 401
    assert me_status(app, token) == 401

    # The rows are gone (ON DELETE CASCADE, foreign keys on for SQLite too).
    assert user_row(app, "ann@example.com") is None
    assert all(r["user_id"] != user_id for r in rows(app, "user_sessions"))
    assert all(r["user_id"] != user_id for r in rows(app, "api_tokens"))
    assert {r["user_id"] for r in rows(app, "user_sessions")} == {bob_id}
    assert {r["user_id"] for r in rows(app, "api_tokens")} == {bob_id}
    # Another member is untouched.
    assert is_signed_in(bob)
    assert me_status(app, bob_token) == 200

    # The address is free again: nothing personal is left behind.
    assert signup(app.test_client(), "ann@example.com", "a brand new passphrase").status_code == 302
    assert user_row(app, "ann@example.com")["id"] != user_id
    assert login(app.test_client(), "ann@example.com", PASSWORD).status_code == 400


@pytest.mark.db
def test_deleting_needs_a_signed_in_user(app, client):
    make_user(app)
    before = table_counts(app)
    response = client.post(
        "/account/delete", data={"password": PASSWORD, "csrf_token": csrf_token(client)}
    )
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/auth/login")
    assert table_counts(app) == before


@pytest.mark.db
def test_every_registered_erasure_runs_in_the_deletions_transaction(app):
    """Features register what withdrawal erases (create_app does, for every process); one
    that fails takes the whole deletion back with it."""
    from modelport.auth import accounts
    from modelport.auth.erasure import register_erasure
    from modelport.extensions import db
    from modelport.models import User

    calls: list[int] = []

    def refusing(user_id: int) -> int:
        calls.append(user_id)
        raise RuntimeError("this feature cannot erase now")

    user_id = make_user(app)
    names = [name for name, _erase in app.extensions["modelport_erasures"]]
    assert names == ["prediction records"]
    register_erasure(app, "refusing", refusing)
    before = table_counts(app)
    with app.test_request_context("/account/delete"):
        with pytest.raises(RuntimeError, match="cannot erase"):
            accounts.delete_account(db.session.get(User, user_id), PASSWORD)
        db.session.rollback()
    assert calls == [user_id]
    assert table_counts(app) == before


def test_an_app_without_registered_erasures_refuses_to_delete_accounts():
    from flask import Flask

    from modelport.auth.erasure import erase_user_data

    bare = Flask(__name__)
    with bare.app_context(), pytest.raises(RuntimeError, match="create_app"):
        erase_user_data(1)
