"""A real gunicorn on a free loopback port, with the production config, and its workers.

``launch`` starts one and waits until it answers; ``gunicorn`` and ``gunicorn_master`` are
context managers that stop it afterwards (``gunicorn_master`` also knows its workers).
"""

from __future__ import annotations

import contextlib
import http.client
import importlib
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import requests

from modelport.config import SETTINGS
from tests.support.processes import children, wait_for

REPO_ROOT = Path(__file__).resolve().parents[2]
# The member whose sign-ins the gunicorn tests make (and hold, and throttle).
EMAIL = "victim@example.com"
WRONG = "not the right password at all"
START_SECONDS = 60
# gunicorn_conf's graceful_timeout is 30 s; the master must be gone a little after it at most.
GRACEFUL_SECONDS = 35
ACCESS_FORMAT = "%(p)s %(m)s %(U)s %(s)s"


def server_settings() -> types.ModuleType:
    """``modelport.ops.gunicorn_conf``, read without what it does to the environment.

    Imported, it points ``PROMETHEUS_MULTIPROC_DIR`` at a new directory for the server's
    workers; a test process that kept it would have every app refuse to start (its metrics
    were not made in multiprocess mode). Read with metrics off, it makes no directory.
    """
    saved = dict(os.environ)
    os.environ["MODELPORT_METRICS"] = "false"  # nor a metrics directory left in /tmp
    try:
        return importlib.import_module("modelport.ops.gunicorn_conf")
    finally:
        os.environ.clear()
        os.environ.update(saved)


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # nothing listens there once the probe closes


@dataclass
class Server:
    url: str
    port: int
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def login_pids(self) -> list[str]:
        """The worker pid of every POST /auth/login, in the order they were answered."""
        return re.findall(r"^<(\d+)> POST /auth/login \d+$", self.text(), re.MULTILINE)


def launch(
    tmp_path: Path,
    database: str,
    *options: str,
    app: str = "modelport:create_app()",
    env: dict[str, str] | None = None,
) -> tuple[subprocess.Popen, Server]:
    """Start gunicorn with the production config on a free port and wait until it answers.

    The caller stops it. The process leads a session of its own, so that its whole group
    (master and workers) can be killed at once.
    """
    ours = {f"MODELPORT_{s.name}" for s in SETTINGS}
    environment = {k: v for k, v in os.environ.items() if k not in ours}
    environment |= {
        "MODELPORT_ENV": "testing",
        "MODELPORT_DATABASE_URL": database,
        "MODELPORT_INSTANCE_PATH": str(tmp_path / "instance"),
        # One key for all workers, or each would refuse the others' session cookies.
        "MODELPORT_SECRET_KEY": secrets.token_urlsafe(36),
        "MODELPORT_LOG_FORMAT": "text",
        # gunicorn's access log (off by default), in ACCESS_FORMAT: login_pids and served_pids
        # read which worker answered each request from it.
        "MODELPORT_ACCESS_LOG": "true",
        **(env or {}),
    }
    port = free_port()
    log = tmp_path / f"gunicorn-{port}.log"
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--config",
        "python:modelport.ops.gunicorn_conf",
        "-b",
        f"127.0.0.1:{port}",
        # gunicorn's access log is off by default (the app writes its own line); these
        # tests read it for the worker pid (%(p)s) of each answer, so it is on here.
        "--access-logfile",
        "-",
        "--access-logformat",
        ACCESS_FORMAT,
        *options,
        app,
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            env=environment,
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(f"http://127.0.0.1:{port}", port, log)
    try:
        wait_until_up(server, process)
    except BaseException:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        raise
    return process, server


@contextlib.contextmanager
def gunicorn(tmp_path: Path, database: str, **settings: str) -> Iterator[Server]:
    """gunicorn with two workers on a free port; stopped (killed if need be) afterwards."""
    env = {
        "MODELPORT_LOGIN_LIMIT_ACCOUNT": "5 per 15 minutes",
        "MODELPORT_LOGIN_LIMIT_IP": "1000 per 15 minutes",  # only the account limit is tested
        **{f"MODELPORT_{k}": v for k, v in settings.items()},
    }
    process, server = launch(tmp_path, database, "-w", "2", env=env)
    try:
        yield server
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # the master and its workers
            process.wait(timeout=10)


def wait_until_up(server: Server, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {process.returncode}:\n{server.text()}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{server.url}/healthz", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"gunicorn did not answer /healthz in time:\n{server.text()}")


class HeldLogin:
    """A bad login whose body is held back, so the worker that took it stays busy."""

    def __init__(self, server: Server, browser: requests.Session, token: str) -> None:
        self.body = urlencode({"email": EMAIL, "password": WRONG, "csrf_token": token}).encode()
        self.connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        self.connection.putrequest("POST", "/auth/login")
        self.connection.putheader("Content-Type", "application/x-www-form-urlencoded")
        self.connection.putheader("Content-Length", str(len(self.body)))
        cookies = "; ".join(f"{c.name}={c.value}" for c in browser.cookies)
        self.connection.putheader("Cookie", cookies)
        self.connection.endheaders()

    def finish(self) -> tuple[int, str]:
        self.connection.send(self.body)
        response = self.connection.getresponse()
        result = response.status, response.read().decode()
        self.connection.close()
        return result


@dataclass
class Master:
    process: subprocess.Popen
    server: Server

    @property
    def pid(self) -> int:
        return self.process.pid

    def workers(self) -> set[int]:
        return children(self.pid)

    def booted(self) -> list[int]:
        """Pids from every "Booting worker" line so far, in order."""
        return [int(p) for p in re.findall(r"Booting worker with pid: (\d+)", self.server.text())]

    def served_pids(self, path: str) -> list[str]:
        """The worker pid of every answered request for ``path`` (access log, ``%(p)s``)."""
        pattern = rf"^<(\d+)> \w+ {re.escape(path)} \d+$"
        return re.findall(pattern, self.server.text(), re.MULTILINE)


def wait_for_workers(master: Master, count: int) -> set[int]:
    """The master's workers, once there are ``count`` of them."""

    def ready() -> set[int] | None:
        pids = master.workers()
        return pids if len(pids) == count else None

    return wait_for(ready, f"{count} workers")


@contextlib.contextmanager
def gunicorn_master(
    tmp_path: Path,
    database_url: str,
    *options: str,
    app: str = "modelport:create_app()",
    env: dict[str, str] | None = None,
) -> Iterator[Master]:
    """gunicorn (production config, own options and environment) on a free port; killed if
    still up after."""
    # So that the master can import an app factory from the tests (``app="tests...."``).
    path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    environment = {"PYTHONPATH": path, **(env or {})}
    process, server = launch(tmp_path, database_url, *options, app=app, env=environment)
    master = Master(process, server)
    try:
        yield master
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=GRACEFUL_SECONDS)
        # Whatever is left of the group (the master, or workers it failed to stop) is killed.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
