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

The model drifts when at least ``MODELPORT_DRIFT_SHARE`` (half) of its features drift.

The current data comes from the hour rollups of the window (``analytics.rollups``; the
window's edges rounded out to whole hours) plus the records not rolled up yet: a sketch of
each number's values (``analytics.sketch``: bins 2 % wide), counts of each category's values,
and a uniform sample of whole input rows (``SAMPLE_SIZE`` per hour, at most
``MAX_SAMPLE_ROWS`` for the window). Chi-square, the z-test and Jensen–Shannon use the
counts, which are exact; Wasserstein and PSI use the sketch's bins (scipy's figure on those
bins); KS needs raw values and uses the sample. Rows past a record's stored limit, purged or
erased before they were rolled up, are not there.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from modelport.analytics import rollups, sketch
from modelport.analytics.monitoring import Window, rounded
from modelport.analytics.partials import HOUR, Key, Partial, window_sample
from modelport.auth.caller import Caller
from modelport.config import current_settings
from modelport.lazy import lazy
from modelport.models.predictions import Source
from modelport.models.registry import ModelVersion, RegisteredModel
from modelport.serving import access, registry
from modelport.serving.predictor import ModelNotFound
from modelport.serving.schema import InputSchema
from modelport.serving.schema.types import NUMERIC_TYPES

pd = lazy("pandas")
stats = lazy("scipy.stats")
scipy_distance = lazy("scipy.spatial.distance")

SMALL_REFERENCE = 1000
MAX_SAMPLE_ROWS = 20_000
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


Counts = Mapping[str, float]


def _counts(values: pd.Series | Counts) -> dict[str, float]:
    if isinstance(values, pd.Series):
        return {str(k): float(n) for k, n in values.astype(str).value_counts().items()}
    return {str(k): float(n) for k, n in values.items()}


def _shares(
    reference: pd.Series | Counts, current: pd.Series | Counts
) -> tuple[np.ndarray, np.ndarray]:
    """Each category's count in the reference and in the current data, over both's values."""
    ref, cur = _counts(reference), _counts(current)
    values = sorted(set(ref) | set(cur))
    return (
        np.asarray([ref.get(v, 0.0) for v in values]),
        np.asarray([cur.get(v, 0.0) for v in values]),
    )


def numeric_test(
    name: str,
    reference: np.ndarray,
    current: np.ndarray,
    weights: np.ndarray | None = None,
    *,
    sample: np.ndarray | None = None,
) -> Verdict:
    """KS (small reference) or the normed Wasserstein distance (large).

    ``current`` may be binned (bin values and their ``weights``, from a rollup's sketch); KS
    then compares the reference with ``sample``, raw values kept for the purpose."""
    if len(reference) <= SMALL_REFERENCE:
        result = stats.ks_2samp(reference, current if sample is None else sample)
        return _p_test(name, "ks", result.statistic, result.pvalue)
    spread = float(np.std(reference))
    distance = stats.wasserstein_distance(reference, current, v_weights=weights)
    return _distance(name, "wasserstein", distance / (spread if spread > 0 else 1.0))


def categorical_test(name: str, reference: pd.Series, current: pd.Series | Counts) -> Verdict:
    """Chi-square, or the z-test for two values (small reference); Jensen–Shannon (large).

    ``current`` may be counts per value (a rollup's)."""
    ref, cur = _shares(reference, current)
    if len(reference) > SMALL_REFERENCE:
        distance = scipy_distance.jensenshannon(ref / ref.sum(), cur / cur.sum(), base=2)
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


def psi_test(
    name: str,
    reference: pd.Series,
    current: pd.Series | np.ndarray | Counts,
    numeric: bool,
    weights: np.ndarray | None = None,
) -> Verdict:
    """The population stability index, bins at the reference's deciles (or its categories).

    Binned current data (values and ``weights``) falls in the decile of its bin's value."""
    if numeric:
        ref_values = np.asarray(reference, dtype=float)
        edges = np.unique(np.quantile(ref_values, np.linspace(0, 1, PSI_BINS + 1)))
        edges[0], edges[-1] = -np.inf, np.inf
        ref = np.histogram(ref_values, edges)[0].astype(float)
        cur = np.histogram(np.asarray(current, dtype=float), edges, weights=weights)[0]
        cur = cur.astype(float)
    else:
        ref, cur = _shares(reference, current)  # type: ignore[arg-type]
    ref = np.clip(ref / ref.sum(), EPSILON, None)
    cur = np.clip(cur / cur.sum(), EPSILON, None)
    value = float(np.sum((cur - ref) * np.log(cur / ref)))
    threshold = current_settings().drift_psi
    return Verdict(name, "psi", value, threshold, bool(value >= threshold))


