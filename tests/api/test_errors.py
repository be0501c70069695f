"""Every error a client can cause on /api is a clear 4xx in the body docs/api.md describes, never a 500.

Checklist 32 (hostile JSON), 33 (body size), 35 (generic errors) and 10 (throttling by HTTP
Basic), for the API surface. Each bad request leaves the database unchanged.
"""

from __future__ import annotations

import base64
import io
import json

import pytest

from tests.support.databases import table_counts
from tests.support.http import assert_api_error, basic, bearer
from tests.support.tokens import issue_token
from tests.support.users import make_user

# Bodies that are not acceptable JSON, each with words its error message must contain.
MALFORMED_JSON = [
    (b"{bad", "not valid JSON"),
    (b'{"name": "t"', "not valid JSON"),
    (b"\xff\xfe{}", "UTF-8"),
    (b'{"name": "t", "x": NaN}', "NaN"),
    (b'{"name": Infinity}', "Infinity"),
    (b'{"name": -Infinity}', "Infinity"),
    (b'{"name": "a", "name": "b"}', "twice"),
    (b"[" * 50_000 + b"]" * 50_000, "nested"),
    (b'{"a":' * 20_000 + b"1" + b"}" * 20_000, "nested"),
    # Python refuses integers of more than 4,300 digits with a ValueError of its own.
    (b'{"name": "t", "n": ' + b"1" * 4401 + b"}", "digits"),
    (b'{"name": -' + b"9" * 10_000 + b"}", "digits"),
]


@pytest.fixture
def caller(app):
    """A user with a full-scope token: (user id, Authorization header)."""
    user_id = make_user(app)
    return user_id, bearer(issue_token(app, user_id, ["full"]))


@pytest.mark.db
def test_malformed_json_is_400_with_the_reason(app, client, caller):
    _, auth = caller
    before = table_counts(app)
    for body, words in MALFORMED_JSON:
        response = client.post(
            "/api/v1/tokens", data=body, headers={**auth, "Content-Type": "application/json"}
        )
        error = assert_api_error(response, 400, "invalid_json")
        assert words in error["message"], (body[:30], error)
    assert table_counts(app) == before


@pytest.mark.db
def test_json_that_is_not_an_object_is_422(app, client, caller):
    _, auth = caller
    before = table_counts(app)
    for body in ("[1, 2]", "[]", '"name"', "3", "null", "true", '[{"name": "t"}]'):
        response = client.post(
            "/api/v1/tokens", data=body, headers={**auth, "Content-Type": "application/json"}
        )
        error = assert_api_error(response, 422, "invalid_type")
        assert "JSON object" in error["message"]
    assert table_counts(app) == before


