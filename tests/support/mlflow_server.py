"""A real MLflow tracking server for the tests, run from a virtualenv of its own.

The full ``mlflow`` package pins gunicorn below 27, which Modelport's own environment cannot
have, so the server lives in a virtualenv made once (with the package index) under
``~/.cache/modelport/mlflow-venv/<version>`` and reused by every later run. ``make
mlflow-venv`` (and so ``.ci/run``) makes it ahead of the tests: ``python -m
tests.support.mlflow_server``. Without it a laptop skips the MLflow tests with the reason;
CI (``MODELPORT_TEST_REQUIRE_SERVICES=1``) fails.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.databases import REQUIRE_SERVICES
from tests.support.servers import free_port

# The server's version: the same MLflow 3 release as the client (mlflow-skinny) pinned in
# requirements.txt, checked to install and serve on these machines.
MLFLOW_VERSION = "3.17.2"
VENV = Path.home() / ".cache" / "modelport" / "mlflow-venv" / MLFLOW_VERSION
READY_MARK = VENV / ".complete"
START_SECONDS = 90  # the first start creates the SQLite tables: about 10 s here


class MlflowUnavailable(RuntimeError):
    """The server's virtualenv cannot be made (no package index, no venv module)."""


def ensure_venv(*, quiet: bool = True) -> Path:
    """The virtualenv with ``mlflow==MLFLOW_VERSION``, made once (about a minute); two
    processes asking at once wait for one to make it."""
    VENV.parent.mkdir(parents=True, exist_ok=True)
    with (VENV.parent / f".{MLFLOW_VERSION}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if READY_MARK.exists():
            return VENV
        shutil.rmtree(VENV, ignore_errors=True)  # a half-made one from an interrupted run
        python = shutil.which("python3.11") or sys.executable
        pip = [str(VENV / "bin" / "python"), "-m", "pip", "install"]
        if quiet:
            pip.append("--quiet")
        steps = [
            [python, "-m", "venv", str(VENV)],
            [*pip, "--upgrade", "pip"],
            [*pip, f"mlflow=={MLFLOW_VERSION}"],
        ]
        for step in steps:
            done = subprocess.run(step, capture_output=quiet, text=True, check=False)  # noqa: S603
            if done.returncode != 0:
                shutil.rmtree(VENV, ignore_errors=True)
                tail = (done.stderr or "").strip().splitlines()[-3:] if quiet else []
                raise MlflowUnavailable(
                    f"cannot make the MLflow virtualenv ({' '.join(step[-2:])}): "
                    + " | ".join(tail)
                )
        READY_MARK.touch()
    return VENV


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:  # noqa: S310
            return response.status == 200
    except OSError:
        return False


@contextlib.contextmanager
def running_server(folder: Path) -> Iterator[str]:
    """An ``mlflow server`` on a free loopback port, its runs in SQLite and its artifacts
    in files under ``folder``; its URL. Stopped on the way out."""
    venv = ensure_venv()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (folder / "mlflow-server.log").open("wb")
    command = [
        str(venv / "bin" / "mlflow"),
        "server",
        "--backend-store-uri",
        f"sqlite:///{folder / 'mlflow.db'}",
        "--default-artifact-root",
        (folder / "artifacts").as_uri(),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    # Webhooks to this machine's Modelport servers: MLflow delivers over https only and to
    # public addresses only, unless told otherwise (tests only: production uses https). Its
    # list of webhooks per event is cached 60 s by default, which would hide a webhook a test
    # just made from an event that came before. No usage reports leave the machine.
    env = os.environ | {
        "MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http,https",
        "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true",
        "MLFLOW_WEBHOOK_CACHE_TTL": "1",
        "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY": base64.urlsafe_b64encode(
            secrets.token_bytes(32)
        ).decode(),
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)  # noqa: S603
    try:
        deadline = time.monotonic() + START_SECONDS
        while not _answers(url):
            if server.poll() is not None or time.monotonic() > deadline:
                tail = (folder / "mlflow-server.log").read_text(errors="replace")[-2000:]
                raise MlflowUnavailable(f"mlflow server did not start: {tail}")
            time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a real MLflow tracking server and model registry, one per test process."""
    folder = tmp_path_factory.mktemp("mlflow-server")
    try:
        server = running_server(folder)
        url = server.__enter__()
    except MlflowUnavailable as exc:
        reason = f"no MLflow server: {exc} (make mlflow-venv makes its virtualenv)"
        if REQUIRE_SERVICES:
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield url
    finally:
        server.__exit__(None, None, None)


if __name__ == "__main__":
    print(ensure_venv(quiet=False))  # noqa: T201 - make mlflow-venv says where it is
