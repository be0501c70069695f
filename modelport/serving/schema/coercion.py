"""Validation rules, one value at a time in plain Python, and each feature prepared with
them (``_Spec``), kept on the schema while its features are unchanged."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from modelport.serving.schema.types import _INT64_MAX, _INT64_MIN, NUMERIC_TYPES

if TYPE_CHECKING:
    from modelport.serving.schema.features import Feature, InputSchema

# --- scalar coercion: one value at a time, plain Python (the one-row request path) ---------


class _Problem:
    __slots__ = ("code", "text")

    def __init__(self, code: str, text: str) -> None:
        self.code = code  # an error code
        self.text = text  # the message after the field name


class _Missing:
    __slots__ = ()


_MISSING = _Missing()
_TRUE_WORDS = {"true": True, "1": True, "false": False, "0": False}


def _show(value: Any) -> str:
    """A short description of a client's value for a message."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, int) and value.bit_length() > 128:
        return "a number too large to show"  # str() refuses ints of over 4,300 digits
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _not_finite(value: Any) -> _Problem:
    return _Problem("not_finite", f"must be a finite number, got {_show(value)}")


def _wrong(expected: str, value: Any) -> _Problem:
    if isinstance(value, list | tuple | dict):
        return _Problem(
            "wrong_type", f"must be a single {expected}, got {_show(value)} (one value per row)"
        )
    return _Problem("wrong_type", f"must be {expected}, got {_show(value)}")


def _as_number(value: Any) -> Any:
    kind = type(value)
    if kind is float:
        return value if math.isfinite(value) else _not_finite(value)
    if kind is int:
        try:
            return float(value)
        except OverflowError:
            return _Problem("not_finite", "is too large")
    if kind is str:
        text = value.strip()
        if not text:
            return _MISSING
        try:
            number = float(text)
        except ValueError:
            return _wrong("a number", value)
        return number if math.isfinite(number) else _not_finite(value)
    if isinstance(value, str):
        return _as_number(str(value))
    return _odd_number(value, "a number")


def _odd_number(value: Any, expected: str) -> Any:
    """The uncommon inputs of a numeric feature: null, booleans, numpy scalars, containers."""
    if value is None:
        return _MISSING
    if isinstance(value, bool | np.bool_):
        return _Problem("boolean_not_number", f"must be {expected}, got the boolean {_show(value)}")
    if isinstance(value, numbers.Real):
        try:
            number = float(value)
        except OverflowError:
            return _Problem("not_finite", "is too large")
        return number if math.isfinite(number) else _not_finite(number)
    return _wrong(expected, value)


def _int_range(value: int, shown: Any) -> Any:
    if _INT64_MIN <= value <= _INT64_MAX:
        return value
    return _Problem("wrong_type", f"must be an integer of at most 19 digits, got {_show(shown)}")


def _whole(number: float, shown: Any) -> Any:
    if not math.isfinite(number):
        return _not_finite(shown)
    if not number.is_integer():
        return _Problem("not_integer", f"must be a whole number, got {_show(shown)}")
    return _int_range(int(number), shown)


def _as_integer(value: Any) -> Any:
    kind = type(value)
    if kind is int:
        return _int_range(value, value)
    if kind is float:
        return _whole(value, value)
    if kind is str:
        text = value.strip()
        if not text:
            return _MISSING
        try:
            return _int_range(int(text), value)  # exact, even beyond 2**53
        except ValueError:
            pass
        try:
            return _whole(float(text), value)
        except ValueError:
            return _wrong("a whole number", value)
    if isinstance(value, str):
        return _as_integer(str(value))
    number = _odd_number(value, "a whole number")
    if number.__class__ is float:
        if isinstance(value, numbers.Integral):
            return _int_range(int(value), value)
        return _whole(number, value)
    return number


def _as_boolean(value: Any) -> Any:
    kind = type(value)
    if kind is bool:
        return value
    if kind is str:
        text = value.strip()
        if not text:
            return _MISSING
        word = _TRUE_WORDS.get(text.lower())
        return word if word is not None else _wrong("true or false", value)
    if value is None:
        return _MISSING
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, str):
        return _as_boolean(str(value))
    if kind is float and not math.isfinite(value):
        return _not_finite(value)
    return _wrong("true or false", value)


def _as_string(value: Any) -> Any:
    kind = type(value)
    if kind is str:
        return value if value.strip() else _MISSING
    if value is None:
        return _MISSING
    if isinstance(value, str):
        return _as_string(str(value))
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        return _wrong("text", value)
    if isinstance(value, numbers.Integral):
        return _int_text(value) or _wrong("text", value)
    if not math.isfinite(value):
        return _not_finite(value)
    return str(float(value))


