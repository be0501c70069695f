"""``/api/v1``: the signed-in caller and their API tokens."""

from __future__ import annotations

from typing import Any

from flask import abort, g
from flask_login import current_user
from flask_smorest import Blueprint

from modelport.api.schemas import (
    PageQuerySchema,
    TokenCreatedSchema,
    TokenCreateSchema,
    TokenPageSchema,
    UserSchema,
)
from modelport.auth import sessions
from modelport.auth.identity import AuthError, full_scope_required, scope_required
from modelport.auth.tokens import TokenError, create_token, revoke_token, user_tokens
from modelport.errors import ApiError
from modelport.models.tokens import Scope

blp = Blueprint("api_v1", __name__, url_prefix="/api/v1", description="Accounts and tokens")

SECURITY = [{"bearer": []}, {"session": []}]


@blp.get("/me")
@blp.response(200, UserSchema)
@blp.doc(security=[{"bearer": []}, {"basic": []}, {"session": []}])
@scope_required(Scope.PREDICT.value)
def me() -> Any:
    """The signed-in user."""
    return current_user


@blp.get("/tokens")
@blp.arguments(PageQuerySchema, location="query")
@blp.response(200, TokenPageSchema)
@blp.doc(security=[{"bearer": []}, {"basic": []}, {"session": []}])
@full_scope_required
def list_tokens(query: dict[str, int]) -> dict[str, Any]:
    """The caller's tokens (the secret itself is never shown again)."""
    items = user_tokens(current_user)
    start = (query["page"] - 1) * query["page_size"]
    return {
        "items": items[start : start + query["page_size"]],
        "page": query["page"],
        "page_size": query["page_size"],
        "total": len(items),
    }


@blp.post("/tokens")
@blp.arguments(TokenCreateSchema)
@blp.response(201, TokenCreatedSchema)
@blp.doc(security=[{"bearer": []}, {"basic": []}, {"session": []}])
@full_scope_required
def create(body: dict[str, Any]) -> Any:
    """Create a token. Its value is in this response only."""
    if g.get("auth_method") == "session" and not sessions.is_fresh():
        raise AuthError(
            "Confirm your password first (this session was restored by remember-me).",
            "reauthentication_required",
        )
    try:
        token, plaintext = create_token(
            current_user, body["name"], scopes=body["scopes"], expires_at=body["expires_at"]
        )
    except TokenError as exc:
        raise ApiError(
            422,
            "invalid_input",
            str(exc),
            [{"row": None, "field": exc.field, "code": exc.code, "message": str(exc)}],
        ) from None
    token.plaintext = plaintext  # carried to the response only; never stored
    return token


@blp.delete("/tokens/<int:token_id>")
@blp.response(204)
@blp.doc(security=[{"bearer": []}, {"basic": []}, {"session": []}])
@full_scope_required
def delete(token_id: int) -> None:
    """Revoke one of the caller's tokens."""
    if not revoke_token(current_user, token_id):
        abort(404, description="No such token.")
