"""gunicorn's process model under stress: fork safety and killed workers (reliability 2 and 3).

Workers are found through /proc (the master's children, and which of them holds a given
client connection), so that a test kills exactly the worker it means to.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import signal
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from sqlalchemy import text

from modelport import create_app
from modelport.auth import accounts, tokens
from modelport.extensions import db
from modelport.models.predictions import PredictionRecord
from tests.support.databases import empty_database_url
from tests.support.deployments import PREDICT, deploy
from tests.support.html import csrf_from
from tests.support.models import IRIS_ROW, csv_body
from tests.support.processes import alive, processes, wait_for
from tests.support.servers import (
    GRACEFUL_SECONDS,
    HeldLogin,
    Master,
    gunicorn_master,
    wait_for_workers,
)
from tests.support.users import PASSWORD

pytestmark = pytest.mark.slow

LOAD_EMAIL = "load@example.com"
THREADS = 16
REQUESTS_PER_THREAD = 25
# A CSV upload large enough to be sent in two halves, the second after SIGTERM.
CSV_ROWS = 20_000
# What a connection shared by two processes shows up as in the log (psycopg / libpq wording).
BAD_LOG_LINE = re.compile(r"error|traceback|protocol|out of sync|lost synchronization", re.I)


def preloaded_app() -> Flask:
    """The app as ``create_app`` builds it, having used its database before gunicorn forks.

    Loading code that touches the database (a model registry, a warm-up query) leaves a
    connection in the master's pool; without ``post_fork`` every worker would inherit that
    one socket, and concurrent requests would interleave on it.
    """
    app = create_app()
    with app.app_context():
        with db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        assert db.engine.pool.checkedin() == 1, "the master's pool should hold a connection"
    return app


def _in_group(group: int) -> set[int]:
    """Live processes of process group ``group`` (the master started a session of its own)."""
    return {pid for pid, state, _, pgid in processes() if pgid == group and state != "Z"}


def _socket_inode(server_port: int, client_port: int) -> str | None:
    """Inode of the server's end of the loopback connection from ``client_port``, once accepted.

    A connection still in the listen queue has inode 0: no process holds it yet.
    """
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port = int(fields[1].split(":")[1], 16)
        remote_port = int(fields[2].split(":")[1], 16)
        if (local_port, remote_port) == (server_port, client_port) and fields[9] != "0":
            return fields[9]
    return None


def _holder(pids: set[int], inode: str) -> int | None:
    """The process among ``pids`` that has socket ``inode`` open."""
    for pid in pids:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError, PermissionError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(FileNotFoundError, OSError):
                    if os.readlink(fd) == f"socket:[{inode}]":
                        return pid
    return None


def _worker_holding(master: Master, held: HeldLogin | http.client.HTTPConnection) -> int:
    """The worker that accepted ``held``'s connection and now waits for its body."""
    connection = held.connection if isinstance(held, HeldLogin) else held
    client_port = connection.sock.getsockname()[1]

    def find() -> int | None:
        inode = _socket_inode(master.server.port, client_port)
        return _holder(master.workers(), inode) if inode else None

    return wait_for(find, "a worker to accept the held request")


@pytest.fixture
def postgres_with_token(tmp_path: Path) -> tuple[str, str]:
    """A fresh migrated PostgreSQL database with one member and a full-scope token."""
    from flask_migrate import upgrade

    url = empty_database_url("postgres", tmp_path, "forks")
    app = create_app({"ENV": "testing", "DATABASE_URL": url, "INSTANCE_PATH": str(tmp_path)})
    with app.app_context():
        upgrade()
        user = accounts.create_user(LOAD_EMAIL, "Load", PASSWORD)
        _, plaintext = tokens.create_token(user, "load test", scopes=["full"])
        db.session.remove()
        db.engine.dispose()
    return url, plaintext


def test_preloaded_workers_do_not_share_database_connections(
    tmp_path: Path, postgres_with_token: tuple[str, str]
) -> None:
    """Reliability 2: --preload, 4 workers, concurrent DB reads: no protocol errors."""
    url, token = postgres_with_token

    def calls(_: int) -> list[tuple[int, str | None]]:
        results = []
        for _ in range(REQUESTS_PER_THREAD):
            response = requests.get(
                f"{master.server.url}/api/v1/me",
                headers={"Authorization": f"Bearer {token}"},
                timeout=30,
            )
            email = response.json().get("email") if response.status_code == 200 else None
            results.append((response.status_code, email))
        return results

    with gunicorn_master(
        tmp_path, url, "--preload", "-w", "4", app="tests.ops.test_workers:preloaded_app()"
    ) as master:
        wait_for_workers(master, 4)
        with ThreadPoolExecutor(THREADS) as pool:
            results = [r for batch in pool.map(calls, range(THREADS)) for r in batch]

    # Read the log once the server has stopped: a worker logs a request after answering it.
    log = master.server.text()
    assert len(results) == THREADS * REQUESTS_PER_THREAD
    assert set(results) == {(200, LOAD_EMAIL)}, {r for r in results if r != (200, LOAD_EMAIL)}
    bad = [line for line in log.splitlines() if BAD_LOG_LINE.search(line)]
    assert bad == [], "\n".join(bad)
    pids = master.served_pids("/api/v1/me")
    assert len(pids) == THREADS * REQUESTS_PER_THREAD
    assert len(set(pids)) > 1, "one worker served everything: the load was not concurrent"


