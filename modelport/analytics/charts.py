"""Plotly figures of a dataset's profile, as plain JSON the page hands to plotly.js.

Built here, in Python, from the stored profile; the static script ``charts.js`` only draws
them (the CSP allows no inline script). Each figure keeps plotly's own JSON shape.
"""

from __future__ import annotations

from typing import Any

# Wide enough to read on a phone; the page stacks charts on narrow screens.
HEIGHT = 260
MARGIN = {"l": 48, "r": 16, "t": 36, "b": 48}


def histogram(column: dict[str, Any]) -> dict[str, Any] | None:
    """The stored histogram of a numeric column as a bar chart (bins → counts)."""
    edges = column.get("histogram", {}).get("edges") or []
    counts = column.get("histogram", {}).get("counts") or []
    if not counts:
        return None
    centres = [(low + high) / 2 for low, high in zip(edges, edges[1:], strict=False)]
    widths = [high - low for low, high in zip(edges, edges[1:], strict=False)]
    return {
        "data": [
            {
                "type": "bar",
                "x": centres,
                "y": counts,
                "width": widths,
                "marker": {"color": "#3b6ea5"},
                "hovertemplate": "%{x:.4g}: %{y}<extra></extra>",
            }
        ],
        "layout": _layout(column["name"], x_title=column["name"], y_title="rows"),
    }


def top_values(column: dict[str, Any]) -> dict[str, Any] | None:
    """The most frequent values of a categorical or boolean column as horizontal bars."""
    top = column.get("top") or []
    if not top:
        return None
    labels = [str(value) for value, _ in reversed(top)]
    counts = [count for _, count in reversed(top)]
    layout = _layout(column["name"], x_title="rows", y_title=None)
    layout["height"] = max(HEIGHT, 28 * len(top) + 80)
    layout["yaxis"]["type"] = "category"  # "1" and "2" are labels here, not positions
    return {
        "data": [
            {
                "type": "bar",
                "orientation": "h",
                "x": counts,
                "y": labels,
                "marker": {"color": "#6a4c93"},
                "hovertemplate": "%{y}: %{x}<extra></extra>",
            }
        ],
        "layout": layout,
    }


def correlation_heatmap(correlations: dict[str, Any], title: str) -> dict[str, Any] | None:
    """Pearson correlations of the numeric columns, −1 (blue) to 1 (red)."""
    names = correlations.get("columns") or []
    if len(names) < 2:
        return None
    size = min(900, max(HEIGHT + 80, 22 * len(names) + 160))
    layout = _layout(title, x_title=None, y_title=None)
    layout |= {"height": size, "margin": {"l": 120, "r": 16, "t": 36, "b": 120}}
    layout["yaxis"] |= {"autorange": "reversed", "type": "category"}
    layout["xaxis"]["type"] = "category"
    return {
        "data": [
            {
                "type": "heatmap",
                "x": names,
                "y": names,
                "z": correlations["matrix"],
                "zmin": -1,
                "zmax": 1,
                "colorscale": "RdBu",
                "reversescale": True,
                "hovertemplate": "%{y} × %{x}: %{z:.3f}<extra></extra>",
            }
        ],
        "layout": layout,
    }


def _layout(title: str, *, x_title: str | None, y_title: str | None) -> dict[str, Any]:
    return {
        "title": {"text": title, "font": {"size": 14}},
        "height": HEIGHT,
        "margin": dict(MARGIN),
        "xaxis": {"title": {"text": x_title}} if x_title else {},
        "yaxis": {"title": {"text": y_title}} if y_title else {},
        "bargap": 0.05,
    }


# ---- a model's monitoring (analytics.monitoring's answer) --------------------------------


def _by_time(points: list[dict[str, Any]], value: Any) -> tuple[list[str], list[Any]]:
    """Points summed per bucket start (the series has one point per version and bucket)."""
    totals: dict[str, Any] = {}
    for point in points:
        totals[point["start"]] = totals.get(point["start"], 0) + value(point)
    starts = sorted(totals)
    return starts, [totals[start] for start in starts]


def volume(report: dict[str, Any], title: str, names: dict[str, str]) -> dict[str, Any] | None:
    """Requests per bucket, answered and failed stacked."""
    if not report["series"]:
        return None
    starts, answered = _by_time(report["series"], lambda p: p["requests"] - p["errors"])
    _, failed = _by_time(report["series"], lambda p: p["errors"])
    layout = _layout(title, x_title=None, y_title=names["requests"])
    layout |= {"barmode": "stack", "legend": {"orientation": "h", "y": -0.25}}
    return {
        "data": [
            {"type": "bar", "x": starts, "y": answered, "name": names["answered"]},
            {"type": "bar", "x": starts, "y": failed, "name": names["errors"]},
        ],
        "layout": layout,
    }


