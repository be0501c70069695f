"""Input schemas: what a model expects, inferred from training data, and request validation.

A request's inputs become a :class:`Batch` of typed columns in schema order, or an
:class:`InputError` whose ``details`` name every problem by row and field (up to
``MAX_DETAILS``). JSON requests go through :func:`validate_inputs`; CSV uploads, read with
``dtype=str, keep_default_na=False``, go through the vectorised :func:`validate_frame`. Both
apply the same rules, so a row gets the same answer whichever way it arrives:

* a value that is ``None`` or a string that is empty (or only whitespace) is missing: an
  error for a required feature, NaN (numbers) or ``None`` (others) for an optional one;
* numbers may come as text ("5.1", " 3 "), because HTML forms and CSV files only send text
  and the text has one obvious meaning; booleans never count as numbers (``true`` for a
  price is a client bug, not 1.0), and NaN or Infinity are refused, because a model turns them
  into meaningless predictions instead of failing;
* an integer feature takes 3, 3.0 and "3", but not 2.5, which a model would silently truncate;
* a boolean takes true/false and the text "true"/"false"/"1"/"0" in any case;
* categories are compared as text, so 1 matches "1".
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

FEATURE_TYPES = ("number", "integer", "boolean", "category", "string")
NUMERIC_TYPES = ("number", "integer")
MAX_DETAILS = 100  # errors (and warnings) listed per request; a client fixes the first ones first
MAX_CATEGORIES = 50  # an inferred text column with more distinct values is free text
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
_EXACT_FLOAT = 2.0**53  # above this a float64 cannot hold every integer exactly


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


# --- validate_inputs ----------------------------------------------------------------------


def _is_column(value: Any) -> bool:
    if isinstance(value, np.ndarray):
        return value.ndim > 0
    return isinstance(value, list | tuple)


def validate_inputs(schema: InputSchema, inputs: Any, max_rows: int) -> Batch:
    """Validate JSON inputs (one object, a list of objects, or columns) into a Batch."""
    specs = _specs(schema)
    if isinstance(inputs, dict):
        if inputs and all(_is_column(v) for v in inputs.values()):
            return _validate_columns(specs, inputs, max_rows, _types(schema))
        if max_rows < 1:
            _too_many(1, max_rows)
        return _validate_one(specs, inputs, _types(schema))
    if isinstance(inputs, list | tuple):
        if not inputs:
            _fail("empty_batch", "The batch is empty: send at least one row.")
        if len(inputs) > max_rows:
            _too_many(len(inputs), max_rows)
        return _validate_rows(specs, inputs, _types(schema))
    _fail(
        "bad_shape",
        "The inputs must be an object of feature values, a list of such objects, or an object "
        f"of equal-length lists (columns); got {_shape_name(inputs)}.",
    )
    raise AssertionError  # unreachable: _fail raises


def _too_many(rows: int, max_rows: int) -> None:
    _fail(
        "too_many_rows",
        f"The batch has {rows:,} rows; at most {max_rows:,} are allowed in one JSON request. "
        "Send larger batches as CSV.",
    )


def _unknown(row: int | None, names: Any, specs: list[_Spec]) -> list[tuple]:
    expected = ", ".join(s.name for s in specs[:20]) + (", ..." if len(specs) > 20 else "")
    return [
        (
            row,
            len(specs),
            str(name),
            "unknown_field",
            f"'{name}' is not a feature of this model (expected: {expected}).",
        )
        for name in sorted(map(str, names))
    ]


def _validate_one(specs: list[_Spec], row: dict, types: dict[str, str]) -> Batch:
    """One object: the per-request hot path, so plain Python until the final arrays."""
    problems: list[tuple] = []
    warnings: list[tuple] = []
    values: list[Any] = []
    found = 0
    for spec in specs:
        value = row.get(spec.name, _MISSING)
        if value is _MISSING:
            absent = True
        else:
            found += 1
            absent = False
            value = spec.coerce(value)
        if value is _MISSING:
            if spec.required:
                problems.append(spec.missing(0, absent))
            value = None
        elif value.__class__ is _Problem:
            problems.append(spec.problem(0, value.code, value.text))
        elif (
            spec.low is not None and value < spec.low or spec.high is not None and value > spec.high
        ):
            warnings.append(spec.out_of_range(0, value))
        values.append(value)
    if found != len(row):
        names = {s.name for s in specs}
        problems.extend(_unknown(0, [k for k in row if k not in names], specs))
    if problems:
        _raise(problems)
    columns: dict[str, np.ndarray] = {}
    for spec, value in zip(specs, values, strict=True):
        kind = spec.type
        if kind == "number":
            columns[spec.name] = np.array([math.nan if value is None else value])
        elif kind == "integer":
            columns[spec.name] = (
                np.array([math.nan]) if value is None else np.array([value], dtype=np.int64)
            )
        elif kind == "boolean" and value is not None:
            columns[spec.name] = np.array([value], dtype=bool)
        else:
            columns[spec.name] = np.array([value], dtype=object)
    return Batch(
        columns=columns,
        rows=1,
        warnings=_sorted(warnings)[0] if warnings else [],
        types=types,
    )


def _validate_rows(specs: list[_Spec], rows: list | tuple, types: dict[str, str]) -> Batch:
    problems: list[tuple] = []
    names = frozenset(types)
    objects: list[dict] = []
    for i, row in enumerate(rows):
        if isinstance(row, dict):
            objects.append(row)
            if not row.keys() <= names:
                problems.extend(_unknown(i, [k for k in row if k not in names], specs))
        else:
            objects.append({})
            problems.append(
                (
                    i,
                    -1,
                    None,
                    "not_an_object",
                    f"Row {i} must be an object of feature values, got {_shape_name(row)}.",
                )
            )
    skip = {p[0] for p in problems if p[3] == "not_an_object"}
    # an absent key reads as _MISSING (not None) so that its message can say so
    columns = {s.name: [r.get(s.name, _MISSING) for r in objects] for s in specs}
    return _build(specs, columns, len(objects), problems, skip, types)


def _validate_columns(
    specs: list[_Spec], inputs: dict, max_rows: int, types: dict[str, str]
) -> Batch:
    lengths = {str(k): len(v) for k, v in inputs.items()}
    if len(set(lengths.values())) > 1:
        shown = ", ".join(f"{k}: {n}" for k, n in list(lengths.items())[:10])
        _fail(
            "ragged_columns",
            f"The columns have different lengths ({shown}); every column needs one value per row.",
        )
    rows = next(iter(lengths.values()))
    if rows == 0:
        _fail("empty_batch", "The batch is empty: send at least one row.")
    if rows > max_rows:
        _too_many(rows, max_rows)
    names = {s.name for s in specs}
    problems = _unknown(None, [k for k in inputs if k not in names], specs)
    columns: dict[str, list | np.ndarray] = {}
    for spec in specs:
        if spec.name in inputs:
            column = inputs[spec.name]
            columns[spec.name] = column if isinstance(column, np.ndarray) else list(column)
        elif spec.required:
            problems.append(
                spec.problem(None, "missing_field", "is required: the inputs have no such column")
            )
        else:
            columns[spec.name] = [None] * rows
    return _build(specs, columns, rows, problems, set(), types)


def _build(
    specs: list[_Spec],
    columns: dict[str, Any],
    rows: int,
    problems: list[tuple],
    skip: set[int],
    types: dict[str, str],
) -> Batch:
    """Coerce extracted columns, collect every problem, and warn about out-of-range numbers."""
    out: dict[str, np.ndarray] = {}
    warnings: list[tuple] = []
    for spec in specs:
        if spec.name not in columns:
            continue  # a missing required column, already reported
        values = columns[spec.name]
        array = _fast_column(spec, values) if not skip else None
        if array is None:
            if isinstance(values, np.ndarray):
                values = values.tolist()
            array = _slow_column(spec, values, problems, skip)
        if array is not None:
            out[spec.name] = array
            if spec.low is not None or spec.high is not None:
                _range_warnings(spec, array, 0, warnings)
    if problems:
        _raise(problems)
    return Batch(
        columns=out,
        rows=rows,
        warnings=_sorted(warnings)[0] if warnings else [],
        types=types,
    )


def _fast_column(spec: _Spec, values: Any) -> np.ndarray | None:
    """The common all-valid column in a few C loops, or None to go value by value."""
    try:
        if isinstance(values, np.ndarray):
            if values.ndim != 1:
                return None
            kind = values.dtype.kind
            if spec.type == "number" and kind in "fiu":
                array = values.astype(np.float64)
                return array if np.isfinite(array).all() else None
            if spec.type == "integer" and kind in "iu":
                return values.astype(np.int64) if values.size == 0 or _fits(values) else None
            if spec.type == "boolean" and kind == "b":
                return values.astype(bool)
            return None
        types = set(map(type, values))
        if spec.type == "number" and types <= {float, int}:
            array = np.array(values, dtype=np.float64)
            return array if np.isfinite(array).all() else None
        if spec.type == "integer" and types == {int}:
            return np.array(values, dtype=np.int64)
        if spec.type == "boolean" and types == {bool}:
            return np.array(values, dtype=bool)
        if spec.type == "category" and types == {str}:
            if spec.categories.issuperset(values):
                return _objects(values)
        elif spec.type == "string" and types == {str} and all(v.strip() for v in values):
            return _objects(values)
    except (OverflowError, ValueError, TypeError):
        pass  # e.g. an integer beyond int64: the slow path names the row
    return None


def _fits(values: np.ndarray) -> bool:
    return bool(values.min() >= _INT64_MIN and values.max() <= _INT64_MAX)


def _objects(values: list) -> np.ndarray:
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


def _slow_column(
    spec: _Spec,
    values: list,
    problems: list[tuple],
    skip: set[int],
) -> np.ndarray | None:
    coerce = spec.coerce
    coerced: list[Any] = [None] * len(values)
    missing = False
    failed = bool(skip)
    found = 0
    for i, value in enumerate(values):
        if i in skip:
            continue
        result = _MISSING if value is _MISSING else coerce(value)
        if result is _MISSING:
            if spec.required:
                problems.append(spec.missing(i, value is _MISSING))
                failed = True
                found += 1
            missing = True
        elif result.__class__ is _Problem:
            problems.append(spec.problem(i, result.code, result.text))
            failed = True
            found += 1
        else:
            coerced[i] = result
        if found > MAX_DETAILS:
            break  # only the first rows' problems are listed; later ones cannot make the cut
    if failed:
        return None
    return _column_array(spec, coerced, missing)


def _column_array(spec: _Spec, values: list, missing: bool) -> np.ndarray:
    """The column's array from coerced values, ``None`` marking a missing optional value."""
    kind = spec.type
    if kind == "number" or kind == "integer" and missing:
        return np.array([math.nan if v is None else v for v in values], dtype=np.float64)
    if kind == "integer":
        return np.array(values, dtype=np.int64)
    if kind == "boolean" and not missing:
        return np.array(values, dtype=bool)
    return _objects(values)


