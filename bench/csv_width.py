"""What a CSV prediction costs per MiB, by the shape of the CSV.

Within the limits (``MODELPORT_CSV_MAX_BYTES``, ``MODELPORT_CSV_MAX_ROWS``,
``MODELPORT_CSV_MAX_COLUMNS``) a request should cost according to its size only: a CSV as wide
as allowed, one with long cells or one with as many short cells as fit cost no more per MiB
than an ordinary 4-column iris CSV (the baseline, measured in the same run). Each CSV is sent
to ``POST /api/v1/models/iris/predict`` (``Content-Type: text/csv``) through Flask's test
client in this process, so every request takes the whole request path (WSGI middleware,
authentication by an API token, the limiter, validation, inference, the record in a SQLite
database, the streamed answer, read to its end) without a network or a second process. The
shapes take turns within each round; the table shows medians of the rounds, then one
PASS/FAIL line per shape for the goal (at most 1.5× the baseline's seconds per MiB). Like
every benchmark here it fails nothing: the exit status is non-zero only when a request was
not answered 200 with every row. docs/benchmarks.md ("CSV width") explains it.

    .venv/bin/python bench/csv_width.py [--mib 8] [--runs 3] [--quick]

The model is the iris logistic regression of bench/serving.py, registered through the
registry service into a SQLite file in a temporary folder, with recording on.
"""

from __future__ import annotations

import argparse
import secrets
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
sys.path.insert(0, str(BENCH_DIR))

from machine import describe, load_average  # noqa: E402
from serving import (  # noqa: E402
    clean_environ,
    modelport_env,
    prepare_database,
    train_models,
)

FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
GOAL = 1.5  # most seconds per MiB of any shape, as a multiple of the baseline's
LONG_CELL = 1000  # characters in each pass-through cell of the long-row shape
WORD_CELL = 8  # characters in each pass-through cell of the widest shape


@dataclass
class Shape:
    """One row of the table: a CSV of about ``--mib`` MiB and its timings."""

    key: str
    label: str
    extra: int  # pass-through columns beyond the four features
    body: bytes = b""
    rows: int = 0
    seconds: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    @property
    def mib(self) -> float:
        return len(self.body) / (1 << 20)

    def per_mib(self, values: list[float]) -> float:
        return statistics.median(values) / self.mib


def max_columns() -> int:
    """``MODELPORT_CSV_MAX_COLUMNS``' default: the widest CSV the server accepts by default."""
    from modelport.config import SETTINGS

    for setting in SETTINGS:
        if setting.name == "CSV_MAX_COLUMNS":
            return int(setting.default)
    return 100  # a version of Modelport without the setting: the same width


def _features(rows: int, rng: np.random.Generator) -> list[str]:
    """Iris-like feature cells, one decimal, as text: "5.1,3.5,1.4,0.2" per row."""
    from modelport.serving.demo import demo_dataset

    data, _ = demo_dataset("iris")
    picked = data.to_numpy()[rng.integers(0, len(data), rows)]
    return [",".join(f"{v:.1f}" for v in row) for row in picked]


def _body(
    header: list[str], cells: Callable[[int], str], mib: float, rng: np.random.Generator
) -> tuple[bytes, int]:
    """A CSV of about ``mib`` MiB: the header, then rows of iris features + ``cells(i)``."""
    head = (",".join(header) + "\n").encode()
    sample = [f"{f},{cells(i)}" if cells(i) else f for i, f in enumerate(_features(64, rng))]
    per_row = sum(len(s) + 1 for s in sample) / len(sample)
    rows = max(1, int(mib * (1 << 20) / per_row))
    features = _features(rows, rng)
    lines = [f"{f},{cells(i)}" if cells(i) else f for i, f in enumerate(features)]
    return head + ("\n".join(lines) + "\n").encode(), rows


def build_shapes(mib: float, extra: int) -> list[Shape]:
    """The baseline and the three shapes of the goal, each about ``mib`` MiB."""
    rng = np.random.default_rng(0)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz0123456789"))

    def words(length: int, count: int) -> list[str]:
        return ["".join(rng.choice(letters, length)) for _ in range(count)]

    word_pool = words(WORD_CELL, 997)
    long_pool = words(LONG_CELL, 31)
    shapes = [
        Shape("baseline", "ordinary: the 4 features (baseline)", 0),
        Shape("widest", f"widest: 4 features + {extra} columns of {WORD_CELL} characters", extra),
        Shape(
            "long", f"longest rows: 4 features + {extra} cells of {LONG_CELL:,} characters", extra
        ),
        Shape("cells", f"most cells: 4 features + {extra} cells of 1 character", extra),
        Shape("formulas", f"formulas: 4 features + {extra} cells like =1+1 or -2.5", extra),
    ]
    makers: dict[str, Callable[[int], str]] = {
        "baseline": lambda _i: "",
        "widest": lambda i: ",".join(word_pool[(i * extra + j) % 997] for j in range(extra)),
        "long": lambda i: ",".join(long_pool[(i + j) % 31] for j in range(extra)),
        "cells": lambda i: ",".join(str((i + j) % 10) for j in range(extra)),
        # every cell starts like a formula, half of them plain numbers that stay as they are
        "formulas": lambda i: ",".join(
            f"={j % 10}+1" if (i + j) % 2 else f"-{j % 10}.5" for j in range(extra)
        ),
    }
    for shape in shapes:
        header = [*FEATURES, *(f"extra_{j}" for j in range(shape.extra))]
        shape.body, shape.rows = _body(header, makers[shape.key], mib, rng)
    return shapes


