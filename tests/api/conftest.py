"""Helpers for the JSON API tests: credentials in the header forms the API accepts."""

from __future__ import annotations

import base64

from flask import Flask
from werkzeug.test import TestResponse

from tests.conftest import PASSWORD


def basic(email: str = "ann@example.com", password: str = PASSWORD) -> dict[str, str]:
    """An ``Authorization: Basic`` header for e-mail and password."""
    encoded = base64.b64encode(f"{email}:{password}".encode()).decode()
    return {"Authorization": f"Basic {encoded}"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def issue_token(app: Flask, user_id: int, scopes: list[str] | None = None, name: str = "t") -> str:
    """Create a token through the tokens service; return its plaintext."""
    from modelport.auth.tokens import create_token
    from modelport.extensions import db
    from modelport.models import User

    with app.app_context():
        _token, plaintext = create_token(db.session.get(User, user_id), name, scopes=scopes)
        return plaintext


def assert_api_error(response: TestResponse, status: int, code: str | None = None) -> dict:
    """The error body of docs/api.md: {"error": {"code", "message", "details"}} and the status."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"error"}
    error = body["error"]
    assert set(error) == {"code", "message", "details"}
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and len(error["message"]) > 10
    if code is not None:
        assert error["code"] == code, error
    if error["details"] is not None:
        assert isinstance(error["details"], list)
        for item in error["details"]:
            assert set(item) == {"row", "field", "code", "message"}
    return error
