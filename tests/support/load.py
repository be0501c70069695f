"""Load against a real server: client threads that each repeat one kind of request (a token
prediction, a page, a CSV upload, a whole sign-in) until the block ends, and what every
request got back."""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import requests

from tests.support.deployments import PREDICT
from tests.support.html import csrf_from
from tests.support.models import IRIS_ROW

# A request that has had no answer by then is a hung one: the tests count it as a failure.
REQUEST_SECONDS = 30


@dataclass
class Outcome:
    """One request of the load: what, when it was sent and answered, and how."""

    kind: str
    sent: float
    received: float
    request_id: str
    status: int | None  # None: no HTTP answer (refused, reset, cut short, timed out)
    body: dict | None = None  # the JSON body, when the answer is JSON
    text: str = ""  # the body of any other answer
    content_type: str = ""
    error: str | None = None
    retry_after: str | None = None


def send(kind: str, method: str, url: str, **options: object) -> Outcome:
    """One request with a fresh ``X-Request-ID`` on a connection of its own."""
    request_id = uuid.uuid4().hex
    headers = {
        **options.pop("headers", {}),  # type: ignore[dict-item]
        "X-Request-ID": request_id,
        # The sync worker closes every connection anyway; this says so, and spreads the
        # requests over the workers.
        "Connection": "close",
    }
    session = options.pop("session", None) or requests
    sent = time.monotonic()
    try:
        response = session.request(  # type: ignore[union-attr]
            method, url, headers=headers, timeout=REQUEST_SECONDS, **options
        )
    except requests.RequestException as exc:
        return Outcome(kind, sent, time.monotonic(), request_id, None, error=type(exc).__name__)
    content_type = response.headers.get("Content-Type", "")
    is_json = content_type.startswith("application/json")
    return Outcome(
        kind,
        sent,
        time.monotonic(),
        request_id,
        response.status_code,
        body=response.json() if is_json else None,
        text="" if is_json else response.text,
        content_type=content_type,
        retry_after=response.headers.get("Retry-After"),
    )


def predict(url: str, token: str) -> Outcome:
    """A JSON prediction of one iris row with a bearer token."""
    headers = {"Authorization": f"Bearer {token}"}
    return send("predict", "POST", url + PREDICT, json={"inputs": IRIS_ROW}, headers=headers)


def predict_csv(url: str, token: str, body: bytes) -> Outcome:
    """A CSV upload to the prediction endpoint; the answer is CSV."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "text/csv"}
    return send("csv", "POST", url + PREDICT, data=body, headers=headers)


def sign_in(url: str, email: str, password: str) -> list[Outcome]:
    """A browser's whole visit: the sign-in page, the sign-in, the account page, sign-out
    (kinds ``sign-in page``, ``sign-in``, ``account``, ``sign-out``); it stops at the first
    step that goes wrong."""
    browser = requests.Session()
    page = send("sign-in page", "GET", f"{url}/auth/login", session=browser)
    if page.status != 200:
        return [page]
    form = {"email": email, "password": password, "csrf_token": csrf_from(page.text)}
    signed = send(
        "sign-in", "POST", f"{url}/auth/login", data=form, session=browser, allow_redirects=False
    )
    if signed.status != 302:
        return [page, signed]
    account = send("account", "GET", f"{url}/account", session=browser)
    if account.status != 200:
        return [page, signed, account]
    token = {"csrf_token": csrf_from(account.text)}
    out = send(
        "sign-out", "POST", f"{url}/auth/logout", data=token, session=browser, allow_redirects=False
    )
    return [page, signed, account, out]


@contextlib.contextmanager
def load(clients: list[Callable[[], Outcome | list[Outcome]]]) -> Iterator[list[Outcome]]:
    """One thread per client, each calling its function over and over until the block ends;
    the outcomes, in the order they were answered, grow meanwhile."""
    outcomes: list[Outcome] = []
    stop = threading.Event()
    lock = threading.Lock()

    def run(client: Callable[[], Outcome | list[Outcome]]) -> None:
        while not stop.is_set():
            got = client()
            with lock:
                outcomes.extend(got if isinstance(got, list) else [got])

    threads = [threading.Thread(target=run, args=(c,), daemon=True) for c in clients]
    for thread in threads:
        thread.start()
    try:
        yield outcomes
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=REQUEST_SECONDS * 5)
    assert not any(t.is_alive() for t in threads), "a client thread hung"
