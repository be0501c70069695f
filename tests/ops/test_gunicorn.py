"""A real gunicorn with two workers: login throttling is shared through Redis (checklist 10).

To be sure that both workers count the same account, every other attempt is sent while the
other worker is held busy: a request whose headers are sent but whose body is not keeps the
sync worker that accepted it waiting, so the next connection must go to the other worker.
The access log (``%(p)s`` is the worker's pid) shows which worker served what.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
import requests

from tests.support.databases import service_url
from tests.support.html import csrf_from
from tests.support.servers import EMAIL, WRONG, HeldLogin, Server, gunicorn

pytestmark = pytest.mark.slow


# A Redis database of this test's own: other tests reset the limiter in database 0.
REDIS_DB = 11


def _redis_url() -> str:
    parts = urlsplit(service_url("redis"))
    return urlunsplit(parts._replace(path=f"/{REDIS_DB}"))


def _bad_logins_on_alternating_workers(server: Server, attempts: int) -> list[tuple[int, str]]:
    """``attempts`` wrong-password logins for one account, half on each worker."""
    browser = requests.Session()
    token = csrf_from(browser.get(f"{server.url}/auth/login", timeout=30).text)
    results: list[tuple[int, str]] = []
    for _ in range(attempts // 2):
        held = HeldLogin(server, browser, token)  # worker A waits for this body
        try:
            response = browser.post(
                f"{server.url}/auth/login",
                data={"email": EMAIL, "password": WRONG, "csrf_token": token},
                headers={"Connection": "close"},
                allow_redirects=False,
                timeout=30,
            )  # so worker B answers this one
            results.append((response.status_code, response.text))
        finally:
            results.append(held.finish())  # then worker A answers
    return results


@pytest.mark.parametrize(
    ("storage", "sixth_status"),
    [("redis", 429), ("memory", 400)],
    ids=["redis-shared", "memory-per-worker"],
)
def test_login_throttle_counts_across_workers(
    tmp_path: Path, database: str, storage: str, sixth_status: int
) -> None:
    settings = {}
    if storage == "redis":
        settings["REDIS_URL"] = _redis_url()
        redis.Redis.from_url(settings["REDIS_URL"]).flushdb()
    try:
        with gunicorn(tmp_path, database, **settings) as server:
            results = _bad_logins_on_alternating_workers(server, 6)
    finally:
        if storage == "redis":
            redis.Redis.from_url(settings["REDIS_URL"]).flushdb()

    # A worker logs a request after answering it: read the log once the server has stopped.
    pids = server.login_pids()
    # Both workers answered, one attempt of each pair each: three failures per worker.
    assert len(pids) == 6
    assert len(set(pids)) == 2
    assert all(len(set(pids[i : i + 2])) == 2 for i in range(0, 6, 2)), pids
    for status, body in results[:5]:
        assert status == 400
        assert "Wrong e-mail or password." in body
    status, body = results[5]
    # With Redis the sixth failure is refused although its worker saw only two before it;
    # with per-process memory each worker has counted three, and the limit of 5 is not hit.
    assert status == sixth_status
    if storage == "redis":
        assert "Too many failed sign-ins" in body


def test_health_and_readiness_through_gunicorn(tmp_path: Path, database: str) -> None:
    with gunicorn(tmp_path, database) as server:
        health = requests.get(f"{server.url}/healthz", timeout=30)
        ready = requests.get(f"{server.url}/readyz", timeout=30)

    assert health.status_code == 200
    assert health.json() == {"status": "ok"}
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
