"""Partial aggregates of prediction records: the one shape rollups store and pages read.

``aggregate`` turns records (and the feedback on them) into one ``Partial`` per model,
version and minute or hour; partials of the same key merge by adding. The rollup job
(``analytics.rollups``) stores them; the monitoring and drift pages merge the stored ones
with those of the records not rolled up yet, computed here the same way, so a figure is the
same whether the rollup has run or not.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from modelport.analytics import sketch
from modelport.lazy import lazy
from modelport.models.predictions import Outcome
from modelport.serving.records import stored_answer
from modelport.serving.schema.types import NUMERIC_TYPES

pd = lazy("pandas")

MINUTE, HOUR = 60, 3600
GRAINS = (MINUTE, HOUR)
SAMPLE_SIZE = 100  # input rows kept per model version and hour, uniformly at random
MAX_CATEGORIES = 200  # distinct values counted per feature and hour; the rest as OTHER
OTHER = "(other)"

# The record columns ``aggregate`` reads, in this order.
COLUMNS = (
    "id",
    "model_name",
    "version_number",
    "epoch",  # the record's time, whole seconds since 1970 (UTC)
    "status",
    "row_count",
    "latency_ms",
    "user_id",
    "token_id",
    "inputs",
    "outputs",
    "predicted_label",
    "predicted_value",
    "confidence",
)

Key = tuple[str, int, int, int]  # model, version (0: none), grain seconds, start (epoch s)


@dataclass
class Partial:
    """What the records of one key add up to (``models.rollups.PredictionRollup``'s fields)."""

    requests: int = 0
    rows: int = 0
    errors: int = 0
    incomplete: int = 0
    latency: dict[str, int] = field(default_factory=dict)
    labels: dict[str, int] = field(default_factory=dict)
    values: dict[str, int] = field(default_factory=dict)
    value_sum: float = 0.0
    value_rows: int = 0
    confidence_sum: float = 0.0
    confidence_rows: int = 0
    feedback_rows: int = 0
    feedback_correct: int = 0
    feedback_error: float = 0.0
    callers: dict[str, dict[str, int]] = field(default_factory=dict)
    # Hour partials only: feature name → {"sketch": …} (numbers) or {"counts": …}.
    features: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    # Hour partials only: {"u": [priorities], "rows": {feature: [values]}}.
    sample: dict[str, Any] = field(default_factory=dict)

    def merge(self, other: Partial) -> Partial:
        """Add ``other`` into this one (in place) and return it."""
        for name in (
            "requests",
            "rows",
            "errors",
            "incomplete",
            "value_sum",
            "value_rows",
            "confidence_sum",
            "confidence_rows",
            "feedback_rows",
            "feedback_correct",
            "feedback_error",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        sketch.merge(self.latency, other.latency)
        sketch.merge(self.labels, other.labels)
        sketch.merge(self.values, other.values)
        for kind, counts in other.callers.items():
            sketch.merge(self.callers.setdefault(kind, {}), counts)
        for name, found in other.features.items():
            mine = self.features.setdefault(name, {})
            for kind, counts in found.items():
                sketch.merge(mine.setdefault(kind, {}), counts)
            if "counts" in mine:
                mine["counts"] = capped(mine["counts"])
        self.sample = merge_samples([self.sample, other.sample], SAMPLE_SIZE)
        return self

    def set_feedback(self, other: Partial) -> None:
        """Take ``other``'s feedback figures in place of this one's."""
        self.feedback_rows = other.feedback_rows
        self.feedback_correct = other.feedback_correct
        self.feedback_error = other.feedback_error

    def columns(self) -> dict[str, Any]:
        """The values of a ``PredictionRollup`` row (without its key)."""
        return {
            "requests": self.requests,
            "row_count": self.rows,
            "errors": self.errors,
            "incomplete": self.incomplete,
            "latency": self.latency,
            "labels": self.labels or None,
            "value_bins": self.values or None,
            "value_sum": self.value_sum,
            "value_rows": self.value_rows,
            "confidence_sum": self.confidence_sum,
            "confidence_rows": self.confidence_rows,
            "feedback_rows": self.feedback_rows,
            "feedback_correct": self.feedback_correct,
            "feedback_error": self.feedback_error,
            "callers": self.callers or None,
            "features": self.features or None,
            "sample": self.sample or None,
        }

    @classmethod
    def from_row(cls, row: Any, *, copy: bool = True) -> Partial:
        """The partial a stored ``PredictionRollup`` row holds (a row of some of its
        columns: the others count as empty). ``copy=False`` shares the row's dicts: for rows
        that are read, not written back."""

        def get(name: str, empty: Any = 0) -> Any:
            value = getattr(row, name, None)
            return empty if value is None else value

        return cls(
            requests=get("requests"),
            rows=get("row_count"),
            errors=get("errors"),
            incomplete=get("incomplete"),
            latency=dict(get("latency", {})),
            labels=dict(get("labels", {})),
            values=dict(get("value_bins", {})),
            value_sum=get("value_sum", 0.0),
            value_rows=get("value_rows"),
            confidence_sum=get("confidence_sum", 0.0),
            confidence_rows=get("confidence_rows"),
            feedback_rows=get("feedback_rows"),
            feedback_correct=get("feedback_correct"),
            feedback_error=get("feedback_error", 0.0),
            # Copies: merging changes them in place, and the row must see a new value.
            callers={kind: dict(counts) for kind, counts in get("callers", {}).items()}
            if copy
            else get("callers", {}),
            features={
                name: {kind: dict(counts) for kind, counts in found.items()}
                for name, found in get("features", {}).items()
            }
            if copy
            else get("features", {}),
            sample=dict(get("sample", {})),
        )


def capped(counts: dict[str, int]) -> dict[str, int]:
    """At most ``MAX_CATEGORIES`` values, the least frequent added up as ``OTHER``."""
    if len(counts) <= MAX_CATEGORIES:
        return counts
    ranked = sorted(counts.items(), key=lambda item: (item[0] == OTHER, -item[1], item[0]))
    kept = dict(ranked[: MAX_CATEGORIES - 1])
    kept[OTHER] = sum(n for _, n in ranked[MAX_CATEGORIES - 1 :])
    return kept


def merge_samples(samples: Iterable[Mapping[str, Any]], size: int | None) -> dict[str, Any]:
    """The rows of the lowest priorities among ``samples`` (at most ``size``; None: all)."""
    found = [s for s in samples if s and s.get("u")]
    if not found:
        return {}
    if len(found) == 1 and (size is None or len(found[0]["u"]) <= size):
        return dict(found[0])
    names = sorted({name for s in found for name in s["rows"]})
    priorities = np.concatenate([np.asarray(s["u"], dtype=float) for s in found])
    order = np.argsort(priorities, kind="stable")[:size]
    merged: dict[str, Any] = {"u": priorities[order].tolist(), "rows": {}}
    for name in names:
        column: list[Any] = []
        for s in found:
            column.extend(s["rows"].get(name, [None] * len(s["u"])))
        merged["rows"][name] = [column[i] for i in order]
    return merged


def window_sample(samples: Sequence[Mapping[str, Any]], limit: int) -> pd.DataFrame:
    """A uniform sample of all the input rows behind ``samples`` (hour samples), ≤ ``limit``.

    Each hour kept its rows of lowest random priority. Below the highest priority a full
    hour kept, every hour kept every row it saw: the rows under that threshold are a uniform
    sample of the whole window (each row with the same chance), whatever each hour's volume.
    """
    found = [s for s in samples if s and s.get("u")]
    if not found:
        return pd.DataFrame()
    full = [max(s["u"]) for s in found if len(s["u"]) >= SAMPLE_SIZE]
    threshold = min(full) if full else math.inf
    names = sorted({name for s in found for name in s["rows"]})
    priorities = np.concatenate([np.asarray(s["u"], dtype=float) for s in found])
    columns: dict[str, list[Any]] = {name: [] for name in names}
    for s in found:
        for name in names:
            columns[name].extend(s["rows"].get(name) or [None] * len(s["u"]))
    kept = np.flatnonzero(priorities <= threshold)
    chosen = kept[np.argsort(priorities[kept], kind="stable")][:limit]
    return pd.DataFrame({name: [columns[name][i] for i in chosen] for name in names})


@dataclass(frozen=True)
class VersionInfo:
    """What aggregating a version's records needs: its task and its features' kinds."""

    task: str
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]


def version_info(task: str, input_schema: Mapping[str, Any] | None) -> VersionInfo:
    """The ``VersionInfo`` of a version from its stored input schema."""
    numeric, categorical = [], []
    for feature in (input_schema or {}).get("features", []):
        (numeric if feature.get("type") in NUMERIC_TYPES else categorical).append(feature["name"])
    return VersionInfo(task, tuple(numeric), tuple(categorical))


def decoded(values: list[Any]) -> list[Any]:
    """JSON texts (or values already decoded, or None) as values: the texts decoded in one
    call, which costs a fraction of one call per text."""
    if not any(isinstance(v, str) for v in values):
        return values
    texts = ["null" if v is None else v if isinstance(v, str) else json.dumps(v) for v in values]
    return json.loads("[" + ",".join(texts) + "]")


def _prediction_rows(frame: pd.DataFrame, tasks: Mapping[str, str]) -> pd.DataFrame:
    """One row per predicted row of the answered records: its record's index, label or
    value, and the probability of the predicted class."""
    typed = frame["predicted_label"].notna() | frame["predicted_value"].notna()
    one = frame[typed]
    index = list(one.index)
    labels = one["predicted_label"].tolist()
    values = one["predicted_value"].tolist()
    confidence = one["confidence"].tolist()
    for position, model, outputs in zip(
        frame.index[~typed], frame["model_name"][~typed], frame["outputs"][~typed], strict=True
    ):
        regression = tasks.get(model) == "regression"
        for row in outputs if isinstance(outputs, list) else []:
            if not isinstance(row, dict):
                continue
            predicted = stored_answer(row)
            if predicted is None:
                continue
            index.append(position)
            if regression:
                labels.append(None)
                values.append(float(predicted) if isinstance(predicted, int | float) else None)
                confidence.append(None)
                continue
            labels.append(str(predicted))
            values.append(None)
            probabilities = row.get("probabilities")
            if not isinstance(probabilities, dict):
                probabilities = {k: v for k, v in row.items() if k.startswith("probability_")}
            found = [float(p) for p in probabilities.values() if isinstance(p, int | float)]
            confidence.append(max(found) if found else None)
    return pd.DataFrame(
        {"record": index, "label": labels, "value": values, "confidence": confidence},
        columns=["record", "label", "value", "confidence"],
    ).astype({"value": float, "confidence": float})


def _keyed(frame: pd.DataFrame, grain: int) -> pd.DataFrame:
    return frame.assign(start=frame["epoch"] // grain * grain)


KEYS = ["model_name", "version", "start"]


def _k(key: Sequence[Any], grain: int) -> Key:
    model, version, start = key
    return (str(model), int(version), grain, int(start))


def _nested(series: pd.Series, label: Any = str) -> dict[tuple, dict[str, int]]:
    """A size/count series indexed by KEYS + one more level, as key → {level value: n}."""
    found: dict[tuple, dict[str, int]] = defaultdict(dict)
    for (*key, name), count in series.items():
        found[tuple(key)][label(name)] = int(count)
    return found


def aggregate(
    records: Sequence[Sequence[Any]],
    versions: Mapping[tuple[str, int], VersionInfo],
    *,
    feedback: Sequence[tuple[int, Any, Any]] = (),
    grains: Sequence[int] = GRAINS,
) -> dict[Key, Partial]:
    """The partials of ``records`` (tuples of ``COLUMNS``) at each grain of ``grains``.

    ``versions``: (model, version) → ``VersionInfo``; ``feedback``: (record id, actual,
    predicted) of rows of these records."""
    partials: dict[Key, Partial] = defaultdict(Partial)
    if not records:
        return {}
    # Column by column: building a frame from rows costs several times as much.
    columns = dict(zip(COLUMNS, (list(c) for c in zip(*records, strict=True)), strict=True))
    for name in ("inputs", "outputs"):
        columns[name] = decoded(columns[name])
    frame = pd.DataFrame(columns)
    frame["version"] = frame["version_number"].fillna(0).astype(np.int64)
    frame["epoch"] = frame["epoch"].astype(np.int64)
    tasks = {model: info.task for (model, _), info in versions.items()}
    ok = frame[frame["status"] == Outcome.OK.value]
    predicted = _prediction_rows(ok, tasks)
    predicted = predicted.join(frame[["model_name", "version", "epoch"]], on="record")
    judged = _judged(frame, feedback, tasks)
    frame["failed"] = (frame["status"] == Outcome.ERROR.value).astype(np.int64)
    frame["cut"] = (frame["status"] == Outcome.INCOMPLETE.value).astype(np.int64)
    # Counted once at the finest grain; the coarser ones add those partials up.
    finest = min(grains)
    keyed = _keyed(frame, finest)
    counts = keyed.groupby(KEYS)[["row_count", "failed", "cut"]].sum()
    sizes = keyed.groupby(KEYS).size()
    for (key, row), size in zip(counts.iterrows(), sizes.to_numpy(), strict=True):
        partial = partials[_k(key, finest)]
        partial.requests += int(size)
        partial.rows += int(row["row_count"])
        partial.errors += int(row["failed"])
        partial.incomplete += int(row["cut"])
    answered = _keyed(ok, finest)
    latency = answered.assign(bin=sketch.bins(answered["latency_ms"].to_numpy(float)))
    for key, found in _nested(latency.groupby([*KEYS, "bin"]).size(), sketch.name).items():
        sketch.merge(partials[_k(key, finest)].latency, found)
    _add_predictions(partials, _keyed(predicted, finest), finest)
    _add_feedback(partials, _keyed(judged, finest), finest)
    _add_callers(partials, keyed, finest)
    for grain in grains:
        if grain == finest:
            continue
        if grain % finest:
            raise ValueError("each grain is a whole number of the finest")
        for (model, version, _, start), partial in list(partials.items()):
            if _ == finest:
                coarse = partials[(model, version, grain, start // grain * grain)]
                coarse.merge(partial)
    if HOUR in grains:
        _add_inputs(partials, _keyed(ok, HOUR), versions)
    return dict(partials)


def _add_predictions(partials: dict[Key, Partial], predicted: pd.DataFrame, grain: int) -> None:
    labelled = predicted[predicted["label"].notna()]
    for key, found in _nested(labelled.groupby([*KEYS, "label"]).size()).items():
        sketch.merge(partials[_k(key, grain)].labels, found)
    confident = labelled[labelled["confidence"].notna()]
    for key, row in confident.groupby(KEYS)["confidence"].agg(["sum", "size"]).iterrows():
        partial = partials[_k(key, grain)]
        partial.confidence_sum += float(row["sum"])
        partial.confidence_rows += int(row["size"])
    valued = predicted[predicted["value"].notna()]
    binned = valued.assign(bin=sketch.bins(valued["value"].to_numpy(float)))
    for key, found in _nested(binned.groupby([*KEYS, "bin"]).size(), sketch.name).items():
        sketch.merge(partials[_k(key, grain)].values, found)
    for key, row in valued.groupby(KEYS)["value"].agg(["sum", "size"]).iterrows():
        partial = partials[_k(key, grain)]
        partial.value_sum += float(row["sum"])
        partial.value_rows += int(row["size"])


def correct(actual: Any, predicted: Any, task: str) -> tuple[bool, float]:
    """Whether a row's prediction was right (classifiers) and its absolute error (regression)."""
    if task == "regression":
        try:
            return False, abs(float(actual) - float(predicted))
        except (TypeError, ValueError):
            return False, math.nan
    return str(actual) == str(predicted), 0.0


def _judged(
    frame: pd.DataFrame, feedback: Sequence[tuple[int, Any, Any]], tasks: Mapping[str, str]
) -> pd.DataFrame:
    """Each feedback row with its record's key columns, whether it was right, its error."""
    columns = ["model_name", "version", "epoch", "correct", "error"]
    if not feedback:
        return pd.DataFrame(columns=columns)
    by_id = frame.set_index("id")[["model_name", "version", "epoch"]]
    ids, right, errors = [], [], []
    for record_id, actual, predicted in feedback:
        if predicted is None or record_id not in by_id.index:
            continue
        model = by_id.at[record_id, "model_name"]
        good, error = correct(actual, predicted, tasks.get(model, "classification"))
        if math.isnan(error):
            continue
        ids.append(record_id)
        right.append(good)
        errors.append(error)
    judged = by_id.loc[ids].reset_index(drop=True)
    return judged.assign(correct=right, error=errors)[columns]


def _add_feedback(partials: dict[Key, Partial], judged: pd.DataFrame, grain: int) -> None:
    if judged.empty:
        return
    sums = judged.groupby(KEYS).agg(
        rows=("correct", "size"), right=("correct", "sum"), error=("error", "sum")
    )
    for key, row in sums.iterrows():
        partial = partials[_k(key, grain)]
        partial.feedback_rows += int(row["rows"])
        partial.feedback_correct += int(row["right"])
        partial.feedback_error += float(row["error"])


def _add_callers(partials: dict[Key, Partial], keyed: pd.DataFrame, grain: int) -> None:
    for kind, column in (("users", "user_id"), ("tokens", "token_id")):
        known = keyed[keyed[column].notna()].astype({column: np.int64})
        for key, found in _nested(known.groupby([*KEYS, column]).size()).items():
            sketch.merge(partials[_k(key, grain)].callers.setdefault(kind, {}), found)


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value


def _add_inputs(
    partials: dict[Key, Partial],
    answered: pd.DataFrame,
    versions: Mapping[tuple[str, int], VersionInfo],
) -> None:
    """Hour partials: each feature's distribution and a uniform sample of the input rows."""
    for (model, version), records in answered.groupby(["model_name", "version"]):
        info = versions.get((model, version))
        if info is None:
            continue
        starts, rows, ids, positions = [], [], [], []
        for record_id, start, inputs in zip(
            records["id"], records["start"], records["inputs"], strict=True
        ):
            for position, row in enumerate(inputs if isinstance(inputs, list) else []):
                if isinstance(row, dict):
                    starts.append(start)
                    rows.append(row)
                    ids.append(record_id)
                    positions.append(position)
        if not rows:
            continue
        names = [*info.numeric, *info.categorical]
        inputs = pd.DataFrame.from_records(rows, columns=names)
        inputs["start"] = starts
        for name in info.numeric:
            numbers = pd.to_numeric(inputs[name], errors="coerce")
            kept = inputs.loc[numbers.notna(), ["start"]].assign(bin=sketch.bins(numbers.dropna()))
            counted = kept.groupby(["start", "bin"]).size()
            for start, found in _nested_by_start(counted, sketch.name).items():
                feature = partials[
                    (str(model), int(version), HOUR, int(start))
                ].features.setdefault(name, {})
                sketch.merge(feature.setdefault("sketch", {}), found)
        for name in info.categorical:
            values = inputs[name]
            kept = inputs.loc[values.notna(), ["start"]].assign(value=values.dropna().astype(str))
            for start, found in _nested_by_start(kept.groupby(["start", "value"]).size()).items():
                feature = partials[
                    (str(model), int(version), HOUR, int(start))
                ].features.setdefault(name, {})
                feature["counts"] = capped(sketch.merge(feature.get("counts", {}), found))
        inputs["__u"] = priorities(np.asarray(ids, dtype=np.uint64), np.asarray(positions))
        chosen = inputs.sort_values("__u").groupby("start").head(SAMPLE_SIZE)
        for start, part in chosen.groupby("start"):
            sample = {
                # Nine digits tell apart the priorities of a billion rows an hour.
                "u": part["__u"].round(9).tolist(),
                "rows": {n: [_json_value(v) for v in part[n].tolist()] for n in names},
            }
            partial = partials[(str(model), int(version), HOUR, int(start))]
            partial.sample = merge_samples([partial.sample, sample], SAMPLE_SIZE)


def priorities(record_ids: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Each input row's sampling priority, uniform in [0, 1) and fixed by the row itself
    (splitmix64 of its record id and position), so that a sample is the same whether its
    rows were rolled up in one run, in several, or not yet."""
    with np.errstate(over="ignore"):
        z = record_ids.astype(np.uint64) * np.uint64(1 << 20) + positions.astype(np.uint64)
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def _nested_by_start(series: pd.Series, label: Any = str) -> dict[int, dict[str, int]]:
    found: dict[int, dict[str, int]] = defaultdict(dict)
    for (start, name), count in series.items():
        found[int(start)][label(name)] = int(count)
    return found
