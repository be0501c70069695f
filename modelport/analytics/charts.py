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
    layout["shapes"] = [
        {
            "type": "line",
            "xref": "paper",
            "x0": 0,
            "x1": 1,
            "y0": threshold,
            "y1": threshold,
            "line": {"dash": "dash", "color": "#444"},
        }
    ]
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


# ---- the data behind each chart, as a table (its CSV download) ---------------------------


def table(report: dict[str, Any], chart: str) -> tuple[list[str], list[list[Any]]] | None:
    """The header and rows of a monitoring or drift chart's data (``chart``: volume, latency,
    predicted, quality, drift), or None for a chart the report has no such data for."""
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
    return None
