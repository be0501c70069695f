"""``validate_inputs``: JSON inputs (one row, a list of rows, or columns) to a ``Batch``."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from modelport.serving.schema.coercion import _MISSING, _Problem, _Spec, _specs, _types
from modelport.serving.schema.features import Batch, InputSchema
from modelport.serving.schema.problems import _fail, _raise, _shape_name, _sorted
from modelport.serving.schema.types import _INT64_MAX, _INT64_MIN, MAX_DETAILS

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
