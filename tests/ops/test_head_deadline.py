"""``modelport serve`` without a proxy: a connection has ``MODELPORT_REQUEST_HEAD_TIMEOUT``
seconds to send its whole request head, or the worker closes it (``modelport.ops.worker``).

gunicorn's sync worker read a connection's request for as long as the client took, so two
sockets that connected and sent nothing stopped a server of two workers until the master
killed them (60 s). The deadline counts from when the worker takes the connection, and a
client that sends a byte now and then does not move it. Bodies are read as before.
"""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from modelport.config import SETTINGS, ConfigError, read_settings
from modelport.ops.worker import head_timeout
from tests.support.databases import empty_database_url
from tests.support.deployments import PREDICT, deploy
from tests.support.models import IRIS_ROW, csv_body
from tests.support.servers import gunicorn, gunicorn_master, wait_for_workers

pytestmark = pytest.mark.slow

# How late past its deadline a connection may be closed, or a waiting request answered, on a
# loaded two-core machine.
MARGIN = 3.0
DEFAULT = next(float(s.default) for s in SETTINGS if s.name == "REQUEST_HEAD_TIMEOUT")


def _trickle_until_closed(connection: socket.socket, since: float, seconds: float) -> float:
    """Send the rest of a request head a byte every 0.5 s (each well within the deadline)
    until the server closes the connection; how long after ``since`` it did."""
    rest = b"Host: 127.0.0.1\r\nX-Padding: " + b"a" * 1000
    for byte in rest:
        try:
            connection.send(bytes([byte]))
            if select.select([connection], [], [], 0.5)[0] and not connection.recv(1):
                break  # the server's FIN
        except OSError:
            break  # its RST
        if time.monotonic() - since > seconds:
            pytest.fail(f"the connection was still open after {seconds} s")
    return time.monotonic() - since


def test_a_head_that_trickles_in_is_closed_at_its_deadline_and_the_worker_goes_on(
    tmp_path: Path, database: str
) -> None:
    env = {"MODELPORT_REQUEST_HEAD_TIMEOUT": "2"}
    # One worker, so that the request below waits for the very worker the trickle holds.
    with gunicorn_master(tmp_path, database, "-w", "1", "--log-level", "debug", env=env) as master:
        wait_for_workers(master, 1)
        # The clock starts before the connect: the worker may take the connection (and start
        # its deadline) before this thread runs again after connect() returns.
        connected = time.monotonic()
        trickle = socket.create_connection(("127.0.0.1", master.server.port), timeout=10)
        trickle.sendall(b"GET /healthz HTTP/1.1\r\n")
        answered: dict[str, Any] = {}

        def health() -> None:
            response = requests.get(f"{master.server.url}/healthz", timeout=2 + MARGIN + 5)
            answered.update(status=response.status_code, after=time.monotonic() - connected)

        time.sleep(0.3)  # the worker has taken the trickle and waits for the rest of it
        waiting = threading.Thread(target=health)
        waiting.start()
        closed_after = _trickle_until_closed(trickle, connected, 2 + MARGIN)
        waiting.join(timeout=2 + MARGIN + 5)
        trickle.close()
    assert 2 <= closed_after < 2 + MARGIN
    assert answered["status"] == 200
    assert answered["after"] < 2 + MARGIN
    assert "Closing connection. no complete request head within 2 s" in master.server.text()


def test_two_silent_connections_no_longer_stop_a_server_of_two_workers(
    tmp_path: Path, database: str
) -> None:
    """The finding: /healthz answered nobody while two sockets sent nothing."""
    with gunicorn(tmp_path, database) as server:  # modelport serve's config, 2 workers
        silent = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(2)]
        time.sleep(0.5)  # each worker has taken one
        started = time.monotonic()
        response = requests.get(f"{server.url}/healthz", timeout=DEFAULT + MARGIN)
        waited = time.monotonic() - started
        for connection in silent:
            connection.close()
    assert response.status_code == 200
    print(f"\n/healthz answered after {waited:.1f} s behind two silent connections")


