"""A model's report: the evaluation stored when each version was registered
(``analytics.evaluation``), for one version or two side by side.

``model_report`` answers only to a caller who may use the model
(``serving.access.model_for``): a private model is then as absent as a missing one. The
version is the one asked for, else the one the model serves, else its newest.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from modelport.auth.caller import Caller
from modelport.extensions import db
from modelport.models.predictions import Source
from modelport.models.registry import ModelReport, ModelVersion, RegisteredModel
from modelport.serving import access, registry


class ReportError(Exception):
    """A report that cannot be shown as asked: ``version_not_found`` (no such version, or a
    model without versions) or ``same_version`` (a version compared with itself)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _version(model: RegisteredModel, number: int | None) -> ModelVersion:
    if number is None:
        chosen = registry.served_version(model) or (model.versions[-1] if model.versions else None)
        if chosen is None:
            raise ReportError("version_not_found", f"{model.name} has no version yet.")
        return chosen
    found = registry.get_version(model, number)
    if found is None:
        raise ReportError("version_not_found", f"{model.name} has no version {number}.")
    return found


def model_report(
    caller: Caller,
    name: str,
    *,
    version: int | None = None,
    compare: int | None = None,
    channel: str = Source.API,
) -> dict[str, Any]:
    """The stored report of ``version`` of model ``name`` and, with ``compare``, of a second
    version beside it. Raises ``ModelNotFound`` for a model ``caller`` may not use, and
    ``ReportError`` for a version that does not exist or a version compared with itself."""
    model = access.model_for(caller, name, channel)
    chosen = [_version(model, version)]
    if compare is not None:
        if compare == chosen[0].number:
            raise ReportError("same_version", "compare must name another version than version.")
        chosen.append(_version(model, compare))
    stored = {
        row.version_id: row
        for row in db.session.scalars(
            select(ModelReport).where(ModelReport.version_id.in_([v.id for v in chosen]))
        )
    }
    return {
        "model": model.name,
        "task": model.task,
        "versions": [v.number for v in model.versions],
        "reports": [
            {
                "version": v.number,
                "status": v.status,
                "report": stored[v.id].report if v.id in stored else None,
            }
            for v in chosen
        ],
    }


__all__ = ["ReportError", "model_report"]
