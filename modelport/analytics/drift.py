"""Data drift: are a model version's recent inputs still like the data it was trained on?

Per feature, the inputs of the version's prediction records over a window (the current
data) against the training sample stored when the version was registered (the reference),
with Evidently's default tests, so that users recognise the numbers:

* a reference of at most ``SMALL_REFERENCE`` rows: the two-sample Kolmogorov–Smirnov test
  for numbers, the chi-square test for categories, the z-test for two proportions for a
  feature with two values; a feature drifts when p < ``MODELPORT_DRIFT_P_VALUE`` (0.05);
* a larger reference: the Wasserstein distance divided by the reference's standard
  deviation for numbers, the Jensen–Shannon distance for categories; a feature drifts when
  the distance reaches ``MODELPORT_DRIFT_DISTANCE`` (0.1);
* ``method=psi`` instead: the population stability index over ten bins cut at the
  reference's deciles (categories: one bin each); drift from ``MODELPORT_DRIFT_PSI`` (0.1;
  0.25 is the usual "major shift").

The model drifts when at least ``MODELPORT_DRIFT_SHARE`` (half) of its features drift. The
current data is the stored inputs of at most ``MAX_CURRENT_ROWS`` rows of the window's most
recent records; rows past a record's stored limit, purged or erased, are not there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial.distance import jensenshannon
from sqlalchemy import select

from modelport.analytics.monitoring import Window
from modelport.auth.caller import Caller
from modelport.config import current_settings
from modelport.extensions import db
from modelport.models.predictions import Outcome, PredictionRecord, Source
from modelport.models.registry import ModelVersion
from modelport.ops import metrics
from modelport.serving import access, registry
from modelport.serving.predictor import ModelNotFound
from modelport.serving.schema import InputSchema
from modelport.serving.schema.types import NUMERIC_TYPES

SMALL_REFERENCE = 1000
MAX_CURRENT_ROWS = 20_000
METHODS = ("auto", "psi")
PSI_BINS = 10
EPSILON = 1e-4  # an empty bin's share in PSI (as Evidently does)


class DriftError(Exception):
    """Drift that cannot be computed: ``code`` ``no_data`` (no inputs in the window) or
    ``no_reference`` (the version has no stored training sample)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Verdict:
    """One feature's test: its statistic, the threshold, a p-value for the tests that have
    one, and whether the feature drifted."""

    name: str
    method: str
    statistic: float
    threshold: float
    drift: bool
    p_value: float | None = None

    def as_json(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "name": self.name,
            "method": self.method,
            "statistic": round(self.statistic, 6),
            "threshold": self.threshold,
            "drift": self.drift,
        }
        if self.p_value is not None:
            found["p_value"] = round(self.p_value, 6)
        return found


def _p_test(name: str, method: str, statistic: float, p_value: float) -> Verdict:
    threshold = current_settings().drift_p_value
    return Verdict(name, method, float(statistic), threshold, bool(p_value < threshold), p_value)


def _distance(name: str, method: str, value: float) -> Verdict:
    threshold = current_settings().drift_distance
    return Verdict(name, method, float(value), threshold, bool(value >= threshold))


