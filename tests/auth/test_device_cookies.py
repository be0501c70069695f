"""Device cookies: a guesser can lock an account for everyone but its owner's browsers (10).

OWASP's "Slow Down Online Guessing Attacks with Device Cookies": a browser that signed in to
an account before presents a signed cookie naming it; its attempts count against that
cookie's own limit instead of the account's, and the account's lockout does not stop it.
"""

from __future__ import annotations

import base64
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from werkzeug.test import TestResponse

from modelport.auth import devices
from tests.support.cookies import client_with, cookie
from tests.support.databases import service_url
from tests.support.html import csrf_token, field_errors, text
from tests.support.users import PASSWORD, is_signed_in, make_user

WRONG = "wrong password guess"
# A Redis database of this file's own: other tests reset the limiter in database 0.
REDIS_DB = 12


def _attempt(client: FlaskClient, ip: str, password: str, email: str = "ann@example.com") -> int:
    """Status of one sign-in from ``ip``."""
    response = client.post(
        "/auth/login",
        data={"email": email, "password": password, "csrf_token": csrf_token(client)},
        environ_base={"REMOTE_ADDR": ip},
    )
    return response.status_code


def _owner_browser(app: Flask, email: str = "ann@example.com") -> FlaskClient:
    """A browser that signed in to ``email`` once and signed out: it keeps its device cookie."""
    browser = app.test_client()
    assert _attempt(browser, "10.5.0.1", PASSWORD, email) == 302
    browser.post("/auth/logout", data={"csrf_token": csrf_token(browser, "/")})
    assert not is_signed_in(browser)
    return browser


def _lock(app: Flask, attempts: int, email: str = "ann@example.com") -> None:
    """Spend the account's limit with wrong passwords from rotating addresses, no cookie."""
    guesser = app.test_client()
    for n in range(attempts):
        assert _attempt(guesser, f"10.6.0.{n + 1}", WRONG, email) == 400
    assert _attempt(guesser, "10.6.1.1", WRONG, email) == 429


def _device_value(app: Flask, client: FlaskClient) -> str:
    value = cookie(client, app.config["DEVICE_COOKIE_NAME"])
    assert value
    return value


def _entry(key: str, payload: Any, *, age_days: float = 0) -> str:
    """A device entry signed with ``key``, dated ``age_days`` ago."""

    class Dated(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time() - age_days * 86400)

    return URLSafeTimedSerializer(key, salt=devices.SALT, signer=Dated).dumps(payload)


def _locked_out_owner_gets_in(app: Flask) -> FlaskClient:
    """The owner's browser gets in while the account is locked for others; return it."""
    make_user(app)
    owner = _owner_browser(app)
    _lock(app, 3)
    # A browser without the cookie waits, even with the right password ...
    assert _attempt(app.test_client(), "10.7.0.1", PASSWORD) == 429
    # ... while the owner's browser gets in.
    assert _attempt(owner, "10.5.0.1", PASSWORD) == 302
    assert is_signed_in(owner)
    # The owner's sign-in did not give the guesser a new budget: still locked for others.
    assert _attempt(app.test_client(), "10.7.0.2", PASSWORD) == 429
    return owner


@pytest.mark.db
def test_owner_browser_signs_in_while_the_account_is_locked_for_others(app_factory):
    app = app_factory(LOGIN_LIMIT_ACCOUNT="3 per 15 minutes")
    _locked_out_owner_gets_in(app)


@pytest.mark.db
def test_failures_with_a_device_cookie_do_not_count_against_the_account(app_factory):
    app = app_factory(LOGIN_LIMIT_ACCOUNT="3 per 15 minutes", LOGIN_LIMIT_DEVICE="10 per hour")
    make_user(app)
    owner = _owner_browser(app)
    for _ in range(5):
        assert _attempt(owner, "10.5.0.1", WRONG) == 400
    # More failures than the account allows, yet the account is not locked for anyone.
    assert _attempt(app.test_client(), "10.7.0.1", PASSWORD) == 302
    # Without a lock, a sign-in through the cookie clears the account's count, as any does.
    guesser = app.test_client()
    for n in range(2):
        assert _attempt(guesser, f"10.6.0.{n}", WRONG) == 400
    assert _attempt(owner, "10.5.0.1", PASSWORD) == 302
    for n in range(3):
        assert _attempt(guesser, f"10.6.1.{n}", WRONG) == 400
    assert _attempt(guesser, "10.6.2.1", WRONG) == 429


@pytest.mark.db
def test_the_device_limit_throttles_a_guesser_holding_a_stolen_cookie(app_factory):
    app = app_factory(LOGIN_LIMIT_ACCOUNT="3 per 15 minutes", LOGIN_LIMIT_DEVICE="2 per 15 minutes")
    make_user(app)
    owner = _owner_browser(app)
    thief = client_with(app, **{app.config["DEVICE_COOKIE_NAME"]: _device_value(app, owner)})
    for n in range(2):
        assert _attempt(thief, f"10.8.0.{n}", WRONG) == 400
    response = thief.post(
        "/auth/login",
        data={"email": "ann@example.com", "password": WRONG, "csrf_token": csrf_token(thief)},
        environ_base={"REMOTE_ADDR": "10.8.0.9"},
    )
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) > 0
    assert "Too many failed sign-ins" in text(response)
    # The cookie's count is spent; the account's is not: a browser without it gets in.
    assert _attempt(app.test_client(), "10.7.0.1", PASSWORD) == 302


@pytest.mark.db
def test_the_address_limit_applies_to_device_cookies_too(app_factory):
    app = app_factory(LOGIN_LIMIT_IP="3 per 15 minutes")
    make_user(app)
    owner = _owner_browser(app)
    for _ in range(3):
        assert _attempt(owner, "10.9.0.1", WRONG) == 400
    assert _attempt(owner, "10.9.0.1", PASSWORD) == 429


