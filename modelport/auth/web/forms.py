"""Web forms. Field names are part of the public surface: scripts post them, so one changes
only with a note in the README's changes."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    BooleanField,
    DateField,
    EmailField,
    PasswordField,
    SelectChoice,
    SelectField,
    StringField,
)
from wtforms.validators import DataRequired, Email, EqualTo, Length, Optional

# Length on passwords is checked by the password policy (with its own messages); the upper
# bound here only stops absurd inputs before hashing.
_PASSWORD_MAX = Length(max=1024)


class SignupForm(FlaskForm):
    email = EmailField(
        _l("E-mail"),
        validators=[DataRequired(), Email(check_deliverability=False), Length(max=254)],
    )
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=100)])
    password = PasswordField(_l("Password"), validators=[DataRequired(), _PASSWORD_MAX])
    password2 = PasswordField(
        _l("Repeat password"),
        validators=[DataRequired(), EqualTo("password", message=_l("The passwords do not match."))],
    )


class LoginForm(FlaskForm):
    email = EmailField(_l("E-mail"), validators=[DataRequired(), Length(max=254)])
    password = PasswordField(_l("Password"), validators=[DataRequired(), _PASSWORD_MAX])
    remember = BooleanField(_l("Keep me signed in on this device"))


class ResetRequestForm(FlaskForm):
    email = EmailField(_l("E-mail"), validators=[DataRequired(), Length(max=254)])


class ResetForm(FlaskForm):
    password = PasswordField(_l("New password"), validators=[DataRequired(), _PASSWORD_MAX])
    password2 = PasswordField(
        _l("Repeat new password"),
        validators=[DataRequired(), EqualTo("password", message=_l("The passwords do not match."))],
    )


class ChangePasswordForm(FlaskForm):
    current_password = PasswordField(
        _l("Current password"), validators=[DataRequired(), _PASSWORD_MAX]
    )
    new_password = PasswordField(_l("New password"), validators=[DataRequired(), _PASSWORD_MAX])
    new_password2 = PasswordField(
        _l("Repeat new password"),
        validators=[
            DataRequired(),
            EqualTo("new_password", message=_l("The passwords do not match.")),
        ],
    )


class ChangeEmailForm(FlaskForm):
    email = EmailField(
        _l("New e-mail"),
        validators=[DataRequired(), Email(check_deliverability=False), Length(max=254)],
    )
    password = PasswordField(_l("Current password"), validators=[DataRequired(), _PASSWORD_MAX])


class DeleteAccountForm(FlaskForm):
    password = PasswordField(_l("Current password"), validators=[DataRequired(), _PASSWORD_MAX])


class ReauthForm(FlaskForm):
    password = PasswordField(_l("Password"), validators=[DataRequired(), _PASSWORD_MAX])


class TokenForm(FlaskForm):
    name = StringField(_l("Token name"), validators=[DataRequired(), Length(max=100)])
    scope = SelectField(
        _l("Scope"),
        choices=[
            SelectChoice("predict", _l("predict — predictions only")),
            SelectChoice("full", _l("full — everything you can do")),
        ],
        default="predict",
    )
    expires_on = DateField(_l("Expires on (optional)"), validators=[Optional()])


class EmptyForm(FlaskForm):
    """CSRF token only: logout, revoke and other one-button actions."""


class RoleForm(FlaskForm):
    role = SelectField(
        _l("Role"), choices=[SelectChoice("user", _l("user")), SelectChoice("admin", _l("admin"))]
    )
