"""The rules of membership, shared by the pages, the JSON API and the CLI.

Each function validates, changes the database in one transaction, logs the security event
and returns; none of them renders anything. Errors are ``AccountError`` with a message that
is safe to show and, where it applies, the form field it belongs to.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import url_for
from flask_babel import gettext as _
from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError

from modelport.auth import devices, passwords, sessions, throttle
from modelport.auth.erasure import erase_user_data
from modelport.auth.links import make_link_token, read_link_token
from modelport.auth.tokens import revoke_all_tokens
from modelport.config import current_settings
from modelport.extensions import checkpoint_erasure, db
from modelport.mail import send_mail
from modelport.models import Role, User
from modelport.models.types import utcnow
from modelport.ops.logging import security_event

MAX_EMAIL_LENGTH = 254
MAX_NAME_LENGTH = 100


class AccountError(ValueError):
    """A request about an account that cannot be honoured."""

    def __init__(self, message: str, field: str | None = None, code: str = "invalid") -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.code = code


@dataclass
class FieldErrors(Exception):
    """Several field errors at once: ``{field: [messages]}``."""

    errors: dict[str, list[str]]


def normalise_email(email: str) -> str:
    """Trimmed and lower-cased: one account per mailbox, whatever the case typed."""
    return email.strip().lower()


def find_user_by_email(email: str) -> User | None:
    return db.session.execute(
        select(User).where(User.email == normalise_email(email))
    ).scalar_one_or_none()


def _external_url(endpoint: str, **values: str) -> str:
    base = current_settings().base_url
    if base:
        return base.rstrip("/") + url_for(endpoint, **values)
    return url_for(endpoint, _external=True, **values)


def _check_password(password: str, email: str, name: str, field: str = "password") -> None:
    problems = passwords.password_problems(password, email=email, name=name)
    if problems:
        raise FieldErrors({field: problems})


def create_user(
    email: str, name: str, password: str, *, role: Role = Role.USER, confirmed: bool = True
) -> User:
    """Create an account directly (CLI and admin). Raises on a taken e-mail."""
    email = normalise_email(email)
    name = name.strip()
    if not email or "@" not in email or len(email) > MAX_EMAIL_LENGTH:
        raise AccountError(_("Enter a valid e-mail address."), "email")
    if not name or len(name) > MAX_NAME_LENGTH:
        raise AccountError(_("Enter a name of 1 to %(n)d characters.", n=MAX_NAME_LENGTH), "name")
    _check_password(password, email, name)
    user = User(
        email=email,
        name=name,
        password_hash=passwords.hash_password(password),
        role=role.value,
        email_confirmed_at=utcnow() if confirmed else None,
    )
    db.session.add(user)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise AccountError(
            _("An account with this e-mail address already exists."), "email"
        ) from None
    return user


def signup(email: str, name: str, password: str) -> None:
    """Register a member. The answer is the same whether or not the address is taken: the
    owner of a taken address gets an e-mail instead, and exactly one hash is computed."""
    email = normalise_email(email)
    name = name.strip()
    _check_password(password, email, name)
    password_hash = passwords.hash_password(password)
    require_confirmation = current_settings().require_email_confirmation
    existing = find_user_by_email(email)
    if existing is not None:
        send_mail(
            existing.email,
            _("Someone tried to sign up with your address"),
            _(
                "Someone tried to create a Modelport account with this e-mail address, which "
                "already has one. If it was you, sign in or reset your password at %(url)s.",
                url=_external_url("auth.reset_request"),
            ),
        )
        security_event("signup_existing_email", user_id=existing.id)
        return
    user = User(
        email=email,
        name=name,
        password_hash=password_hash,
        role=Role.USER.value,
        email_confirmed_at=None if require_confirmation else utcnow(),
    )
    db.session.add(user)
    try:
        db.session.commit()
    except IntegrityError:  # a concurrent signup with the same address won the race
        db.session.rollback()
        return
    security_event("signup", user_id=user.id)
    if require_confirmation:
        link = _external_url("auth.confirm_email", token=make_link_token(user, "confirm"))
        send_mail(
            user.email,
            _("Confirm your Modelport account"),
            _("Open this link to confirm your e-mail address: %(url)s", url=link),
        )


def confirm_email(token: str) -> User | None:
    """Mark the address of a signup link's account as confirmed."""
    found = read_link_token(token, "confirm")
    if found is None:
        return None
    user, _payload = found
    user.email_confirmed_at = utcnow()
    db.session.commit()
    security_event("email_confirmed", user_id=user.id)
    return user


class LoginFailed(Exception):
    """Wrong e-mail or password (deliberately the same error for both)."""