@pytest.mark.db
def test_a_body_without_the_json_content_type_is_400(app, client, caller):
    _, auth = caller
    before = table_counts(app)
    body = json.dumps({"name": "t"})
    for content_type in (None, "text/plain", "application/x-www-form-urlencoded", "text/csv"):
        headers = dict(auth)
        if content_type:
            headers["Content-Type"] = content_type
        response = client.post("/api/v1/tokens", data=body, headers=headers)
        error = assert_api_error(response, 400, "invalid_content_type")
        assert "application/json" in error["message"]
    # A JSON media type with parameters or a +json suffix is JSON.
    response = client.post(
        "/api/v1/tokens",
        data=body,
        headers={**auth, "Content-Type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 201
    assert table_counts(app)["api_tokens"] == before["api_tokens"] + 1


@pytest.mark.db
def test_schema_errors_are_422_with_one_detail_per_problem(app, client, caller):
    _, auth = caller
    before = table_counts(app)
    cases = [
        ({}, "name", "required"),
        ({"name": "t", "role": "admin"}, "role", "unknown_field"),
        ({"name": "t", "user_id": 1}, "user_id", "unknown_field"),
        ({"name": 5}, "name", "invalid"),
        ({"name": ""}, "name", "invalid"),
        ({"name": "x" * 101}, "name", "invalid"),
        ({"name": "t", "scopes": "full"}, "scopes", "invalid"),
        ({"name": "t", "scopes": ["root"]}, "scopes.0", "invalid"),
        ({"name": "t", "expires_at": "tomorrow"}, "expires_at", "invalid"),
        ({"name": "t", "expires_at": "2020-01-01T00:00:00Z"}, "expires_at", "invalid_expiry"),
        ({"name": "t", "expires_at": "2099-01-01T00:00:00"}, "expires_at", "invalid"),
        ({"name": None}, "name", "null"),
        # PostgreSQL cannot store NUL and no driver can encode a lone surrogate.
        ({"name": "a\x00b"}, "name", "invalid"),
        ({"name": "\ud800"}, "name", "invalid"),
        ({"name": "tab\there"}, "name", "invalid"),
    ]
    for body, field, code in cases:
        response = client.post("/api/v1/tokens", json=body, headers=auth)
        error = assert_api_error(response, 422)
        assert {"field": field, "code": code} in [
            {"field": d["field"], "code": d["code"]} for d in error["details"]
        ], (body, error)
        assert all(d["message"] for d in error["details"])
    # Two problems at once are two details.
    response = client.post("/api/v1/tokens", json={"role": "admin"}, headers=auth)
    fields = {d["field"] for d in assert_api_error(response, 422)["details"]}
    assert fields == {"name", "role"}
    # Query strings are validated the same way.
    for query in ("page=0", "page=abc", "page_size=501", "page_size=-1"):
        response = client.get(f"/api/v1/tokens?{query}", headers=auth)
        detail = assert_api_error(response, 422, "invalid_input")["details"][0]
        assert detail["field"] == query.split("=")[0]
    assert table_counts(app) == before


@pytest.mark.db
def test_401_for_missing_bad_or_malformed_credentials(app, client):
    make_user(app)
    bad_basic = [
        "Basic !!!not-base64!!!",
        "Basic " + base64.b64encode(b"no-colon-here").decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(),
        "Basic ",
    ]
    cases = [
        ({}, "unauthorized", "Bearer"),
        (bearer("mp_0000_not-a-real-token"), "invalid_token", "invalid"),
        (bearer("garbage"), "invalid_token", "invalid"),
        ({"Authorization": "Digest username=ann"}, "unauthorized", "Bearer"),
        ({"Authorization": "Bearer"}, "unauthorized", "Bearer"),
        *[({"Authorization": header}, "unauthorized", "Malformed") for header in bad_basic],
        (basic(password="wrong password, surely"), "invalid_credentials", "Wrong"),
        (basic(email="nobody@example.com"), "invalid_credentials", "Wrong"),
    ]
    for path in ("/api/v1/me", "/api/v1/tokens"):
        for headers, code, words in cases:
            response = client.get(path, headers=headers)
            error = assert_api_error(response, 401, code)
            assert words in error["message"], (headers, error)
            assert response.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.db
def test_404_for_unknown_api_paths_and_ids(app, client, caller):
    _, auth = caller
    for path in ("/api", "/api/", "/api/v1", "/api/v1/nope", "/api/v9/me", "/api/v1/me/x"):
        error = assert_api_error(client.get(path, headers=auth), 404, "not_found")
        assert path in error["message"]
    error = assert_api_error(client.delete("/api/v1/tokens/999999", headers=auth), 404)
    assert "token" in error["message"].lower()
    # A non-integer id does not match the route at all.
    assert_api_error(client.delete("/api/v1/tokens/abc", headers=auth), 404)


@pytest.mark.db
def test_405_names_the_allowed_methods(app, client, caller):
    _, auth = caller
    for method, path, allowed in [
        ("POST", "/api/v1/me", {"GET"}),
        ("DELETE", "/api/v1/me", {"GET"}),
        ("PUT", "/api/v1/tokens", {"GET", "POST"}),
        ("GET", "/api/v1/tokens/1", {"DELETE"}),
        ("PATCH", "/api/v1/tokens/1", {"DELETE"}),
    ]:
        response = client.open(path, method=method, headers=auth)
        error = assert_api_error(response, 405, "method_not_allowed")
        assert method in error["message"]
        assert all(m in error["message"] for m in allowed)
        header = {m.strip() for m in response.headers["Allow"].split(",")}
        assert allowed <= header and method not in header


@pytest.mark.db
def test_413_for_a_body_over_max_content_length(app_factory):
    app = app_factory(MAX_CONTENT_LENGTH=1024)
    client = app.test_client()
    user_id = make_user(app)
    auth = bearer(issue_token(app, user_id, ["full"]))
    before = table_counts(app)
    big = json.dumps({"name": "t", "pad": "x" * 2000})
    for headers in (auth, basic()):
        response = client.post(
            "/api/v1/tokens", data=big, headers={**headers, "Content-Type": "application/json"}
        )
        error = assert_api_error(response, 413, "payload_too_large")
        assert "too large" in error["message"]
    # Just under the limit is read (and refused for its unknown field, not its size).
    small = json.dumps({"name": "t", "pad": "x" * 900})
    response = client.post(
        "/api/v1/tokens", data=small, headers={**auth, "Content-Type": "application/json"}
    )
    assert_api_error(response, 422, "invalid_input")
    assert table_counts(app) == before


def _chunked(client, path, body: bytes, headers: dict[str, str]):
    """POST ``body`` without a Content-Length, as a server passes on a chunked request
    (gunicorn sets ``wsgi.input_terminated``: it ends the body itself)."""
    return client.post(
        path,
        input_stream=io.BytesIO(body),
        headers={**headers, "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )


@pytest.mark.db
def test_a_chunked_body_over_the_limit_is_413_like_one_with_a_length(app_factory):
    app = app_factory(MAX_CONTENT_LENGTH=1024)
    client = app.test_client()
    user_id = make_user(app)
    auth = {**bearer(issue_token(app, user_id, ["full"])), "Content-Type": "application/json"}
    before = table_counts(app)
    big = json.dumps({"name": "t", "pad": "x" * 2000}).encode()
    response = _chunked(client, "/api/v1/tokens", big, auth)
    assert response.request.content_length is None
    error = assert_api_error(response, 413, "payload_too_large")
    assert "too large" in error["message"]
    assert table_counts(app) == before
    # At the limit exactly, and under it, the body is read whole.
    exact = json.dumps({"name": "t" * 100, "pad": ""}).encode()
    exact = exact[:-1] + b" " * (1024 - len(exact)) + b"}"
    assert len(exact) == 1024
    assert_api_error(_chunked(client, "/api/v1/tokens", exact, auth), 422, "invalid_input")
    created = _chunked(client, "/api/v1/tokens", b'{"name": "chunked"}', auth)
    assert created.status_code == 201, created.get_data(as_text=True)


@pytest.mark.db
def test_basic_auth_failures_over_the_account_limit_get_429(app_factory):
    app = app_factory(LOGIN_LIMIT_ACCOUNT="3 per hour")
    client = app.test_client()
    user_id = make_user(app)
    token = issue_token(app, user_id)
    wrong = basic(password="not the password at all")
    for _ in range(3):
        assert_api_error(client.get("/api/v1/me", headers=wrong), 401, "invalid_credentials")
    response = client.get("/api/v1/me", headers=wrong)
    error = assert_api_error(response, 429, "rate_limited")
    assert "Too many" in error["message"]
    assert int(response.headers["Retry-After"]) > 0
    # The account stays throttled for Basic, even with the right password ...
    assert_api_error(client.get("/api/v1/me", headers=basic()), 429, "rate_limited")
    assert_api_error(client.post("/api/v1/tokens", json={"name": "t"}, headers=basic()), 429)
    # ... while its existing tokens keep working: throttling is no lockout of the owner.
    assert client.get("/api/v1/me", headers=bearer(token)).status_code == 200


@pytest.mark.db
def test_basic_is_refused_outside_the_token_endpoints(app_factory):
    from modelport.auth.web.identity import scope_required

    app = app_factory()
    # Stand-ins for later API endpoints (models, predictions): protected like them.
    for path in ("/api/v1/probe", "/api/v1/metrics", "/api/v1/tokens-export"):
        app.add_url_rule(
            path,
            endpoint=path,
            view_func=scope_required("predict")(lambda: {"ok": True}),
        )
    client = app.test_client()
    user_id = make_user(app)
    token = issue_token(app, user_id)
    for path in ("/api/v1/probe", "/api/v1/metrics", "/api/v1/tokens-export"):
        error = assert_api_error(client.get(path, headers=basic()), 401, "basic_not_allowed")
        assert "Bearer" in error["message"]
        assert client.get(path, headers=bearer(token)).status_code == 200
    assert client.get("/api/v1/me", headers=basic()).status_code == 200


@pytest.mark.db
def test_csrf_failure_on_the_api_is_a_json_400(app, client):
    from tests.support.users import login

    make_user(app)
    login(client)
    before = table_counts(app)
    for headers in ({}, {"X-CSRFToken": "forged"}):
        response = client.post("/api/v1/tokens", json={"name": "t"}, headers=headers)
        error = assert_api_error(response, 400, "csrf_failed")
        assert "CSRF" in error["message"]
    assert table_counts(app) == before
