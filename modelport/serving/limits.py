"""Prediction rate limits, one budget per caller whichever way they predict.

The model page, the JSON API and the inference protocol share the two scopes: anonymous
callers are counted per client address (public models only take them), signed-in users
and their tokens per user.
"""

from __future__ import annotations

from flask import current_app
from flask_login import current_user

from modelport.extensions import client_address, limiter


def _setting(name: str) -> str:
    return current_app.config["MODELPORT"][name]


def _signed_in() -> bool:
    return bool(current_user.is_authenticated)


def _anonymous() -> bool:
    return not current_user.is_authenticated


def _user_key() -> str:
    return f"user:{current_user.id}"


anonymous_limit = limiter.shared_limit(
    lambda: _setting("PREDICT_LIMIT_ANONYMOUS"),
    scope="predict-anonymous",
    key_func=client_address,
    exempt_when=_signed_in,
    methods=["POST"],
)
user_limit = limiter.shared_limit(
    lambda: _setting("PREDICT_LIMIT_USER"),
    scope="predict-user",
    key_func=_user_key,
    exempt_when=_anonymous,
    methods=["POST"],
)
