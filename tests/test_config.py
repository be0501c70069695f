"""Configuration is safe by default and refuses unsafe values (checklist 35, 39, 40).

Production will not start with a missing, default or short secret key; development makes
one key, private to its owner, and keeps it; debug mode and the Werkzeug console are never
on; X-Forwarded-For is believed only from the configured number of proxies; bad values stop
the start with a message naming the variable; pool settings reach the engine.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from modelport import create_app
from modelport.config import ConfigError, read_settings
from modelport.extensions import db
from tests.support.databases import service_url
from tests.support.html import csrf_token

STRONG = "Zq3-0vK_p8Lr2mWx7Ty5Bn4Hc6Js9Df1Ga" + "e" * 8


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only what a test sets: no MODELPORT_* or FLASK_DEBUG from the shell running pytest."""
    for name in list(os.environ):
        if name.startswith("MODELPORT_") and not name.startswith("MODELPORT_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.delenv("FLASK_DEBUG", raising=False)


def _make(tmp_path: Path, **settings: object) -> Flask:
    base = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'config.db'}",
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "BASE_URL": "https://models.example",
    }
    return create_app({**base, **settings})


@pytest.mark.parametrize(
    "key",
    ["", "   ", "dev", "changeme", "CHANGEME", "change-me", "secret", "default", "short-9f8e7d"],
)
def test_production_refuses_a_missing_default_or_short_secret_key(tmp_path, key):
    with pytest.raises(ConfigError) as raised:
        _make(tmp_path, ENV="production", SECRET_KEY=key)
    message = str(raised.value)
    assert "MODELPORT_SECRET_KEY" in message and "32" in message
    assert "secrets.token_urlsafe" in message  # says how to make a good one
    assert not (tmp_path / "instance" / "secret_key").exists()  # no silent fallback


def test_production_refuses_to_start_from_the_environment_without_a_key(tmp_path, monkeypatch):
    monkeypatch.setenv("MODELPORT_ENV", "production")
    monkeypatch.setenv("MODELPORT_INSTANCE_PATH", str(tmp_path))
    with pytest.raises(ConfigError, match="MODELPORT_SECRET_KEY is not set"):
        create_app()


def test_production_starts_with_a_strong_key(tmp_path):
    app = _make(tmp_path, ENV="production", SECRET_KEY=STRONG)
    assert app.secret_key == STRONG
    assert app.debug is False
    assert app.config["SESSION_COOKIE_SECURE"] is True


def test_development_creates_a_private_key_once_and_reuses_it(tmp_path):
    first = _make(tmp_path, ENV="development")
    path = tmp_path / "instance" / "secret_key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert first.secret_key == path.read_text().strip()
    assert len(first.secret_key) >= 32
    second = _make(tmp_path, ENV="development")
    assert second.secret_key == first.secret_key
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".secret_key")] == []
    # Another instance folder gets a different key.
    other = create_app(
        {
            "ENV": "development",
            "INSTANCE_PATH": str(tmp_path / "other"),
            "DATABASE_URL": "sqlite://",
        }
    )
    assert other.secret_key != first.secret_key


def test_a_readable_key_file_is_tightened_and_a_short_one_refused(tmp_path):
    instance = tmp_path / "instance"
    instance.mkdir()
    path = instance / "secret_key"
    path.write_text("x" * 40)
    path.chmod(0o644)
    assert _make(tmp_path, ENV="development").secret_key == "x" * 40
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.write_text("short")
    with pytest.raises(ConfigError, match="delete the file"):
        _make(tmp_path, ENV="development")


@pytest.mark.parametrize("env", ["development", "testing", "production"])
def test_debug_is_off_and_there_is_no_console(tmp_path, monkeypatch, env):
    monkeypatch.setenv("FLASK_DEBUG", "1")  # an environment left in debug must not matter
    app = _make(tmp_path, ENV=env, SECRET_KEY=STRONG)
    assert app.debug is False
    assert app.config["DEBUG"] is False
    assert app.config["PROPAGATE_EXCEPTIONS"] is not True
    client = app.test_client()
    for path in ("/console", "/console?__debugger__=yes&cmd=resource&f=style.css"):
        response = client.get(path, base_url="https://localhost")
        assert response.status_code == 404
        html = response.get_data(as_text=True)
        assert "Werkzeug" not in html and "Traceback" not in html


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("DB_POOL_SIZE", "abc", "whole number, not 'abc'"),
        ("DB_POOL_SIZE", "0", "at least 1"),
        ("DB_MAX_OVERFLOW", "-3", "at least 0"),
        ("DB_POOL_PRE_PING", "maybe", "true or false, not 'maybe'"),
        ("ENV", "prod", "development, testing, production, not 'prod'"),
        ("MAX_CONTENT_LENGTH", "1.5", "whole number"),
        ("PROXY_HOPS", "-1", "at least 0"),
        ("PASSWORD_MIN_LENGTH", "4", "at least 8"),
        ("PASSWORD_MAX_LENGTH", "32", "at least 64"),
        ("LOGIN_LIMIT_ACCOUNT", "lots", "10 per 15 minutes"),
        ("SIGNUP_LIMIT", "10 each hour", "not '10 each hour'"),
        ("LOG_FORMAT", "xml", "json, text"),
        ("LOG_LEVEL", "LOUD", "INFO"),
        ("TOKEN_DEFAULT_SCOPE", "admin", "predict, full"),
        ("MAIL_PORT", "70000", "TCP port"),
    ],
)
def test_bad_values_stop_the_start_with_a_clear_message(tmp_path, monkeypatch, name, value, words):
    with pytest.raises(ConfigError) as raised:
        read_settings({f"MODELPORT_{name}": value})
    assert f"MODELPORT_{name}" in str(raised.value) and words in str(raised.value)
    # The same from the real environment, through the app factory.
    monkeypatch.setenv(f"MODELPORT_{name}", value)
    monkeypatch.setenv("MODELPORT_INSTANCE_PATH", str(tmp_path))
    with pytest.raises(ConfigError, match=f"MODELPORT_{name}"):
        create_app()


