"""Run a WSGI app under gunicorn for a benchmark, and always stop it again."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM the whole gunicorn process group, then SIGKILL what is left after 10 s."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    except ProcessLookupError:
        pass


@contextmanager
def gunicorn(
    app: str,
    *,
    env: dict[str, str],
    log_path: Path,
    workers: int = 2,
    ready_path: str = "/health",
    startup_timeout: float = 30.0,
    config: str | None = None,
    options: tuple[str, ...] = (),
    cwd: Path | None = None,
) -> Iterator[str]:
    """Serve ``app`` (a gunicorn app spec importable from bench/) and yield its base URL.

    ``config`` is a gunicorn config (``python:modelport.ops.gunicorn_conf``); the worker
    count, the address and the log settings given here override it. Without one the
    workers are gunicorn's sync workers. ``options`` are more gunicorn options, which
    override the config too (``--worker-class gthread --threads 8``). ``cwd`` is the
    folder gunicorn starts in, first on its ``sys.path`` (``python -m`` puts it there):
    a checkout of another commit, say, whose package must be the one imported.
    """
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        # The config's worker class (the product's), else gunicorn's sync worker.
        *(["--config", config] if config else ["--worker-class", "sync"]),
        *options,
        "--workers",
        str(workers),
        "--bind",
        f"127.0.0.1:{port}",
        "--chdir",
        str(BENCH_DIR),
        "--log-level",
        "warning",
        "--error-logfile",
        "-",
        app,
    ]
    if os.path.isdir("/dev/shm"):
        # The heartbeat file on tmpfs, as the product's gunicorn settings do.
        command[-1:-1] = ["--worker-tmp-dir", "/dev/shm"]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        # A session of its own: Ctrl-C in the terminal reaches only this script, which then
        # stops the server group itself in the finally below.
        process = subprocess.Popen(
            command,
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=cwd,
        )
    try:
        base_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + startup_timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"gunicorn exited early:\n{_tail(log_path)}")
            try:
                url = base_url + ready_path
                with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - http only
                    if response.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not answer in time:\n{_tail(log_path)}")
            time.sleep(0.1)
        yield base_url
    finally:
        _stop(process)
