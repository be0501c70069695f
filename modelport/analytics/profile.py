"""A dataset's profile: overview, per-column statistics and correlations, computed once.

Everything is vectorised over whole columns (numpy, pandas); nothing loops over rows. The
result is plain JSON (no NaN: a figure that does not exist is ``null``), stored with the
dataset version and read back by the pages and the API.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from modelport.lazy import lazy

pd = lazy("pandas")

PROFILE_FORMAT = 1
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
HISTOGRAM_BINS = 20
TOP_VALUES = 10
# Correlations are drawn as a heatmap: past this many numeric columns it is unreadable, and
# the matrix grows with the square of the count.
MAX_CORRELATED_COLUMNS = 100
# The steps reported to ``progress``, in order (the CLI's progress bar counts them).
STEPS = ("overview", "columns", "duplicates", "correlations")

Progress = Callable[[str], None]


def column_kind(series: pd.Series) -> str:
    """numeric, boolean, datetime or categorical (everything else, text included)."""
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_numeric_dtype(dtype):
        return "numeric"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    return "categorical"


def profile_frame(frame: pd.DataFrame, progress: Progress | None = None) -> dict[str, Any]:
    """The profile of ``frame``; ``progress(step)`` is called as each of STEPS finishes."""
    report = progress or (lambda _step: None)
    rows = len(frame)
    missing = frame.isna().sum().to_numpy()
    overview = {
        "rows": rows,
        "columns": frame.shape[1],
        "memory_bytes": int(frame.memory_usage(index=False, deep=True).sum()),
        "missing_cells": int(missing.sum()),
        "missing_share": _share(int(missing.sum()), rows * frame.shape[1]),
        "duplicate_rows": 0,
    }
    report("overview")
    columns = [
        _column(str(name), frame.iloc[:, position], int(missing[position]), rows)
        for position, name in enumerate(frame.columns)
    ]
    report("columns")
    overview["duplicate_rows"] = duplicate_rows(frame)
    report("duplicates")
    numeric = [c["name"] for c in columns if c["kind"] == "numeric"][:MAX_CORRELATED_COLUMNS]
    positions = [frame.columns.get_loc(name) for name in numeric]
    correlations = {
        "columns": numeric,
        "matrix": _clean(pearson(_numeric_matrix(frame, positions)).tolist()) if numeric else [],
    }
    report("correlations")
    return {
        "format": PROFILE_FORMAT,
        "overview": overview,
        "columns": columns,
        "correlations": correlations,
    }


def duplicate_rows(frame: pd.DataFrame) -> int:
    """Rows equal to an earlier row, counted on a 64-bit hash of each row.

    ``DataFrame.duplicated`` compares rows as Python objects (seconds for a million);
    hashing every column vectorised and counting repeated hashes takes a fraction of that.
    Two different rows share a hash with a chance of about n²/2⁶⁵ (3·10⁻⁸ for 10⁶ rows).
    """
    if frame.empty:
        return 0
    hashes = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    return int(len(hashes) - len(pd.unique(hashes)))


def pearson(values: np.ndarray) -> np.ndarray:
    """Pearson correlations of the columns of ``values`` (NaN = missing), pairwise complete,
    as ``DataFrame.corr()`` gives them, from a handful of matrix products."""
    if values.shape[1] == 0:
        return np.empty((0, 0))
    valid = ~np.isnan(values)
    if valid.all():
        with np.errstate(divide="ignore", invalid="ignore"):
            centred = values - values.mean(axis=0)
            products = centred.T @ centred
            scale = np.sqrt(np.diag(products))
            result = products / np.outer(scale, scale)
    else:
        mask = valid.astype(np.float64)
        # Centring first keeps the sums of squares from cancelling catastrophically.
        present = mask.sum(axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            means = np.where(present > 0, np.where(valid, values, 0.0).sum(axis=0) / present, 0.0)
        filled = np.where(valid, values - means, 0.0)
        count = mask.T @ mask  # rows where both columns have a value
        sums = filled.T @ mask  # sums[i, j]: column i over the rows where j has a value too
        squares = (filled * filled).T @ mask
        cross = filled.T @ filled
        with np.errstate(divide="ignore", invalid="ignore"):
            covariance = cross - sums * sums.T / count
            variance_i = squares - sums * sums / count
            variance_j = variance_i.T
            result = covariance / np.sqrt(variance_i * variance_j)
            result[count < 2] = np.nan
    result = np.clip(result, -1.0, 1.0)
    np.fill_diagonal(result, np.where(np.isnan(np.diag(result)), np.nan, 1.0))
    return result


def _numeric_matrix(frame: pd.DataFrame, positions: list[int]) -> np.ndarray:
    matrix = np.empty((len(frame), len(positions)), dtype=np.float64)
    for target, position in enumerate(positions):
        matrix[:, target] = _floats(frame.iloc[:, position])
    return matrix


def _floats(series: pd.Series) -> np.ndarray:
    values = series.to_numpy(dtype=np.float64, na_value=np.nan)
    # Infinities are values but have no place in a mean or a histogram.
    return np.where(np.isinf(values), np.nan, values) if np.isinf(values).any() else values


def _column(name: str, series: pd.Series, missing: int, rows: int) -> dict[str, Any]:
    kind = column_kind(series)
    column: dict[str, Any] = {
        "name": name,
        "kind": kind,
        "dtype": str(series.dtype),
        "missing": missing,
        "missing_share": _share(missing, rows),
    }
    if kind == "numeric":
        column |= _numeric(series)
    elif kind == "boolean":
        column |= _boolean(series)
    elif kind == "datetime":
        column |= _datetime(series)
    else:
        column |= _categorical(series)
    return column


def _numeric(series: pd.Series) -> dict[str, Any]:
    raw = series.to_numpy(dtype=np.float64, na_value=np.nan)
    values = raw[np.isfinite(raw)]
    stats: dict[str, Any] = {
        "mean": None,
        "std": None,
        "min": None,
        "max": None,
        "zeros": int(np.count_nonzero(values == 0)),
        "infinite": int(np.count_nonzero(np.isinf(raw))),
        "quantiles": {},
        "histogram": {"edges": [], "counts": []},
    }
    if values.size == 0:
        return stats
    low, high = float(values.min()), float(values.max())
    stats |= {
        "mean": _number(values.mean()),
        "std": _number(values.std(ddof=1)) if values.size > 1 else None,
        "min": low,
        "max": high,
        "quantiles": {
            _percent(q): float(v)
            for q, v in zip(QUANTILES, np.quantile(values, QUANTILES), strict=True)
        },
    }
    counts, edges = np.histogram(values, bins=HISTOGRAM_BINS, range=_histogram_range(low, high))
    stats["histogram"] = {"edges": edges.tolist(), "counts": counts.tolist()}
    return stats


def _histogram_range(low: float, high: float) -> tuple[float, float]:
    if low == high:  # a constant column: one value, centred in a unit-wide range
        return low - 0.5, high + 0.5
    return low, high


def _boolean(series: pd.Series) -> dict[str, Any]:
    present = series.dropna()
    true = int(np.count_nonzero(present.to_numpy(dtype=bool)))
    false = len(present) - true
    top = sorted((("true", true), ("false", false)), key=lambda item: -item[1])
    return {
        "distinct": int(true > 0) + int(false > 0),
        "true": true,
        "false": false,
        "top": [[label, count] for label, count in top if count],
    }


def _datetime(series: pd.Series) -> dict[str, Any]:
    present = series.dropna()
    return {
        "distinct": int(present.nunique()),
        "min": present.min().isoformat() if len(present) else None,
        "max": present.max().isoformat() if len(present) else None,
    }


def _categorical(series: pd.Series) -> dict[str, Any]:
    counts = series.value_counts(dropna=True, sort=True)
    counts = counts[counts > 0]  # a category dtype lists unused categories with 0
    return {
        "distinct": len(counts),
        "top": [[str(value), int(count)] for value, count in counts.head(TOP_VALUES).items()],
    }


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def _percent(q: float) -> str:
    return f"{q * 100:g}%"


def _number(value: float) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None


def _clean(matrix: list[list[float]]) -> list[list[float | None]]:
    return [[_number(value) for value in row] for row in matrix]
