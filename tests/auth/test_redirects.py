"""``next`` only ever leads within the site (checklist 26)."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from tests.support.html import csrf_token
from tests.support.http import HOSTILE, assert_same_origin
from tests.support.users import PASSWORD, is_signed_in, make_user


def _login(client, next_in_query: str | None, next_in_form: str | None):  # noqa: ANN001, ANN202
    data = {"email": "ann@example.com", "password": PASSWORD, "csrf_token": csrf_token(client)}
    if next_in_form is not None:
        data["next"] = next_in_form
    url = "/auth/login"
    if next_in_query is not None:
        url += "?next=" + quote(next_in_query, safe="")
    return client.post(url, data=data)


@pytest.mark.db
@pytest.mark.parametrize("where", ["query", "form"])
def test_login_never_redirects_off_site(app, where):
    make_user(app)
    for target in HOSTILE:
        client = app.test_client()
        if where == "query":
            response = _login(client, target, None)
        else:
            response = _login(client, None, target)
        assert response.status_code == 302, target
        assert_same_origin(response.headers["Location"])
        assert response.headers["Location"] == "/account", target
        assert is_signed_in(client)


@pytest.mark.parametrize("target", HOSTILE)
def test_login_page_does_not_carry_a_hostile_next_into_its_form(app, target):
    page = app.test_client().get("/auth/login?next=" + quote(target, safe=""))
    assert page.status_code == 200
    assert '<input type="hidden" name="next" value="/account">' in page.get_data(as_text=True)


@pytest.mark.db
def test_signed_in_visit_to_login_does_not_redirect_off_site(app):
    make_user(app)
    client = app.test_client()
    _login(client, None, None)
    for target in HOSTILE:
        response = client.get("/auth/login?next=" + quote(target, safe=""))
        assert response.status_code == 302, target
        assert_same_origin(response.headers["Location"])


@pytest.mark.db
def test_a_same_site_next_is_honoured(app):
    make_user(app)
    for where in ("query", "form"):
        client = app.test_client()
        args = ("/account/tokens", None) if where == "query" else (None, "/account/tokens")
        response = _login(client, *args)
        assert response.status_code == 302
        assert response.headers["Location"] == "/account/tokens"
    client = app.test_client()
    response = client.get("/account/tokens")
    assert response.headers["Location"].startswith("/auth/login?next=")
    # The login page carries the next on to its form.
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert 'name="next" value="/account/tokens"' in page


@pytest.mark.parametrize("target", HOSTILE)
def test_language_switch_never_redirects_off_site(app, target):
    client = app.test_client()
    response = client.post(
        "/language", data={"lang": "ko", "next": target, "csrf_token": csrf_token(client, "/")}
    )
    assert response.status_code == 302
    assert_same_origin(response.headers["Location"])
    assert response.headers["Location"] == "/"


def test_language_switch_returns_to_a_same_site_page(app):
    client = app.test_client()
    response = client.post(
        "/language",
        data={"lang": "ko", "next": "/auth/signup", "csrf_token": csrf_token(client, "/")},
    )
    assert response.headers["Location"] == "/auth/signup"
    assert 'lang="ko"' in client.get("/auth/signup").get_data(as_text=True)


def test_unknown_language_is_a_400(app):
    client = app.test_client()
    response = client.post(
        "/language", data={"lang": "xx", "next": "/", "csrf_token": csrf_token(client, "/")}
    )
    assert response.status_code == 400
    assert "Unknown language." in response.get_data(as_text=True)
