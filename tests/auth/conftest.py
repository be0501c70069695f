"""Helpers for the account tests: reading rows back, cookies, replaying them elsewhere."""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from modelport.extensions import db
from tests.conftest import PASSWORD, csrf_token

NEW_PASSWORD = "tangerine velvet harbor sails"


def user_row(app: Flask, email: str) -> dict[str, Any] | None:
    """The user's row as stored now (read with Core, past any ORM cache)."""
    from modelport.models import User

    with app.app_context(), db.engine.connect() as connection:
        row = connection.execute(
            sa.select(User.__table__).where(User.__table__.c.email == email)
        ).first()
        return dict(row._mapping) if row else None


def rows(app: Flask, table: str) -> list[dict[str, Any]]:
    """Every row of ``table``, as dicts."""
    with app.app_context(), db.engine.connect() as connection:
        t = db.metadata.tables[table]
        return [dict(r._mapping) for r in connection.execute(sa.select(t).order_by(t.c.id))]


def execute(app: Flask, statement: sa.Executable) -> None:
    """Run one statement in its own transaction (to age rows, for example)."""
    with app.app_context(), db.engine.begin() as connection:
        connection.execute(statement)


def cookie(client: FlaskClient, name: str) -> str | None:
    found = client.get_cookie(name)
    return found.value if found else None


def session_cookie(app: Flask, client: FlaskClient) -> str | None:
    return cookie(client, app.config["SESSION_COOKIE_NAME"])


def remember_cookie(app: Flask, client: FlaskClient) -> str | None:
    return cookie(client, app.config["MODELPORT_REMEMBER_COOKIE"])


def client_with(app: Flask, **cookies: str | None) -> FlaskClient:
    """A fresh client holding only the given cookies (name=value; None values are skipped)."""
    fresh = app.test_client()
    for name, value in cookies.items():
        if value is not None:
            fresh.set_cookie(name, value)
    return fresh


def replay_session(app: Flask, value: str | None) -> FlaskClient:
    return client_with(app, **{app.config["SESSION_COOKIE_NAME"]: value})


def replay_remember(app: Flask, value: str | None) -> FlaskClient:
    return client_with(app, **{app.config["MODELPORT_REMEMBER_COOKIE"]: value})


def is_signed_in(client: FlaskClient) -> bool:
    """Whether this client is signed in, judged by the account page (no redirect)."""
    response = client.get("/account")
    if response.status_code == 200:
        return True
    assert response.status_code == 302
    assert "/auth/login" in response.headers["Location"]
    return False


def me_status(app: Flask, token: str) -> int:
    """Status of GET /api/v1/me with a Bearer token, from a client without cookies."""
    return (
        app.test_client().get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    ).status_code


def make_token(app: Flask, email: str = "ann@example.com", *, name: str = "script") -> str:
    """Create an API token through the service; return its plaintext."""
    from modelport.auth.accounts import find_user_by_email
    from modelport.auth.tokens import create_token

    with app.app_context():
        user = find_user_by_email(email)
        assert user is not None
        return create_token(user, name, scopes=["full"])[1]


def signup(
    client: FlaskClient,
    email: str = "ann@example.com",
    password: str = PASSWORD,
    *,
    name: str = "Ann",
    password2: str | None = None,
    **extra: str,
) -> TestResponse:
    data = {
        "email": email,
        "name": name,
        "password": password,
        "password2": password if password2 is None else password2,
        "csrf_token": csrf_token(client, "/auth/signup"),
        **extra,
    }
    return client.post("/auth/signup", data=data)


def change_password(
    client: FlaskClient, current: str | None, new: str, *, new2: str | None = None
) -> TestResponse:
    data = {
        "new_password": new,
        "new_password2": new if new2 is None else new2,
        "csrf_token": csrf_token(client, "/account"),
    }
    if current is not None:
        data["current_password"] = current
    return client.post("/account/password", data=data)


def reset_link(client: FlaskClient, mailbox: Any, email: str) -> str:
    """Ask for a reset e-mail; return the path of the link it carries."""
    before = len(mailbox.links(email))
    response = client.post(
        "/auth/reset", data={"email": email, "csrf_token": csrf_token(client, "/auth/reset")}
    )
    assert response.status_code == 302
    links = mailbox.links(email)
    assert len(links) == before + 1, "no reset e-mail arrived"
    return path_of(links[-1])


def path_of(url: str) -> str:
    return re.sub(r"^https?://[^/]+", "", url)


def reset_with(client: FlaskClient, path: str, new: str, new2: str | None = None) -> TestResponse:
    page = client.get(path)
    assert page.status_code == 200, page.get_data(as_text=True)
    from tests.conftest import csrf_from

    return client.post(
        path,
        data={
            "password": new,
            "password2": new if new2 is None else new2,
            "csrf_token": csrf_from(page.get_data(as_text=True)),
        },
    )


def text(response: TestResponse) -> str:
    return response.get_data(as_text=True)


def field_errors(response: TestResponse) -> list[str]:
    """The messages shown next to form fields."""
    return [
        re.sub(r"<[^>]+>", "", m).strip()
        for m in re.findall(r'<ul class="errors"[^>]*>(.*?)</ul>', text(response), re.S)
    ]
