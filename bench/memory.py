"""Memory of a Modelport server (gunicorn's master and 2 workers), with and without preload.

One command, one run, three servers one after the other on the same fresh SQLite database
with the four ``modelport demo`` models: gunicorn with the product's config
(``modelport/ops/gunicorn_conf.py``, 2 workers of its class), first with
``MODELPORT_PRELOAD=false`` (each worker imports the application itself: the baseline), then
with the default, preload on (the master imports it once and the workers share its pages),
then preload on with ``MODELPORT_PRELOAD_LIBRARIES`` naming what a CSV upload imports. The
last two are measured twice: after the JSON predictions, and again once each worker has also
answered CSV uploads (which import pandas and pyarrow in the worker: ``modelport.lazy``).

Each server gets predictions of one row for every demo model on fresh connections, from a
few threads at once, until each worker has answered at least ``--predictions`` (100) for
each model, which it can only do once it has loaded that model (checked on the pid gunicorn's
access log gives for each answer). Then the proportional set size (PSS: a page shared by
n processes counts 1/n in each) of the master and of each worker is read from
``/proc/<pid>/smaps_rollup``, with RSS and the private pages for comparison. The table shows
both servers, their total PSS and the ratio to the baseline, then the goal as a PASS/FAIL
line (informational: the exit status is non-zero only when requests failed or a worker did
not load every model). docs/benchmarks.md ("Memory") explains it.

    .venv/bin/python bench/memory.py [--predictions 100] [--threads 4]

Linux only (/proc). Takes about a minute.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
sys.path.insert(0, str(BENCH_DIR))

# Nothing that imports Modelport or its libraries: this process must not share their pages.
from deployment import GUNICORN_CONFIG, WORKERS, create_bench_token, modelport_env  # noqa: E402
from machine import describe, load_average  # noqa: E402
from server import gunicorn  # noqa: E402

GOAL_MB = 250  # total PSS of master and workers with preload on (issue 12, item 3)
MB = 1024 * 1024
# The access log line of each answer: worker pid, path, status, the request's content type
# (gunicorn's %(p)s is "<pid>").
ACCESS_FORMAT = "%(p)s %(U)s %(s)s %({content-type}i)s"
ACCESS_LINE = re.compile(r"^<(\d+)> /api/v1/models/([^/\s]+)/predict (\d{3}) (\S+)$", re.MULTILINE)
# The libraries a server imports on first use (modelport/lazy.py) that map shared objects,
# so /proc/<pid>/maps tells whether a process has imported them.
LAZY_MAPPED = ("pandas", "pyarrow", "scipy", "sklearn")
CSV_MODEL = "iris"  # the model the CSV uploads go to
# What the CSV uploads import, for the server that preloads it (MODELPORT_PRELOAD_LIBRARIES).
CSV_LIBRARIES = "pandas,pyarrow.csv,pyarrow.compute"
# Enough requests for any sane spread over two workers; a run that needs more is broken.
MOST_REQUESTS = 20_000
LIBRARIES = (
    "flask",
    "gunicorn",
    "numpy",
    "pandas",
    "pyarrow",
    "scipy",
    "scikit-learn",
    "skops",
    "onnx",
    "onnxruntime",
    "skl2onnx",
    "prometheus-client",
    "sqlalchemy",
)


@dataclass
class Process:
    """One process of a server and its memory, from /proc/<pid>/smaps_rollup (bytes)."""

    role: str
    pid: int
    rss: int = 0
    pss: int = 0
    private: int = 0
    lazy: tuple[str, ...] = ()  # the libraries of LAZY_MAPPED it has imported


@dataclass
class Run:
    """One server: preload on or off, its processes and what its workers answered."""

    label: str
    preload: bool
    csv: bool = False  # whether each worker has also answered CSV uploads
    libraries: str = ""  # MODELPORT_PRELOAD_LIBRARIES
    processes: list[Process] = field(default_factory=list)
    served: Counter = field(default_factory=Counter)  # (worker pid, model) → 200 answers
    failed: Counter = field(default_factory=Counter)  # status → count, or "connection"
    requests: int = 0
    seconds: float = 0.0

    def total(self, name: str) -> int:
        return sum(getattr(process, name) for process in self.processes)

    @property
    def master(self) -> Process:
        return self.processes[0]

    @property
    def workers(self) -> list[Process]:
        return self.processes[1:]


# ---- set-up ------------------------------------------------------------------------------


def prepare(env: dict[str, str], folder: Path) -> tuple[str, dict[str, dict[str, float]]]:
    """Migrate the fresh database and load the demo models with the product's own commands
    (``flask --app modelport db upgrade``, ``... demo``, as ``modelport`` runs them); then, in
    another process (this one must not import Modelport), create a member with a predict
    token. Returns the token and one input row for each demo model."""
    flask = [sys.executable, "-m", "flask", "--app", "modelport"]
    environment = {**os.environ, **env}
    steps = [
        [*flask, "db", "upgrade"],
        [*flask, "demo"],
        [sys.executable, str(Path(__file__).resolve()), "--prepare", str(folder)],
    ]
    for step in steps:
        done = subprocess.run(step, env=environment, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(step[-2:])} failed:\n{done.stderr}")
    prepared = json.loads((folder / "prepared.json").read_text())
    return prepared["token"], prepared["rows"]


def prepare_here(folder: str) -> int:
    """The other end of ``prepare``: the token and the demo rows, written to a file."""
    from modelport import create_app
    from modelport.extensions import db
    from modelport.serving.demo import DEMO_NAMES, demo_dataset

    app = create_app({"LOG_LEVEL": "WARNING"})
    with app.app_context():
        token = create_bench_token()
        db.session.remove()
        db.engine.dispose()
    rows = {}
    for name in DEMO_NAMES:
        features, _target = demo_dataset(name)
        # The first row of the model's bundled dataset.
        rows[name] = {column: float(value) for column, value in features.iloc[0].items()}
    Path(folder, "prepared.json").write_text(json.dumps({"token": token, "rows": rows}))
    return 0


def forget_settings() -> None:
    """Forget MODELPORT_* settings of the calling shell: the servers get only ours."""
    for name in [name for name in os.environ if name.startswith("MODELPORT_")]:
        del os.environ[name]


# ---- the server's processes ----------------------------------------------------------------


def _parent(pid: int) -> int | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(raw[raw.rindex(")") + 2 :].split()[1])


def server_processes(base_url: str) -> tuple[int, list[int]]:
    """The gunicorn master serving ``base_url`` (this script's child) and its workers."""
    bind = base_url.removeprefix("http://").encode() + b"\0"
    ours = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if bind in (entry / "cmdline").read_bytes():
                ours.append(int(entry.name))
        except OSError:
            continue
    (master,) = [pid for pid in ours if _parent(pid) == os.getpid()]
    return master, sorted(pid for pid in ours if _parent(pid) == master)


def all_workers(base_url: str, seconds: float = 60) -> list[int]:
    """The server's workers once all ``WORKERS`` have started (the first answers sooner)."""
    deadline = time.monotonic() + seconds
    while len(workers := server_processes(base_url)[1]) < WORKERS:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(workers)} of {WORKERS} workers started")
        time.sleep(0.1)
    return workers