def _shares(reference: pd.Series, current: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Each category's share of the reference and of the current data, over both's values."""
    values = sorted(set(reference.astype(str)) | set(current.astype(str)))
    ref = reference.astype(str).value_counts().reindex(values, fill_value=0).to_numpy(float)
    cur = current.astype(str).value_counts().reindex(values, fill_value=0).to_numpy(float)
    return ref, cur


def numeric_test(name: str, reference: np.ndarray, current: np.ndarray) -> Verdict:
    """KS (small reference) or the normed Wasserstein distance (large)."""
    if len(reference) <= SMALL_REFERENCE:
        result = stats.ks_2samp(reference, current)
        return _p_test(name, "ks", result.statistic, result.pvalue)
    spread = float(np.std(reference))
    distance = stats.wasserstein_distance(reference, current) / (spread if spread > 0 else 1.0)
    return _distance(name, "wasserstein", distance)


def categorical_test(name: str, reference: pd.Series, current: pd.Series) -> Verdict:
    """Chi-square, or the z-test for two values (small reference); Jensen–Shannon (large)."""
    ref, cur = _shares(reference, current)
    if len(reference) > SMALL_REFERENCE:
        distance = jensenshannon(ref / ref.sum(), cur / cur.sum(), base=2)
        return _distance(name, "jensenshannon", 0.0 if math.isnan(distance) else distance)
    if len(ref) <= 1:
        return _p_test(name, "chisquare", 0.0, 1.0)  # one value on both sides: nothing moved
    if len(ref) == 2:
        n1, n2 = ref.sum(), cur.sum()
        p1, p2 = ref[0] / n1, cur[0] / n2
        pooled = (ref[0] + cur[0]) / (n1 + n2)
        se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
        z = 0.0 if se == 0 else (p1 - p2) / se
        return _p_test(name, "z", z, float(2 * stats.norm.sf(abs(z))))
    result = stats.chi2_contingency(np.vstack([ref, cur]))
    return _p_test(name, "chisquare", result.statistic, result.pvalue)


def psi_test(name: str, reference: pd.Series, current: pd.Series, numeric: bool) -> Verdict:
    """The population stability index, bins at the reference's deciles (or its categories)."""
    if numeric:
        edges = np.unique(np.quantile(reference.to_numpy(float), np.linspace(0, 1, PSI_BINS + 1)))
        edges[0], edges[-1] = -np.inf, np.inf
        ref = np.histogram(reference.to_numpy(float), edges)[0].astype(float)
        cur = np.histogram(current.to_numpy(float), edges)[0].astype(float)
    else:
        ref, cur = _shares(reference, current)
    ref = np.clip(ref / ref.sum(), EPSILON, None)
    cur = np.clip(cur / cur.sum(), EPSILON, None)
    value = float(np.sum((cur - ref) * np.log(cur / ref)))
    threshold = current_settings().drift_psi
    return Verdict(name, "psi", value, threshold, bool(value >= threshold))


def compare(
    schema: InputSchema, reference: pd.DataFrame, current: pd.DataFrame, method: str = "auto"
) -> list[Verdict]:
    """Each feature of ``schema`` present on both sides, tested (missing values left out)."""
    verdicts = []
    for feature in schema.features:
        if feature.name not in reference or feature.name not in current:
            continue
        ref, cur = reference[feature.name].dropna(), current[feature.name].dropna()
        if ref.empty or cur.empty:
            continue
        numeric = feature.type in NUMERIC_TYPES
        if method == "psi":
            verdicts.append(psi_test(feature.name, ref, cur, numeric))
        elif numeric:
            verdicts.append(numeric_test(feature.name, ref.to_numpy(float), cur.to_numpy(float)))
        else:
            verdicts.append(categorical_test(feature.name, ref, cur))
    return verdicts


def _reference(version: ModelVersion) -> pd.DataFrame:
    if not version.sample_sha256:
        raise DriftError("no_reference", "This version has no stored training sample.")
    frame = registry.read_sample(registry.artifact_store().path(version.sample_sha256))
    return frame.drop(columns=[registry.TARGET_COLUMN], errors="ignore")


def _current(name: str, version: int, span: Window) -> pd.DataFrame:
    rows: list[dict[str, Any]] = []
    found = db.session.scalars(
        select(PredictionRecord.inputs)
        .where(
            PredictionRecord.model_name == name,
            PredictionRecord.version_number == version,
            PredictionRecord.created_at >= span.since,
            PredictionRecord.created_at < span.until,
            PredictionRecord.status == Outcome.OK.value,
            PredictionRecord.inputs.is_not(None),
        )
        .order_by(PredictionRecord.created_at.desc(), PredictionRecord.id.desc())
        .execution_options(yield_per=500)
    )
    for inputs in found:
        rows.extend(row for row in inputs if isinstance(row, dict))
        if len(rows) >= MAX_CURRENT_ROWS:
            break
    return pd.DataFrame(rows[:MAX_CURRENT_ROWS])


def drift(
    caller: Caller,
    name: str,
    span: Window,
    *,
    method: str = "auto",
    channel: str = Source.API,
    latest: bool = False,
) -> dict[str, Any]:
    """The drift report of ``name`` (``span.version``, else the version it serves now).

    ``latest``: the check of the served version over a window ending now, with the default
    method; its share of drifted features becomes ``modelport_model_drift_share``.
    Raises ``ModelNotFound`` (a model ``caller`` may not use, as for none) and
    ``DriftError``."""
    model = access.model_for(caller, name, channel)
    number = span.version
    if number is None:
        served = registry.served_version(model)
        if served is None:
            raise ModelNotFound(f"{name} has no version ready to serve.")
        version = served
    else:
        version = registry.get_version(model, number)
        if version is None:
            raise ModelNotFound(f"{name} has no version {number}.")
    reference = _reference(version)
    current = _current(model.name, version.number, span)
    if current.empty:
        raise DriftError("no_data", "There are no stored inputs of this version in the window.")
    schema = InputSchema.from_dict(version.input_schema)
    verdicts = compare(schema, reference, current, method)
    drifted = sum(v.drift for v in verdicts)
    share = drifted / len(verdicts) if verdicts else 0.0
    if latest:
        # The served version over the window up to now: what the drift alert watches.
        metrics.set_drift_share(model.name, share)
    return {
        "model": model.name,
        "version": version.number,
        "since": span.since.isoformat().replace("+00:00", "Z"),
        "until": span.until.isoformat().replace("+00:00", "Z"),
        "method": method,
        "reference_rows": len(reference),
        "current_rows": len(current),
        "drift": bool(verdicts) and share >= current_settings().drift_share,
        "share_drifted": round(share, 4),
        "features": [v.as_json() for v in verdicts],
    }
