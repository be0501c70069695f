"""Validation problems and registry refusals as a page shows them, in the reader's language."""

from __future__ import annotations

from typing import Any

from flask_babel import gettext as _

from modelport.serving import registry
from modelport.serving.schema import Feature, InputSchema

BATCH_PROBLEMS_SHOWN = 20


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def problem_text(detail: dict[str, Any], feature: Feature | None) -> str:
    """A validation problem in the reader's language (the service's message if none fits)."""
    code = detail.get("code")
    kind = feature.type if feature is not None else None
    if code == "missing_field":
        return _("This field is required.")
    if code == "not_finite" and kind in ("number", "integer"):
        return _("Enter a finite number.")
    if code in ("wrong_type", "not_integer", "boolean_not_number"):
        if kind == "integer":
            return _("Enter a whole number.")
        if kind == "number":
            return _("Enter a number.")
        if kind == "boolean":
            return _("Enter true or false.")
    if code == "unseen_category":
        return _("Choose one of the categories seen in training.")
    if code == "out_of_range" and feature is not None:
        if feature.minimum is not None and feature.maximum is not None:
            return _(
                "Outside the range seen in training (%(low)s to %(high)s); predicted anyway.",
                low=_number(feature.minimum),
                high=_number(feature.maximum),
            )
        return _("Outside the range seen in training; predicted anyway.")
    return str(detail.get("message", ""))


def by_field(
    schema: InputSchema, details: list[dict[str, Any]]
) -> tuple[dict[str, list[str]], list[str]]:
    """Problems grouped by feature name, and those about no single feature."""
    features = {f.name: f for f in schema.features}
    fields: dict[str, list[str]] = {}
    general: list[str] = []
    for detail in details:
        feature = features.get(detail.get("field") or "")
        if feature is None:
            general.append(problem_text(detail, None))
        else:
            fields.setdefault(feature.name, []).append(problem_text(detail, feature))
    return fields, general


def batch_problems(schema: InputSchema, details: list[dict]) -> list[dict[str, Any]]:
    features = {f.name: f for f in schema.features}
    shown = []
    for detail in details[:BATCH_PROBLEMS_SHOWN]:
        row = detail.get("row")
        shown.append(
            {
                "row": None if row is None else row + 1,
                "line": None if row is None else row + 2,  # the header is line 1
                "field": detail.get("field"),
                "text": problem_text(detail, features.get(detail.get("field") or "")),
                "message": detail.get("message", ""),
            }
        )
    return shown


def registry_message(exc: registry.RegistryError) -> str:
    """A registry refusal in the reader's language where the rule has a fixed wording."""
    messages = {
        "invalid_name": _(
            "A model name is 1–64 lower-case letters, digits, '-' or '_', starting with a "
            "letter or digit."
        ),
        "model_exists": _("A model with this name already exists."),
        "invalid_alias": _(
            "An alias is 1–40 lower-case letters, digits, '-' or '_', starting with a letter."
        ),
        "version_archived": _("An archived version cannot take an alias."),
        "version_not_found": _("This model has no such version."),
        "no_challenger": _("Point the challenger alias at a version before a canary share."),
        "no_shadow": _("Point the shadow alias at a version before a shadow share."),
        "alias_not_found": _("This model has no such alias."),
        "follows_mlflow": _(
            "This model follows an MLflow model: move its champion, challenger and shadow "
            "aliases in MLflow, or stop following it first."
        ),
        "not_following": _("This model follows no MLflow model."),
        "rollback_unavailable": _(
            "The champion before the last promote is no longer served: there is nothing to "
            "roll back to. Move the champion alias instead."
        ),
    }
    return messages.get(exc.code, exc.message)
