"""Web forms of the serving pages: batch upload, history filters and the registry admin."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import (
    DateField,
    IntegerField,
    SelectChoice,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, NumberRange, Optional

# Version numbers live in an INTEGER column.
MAX_VERSION = 2**31 - 1
_CHOOSE_FILE = _l("Choose a file.")


class BatchForm(FlaskForm):
    file = FileField(_l("CSV file"), validators=[FileRequired(_CHOOSE_FILE)])


class HistoryFilterForm(FlaskForm):
    """Filters read from the query string: a GET form, so no CSRF token."""

    class Meta:
        csrf = False

    # Records keep the model's name by value, so any name may be asked for.
    model = SelectField(_l("Model"), choices=[], validate_choice=False)
    since = DateField(_l("From"), validators=[Optional()])
    until = DateField(_l("Until"), validators=[Optional()])


class ModelForm(FlaskForm):
    name = StringField(_l("Name"), validators=[DataRequired(), Length(max=64)])
    title = StringField(_l("Title"), validators=[Optional(), Length(max=200)])
    description = TextAreaField(_l("Description"), validators=[Optional(), Length(max=10_000)])
    task = SelectField(
        _l("Task"),
        choices=[
            SelectChoice("classification", _l("classification")),
            SelectChoice("regression", _l("regression")),
        ],
    )
    visibility = SelectField(
        _l("Visibility"),
        choices=[
            SelectChoice("public", _l("public — anyone may predict")),
            SelectChoice("private", _l("private — signed-in users and tokens only")),
        ],
    )


class UploadForm(FlaskForm):
    artifact = FileField(_l("Model file (skops or ONNX)"), validators=[FileRequired(_CHOOSE_FILE)])
    sample = FileField(_l("Training-data sample (CSV)"), validators=[FileRequired(_CHOOSE_FILE)])
    alias = StringField(_l("Alias (optional)"), validators=[Optional(), Length(max=40)])


class AliasForm(FlaskForm):
    alias = StringField(_l("Alias"), validators=[DataRequired(), Length(max=40)])
    version = IntegerField(
        _l("Version"), validators=[DataRequired(), NumberRange(min=1, max=MAX_VERSION)]
    )
