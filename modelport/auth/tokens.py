"""API tokens: created and shown once, stored as a SHA-256 hash, scoped, revocable."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from flask_babel import gettext as _
from sqlalchemy import delete, func, select
from sqlalchemy.orm import joinedload

from modelport.config import current_settings
from modelport.extensions import db
from modelport.models import ApiToken, User
from modelport.models.tokens import Scope
from modelport.models.types import utcnow
from modelport.ops.logging import security_event

TOKEN_PREFIX = "mp_"  # noqa: S105 - a public marker, not a secret
# Writing last_used_at on every call would add a write to every prediction.
_LAST_USED_RESOLUTION = timedelta(seconds=60)
MAX_TOKENS_PER_USER = 100


class TokenError(ValueError):
    """A token request that cannot be honoured; the message is safe to show."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.field = field


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_scopes(scopes: list[str] | None) -> str:
    """Validate requested scopes; without any, ``MODELPORT_TOKEN_DEFAULT_SCOPE`` (predict)."""
    if not scopes:
        return current_settings().token_default_scope
    allowed = {s.value for s in Scope}
    unknown = sorted(set(scopes) - allowed)
    if unknown:
        raise TokenError(
            "invalid_scope", _("Unknown scope(s): %(scopes)s.", scopes=", ".join(unknown)), "scopes"
        )
    return " ".join(sorted(set(scopes)))


def create_token(
    user: User, name: str, *, scopes: list[str] | None = None, expires_at: datetime | None = None
) -> tuple[ApiToken, str]:
    """Create a token for ``user``; return the row and the plaintext, which is never stored."""
    name = name.strip()
    if not name or len(name) > 100:
        raise TokenError("invalid_name", _("Give the token a name of 1 to 100 characters."), "name")
    scope_text = parse_scopes(scopes)
    if expires_at is not None:
        if expires_at.tzinfo is None:
            raise TokenError(
                "invalid_expiry", _("The expiry needs a time zone (e.g. Z)."), "expires_at"
            )
        if expires_at <= utcnow():
            raise TokenError("invalid_expiry", _("The expiry must be in the future."), "expires_at")
    count = db.session.scalar(
        select(func.count()).select_from(ApiToken).where(ApiToken.user_id == user.id)
    )
    if count >= MAX_TOKENS_PER_USER:
        raise TokenError(
            "too_many_tokens", _("At most %(n)d tokens per account.", n=MAX_TOKENS_PER_USER)
        )
    # 256 bits from the OS CSPRNG; the prefix lets a user recognise a token in a list.
    prefix = secrets.token_hex(4)
    plaintext = f"{TOKEN_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    token = ApiToken(
        user=user,
        name=name,
        prefix=f"{TOKEN_PREFIX}{prefix}",
        secret_hash=_digest(plaintext),
        scopes=scope_text,
        expires_at=expires_at,
    )
    db.session.add(token)
    db.session.commit()
    security_event("token_created", user_id=user.id, token_id=token.id, scopes=scope_text)
    return token, plaintext


def user_tokens(user: User) -> list[ApiToken]:
    """The user's tokens, newest first."""
    return list(
        db.session.scalars(
            select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id.desc())
        )
    )


def revoke_token(user: User, token_id: int) -> bool:
    """Delete one of ``user``'s tokens; False if it is not theirs (or does not exist)."""
    result = db.session.execute(
        delete(ApiToken).where(ApiToken.id == token_id, ApiToken.user_id == user.id)
    )
    db.session.commit()
    if result.rowcount:
        security_event("token_revoked", user_id=user.id, token_id=token_id)
        return True
    return False


def revoke_all_tokens(user: User) -> None:
    """Delete every token of ``user`` (password change or reset). The caller commits."""
    db.session.execute(delete(ApiToken).where(ApiToken.user_id == user.id))


def authenticate_token(plaintext: str) -> ApiToken | None:
    """The live token matching ``plaintext`` (owner active, not expired), else None."""
    if not plaintext.startswith(TOKEN_PREFIX) or len(plaintext) > 200:
        return None
    token = db.session.execute(
        select(ApiToken)
        .options(joinedload(ApiToken.user))  # one query per API call, not two
        .where(ApiToken.secret_hash == _digest(plaintext))
    ).scalar_one_or_none()
    now = utcnow()
    if token is None or not token.user.is_active:
        return None
    if token.expires_at is not None and token.expires_at <= now:
        return None
    if token.last_used_at is None or now - token.last_used_at >= _LAST_USED_RESOLUTION:
        token.last_used_at = now
        db.session.commit()
    return token
