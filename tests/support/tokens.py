"""API tokens, made through the tokens service, and what the API says of them."""

from __future__ import annotations

from flask import Flask


def issue_token(app: Flask, user_id: int, scopes: list[str] | None = None, name: str = "t") -> str:
    """Create a token through the tokens service; return its plaintext."""
    from modelport.auth.tokens import create_token
    from modelport.extensions import db
    from modelport.models import User

    with app.app_context():
        _token, plaintext = create_token(db.session.get(User, user_id), name, scopes=scopes)
        return plaintext


def make_token(app: Flask, email: str = "ann@example.com", *, name: str = "script") -> str:
    """Create a full-scope API token for the account of ``email``; return its plaintext."""
    from modelport.auth.accounts import find_user_by_email
    from modelport.auth.tokens import create_token

    with app.app_context():
        user = find_user_by_email(email)
        assert user is not None
        return create_token(user, name, scopes=["full"])[1]


def me_status(app: Flask, token: str) -> int:
    """Status of GET /api/v1/me with a Bearer token, from a client without cookies."""
    return (
        app.test_client().get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    ).status_code
