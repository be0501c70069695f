"""Bad input anywhere gets a 4xx with a clear message and leaves the database unchanged.

One table of endpoints × bad inputs, sent by a signed-in admin with a valid CSRF token (so
each request passes authorisation and reaches validation). The whole database is compared
row by row before and after, so an UPDATE would be caught as well as an INSERT or DELETE.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from modelport.extensions import db
from tests.support.html import csrf_token
from tests.support.users import PASSWORD, login, make_user

LONG = "x" * 5000
WRONG = "not the password at all, surely"


def snapshot(app: Flask) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in primary-key order."""
    with app.app_context(), db.engine.connect() as connection:
        return {
            table.name: [
                tuple(row)
                for row in connection.execute(sa.select(table).order_by(*table.primary_key.columns))
            ]
            for table in db.metadata.sorted_tables
        }


# (path, form fields, expected status, text the answer must contain)
FORM_CASES = [
    ("/auth/signup", {}, 400, "This field is required"),
    (
        "/auth/signup",
        {"email": "not-an-email", "name": "N", "password": PASSWORD, "password2": PASSWORD},
        400,
        "Invalid email",
    ),
    (
        "/auth/signup",
        {"email": "a@example.com", "name": LONG, "password": PASSWORD, "password2": PASSWORD},
        400,
        "Field cannot be longer",
    ),
    (
        "/auth/signup",
        {"email": "a@example.com", "name": "N", "password": PASSWORD, "password2": "other"},
        400,
        "do not match",
    ),
    (
        "/auth/signup",
        {"email": "a@example.com", "name": "N", "password": "short", "password2": "short"},
        400,
        "at least 15",
    ),
    ("/auth/login", {}, 400, "This field is required"),
    ("/auth/login", {"email": LONG, "password": PASSWORD}, 400, "Field cannot be longer"),
    ("/auth/reauth", {"password": WRONG}, 400, "not correct"),
    ("/auth/reset", {"email": ""}, 400, "This field is required"),
    (
        "/account/password",
        {
            "current_password": WRONG,
            "new_password": PASSWORD + "!",
            "new_password2": PASSWORD + "!",
        },
        400,
        "not correct",
    ),
    (
        "/account/password",
        {"current_password": PASSWORD, "new_password": "short", "new_password2": "short"},
        400,
        "at least 15",
    ),
    ("/account/email", {"email": "nope", "password": PASSWORD}, 400, "Invalid email"),
    ("/account/email", {"email": "new@example.com", "password": WRONG}, 400, "not correct"),
    ("/account/delete", {"password": WRONG}, 400, "not correct"),
    ("/account/delete", {}, 400, "This field is required"),
    ("/account/tokens", {"name": "", "scope": "predict"}, 400, "This field is required"),
    ("/account/tokens", {"name": "t", "scope": "root"}, 400, "Not a valid choice"),
    (
        "/account/tokens",
        {"name": "t", "scope": "predict", "expires_on": "31/31/2020"},
        400,
        "Not a valid date",
    ),
    ("/account/tokens/abc/revoke", {}, 404, "not found"),
    ("/admin/users/{uid}/role", {"role": "superuser"}, 400, "role"),
    ("/admin/users/abc/disable", {}, 404, "not found"),
    ("/language", {"lang": "xx"}, 400, "Unknown language"),
]


@pytest.mark.db
@pytest.mark.parametrize(("path", "fields", "status", "says"), FORM_CASES)
def test_bad_form_input_is_refused_and_changes_nothing(app, client, path, fields, status, says):
    path = path.format(uid=make_user(app, role="admin"))
    if not path.startswith("/auth/signup"):  # signed-in members are sent on from sign-up
        login(client)
    before = snapshot(app)
    token = csrf_token(client, "/auth/signup" if path == "/auth/signup" else "/account")
    response = client.post(path, data={**fields, "csrf_token": token})
    assert response.status_code == status
    assert says.lower() in response.get_data(as_text=True).lower()
    assert snapshot(app) == before


API_CASES = [
    ({"json": {}}, 422, "name"),
    ({"json": {"name": 5}}, 422, "name"),
    ({"json": {"name": "t", "scopes": "predict"}}, 422, "scopes"),
    ({"json": {"name": "t", "scopes": ["root"]}}, 422, "scopes"),
    ({"json": {"name": "t", "expires_at": "yesterday"}}, 422, "expires_at"),
    ({"json": {"name": "t", "role": "admin"}}, 422, "role"),
    ({"json": ["name", "t"]}, 422, None),
    ({"data": "{not json", "content_type": "application/json"}, 400, None),
    ({"data": "name=t", "content_type": "application/x-www-form-urlencoded"}, 400, None),
]


@pytest.mark.db
@pytest.mark.parametrize(("request_kwargs", "status", "field"), API_CASES)
def test_bad_api_input_is_a_json_4xx_and_changes_nothing(
    app, client, request_kwargs, status, field
):
    make_user(app)
    login(client)
    before = snapshot(app)
    response = client.post(
        "/api/v1/tokens",
        headers={"X-CSRFToken": csrf_token(client, "/account")},
        **request_kwargs,
    )
    assert response.status_code == status
    error = response.json["error"]
    assert error["code"] and error["message"]
    if field:
        fields = {detail["field"].split(".")[0] for detail in error["details"]}
        assert field in fields
    assert snapshot(app) == before


@pytest.mark.db
@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer",
        "Bearer ",
        "Bearer mp_nope",
        "Basic",
        "Basic !!!",
        "Basic " + "QQ==",
        "Digest x",
        "x" * 4000,
    ],
)
def test_bad_authorization_headers_are_401_and_change_nothing(app, client, authorization):
    make_user(app)
    before = snapshot(app)
    response = client.post(
        "/api/v1/tokens", json={"name": "t"}, headers={"Authorization": authorization}
    )
    assert response.status_code == 401
    assert response.json["error"]["message"]
    assert snapshot(app) == before


@pytest.mark.db
@pytest.mark.parametrize("path", ["/auth/signup", "/auth/login", "/api/v1/tokens"])
def test_oversized_bodies_are_413_and_change_nothing(app_factory, path):
    app = app_factory(MAX_CONTENT_LENGTH=4096)
    make_user(app)
    client = app.test_client()
    login(client)
    before = snapshot(app)
    response = client.post(
        path,
        data={"name": "x" * 10_000, "csrf_token": csrf_token(client, "/account")},
    )
    assert response.status_code == 413
    assert "too large" in response.get_data(as_text=True)
    assert snapshot(app) == before