@dataclass
class Current:
    """The current data of a window as rollups keep it: per feature a sketch of its numbers
    or counts of its values, plus a uniform sample of whole input rows."""

    numbers: dict[str, dict[str, int]]
    counts: dict[str, dict[str, int]]
    sample: pd.DataFrame
    rows: int

    @classmethod
    def of_partials(cls, partials: Iterable[Partial], *, sample: bool = True) -> Current:
        """The current data the hour partials of a window add up to (``sample=False``:
        without the sample of input rows)."""
        numbers: dict[str, dict[str, int]] = {}
        counts: dict[str, dict[str, int]] = {}
        samples = []
        for partial in partials:
            for name, found in partial.features.items():
                if "sketch" in found:
                    sketch.merge(numbers.setdefault(name, {}), found["sketch"])
                if "counts" in found:
                    sketch.merge(counts.setdefault(name, {}), found["counts"])
            samples.append(partial.sample)
        rows = max((sketch.total(f) for f in (*numbers.values(), *counts.values())), default=0)
        frame = window_sample(samples, MAX_SAMPLE_ROWS) if sample else pd.DataFrame()
        return cls(numbers, counts, frame, rows)

    @classmethod
    def combined(cls, parts: Iterable[Current], sample: pd.DataFrame) -> Current:
        """Several windows' current data as one, with ``sample`` as its rows."""
        numbers: dict[str, dict[str, int]] = {}
        counts: dict[str, dict[str, int]] = {}
        for part in parts:
            for name, found in part.numbers.items():
                sketch.merge(numbers.setdefault(name, {}), found)
            for name, found in part.counts.items():
                sketch.merge(counts.setdefault(name, {}), found)
        rows = max((sketch.total(f) for f in (*numbers.values(), *counts.values())), default=0)
        return cls(numbers, counts, sample, rows)

    @classmethod
    def of_frame(cls, schema: InputSchema, frame: pd.DataFrame) -> Current:
        """Raw rows as the rollups would keep them (every row in the sample)."""
        numbers, counts = {}, {}
        for feature in schema.features:
            if feature.name not in frame:
                continue
            values = frame[feature.name].dropna()
            if feature.type in NUMERIC_TYPES:
                numbers[feature.name] = sketch.build(values.to_numpy(float))
            else:
                counts[feature.name] = {k: int(n) for k, n in _counts(values).items()}
        return cls(numbers, counts, frame, len(frame))


def compare(
    schema: InputSchema,
    reference: pd.DataFrame,
    current: pd.DataFrame | Current,
    method: str = "auto",
) -> list[Verdict]:
    """Each feature of ``schema`` present on both sides, tested (missing values left out)."""
    if isinstance(current, pd.DataFrame):
        current = Current.of_frame(schema, current)
    verdicts = []
    for feature in schema.features:
        if feature.name not in reference:
            continue
        ref = reference[feature.name].dropna()
        numeric = feature.type in NUMERIC_TYPES
        found = (current.numbers if numeric else current.counts).get(feature.name)
        if ref.empty or not found:
            continue
        if not numeric:
            if method == "psi":
                verdicts.append(psi_test(feature.name, ref, found, False))
            else:
                verdicts.append(categorical_test(feature.name, ref, found))
            continue
        values, weights = sketch.points(found)
        if method == "psi":
            verdicts.append(psi_test(feature.name, ref, values, True, weights))
            continue
        raw = None
        if feature.name in current.sample:
            raw = pd.to_numeric(current.sample[feature.name], errors="coerce").dropna()
        if len(ref) <= SMALL_REFERENCE and (raw is None or raw.empty):
            continue  # KS needs raw values: none kept
        verdicts.append(
            numeric_test(
                feature.name,
                ref.to_numpy(float),
                values,
                weights,
                sample=None if raw is None else raw.to_numpy(float),
            )
        )
    return verdicts


