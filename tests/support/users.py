"""Accounts: made directly through the service, or through the pages as a visitor would."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from modelport.extensions import db
from tests.support.html import csrf_from, csrf_token

PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "tangerine velvet harbor sails"


def make_user(
    app: Flask,
    email: str = "ann@example.com",
    password: str = PASSWORD,
    *,
    name: str = "Ann",
    role: str = "user",
) -> int:
    """Create a confirmed account directly through the service; return its id."""
    from modelport.auth import accounts
    from modelport.models import Role

    with app.app_context():
        return accounts.create_user(email, name, password, role=Role(role)).id


def user_row(app: Flask, email: str) -> dict[str, Any] | None:
    """The user's row as stored now (read with Core, past any ORM cache)."""
    from modelport.models import User

    with app.app_context(), db.engine.connect() as connection:
        row = connection.execute(
            sa.select(User.__table__).where(User.__table__.c.email == email)
        ).first()
        return dict(row._mapping) if row else None


def login(
    client: FlaskClient,
    email: str = "ann@example.com",
    password: str = PASSWORD,
    *,
    remember: bool = False,
) -> Any:
    data = {"email": email, "password": password, "csrf_token": csrf_token(client)}
    if remember:
        data["remember"] = "y"
    return client.post("/auth/login", data=data)


def is_signed_in(client: FlaskClient) -> bool:
    """Whether this client is signed in, judged by the account page (no redirect)."""
    response = client.get("/account")
    if response.status_code == 200:
        return True
    assert response.status_code == 302
    assert "/auth/login" in response.headers["Location"]
    return False


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


def reset_with(client: FlaskClient, path: str, new: str, new2: str | None = None) -> TestResponse:
    """Open the reset link's page and set a new password there."""
    page = client.get(path)
    assert page.status_code == 200, page.get_data(as_text=True)
    return client.post(
        path,
        data={
            "password": new,
            "password2": new if new2 is None else new2,
            "csrf_token": csrf_from(page.get_data(as_text=True)),
        },
    )
