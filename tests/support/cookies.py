"""Cookies of a test client, and fresh clients that replay them elsewhere."""

from __future__ import annotations

from flask import Flask
from flask.testing import FlaskClient


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