def latency(report: dict[str, Any], title: str) -> dict[str, Any] | None:
    """p50, p95 and p99 latency per bucket (where two versions answered in one bucket, the
    later one's)."""
    points = {p["start"]: p for p in report["series"] if p["latency_ms"]["p50"] is not None}
    if not points:
        return None
    starts = sorted(points)
    layout = _layout(title, x_title=None, y_title="ms")
    layout["legend"] = {"orientation": "h", "y": -0.25}
    return {
        "data": [
            {
                "type": "scatter",
                "mode": "lines+markers",
                "x": starts,
                "y": [points[s]["latency_ms"][key] for s in starts],
                "name": key,
            }
            for key in ("p50", "p95", "p99")
        ],
        "layout": layout,
    }


def predicted(report: dict[str, Any], title: str) -> dict[str, Any] | None:
    """What the model predicted over time: classes stacked, or a regression's quantiles."""
    points = report["predicted"]
    if not points:
        return None
    layout = _layout(title, x_title=None, y_title=None)
    layout["legend"] = {"orientation": "h", "y": -0.25}
    starts = [p["start"] for p in points]
    if report["task"] == "regression":
        traces = [
            {
                "type": "scatter",
                "mode": "lines",
                "x": starts,
                "y": [p[k] for p in points],
                "name": k,
            }
            for k in ("p10", "p50", "p90", "mean")
        ]
        return {"data": traces, "layout": layout}
    classes = sorted({label for p in points for label in p["counts"]})
    layout["barmode"] = "stack"
    return {
        "data": [
            {
                "type": "bar",
                "x": starts,
                "y": [p["counts"].get(label, 0) for p in points],
                "name": label,
            }
            for label in classes
        ],
        "layout": layout,
    }


def quality(report: dict[str, Any], title: str, names: dict[str, str]) -> dict[str, Any] | None:
    """Realized accuracy (or MAE) from feedback, beside the estimate without labels."""
    points = report["quality"]
    if not points:
        return None
    starts = [p["start"] for p in points]
    layout = _layout(title, x_title=None, y_title=None)
    layout["legend"] = {"orientation": "h", "y": -0.25}
    realized = "realized_mae" if report["task"] == "regression" else "realized_accuracy"
    traces = [
        {
            "type": "scatter",
            "mode": "lines+markers",
            "x": starts,
            "y": [p[realized] for p in points],
            "name": names[realized],
            "connectgaps": False,
        }
    ]
    if report["task"] != "regression":
        traces.append(
            {
                "type": "scatter",
                "mode": "lines+markers",
                "x": starts,
                "y": [p["estimated_accuracy"] for p in points],
                "name": names["estimated_accuracy"],
                "line": {"dash": "dot"},
            }
        )
        layout["yaxis"] |= {"range": [0, 1.02]}
    return {"data": traces, "layout": layout}


def _threshold_line(value: float) -> dict[str, Any]:
    """A dashed line across the chart at ``value``."""
    return {
        "type": "line",
        "xref": "paper",
        "x0": 0,
        "x1": 1,
        "y0": value,
        "y1": value,
        "line": {"dash": "dash", "color": "#444"},
    }


def drift(report: dict[str, Any], title: str) -> dict[str, Any] | None:
    """Each feature's test against its threshold: p-values (drift below the line) or
    distances (drift at or above it); drifted features in red."""
    features = report["features"]
    if not features:
        return None
    by_p = "p_value" in features[0]
    names = [f["name"] for f in features]
    values = [f["p_value"] if by_p else f["statistic"] for f in features]
    threshold = features[0]["threshold"]
    layout = _layout(title, x_title=None, y_title="p-value" if by_p else "distance")
    layout["shapes"] = [_threshold_line(threshold)]
    layout["xaxis"] |= {"type": "category"}
    return {
        "data": [
            {
                "type": "bar",
                "x": names,
                "y": values,
                "marker": {"color": ["#c0392b" if f["drift"] else "#3b6ea5" for f in features]},
                "hovertemplate": "%{x}: %{y:.4g}<extra></extra>",
            }
        ],
        "layout": layout,
    }


