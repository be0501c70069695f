"""Who is calling: a session cookie, a Bearer token, or HTTP Basic (scripts, tokens API).

Flask-Login's ``current_user`` is filled from here for every request. ``g.auth_method`` says
how (``session``, ``token``, ``basic``) and ``g.api_token`` holds the token, so that scope
checks and CSRF know what they are dealing with; ``current_caller()`` hands the three to
the domain services as one ``Caller``.

A token is checked against the scope of the endpoint it is sent to at the moment it is
turned into an identity, so no view can act with more than the token carries. Endpoints
declare the scope a token needs with ``token_scope`` (or ``scope_required``); any other
endpoint needs ``full``: a route added without a thought for tokens fails closed.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Flask, current_app, g, request
from flask_login import current_user
from werkzeug.exceptions import HTTPException

from modelport.auth import accounts, devices, sessions, throttle, token_cache
from modelport.auth.caller import ANONYMOUS, Caller, Credential
from modelport.auth.tokens import authenticate_token
from modelport.errors import ApiError
from modelport.extensions import csrf, login_manager
from modelport.models import User
from modelport.models.tokens import Scope
from modelport.ops import request_log, scrape
from modelport.ops.logging import security_event

# Query-string names under which clients commonly put tokens; refusing them keeps tokens out
# of server logs, browser history and Referer headers.
TOKEN_QUERY_PARAMS = ("token", "access_token", "auth_token", "api_key", "apikey", "api_token")

# Paths where HTTP Basic (email:password) is accepted: managing tokens from a script.
BASIC_AUTH_PATHS = ("/api/v1/tokens", "/api/v1/me")
BASIC_AUTH_PREFIXES = ("/api/v1/tokens/",)


def basic_auth_allowed(path: str) -> bool:
    """Whether HTTP Basic may authenticate a request to ``path`` (exact paths, not prefixes:
    ``/api/v1/me`` must not open ``/api/v1/metrics``)."""
    return path in BASIC_AUTH_PATHS or path.startswith(BASIC_AUTH_PREFIXES)


class AuthError(HTTPException):
    """401 with a reason, rendered by the API error handler."""

    code = 401
    during_identity = True

    def __init__(self, message: str, error_code: str = "unauthorized") -> None:
        super().__init__(message)
        self.error_code = error_code


class ScopeError(HTTPException):
    """403: the token does not carry the scope this endpoint needs."""

    code = 403
    error_code = "forbidden"
    # Raised while the caller is being identified: errors.py then answers as anonymous.
    during_identity = True


def token_scope(scope: str) -> Callable:
    """Mark a view as open to tokens carrying ``scope`` (unmarked views need ``full``)."""

    def mark(view: Callable) -> Callable:
        view.token_scope = scope  # type: ignore[attr-defined]
        return view

    return mark


def endpoint_scope() -> str:
    """The scope a token needs for this request's endpoint."""
    view = current_app.view_functions.get(request.endpoint or "")
    return getattr(view, "token_scope", Scope.FULL.value)


def _check_scope(token: Any, user_id: int) -> None:
    scope = endpoint_scope()
    if not token.allows(scope):
        security_event("scope_denied", user_id=user_id, scope=scope)
        raise ScopeError(f"This token lacks the '{scope}' scope.")


def _bearer(header: str) -> Any:
    plaintext = header[7:].strip()
    cacheable = request.endpoint in token_cache.CACHED_ENDPOINTS
    if cacheable and (remembered := token_cache.recall(plaintext)) is not None:
        token, user = remembered
        _check_scope(token, user.id)
        g.auth_method = "token"
        g.api_token = token
        return user
    token = authenticate_token(plaintext)
    if token is None:
        security_event("token_rejected")
        raise AuthError("The API token is invalid, expired or revoked.", "invalid_token")
    _check_scope(token, token.user_id)
    if cacheable:
        token_cache.remember(plaintext, token)
    g.auth_method = "token"
    g.api_token = token
    return token.user


