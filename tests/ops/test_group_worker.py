"""The product's gunicorn worker (``modelport.ops.worker``) answering waiting predictions as
a group: their records committed together, each answer with its own record, and nobody kept
waiting behind a connection that has not sent its request.

One worker, so that the order of the connections in the listen queue is the order in which
it takes them. The first prediction's headers go out alone: the worker takes that connection
and waits, inside the application, for its body; meanwhile the others connect and send
their whole requests, and are all waiting when the body follows.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from modelport.models.predictions import PredictionRecord
from modelport.ops.worker import group_size
from tests.support.databases import empty_database_url, transactions
from tests.support.deployments import PREDICT, Deployment, deploy
from tests.support.models import IRIS_ROW

pytestmark = pytest.mark.slow

# The hot path only takes tokens its worker remembers (the test settings turn that off).
REMEMBER = {"MODELPORT_TOKEN_CACHE_SECONDS": "60", "MODELPORT_WORKER_GROUP": "8"}
BODY = json.dumps({"inputs": IRIS_ROW}).encode()
ANSWER_SECONDS = 20
LIVELY_SECONDS = 2


def _request_head(token: str, request_id: str) -> bytes:
    return (
        f"POST {PREDICT} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(BODY)}\r\n"
        f"X-Request-ID: {request_id}\r\nConnection: close\r\n\r\n"
    ).encode()


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=ANSWER_SECONDS)


def _answer(connection: socket.socket) -> tuple[int, dict]:
    """Status and JSON body of the answer on ``connection`` (the server closes it)."""
    data = b""
    with connection:
        while chunk := connection.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


@contextlib.contextmanager
def _one_worker(
    tmp_path: Path, demo_models: dict[str, Any], backend: str, env: dict[str, str] | None = None
) -> Iterator[tuple[Deployment, int]]:
    """gunicorn with one worker that remembers the deployment's token, on a fresh database of
    ``backend``; yields the deployment and the server's port."""
    deployment = deploy(tmp_path, empty_database_url(backend, tmp_path, "group"), demo_models)
    try:
        with deployment.serve(env={**REMEMBER, **(env or {})}, workers=1) as master:
            # The worker checks the token in the database once, then remembers it.
            response = requests.post(
                master.server.url + PREDICT,
                json={"inputs": IRIS_ROW},
                headers=deployment.auth,
                timeout=30,
            )
            assert response.status_code == 200, response.text
            yield deployment, master.server.port
    finally:
        deployment.close()


def _waiting_for_its_body(deployment: Deployment, port: int, request_id: str) -> socket.socket:
    """A prediction whose headers are sent and body not: the worker takes it and waits."""
    connection = _connect(port)
    connection.sendall(_request_head(deployment.token, request_id))
    return connection


def _whole(deployment: Deployment, port: int, request_id: str) -> socket.socket:
    """A prediction sent whole, waiting for the worker to take it."""
    connection = _connect(port)
    connection.sendall(_request_head(deployment.token, request_id) + BODY)
    return connection


@pytest.mark.db
def test_predictions_waiting_together_are_answered_as_a_group_each_with_its_record(
    tmp_path: Path, demo_models: dict[str, Any], backend: str
) -> None:
    ids = [uuid.uuid4().hex for _ in range(5)]
    with _one_worker(tmp_path, demo_models, backend) as (deployment, port):
        first = _waiting_for_its_body(deployment, port, ids[0])
        others = [_whole(deployment, port, request_id) for request_id in ids[1:]]
        first.sendall(BODY)
        answers = [_answer(connection) for connection in [first, *others]]
    assert [status for status, _ in answers] == [200] * 5, answers
    assert [body["request_id"] for _, body in answers] == ids
    record_ids = [body["record_id"] for _, body in answers]
    stored = {r.id: r for r in deployment.records(PredictionRecord.id.in_(record_ids))}
    assert [stored[record_id].request_id for record_id in record_ids] == ids
    for _, body in answers:
        assert stored[body["record_id"]].outputs == body["predictions"]
    if backend == "postgres":
        # One transaction wrote them all: the group's single commit.
        assert len(transactions(deployment.app, backend, record_ids)) == 1


