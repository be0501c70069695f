"""Account pages: thin views over ``accounts``, ``sessions`` and ``tokens``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, time
from functools import wraps
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from werkzeug.wrappers import Response

from modelport.auth import accounts, sessions, throttle
from modelport.auth.redirects import safe_next
from modelport.auth.tokens import TokenError, create_token, revoke_token, user_tokens
from modelport.auth.web.forms import (
    ChangeEmailForm,
    ChangePasswordForm,
    DeleteAccountForm,
    EmptyForm,
    LoginForm,
    ReauthForm,
    ResetForm,
    ResetRequestForm,
    SignupForm,
    TokenForm,
)
from modelport.config import current_settings
from modelport.extensions import limiter

auth_bp = Blueprint("auth", __name__, url_prefix="/auth")
account_bp = Blueprint("account", __name__, url_prefix="/account")


def _signup_limit() -> str:

    return current_settings().signup_limit


def _add_errors(form: Any, errors: dict[str, list[str]]) -> None:
    for field, messages in errors.items():
        target = getattr(form, field, None)
        if target is not None:
            target.errors = [*target.errors, *messages]
        else:
            for message in messages:
                flash(message, "error")


def _field_error(form: Any, error: accounts.AccountError) -> None:
    _add_errors(form, {error.field or "_": [error.message]})


def fresh_required(view: Callable) -> Callable:
    """Sensitive pages need a password typed in this browser session (not remember-me)."""

    @wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if not sessions.is_fresh():
            flash(_("Please confirm your password to continue."), "info")
            return redirect(url_for("auth.reauthenticate", next=request.full_path.rstrip("?")))
        return view(*args, **kwargs)

    return wrapped


# --- signing up, in and out ---------------------------------------------------------------


@auth_bp.route("/signup", methods=["GET", "POST"])
@limiter.limit(_signup_limit, methods=["POST"])
def signup() -> str | Response:
    if current_user.is_authenticated:
        return redirect(url_for("account.overview"))
    form = SignupForm()
    if form.validate_on_submit():
        try:
            accounts.signup(form.email.data, form.name.data, form.password.data)
        except accounts.FieldErrors as exc:
            _add_errors(form, exc.errors)
        else:
            if current_settings().require_email_confirmation:
                flash(
                    _("Check your e-mail: we sent a link to confirm your address. Then sign in."),
                    "success",
                )
            else:
                flash(
                    _("Your account is ready if the address was free. Sign in to continue."),
                    "success",
                )
            return redirect(url_for("auth.login"))
    return render_template("auth/signup.html", form=form), 200 if not form.errors else 400


@auth_bp.get("/confirm/<token>")
def confirm_email(token: str) -> Response | tuple[str, int]:
    # Confirmation is idempotent and the link is the proof; GET is what an e-mail client sends.
    user = accounts.confirm_email(token)
    if user is None:
        return render_template("auth/link_invalid.html"), 400
    flash(_("Your e-mail address is confirmed. Sign in to continue."), "success")
    return redirect(url_for("auth.login"))


@auth_bp.route("/login", methods=["GET", "POST"])
def login() -> str | Response | tuple[str, int]:
    next_url = safe_next(request.values.get("next"), default=url_for("account.overview"))
    if current_user.is_authenticated and request.method == "GET":
        return redirect(next_url)
    form = LoginForm()
    status = 200
    if form.validate_on_submit():
        try:
            user = accounts.authenticate(form.email.data, form.password.data, trust_device=True)
        except throttle.Throttled as exc:
            return (
                render_template(
                    "auth/login.html",
                    form=form,
                    next=next_url,
                    error=_(
                        "Too many failed sign-ins. Try again in %(minutes)d minutes, or reset your password.",
                        minutes=max(1, exc.retry_after // 60),
                    ),
                ),
                429,
                {"Retry-After": str(exc.retry_after)},
            )
        except accounts.LoginFailed:
            form.password.errors = [_("Wrong e-mail or password.")]
            status = 400
        except accounts.NotConfirmed:
            form.email.errors = [_("Confirm your e-mail address first: open the link we sent you.")]
            status = 400
        else:
            accounts.login(user, remember=form.remember.data)
            return redirect(next_url)
    elif request.method == "POST":
        status = 400
    return render_template("auth/login.html", form=form, next=next_url), status


@auth_bp.route("/reauth", methods=["GET", "POST"])
@login_required
def reauthenticate() -> str | Response | tuple[str, int]:
    next_url = safe_next(request.values.get("next"), default=url_for("account.overview"))
    form = ReauthForm()
    if form.validate_on_submit():
        try:
            accounts.confirm_password(current_user, form.password.data)
        except accounts.AccountError as exc:
            _field_error(form, exc)
        else:
            return redirect(next_url)
    return render_template(
        "auth/reauth.html", form=form, next=next_url
    ), 400 if form.errors else 200


@auth_bp.post("/logout")
def logout() -> Response:
    user = current_user if current_user.is_authenticated else None
    accounts.logout(user)
    flash(_("You are signed out."), "info")
    return redirect(url_for("pages.home"))


@auth_bp.route("/reset", methods=["GET", "POST"])
@limiter.limit(_signup_limit, methods=["POST"])
def reset_request() -> str | Response | tuple[str, int]:
    form = ResetRequestForm()
    if form.validate_on_submit():
        accounts.request_password_reset(form.email.data)
        flash(
            _("If an account uses that address, we sent it a link to reset the password."), "info"
        )
        return redirect(url_for("auth.login"))
    return render_template("auth/reset_request.html", form=form), 400 if form.errors else 200


@auth_bp.route("/reset/<token>", methods=["GET", "POST"])
def reset_password(token: str) -> str | Response | tuple[str, int]:
    if accounts.user_for_reset(token) is None:
        return render_template("auth/link_invalid.html"), 400
    form = ResetForm()
    if form.validate_on_submit():
        try:
            accounts.reset_password(token, form.password.data)
        except accounts.FieldErrors as exc:
            _add_errors(form, exc.errors)
        else:
            flash(
                _(
                    "Your password was changed and every session was signed out. Sign in with the new password."
                ),
                "success",
            )
            return redirect(url_for("auth.login"))
    return render_template("auth/reset.html", form=form), 400 if form.errors else 200


# --- the signed-in member's own account ---------------------------------------------------


@account_bp.get("")
@login_required
def overview() -> str:
    return render_template(
        "account/overview.html",
        password_form=ChangePasswordForm(),
        email_form=ChangeEmailForm(),
        delete_form=DeleteAccountForm(),
    )


def _overview_with(status: int = 400, **forms: Any) -> tuple[str, int]:
    defaults = {
        "password_form": ChangePasswordForm(formdata=None),
        "email_form": ChangeEmailForm(formdata=None),
        "delete_form": DeleteAccountForm(formdata=None),
    }
    return render_template("account/overview.html", **(defaults | forms)), status


@account_bp.post("/password")
@login_required
def change_password() -> Response | tuple[str, int]:
    form = ChangePasswordForm()
    if form.validate_on_submit():
        try:
            accounts.change_password(
                current_user, form.current_password.data, form.new_password.data
            )
        except accounts.AccountError as exc:
            _field_error(form, exc)
        except accounts.FieldErrors as exc:
            _add_errors(form, exc.errors)
        else:
            flash(
                _("Your password was changed. Other sessions and all API tokens were signed out."),
                "success",
            )
            return redirect(url_for("account.overview"))
    return _overview_with(password_form=form)


@account_bp.post("/email")
@login_required
def change_email() -> Response | tuple[str, int]:
    form = ChangeEmailForm()
    if form.validate_on_submit():
        try:
            accounts.request_email_change(current_user, form.password.data, form.email.data)
        except accounts.AccountError as exc:
            _field_error(form, exc)
        else:
            flash(
                _(
                    "We sent a confirmation link to the new address. The change applies when you open it."
                ),
                "info",
            )
            return redirect(url_for("account.overview"))
    return _overview_with(email_form=form)


@account_bp.get("/email/<token>")
def confirm_email_change(token: str) -> Response | tuple[str, int]:
    # The link is the proof of the new mailbox; GET is what an e-mail client sends.
    user = accounts.confirm_email_change(token)
    if user is None:
        return render_template("auth/link_invalid.html"), 400
    flash(_("Your e-mail address was changed."), "success")
    return redirect(url_for("account.overview"))


@account_bp.post("/delete")
@login_required
def delete() -> Response | tuple[str, int]:
    form = DeleteAccountForm()
    if form.validate_on_submit():
        try:
            accounts.delete_account(current_user, form.password.data)
        except accounts.AccountError as exc:
            _field_error(form, exc)
        else:
            flash(_("Your account and its personal data were deleted. Goodbye."), "info")
            return redirect(url_for("pages.home"))
    return _overview_with(delete_form=form)


@account_bp.route("/tokens", methods=["GET", "POST"])
@login_required
@fresh_required
def tokens() -> str | tuple[str, int]:
    form = TokenForm()
    created = None
    status = 200
    if form.validate_on_submit():
        expires_at = None
        if form.expires_on.data:
            expires_at = datetime.combine(form.expires_on.data, time.max, tzinfo=UTC)
        try:
            token, plaintext = create_token(
                current_user, form.name.data, scopes=[form.scope.data], expires_at=expires_at
            )
        except TokenError as exc:
            # The service speaks of the API's expires_at; this form's field is expires_on.
            field = {"expires_at": "expires_on", "scopes": "scope"}.get(exc.field, exc.field)
            _add_errors(form, {field or "name": [str(exc)]})
            status = 400
        else:
            created = {"token": token, "plaintext": plaintext}
            form = TokenForm(formdata=None)
    elif request.method == "POST":
        status = 400
    return (
        render_template(
            "account/tokens.html",
            form=form,
            tokens=user_tokens(current_user),
            created=created,
            revoke_form=EmptyForm(),
        ),
        status,
    )


# The bound keeps ids within the INTEGER column: larger ones are a 404, not a DB error.
@account_bp.post("/tokens/<int(max=2147483647):token_id>/revoke")
@login_required
def revoke(token_id: int) -> Response:
    if not revoke_token(current_user, token_id):
        abort(404)
    flash(_("The token was revoked."), "info")
    return redirect(url_for("account.tokens"))
