"""The profile's numbers are pandas' numbers (issue 11, item 2)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from modelport.analytics.profile import (
    HISTOGRAM_BINS,
    QUANTILES,
    STEPS,
    duplicate_rows,
    pearson,
    profile_frame,
)
from tests.support.datasets import small_frame


def by_name(profile: dict) -> dict[str, dict]:
    return {column["name"]: column for column in profile["columns"]}


def test_numeric_columns_match_pandas() -> None:
    frame = small_frame()
    columns = by_name(profile_frame(frame))
    for name in ("x", "y", "n", "z"):
        series = frame[name]
        column = columns[name]
        assert column["kind"] == "numeric"
        assert column["missing"] == series.isna().sum()
        assert column["missing_share"] == series.isna().mean()
        assert column["mean"] == pytest.approx(series.mean(), rel=1e-12)
        assert column["std"] == pytest.approx(series.std(), rel=1e-12)
        assert column["min"] == series.min()
        assert column["max"] == series.max()
        expected = series.quantile(list(QUANTILES)).tolist()
        assert list(column["quantiles"].values()) == expected
        assert list(column["quantiles"]) == ["5%", "25%", "50%", "75%", "95%"]
        counts, edges = np.histogram(series.dropna(), bins=HISTOGRAM_BINS)
        assert column["histogram"]["counts"] == counts.tolist()
        assert column["histogram"]["edges"] == pytest.approx(edges.tolist())
        assert sum(column["histogram"]["counts"]) == series.notna().sum()


def test_categorical_and_boolean_columns_match_value_counts() -> None:
    frame = small_frame()
    frame.loc[3, "city"] = None
    columns = by_name(profile_frame(frame))
    city = columns["city"]
    assert city["kind"] == "categorical"
    assert city["distinct"] == frame["city"].nunique()
    counts = frame["city"].value_counts()
    assert city["top"] == [[value, int(count)] for value, count in counts.items()]
    assert city["missing"] == 1
    flag = columns["flag"]
    assert flag["kind"] == "boolean"
    assert flag["true"] == frame["flag"].sum()
    assert flag["false"] == (~frame["flag"]).sum()
    assert flag["distinct"] == 2


def test_overview_counts_missing_cells_and_duplicate_rows_as_pandas_does() -> None:
    frame = small_frame(100)
    frame = pd.concat([frame, frame.iloc[:7], frame.iloc[:2]], ignore_index=True)
    overview = profile_frame(frame)["overview"]
    assert overview["rows"] == len(frame) == 109
    assert overview["columns"] == frame.shape[1]
    assert overview["missing_cells"] == frame.isna().sum().sum()
    assert overview["duplicate_rows"] == frame.duplicated().sum() == 9
    assert overview["memory_bytes"] == frame.memory_usage(index=False, deep=True).sum()


@pytest.mark.parametrize("seed", range(5))
def test_duplicate_rows_agree_with_duplicated_on_mixed_types(seed: int) -> None:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "a": rng.integers(0, 3, 300),
            "b": rng.choice(["p", "q", None], 300),
            "c": rng.choice([0.5, np.nan], 300),
            "d": pd.Categorical(rng.choice(["u", "v"], 300)),
            "e": rng.random(300) < 0.5,
        }
    )
    assert duplicate_rows(frame) == frame.duplicated().sum()


def test_correlations_match_dataframe_corr_with_missing_values() -> None:
    frame = small_frame(500)
    frame.loc[frame.index[::5], "x"] = np.nan
    numeric = frame[["x", "y", "n", "z"]].astype(float)
    expected = numeric.corr().to_numpy()
    assert np.allclose(pearson(numeric.to_numpy()), expected, atol=1e-12, equal_nan=True)
    stored = profile_frame(frame)["correlations"]
    assert stored["columns"] == ["x", "y", "n", "z"]
    assert np.allclose(np.array(stored["matrix"], dtype=float), expected, atol=1e-12)


def test_correlations_without_missing_values_match_too() -> None:
    numeric = small_frame(300)[["x", "n", "z"]].astype(float)
    assert np.allclose(pearson(numeric.to_numpy()), numeric.corr().to_numpy(), atol=1e-12)


def test_edge_cases_give_plain_json_without_nan() -> None:
    frame = pd.DataFrame(
        {
            "empty": [np.nan, np.nan, np.nan],
            "constant": [2.0, 2.0, 2.0],
            "infinite": [1.0, np.inf, -np.inf],
            "when": pd.to_datetime(["2026-01-01", None, "2026-03-01"]),
            "text": ["a", "a", None],
        }
    )
    steps: list[str] = []
    profile = profile_frame(frame, steps.append)
    assert steps == list(STEPS)
    json.dumps(profile, allow_nan=False)  # raises on NaN or infinity
    columns = by_name(profile)
    assert columns["empty"]["mean"] is None and columns["empty"]["histogram"]["counts"] == []
    assert columns["constant"]["std"] == 0.0
    assert sum(columns["constant"]["histogram"]["counts"]) == 3
    assert columns["infinite"]["infinite"] == 2 and columns["infinite"]["mean"] == 1.0
    assert columns["when"]["kind"] == "datetime"
    assert columns["when"]["min"].startswith("2026-01-01")
    assert columns["text"]["top"] == [["a", 2]]
    # A constant column correlates with nothing: null, not NaN.
    names = profile["correlations"]["columns"]
    matrix = profile["correlations"]["matrix"]
    assert matrix[names.index("constant")][names.index("infinite")] is None