def test_a_slow_body_is_read_whole_after_a_quick_head(
    tmp_path: Path, demo_models: dict[str, Any]
) -> None:
    """The deadline is the head's: a JSON body and a CSV upload that come in slowly, for
    longer than the deadline, are answered in full."""
    deployment = deploy(tmp_path, empty_database_url("sqlite", tmp_path, "head"), demo_models)
    body = csv_body(2000, demo_models)
    json_body = json.dumps({"inputs": IRIS_ROW}).encode()
    try:
        with deployment.serve(env={"MODELPORT_REQUEST_HEAD_TIMEOUT": "1"}, workers=1) as master:
            port = master.server.port
            # The head in two parts within the deadline, then a JSON body 2 s later.
            with socket.create_connection(("127.0.0.1", port), timeout=30) as client:
                head = (
                    f"POST {PREDICT} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    f"Authorization: Bearer {deployment.token}\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {len(json_body)}\r\n\r\n"
                ).encode()
                client.sendall(head[:20])
                time.sleep(0.4)
                client.sendall(head[20:])
                time.sleep(2)
                client.sendall(json_body)
                answer = _read_all(client)
            assert answer.startswith(b"HTTP/1.1 200 "), answer[:300]
            assert json.loads(answer.partition(b"\r\n\r\n")[2])["predictions"][0]["label"]
            # A CSV upload in 8 parts over 4 s.
            with socket.create_connection(("127.0.0.1", port), timeout=30) as client:
                client.sendall(
                    (
                        f"POST {PREDICT} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                        f"Authorization: Bearer {deployment.token}\r\nContent-Type: text/csv\r\n"
                        f"Content-Length: {len(body)}\r\n\r\n"
                    ).encode()
                )
                step = -(-len(body) // 8)
                for start in range(0, len(body), step):
                    time.sleep(0.5)
                    client.sendall(body[start : start + step])
                answer = _read_all(client)
    finally:
        deployment.close()
    head, _, _ = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), answer[:300]
    assert b"X-Rows: 2000" in head


def _read_all(client: socket.socket) -> bytes:
    data = b""
    while chunk := client.recv(65536):
        data += chunk
    return data


@pytest.mark.parametrize(("value", "seconds"), [(None, 5.0), ("2", 2.0), (" 0.5 ", 0.5)])
def test_the_head_timeout_comes_from_its_setting(
    monkeypatch: pytest.MonkeyPatch, value: str | None, seconds: float
) -> None:
    if value is None:
        monkeypatch.delenv("MODELPORT_REQUEST_HEAD_TIMEOUT", raising=False)
    else:
        monkeypatch.setenv("MODELPORT_REQUEST_HEAD_TIMEOUT", value)
    assert head_timeout() == seconds
    assert DEFAULT == 5.0  # the worker's default is the documented one


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("0", "a number of seconds above 0"),
        ("five", "a number of seconds above 0"),
        ("inf", "a number of seconds above 0"),
        ("60", "below MODELPORT_WORKER_TIMEOUT"),
    ],
)
def test_a_bad_head_timeout_stops_the_server_at_start(value: str, words: str) -> None:
    """gunicorn refuses to start (it reads its config first), naming the setting."""
    result = subprocess.run(  # noqa: S603 - our own interpreter and module
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--config",
            "python:modelport.ops.gunicorn_conf",
            "--check-config",
            "modelport:create_app()",
        ],
        env={**os.environ, "MODELPORT_REQUEST_HEAD_TIMEOUT": value},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "MODELPORT_REQUEST_HEAD_TIMEOUT must be" in output and words in output
    if value != "60":  # the app, which does not know the worker timeout, refuses the others
        with pytest.raises(ConfigError, match="MODELPORT_REQUEST_HEAD_TIMEOUT"):
            read_settings({"MODELPORT_REQUEST_HEAD_TIMEOUT": value})