def send(client: Any, token: str, shape: Shape) -> tuple[float, float]:
    """One request, its answer read to the end; (wall seconds, CPU seconds of this process)."""
    wall, cpu = time.perf_counter(), time.process_time()
    response = client.post(
        "/api/v1/models/iris/predict",
        data=shape.body,
        content_type="text/csv",
        headers={"Authorization": f"Bearer {token}"},
        buffered=False,
    )
    lines = 0
    try:
        if response.status_code != 200:
            raise RuntimeError(
                f"{shape.label}: {response.status_code} {response.get_data(as_text=True)[:300]}"
            )
        for chunk in response.response:
            lines += chunk.count(b"\n")
    finally:
        response.close()
    elapsed = time.perf_counter() - wall, time.process_time() - cpu
    if lines != shape.rows + 1:
        raise RuntimeError(f"{shape.label}: {lines} lines in the answer, not {shape.rows + 1}")
    return elapsed


def table(shapes: list[Shape]) -> str:
    """The results as Markdown, ratios against the baseline of the same run."""
    base = shapes[0].per_mib(shapes[0].seconds)
    lines = [
        "| CSV | columns | rows | MiB | cells per MiB | s/MiB (median) | s/MiB range "
        "| CPU s/MiB | × baseline |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for shape in shapes:
        per_mib = shape.per_mib(shape.seconds)
        columns = 4 + shape.extra
        lines.append(
            f"| {shape.label} | {columns} | {shape.rows:,} | {shape.mib:.1f} "
            f"| {columns * shape.rows / shape.mib:,.0f} | {per_mib:.3f} "
            f"| {min(shape.seconds) / shape.mib:.3f}–{max(shape.seconds) / shape.mib:.3f} "
            f"| {shape.per_mib(shape.cpu):.3f} | {per_mib / base:.2f}× |"
        )
    return "\n".join(lines)


def verdicts(shapes: list[Shape]) -> list[str]:
    """One PASS/FAIL line per shape: at most GOAL × the baseline's seconds per MiB."""
    base = shapes[0].per_mib(shapes[0].seconds)
    lines = []
    for shape in shapes[1:]:
        ratio = shape.per_mib(shape.seconds) / base
        verdict = "PASS" if ratio <= GOAL else "FAIL"
        lines.append(f"{verdict}  {shape.label}: ≤ {GOAL:.2f}× the baseline per MiB: {ratio:.2f}×")
    return lines


def machine(load: str) -> list[str]:
    """Lines describing the machine and software the numbers came from."""
    return describe(load, ("flask", "pandas", "pyarrow", "numpy", "scikit-learn", "onnxruntime"))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=float, default=None, help="size of each CSV in MiB (8)")
    parser.add_argument("--runs", type=int, default=None, help="rounds; medians shown (3)")
    parser.add_argument("--quick", action="store_true", help="2 MiB, 1 round: a smoke test")
    parser.add_argument(
        "--columns",
        type=int,
        default=None,
        help="columns beyond the features, with MODELPORT_CSV_MAX_COLUMNS raised to match "
        "(default: that setting's default, 100)",
    )
    args = parser.parse_args(argv)
    args.mib = args.mib or (2.0 if args.quick else 8.0)
    args.runs = args.runs or (1 if args.quick else 3)
    if args.mib <= 0 or args.runs < 1 or (args.columns is not None and args.columns < 1):
        parser.error("--mib must be above 0, --runs and --columns at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.monotonic()
    load_before = load_average()
    clean_environ()
    from modelport import create_app

    extra = args.columns or max_columns()
    with tempfile.TemporaryDirectory(prefix="mp-csv-width-") as folder:
        workdir = Path(folder)
        print("training the model and preparing the database", file=sys.stderr, flush=True)
        artifacts, features = train_models(workdir)
        env = modelport_env(
            f"sqlite:///{workdir / 'bench.db'}",
            workdir,
            record=True,
            secret=secrets.token_urlsafe(48),
        )
        token = prepare_database(env, artifacts, features)
        overrides = {key.removeprefix("MODELPORT_"): value for key, value in env.items()}
        overrides |= {"LOG_LEVEL": "WARNING", "CSV_MAX_COLUMNS": str(extra)}
        client = create_app(overrides).test_client()
        print(f"building the CSVs (about {args.mib:g} MiB each)", file=sys.stderr, flush=True)
        shapes = build_shapes(args.mib, extra)
        for shape in shapes:  # warm-up: first requests load the model and fill caches
            send(client, token, shape)
        for round_number in range(1, args.runs + 1):
            for shape in shapes:
                seconds, cpu = send(client, token, shape)
                shape.seconds.append(seconds)
                shape.cpu.append(cpu)
                print(
                    f"  round {round_number}  {shape.key:<9} {shape.mib:5.1f} MiB "
                    f"{seconds:7.2f} s  {seconds / shape.mib:6.3f} s/MiB",
                    file=sys.stderr,
                    flush=True,
                )
    report = [
        f"CSV cost per MiB by shape: Flask test client in one process, SQLite, recording on, "
        f"{args.runs} round(s), medians; {time.monotonic() - started:.0f} s in all",
        "",
        *machine(load_before),
        "",
        table(shapes),
        "",
        *verdicts(shapes),
    ]
    text = "\n".join(report)
    print(text)
    RESULTS_DIR.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (RESULTS_DIR / f"csv_width-{stamp}.md").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
