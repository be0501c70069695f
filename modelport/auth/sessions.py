"""Server-checked sign-in sessions and the remember-me cookie.

The Flask session cookie carries a random secret whose SHA-256 is a row of
``user_sessions``. Deleting the row (logout, password change, deletion, disabling) makes a
copied cookie anonymous on its very next use. The remember cookie carries the secret of
the same row; it restores a *non-fresh* session after the browser session ends.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import Flask, Request, Response, current_app, g, request, session
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface, SessionMixin
from sqlalchemy import delete, select
from sqlalchemy.orm import joinedload

from modelport.config import current_settings
from modelport.extensions import db
from modelport.models import User, UserSession
from modelport.models.types import utcnow

SESSION_KEY = "sid"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
FRESH_KEY = "_fresh"
# Writing last_seen on every request would turn every page view into a write.
_LAST_SEEN_RESOLUTION = timedelta(seconds=60)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass
class _RememberCookie:
    value: str | None  # None means: delete the cookie
    max_age: int = 0


def _limits(remember: bool) -> tuple[timedelta, timedelta]:
    """(idle, absolute) lifetimes of a session."""
    s = current_settings()
    if remember:
        days = timedelta(days=s.remember_days)
        return days, days
    return timedelta(minutes=s.session_idle_minutes), timedelta(hours=s.session_absolute_hours)


def _expired(row: UserSession, now: datetime, *, remember: bool | None = None) -> bool:
    idle, absolute = _limits(row.remember if remember is None else remember)
    return now - row.last_seen_at > idle or now - row.created_at > absolute


def start_session(user: User, *, remember: bool = False) -> UserSession:
    """Sign ``user`` in on this client: a new session id (no fixation) and, if asked, a
    remember cookie. The caller commits."""
    # The session this client had (another account's, or this one's before re-entering the
    # password) must not stay valid for whoever copied its cookie.
    end_session()
    secret = secrets.token_urlsafe(32)
    row = UserSession(
        user=user,
        secret_hash=_digest(secret),
        remember=remember,
        ip=(request.remote_addr or "")[:45],
        user_agent=request.user_agent.string[:255],
    )
    db.session.add(row)
    session[SESSION_KEY] = secret
    session[FRESH_KEY] = True
    session.permanent = False
    if remember:
        g.remember_cookie = _RememberCookie(secret, int(_limits(True)[1].total_seconds()))
    else:
        g.remember_cookie = _RememberCookie(None)
    return row


def end_session() -> None:
    """Sign this client out: delete its server row, the session data and the remember cookie."""
    for secret in (session.get(SESSION_KEY), _remember_secret()):
        if secret:
            db.session.execute(
                delete(UserSession).where(UserSession.secret_hash == _digest(secret))
            )
    language = session.get("lang")  # a display preference, not part of the sign-in
    session.clear()
    if language:
        session["lang"] = language
    g.remember_cookie = _RememberCookie(None)


def end_all_sessions(user: User) -> None:
    """End every session of ``user`` on every client (password change, reset, disabling)."""
    db.session.execute(delete(UserSession).where(UserSession.user_id == user.id))


def _remember_secret() -> str | None:
    return request.cookies.get(current_app.config["MODELPORT_REMEMBER_COOKIE"]) or None


def _find(secret: str) -> UserSession | None:
    return db.session.execute(
        select(UserSession)
        .options(joinedload(UserSession.user))  # one query per request, not two
        .where(UserSession.secret_hash == _digest(secret))
    ).scalar_one_or_none()


def user_from_cookies() -> User | None:
    """The user this request's session (or remember) cookie belongs to, if still valid."""
    now = utcnow()
    secret = session.get(SESSION_KEY)
    if secret:
        row = _find(secret)
        if row is not None and not _expired(row, now) and row.user.is_active:
            if row.remember and _expired(row, now, remember=False):
                # Past the plain session's limits only remember-me keeps the user signed in,
                # and a remember-me sign-in is not fresh.
                session[FRESH_KEY] = False
            _touch(row, now)
            return row.user
        session.clear()
    remembered = _remember_secret()
    if remembered:
        row = _find(remembered)
        if row is not None and row.remember and not _expired(row, now) and row.user.is_active:
            # The browser session ended but remember-me holds: continue, marked not fresh,
            # so that sensitive actions ask for the password again.
            session[SESSION_KEY] = remembered
            session[FRESH_KEY] = False
            _touch(row, now)
            return row.user
        g.remember_cookie = _RememberCookie(None)
    return None


def _touch(row: UserSession, now: datetime) -> None:
    if now - row.last_seen_at >= _LAST_SEEN_RESOLUTION:
        row.last_seen_at = now
        db.session.commit()


def renew_session(user: User) -> UserSession:
    """A new session id after the password was re-entered (ASVS 7.2.4); keeps remember-me."""
    secret = session.get(SESSION_KEY)
    current = _find(secret) if secret else None
    return start_session(user, remember=bool(current and current.remember))


def is_fresh() -> bool:
    """Whether the user typed the password in this browser session (not a remember restore)."""
    return bool(session.get(FRESH_KEY))


def mark_fresh() -> None:
    session[FRESH_KEY] = True


def apply_remember_cookie(response: Response) -> Response:
    """Set or delete the remember cookie as decided during the request."""
    decision: _RememberCookie | None = g.pop("remember_cookie", None)
    if decision is None:
        return response
    cfg = current_app.config
    name = cfg["MODELPORT_REMEMBER_COOKIE"]
    if decision.value is None:
        if request.cookies.get(name):
            response.delete_cookie(
                name, path="/", secure=cfg["SESSION_COOKIE_SECURE"], httponly=True, samesite="Lax"
            )
        return response
    response.set_cookie(
        name,
        decision.value,
        max_age=decision.max_age,
        path="/",
        secure=cfg["SESSION_COOKIE_SECURE"],
        httponly=True,
        samesite="Lax",
    )
    return response


class SiteSessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session, except that it never *starts* a session on an unsafe
    request that arrived without one.

    Such a request came from another site (SameSite=Lax kept our cookie off it) or from a
    script. Answering it with a fresh cookie — any page that renders a CSRF token writes one —
    would replace the browser's own session cookie and sign the member out.
    """

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        # Without a cookie there is nothing to verify: skip building the signing serializer
        # (a noticeable share of a cookie-less API call such as a prediction).
        if app.secret_key and not request.cookies.get(self.get_cookie_name(app)):
            return self.session_class()
        return super().open_session(app, request)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        if request.method not in SAFE_METHODS and self.get_cookie_name(app) not in request.cookies:
            return
        super().save_session(app, session, response)
