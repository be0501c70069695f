"""Device cookies: a browser that signed in to an account before is not locked out with it.

OWASP's "Slow Down Online Guessing Attacks with Device Cookies": a successful sign-in
leaves a cookie naming the account and a random nonce, signed with the secret key. A later
sign-in to that account that presents it is throttled by the cookie's own count
(``MODELPORT_LOGIN_LIMIT_DEVICE``) instead of the account's (``modelport.auth.throttle``),
so someone guessing from elsewhere can lock the account for everyone but its owner's
browsers, and cannot spend those browsers' budget. One cookie holds the entries of at most
``MAX_ENTRIES`` accounts, each signed and dated on its own.
"""

from __future__ import annotations

import secrets

from flask import Response, current_app, g, has_request_context, request
from itsdangerous import BadSignature, URLSafeTimedSerializer

from modelport.config import signing_keys
from modelport.models import User

LIFETIME_DAYS = 180
MAX_ENTRIES = 5
# Not in URL-safe base64 nor in itsdangerous's separator, and allowed in a cookie unquoted.
_SEPARATOR = "~"
SALT = "modelport-device"


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(signing_keys(current_app.config), salt=SALT)


def _max_age() -> int:
    return LIFETIME_DAYS * 24 * 3600


def _entries() -> list[tuple[str, int, str]]:
    """(signed entry, user id, nonce) of every valid, unexpired entry this request carries."""
    if not has_request_context():
        return []
    raw = request.cookies.get(current_app.config["DEVICE_COOKIE_NAME"], "")
    serializer = _serializer()
    found = []
    for signed in raw.split(_SEPARATOR)[:MAX_ENTRIES]:
        try:
            payload = serializer.loads(signed, max_age=_max_age())
        except BadSignature:  # also expired ones (SignatureExpired is a BadSignature)
            continue
        if (
            isinstance(payload, dict)
            and isinstance(payload.get("u"), int)
            and isinstance(payload.get("n"), str)
        ):
            found.append((signed, payload["u"], payload["n"]))
    return found


def recognised(user_id: int) -> str | None:
    """The nonce of this browser's device cookie for account ``user_id``, if it holds a
    valid one (signed by us, unexpired, naming that account); otherwise None."""
    for _signed, owner, nonce in _entries():
        if owner == user_id:
            return nonce
    return None


def remember_device(user: User) -> None:
    """After a successful sign-in: give this browser a new device entry for ``user``, first
    among the entries it keeps (the oldest beyond ``MAX_ENTRIES`` are dropped)."""
    entry = _serializer().dumps({"u": user.id, "n": secrets.token_urlsafe(16)})
    others = [signed for signed, owner, _nonce in _entries() if owner != user.id]
    g.device_cookie = _SEPARATOR.join([entry, *others][:MAX_ENTRIES])


def apply_device_cookie(response: Response) -> Response:
    """Set the device cookie decided during the request, with the session cookie's
    attributes (HttpOnly, SameSite=Lax, Path=/, and Secure with ``__Host-`` in production)."""
    value = g.pop("device_cookie", None)
    if value is None:
        return response
    cfg = current_app.config
    response.set_cookie(
        cfg["DEVICE_COOKIE_NAME"],
        value,
        max_age=_max_age(),
        path="/",
        secure=cfg["SESSION_COOKIE_SECURE"],
        httponly=True,
        samesite="Lax",
    )
    return response
