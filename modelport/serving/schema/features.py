"""A model version's input schema: its features, the batch validated inputs become, and the
error that names every problem by row and field."""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from modelport.lazy import lazy
from modelport.serving.schema.coercion import _MISSING, _Problem, _show, _Spec
from modelport.serving.schema.types import FEATURE_TYPES, NUMERIC_TYPES

pd = lazy("pandas")


@dataclass
class Feature:
    """One input of a model."""

    name: str
    type: str  # one of FEATURE_TYPES
    required: bool = True
    minimum: float | None = None  # observed range in training data (numbers/integers)
    maximum: float | None = None
    categories: list[str] | None = None  # for "category"
    example: Any = None  # a typical value (median / most frequent) for forms and docs
    description: str = ""


_FEATURE_KEYS = tuple(f.name for f in dataclasses.fields(Feature))


@dataclass
class InputSchema:
    """The ordered features a model version takes."""

    features: list[Feature]

    @property
    def names(self) -> list[str]:
        """Feature names in model order."""
        return [f.name for f in self.features]

    def to_dict(self) -> dict:
        """A JSON-storable ``{"features": [...]}``."""
        return {"features": [dataclasses.asdict(f) for f in self.features]}

    @classmethod
    def from_dict(cls, data: dict) -> InputSchema:
        """Build a schema from stored or admin-edited JSON; ValueError says what is wrong."""
        if not isinstance(data, dict):
            raise ValueError('The schema must be an object like {"features": [...]}.')
        extra = sorted(set(data) - {"features"})
        if extra:
            raise ValueError(f"Unknown schema key {extra[0]!r}; only 'features' is allowed.")
        items = data.get("features")
        if not isinstance(items, list) or not items:
            raise ValueError("'features' must be a non-empty list of features.")
        features = [_feature_from_dict(item, i) for i, item in enumerate(items)]
        seen: set[str] = set()
        for f in features:
            if f.name in seen:
                raise ValueError(f"Feature name {f.name!r} appears more than once.")
            seen.add(f.name)
        return cls(features)

    def example_row(self) -> dict:
        """One valid input row: each feature's example, or a neutral value when it has none."""
        return {f.name: f.example if f.example is not None else _fallback(f) for f in self.features}


def _fallback(f: Feature) -> Any:
    if f.type == "category":
        return f.categories[0] if f.categories else ""
    if f.type == "boolean":
        return False
    if f.type == "string":
        return ""
    low, high = f.minimum, f.maximum
    middle = (low + high) / 2 if low is not None and high is not None else (low or high or 0)
    return round(middle) if f.type == "integer" else float(middle)


