"""Slow and silent clients, with the shipped nginx config in front of gunicorn and without.

Debian's nginx runs ``deploy/nginx/nginx.conf`` and ``deploy/nginx/modelport.conf`` as they
are shipped, with only their paths, the listen port and the upstream's address changed, in
front of gunicorn with two workers (the production config) on free loopback ports. Under
root it runs as ``nobody``, as the shipped config expects to (not root, writing under /tmp
only). 200 connections send a request head a byte a second and 50 send nothing, and each is
replaced within a second of being closed, so the pressure stays for the whole run; meanwhile
token predictions go on through nginx, each within a liveness bound. The same clients aimed
at gunicorn itself leave predictions without an answer: the proxy is what protects the
workers.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.databases import REQUIRE_SERVICES, empty_database_url
from tests.support.deployments import PREDICT, Deployment, deploy
from tests.support.models import IRIS_ROW, csv_body
from tests.support.servers import Master, free_port

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "deploy" / "nginx"
NGINX = Path("/usr/sbin/nginx")
START_SECONDS = 20
# An answer slower than this counts as none: far above a prediction's few milliseconds.
LIVENESS_SECONDS = 5.0
SLOW_CLIENTS = 200
SILENT_CLIENTS = 50
PRESSURE_SECONDS = 30
# Straight at gunicorn fewer clients, for less time, show the failure as clearly.
DIRECT_SLOW_CLIENTS = 20
DIRECT_SILENT_CLIENTS = 10
DIRECT_SECONDS = 12
PREDICTING_THREADS = 2
ANONYMOUS_LIMIT = 3
# As deploy/k8s and compose run the app: nginx is the one proxy in front.
APP_ENV = {"MODELPORT_PROXY_HOPS": "1", "MODELPORT_TOKEN_CACHE_SECONDS": "60"}
# What the app saw: the request's body framing and its request id.
ACCESS_LOG = (
    "--access-logformat",
    "%(m)s %(U)s %(s)s <%({content-length}i)s> <%({transfer-encoding}i)s> %({x-request-id}o)s",
)


def _nginx_or_skip() -> None:
    if not os.access(NGINX, os.X_OK):
        reason = (
            f"{NGINX} is missing: the slow-client tests need Debian's nginx (apt-get install nginx)"
        )
        if REQUIRE_SERVICES:
            pytest.fail(reason)
        pytest.skip(reason)


@dataclass
class Nginx:
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def text(self) -> str:
        return self.log.read_text(errors="replace")


def _substitute(text: str, old: str, new: str) -> str:
    assert text.count(old) >= 1, f"{old!r} is not in the shipped config"
    return text.replace(old, new)


@contextlib.contextmanager
def nginx_in_front(upstream_port: int) -> Iterator[Nginx]:
    """The shipped config on a free port in front of ``upstream_port``; stopped after."""
    _nginx_or_skip()
    # Not under pytest's tmp_path: nobody could not reach it.
    folder = Path(tempfile.mkdtemp(prefix="modelport-nginx-"))
    port = free_port()
    main = _substitute((CONFIG / "nginx.conf").read_text(), "/tmp/", f"{folder}/")
    site = (CONFIG / "modelport.conf").read_text()
    site = _substitute(site, "listen 8080;", f"listen 127.0.0.1:{port};")
    site = _substitute(site, "server 127.0.0.1:8000;", f"server 127.0.0.1:{upstream_port};")
    (folder / "nginx.conf").write_text(main)
    (folder / "modelport.conf").write_text(site)
    log = folder / "nginx.log"
    log.touch()
    as_nobody: dict[str, Any] = {}
    if os.geteuid() == 0:
        for path in (folder, log):
            shutil.chown(path, "nobody", "nogroup")
        as_nobody = {"user": "nobody", "group": "nogroup", "extra_groups": []}
    # Appended to, as the access log (/dev/stdout) and the error log (stderr) share it.
    with log.open("ab") as out:
        process = subprocess.Popen(
            [str(NGINX), "-p", str(folder), "-c", str(folder / "nginx.conf"), "-g", "daemon off;"],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **as_nobody,
        )
    server = Nginx(port, log)
    try:
        deadline = time.monotonic() + START_SECONDS
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"nginx exited with {process.returncode}:\n{server.text()}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{server.url}/healthz", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"nginx did not answer /healthz in time:\n{server.text()}")
            time.sleep(0.1)
        yield server
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def _stack(
    tmp_path: Path, demo_models: dict[str, Any], **env: str
) -> Iterator[tuple[Deployment, Master]]:
    """iris on a fresh SQLite database, served by gunicorn with two workers."""
    deployment = deploy(tmp_path, empty_database_url("sqlite", tmp_path, "slow"), demo_models)
    try:
        with deployment.serve(*ACCESS_LOG, env={**APP_ENV, **env}) as master:
            yield deployment, master
    finally:
        deployment.close()


# ---- the pressure ----------------------------------------------------------------------------


@dataclass
class Pressure:
    """``slow`` connections sending a request head a byte a second, ``silent`` ones sending
    nothing; each one the server closes is replaced at the next second."""

    port: int
    slow: int
    silent: int
    replaced: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _ready: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    error: BaseException | None = None

    HEAD = (
        b"POST /api/v1/models/iris/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: " + b"a" * 4000
    )

    def _connect(self) -> socket.socket:
        connection = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        connection.setblocking(False)
        return connection

    def _run(self) -> None:
        slow = [[self._connect(), 0] for _ in range(self.slow)]
        silent = [self._connect() for _ in range(self.silent)]
        self._ready.set()
        while not self._stop.wait(1.0):
            for entry in slow:
                connection, sent = entry
                try:
                    connection.send(self.HEAD[sent : sent + 1])
                    entry[1] = (sent + 1) % len(self.HEAD)
                except OSError:
                    connection.close()
                    entry[:] = [self._connect(), 0]
                    self.replaced += 1
            for index, connection in enumerate(silent):
                if _closed(connection):
                    connection.close()
                    silent[index] = self._connect()
                    self.replaced += 1
        for connection, _ in slow:
            connection.close()
        for connection in silent:
            connection.close()

    def _guarded(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # reported by stop()
            self.error = exc
            self._ready.set()

    def __enter__(self) -> Pressure:
        self._thread = threading.Thread(target=self._guarded, daemon=True)
        self._thread.start()
        assert self._ready.wait(30), "the clients did not connect"
        time.sleep(1.5)  # every client has connected and the slow ones have begun their heads
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(timeout=30)
        if self.error is not None:
            raise self.error


def _closed(connection: socket.socket) -> bool:
    if not select.select([connection], [], [], 0)[0]:
        return False
    try:
        return connection.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


@dataclass
class Answer:
    status: int | None
    seconds: float
    error: str = ""


def _predict(url: str, token: str) -> Answer:
    started = time.monotonic()
    try:
        response = requests.post(
            url + PREDICT,
            json={"inputs": IRIS_ROW},
            headers={"Authorization": f"Bearer {token}", "Connection": "close"},
            timeout=LIVENESS_SECONDS,
        )
    except requests.RequestException as exc:
        return Answer(None, time.monotonic() - started, type(exc).__name__)
    return Answer(response.status_code, time.monotonic() - started)


def _predict_for(url: str, token: str, seconds: float) -> list[Answer]:
    """Predictions from ``PREDICTING_THREADS`` clients, one after another, for ``seconds``."""
    answers: list[Answer] = []
    end = time.monotonic() + seconds

    def client() -> None:
        while time.monotonic() < end:
            answers.append(_predict(url, token))
            time.sleep(0.05)

    threads = [threading.Thread(target=client) for _ in range(PREDICTING_THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + 2 * LIVENESS_SECONDS)
    return answers


@pytest.mark.slow
@pytest.mark.xdist_group("serial")
def test_behind_nginx_slow_and_silent_clients_do_not_hold_the_workers(
    tmp_path: Path, demo_models: dict[str, Any]
) -> None:
    _nginx_or_skip()
    with _stack(tmp_path, demo_models) as (deployment, master):
        with nginx_in_front(master.server.port) as proxy:
            with Pressure(proxy.port, SLOW_CLIENTS, SILENT_CLIENTS) as pressure:
                proxied = _predict_for(proxy.url, deployment.token, PRESSURE_SECONDS)
            nginx_replaced = pressure.replaced
        with Pressure(master.server.port, DIRECT_SLOW_CLIENTS, DIRECT_SILENT_CLIENTS):
            direct = _predict_for(master.server.url, deployment.token, DIRECT_SECONDS)

    failed = [a for a in proxied if a.status != 200 or a.seconds > LIVENESS_SECONDS]
    assert not failed, failed[:10]
    assert len(proxied) >= 20, "too few predictions to show anything"
    # nginx dropped the clients that did not finish their heads (client_header_timeout).
    assert nginx_replaced >= SLOW_CLIENTS + SILENT_CLIENTS
    # Straight at gunicorn, the same clients leave predictions without an answer.
    assert direct, "no prediction was tried"
    assert all(a.status is None for a in direct), direct
    print(
        f"\nthrough nginx: {len(proxied)} predictions, all 200, slowest "
        f"{max(a.seconds for a in proxied):.2f} s, {nginx_replaced} clients dropped and "
        f"replaced; straight at gunicorn: {len(direct)} predictions, none answered within "
        f"{LIVENESS_SECONDS:g} s"
    )


def _access(master: Master, request_id: str) -> str:
    """gunicorn's access-log line (``ACCESS_LOG``: it starts with the method) of the request
    with ``request_id``; the app's own request line ends with the id too, written by the
    worker's flusher a moment before or after it."""
    for _ in range(50):
        lines = [
            line
            for line in master.server.text().splitlines()
            if line.endswith(request_id) and re.match(r"^[A-Z]+ /", line)
        ]
        if lines:
            return lines[-1]
        time.sleep(0.1)
    raise AssertionError(f"no access-log line for {request_id}")