def _reference(version: ModelVersion) -> pd.DataFrame:
    if not version.sample_sha256:
        raise DriftError("no_reference", "This version has no stored training sample.")
    frame = registry.read_sample(registry.artifact_store().path(version.sample_sha256))
    return frame.drop(columns=[registry.TARGET_COLUMN], errors="ignore")


def _hours(name: str, version: int, span: Window) -> dict[Key, Partial]:
    since = rounded(span.since, HOUR)
    until = rounded(span.until, HOUR, up=True)
    return rollups.window_partials(name, since, until, HOUR, version=version, inputs=True)


def _verdicts(
    schema: InputSchema, reference: pd.DataFrame, current: Current, method: str
) -> tuple[list[Verdict], float]:
    verdicts = compare(schema, reference, current, method)
    drifted = sum(v.drift for v in verdicts)
    return verdicts, (drifted / len(verdicts) if verdicts else 0.0)


def _by_bucket(partials: dict[Key, Partial], span: Window) -> dict[int, Current]:
    """The current data per bucket of the window (a day, else an hour)."""
    seconds = max(span.seconds, HOUR)
    buckets: dict[int, list[Partial]] = {}
    for (_, _, _, start), partial in sorted(partials.items()):
        buckets.setdefault(start // seconds * seconds, []).append(partial)
    return {start: Current.of_partials(found) for start, found in sorted(buckets.items())}


def _over_time(
    schema: InputSchema, reference: pd.DataFrame, buckets: dict[int, Current], method: str
) -> list[dict[str, Any]]:
    """The share of drifted features per bucket of the window."""
    series = []
    for start, current in buckets.items():
        if not current.rows:
            continue
        verdicts, share = _verdicts(schema, reference, current, method)
        series.append(
            {
                "start": datetime.fromtimestamp(start, UTC).isoformat().replace("+00:00", "Z"),
                "current_rows": current.rows,
                "share_drifted": round(share, 4),
                "drift": bool(verdicts) and share >= current_settings().drift_share,
                "drifted": [v.name for v in verdicts if v.drift],
            }
        )
    return series


def drift(
    caller: Caller,
    name: str,
    span: Window,
    *,
    method: str = "auto",
    channel: str = Source.API,
    over_time: bool = False,
) -> dict[str, Any]:
    """The drift report of ``name`` for ``caller`` (see ``report``).

    Raises ``ModelNotFound`` (a model ``caller`` may not use, as for none) and
    ``DriftError``."""
    model = access.model_for(caller, name, channel)
    return report(model, span, method=method, over_time=over_time)


def report(
    model: RegisteredModel, span: Window, *, method: str = "auto", over_time: bool = False
) -> dict[str, Any]:
    """The drift report of ``model``'s version ``span.version``, else the one it serves now,
    over the whole window, and with ``over_time`` per day (or hour) of it too. Raises
    ``ModelNotFound`` (no such version) and ``DriftError``."""
    number = span.version
    if number is None:
        served = registry.served_version(model)
        if served is None:
            raise ModelNotFound(f"{model.name} has no version ready to serve.")
        version = served
    else:
        version = registry.get_version(model, number)
        if version is None:
            raise ModelNotFound(f"{model.name} has no version {number}.")
    reference = _reference(version)
    partials = _hours(model.name, version.number, span)
    buckets = _by_bucket(partials, span) if over_time else {}
    if buckets:
        sample = window_sample([p.sample for p in partials.values()], MAX_SAMPLE_ROWS)
        current = Current.combined(buckets.values(), sample)
    else:
        current = Current.of_partials(partials.values())
    if not current.rows:
        raise DriftError("no_data", "There are no stored inputs of this version in the window.")
    schema = InputSchema.from_dict(version.input_schema)
    verdicts, share = _verdicts(schema, reference, current, method)
    return {
        "model": model.name,
        "version": version.number,
        "since": span.since.isoformat().replace("+00:00", "Z"),
        "until": span.until.isoformat().replace("+00:00", "Z"),
        "method": method,
        "reference_rows": len(reference),
        "current_rows": current.rows,
        "sample_rows": len(current.sample),
        "drift": bool(verdicts) and share >= current_settings().drift_share,
        "share_drifted": round(share, 4),
        "features": [v.as_json() for v in verdicts],
        "over_time": _over_time(schema, reference, buckets, method) if over_time else None,
    }