def drift_over_time(report: dict[str, Any], title: str, threshold: float) -> dict[str, Any] | None:
    """The share of features drifted per day (or hour) of the window, against the share at
    which the model drifts; buckets that drifted in red."""
    points = report.get("over_time", [])
    if not points:
        return None
    layout = _layout(title, x_title=None, y_title=None)
    layout["yaxis"] |= {"range": [0, 1.02], "tickformat": ".0%"}
    layout["shapes"] = [_threshold_line(threshold)]
    return {
        "data": [
            {
                "type": "scatter",
                "mode": "lines+markers",
                "x": [p["start"] for p in points],
                "y": [p["share_drifted"] for p in points],
                "marker": {"color": ["#c0392b" if p["drift"] else "#3b6ea5" for p in points]},
                "hovertemplate": "%{x}: %{y:.0%}<extra></extra>",
            }
        ],
        "layout": layout,
    }


# ---- the data behind each chart, as a table (its CSV download) ---------------------------


def table(report: dict[str, Any], chart: str) -> tuple[list[str], list[list[Any]]] | None:
    """The header and rows of a monitoring or drift chart's data (``chart``: volume, latency,
    predicted, quality, drift, over_time), or None for a chart the report has no such data for."""
    if chart in ("volume", "latency"):
        header = ["start", "version", "requests", "rows", "errors", "incomplete"]
        header += ["latency_p50_ms", "latency_p95_ms", "latency_p99_ms"]
        rows = [
            [p["start"], p["version"], p["requests"], p["rows"], p["errors"], p["incomplete"]]
            + [p["latency_ms"][k] for k in ("p50", "p95", "p99")]
            for p in report.get("series", [])
        ]
        return header, rows
    if chart == "predicted" and "predicted" in report:
        if report["task"] == "regression":
            keys = ["start", "rows", "mean", "p10", "p50", "p90"]
            return keys, [[p[k] for k in keys] for p in report["predicted"]]
        classes = sorted({c for p in report["predicted"] for c in p["counts"]})
        rows = [
            [p["start"], *(p["counts"].get(c, 0) for c in classes)] for p in report["predicted"]
        ]
        return ["start", *classes], rows
    if chart == "quality" and "quality" in report:
        realized = "realized_mae" if report["task"] == "regression" else "realized_accuracy"
        keys = ["start", realized, "feedback_rows"]
        if report["task"] != "regression":
            keys.append("estimated_accuracy")
        return keys, [[p[k] for k in keys] for p in report["quality"]]
    if chart == "drift" and "features" in report:
        keys = ["name", "method", "statistic", "p_value", "threshold", "drift"]
        return keys, [[f.get(k) for k in keys] for f in report["features"]]
    if chart == "over_time" and "over_time" in report:
        keys = ["start", "current_rows", "share_drifted", "drift"]
        rows = [[p[k] for k in keys] + [" ".join(p["drifted"])] for p in report["over_time"]]
        return [*keys, "drifted"], rows
    return None


# ---- a model's report (analytics.report's answer: one version, or two side by side) -------

IMPORTANCE_SHOWN = 15  # features in the importance chart (the table and CSV have them all)
_DIAGONAL = {"type": "line", "x0": 0, "y0": 0, "x1": 1, "y1": 1, "line": {"dash": "dot"}}


