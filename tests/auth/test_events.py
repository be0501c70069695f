"""Security events: who, what, when (UTC), where; never a secret; no log injection (37, 38)."""

from __future__ import annotations

import json
import logging
import re
import secrets
from datetime import UTC, datetime

import pytest

from modelport.ops.logging import SECURITY_LOGGER, JsonFormatter
from tests.support.cookies import cookie, remember_cookie, session_cookie
from tests.support.html import csrf_token
from tests.support.mail import reset_link
from tests.support.users import (
    NEW_PASSWORD,
    PASSWORD,
    change_password,
    login,
    make_user,
    reset_with,
)

FORMATTER = JsonFormatter()


def _events(caplog: pytest.LogCaptureFixture) -> list[dict]:
    """The security records, rendered by the app's JSON formatter and parsed back."""
    found = []
    for record in caplog.records:
        if record.name == SECURITY_LOGGER:
            line = FORMATTER.format(record)
            assert "\n" not in line
            found.append(json.loads(line))
    return found


def _all_lines(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(FORMATTER.format(r) for r in caplog.records)


@pytest.mark.db
def test_auth_flow_logs_each_event_with_who_when_where_and_no_secret(app_factory, mailbox, caplog):
    # The client signs in before it fails: its device cookie has a count of its own.
    app = app_factory(LOGIN_LIMIT_ACCOUNT="2 per 15 minutes", LOGIN_LIMIT_DEVICE="2 per 15 minutes")
    caplog.set_level(logging.INFO, logger="modelport")
    ann = make_user(app)
    ip = {"REMOTE_ADDR": "192.0.2.7"}
    seen_secrets = {PASSWORD, NEW_PASSWORD, app.config["SECRET_KEY"]}

    client = app.test_client()
    client.environ_base.update(ip)
    bad = {"email": "ann@example.com", "password": "wrong guess number one"}
    client.post("/auth/login", data={**bad, "csrf_token": csrf_token(client)})
    assert login(client, remember=True).status_code == 302
    seen_secrets |= {
        session_cookie(app, client),
        remember_cookie(app, client),
        cookie(client, app.config["DEVICE_COOKIE_NAME"]),
    }

    created = client.post(
        "/account/tokens",
        data={"name": "cli", "scope": "full", "csrf_token": csrf_token(client, "/account/tokens")},
    )
    plaintext = re.search(r'id="new-token">([^<]+)<', created.get_data(as_text=True)).group(1)
    seen_secrets.add(plaintext)
    assert (
        app.test_client()
        .get("/api/v1/me", headers={"Authorization": f"Bearer {plaintext}"})
        .status_code
        == 200
    )
    token_id = re.search(r"/account/tokens/(\d+)/revoke", created.get_data(as_text=True)).group(1)
    client.post(
        f"/account/tokens/{token_id}/revoke",
        data={"csrf_token": csrf_token(client, "/account/tokens")},
    )
    assert change_password(client, PASSWORD, NEW_PASSWORD).status_code == 302
    seen_secrets.add(session_cookie(app, client))
    client.post("/auth/logout", data={"csrf_token": csrf_token(client, "/")})

    path = reset_link(client, mailbox, "ann@example.com")
    seen_secrets.add(path.rsplit("/", 1)[1])
    final = "a third quite long passphrase"
    seen_secrets.add(final)
    assert reset_with(client, path, final).status_code == 302

    for _ in range(2):
        client.post("/auth/login", data={**bad, "csrf_token": csrf_token(client)})
    assert (
        client.post("/auth/login", data={**bad, "csrf_token": csrf_token(client)}).status_code
        == 429
    )

    # The account is cleared by a fresh reset, then deleted.
    path = reset_link(client, mailbox, "ann@example.com")
    last = "the very last passphrase here"
    seen_secrets |= {path.rsplit("/", 1)[1], last}
    reset_with(client, path, last)
    assert login(client, password=last).status_code == 302
    seen_secrets.add(session_cookie(app, client))
    deleted = client.post(
        "/account/delete", data={"password": last, "csrf_token": csrf_token(client, "/account")}
    )
    assert deleted.status_code == 302

    events = _events(caplog)
    by_name = {}
    for event in events:
        by_name.setdefault(event["event"], event)
    expected = {
        "login_failed",
        "login",
        "token_created",
        "token_revoked",
        "password_changed",
        "logout",
        "password_reset",
        "login_throttled",
        "account_deleted",
    }
    assert expected <= set(by_name)
    for name in expected:
        event = by_name[name]
        assert event["user_id"] == ann, name
        assert event["ip"] == "192.0.2.7", name
        when = datetime.fromisoformat(event["time"])
        assert when.utcoffset() == UTC.utcoffset(None), name
        assert abs((datetime.now(UTC) - when).total_seconds()) < 3600, name

    text = caplog.text + "\n" + _all_lines(caplog)
    for secret in seen_secrets:
        assert secret and secret not in text, "a secret reached the log"


@pytest.mark.db
def test_failed_login_of_an_unknown_address_logs_no_address(app, client, caplog):
    caplog.set_level(logging.INFO, logger="modelport")
    login(client, "ghost@example.com", "some long wrong password")
    (event,) = [e for e in _events(caplog) if e["event"] == "login_failed"]
    assert event["user_id"] is None
    assert "ghost@example.com" not in _all_lines(caplog)


def test_user_controlled_text_with_newlines_is_escaped(app, caplog):
    caplog.set_level(logging.INFO, logger="modelport")
    forged = 'Mozilla\n{"event": "login", "user_id": 1}\r\nINFO fake line'
    client = app.test_client()
    client.post(
        "/auth/login",
        data={
            "email": "x\n@example.com",
            "password": "wrong but long enough",
            "csrf_token": csrf_token(client),
        },
        environ_base={"HTTP_USER_AGENT": forged},
    )
    lines = [FORMATTER.format(r) for r in caplog.records if r.name == SECURITY_LOGGER]
    assert lines
    for line in lines:
        assert "\n" not in line and "\r" not in line
        parsed = json.loads(line)
        assert parsed["event"] != "login"
    assert any(json.loads(line).get("user_agent") == forged for line in lines)


def test_json_formatter_escapes_a_name_with_a_newline_and_drops_secret_fields():
    record = logging.LogRecord(SECURITY_LOGGER, logging.INFO, __file__, 1, "signup", (), None)
    record.fields = {
        "event": "signup",
        "name": "Ann\nINFO forged",
        "email": "a@b.c\r\n",
        "password": "hunter2 hunter2 hunter2",
        "token": "mp_secret",
    }
    line = FORMATTER.format(record)
    assert "\n" not in line and "\r" not in line
    parsed = json.loads(line)
    assert parsed["name"] == "Ann\nINFO forged"
    assert "password" not in parsed and "token" not in parsed
    assert "hunter2" not in line and "mp_secret" not in line


@pytest.mark.db
def test_production_without_a_mail_server_never_logs_the_link(app_factory, caplog):
    app = app_factory(
        ENV="production",
        SECRET_KEY=secrets.token_urlsafe(48),
        MAIL_SERVER="",
        BASE_URL="https://models.example",
    )
    make_user(app)
    caplog.set_level(logging.INFO, logger="modelport")
    client = app.test_client()
    base = "https://localhost"
    page = client.get("/auth/reset", base_url=base)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.text).group(1)
    response = client.post(
        "/auth/reset",
        base_url=base,
        headers={"Referer": f"{base}/auth/reset"},
        data={"email": "ann@example.com", "csrf_token": token},
    )
    assert response.status_code == 302
    lines = _all_lines(caplog)
    assert "mail not sent" in lines
    assert "/auth/reset/" not in lines