def _int_text(value: Any) -> str | None:
    number = int(value)
    return str(number) if number.bit_length() <= 128 else None


def _category_of(value: Any, categories: frozenset[str], listing: str) -> Any:
    if isinstance(value, str):
        value = str(value)
        if value in categories:
            return value
        text = value.strip()
        if not text:
            return _MISSING
        if text in categories:
            return text
    elif value is None:
        return _MISSING
    elif isinstance(value, bool | np.bool_):
        for text in (str(bool(value)), str(bool(value)).lower()):
            if text in categories:
                return text
    elif isinstance(value, numbers.Integral):
        text = _int_text(value)
        if text in categories:
            return text
    elif isinstance(value, numbers.Real):
        number = float(value)
        if not math.isfinite(number):
            return _not_finite(value)
        for text in (str(int(number)) if number.is_integer() else None, str(number)):
            if text in categories:
                return text
    else:
        return _wrong("one of the categories", value)
    return _Problem("unseen_category", f"must be one of {listing}, got {_show(value)}")


def _listing(categories: list[str]) -> str:
    shown = ", ".join(repr(c) for c in categories[:10])
    if len(categories) > 10:
        shown += f" and {len(categories) - 10} more"
    return shown


class _Spec:
    """A feature prepared for validation."""

    __slots__ = ("name", "type", "required", "low", "high", "coerce", "index", "categories")

    def __init__(self, feature: Feature, index: int) -> None:
        self.name = feature.name
        self.type = feature.type
        self.required = feature.required
        self.low = feature.minimum if feature.type in NUMERIC_TYPES else None
        self.high = feature.maximum if feature.type in NUMERIC_TYPES else None
        self.index = index
        self.categories: frozenset[str] = frozenset()
        coerce: Callable[[Any], Any]
        if feature.type == "number":
            coerce = _as_number
        elif feature.type == "integer":
            coerce = _as_integer
        elif feature.type == "boolean":
            coerce = _as_boolean
        elif feature.type == "category":
            cats = [str(c) for c in feature.categories or []]
            # a blank value is a missing one, so a blank category could never be chosen
            self.categories = frozenset(c for c in cats if c.strip())
            listing = _listing(cats)
            categories = self.categories

            def coerce(value: Any) -> Any:
                return _category_of(value, categories, listing)

        else:
            coerce = _as_string
        self.coerce = coerce

    def problem(self, row: int | None, code: str, text: str) -> tuple:
        return (row, self.index, self.name, code, f"'{self.name}' {text}.")

    def missing(self, row: int | None, absent: bool) -> tuple:
        if absent:
            return self.problem(row, "missing_field", "is required")
        return self.problem(row, "missing_field", "is required but was empty or null")

    def out_of_range(self, row: int, value: Any) -> tuple:
        if self.low is not None and self.high is not None:
            seen = f"{self.low:g} to {self.high:g}"
        elif self.low is not None:
            seen = f"at least {self.low:g}"
        else:
            seen = f"at most {self.high:g}"
        text = f"is {value:g}, outside the range seen in training ({seen}); predicted anyway"
        return self.problem(row, "out_of_range", text)


class _Plan:
    """A schema prepared for validation, kept on the schema while its features are unchanged."""

    __slots__ = ("signature", "specs", "types")

    def __init__(self, signature: list[tuple], features: list[Feature]) -> None:
        self.signature = signature
        self.specs = [_Spec(f, i) for i, f in enumerate(features)]
        self.types = {s.name: s.type for s in self.specs}  # shared by every Batch of the plan


def _signature(schema: InputSchema) -> list[tuple]:
    return [
        (
            f.name,
            f.type,
            f.required,
            f.minimum,
            f.maximum,
            None if f.categories is None else tuple(f.categories),
        )
        for f in schema.features
    ]


def _specs(schema: InputSchema) -> list[_Spec]:
    """The prepared features; rebuilt when an admin's edit changed the schema in place."""
    # Comparing the signature costs a fraction of preparing the features again, and it keeps
    # a mutated schema (a plain dataclass) from being validated with stale rules.
    signature = _signature(schema)
    plan = schema.__dict__.get("_plan")
    if plan is None or plan.signature != signature:
        plan = _Plan(signature, schema.features)
        schema.__dict__["_plan"] = plan
    return plan.specs


def _types(schema: InputSchema) -> dict[str, str]:
    return schema.__dict__["_plan"].types