def test_good_values_are_typed():
    settings = read_settings(
        {
            "MODELPORT_DB_POOL_SIZE": " 7 ",
            "MODELPORT_DB_POOL_PRE_PING": "OFF",
            "MODELPORT_LOG_LEVEL": "debug",
            "MODELPORT_RATELIMIT_DEFAULT": "100 per minute; 1000 per hour",
        }
    )
    assert settings["DB_POOL_SIZE"] == 7
    assert settings["DB_POOL_PRE_PING"] is False
    assert settings["LOG_LEVEL"] == "DEBUG"


def _fail_logins(client: FlaskClient, forwarded_for: list[str]) -> list[int]:
    """One failed sign-in per address, each for a different (unknown) account."""
    statuses = []
    for n, address in enumerate(forwarded_for):
        response = client.post(
            "/auth/login",
            data={
                "email": f"nobody{n}@example.com",
                "password": "wrong password for sure",
                "csrf_token": csrf_token(client),
            },
            headers={"X-Forwarded-For": address},
        )
        statuses.append(response.status_code)
    return statuses


SPOOFED = [f"203.0.113.{n}" for n in range(1, 7)]


def test_without_proxies_a_spoofed_forwarded_for_does_not_change_the_throttle_key(
    app_factory, caplog
):
    app = app_factory(PROXY_HOPS=0, LOGIN_LIMIT_IP="3 per hour")
    caplog.set_level(logging.INFO, logger="modelport.security")
    statuses = _fail_logins(app.test_client(), SPOOFED)
    # Every attempt counts against the one real address: the limit holds.
    assert statuses[:3] == [400, 400, 400]
    assert statuses[3:] == [429, 429, 429]
    ips = {r.fields["ip"] for r in caplog.records if getattr(r, "fields", {}).get("ip")}
    assert ips == {"127.0.0.1"}


def test_behind_one_proxy_forwarded_for_is_the_client_address(app_factory, caplog):
    app = app_factory(PROXY_HOPS=1, LOGIN_LIMIT_IP="3 per hour")
    caplog.set_level(logging.INFO, logger="modelport.security")
    client = app.test_client()
    # Different clients behind the proxy are counted apart ...
    assert _fail_logins(client, SPOOFED) == [400] * 6
    failed = [r for r in caplog.records if getattr(r, "fields", {}).get("event") == "login_failed"]
    assert [r.fields["ip"] for r in failed] == SPOOFED
    # ... and one client is throttled whatever it claims further left in the header.
    chain = [f"10.9.9.{n}, 198.51.100.7" for n in range(4)]
    assert _fail_logins(client, chain) == [400, 400, 400, 429]


@pytest.mark.services
def test_pool_settings_reach_the_postgresql_engine(tmp_path):
    url = service_url("postgres")
    for pre_ping in (True, False):
        app = _make(
            tmp_path,
            ENV="testing",
            DATABASE_URL=url,
            DB_POOL_SIZE=3,
            DB_MAX_OVERFLOW=4,
            DB_POOL_RECYCLE=120,
            DB_POOL_TIMEOUT=7,
            DB_POOL_PRE_PING=str(pre_ping).lower(),
        )
        with app.app_context():
            pool = db.engine.pool
            try:
                assert type(pool).__name__ == "QueuePool"
                assert pool.size() == 3
                assert pool._max_overflow == 4
                assert pool._recycle == 120
                assert pool._timeout == 7
                assert pool._pre_ping is pre_ping
                assert db.session.execute(sa.text("SELECT 1")).scalar_one() == 1
                db.session.remove()
                assert pool.checkedin() == 1
            finally:
                db.engine.dispose()


def test_sqlite_gets_wal_foreign_keys_and_a_busy_timeout(tmp_path):
    app = _make(tmp_path, ENV="testing", SQLITE_BUSY_TIMEOUT_MS=2500)
    with app.app_context():
        with db.engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
            assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar_one() == 2500
        db.engine.dispose()


@pytest.mark.parametrize("base_url", ["", "http://models.example", "https://"])
def test_production_refuses_to_start_without_an_https_base_url(tmp_path, base_url):
    """Reset links are built from BASE_URL, never from a Host header the client chose."""
    with pytest.raises(ConfigError, match="MODELPORT_BASE_URL"):
        _make(tmp_path, ENV="production", SECRET_KEY=STRONG, BASE_URL=base_url)
