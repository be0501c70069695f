"""Web forms of the dataset pages: the administrators' upload."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import StringField
from wtforms.validators import DataRequired, Length, Regexp

NAME_RULE = _l("1–64 lower-case letters, digits, '-' or '_', starting with a letter or digit.")


class DatasetUploadForm(FlaskForm):
    name = StringField(
        _l("Dataset name"),
        validators=[
            DataRequired(_l("Give the dataset a name.")),
            Length(max=64),
            Regexp(r"^[a-z0-9][a-z0-9_-]{0,63}$", message=NAME_RULE),
        ],
    )
    file = FileField(_l("CSV or Parquet file"), validators=[FileRequired(_l("Choose a file."))])
