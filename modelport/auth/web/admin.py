"""Administration of members: list and search, change a role, disable or re-enable."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from werkzeug.wrappers import Response

from modelport.auth import accounts
from modelport.auth.web.forms import EmptyForm, RoleForm
from modelport.auth.web.identity import current_caller
from modelport.extensions import db
from modelport.models import User
from modelport.ops.logging import security_event

bp = Blueprint("admin", __name__, url_prefix="/admin")

PER_PAGE = 50


def admin_required(view: Callable) -> Callable:
    """Signed in and an admin *now*: the role is read from the database on every request."""

    @wraps(view)
    @login_required
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if not current_caller().is_admin:
            security_event("authorisation_denied", user_id=current_user.id, path=request.path)
            abort(403)
        return view(*args, **kwargs)

    return wrapped


def _user_or_404(user_id: int) -> User:
    user = db.session.get(User, user_id)
    if user is None:
        abort(404)
    return user


@bp.get("/users")
@admin_required
def users() -> str:
    return _users_page()


def _users_page() -> str:
    query = request.args.get("q", "")[:254]
    page = request.args.get("page", 1, type=int) or 1
    page = max(1, min(page, 10_000))
    found, total = accounts.search_users(query, page=page, per_page=PER_PAGE)
    return render_template(
        "admin/users.html",
        users=found,
        total=total,
        query=query,
        page=page,
        pages=max(1, -(-total // PER_PAGE)),
        role_form=RoleForm(),
        action_form=EmptyForm(),
    )


def _refused(error: accounts.AccountError) -> tuple[str, int]:
    """The list again with the reason, as a 4xx: nothing was changed."""
    flash(error.message, "error")
    return _users_page(), 409


def _back() -> Response:
    return redirect(url_for("admin.users", q=request.args.get("q") or None))


# User ids in URLs are bounded to the INTEGER column: larger ones are a 404, not a DB error.
@bp.post("/users/<int(max=2147483647):user_id>/role")
@admin_required
def change_role(user_id: int) -> Response | tuple[str, int]:
    user = _user_or_404(user_id)
    form = RoleForm()
    if not form.validate_on_submit():
        abort(400, description=_("Choose the role user or admin."))
    try:
        accounts.set_role(current_user, user, form.role.data)
    except accounts.AccountError as exc:
        return _refused(exc)
    else:
        flash(_("%(email)s is now %(role)s.", email=user.email, role=_(form.role.data)), "success")
    return _back()


@bp.post("/users/<int(max=2147483647):user_id>/disable")
@admin_required
def disable(user_id: int) -> Response | tuple[str, int]:
    return _set_active(user_id, False)


@bp.post("/users/<int(max=2147483647):user_id>/enable")
@admin_required
def enable(user_id: int) -> Response | tuple[str, int]:
    return _set_active(user_id, True)


def _set_active(user_id: int, active: bool) -> Response | tuple[str, int]:
    user = _user_or_404(user_id)
    if not EmptyForm().validate_on_submit():
        abort(400)
    try:
        accounts.set_active(current_user, user, active)
    except accounts.AccountError as exc:
        return _refused(exc)
    else:
        message = (
            _("%(email)s can sign in again.")
            if active
            else _("%(email)s is disabled and signed out.")
        )
        flash(message % {"email": user.email}, "success")
    return _back()
