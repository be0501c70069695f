"""``infer_schema``: a schema from a sample of training data."""

from __future__ import annotations

import math

import numpy as np

from modelport.lazy import lazy
from modelport.serving.schema.features import Feature, InputSchema
from modelport.serving.schema.types import MAX_CATEGORIES

pd = lazy("pandas")

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