def _range_warnings(spec: _Spec, array: np.ndarray, first_row: int, warnings: list[tuple]) -> None:
    mask = np.zeros(array.shape, dtype=bool)
    if spec.low is not None:
        mask |= array < spec.low
    if spec.high is not None:
        mask |= array > spec.high
    for i in np.flatnonzero(mask)[:MAX_DETAILS]:
        value = array[i]
        warnings.append(spec.out_of_range(first_row + int(i), value.item()))


# --- validate_frame ---------------------------------------------------------------------


def validate_frame(schema: InputSchema, frame: pd.DataFrame, first_row: int = 0) -> Batch:
    """Validate a CSV chunk (read with dtype=str) column by column; extra columns are ignored."""
    specs = _specs(schema)
    types = _types(schema)
    rows = len(frame)
    if rows == 0:
        _fail("empty_batch", "The CSV has no data rows: send at least one row.")
    problems: list[tuple] = []
    warnings: list[tuple] = []
    columns: dict[str, np.ndarray] = {}
    positions: dict[str, list[int]] = {}
    for position, label in enumerate(frame.columns):
        positions.setdefault(str(label), []).append(position)
    for spec in specs:
        if spec.name not in positions:
            if spec.required:
                problems.append(
                    spec.problem(None, "missing_field", "is required: the CSV has no such column")
                )
            else:
                columns[spec.name] = _column_array(spec, [None] * rows, True)
            continue
        if len(positions[spec.name]) > 1:
            problems.append(spec.problem(None, "bad_shape", "appears in more than one column"))
            continue
        texts = _texts(frame.iloc[:, positions[spec.name][0]])
        array = _frame_column(spec, texts, first_row, problems)
        if array is not None:
            columns[spec.name] = array
            if spec.low is not None or spec.high is not None:
                _range_warnings(spec, array, first_row, warnings)
    if problems:
        _raise(problems)
    return Batch(
        columns=columns,
        rows=rows,
        warnings=_sorted(warnings)[0] if warnings else [],
        types=types,
    )


