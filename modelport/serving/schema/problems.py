"""Problems found while validating, sorted and raised as one ``InputError``."""

from __future__ import annotations

import numbers
from typing import Any

from modelport.serving.schema.features import InputError
from modelport.serving.schema.types import MAX_DETAILS

# --- problems and warnings --------------------------------------------------------------


def _sorted(problems: list[tuple]) -> tuple[list[dict], bool]:
    problems.sort(key=lambda p: (-1 if p[0] is None else p[0], p[1], p[2] or "", p[3]))
    details = [
        {"row": p[0], "field": p[2], "code": p[3], "message": p[4]} for p in problems[:MAX_DETAILS]
    ]
    return details, len(problems) > MAX_DETAILS


def _raise(problems: list[tuple]) -> None:
    details, truncated = _sorted(problems)
    raise InputError(details, truncated)


def _fail(code: str, message: str, row: int | None = None, name: str | None = None) -> None:
    raise InputError([{"row": row, "field": name, "code": code, "message": message}])


def _shape_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "text"
    if isinstance(value, numbers.Number):
        return "a number"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__