def _chunked(body: bytes, size: int = 10) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


@pytest.mark.slow
def test_nginx_passes_whole_bodies_with_a_length_and_refuses_oversized_ones(
    tmp_path: Path, demo_models: dict[str, Any]
) -> None:
    _nginx_or_skip()
    body = json.dumps({"inputs": IRIS_ROW}).encode()
    limit = {"MODELPORT_PREDICT_LIMIT_ANONYMOUS": f"{ANONYMOUS_LIMIT} per minute"}
    with _stack(tmp_path, demo_models, **limit) as (deployment, master):
        auth = {**deployment.auth, "Content-Type": "application/json"}
        with nginx_in_front(master.server.port) as proxy:
            # A chunked body reaches the app whole, with a Content-Length: the predict hot path
            # takes it (modelport.api.fastpath: a body of known length).
            through = requests.post(
                proxy.url + PREDICT, data=_chunked(body), headers=auth, timeout=30
            )
            chunked_line = _access(master, through.json()["request_id"])
            direct = requests.post(
                master.server.url + PREDICT, data=_chunked(body), headers=auth, timeout=30
            )
            direct_line = _access(master, direct.json()["request_id"])
            # The client's request id is kept; else nginx's own reaches the app.
            own = requests.post(
                proxy.url + PREDICT,
                data=body,
                headers={**auth, "X-Request-ID": "mine-1"},
                timeout=30,
            )
            given = requests.post(proxy.url + PREDICT, data=body, headers=auth, timeout=30)
            # Bodies over a route's limit never reach the app.
            too_large = [
                _head_only(proxy.port, "/api/v1/tokens", 2 * 1024**2 + 1),
                _head_only(proxy.port, PREDICT, 256 * 1024**2 + 1),
                _head_only(proxy.port, "/api/v1/models/iris/versions", 512 * 1024**2 + 1),
                _head_only(proxy.port, "/v2/models/iris/infer", 256 * 1024**2 + 1),
                _head_only(proxy.port, "/models/iris/batch", 256 * 1024**2 + 64 * 1024 + 1),
            ]
            chunked_over = requests.post(
                proxy.url + "/auth/login",
                data=_chunked(b"x" * (2 * 1024**2 + 1), 65536),
                headers={"Content-Type": "application/x-www-form-urlencoded"},
                timeout=30,
            )
            # With MODELPORT_PROXY_HOPS=1 the app takes nginx's entry of X-Forwarded-For:
            # an anonymous client that makes up a new address each time is still limited.
            anonymous = [
                requests.post(
                    proxy.url + PREDICT,
                    data=body,
                    headers={
                        "Content-Type": "application/json",
                        "X-Forwarded-For": f"203.0.113.{n}",
                        "X-Forwarded-Proto": "https",
                    },
                    timeout=30,
                ).status_code
                for n in range(3 * ANONYMOUS_LIMIT)
            ]
            # A streamed CSV answer comes through whole.
            rows = 5000
            csv_answer = requests.post(
                proxy.url + PREDICT,
                data=csv_body(rows, demo_models),
                headers={**deployment.auth, "Content-Type": "text/csv"},
                timeout=60,
            )
            nginx_log = proxy.text()
        app_log = master.server.text()

    assert through.status_code == 200, through.text
    assert "<-> <chunked>" in direct_line  # as the client sent it, to gunicorn itself
    assert f"<{len(body)}> <->" in chunked_line  # through nginx: whole, with its length
    assert own.status_code == given.status_code == 200
    assert own.json()["request_id"] == "mine-1"
    nginx_id = given.json()["request_id"]
    assert re.fullmatch(r"[0-9a-f]{32}", nginx_id)
    assert nginx_id in nginx_log
    for path, (status, content_type, text) in zip(
        ["/api/v1/tokens", PREDICT, "/api/v1/models/iris/versions", "/v2/...", "/models/..."],
        too_large,
        strict=True,
    ):
        assert status == 413, (path, status, text)
        if path.startswith("/api/"):
            assert content_type == "application/json"
            assert json.loads(text)["error"]["code"] == "payload_too_large"
        elif path.startswith("/v2/"):
            assert json.loads(text) == {"error": "The request body is too large."}
    assert chunked_over.status_code == 413
    # Counted per worker process (no Redis here): at most the limit on each of the two.
    assert anonymous.count(200) <= 2 * ANONYMOUS_LIMIT and 429 in anonymous, anonymous
    assert " /auth/login " not in app_log and " /api/v1/tokens " not in app_log
    assert csv_answer.status_code == 200
    assert csv_answer.headers["X-Rows"] == str(rows)
    assert len(csv_answer.text.splitlines()) == rows + 1
    assert "X-Accel-Buffering" not in csv_answer.headers  # nginx's to read, not the client's


def _head_only(port: int, path: str, length: int) -> tuple[int, str, str]:
    """Status, content type and body of the answer to a request head announcing ``length``
    bytes of body, none of which is sent."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        client.sendall(
            (
                f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"Content-Length: {length}\r\nConnection: close\r\n\r\n"
            ).encode()
        )
        data = b""
        # Up to the end of the answer: nginx waits a while (lingering_timeout) for the body
        # it refused before it closes the connection.
        while b"\r\n\r\n" not in data or len(data.partition(b"\r\n\r\n")[2]) < _length(data):
            chunk = client.recv(65536)
            assert chunk, f"the connection closed before the whole answer: {data!r}"
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    content_type = re.search(rb"(?im)^content-type: *([^;\r]+)", head)
    return status, content_type[1].decode() if content_type else "", body.decode(errors="replace")


def _length(data: bytes) -> int:
    found = re.search(rb"(?im)^content-length: *(\d+)", data.partition(b"\r\n\r\n")[0])
    assert found, f"an answer without a length: {data!r}"
    return int(found[1])
