"""``/api/v1``: the signed-in caller and their API tokens."""

from __future__ import annotations

from typing import Any

from flask import abort, g
from flask_login import current_user

from modelport.api.blueprint import Blueprint
from modelport.api.schemas import (
    PageQuerySchema,
    TokenCreatedSchema,
    TokenCreateSchema,
    TokenPageSchema,
    UserSchema,
)
from modelport.auth import sessions
from modelport.auth.tokens import TokenError, create_token, revoke_token, user_tokens
from modelport.auth.web.identity import AuthError, full_scope_required, scope_required
from modelport.errors import ApiError
from modelport.models.tokens import Scope
from modelport.models.types import MAX_INT_ID

# Authentication is the outermost check (below the route), so that an anonymous caller
# learns nothing about the body it would have had to send.
blp = Blueprint("api_v1", __name__, url_prefix="/api/v1", description="Accounts and tokens")


# HTTP Basic (e-mail:password) is accepted on these endpoints only, for scripts.
SECURITY = [{"bearer": []}, {"basic": []}, {"session": []}]


@blp.get("/me")
@scope_required(Scope.PREDICT.value)
@blp.response(200, UserSchema)
@blp.errors()
@blp.doc(security=SECURITY)
def me() -> Any:
    """The signed-in user."""
    return current_user


@blp.get("/tokens")
@full_scope_required
@blp.arguments(PageQuerySchema, location="query")
@blp.response(200, TokenPageSchema)
@blp.errors(422)
@blp.doc(security=SECURITY)
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
@full_scope_required
@blp.arguments(TokenCreateSchema)
@blp.response(201, TokenCreatedSchema)
@blp.errors(413, 422)
@blp.doc(security=SECURITY)
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


@blp.delete(f"/tokens/<int(max={MAX_INT_ID}):token_id>")
@full_scope_required
@blp.response(204)
@blp.errors(404)
@blp.doc(security=SECURITY)
def delete(token_id: int) -> None:
    """Revoke one of the caller's tokens."""
    if not revoke_token(current_user, token_id):
        abort(404, description="No such token.")
