"""bench/peers.py still runs: one short round against MLflow's own server.

Not a benchmark: nothing here asserts a time or a goal. It checks that the benchmark can
still train and log the model, import it, start both servers, find them answering alike,
load them and print both rows, the ratios and the goal lines.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.databases import REQUIRE_SERVICES
from tests.support.mlflow_server import MLFLOW_VERSION, MlflowUnavailable, ensure_venv

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench" / "peers.py"


def test_the_benchmark_defaults_to_the_tests_mlflow_virtualenv() -> None:
    """`make bench-peers` uses the virtualenv that `make mlflow-venv` makes."""
    assert re.search(rf'^MLFLOW_VENV = .*"{re.escape(MLFLOW_VERSION)}"$', BENCH.read_text(), re.M)


@pytest.mark.slow  # starts two servers, wrk and the modelport command
def test_one_short_round_prints_both_servers_and_the_ratios(tmp_path: Path) -> None:
    try:
        venv = ensure_venv()
    except MlflowUnavailable as exc:
        reason = f"no MLflow virtualenv: {exc} (make mlflow-venv makes it)"
        if REQUIRE_SERVICES:
            pytest.fail(reason)
        pytest.skip(reason)
    command = [
        sys.executable,
        str(BENCH),
        *("--rounds", "1", "--duration", "1", "--single-duration", "1", "--warmup", "1"),
        *("--mlflow-venv", str(venv), "--results", str(tmp_path)),
    ]
    done = subprocess.run(  # noqa: S603 - the benchmark of this checkout
        command, capture_output=True, text=True, timeout=600, check=False, cwd=ROOT
    )
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith("| ")]
    labels = [row.split("|")[1].strip() for row in rows]
    assert labels[1:] == [
        "`mlflow models serve`, 2 workers",
        "Modelport, 2 workers, token, recording on (SQLite)",
        "Modelport / MLflow",
    ], done.stdout
    for row in rows[1:3]:  # both servers answered every request, at some rate
        cells = [cell.strip() for cell in row.split("|")]
        assert float(cells[3].replace(",", "")) > 0 and cells[-2] == "0", row
    verdicts = re.findall(r"^(PASS|FAIL)  Modelport ", done.stdout, re.M)
    assert len(verdicts) == 3, done.stdout
    assert "both answer" in done.stderr
    assert list(tmp_path.glob("peers-*.md")), "the report was not saved"