def _basic(header: str) -> User | None:
    if not basic_auth_allowed(request.path):
        raise AuthError(
            "HTTP Basic (e-mail and password) is only accepted on /api/v1/tokens and "
            "/api/v1/me; send Authorization: Bearer <token>.",
            "basic_not_allowed",
        )
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
        email, password = decoded.split(":", 1)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise AuthError("Malformed Basic credentials.") from None
    try:
        user = accounts.authenticate(email, password)
    except throttle.Throttled as exc:  # accounts.authenticate has logged the event
        error = AuthError("Too many failed sign-ins. Try again later.", "rate_limited")
        error.code = 429
        error.retry_after = exc.retry_after
        raise error from None
    except (accounts.LoginFailed, accounts.NotConfirmed):
        raise AuthError("Wrong e-mail or password.", "invalid_credentials") from None
    g.auth_method = "basic"
    return user


@login_manager.request_loader
def load_user_from_request(_request: Any) -> User | None:
    """Resolve the caller once per request (Flask-Login calls this lazily)."""
    user = _caller()
    if user is not None:
        request.environ[request_log.USER_ID] = user.id  # the request's log line names it
    return user


def _caller() -> User | None:
    if request.endpoint == scrape.ENDPOINT:
        return None  # a scrape token is not an account's: /metrics checks it itself
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return _bearer(header)
    if header[:6].lower() == "basic ":
        return _basic(header)
    if header:
        raise AuthError("Unsupported Authorization scheme; use Bearer.")
    user = sessions.user_from_cookies()
    if user is not None:
        g.auth_method = "session"
    return user


def refuse_tokens_in_url() -> None:
    """Tokens belong in the Authorization header, never in the URL."""
    if request.query_string and any(name in request.args for name in TOKEN_QUERY_PARAMS):
        raise ApiError(
            400,
            "credentials_in_url",
            "Credentials in the URL are refused; send Authorization: Bearer <token>.",
        )


def protect_cookie_requests() -> None:
    """CSRF on every state-changing request that a cookie could authenticate.

    Requests carrying an Authorization header cannot be forged by another site (a browser
    never adds that header by itself), and /v2 is the inference protocol for programs.
    """
    if request.method in sessions.SAFE_METHODS:
        return
    if (
        request.headers.get("Authorization")
        or request.path.startswith("/v2/")
        or request.path == "/v2"
    ):
        return
    if request.path.startswith("/api/") and not _carries_cookies():
        # An API call with no cookie at all cannot ride on anyone's sign-in (anonymous
        # predictions on public models); pages keep CSRF even then (login CSRF).
        return
    csrf.protect()


def _carries_cookies() -> bool:
    config = current_app.config
    return bool(
        request.cookies.get(config["SESSION_COOKIE_NAME"])
        or request.cookies.get(config["MODELPORT_REMEMBER_COOKIE"])
    )


def current_caller() -> Caller:
    """The caller of this request, for the domain services."""
    if not current_user.is_authenticated:
        return ANONYMOUS
    return Caller(
        user_id=current_user.id,
        role=current_user.role,
        credential=Credential(g.get("auth_method", Credential.SESSION.value)),
        token=g.get("api_token"),
    )


def scope_required(scope: str) -> Callable:
    """A view for signed-in callers whose token (if any) carries ``scope``; the token's scope
    is checked when it is read (``_bearer``)."""

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if not current_user.is_authenticated:
                raise AuthError("Sign in or send Authorization: Bearer <token>.")
            return view(*args, **kwargs)

        return token_scope(scope)(wrapped)

    return decorator


full_scope_required = scope_required(Scope.FULL.value)


def register_identity(app: Flask) -> None:
    """Wire the checks above into every request."""
    login_manager.session_protection = None  # sessions are checked on the server instead
    login_manager.login_view = "auth.login"
    app.session_interface = sessions.SiteSessionInterface()
    app.before_request(refuse_tokens_in_url)
    app.before_request(protect_cookie_requests)
    app.after_request(sessions.apply_remember_cookie)
    app.after_request(devices.apply_device_cookie)
