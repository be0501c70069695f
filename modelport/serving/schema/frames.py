"""``validate_frame``: a CSV chunk read as text to a ``Batch``, vectorised, by the same
rules as ``validate_inputs``."""

from __future__ import annotations

import math

import numpy as np

from modelport.lazy import lazy
from modelport.serving.schema.coercion import _MISSING, _TRUE_WORDS, _Problem, _Spec, _specs, _types
from modelport.serving.schema.features import Batch, InputSchema
from modelport.serving.schema.problems import _fail, _raise, _sorted
from modelport.serving.schema.rows import _column_array, _range_warnings
from modelport.serving.schema.types import _EXACT_FLOAT, MAX_DETAILS, NUMERIC_TYPES

pd = lazy("pandas")

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
