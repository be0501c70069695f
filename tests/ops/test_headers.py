"""Security headers on every kind of response (checklist 23, 24, 25).

CSP with object-src 'none', base-uri 'none' and frame-ancestors; nosniff; a Referrer-Policy;
Cache-Control: no-store on everything that is not a static asset; HSTS in production only;
no CORS for any origin.
"""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.support.http import bearer
from tests.support.tokens import issue_token
from tests.support.users import login, make_user

STRONG_SECRET = "k" * 48
EVIL = "https://evil.example"


def _csp(response: TestResponse) -> dict[str, str]:
    header = response.headers.get("Content-Security-Policy", "")
    directives = [d.strip() for d in header.split(";") if d.strip()]
    return {d.split()[0]: " ".join(d.split()[1:]) for d in directives}


def assert_security_headers(response: TestResponse, where: str) -> None:
    csp = _csp(response)
    assert csp.get("object-src") == "'none'", where
    assert csp.get("base-uri") == "'none'", where
    assert csp.get("frame-ancestors") == "'none'", where
    assert "'unsafe-inline'" not in csp.get("script-src", "'unsafe-inline'"), where
    assert response.headers.get("X-Content-Type-Options") == "nosniff", where
    assert response.headers.get("Referrer-Policy") in {
        "no-referrer",
        "same-origin",
        "strict-origin",
        "strict-origin-when-cross-origin",
    }, where
    assert "Access-Control-Allow-Origin" not in response.headers, where


def _get_routes_without_arguments(app: Flask) -> list[str]:
    return sorted(
        rule.rule
        for rule in app.url_map.iter_rules()
        if "GET" in rule.methods and not rule.arguments
    )


def _clients(app: Flask) -> dict[str, FlaskClient]:
    make_user(app)
    make_user(app, "root@example.com", name="Root", role="admin")
    user, admin = app.test_client(), app.test_client()
    login(user)
    login(admin, "root@example.com")
    return {"anonymous": app.test_client(), "user": user, "admin": admin}


@pytest.mark.db
def test_every_get_route_carries_the_headers_anonymous_and_signed_in(app):
    routes = _get_routes_without_arguments(app)
    assert {"/", "/account", "/api/v1/me", "/auth/login", "/admin/users"} <= set(routes)
    for role, client in _clients(app).items():
        for path in routes:
            response = client.get(path)
            where = f"{role} GET {path} -> {response.status_code}"
            assert_security_headers(response, where)
            # Pages and API answers may be personal: never stored by a browser or proxy.
            assert response.headers.get("Cache-Control") == "no-store", where
            assert "Strict-Transport-Security" not in response.headers, where


@pytest.mark.db
def test_api_answers_and_errors_carry_the_headers(app):
    user_id = make_user(app)
    auth = bearer(issue_token(app, user_id, ["full"]))
    client = app.test_client()
    cases = [
        client.get("/api/v1/me", headers=auth),
        client.get("/api/v1/tokens", headers=auth),
        client.post("/api/v1/tokens", json={"name": "t"}, headers=auth),
        client.get("/api/v1/me"),  # 401
        client.get("/api/v1/nope", headers=auth),  # 404
        client.put("/api/v1/me", headers=auth),  # 405
        client.post(
            "/api/v1/tokens", data="{", headers={**auth, "Content-Type": "application/json"}
        ),
        client.get("/api/openapi.json"),
        client.get("/nope"),  # HTML 404
    ]
    for response in cases:
        where = f"{response.request.method} {response.request.path} -> {response.status_code}"
        assert_security_headers(response, where)
        assert response.headers["Cache-Control"] == "no-store", where


@pytest.mark.db
def test_a_500_carries_the_headers(app_factory):
    app = app_factory()

    def fail() -> str:
        raise RuntimeError("boom")

    app.add_url_rule("/fail", "fail", fail)
    app.add_url_rule("/api/v1/fail", "api_fail", fail)
    client = app.test_client()
    for path in ("/fail", "/api/v1/fail"):
        response = client.get(path)
        assert response.status_code == 500
        assert_security_headers(response, path)
        assert response.headers["Cache-Control"] == "no-store"


def test_static_assets_may_be_cached(app):
    client = app.test_client()
    for path in ("/static/css/modelport.css", "/api/docs/assets/swagger-ui.css"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert "no-store" not in response.headers.get("Cache-Control", ""), path
        assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.db
def test_hsts_in_production_only(app_factory):
    production = app_factory(
        ENV="production", SECRET_KEY=STRONG_SECRET, BASE_URL="https://models.example"
    )
    client = production.test_client()
    for path in ("/", "/auth/login", "/api/v1/me", "/nope", "/healthz"):
        response = client.get(path, base_url="https://modelport.example")
        hsts = response.headers.get("Strict-Transport-Security", "")
        match = re.search(r"max-age=(\d+)", hsts)
        assert match and int(match.group(1)) >= 31536000, (path, hsts)
        assert_security_headers(response, path)
    for env in ("development", "testing"):
        app = app_factory(ENV=env)
        assert "Strict-Transport-Security" not in app.test_client().get("/").headers


@pytest.mark.db
def test_no_cors_for_another_origin(app):
    user_id = make_user(app)
    auth = bearer(issue_token(app, user_id, ["full"]))
    client = app.test_client()
    login(client)
    requests = [
        client.get("/api/v1/me", headers={"Origin": EVIL}),
        client.get("/api/v1/me", headers={**auth, "Origin": EVIL}),
        client.get("/", headers={"Origin": EVIL}),
        client.options(
            "/api/v1/tokens",
            headers={
                "Origin": EVIL,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        ),
        client.get("/api/v1/me", headers={"Origin": "null"}),
    ]
    for response in requests:
        assert "Access-Control-Allow-Origin" not in response.headers
        assert "Access-Control-Allow-Credentials" not in response.headers
        assert "Access-Control-Allow-Methods" not in response.headers
    # A cross-origin POST with the session cookie still needs the CSRF token.
    response = client.post("/api/v1/tokens", json={"name": "t"}, headers={"Origin": EVIL})
    assert response.status_code == 400


def test_a_views_own_policy_is_kept_and_the_other_headers_enforced(app: Flask) -> None:
    from flask import Response

    @app.get("/own-policy")
    def own_policy() -> Response:
        return Response(
            "x",
            headers={
                "Content-Security-Policy": "default-src 'none'",
                "Cache-Control": "public, max-age=60",
                "X-Frame-Options": "SAMEORIGIN",
                "Access-Control-Allow-Origin": "*",
            },
        )

    response = app.test_client().get("/own-policy")
    assert response.headers["Content-Security-Policy"] == "default-src 'none'"
    assert response.headers.getlist("Cache-Control") == ["no-store"]
    assert response.headers.getlist("X-Frame-Options") == ["DENY"]
    assert "Access-Control-Allow-Origin" not in response.headers