class NotConfirmed(Exception):
    """Right password, but the e-mail address is not confirmed yet."""


def authenticate(email: str, password: str, *, trust_device: bool = False) -> User:
    """The user with this e-mail and password. Always exactly one hash check; throttled per
    account and per address. Raises ``Throttled``, ``LoginFailed`` or ``NotConfirmed``.

    ``trust_device`` (the sign-in page): a device cookie this browser holds for the account
    replaces the account's count by its own (``devices``). HTTP Basic carries no cookie.
    """
    user = find_user_by_email(email)
    device = devices.recognised(user.id) if trust_device and user is not None else None
    try:
        throttle.check_login_allowed(email, device)
    except throttle.Throttled:
        security_event("login_throttled", user_id=user.id if user else None, device=bool(device))
        raise
    ok = passwords.verify_password(user.password_hash if user else None, password)
    if not ok or user is None or not user.is_active:
        throttle.record_login_failure(email, device)
        security_event("login_failed", user_id=user.id if user else None, device=bool(device))
        raise LoginFailed
    if user.email_confirmed_at is None and current_settings().require_email_confirmation:
        raise NotConfirmed
    if passwords.needs_rehash(user.password_hash):
        user.password_hash = passwords.hash_password(password)
    throttle.record_login_success(email, device)
    return user


def login(user: User, *, remember: bool) -> None:
    """Start a new server-side session for ``user`` on this client, and give the browser a
    device cookie for the account."""
    sessions.start_session(user, remember=remember)
    devices.remember_device(user)
    db.session.commit()
    security_event("login", user_id=user.id, remember=remember)


def logout(user: User | None) -> None:
    """End this client's session on the server."""
    sessions.end_session()
    db.session.commit()
    security_event("logout", user_id=user.id if user else None)


def reauthenticate(user: User, password: str, *, field: str = "password") -> None:
    """Check the current password before a sensitive action (throttled like sign-in).

    ``field`` names the form field the error belongs to, so that it is shown beside it.
    Every caller is a page, so this browser's device cookie for the account counts instead
    of the account (``devices``).
    """
    device = devices.recognised(user.id)
    try:
        throttle.check_login_allowed(user.email, device)
    except throttle.Throttled:
        security_event("login_throttled", user_id=user.id, device=bool(device))
        raise AccountError(_("Too many attempts. Try again later."), field, "throttled") from None
    if not passwords.verify_password(user.password_hash, password):
        throttle.record_login_failure(user.email, device)
        security_event("reauth_failed", user_id=user.id, device=bool(device))
        raise AccountError(_("The password is not correct."), field, "wrong_password")


def confirm_password(user: User, password: str) -> None:
    """Re-authentication for a remember-me session: check the password, then renew it (and
    the browser's device cookie for the account)."""
    reauthenticate(user, password)
    sessions.renew_session(user)
    devices.remember_device(user)
    db.session.commit()
    security_event("reauthenticated", user_id=user.id)


def _set_password(user: User, new_password: str) -> None:
    user.password_hash = passwords.hash_password(new_password)
    user.password_changed_at = utcnow()
    # Every session, remember cookie and API token of the account stops working.
    sessions.end_all_sessions(user)
    revoke_all_tokens(user)


def change_password(user: User, current: str, new: str, *, keep_session: bool = True) -> None:
    """Change the password; needs the current one. Ends all other sessions and tokens."""
    reauthenticate(user, current, field="current_password")
    _check_password(new, user.email, user.name, field="new_password")
    _set_password(user, new)
    if keep_session:
        sessions.start_session(user, remember=False)
    db.session.commit()
    security_event("password_changed", user_id=user.id)


def request_password_reset(email: str) -> None:
    """Mail a reset link if the account exists; the caller's answer is the same either way."""
    user = find_user_by_email(email)
    if user is None or not user.is_active:
        security_event("password_reset_requested_unknown")
        return
    link = _external_url("auth.reset_password", token=make_link_token(user, "reset"))
    send_mail(
        user.email,
        _("Reset your Modelport password"),
        _(
            "Open this link within %(minutes)d minutes to choose a new password: %(url)s\n"
            "If you did not ask for it, ignore this e-mail.",
            minutes=current_settings().reset_token_minutes,
            url=link,
        ),
    )
    security_event("password_reset_requested", user_id=user.id)


def user_for_reset(token: str) -> User | None:
    found = read_link_token(token, "reset")
    return found[0] if found else None


