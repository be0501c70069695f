"""NUL characters are refused, and change nothing (PostgreSQL cannot even compare them).

In query strings and page forms a request hook refuses them before any view runs (400); in a
JSON body the API's schema refuses them as invalid input (422), field by field.
"""

from __future__ import annotations

import pytest

from tests.support.databases import table_counts
from tests.support.html import csrf_token
from tests.support.users import PASSWORD, login, make_user


@pytest.mark.db
@pytest.mark.parametrize(
    ("path", "fields"),
    [
        ("/auth/signup", {"email": "nul@example.com", "name": "a\x00b"}),
        ("/auth/login", {"email": "ann\x00@example.com"}),
        ("/auth/reset", {"email": "ann\x00@example.com"}),
    ],
)
def test_nul_in_a_form_field_is_a_400_and_changes_nothing(app, client, path, fields):
    make_user(app)
    before = table_counts(app)
    data = {"password": PASSWORD, "password2": PASSWORD, "csrf_token": csrf_token(client, path)}
    response = client.post(path, data={**data, **fields})
    assert response.status_code == 400
    assert "NUL" in response.get_data(as_text=True)
    assert table_counts(app) == before


@pytest.mark.db
def test_nul_in_the_query_string_is_a_400(app, client):
    make_user(app, role="admin")
    login(client)
    response = client.get("/admin/users?q=ann%00")
    assert response.status_code == 400
    assert "NUL" in response.get_data(as_text=True)
    assert client.get("/admin/users?q=ann").status_code == 200


@pytest.mark.db
def test_nul_in_a_json_token_name_is_a_422_naming_the_field(app, client):
    make_user(app)
    login(client)
    before = table_counts(app)
    response = client.post(
        "/api/v1/tokens",
        json={"name": "a\x00b"},
        headers={"X-CSRFToken": csrf_token(client, "/account")},
    )
    assert response.status_code == 422
    error = response.json["error"]
    assert error["code"] == "invalid_input"
    assert [detail["field"] for detail in error["details"]] == ["name"]
    assert table_counts(app) == before
