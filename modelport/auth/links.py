"""Signed, expiring, single-use links sent by e-mail (reset, confirmation, e-mail change).

Each link's payload includes a fingerprint of the current password hash and e-mail, so a
link stops working once the password or the address changes: used once, it is spent.
"""

from __future__ import annotations

import hashlib
from typing import Any

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from modelport.config import current_settings, signing_keys
from modelport.extensions import db
from modelport.models import User

PURPOSES = ("reset", "confirm", "email")


def _serializer(purpose: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(signing_keys(current_app.config), salt=f"modelport-{purpose}")


def _fingerprint(user: User) -> str:
    state = f"{user.password_hash}|{user.email}|{user.email_confirmed_at}"
    return hashlib.sha256(state.encode()).hexdigest()[:20]


def make_link_token(user: User, purpose: str, **extra: Any) -> str:
    """A signed token for ``purpose`` that ``read_link_token`` will accept once."""
    assert purpose in PURPOSES
    return _serializer(purpose).dumps({"u": user.id, "f": _fingerprint(user), **extra})


def read_link_token(token: str, purpose: str) -> tuple[User, dict[str, Any]] | None:
    """The user and payload of a valid, unexpired, unspent token; otherwise None."""
    max_age = current_settings().reset_token_minutes * 60
    try:
        payload = _serializer(purpose).loads(token, max_age=max_age)
    except (BadSignature, SignatureExpired):
        return None
    if not isinstance(payload, dict) or not isinstance(payload.get("u"), int):
        return None
    user = db.session.get(User, payload["u"])
    if user is None or not user.is_active or payload.get("f") != _fingerprint(user):
        return None
    return user, payload
