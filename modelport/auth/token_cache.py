"""A short-lived, per-process memory of checked API tokens, for prediction calls only.

A prediction with a token would otherwise spend most of its time loading the token and
its owner from the database. For the predict and infer endpoints alone, a token checked in
this worker within ``MODELPORT_TOKEN_CACHE_SECONDS`` is trusted again without a query. The
worker that revokes a token, or changes or deletes its owner, forgets it at once; other
workers notice within that many seconds. Every other endpoint (token and account
management, the registry, admin pages) checks the database on every request, so revocation
and role changes take effect there on the very next request.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session

from modelport.config import current_settings
from modelport.models.tokens import ApiToken, scopes_allow
from modelport.models.types import utcnow
from modelport.models.users import Role, User

# Endpoints that may use a remembered token: they only predict and record.
CACHED_ENDPOINTS = frozenset(
    {
        "api_models.predict",
        "api_models.predict_version",
        "v2.infer",
        "v2.version_infer",
    }
)
_MAX_ENTRIES = 10_000
# Seconds on a clock that never goes back; a test may replace it to move time on.
clock: Callable[[], float] = time.monotonic


@dataclass(frozen=True)
class TokenSnapshot:
    """What a prediction needs to know about a token."""

    id: int
    user_id: int
    scopes: tuple[str, ...]
    expires_at: datetime | None

    def allows(self, scope: str) -> bool:
        """Same rule as ``ApiToken.allows``."""
        return scopes_allow(self.scopes, scope)


class UserSnapshot(UserMixin):
    """The token's owner as a prediction sees it (id and role only)."""

    def __init__(self, user_id: int, role: str) -> None:
        self.id = user_id
        self.role = role

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN.value


_lock = threading.Lock()
_entries: dict[str, tuple[float, TokenSnapshot, UserSnapshot]] = {}


def _key(plaintext: str) -> str:
    # Keyed by a digest, so the process memory holds no usable token.
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


def _ttl() -> float:
    return float(current_settings().token_cache_seconds)


def recall(plaintext: str) -> tuple[TokenSnapshot, UserSnapshot] | None:
    """A token checked recently in this worker, if still within its time and not expired."""
    ttl = _ttl()
    if ttl <= 0:
        return None
    entry = _entries.get(_key(plaintext))
    if entry is None:
        return None
    checked_at, token, user = entry
    if clock() - checked_at > ttl:
        return None
    if token.expires_at is not None and token.expires_at <= utcnow():
        return None
    return token, user


def remember(plaintext: str, token: ApiToken) -> None:
    """Note a token that the database just confirmed."""
    if _ttl() <= 0:
        return
    snapshot = TokenSnapshot(token.id, token.user_id, tuple(token.scope_list), token.expires_at)
    user = UserSnapshot(token.user.id, token.user.role)
    with _lock:
        if len(_entries) >= _MAX_ENTRIES:
            _entries.clear()
        _entries[_key(plaintext)] = (clock(), snapshot, user)


def forget_user(user_id: int) -> None:
    """Drop every remembered token of a user (revocation, role change, deletion)."""
    with _lock:
        for key in [k for k, (_, token, _) in _entries.items() if token.user_id == user_id]:
            del _entries[key]


def forget_all() -> None:
    """Drop everything (tests, and changes that affect many users)."""
    with _lock:
        _entries.clear()


@event.listens_for(Session, "after_flush")
def _forget_changed(session: Session, _context: object) -> None:
    # Any change to a user (role, active, password) or a token ends what this worker knows.
    for obj in (*session.deleted, *session.dirty):
        if isinstance(obj, User):
            forget_user(obj.id)
        elif isinstance(obj, ApiToken) and obj.user_id is not None:
            forget_user(obj.user_id)


@event.listens_for(Session, "do_orm_execute")
def _forget_bulk(state: ORMExecuteState) -> None:
    # Bulk DELETE/UPDATE statements (token revocation uses one) bypass the flush events.
    mapper = state.bind_mapper
    if (
        (state.is_delete or state.is_update)
        and mapper is not None
        and mapper.class_
        in (
            User,
            ApiToken,
        )
    ):
        forget_all()