def _texts(series: pd.Series) -> np.ndarray:
    """The cells as an object array of str, missing cells as ""."""
    values = series.to_numpy(dtype=object)
    # A chunk read with dtype=str, keep_default_na=False holds only str: one C pass shows it,
    # where isna() would cost a third of the whole validation.
    if pd.api.types.infer_dtype(values, skipna=False) in ("string", "empty"):
        return values
    nulls = pd.isna(values)
    # not (only) text: turn the cells into the text a CSV would have held
    return np.array(
        [
            "" if null else v if type(v) is str else str(v)
            for v, null in zip(values, nulls, strict=True)
        ],
        dtype=object,
    )


def _frame_column(
    spec: _Spec, texts: np.ndarray, first_row: int, problems: list[tuple]
) -> np.ndarray | None:
    rows = len(texts)
    empty = texts == ""
    has_empty = bool(empty.any())
    filled = ~empty
    values = texts[filled] if has_empty else texts
    positions = np.flatnonzero(filled) if has_empty else None
    kind = spec.type
    parsed: np.ndarray | None
    recheck: np.ndarray  # indexes into values that need the exact, one-by-one rules
    if kind == "number":
        parsed, recheck = _parse_floats(values)
    elif kind == "integer":
        parsed, recheck = _parse_integers(values)
    elif kind == "boolean":
        mapped = pd.Series(values, dtype=object).map(_BOOLEAN_TEXTS)
        unmatched = mapped.isna().to_numpy()
        parsed = np.where(unmatched, False, mapped.to_numpy(dtype=object)).astype(bool)
        recheck = np.flatnonzero(unmatched)
    elif kind == "category":
        known = pd.Series(values, dtype=object).isin(spec.categories).to_numpy()
        parsed = values.copy()
        recheck = np.flatnonzero(~known)
    else:
        parsed = values.copy()
        recheck = np.flatnonzero(pd.Series(values, dtype=object).str.isspace().to_numpy())
    # Values the vectorised pass could not settle go through the scalar rules, so CSV and JSON
    # rows get the same answer (and the same message).
    failed = False
    found = 0
    later_missing: list[int] = []
    if parsed is None:
        recheck = np.arange(len(values))
        parsed = np.zeros(len(values), dtype=np.float64 if kind == "number" else np.int64)
    if kind == "integer" and len(recheck) and parsed.dtype != object:
        parsed = parsed.astype(object)  # exact Python ints from the scalar rules fit here
    for j in recheck:
        row = int(j) if positions is None else int(positions[j])
        result = spec.coerce(values[j])
        if result is _MISSING:
            if spec.required:
                problems.append(spec.missing(first_row + row, False))
                failed = True
                found += 1
            later_missing.append(row)
        elif result.__class__ is _Problem:
            problems.append(spec.problem(first_row + row, result.code, result.text))
            failed = True
            found += 1
        else:
            parsed[j] = result
        if found > MAX_DETAILS:
            break
    if has_empty and spec.required:
        for row in np.flatnonzero(empty)[: MAX_DETAILS + 1]:
            problems.append(spec.missing(first_row + int(row), False))
        failed = True
    if failed:
        return None
    missing = has_empty or bool(later_missing)
    if not missing:
        return _frame_array(kind, parsed)
    # optional feature with missing cells: spread the parsed values back over all rows
    full = np.full(rows, math.nan) if kind in NUMERIC_TYPES else np.empty(rows, dtype=object)
    if positions is None:
        full[:] = parsed
    else:
        full[positions] = parsed
    if later_missing:
        full[later_missing] = math.nan if kind in NUMERIC_TYPES else None
    return full


