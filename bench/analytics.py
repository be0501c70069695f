"""How long profiling a dataset takes: Modelport's profile against ydata-profiling's minimal mode.

Builds a DataFrame of 1,000,000 rows × 10 columns (6 float, 1 int, 2 categorical, 1 boolean;
two of the floats with 1 % missing values), writes it to a Parquet file in a temporary folder
and times, each apart:

1. reading the Parquet file into pandas (``pandas.read_parquet``), in this process;
2. Modelport's profile of the loaded frame (``modelport.analytics.profile.profile_frame``:
   overview, every column, duplicate rows, correlations), in this process;
3. ydata-profiling's minimal mode on the same file, in a subprocess of a virtualenv of its
   own: ydata-profiling needs pandas < 3, numpy < 2.4 and scipy < 1.17, which the project's
   virtualenv cannot hold. The subprocess times its own read and then
   ``ProfileReport(df, minimal=True).get_description()`` (the statistics, no HTML), so both
   sides time the same work: a loaded frame in, statistics out.

The table shows medians of ``--runs`` runs (ydata-profiling: ``--ydata-runs``, 1 by
default, it is slow) and the ratio, then PASS/FAIL against the goals of issue 11: Modelport's
profile under 2 s, and at least 5× faster than ydata-profiling's minimal mode. Nothing fails:
the exit status is 0 unless a step crashed. docs/benchmarks.md ("Dataset profile") explains it.

    .venv/bin/python bench/analytics.py [--rows 1000000] [--runs 3] [--ydata-venv DIR] [--no-ydata]

Without the ydata virtualenv the benchmark says so, says how to make it
(``make bench-ydata-venv``), and reports Modelport's figures alone.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
DEFAULT_YDATA_VENV = Path(
    os.environ.get("MODELPORT_YDATA_VENV")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "modelport" / "ydata-venv"
)
GOAL_SECONDS = 2.0
GOAL_RATIO = 5.0

# Run by the ydata virtualenv's python: prints one JSON line with its timings.
YDATA_SCRIPT = r"""
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import pandas as pd
import ydata_profiling
from ydata_profiling import ProfileReport
path, runs = sys.argv[1], int(sys.argv[2])
reads, profiles = [], []
for _ in range(runs):
    start = time.perf_counter()
    frame = pd.read_parquet(path)
    reads.append(time.perf_counter() - start)
    start = time.perf_counter()
    report = ProfileReport(frame, minimal=True, progress_bar=False)
    description = report.get_description()
    profiles.append(time.perf_counter() - start)
print(json.dumps({
    "read": reads, "profile": profiles,
    "rows": int(description.table["n"]), "duplicates": description.table.get("n_duplicates"),
    "versions": {"ydata-profiling": ydata_profiling.__version__, "pandas": pd.__version__,
                 "numpy": __import__("numpy").__version__},
}))
"""


def build_frame(rows: int, seed: int = 11) -> pd.DataFrame:
    """The benchmark's frame: 6 float, 1 int, 2 categorical (one category, one text), 1 bool."""
    rng = np.random.default_rng(seed)
    columns: dict[str, Any] = {}
    for index in range(6):
        values = rng.normal(loc=index * 10, scale=1 + index, size=rows)
        if index in (1, 4):
            values[rng.random(rows) < 0.01] = np.nan
        columns[f"float_{index}"] = values
    columns["count"] = rng.poisson(20, rows).astype(np.int64)
    cities = ["Seoul", "Busan", "Incheon", "Daegu", "Daejeon", "Gwangju", "Ulsan", "Suwon"]
    columns["city"] = pd.Categorical(rng.choice(cities, rows, p=_weights(len(cities), rng)))
    plans = np.array(["free", "basic", "pro", "team", "enterprise"], dtype=object)
    columns["plan"] = pd.array(rng.choice(plans, rows), dtype="str")
    columns["active"] = rng.random(rows) < 0.35
    return pd.DataFrame(columns)