def _feature_from_dict(item: Any, index: int) -> Feature:
    if not isinstance(item, dict):
        raise ValueError(f"Feature {index + 1} must be an object with at least name and type.")
    name = item.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"Feature {index + 1} needs a non-empty text 'name'.")
    extra = sorted(set(item) - set(_FEATURE_KEYS))
    if extra:
        raise ValueError(
            f"Feature {name!r} has an unknown key {extra[0]!r}; "
            f"allowed keys are {', '.join(_FEATURE_KEYS)}."
        )
    kind = item.get("type")
    if kind not in FEATURE_TYPES:
        raise ValueError(
            f"Feature {name!r} has type {kind!r}; the type must be one of "
            f"{', '.join(FEATURE_TYPES)}."
        )
    required = item.get("required", True)
    if not isinstance(required, bool):
        raise ValueError(f"Feature {name!r}: 'required' must be true or false.")
    description = item.get("description", "")
    if description is None:
        description = ""
    if not isinstance(description, str):
        raise ValueError(f"Feature {name!r}: 'description' must be text.")
    bounds = {}
    for key in ("minimum", "maximum"):
        value = item.get(key)
        if value is not None and kind not in NUMERIC_TYPES:
            raise ValueError(
                f"Feature {name!r}: {key} applies only to number and integer features."
            )
        if value is not None and (
            isinstance(value, bool)
            or not isinstance(value, numbers.Real)
            or not math.isfinite(value)
        ):
            raise ValueError(f"Feature {name!r}: {key} must be a finite number or null.")
        bounds[key] = value
    if (
        bounds["minimum"] is not None
        and bounds["maximum"] is not None
        and bounds["minimum"] > bounds["maximum"]
    ):
        raise ValueError(
            f"Feature {name!r}: minimum {bounds['minimum']} is greater than "
            f"maximum {bounds['maximum']}."
        )
    categories = item.get("categories")
    if kind == "category":
        if not isinstance(categories, list) or not categories:
            raise ValueError(
                f"Feature {name!r} is a category and needs a non-empty 'categories' list."
            )
        if any(isinstance(c, bool) or not isinstance(c, str | int) for c in categories):
            raise ValueError(f"Feature {name!r}: every category must be text.")
        categories = [str(c) for c in categories]
        if any(not c.strip() for c in categories):
            raise ValueError(f"Feature {name!r}: a category cannot be empty text.")
        if len(set(categories)) != len(categories):
            raise ValueError(f"Feature {name!r}: categories must not repeat.")
    elif categories is not None:
        raise ValueError(f"Feature {name!r}: 'categories' applies only to category features.")
    feature = Feature(
        name=name,
        type=kind,
        required=required,
        minimum=bounds["minimum"],
        maximum=bounds["maximum"],
        categories=categories,
        description=description,
    )
    example = item.get("example")
    if example is not None:
        spec = _Spec(feature, 0)
        value = spec.coerce(example)
        if value.__class__ is _Problem or value is _MISSING:
            raise ValueError(
                f"Feature {name!r}: the example {_show(example)} is not a valid value "
                f"for a {kind} feature."
            )
        feature.example = value
    return feature


class InputError(Exception):
    """422: details is a list of {"row": int|None, "field": str|None, "code": str, "message": str}."""

    def __init__(self, details: list[dict], truncated: bool = False) -> None:
        self.details = details
        self.truncated = truncated  # more problems existed than MAX_DETAILS
        if len(details) == 1:
            message = details[0]["message"]
        elif truncated:
            message = f"The inputs have more than {len(details)} problems; the first are listed."
        else:
            message = f"The inputs have {len(details)} problems; each is listed."
        super().__init__(message)


@dataclass(eq=False)
class Batch:
    """Validated inputs as typed columns in schema order."""

    columns: dict[str, np.ndarray]  # float64 number, int64 integer, bool, object str
    rows: int
    warnings: list[dict]  # same shape as InputError details, e.g. code "out_of_range"
    # feature types by name, so that matrix() knows which columns are numeric even when an
    # optional boolean with missing values has to be an object column
    types: dict[str, str] = field(default_factory=dict, repr=False)

    def frame(self) -> pd.DataFrame:
        """The batch as a DataFrame, columns in schema order."""
        return pd.DataFrame(self.columns)

    def matrix(self, dtype: Any = np.float32) -> np.ndarray:
        """A C-ordered 2-D [rows, features] array of the number, integer and boolean features."""
        columns = []
        for name, column in self.columns.items():
            if not self._numeric(name, column):
                continue
            if column.dtype == object:  # an optional boolean with missing values
                column = np.array([np.nan if v is None else float(v) for v in column])
            columns.append(column)
        if self.rows == 1 and columns:
            # one row: a single small conversion beats filling a preallocated array
            return np.array(columns, dtype=dtype).reshape(1, len(columns))
        out = np.empty((self.rows, len(columns)), dtype=dtype)
        for j, column in enumerate(columns):
            out[:, j] = column
        return out

    def _numeric(self, name: str, column: np.ndarray) -> bool:
        kind = self.types.get(name)
        if kind is not None:
            return kind in ("number", "integer", "boolean")
        return column.dtype.kind in "fiub"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Batch):
            return NotImplemented
        if self.rows != other.rows or self.warnings != other.warnings:
            return False
        if list(self.columns) != list(other.columns):
            return False
        for name, column in self.columns.items():
            theirs = other.columns[name]
            if column.dtype != theirs.dtype or column.shape != theirs.shape:
                return False
            if not np.array_equal(column, theirs, equal_nan=column.dtype.kind == "f"):
                return False
        return True

    __hash__ = None  # type: ignore[assignment]