def test_killed_worker_is_replaced_and_sigterm_drains(tmp_path: Path, database: str) -> None:
    """Reliability 3: kill -9 a worker mid-request, then SIGTERM the master."""
    with gunicorn_master(tmp_path, database, "-w", "2") as master:
        first = wait_for_workers(master, 2)
        browser = requests.Session()
        csrf = csrf_from(browser.get(f"{master.server.url}/auth/login", timeout=30).text)

        # A request in flight on one worker: its headers are in, its body is not.
        held = HeldLogin(master.server, browser, csrf)
        victim = _worker_holding(master, held)
        booted = len(master.booted())
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: not alive(victim), "the killed worker to die")

        # That one request fails: the connection dies with its worker.
        with pytest.raises((OSError, http.client.HTTPException)):
            held.finish()
        held.connection.close()
        # The master notices and boots a replacement.
        wait_for(lambda: len(master.booted()) > booted, "a new 'Booting worker' line")
        now = wait_for_workers(master, 2)
        assert victim not in now
        assert len(now - first) == 1
        # Everything else keeps working.
        statuses = [
            requests.get(f"{master.server.url}/readyz", timeout=30).status_code for _ in range(20)
        ]
        assert statuses == [200] * 20

        # Graceful stop: a request in flight when SIGTERM arrives is still answered.
        held = HeldLogin(master.server, browser, csrf)
        busy = _worker_holding(master, held)
        idle = (now - {busy}).pop()
        os.kill(master.pid, signal.SIGTERM)
        # The idle worker has exited on the master's SIGTERM, so the busy one has it too.
        wait_for(lambda: not alive(idle), "the idle worker to exit")
        assert alive(busy)
        status, body = held.finish()
        assert status == 400
        assert "Wrong e-mail or password." in body
        master.process.wait(timeout=GRACEFUL_SECONDS)

    assert master.process.returncode == 0
    assert not any(alive(pid) for pid in now | first), "a worker outlived its master"
    assert _in_group(master.pid) == set()
    log = master.server.text()
    assert f"Worker (pid:{victim}) was sent SIGKILL!" in log
    assert "Handling signal: term" in log
    # The only error the log may show is the report of the worker killed on purpose.
    errors = [
        line
        for line in log.splitlines()
        if BAD_LOG_LINE.search(line) and f"(pid:{victim}) was sent SIGKILL" not in line
    ]
    assert errors == [], "\n".join(errors)


def test_drain_turns_readiness_503_first_and_sigterm_lets_an_upload_finish(
    tmp_path: Path, demo_models: dict[str, Any]
) -> None:
    """Issue 12, item 9 (the pod's way out, deploy/k8s preStop): ``modelport drain`` makes
    /readyz 503 while the server still answers; then SIGTERM. A CSV upload that was half
    sent all along is read to its end and answered in full, and the master exits 0."""
    flag = tmp_path / "draining"
    deployment = deploy(tmp_path, empty_database_url("sqlite", tmp_path, "drain"), demo_models)
    body = csv_body(CSV_ROWS, demo_models)
    request_id = uuid.uuid4().hex
    try:
        with deployment.serve(env={"MODELPORT_DRAIN_FILE": str(flag)}) as master:
            url = master.server.url
            workers = master.workers()
            ready_before = requests.get(f"{url}/readyz", timeout=30).status_code

            # The upload: its head and half its body are in, the rest comes later.
            upload = http.client.HTTPConnection("127.0.0.1", master.server.port, timeout=60)
            upload.putrequest("POST", PREDICT)
            for name, value in {
                **deployment.auth,
                "Content-Type": "text/csv",
                "Content-Length": str(len(body)),
                "X-Request-ID": request_id,
            }.items():
                upload.putheader(name, value)
            upload.endheaders()
            upload.send(body[: len(body) // 2])
            busy = _worker_holding(master, upload)
            idle = (workers - {busy}).pop()

            drained = subprocess.run(
                [str(Path(sys.executable).parent / "modelport"), "drain"],
                env={**os.environ, "MODELPORT_DRAIN_FILE": str(flag)},
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            # The idle worker answers: not ready, while it still serves what reaches it.
            readiness = [requests.get(f"{url}/readyz", timeout=30) for _ in range(3)]
            served = requests.post(
                url + PREDICT, json={"inputs": IRIS_ROW}, headers=deployment.auth, timeout=30
            ).status_code

            os.kill(master.pid, signal.SIGTERM)
            wait_for(lambda: not alive(idle), "the idle worker to exit")
            busy_alive = alive(busy)
            upload.send(body[len(body) // 2 :])
            response = upload.getresponse()
            answer = (response.status, response.getheader("X-Rows"), response.read())
            upload.close()
            master.process.wait(timeout=GRACEFUL_SECONDS)
        records = deployment.records(PredictionRecord.request_id == request_id)
    finally:
        deployment.close()

    assert ready_before == 200
    assert drained.returncode == 0, drained.stderr
    assert drained.stdout == f"Draining: {flag} exists, /readyz answers 503.\n"
    assert [(r.status_code, r.json()) for r in readiness] == [
        (503, {"status": "not ready", "checks": {"draining": "shutting down"}})
    ] * 3
    assert served == 200
    assert busy_alive
    status, rows, csv = answer
    assert (status, rows) == (200, str(CSV_ROWS))
    assert csv.count(b"\n") == CSV_ROWS + 1
    assert master.process.returncode == 0
    assert _in_group(master.pid) == set()
    assert [(r.status, r.row_count, r.source) for r in records] == [("ok", CSV_ROWS, "csv")]