def _evaluated(answer: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    """(version, report) of each version in the answer that has a stored report."""
    return [(e["version"], e["report"]) for e in answer["reports"] if e["report"]]


def _curve_name(version: int, label: str, several: bool) -> str:
    return f"v{version} · {label}" if several else label


def _legend_below(layout: dict[str, Any]) -> dict[str, Any]:
    layout["legend"] = {"orientation": "h", "y": -0.3}
    layout["height"] = HEIGHT + 120
    return layout


def confusion(report: dict[str, Any], title: str, names: dict[str, str]) -> dict[str, Any]:
    """One version's confusion matrix: actual classes down, predicted across."""
    labels = report["confusion"]["labels"]
    layout = _layout(title, x_title=names["predicted"], y_title=names["actual"])
    layout["height"] = min(700, max(HEIGHT + 40, 34 * len(labels) + 140))
    layout["xaxis"] |= {"type": "category"}
    layout["yaxis"] |= {"type": "category", "autorange": "reversed"}
    return {
        "data": [
            {
                "type": "heatmap",
                "x": labels,
                "y": labels,
                "z": report["confusion"]["matrix"],
                "colorscale": "Blues",
                "texttemplate": "%{z}",
                "hovertemplate": "%{y} → %{x}: %{z}<extra></extra>",
            }
        ],
        "layout": layout,
    }


def _curves(answer: dict[str, Any], kind: str, x: str, y: str, figure: str) -> list[dict[str, Any]]:
    entries = _evaluated(answer)
    several = len(entries) > 1
    return [
        {
            "type": "scatter",
            "mode": "lines",
            "x": curve[x],
            "y": curve[y],
            "name": f"{_curve_name(version, curve['class'], several)} ({curve[figure]:.3f})"
            if curve[figure] is not None
            else _curve_name(version, curve["class"], several),
            "line": {"dash": "dash"} if several and index else {},
        }
        for index, (version, report) in enumerate(entries)
        for curve in report.get(kind) or []
    ]


def roc(answer: dict[str, Any], title: str, names: dict[str, str]) -> dict[str, Any] | None:
    """ROC curves (one against the rest per class), each version's overlaid, with the AUC."""
    traces = _curves(answer, "roc", "fpr", "tpr", "auc")
    if not traces:
        return None
    layout = _legend_below(_layout(title, x_title=names["fpr"], y_title=names["tpr"]))
    layout["shapes"] = [_DIAGONAL | {"line": {"dash": "dot", "color": "#888"}}]
    return {"data": traces, "layout": layout}


def precision_recall(
    answer: dict[str, Any], title: str, names: dict[str, str]
) -> dict[str, Any] | None:
    """Precision against recall per class, each version's overlaid, with average precision."""
    traces = _curves(answer, "pr", "recall", "precision", "average_precision")
    if not traces:
        return None
    layout = _legend_below(_layout(title, x_title=names["recall"], y_title=names["precision"]))
    layout["yaxis"] |= {"range": [0, 1.02]}
    return {"data": traces, "layout": layout}


def calibration(answer: dict[str, Any], title: str, names: dict[str, str]) -> dict[str, Any] | None:
    """Observed frequency against mean predicted probability per bin; the diagonal is a
    perfectly calibrated model."""
    entries = [(v, r) for v, r in _evaluated(answer) if r.get("calibration")]
    if not entries:
        return None
    layout = _legend_below(
        _layout(title, x_title=names["mean_predicted"], y_title=names["observed"])
    )
    layout["shapes"] = [_DIAGONAL | {"line": {"dash": "dot", "color": "#888"}}]
    layout["xaxis"] |= {"range": [0, 1]}
    layout["yaxis"] |= {"range": [0, 1.02]}
    return {
        "data": [
            {
                "type": "scatter",
                "mode": "lines+markers",
                "x": report["calibration"]["mean_predicted"],
                "y": report["calibration"]["observed"],
                "customdata": report["calibration"]["count"],
                "hovertemplate": "%{x:.2f} → %{y:.2f} (%{customdata})<extra></extra>",
                "name": f"v{version}",
            }
            for version, report in entries
        ],
        "layout": layout,
    }


def importance(answer: dict[str, Any], title: str, names: dict[str, str]) -> dict[str, Any] | None:
    """Permutation importance of the most important features, the versions' bars side by
    side, with one standard deviation over the repeats."""
    entries = [(v, r) for v, r in _evaluated(answer) if r["importance"]["features"]]
    if not entries:
        return None
    shown = [f["name"] for f in entries[0][1]["importance"]["features"][:IMPORTANCE_SHOWN]]
    layout = _legend_below(_layout(title, x_title=names["importance"], y_title=None))
    layout["height"] = max(HEIGHT, 24 * len(shown) * len(entries) + 160)
    layout["yaxis"] |= {"type": "category", "autorange": "reversed"}
    layout["barmode"] = "group"
    layout["margin"] = MARGIN | {"l": 140}
    traces = []
    for version, report in entries:
        by_name = {f["name"]: f for f in report["importance"]["features"]}
        traces.append(
            {
                "type": "bar",
                "orientation": "h",
                "y": shown,
                "x": [(by_name.get(n) or {}).get("mean") for n in shown],
                "error_x": {
                    "type": "data",
                    "array": [(by_name.get(n) or {}).get("std") for n in shown],
                },
                "name": f"v{version}",
            }
        )
    return {"data": traces, "layout": layout}


def predicted_vs_actual(
    answer: dict[str, Any], title: str, names: dict[str, str]
) -> dict[str, Any] | None:
    """A regression's predicted values against the actual ones; the diagonal is no error."""
    entries = [(v, r) for v, r in _evaluated(answer) if r.get("points")]
    if not entries:
        return None
    values = [x for _, r in entries for x in r["points"]["actual"] + r["points"]["predicted"]]
    low, high = min(values), max(values)
    layout = _legend_below(_layout(title, x_title=names["actual"], y_title=names["predicted"]))
    layout["shapes"] = [
        {**_DIAGONAL, "x0": low, "y0": low, "x1": high, "y1": high, "line": {"color": "#888"}}
    ]
    return {
        "data": [
            {
                "type": "scatter",
                "mode": "markers",
                "x": report["points"]["actual"],
                "y": report["points"]["predicted"],
                "marker": {"size": 6, "opacity": 0.6},
                "name": f"v{version}",
            }
            for version, report in entries
        ],
        "layout": layout,
    }


def residuals(answer: dict[str, Any], title: str, names: dict[str, str]) -> dict[str, Any] | None:
    """How far off a regression was (actual − predicted), as a histogram per version."""
    entries = [(v, r) for v, r in _evaluated(answer) if r.get("residual_histogram")]
    if not entries:
        return None
    layout = _legend_below(_layout(title, x_title=names["residual"], y_title=names["rows"]))
    layout["barmode"] = "overlay"
    traces = []
    for version, report in entries:
        edges, counts = (
            report["residual_histogram"]["edges"],
            report["residual_histogram"]["counts"],
        )
        traces.append(
            {
                "type": "bar",
                "x": [(low + high) / 2 for low, high in zip(edges, edges[1:], strict=False)],
                "y": counts,
                "width": [high - low for low, high in zip(edges, edges[1:], strict=False)],
                "opacity": 0.6,
                "name": f"v{version}",
            }
        )
    return {"data": traces, "layout": layout}


REPORT_CHARTS = {
    "classification": ("per_class", "confusion", "roc", "pr", "calibration", "importance"),
    "regression": ("predicted", "residuals", "importance"),
}


def report_table(answer: dict[str, Any], chart: str) -> tuple[list[str], list[list[Any]]] | None:
    """The header and rows behind one chart of the report page (its table and its CSV), or
    None for a chart the report's task does not have."""
    if chart not in REPORT_CHARTS[answer["task"]]:
        return None
    rows: list[list[Any]] = []
    entries = _evaluated(answer)
    if chart == "per_class":
        header = ["version", "class", "precision", "recall", "f1", "support"]
        for version, report in entries:
            rows += [[version, *(c[k] for k in header[1:])] for c in report["per_class"]]
    elif chart == "confusion":
        header = ["version", "actual", "predicted", "rows"]
        for version, report in entries:
            labels, matrix = report["confusion"]["labels"], report["confusion"]["matrix"]
            rows += [
                [version, actual, predicted, matrix[i][j]]
                for i, actual in enumerate(labels)
                for j, predicted in enumerate(labels)
            ]
    elif chart in ("roc", "pr"):
        x, y = ("fpr", "tpr") if chart == "roc" else ("recall", "precision")
        header = ["version", "class", x, y]
        for version, report in entries:
            for curve in report[chart]:
                rows += [
                    [version, curve["class"], a, b] for a, b in zip(curve[x], curve[y], strict=True)
                ]
    elif chart == "calibration":
        header = ["version", "kind", "mean_predicted", "observed", "rows"]
        for version, report in entries:
            found = report.get("calibration")
            if found:
                rows += [
                    [version, found["kind"], *point]
                    for point in zip(
                        found["mean_predicted"], found["observed"], found["count"], strict=True
                    )
                ]
    elif chart == "importance":
        header = ["version", "feature", "mean", "std"]
        for version, report in entries:
            rows += [
                [version, f["name"], f["mean"], f["std"]] for f in report["importance"]["features"]
            ]
    elif chart == "predicted":
        header = ["version", "actual", "predicted"]
        for version, report in entries:
            points = report["points"]
            rows += [
                [version, a, p] for a, p in zip(points["actual"], points["predicted"], strict=True)
            ]
    else:  # residuals
        header = ["version", "from", "to", "rows"]
        for version, report in entries:
            edges, counts = (
                report["residual_histogram"]["edges"],
                report["residual_histogram"]["counts"],
            )
            rows += [[version, edges[i], edges[i + 1], n] for i, n in enumerate(counts)]
    return header, rows
