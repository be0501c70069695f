"""Data drift (``analytics.drift``, ``/api/v1/models/<name>/drift``): each test's figure is
scipy's on the same data; inputs shifted by a known amount drift on the shifted features
only, in both reference-size regimes; refusals are clear 4xx."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest
from flask import Flask
from scipy import stats
from scipy.spatial.distance import jensenshannon

from modelport.analytics import drift, schedule
from modelport.serving import registry
from modelport.serving.schema import InputSchema
from tests.support.html import check_page, text
from tests.support.http import assert_api_error, bearer
from tests.support.metrics import sample
from tests.support.models import register_demo
from tests.support.records import write_records
from tests.support.tokens import issue_token
from tests.support.users import login, make_user

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

SCHEMA = InputSchema.from_dict(
    {
        "features": [
            {"name": "a", "type": "number"},
            {"name": "b", "type": "number"},
            {"name": "colour", "type": "category", "categories": ["red", "green", "blue"]},
            {"name": "flag", "type": "category", "categories": ["yes", "no"]},
        ]
    }
)


def frame(rows: int, seed: int, *, shift: float = 0.0, colours: list[float] | None = None):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "a": rng.normal(0, 1, rows) + shift,
            "b": rng.normal(5, 2, rows),
            "colour": rng.choice(["red", "green", "blue"], rows, p=colours or [0.5, 0.3, 0.2]),
            "flag": rng.choice(["yes", "no"], rows, p=[0.7, 0.3]),
        }
    )


@pytest.fixture
def settings(app: Flask) -> Any:
    with app.app_context():
        yield


@pytest.mark.parametrize("reference_rows", [800, 5000])
def test_a_known_shift_drifts_on_the_shifted_features_only(
    settings: Any, reference_rows: int
) -> None:
    reference = frame(reference_rows, 1)
    same = drift.compare(SCHEMA, reference, frame(600, 2))
    assert [v.drift for v in same] == [False, False, False, False]
    shifted = drift.compare(SCHEMA, reference, frame(600, 3, shift=1.0, colours=[0.2, 0.3, 0.5]))
    assert {v.name: v.drift for v in shifted} == {
        "a": True,
        "b": False,
        "colour": True,
        "flag": False,
    }
    methods = {v.name: v.method for v in shifted}
    if reference_rows <= drift.SMALL_REFERENCE:
        assert methods == {"a": "ks", "b": "ks", "colour": "chisquare", "flag": "z"}
    else:
        assert methods == {
            "a": "wasserstein",
            "b": "wasserstein",
            "colour": "jensenshannon",
            "flag": "jensenshannon",
        }


def test_each_figure_is_scipys_on_the_same_data(settings: Any) -> None:
    reference, current = frame(800, 4), frame(300, 5, shift=0.3)
    ks = drift.numeric_test("a", reference["a"].to_numpy(), current["a"].to_numpy())
    expected = stats.ks_2samp(reference["a"], current["a"])
    assert (ks.statistic, ks.p_value) == (expected.statistic, expected.pvalue)
    chi = drift.categorical_test("colour", reference["colour"], current["colour"])
    table = pd.crosstab(
        np.r_[np.zeros(800), np.ones(300)], np.r_[reference["colour"], current["colour"]]
    )
    expected = stats.chi2_contingency(table.to_numpy())
    assert chi.statistic == pytest.approx(expected.statistic)
    assert chi.p_value == pytest.approx(expected.pvalue)
    big = frame(5000, 6)
    wasserstein = drift.numeric_test("b", big["b"].to_numpy(), current["b"].to_numpy())
    assert wasserstein.statistic == pytest.approx(
        stats.wasserstein_distance(big["b"], current["b"]) / np.std(big["b"])
    )
    js = drift.categorical_test("colour", big["colour"], current["colour"])
    ref = big["colour"].value_counts(normalize=True).sort_index()
    cur = current["colour"].value_counts(normalize=True).sort_index()
    assert js.statistic == pytest.approx(jensenshannon(ref, cur, base=2))


def test_the_z_test_for_two_values_is_the_textbook_one(settings: Any) -> None:
    reference = pd.Series(["yes"] * 70 + ["no"] * 30)
    current = pd.Series(["yes"] * 50 + ["no"] * 50)
    verdict = drift.categorical_test("flag", reference, current)
    # "no" sorts first: 0.3 against 0.5, pooled 0.4.
    z = (0.3 - 0.5) / np.sqrt(0.4 * 0.6 * (1 / 100 + 1 / 100))
    assert verdict.statistic == pytest.approx(z)
    assert verdict.p_value == pytest.approx(2 * stats.norm.sf(abs(z)))
    assert verdict.drift


def test_psi_bins_at_the_reference_deciles(settings: Any) -> None:
    reference, current = frame(1000, 7), frame(1000, 8, shift=0.5)
    verdict = drift.psi_test("a", reference["a"], current["a"], numeric=True)
    edges = np.quantile(reference["a"], np.linspace(0, 1, 11))
    edges[0], edges[-1] = -np.inf, np.inf
    ref = np.histogram(reference["a"], edges)[0] / 1000
    cur = np.histogram(current["a"], edges)[0] / 1000
    assert verdict.statistic == pytest.approx(np.sum((cur - ref) * np.log(cur / ref)))
    assert verdict.method == "psi" and verdict.drift
    same = drift.psi_test("a", reference["a"], frame(1000, 9)["a"], numeric=True)
    assert not same.drift


# ---- through the API, over stored prediction records -----------------------------------


def records_of(app: Flask, rows: list[dict[str, Any]], when: datetime) -> None:
    """Records of ten input rows each, written at ``when``."""
    write_records(
        app,
        *(
            {"row_count": len(rows[i : i + 10]), "inputs": rows[i : i + 10], "created_at": when}
            for i in range(0, len(rows), 10)
        ),
    )


def iris_sample(app: Flask) -> pd.DataFrame:
    with app.app_context():
        version = registry.get_model("iris").versions[0]
        sample = registry.read_sample(registry.artifact_store().path(version.sample_sha256))
    return sample.drop(columns=[registry.TARGET_COLUMN], errors="ignore")


@pytest.mark.db
def test_the_api_reports_drift_on_the_shifted_feature(
    app_factory: Any, demo_models: dict[str, Any]
) -> None:
    app = app_factory()
    register_demo(app, demo_models, "iris")
    training = iris_sample(app)
    now = datetime.now(UTC)
    shifted = training.assign(petal_length=training["petal_length"] + 2.5)
    records_of(app, shifted.to_dict("records"), now - timedelta(hours=1))
    records_of(app, training.to_dict("records"), now - timedelta(hours=30))
    client = app.test_client()
    member = bearer(issue_token(app, make_user(app), scopes=["predict"]))
    body = client.get("/api/v1/models/iris/drift", headers=member).get_json()
    assert set(body) == {
        "model",
        "version",
        "since",
        "until",
        "method",
        "reference_rows",
        "current_rows",
        "sample_rows",
        "drift",
        "share_drifted",
        "features",
        "over_time",
    }
    assert (body["model"], body["version"], body["method"]) == ("iris", 1, "auto")
    assert body["reference_rows"] == body["current_rows"] == len(training)
    drifted = {f["name"]: f["drift"] for f in body["features"]}
    assert drifted == {
        "sepal_length": False,
        "sepal_width": False,
        "petal_length": True,
        "petal_width": False,
    }
    assert (body["share_drifted"], body["drift"]) == (0.25, False)
    assert {f["method"] for f in body["features"]} == {"ks"}
    assert all(
        set(f) == {"name", "method", "statistic", "threshold", "p_value", "drift"}
        for f in body["features"]
    )
    # The day before: the training data itself, no drift anywhere.
    since = (now - timedelta(hours=31)).isoformat().replace("+00:00", "Z")
    until = (now - timedelta(hours=29)).isoformat().replace("+00:00", "Z")
    earlier = client.get(
        f"/api/v1/models/iris/drift?since={since}&until={until}", headers=member
    ).get_json()
    assert [f["drift"] for f in earlier["features"]] == [False] * 4
    # The rollup's run checks the served version over the last 24 hours: the drift alert's
    # metric; looking at other windows does not change it.
    with app.app_context():
        schedule.run()
    scraped = client.get("/metrics").get_data(as_text=True)
    assert sample(scraped, "modelport_model_drift_share", {"model": "iris"}) == 0.25


@pytest.mark.db
def test_drift_refusals_are_clear(app_factory: Any, demo_models: dict[str, Any]) -> None:
    app = app_factory()
    register_demo(app, demo_models, "iris")
    client = app.test_client()
    assert_api_error(client.get("/api/v1/models/iris/drift"), 401)
    member = bearer(issue_token(app, make_user(app), scopes=["predict"]))
    empty = client.get("/api/v1/models/iris/drift", headers=member)
    assert_api_error(empty, 422, "no_data")
    assert_api_error(client.get("/api/v1/models/iris/drift?version=9", headers=member), 404)
    assert_api_error(client.get("/api/v1/models/iris/drift?method=magic", headers=member), 422)


@pytest.mark.db
def test_the_drift_page_shows_each_feature_and_says_when_there_is_nothing(
    app_factory: Any, demo_models: dict[str, Any]
) -> None:
    app = app_factory()
    register_demo(app, demo_models, "iris")
    make_user(app, "ann@example.com")
    browser = app.test_client()
    login(browser, "ann@example.com")
    empty = text(browser.get("/models/iris/drift"))
    assert "There are no stored inputs of this version in the window." in empty
    training = iris_sample(app)
    shifted = training.assign(petal_length=training["petal_length"] + 2.5)
    records_of(app, shifted.to_dict("records"), datetime.now(UTC) - timedelta(hours=1))
    response = browser.get("/models/iris/drift?range=6h")
    page = text(response)
    check_page(page, "en")
    assert 'data-chart="chart-drift-data"' in page
    assert page.count("<strong>yes</strong>") == 1
    assert "No drift" in page  # one feature of four: the model has not drifted
    assert browser.get("/models/iris/drift?range=forever").status_code == 400


@pytest.mark.db
def test_the_drift_chart_has_its_data_as_csv(app_factory: Any, demo_models: dict[str, Any]):
    app = app_factory()
    register_demo(app, demo_models, "iris")
    make_user(app, "ann@example.com")
    browser = app.test_client()
    login(browser, "ann@example.com")
    assert browser.get("/models/iris/drift.csv?chart=drift").status_code == 422  # no inputs
    training = iris_sample(app)
    records_of(app, training.to_dict("records"), datetime.now(UTC) - timedelta(hours=1))
    lines = browser.get("/models/iris/drift.csv?chart=drift").get_data(as_text=True).splitlines()
    assert lines[0] == "name,method,statistic,p_value,threshold,drift"
    assert [line.split(",")[0] for line in lines[1:]] == [
        "sepal_length",
        "sepal_width",
        "petal_length",
        "petal_width",
    ]
