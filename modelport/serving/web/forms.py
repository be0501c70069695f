"""Web forms of the serving pages: batch upload, history filters and the registry admin."""

from __future__ import annotations

import math
from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import (
    DateField,
    FloatField,
    IntegerField,
    SelectChoice,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from modelport.models.types import MAX_INT_ID
from modelport.serving.schema import FEATURE_TYPES, NUMERIC_TYPES, InputSchema

# Version numbers live in an INTEGER column.
_CHOOSE_FILE = _l("Choose a file.")


class BatchForm(FlaskForm):
    file = FileField(_l("CSV file"), validators=[FileRequired(_CHOOSE_FILE)])


class FeedbackForm(FlaskForm):
    """The true label (as the model names its classes) or value of a one-row prediction."""

    actual = StringField(
        _l("True answer"), validators=[DataRequired(_l("Enter the true answer.")), Length(max=200)]
    )

    def value(self) -> Any:
        """A number when the text is one (a regression's value), else the text (a label)."""
        text = self.actual.data.strip()
        try:
            number = float(text)
        except ValueError:
            return text
        return number if math.isfinite(number) else text


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
    evaluation = FileField(_l("Held-out rows for the report (CSV, optional)"))
    target = StringField(_l("Target column of the held-out rows"), validators=[Length(max=200)])


class AliasForm(FlaskForm):
    alias = StringField(_l("Alias"), validators=[DataRequired(), Length(max=40)])
    version = IntegerField(
        _l("Version"), validators=[DataRequired(), NumberRange(min=1, max=MAX_INT_ID)]
    )


class CanaryForm(FlaskForm):
    """A model's canary and shadow shares, in per cent (empty: leave as it is)."""

    share = FloatField(_l("Canary share (per cent)"), validators=[Optional(), NumberRange(0, 100)])
    shadow_share = FloatField(
        _l("Shadow share (per cent)"), validators=[Optional(), NumberRange(0, 100)]
    )


class FollowForm(FlaskForm):
    """The MLflow registered model to follow (``mlops.follow``); the button says what to do."""

    mlflow_model = StringField(_l("MLflow model"), validators=[Optional(), Length(max=256)])


# The schema editor's fields, one set per feature: type-0, required-0, minimum-0, ...
SCHEMA_FIELDS = ("type", "required", "minimum", "maximum", "categories", "description")
MAX_DESCRIPTION = 1000


def schema_rows(schema: InputSchema) -> list[dict[str, Any]]:
    """The editor's rows for a stored schema, as the form shows them."""
    return [
        {
            "name": f.name,
            "type": f.type,
            "required": f.required,
            "minimum": "" if f.minimum is None else f"{f.minimum:g}",
            "maximum": "" if f.maximum is None else f"{f.maximum:g}",
            "categories": "\n".join(f.categories or []),
            "description": f.description,
        }
        for f in schema.features
    ]


def _bound(text: str, name: str, which: str, problems: list[str]) -> float | None:
    text = text.strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        problems.append(
            _("%(feature)s: the %(which)s must be a number.", feature=name, which=which)
        )
        return None
    return value


def schema_from_form(
    schema: InputSchema, form: Any
) -> tuple[dict[str, Any], list[dict[str, Any]], list[str]]:
    """An admin's edit of ``schema`` from the editor's fields: the schema to save, the rows to
    show again, and the problems found (in the reader's language). Names and order stay."""
    data: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    problems: list[str] = []
    for index, feature in enumerate(schema.features):
        fields = {key: str(form.get(f"{key}-{index}", "")) for key in SCHEMA_FIELDS}
        row = {
            "name": feature.name,
            "type": fields["type"],
            "required": f"required-{index}" in form,
            "minimum": fields["minimum"],
            "maximum": fields["maximum"],
            "categories": fields["categories"],
            "description": fields["description"].strip(),
        }
        rows.append(row)
        kind = row["type"]
        if kind not in FEATURE_TYPES:
            problems.append(_("%(feature)s: choose a type.", feature=feature.name))
            continue
        if len(row["description"]) > MAX_DESCRIPTION:
            problems.append(
                _(
                    "%(feature)s: the description is longer than %(limit)d characters.",
                    feature=feature.name,
                    limit=MAX_DESCRIPTION,
                )
            )
        item: dict[str, Any] = {
            "name": feature.name,
            "type": kind,
            "required": row["required"],
            "description": row["description"],
        }
        if kind in NUMERIC_TYPES:
            low = _bound(row["minimum"], feature.name, _("minimum"), problems)
            high = _bound(row["maximum"], feature.name, _("maximum"), problems)
            if low is not None and high is not None and low > high:
                problems.append(
                    _("%(feature)s: the minimum is above the maximum.", feature=feature.name)
                )
            item |= {"minimum": low, "maximum": high}
        if kind == "category":
            categories = [c.strip() for c in row["categories"].splitlines() if c.strip()]
            if not categories:
                problems.append(
                    _(
                        "%(feature)s: a category feature needs its categories, one per line.",
                        feature=feature.name,
                    )
                )
            elif len(set(categories)) != len(categories):
                problems.append(_("%(feature)s: a category is listed twice.", feature=feature.name))
            item["categories"] = categories
        if kind == feature.type and feature.example is not None:
            # The example stays while the type does; a new type gets examples from its range.
            item["example"] = feature.example
        data.append(item)
    return {"features": data}, rows, problems