def _weights(count: int, rng: np.random.Generator) -> np.ndarray:
    weights = rng.random(count) + 0.2
    return weights / weights.sum()


def time_modelport(path: Path, runs: int) -> dict[str, Any]:
    """Read and profile in this process, each timed apart, ``runs`` times."""
    from modelport.analytics.profile import profile_frame

    reads, profiles, steps = [], [], []
    result: dict[str, Any] = {}
    for _ in range(runs):
        start = time.perf_counter()
        frame = pd.read_parquet(path)
        reads.append(time.perf_counter() - start)
        marks: dict[str, float] = {}
        start = time.perf_counter()
        result = profile_frame(frame, _marker(marks))
        profiles.append(time.perf_counter() - start)
        steps.append(_step_durations(start, marks))
        del frame
    return {
        "read": reads,
        "profile": profiles,
        "steps": {name: statistics.median(s[name] for s in steps) for name in steps[0]},
        "rows": result["overview"]["rows"],
        "duplicates": result["overview"]["duplicate_rows"],
    }


def _marker(marks: dict[str, float]) -> Any:
    """A progress callback noting when each step finished."""

    def mark(step: str) -> None:
        marks[step] = time.perf_counter()

    return mark


def _step_durations(start: float, marks: dict[str, float]) -> dict[str, float]:
    durations, previous = {}, start
    for name, moment in marks.items():
        durations[name] = moment - previous
        previous = moment
    return durations