@pytest.mark.db
def test_forged_expired_or_other_account_device_cookies_are_ignored(app_factory):
    app = app_factory(LOGIN_LIMIT_ACCOUNT="3 per 15 minutes")
    ann = make_user(app)
    make_user(app, "bob@example.com", name="Bob")
    bobs_browser = _owner_browser(app, "bob@example.com")
    name = app.config["DEVICE_COOKIE_NAME"]
    key = app.config["SECRET_KEY"]
    payload = {"u": ann, "n": "a-nonce-of-our-own-making"}
    presented = {
        "garbage": "not-a-signed-value",
        "forged": _entry("another secret key of at least 32 chars", payload),
        "other-purpose": URLSafeTimedSerializer(key, salt="modelport-reset").dumps(payload),
        "expired": _entry(key, payload, age_days=devices.LIFETIME_DAYS + 1),
        "other-account": _device_value(app, bobs_browser),
    }
    clients = {label: client_with(app, **{name: value}) for label, value in presented.items()}
    # Their failures count against the account, as without a cookie ...
    for n, label in enumerate(["garbage", "forged", "other-account"]):
        assert _attempt(clients[label], f"10.6.0.{n}", WRONG) == 400, label
    # ... and the account's lock stops each of them, right password or not.
    for n, (label, client) in enumerate(clients.items()):
        assert _attempt(client, f"10.6.1.{n}", PASSWORD) == 429, label
    # A valid entry for ann, made with the app's own key and salt, is honoured.
    honest = client_with(app, **{name: _entry(key, payload)})
    assert _attempt(honest, "10.6.2.1", PASSWORD) == 302


@pytest.mark.db
def test_reauthentication_through_a_device_cookie_passes_a_locked_account(app_factory):
    app = app_factory(LOGIN_LIMIT_ACCOUNT="3 per 15 minutes")
    make_user(app)
    owner = app.test_client()
    assert _attempt(owner, "10.5.0.1", PASSWORD) == 302
    # A session cookie copied to a browser without the device cookie.
    copied = client_with(
        app, **{app.config["SESSION_COOKIE_NAME"]: cookie(owner, app.config["SESSION_COOKIE_NAME"])}
    )
    assert is_signed_in(copied)
    _lock(app, 3)

    def reauth(client: FlaskClient) -> TestResponse:
        return client.post(
            "/auth/reauth",
            data={"password": PASSWORD, "csrf_token": csrf_token(client, "/auth/reauth")},
        )

    refused = reauth(copied)
    assert refused.status_code == 400
    assert "Too many attempts. Try again later." in field_errors(refused)
    passed = reauth(owner)
    assert passed.status_code == 302
    # The re-authentication form renews the browser's device cookie too.
    renewed = [h for h in passed.headers.getlist("Set-Cookie") if h.startswith("modelport_device=")]
    assert len(renewed) == 1


@pytest.mark.db
def test_http_basic_ignores_device_cookies(app_factory):
    app = app_factory(LOGIN_LIMIT_ACCOUNT="3 per 15 minutes")
    make_user(app)
    owner = _owner_browser(app)
    _lock(app, 3)
    basic = "Basic " + base64.b64encode(f"ann@example.com:{PASSWORD}".encode()).decode()
    response = owner.get("/api/v1/me", headers={"Authorization": basic})
    assert response.status_code == 429
    assert response.get_json()["error"]["code"] == "rate_limited"


@pytest.mark.db
def test_a_browser_keeps_device_entries_for_a_few_accounts(app_factory):
    app = app_factory(LOGIN_LIMIT_ACCOUNT="1 per 15 minutes")
    emails = [f"member{n}@example.com" for n in range(devices.MAX_ENTRIES + 1)]
    for n, email in enumerate(emails):
        make_user(app, email, name=f"Member {n}")
    browser = app.test_client()
    for email in emails:
        assert _attempt(browser, "10.5.0.1", PASSWORD, email) == 302
        browser.post("/auth/logout", data={"csrf_token": csrf_token(browser, "/")})
    assert len(_device_value(app, browser).split("~")) == devices.MAX_ENTRIES
    # The oldest entry made way for the newest: its account's lock stops this browser.
    for email in (emails[0], emails[1]):
        _lock(app, 1, email)
    assert _attempt(browser, "10.5.0.1", PASSWORD, emails[0]) == 429
    assert _attempt(browser, "10.5.0.1", PASSWORD, emails[1]) == 302


def _redis_url() -> str:
    parts = urlsplit(service_url("redis"))
    return urlunsplit(parts._replace(path=f"/{REDIS_DB}"))


@pytest.mark.services
def test_device_cookies_with_redis_as_the_limiter_storage(app_factory):
    url = _redis_url()
    store = redis.Redis.from_url(url)
    store.flushdb()
    try:
        app = app_factory(
            REDIS_URL=url, LOGIN_LIMIT_ACCOUNT="3 per 15 minutes", LOGIN_LIMIT_DEVICE="2 per hour"
        )
        assert app.config["RATELIMIT_STORAGE_URI"] == url
        owner = _locked_out_owner_gets_in(app)
        thief = client_with(app, **{app.config["DEVICE_COOKIE_NAME"]: _device_value(app, owner)})
        for n in range(2):
            assert _attempt(thief, f"10.8.0.{n}", WRONG) == 400
        assert _attempt(thief, "10.8.0.9", PASSWORD) == 429
        keys = " ".join(k.decode() for k in store.keys("*"))
        assert "login-account/" in keys and "login-device/" in keys, keys
    finally:
        store.flushdb()