def reset_password(token: str, new: str) -> User | None:
    """Set a new password from a reset link. None if the link is invalid, used or expired."""
    user = user_for_reset(token)
    if user is None:
        return None
    _check_password(new, user.email, user.name)
    _set_password(user, new)
    # Following the link proves the mailbox, so an unconfirmed address becomes confirmed.
    user.email_confirmed_at = user.email_confirmed_at or utcnow()
    db.session.commit()
    throttle.clear_account_failures(user.email, devices.recognised(user.id))
    security_event("password_reset", user_id=user.id)
    return user


def request_email_change(user: User, password: str, new_email: str) -> None:
    """Send a confirmation link to the new address; nothing changes until it is opened."""
    reauthenticate(user, password)
    new_email = normalise_email(new_email)
    if not new_email or "@" not in new_email or len(new_email) > MAX_EMAIL_LENGTH:
        raise AccountError(_("Enter a valid e-mail address."), "email")
    if new_email == user.email:
        raise AccountError(_("This is already your e-mail address."), "email")
    security_event("email_change_requested", user_id=user.id)
    if find_user_by_email(new_email) is not None:
        return  # same answer as success, so taken addresses are not revealed
    link = _external_url(
        "account.confirm_email_change", token=make_link_token(user, "email", e=new_email)
    )
    send_mail(
        new_email,
        _("Confirm your new Modelport e-mail address"),
        _("Open this link to make this your account's e-mail address: %(url)s", url=link),
    )


def confirm_email_change(token: str) -> User | None:
    """Apply an e-mail change from its link; tells the old address. None if invalid."""
    found = read_link_token(token, "email")
    if found is None:
        return None
    user, payload = found
    new_email = payload.get("e")
    if not isinstance(new_email, str) or find_user_by_email(new_email) is not None:
        return None
    old = user.email
    user.email = new_email
    user.email_confirmed_at = utcnow()
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        return None
    send_mail(
        old,
        _("Your Modelport e-mail address was changed"),
        _("Your account's e-mail address is now %(email)s.", email=new_email),
    )
    security_event("email_changed", user_id=user.id)
    return user


def delete_account(user: User, password: str) -> None:
    """Withdrawal: after the password is re-entered, remove the user and everything personal.

    Sessions and tokens go with the user row (ON DELETE CASCADE), so the very next request
    with an old cookie or token is anonymous. Every feature's erasure (``erasure``: the
    prediction records lose their inputs, outputs and owner) runs in the same transaction;
    what stays is anonymous statistics.
    """
    reauthenticate(user, password)
    user_id = user.id
    sessions.end_session()
    erase_user_data(user_id)
    db.session.delete(user)
    db.session.commit()
    checkpoint_erasure()
    security_event("account_deleted", user_id=user_id)


def search_users(query: str = "", *, page: int = 1, per_page: int = 50) -> tuple[list[User], int]:
    """Users whose e-mail or name contains ``query``, and the total count (admin)."""
    stmt = select(User)
    if query:
        # autoescape: the typed text is matched literally, % and _ are not wildcards.
        text = query.strip().lower()
        stmt = stmt.where(
            or_(
                func.lower(User.email).contains(text, autoescape=True),
                func.lower(User.name).contains(text, autoescape=True),
            )
        )
    total = db.session.scalar(select(func.count()).select_from(stmt.subquery()))
    users = db.session.scalars(stmt.order_by(User.id).limit(per_page).offset((page - 1) * per_page))
    return list(users), total or 0


def _active_admins() -> int:
    return (
        db.session.scalar(
            select(func.count())
            .select_from(User)
            .where(User.role == Role.ADMIN.value, User.active.is_(True))
        )
        or 0
    )


def set_role(actor: User, user: User, role: str) -> None:
    """Change a user's role (admin). The last active admin cannot be demoted."""
    if role not in {r.value for r in Role}:
        raise AccountError(_("Unknown role."), "role")
    if user.is_admin and role != Role.ADMIN.value and user.active and _active_admins() <= 1:
        raise AccountError(_("The last administrator cannot be demoted."), "role")
    old = user.role
    user.role = role
    db.session.commit()
    security_event("role_changed", user_id=user.id, actor_id=actor.id, old=old, new=role)


def set_active(actor: User, user: User, active: bool) -> None:
    """Disable or re-enable an account (admin). Disabling ends its sessions and tokens."""
    if not active and user.id == actor.id:
        raise AccountError(_("You cannot disable your own account."), "active")
    if not active and user.is_admin and user.active and _active_admins() <= 1:
        raise AccountError(_("The last administrator cannot be disabled."), "active")
    user.active = active
    if not active:
        # Disabling terminates access: re-enabling must not bring old sessions or tokens back.
        sessions.end_all_sessions(user)
        revoke_all_tokens(user)
    db.session.commit()
    security_event(
        "account_enabled" if active else "account_disabled", user_id=user.id, actor_id=actor.id
    )