def time_ydata(venv: Path, path: Path, runs: int) -> dict[str, Any] | str:
    """ydata-profiling's timings from its own virtualenv, or why there are none."""
    python = venv / "bin" / "python"
    if not python.exists():
        return (
            f"ydata-profiling's virtualenv is missing ({venv}). Make it with "
            f"`make bench-ydata-venv YDATA_VENV={venv}` (needs the package index once; it "
            "holds ydata-profiling with pandas<3, numpy<2.4, scipy<1.17), or pass "
            "--ydata-venv DIR."
        )
    completed = subprocess.run(  # noqa: S603 - our own script, our own interpreter
        [str(python), "-c", YDATA_SCRIPT, str(path), str(runs)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    if completed.returncode != 0:
        return f"ydata-profiling failed (exit {completed.returncode}):\n{completed.stderr[-2000:]}"
    return json.loads(completed.stdout.strip().splitlines()[-1])


def load_average() -> str:
    """The 1-minute load average: other work on the machine skews every figure."""
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "unknown"


def machine(load: str) -> list[str]:
    """Lines describing where the numbers came from."""
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import pyarrow

    return [
        f"- CPU: {cpu}, {os.cpu_count()} cores; 1-minute load average {load} before the run",
        f"- {platform.system()} {platform.release()}, Python {platform.python_version()}; "
        f"pandas {pd.__version__}, numpy {np.__version__}, pyarrow {pyarrow.__version__}",
    ]


def report(args: argparse.Namespace, ours: dict[str, Any], theirs: dict[str, Any] | str) -> str:
    """The results as Markdown: a table, the step times, then the verdicts."""
    median = statistics.median
    lines = [
        f"Dataset profile, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: {args.rows:,} rows × 10 "
        f"columns, medians of {args.runs} runs (ydata-profiling: {args.ydata_runs})",
        "",
        *machine(args.load),
        "",
        "| | read Parquet (s) | profile (s) | range (s) | duplicate rows |",
        "|---|---:|---:|---:|---:|",
        f"| Modelport `profile_frame` | {median(ours['read']):.3f} | {median(ours['profile']):.3f} "
        f"| {min(ours['profile']):.3f}–{max(ours['profile']):.3f} | {ours['duplicates']:,} |",
    ]
    if isinstance(theirs, dict):
        versions = ", ".join(f"{k} {v}" for k, v in theirs["versions"].items())
        lines.append(
            f"| ydata-profiling minimal ({versions}) | {median(theirs['read']):.3f} "
            f"| {median(theirs['profile']):.3f} "
            f"| {min(theirs['profile']):.3f}–{max(theirs['profile']):.3f} "
            f"| {_count(theirs['duplicates'])} |"
        )
    steps = " · ".join(f"{name} {seconds:.3f}" for name, seconds in ours["steps"].items())
    lines += ["", f"Modelport's steps (s, median): {steps}", "", "```"]
    ours_profile = median(ours["profile"])
    verdict = "PASS" if ours_profile < GOAL_SECONDS else "FAIL"
    lines.append(f"{verdict}  Modelport profile < {GOAL_SECONDS:.0f} s: {ours_profile:.3f} s")
    if isinstance(theirs, dict):
        ratio = median(theirs["profile"]) / ours_profile
        verdict = "PASS" if ratio >= GOAL_RATIO else "FAIL"
        lines.append(
            f"{verdict}  ≥ {GOAL_RATIO:.0f}× faster than ydata-profiling minimal: {ratio:.1f}×"
        )
    else:
        lines.append(f"SKIP  ≥ {GOAL_RATIO:.0f}× faster than ydata-profiling minimal: {theirs}")
    lines.append("```")
    return "\n".join(lines)


def _count(value: Any) -> str:
    # Minimal mode counts no duplicate rows.
    return "not computed" if value is None else f"{value:,}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3, help="Modelport runs (median)")
    parser.add_argument("--ydata-runs", type=int, default=1, help="ydata-profiling runs")
    parser.add_argument("--ydata-venv", type=Path, default=DEFAULT_YDATA_VENV)
    parser.add_argument("--no-ydata", action="store_true", help="Modelport's figures alone")
    parser.add_argument("--records", type=int, default=1_000_000, help="prediction records")
    parser.add_argument("--no-records", action="store_true", help="no monitoring part")
    parser.add_argument("--no-profile", action="store_true", help="no dataset profile part")
    parser.add_argument("--keep-database", action="store_true", help="keep the records' database")
    args = parser.parse_args()
    args.load = load_average()
    texts = []
    if not args.no_records:
        from bench import monitoring_records

        print(f"Monitoring: {args.records:,} prediction records on PostgreSQL …")
        figures = monitoring_records.run(args.records, args.runs, keep=args.keep_database)
        texts.append(
            f"## Monitoring over prediction records, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
            f"medians of {args.runs} runs\n\n"
            + "\n".join(machine(args.load))
            + "\n\n"
            + monitoring_records.table(figures)
        )
        print(texts[-1])
    if not args.no_profile:
        texts.append("## Dataset profile\n\n" + profile_part(args))
    text = "\n\n".join(texts)
    print(text)
    RESULTS_DIR.mkdir(exist_ok=True)
    (RESULTS_DIR / f"analytics-{datetime.now(UTC):%Y%m%dT%H%M%S}.md").write_text(text + "\n")
    return 0


def profile_part(args: argparse.Namespace) -> str:
    """Modelport's profile of a 1M × 10 frame against ydata-profiling's minimal mode."""
    with tempfile.TemporaryDirectory(prefix="modelport-bench-") as folder:
        path = Path(folder) / "frame.parquet"
        build_frame(args.rows).to_parquet(path, index=False)
        print(
            f"{args.rows:,} rows × 10 columns in {path.stat().st_size / 2**20:.1f} MiB of Parquet"
        )
        ours = time_modelport(path, args.runs)
        if args.no_ydata:
            theirs: dict[str, Any] | str = "not run (--no-ydata)"
        else:
            print("ydata-profiling minimal mode in its own virtualenv (about 15–60 s) …")
            theirs = time_ydata(args.ydata_venv, path, args.ydata_runs)
    return report(args, ours, theirs)


if __name__ == "__main__":
    sys.path.insert(0, str(BENCH_DIR.parent))
    sys.exit(main())