def memory(role: str, pid: int) -> Process:
    """``pid``'s RSS, PSS and private pages (clean and dirty) from smaps_rollup."""
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if len(parts) == 2 and parts[1] == "kB":
            fields[name] = int(parts[0]) * 1024
    maps = Path(f"/proc/{pid}/maps").read_text()
    return Process(
        role,
        pid,
        rss=fields["Rss"],
        pss=fields["Pss"],
        private=fields["Private_Clean"] + fields["Private_Dirty"],
        lazy=tuple(name for name in LAZY_MAPPED if f"/site-packages/{name}/" in maps),
    )


# ---- load ----------------------------------------------------------------------------------


def predict(
    base: str, token: str, model: str, row: dict[str, float], *, csv: bool = False
) -> int | str:
    """One prediction on a new connection, of JSON or of a CSV upload of one row: its status,
    or "connection" when it failed."""
    if csv:
        body = f"{','.join(row)}\n{','.join(str(value) for value in row.values())}\n".encode()
    else:
        body = json.dumps({"inputs": row}).encode()
    request = urllib.request.Request(  # noqa: S310 - an http URL on loopback
        f"{base}/api/v1/models/{model}/predict",
        data=body,
        method="POST",
        headers={
            "Content-Type": "text/csv" if csv else "application/json",
            "Authorization": f"Bearer {token}",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
            response.read()
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return "connection"


def served(log: Path, *, csv: bool = False) -> Counter:
    """(worker pid, model) → answers with status 200 to JSON (or to CSV uploads), from the
    access log so far."""
    text = log.read_text(errors="replace")
    return Counter(
        (int(pid), model)
        for pid, model, status, kind in ACCESS_LINE.findall(text)
        if status == "200" and kind.startswith("text/csv") == csv
    )


def drive(run: Run, base: str, token: str, rows: dict[str, dict], log: Path, args) -> None:  # noqa: ANN001
    """Predict until every worker has answered ``args.predictions`` for every model (CSV
    uploads of one model's rows for a ``csv`` run)."""
    workers = all_workers(base)
    started = time.monotonic()
    if run.csv:
        rows = {CSV_MODEL: rows[CSV_MODEL]}
    with ThreadPoolExecutor(args.threads) as pool:
        while True:
            run.served = served(log, csv=run.csv)
            missing = {
                model: max(args.predictions - run.served[(pid, model)] for pid in workers)
                for model in rows
            }
            missing = {model: count for model, count in missing.items() if count > 0}
            if not missing:
                break
            if run.requests >= MOST_REQUESTS:
                raise RuntimeError(
                    f"{run.label}: after {run.requests} requests some worker still has not "
                    f"answered {args.predictions} predictions of {', '.join(missing)}"
                )
            # Twice what is missing: each request goes to whichever worker accepts it first.
            batch = [model for model, count in missing.items() for _ in range(2 * count)]
            for status in pool.map(
                lambda model: predict(base, token, model, rows[model], csv=run.csv), batch
            ):
                if status != 200:
                    run.failed[status] += 1
            run.requests += len(batch)
            time.sleep(0.2)  # a worker writes its access log line after answering
    run.seconds = time.monotonic() - started


def measure(
    runs: list[Run], env: dict[str, str], token: str, rows: dict, workdir: Path, args
) -> None:  # noqa: ANN001
    """Start the server, and for each run in turn drive it and read its processes' memory;
    stop it."""
    run = runs[0]
    log = workdir / f"gunicorn-{'preload' if run.preload else 'no-preload'}-{len(runs)}.log"
    options = ("--access-logfile", "-", "--access-logformat", ACCESS_FORMAT)
    server_env = env | {
        "MODELPORT_PRELOAD": "true" if run.preload else "false",
        "MODELPORT_PRELOAD_LIBRARIES": run.libraries,
    }
    print(f"{run.label}: starting the server", file=sys.stderr, flush=True)
    with gunicorn(
        "modelport:create_app()",
        env=server_env,
        log_path=log,
        workers=WORKERS,
        ready_path="/healthz",
        config=GUNICORN_CONFIG,
        options=options,
        startup_timeout=120,
    ) as base:
        for run in runs:
            drive(run, base, token, rows, log, args)
            time.sleep(1)  # anything a request left to finish (a record's commit) is done
            master, workers = server_processes(base)
            if set(workers) != {pid for pid, _model in run.served}:
                raise RuntimeError(f"{run.label}: a worker was replaced during the run")
            run.processes = [memory("master", master)] + [
                memory(f"worker {number}", pid) for number, pid in enumerate(workers, 1)
            ]
            print(
                f"{run.label}: {run.requests} predictions in {run.seconds:.0f} s, total PSS "
                f"{run.total('pss') / MB:.1f} MB",
                file=sys.stderr,
                flush=True,
            )


# ---- report --------------------------------------------------------------------------------


def summary(runs: list[Run]) -> str:
    """One line per server: PSS per process and in total, and the ratio to the baseline."""
    baseline = runs[0].total("pss")
    lines = [
        "| server | master PSS MB | worker PSS MB (each) | total PSS MB | × preload off "
        "| total RSS MB | total private MB |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        each = " / ".join(f"{worker.pss / MB:.1f}" for worker in run.workers)
        lines.append(
            f"| {run.label} | {run.master.pss / MB:.1f} | {each} | {run.total('pss') / MB:.1f} "
            f"| {run.total('pss') / baseline:.2f}× | {run.total('rss') / MB:.1f} "
            f"| {run.total('private') / MB:.1f} |"
        )
    return "\n".join(lines)


def details(runs: list[Run], models: list[str]) -> str:
    """One line per process: RSS, PSS, private pages and the predictions it answered."""
    lines = [
        "| server | process | RSS MB | PSS MB | private MB | 200 answers per model "
        "| imported on first use |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    for run in runs:
        for process in run.processes:
            if process.role == "master":
                answers = "–"
            elif run.csv:
                answers = f"CSV uploads to {CSV_MODEL} {run.served[(process.pid, CSV_MODEL)]}"
            else:
                answers = ", ".join(
                    f"{model} {run.served[(process.pid, model)]}" for model in models
                )
            lines.append(
                f"| {run.label} | {process.role} | {process.rss / MB:.1f} "
                f"| {process.pss / MB:.1f} | {process.private / MB:.1f} | {answers} "
                f"| {', '.join(process.lazy) or 'none'} |"
            )
    return "\n".join(lines)


def goal(runs: list[Run]) -> str:
    """The goal as a PASS/FAIL line."""
    preloaded = next(run for run in runs if run.preload and not run.csv and not run.libraries)
    total = preloaded.total("pss") / MB
    verdict = "PASS" if total < GOAL_MB else "FAIL"
    return (
        f"{verdict}  total PSS of master and {WORKERS} workers with preload, every demo model "
        f"loaded in each worker, < {GOAL_MB} MB: {total:.1f} MB"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--predictions",
        type=int,
        default=100,
        help="predictions each worker answers for each model before memory is read (100)",
    )
    parser.add_argument(
        "--threads", type=int, default=4, help="requests sent at once, one connection each (4)"
    )
    # Internal: the set-up steps that import Modelport, in a process of their own (prepare).
    parser.add_argument("--prepare", metavar="FOLDER", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.predictions < 1 or args.threads < 1:
        parser.error("--predictions and --threads must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.prepare:
        return prepare_here(args.prepare)
    if not Path("/proc/self/smaps_rollup").exists():
        print(
            "this benchmark reads /proc/<pid>/smaps_rollup (Linux 4.14 or later)", file=sys.stderr
        )
        return 2
    # SIGTERM unwinds like Ctrl-C, so the server is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.monotonic()
    load_before = load_average()
    forget_settings()
    runs = [
        Run("preload off (baseline)", preload=False),
        Run("preload on", preload=True),
        Run("preload on, then CSV uploads", preload=True, csv=True),
        Run("preload on + CSV libraries", preload=True, libraries=CSV_LIBRARIES),
        Run("preload on + CSV libraries, then CSV uploads", True, True, CSV_LIBRARIES),
    ]
    with tempfile.TemporaryDirectory(prefix="mp-memory-") as folder:
        workdir = Path(folder)
        env = modelport_env(
            f"sqlite:///{workdir / 'bench.db'}",
            workdir,
            record=True,
            secret=secrets.token_urlsafe(48),
        )
        print("migrating a fresh database and loading the demo models", file=sys.stderr)
        try:
            token, rows = prepare(env, workdir)
            measure(runs[:1], env, token, rows, workdir, args)
            measure(runs[1:3], env, token, rows, workdir, args)
            measure(runs[3:], env, token, rows, workdir, args)
        except KeyboardInterrupt:
            print("interrupted: servers stopped", file=sys.stderr)
            return 130
        except RuntimeError as error:
            print(error, file=sys.stderr)
            return 1

    models = list(rows)
    command = "python bench/memory.py " + " ".join(argv if argv is not None else sys.argv[1:])
    report = [
        "## Memory",
        "",
        *describe(load_before, LIBRARIES),
        f"- Servers: gunicorn with `modelport/ops/gunicorn_conf.py`, {WORKERS} workers of its "
        "class, MODELPORT_ENV=production, SQLite, predictions recorded; one after the other "
        "on the same database with the 4 `modelport demo` models "
        f'({", ".join(models)}); preload off is `MODELPORT_PRELOAD=false`; "CSV '
        f'libraries" is `MODELPORT_PRELOAD_LIBRARIES={CSV_LIBRARIES}`',
        f"- Load: one-row predictions on fresh connections, {args.threads} at a time, until "
        f"each worker had answered at least {args.predictions} for each model (worker pid "
        "from gunicorn's access log); then PSS, RSS and private pages of each process from "
        '/proc/<pid>/smaps_rollup; "then CSV uploads": the same server again once each '
        f"worker had also answered {args.predictions} CSV uploads of one {CSV_MODEL} row. "
        "MB = 2^20 bytes",
        f"- Command: `{command.strip()}` (took {time.monotonic() - started:.0f} s)",
        "",
        summary(runs),
        "",
        details(runs, models),
        "",
        goal(runs),
        "",
    ]
    text = "\n".join(report)
    print(text)
    RESULTS_DIR.mkdir(exist_ok=True)
    saved = RESULTS_DIR / f"memory-{datetime.now().strftime('%Y%m%d-%H%M%S')}.md"
    saved.write_text(text)
    print(f"saved to {saved.relative_to(BENCH_DIR.parent)}", file=sys.stderr)
    failed = sum((run.failed for run in runs), Counter())
    if failed:
        print(f"some predictions failed: {dict(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
