"""Redis down with MODELPORT_REDIS_URL set (issue 12, item 9), on a redis-server of the
test's own, under a real gunicorn with two workers on PostgreSQL. What each feature does is
docs/operations.md's "When Redis is down":

- sign-in (the page, HTTP Basic) fails closed: 503 ``sign_in_unavailable``, no password is
  checked, so no guess goes uncounted; signed-in sessions and tokens go on working;
- prediction budgets fail open to each worker's own count, with a warning in the log;
- Flask-Limiter's own limits (sign-up, reset requests) count in each worker's memory;
- once Redis is back, sign-in works at once and the budgets are shared again.
"""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from modelport.serving.limits import SHARED_RETRY_SECONDS
from tests.support.databases import empty_database_url
from tests.support.deployments import ADMIN_EMAIL, PREDICT, deploy
from tests.support.html import csrf_from
from tests.support.models import IRIS_ROW
from tests.support.private_servers import private_redis
from tests.support.users import PASSWORD

pytestmark = pytest.mark.slow

BUDGET = 3  # predictions per minute per user
UNAVAILABLE = "Sign-in is unavailable at the moment. Try again shortly."
WORKERS = 2


def _predict(url: str, token: str) -> int:
    response = requests.post(
        url + PREDICT,
        json={"inputs": IRIS_ROW},
        headers={"Authorization": f"Bearer {token}", "Connection": "close"},
        timeout=30,
    )
    return response.status_code


def _sign_in(url: str, browser: requests.Session, password: str) -> requests.Response:
    page = browser.get(f"{url}/auth/login", timeout=30)
    assert page.status_code == 200
    form = {"email": ADMIN_EMAIL, "password": password, "csrf_token": csrf_from(page.text)}
    return browser.post(f"{url}/auth/login", data=form, allow_redirects=False, timeout=30)


def _sign_up(url: str, email: str) -> int:
    browser = requests.Session()
    page = browser.get(f"{url}/auth/signup", timeout=30)
    form = {
        "email": email,
        "name": "New",
        "password": PASSWORD,
        "password2": PASSWORD,
        "csrf_token": csrf_from(page.text),
    }
    headers = {"Connection": "close"}
    answer = browser.post(
        f"{url}/auth/signup", data=form, headers=headers, allow_redirects=False, timeout=30
    )
    return answer.status_code


def _basic(url: str, password: str) -> requests.Response:
    credentials = base64.b64encode(f"{ADMIN_EMAIL}:{password}".encode()).decode()
    return requests.get(
        f"{url}/api/v1/me", headers={"Authorization": f"Basic {credentials}"}, timeout=30
    )


def test_with_redis_down_sign_in_fails_closed_and_budgets_fail_open(
    tmp_path: Path, demo_models: dict[str, Any]
) -> None:
    with private_redis() as redis_server:
        deployment = deploy(
            tmp_path, empty_database_url("postgres", tmp_path, "redis_down"), demo_models
        )
        env = {
            "MODELPORT_REDIS_URL": redis_server.url,
            "MODELPORT_PREDICT_LIMIT_USER": f"{BUDGET} per minute",
            "MODELPORT_SIGNUP_LIMIT": "1 per hour",
        }
        bearer = {"Authorization": f"Bearer {deployment.token}"}
        try:
            with deployment.serve(env=env, workers=WORKERS) as master:
                url = master.server.url
                workers = master.workers()
                # Redis up: one budget and one sign-up count for both workers.
                shared_budget = [_predict(url, deployment.token) for _ in range(BUDGET + 1)]
                shared_signups = [_sign_up(url, f"up{i}@example.com") for i in range(2)]
                signed_in = requests.Session()
                first_sign_in = _sign_in(url, signed_in, PASSWORD)

                redis_server.stop()
                down = {
                    "predictions": [_predict(url, deployment.token) for _ in range(BUDGET)],
                    "sign_in": _sign_in(url, requests.Session(), PASSWORD),
                    "wrong_password": _sign_in(url, requests.Session(), "not the password"),
                    "basic": _basic(url, PASSWORD),
                    "account": signed_in.get(f"{url}/account", timeout=30).status_code,
                    "me": requests.get(f"{url}/api/v1/me", headers=bearer, timeout=30),
                    "signups": [_sign_up(url, f"down{i}@example.com") for i in range(3)],
                }

                redis_server.start()  # empty: it keeps nothing on disk
                back_sign_in = _sign_in(url, requests.Session(), PASSWORD)
                # Each worker asks Redis again once its retry period is over.
                time.sleep(SHARED_RETRY_SECONDS + 0.5)
                back_budget = [_predict(url, deployment.token) for _ in range(BUDGET + 1)]
                assert master.workers() == workers
            log = master.server.text()
        finally:
            deployment.close()

    assert shared_budget == [200] * BUDGET + [429]
    assert shared_signups == [302, 429]
    assert first_sign_in.status_code == 302

    # Budgets fail open: the spent shared budget is not known, each worker counts afresh.
    assert down["predictions"] == [200] * BUDGET
    for refused in (down["sign_in"], down["wrong_password"]):
        assert refused.status_code == 503
        assert refused.headers["Retry-After"] == "5"
        assert refused.headers["Content-Type"].startswith("text/html")
        assert UNAVAILABLE in refused.text
    assert down["basic"].status_code == 503
    assert down["basic"].headers["Retry-After"] == "5"
    assert down["basic"].json() == {
        "error": {"code": "sign_in_unavailable", "message": UNAVAILABLE, "details": None}
    }
    # Who is signed in already stays signed in; tokens work.
    assert down["account"] == 200
    assert down["me"].status_code == 200
    assert down["me"].json()["email"] == ADMIN_EMAIL
    # Sign-ups are still limited, one per hour in each worker's memory: the first passes,
    # at most one more (on the other worker), the rest are refused.
    signups = down["signups"]
    assert signups[0] == 302
    assert set(signups) == {302, 429}
    assert signups.count(302) <= WORKERS

    assert back_sign_in.status_code == 302
    # Redis is back and empty: one shared budget again.
    assert back_budget == [200] * BUDGET + [429]

    assert "sign-in refused: the throttle's storage failed (ConnectionError)" in log
    assert "prediction budgets: the shared storage failed (ConnectionError)" in log
    assert "falling back to in-memory storage" in log
    assert "unhandled error" not in log