def test_a_connection_that_has_not_sent_its_request_does_not_hold_the_answers_before_it(
    tmp_path: Path, demo_models: dict[str, Any]
) -> None:
    with _one_worker(tmp_path, demo_models, "sqlite") as (deployment, port):
        first = _waiting_for_its_body(deployment, port, "first")
        second = _whole(deployment, port, "second")
        silent = _connect(port)  # sends nothing until the end
        first.sendall(BODY)
        # Held behind the silent connection, these would time out.
        answers = [_answer(first), _answer(second)]
        silent.sendall(_request_head(deployment.token, "last") + BODY)
        answers.append(_answer(silent))
    assert [(status, body["request_id"]) for status, body in answers] == [
        (200, "first"),
        (200, "second"),
        (200, "last"),
    ]


PARTIAL_HEAD = f"POST {PREDICT} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode()


@pytest.mark.parametrize("sent", ["part of its head", "its head, part of its body"])
def test_a_connection_that_has_sent_part_of_its_request_does_not_hold_the_answers_before_it(
    tmp_path: Path, demo_models: dict[str, Any], sent: str
) -> None:
    """The worker holds an answer only for connections whose whole request is in: one still
    sending (a slow or stalled client) has the answers before it sent first. Waiting for
    it, they would wait as long as it likes (here up to the head deadline of 30 s)."""
    with _one_worker(tmp_path, demo_models, "sqlite", {"MODELPORT_REQUEST_HEAD_TIMEOUT": "30"}) as (
        deployment,
        port,
    ):
        first = _waiting_for_its_body(deployment, port, "first")
        whole = _whole(deployment, port, "whole")
        partial = _connect(port)
        if sent == "part of its head":
            partial.sendall(PARTIAL_HEAD)
            rest = _request_head(deployment.token, "partial")[len(PARTIAL_HEAD) :] + BODY
        else:
            partial.sendall(_request_head(deployment.token, "partial") + BODY[:10])
            rest = BODY[10:]
        first.sendall(BODY)
        for connection in (first, whole):
            connection.settimeout(LIVELY_SECONDS)  # a liveness bound, not a latency figure
        answers = [_answer(first), _answer(whole)]
        partial.sendall(rest)
        answers.append(_answer(partial))
    assert [(status, body["request_id"]) for status, body in answers] == [
        (200, "first"),
        (200, "whole"),
        (200, "partial"),
    ]


def test_a_request_the_hot_path_does_not_take_has_the_held_answers_sent_first(
    tmp_path: Path, demo_models: dict[str, Any]
) -> None:
    with _one_worker(tmp_path, demo_models, "sqlite") as (deployment, port):
        first = _waiting_for_its_body(deployment, port, "first")
        second = _whole(deployment, port, "second")
        # A CSV prediction (not the hot path's) whose body is slow to come: its answer
        # takes as long as the body, and the held answers must not wait for it.
        upload = _connect(port)
        upload.sendall(
            (
                f"POST {PREDICT} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Authorization: Bearer {deployment.token}\r\nContent-Type: text/csv\r\n"
                "Content-Length: 1000\r\nConnection: close\r\n\r\n"
            ).encode()
        )
        first.sendall(BODY)
        answers = [_answer(first), _answer(second)]
        upload.close()
    assert [(status, body["request_id"]) for status, body in answers] == [
        (200, "first"),
        (200, "second"),
    ]


@pytest.mark.parametrize(("value", "size"), [(None, 8), ("1", 1), (" 16 ", 16)])
def test_the_group_size_comes_from_its_setting(
    monkeypatch: pytest.MonkeyPatch, value: str | None, size: int
) -> None:
    if value is None:
        monkeypatch.delenv("MODELPORT_WORKER_GROUP", raising=False)
    else:
        monkeypatch.setenv("MODELPORT_WORKER_GROUP", value)
    assert group_size() == size


@pytest.mark.parametrize("value", ["0", "-2", "eight", "2.5", ""])
def test_a_bad_group_size_stops_the_server_at_start(tmp_path: Path, value: str) -> None:
    """The master refuses to start (gunicorn reads its config first), naming the setting."""
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
        env={**os.environ, "MODELPORT_WORKER_GROUP": value},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "MODELPORT_WORKER_GROUP must be a whole number from 1" in result.stdout + result.stderr
