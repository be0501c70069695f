"""``/api/v1/tokens`` and ``/api/v1/me`` by session + CSRF, HTTP Basic and Bearer tokens.

Checklist 21 (CSRF on cookie-authenticated JSON calls), 28 (object-level authorisation of
tokens), 31 (tokens hashed, revocable, never in the URL), and the scopes of issue 6.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from werkzeug.test import TestResponse

from tests.support.databases import table_counts
from tests.support.html import csrf_token
from tests.support.http import assert_api_error, basic, bearer
from tests.support.tokens import issue_token
from tests.support.users import PASSWORD, login, make_user

CREATED_FIELDS = {"id", "name", "token", "prefix", "scopes", "created_at", "expires_at"}


def _created(response: TestResponse) -> dict:
    assert response.status_code == 201, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) >= CREATED_FIELDS
    assert body["token"].startswith(body["prefix"])
    return body


@pytest.mark.db
def test_create_with_session_and_csrf_header(app, client):
    make_user(app)
    login(client)
    response = client.post(
        "/api/v1/tokens",
        json={"name": "laptop", "scopes": ["full"]},
        headers={"X-CSRFToken": csrf_token(client, "/account")},
    )
    body = _created(response)
    assert body["name"] == "laptop" and body["scopes"] == ["full"]
    assert body["expires_at"] is None
    # Shown once, stored only as a hash.
    with app.app_context():
        from modelport.extensions import db

        stored = db.session.execute(sa.text("SELECT * FROM api_tokens")).mappings().one()
        assert body["token"] not in {str(v) for v in stored.values()}
    me = client.get("/api/v1/me", headers=bearer(body["token"]))
    assert me.status_code == 200 and me.get_json()["email"] == "ann@example.com"


@pytest.mark.db
def test_create_with_session_but_no_csrf_header_is_refused(app, client):
    make_user(app)
    login(client)
    before = table_counts(app)
    assert_api_error(client.post("/api/v1/tokens", json={"name": "t"}), 400, "csrf_failed")
    assert table_counts(app) == before


@pytest.mark.db
def test_create_with_basic_needs_no_csrf(app, client):
    make_user(app)
    body = _created(client.post("/api/v1/tokens", json={"name": "script"}, headers=basic()))
    assert body["scopes"] == ["predict"]  # the default scope


@pytest.mark.db
def test_full_token_manages_tokens_and_predict_token_cannot(app, client):
    user_id = make_user(app)
    full = bearer(issue_token(app, user_id, ["full"]))
    predict = bearer(issue_token(app, user_id, ["predict"]))
    created = _created(
        client.post(
            "/api/v1/tokens",
            json={"name": "ci", "scopes": ["predict"], "expires_at": "2099-01-01T00:00:00Z"},
            headers=full,
        )
    )
    assert created["expires_at"].startswith("2099-01-01T00:00:00")
    before = table_counts(app)
    for method, path, body in [
        ("POST", "/api/v1/tokens", {"name": "more"}),
        ("GET", "/api/v1/tokens", None),
        ("DELETE", f"/api/v1/tokens/{created['id']}", None),
    ]:
        response = client.open(path, method=method, json=body, headers=predict)
        error = assert_api_error(response, 403, "forbidden")
        assert "full" in error["message"]
    assert table_counts(app) == before
    # A predict token still says who it is.
    assert client.get("/api/v1/me", headers=predict).status_code == 200


@pytest.mark.db
def test_list_never_shows_the_secret_and_pages(app, client):
    user_id = make_user(app)
    full = bearer(issue_token(app, user_id, ["full"], name="t0"))
    for n in range(1, 5):
        issue_token(app, user_id, name=f"t{n}")
    seen = []
    for page in (1, 2, 3):
        response = client.get(f"/api/v1/tokens?page={page}&page_size=2", headers=full)
        assert response.status_code == 200
        body = response.get_json()
        assert body["total"] == 5 and body["page"] == page and body["page_size"] == 2
        assert "token" not in response.get_data(as_text=True).replace('"tokens"', "")
        for item in body["items"]:
            assert "token" not in item
            assert set(item) == {
                "id",
                "name",
                "prefix",
                "scopes",
                "created_at",
                "expires_at",
                "last_used_at",
            }
        seen += [item["name"] for item in body["items"]]
    assert seen == ["t4", "t3", "t2", "t1", "t0"]  # newest first, each once
    assert client.get("/api/v1/tokens?page=4&page_size=2", headers=full).get_json()["items"] == []
    # The token used for this call shows when it was last used.
    items = client.get("/api/v1/tokens", headers=full).get_json()["items"]
    assert next(i for i in items if i["name"] == "t0")["last_used_at"] is not None


@pytest.mark.db
def test_delete_revokes_at_once(app, client):
    user_id = make_user(app)
    full = bearer(issue_token(app, user_id, ["full"]))
    victim = _created(client.post("/api/v1/tokens", json={"name": "old"}, headers=full))
    assert client.get("/api/v1/me", headers=bearer(victim["token"])).status_code == 200
    response = client.delete(f"/api/v1/tokens/{victim['id']}", headers=full)
    assert response.status_code == 204 and response.get_data() == b""
    assert_api_error(
        client.get("/api/v1/me", headers=bearer(victim["token"])), 401, "invalid_token"
    )
    assert_api_error(client.delete(f"/api/v1/tokens/{victim['id']}", headers=full), 404)
    # A full token may revoke itself; it is refused on the next call.
    own_id = client.get("/api/v1/tokens", headers=full).get_json()["items"][0]["id"]
    assert client.delete(f"/api/v1/tokens/{own_id}", headers=full).status_code == 204
    assert_api_error(client.get("/api/v1/me", headers=full), 401, "invalid_token")


@pytest.mark.db
def test_basic_can_delete_a_token(app, client):
    user_id = make_user(app)
    token = issue_token(app, user_id)
    token_id = client.get("/api/v1/tokens", headers=basic()).get_json()["items"][0]["id"]
    assert client.delete(f"/api/v1/tokens/{token_id}", headers=basic()).status_code == 204
    assert_api_error(client.get("/api/v1/me", headers=bearer(token)), 401)


@pytest.mark.db
def test_a_user_cannot_see_or_delete_another_users_token(app, client):
    ann = make_user(app)
    bob = make_user(app, "bob@example.com", name="Bob")
    ann_full = bearer(issue_token(app, ann, ["full"]))
    bob_token = issue_token(app, bob, ["full"])
    bob_id = client.get("/api/v1/tokens", headers=bearer(bob_token)).get_json()["items"][0]["id"]
    before = table_counts(app)
    error = assert_api_error(client.delete(f"/api/v1/tokens/{bob_id}", headers=ann_full), 404)
    assert "No such token" in error["message"]  # the same answer as for an id that never was
    listed = client.get("/api/v1/tokens", headers=ann_full).get_json()
    assert bob_id not in [item["id"] for item in listed["items"]]
    assert table_counts(app) == before
    assert (
        client.get("/api/v1/me", headers=bearer(bob_token)).get_json()["email"] == "bob@example.com"
    )


@pytest.mark.db
def test_a_token_in_the_url_is_refused_even_when_valid(app, client):
    user_id = make_user(app)
    token = issue_token(app, user_id, ["full"])
    before = table_counts(app)
    for name in ("token", "access_token", "auth_token", "api_key"):
        for path in ("/api/v1/me", "/api/v1/tokens"):
            # With and without the header: the URL alone is reason enough.
            for headers in ({}, bearer(token)):
                response = client.get(f"{path}?{name}={token}", headers=headers)
                error = assert_api_error(response, 400, "credentials_in_url")
                assert "Authorization: Bearer" in error["message"]
                assert token not in response.get_data(as_text=True)
        response = client.post(f"/api/v1/tokens?{name}={token}", json={"name": "x"})
        assert_api_error(response, 400, "credentials_in_url")
    assert table_counts(app) == before
    # A web page says the same, as a page.
    response = client.get(f"/?access_token={token}")
    assert response.status_code == 400 and response.mimetype == "text/html"
    assert "Credentials in the URL" in response.get_data(as_text=True)


@pytest.mark.db
def test_me_by_session_basic_and_bearer(app, client):
    user_id = make_user(app, role="admin")
    token = issue_token(app, user_id)
    login(client)
    answers = [
        client.get("/api/v1/me"),
        app.test_client().get("/api/v1/me", headers=basic()),
        app.test_client().get("/api/v1/me", headers=bearer(token)),
    ]
    for response in answers:
        assert response.status_code == 200
        body = response.get_json()
        assert set(body) == {"id", "email", "name", "role", "created_at"}
        assert body["id"] == user_id and body["role"] == "admin" and body["name"] == "Ann"
        assert datetime.fromisoformat(body["created_at"]).tzinfo is not None
        assert response.headers["Cache-Control"] == "no-store"
    assert PASSWORD not in answers[0].get_data(as_text=True)
    assert "argon2" not in answers[0].get_data(as_text=True)


@pytest.mark.db
def test_an_expired_token_is_refused(app, client):
    from modelport.auth.tokens import authenticate_token
    from modelport.extensions import db
    from modelport.models import ApiToken

    user_id = make_user(app)
    token = issue_token(app, user_id)
    with app.app_context():
        row = db.session.scalars(sa.select(ApiToken)).one()
        row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
        db.session.commit()
        assert authenticate_token(token) is None
    assert_api_error(client.get("/api/v1/me", headers=bearer(token)), 401, "invalid_token")


@pytest.mark.db
def test_a_remembered_session_must_reauthenticate_before_creating_a_token(app, client):
    make_user(app)
    login(client, remember=True)
    # The browser session ends; only the remember cookie is left.
    client.delete_cookie(app.config["SESSION_COOKIE_NAME"])
    assert client.get("/api/v1/me").status_code == 200
    before = table_counts(app)
    response = client.post(
        "/api/v1/tokens",
        json={"name": "t"},
        headers={"X-CSRFToken": csrf_token(client, "/account")},
    )
    error = assert_api_error(response, 401, "reauthentication_required")
    assert "password" in error["message"]
    assert table_counts(app) == before