def _frame_array(kind: str, parsed: np.ndarray) -> np.ndarray:
    if kind == "number":
        return parsed.astype(np.float64, copy=False)
    if kind == "integer":
        return parsed.astype(np.int64, copy=False)
    if kind == "boolean":
        return parsed.astype(bool, copy=False)
    return parsed


_BOOLEAN_TEXTS = {
    text: value
    for word, value in _TRUE_WORDS.items()
    for text in (word, word.upper(), word.capitalize())
}


def _parse_floats(values: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
    """Parse with Python's float() (numpy's object cast), the same rule as a JSON string."""
    try:
        parsed = values.astype(np.float64)
    except (ValueError, TypeError, OverflowError):
        return None, np.arange(len(values))
    return parsed, np.flatnonzero(~np.isfinite(parsed))


def _parse_integers(values: np.ndarray) -> tuple[np.ndarray | None, np.ndarray]:
    """Integers via int() where every cell is plain digits, else via float and a whole check."""
    try:
        return values.astype(np.int64), np.empty(0, dtype=np.intp)
    except (ValueError, TypeError, OverflowError):
        pass
    floats, bad = _parse_floats(values)
    if floats is None:
        return None, bad
    exact = np.isfinite(floats) & (np.abs(floats) < _EXACT_FLOAT) & (floats == np.floor(floats))
    parsed = np.zeros(len(values), dtype=np.int64)
    parsed[exact] = floats[exact]
    return parsed, np.flatnonzero(~exact)


# --- infer_schema -----------------------------------------------------------------------


def infer_schema(frame: pd.DataFrame) -> InputSchema:
    """Infer each column's type, requiredness, observed range and example from training data."""
    names = [str(c) for c in frame.columns]
    if len(set(names)) != len(names):
        raise ValueError("The training data has duplicate column names.")
    features = []
    for position, name in enumerate(names):
        features.append(_infer_feature(name, frame.iloc[:, position]))
    return InputSchema(features)


def _infer_feature(name: str, series: pd.Series) -> Feature:
    required = not bool(series.isna().any())
    values = series.dropna()
    dtype = series.dtype
    inferred = None
    if pd.api.types.is_object_dtype(dtype):
        inferred = pd.api.types.infer_dtype(values, skipna=True)
    if pd.api.types.is_bool_dtype(dtype) or inferred == "boolean":
        counts = values.astype(bool).value_counts()
        example = (
            min(bool(v) for v, n in counts.items() if n == counts.max()) if len(counts) else None
        )
        return Feature(name, "boolean", required, example=example)
    if pd.api.types.is_integer_dtype(dtype) or inferred == "integer":
        return _numeric_feature(name, "integer", required, values)
    if (
        pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_complex_dtype(dtype)
    ) or inferred in ("floating", "mixed-integer-float"):
        # A float column stays "number" even when every value is whole: pandas makes any
        # integer column with a missing value float, and the model was trained on floats.
        return _numeric_feature(name, "number", required, values)
    texts = values.astype(str)
    blank = texts.str.strip() == ""
    if blank.any():
        required = False  # a blank cell is a missing value in requests too
        texts = texts[~blank]
    counts = texts.value_counts()
    example = _most_frequent(counts)
    distinct = len(counts)
    if distinct and distinct <= MAX_CATEGORIES and distinct < len(series) / 2:
        categories = set(counts.index)
        if isinstance(dtype, pd.CategoricalDtype):
            categories |= {str(c) for c in dtype.categories}
        return Feature(name, "category", required, categories=sorted(categories), example=example)
    return Feature(name, "string", required, example=example)


def _most_frequent(counts: pd.Series) -> str | None:
    if counts.empty:
        return None
    top = counts.max()
    return min(str(v) for v, n in counts.items() if n == top)  # ties: the first alphabetically


def _numeric_feature(name: str, kind: str, required: bool, values: pd.Series) -> Feature:
    numbers_ = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
    numbers_ = numbers_[np.isfinite(numbers_)]
    if not len(numbers_):
        return Feature(name, kind, required)
    low, high, median = numbers_.min(), numbers_.max(), float(np.median(numbers_))
    if kind == "integer":
        return Feature(
            name, kind, required, minimum=int(low), maximum=int(high), example=round(median)
        )
    return Feature(
        name, kind, required, minimum=float(low), maximum=float(high), example=_rounded(median)
    )


def _rounded(value: float) -> float:
    """Four significant digits, never rounding away digits before the decimal point."""
    if value == 0:
        return 0.0
    decimals = max(0, 3 - math.floor(math.log10(abs(value))))
    return round(value, decimals)
