"""Rotating the secret key (docs/operations.md, "Rotating the secret key").

A new ``MODELPORT_SECRET_KEY`` with the old one in ``MODELPORT_SECRET_KEY_FALLBACKS`` signs
with the new key and still accepts what the old one signed: the Flask session cookie, the
device cookie and e-mail links. Once the old key leaves the fallbacks, those stop working.
The remember cookie is not signed at all (a random secret checked on the server), so it
survives a rotation with or without fallbacks.

Each test signs in on an app with the old key, then replays the cookies on apps with the
new key (same database), as browsers do when the pods roll.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

OLD = "old-key-" + "o" * 40
NEW = "new-key-" + "n" * 40
OLDER = "older-key-" + "x" * 40
EMAIL = "rotate@example.com"
PASSWORD = "correct horse battery staple"


# ---- small helpers of this module's own ----------------------------------------------------


def _csrf(client: FlaskClient, path: str = "/auth/login") -> str:
    html = client.get(path).get_data(as_text=True)
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or re.search(
        r'name="csrf_token" value="([^"]+)"', html
    )
    assert match, "no CSRF token on the page"
    return match.group(1)


def _make_user(app: Flask) -> int:
    from modelport.auth import accounts

    with app.app_context():
        return accounts.create_user(EMAIL, "Rota", PASSWORD).id


def _sign_in(app: Flask, *, remember: bool = False) -> FlaskClient:
    client = app.test_client()
    data = {"email": EMAIL, "password": PASSWORD, "csrf_token": _csrf(client)}
    if remember:
        data["remember"] = "y"
    assert client.post("/auth/login", data=data).status_code == 302
    return client


def _cookie(app: Flask, client: FlaskClient, config_key: str) -> str:
    found = client.get_cookie(app.config[config_key])
    assert found is not None, f"no {config_key} cookie"
    return found.value


def _replay(app: Flask, **cookies: str) -> FlaskClient:
    """A new browser on ``app`` holding only these cookies."""
    client = app.test_client()
    for name, value in cookies.items():
        client.set_cookie(name, value)
    return client


def _signed_in(client: FlaskClient) -> bool:
    response = client.get("/account")
    if response.status_code == 200:
        return True
    assert response.status_code == 302 and "/auth/login" in response.headers["Location"]
    return False


def _apps(app_factory: Any) -> tuple[Flask, Flask, Flask]:
    """The old key; the new key with the old one in the fallbacks; the new key alone."""
    return (
        app_factory(SECRET_KEY=OLD),
        app_factory(SECRET_KEY=NEW, SECRET_KEY_FALLBACKS=f"{OLD}, {OLDER}"),
        app_factory(SECRET_KEY=NEW),
    )


# ---- the cookies ---------------------------------------------------------------------------


def test_a_session_cookie_signed_with_the_old_key_works_while_the_key_is_a_fallback(app_factory):
    old, rotating, rotated = _apps(app_factory)
    _make_user(old)
    session = _cookie(old, _sign_in(old), "SESSION_COOKIE_NAME")
    name = old.config["SESSION_COOKIE_NAME"]

    browser = _replay(rotating, **{name: session})
    assert _signed_in(browser)
    # What the app writes now is signed with the new key: it works on the new key alone.
    answer = browser.post("/language", data={"lang": "ko", "csrf_token": _csrf(browser, "/")})
    assert answer.status_code == 302  # the session changed, so its cookie was written again
    resigned = _cookie(rotating, browser, "SESSION_COOKIE_NAME")
    assert resigned != session
    assert _signed_in(_replay(rotated, **{name: resigned}))

    assert not _signed_in(_replay(rotated, **{name: session}))


def test_a_remember_cookie_is_not_signed_and_survives_any_rotation(app_factory):
    old, rotating, rotated = _apps(app_factory)
    _make_user(old)
    remember = _cookie(old, _sign_in(old, remember=True), "MODELPORT_REMEMBER_COOKIE")
    name = old.config["MODELPORT_REMEMBER_COOKIE"]

    # The browser session ended (no session cookie); remember-me restores the sign-in, on
    # the new key with the fallback and on the new key alone.
    assert _signed_in(_replay(rotating, **{name: remember}))
    assert _signed_in(_replay(rotated, **{name: remember}))


def test_a_device_cookie_signed_with_the_old_key_is_recognised_while_the_key_is_a_fallback(
    app_factory,
):
    from modelport.auth import devices

    old, rotating, rotated = _apps(app_factory)
    user_id = _make_user(old)
    device = _cookie(old, _sign_in(old), "DEVICE_COOKIE_NAME")
    name = old.config["DEVICE_COOKIE_NAME"]

    def recognised(app: Flask) -> bool:
        with app.test_request_context("/", headers={"Cookie": f"{name}={device}"}):
            return devices.recognised(user_id) is not None

    assert recognised(old)
    assert recognised(rotating)
    assert not recognised(rotated)


def test_new_device_entries_are_signed_with_the_new_key(app_factory):
    _old, rotating, rotated = _apps(app_factory)
    _make_user(rotating)
    device = _cookie(rotating, _sign_in(rotating), "DEVICE_COOKIE_NAME")
    from modelport.auth import devices

    name = rotating.config["DEVICE_COOKIE_NAME"]
    with rotated.test_request_context("/", headers={"Cookie": f"{name}={device}"}):
        assert devices._entries(), "an entry written during the rotation needs the old key"


def test_an_email_link_signed_with_the_old_key_works_while_the_key_is_a_fallback(app_factory):
    from modelport.auth import links
    from modelport.extensions import db
    from modelport.models import User

    old, rotating, rotated = _apps(app_factory)
    user_id = _make_user(old)
    with old.app_context():
        token = links.make_link_token(db.session.get(User, user_id), "reset")

    def valid(app: Flask) -> bool:
        with app.app_context():
            return links.read_link_token(token, "reset") is not None

    assert valid(rotating)
    assert not valid(rotated)


def test_a_form_opened_before_the_switch_fails_once_flask_wtf_ignores_the_fallbacks(
    app_factory,
):
    """Flask-WTF signs and checks CSRF tokens with ``SECRET_KEY`` alone: a form rendered with
    the old key is refused once, and the same form rendered again goes through."""
    old, rotating, _rotated = _apps(app_factory)
    _make_user(old)
    browser = _sign_in(old)
    stale = _csrf(browser, "/")  # a page rendered while the old key signed
    name = old.config["SESSION_COOKIE_NAME"]
    moved = _replay(rotating, **{name: _cookie(old, browser, "SESSION_COOKIE_NAME")})

    assert moved.post("/language", data={"lang": "ko", "csrf_token": stale}).status_code == 400
    assert _signed_in(moved)  # only the form failed, not the sign-in
    fresh = _csrf(moved, "/")
    assert moved.post("/language", data={"lang": "ko", "csrf_token": fresh}).status_code == 302


# ---- the setting ---------------------------------------------------------------------------


def test_fallbacks_reach_flask_newest_first_and_are_never_signing_keys(app_factory):
    from modelport.config import signing_keys

    _old, rotating, _rotated = _apps(app_factory)
    assert rotating.config["SECRET_KEY"] == NEW
    assert rotating.config["SECRET_KEY_FALLBACKS"] == [OLD, OLDER]
    # itsdangerous signs with the last key of the list.
    assert signing_keys(rotating.config)[-1] == NEW


def test_fallbacks_can_come_from_a_file_one_per_line(app_factory, tmp_path):
    keys = tmp_path / "secret-key-fallbacks"
    keys.write_text(f"{OLD}\n{OLDER}\n")
    app = app_factory(SECRET_KEY=NEW, SECRET_KEY_FALLBACKS_FILE=str(keys))
    assert app.config["SECRET_KEY_FALLBACKS"] == [OLD, OLDER]
    keys.write_text("")  # emptied once the rotation is over: no fallbacks, still starts
    assert (
        app_factory(SECRET_KEY=NEW, SECRET_KEY_FALLBACKS_FILE=str(keys)).config[
            "SECRET_KEY_FALLBACKS"
        ]
        == []
    )


@pytest.mark.parametrize("fallbacks", ["dev", f"{OLD},tiny-old-key"])
def test_production_refuses_a_weak_fallback_without_showing_it(tmp_path, fallbacks):
    from modelport import create_app
    from modelport.config import ConfigError

    with pytest.raises(ConfigError) as caught:
        create_app(
            {
                "ENV": "production",
                "SECRET_KEY": NEW,
                "SECRET_KEY_FALLBACKS": fallbacks,
                "BASE_URL": "https://models.example.com",
                "DATABASE_URL": "sqlite://",
                "INSTANCE_PATH": str(tmp_path),
            }
        )
    message = str(caught.value)
    assert "MODELPORT_SECRET_KEY_FALLBACKS" in message
    assert OLD not in message and "tiny-old-key" not in message


def test_fallbacks_are_left_out_of_the_settings_repr(app_factory):
    _old, rotating, _rotated = _apps(app_factory)
    shown = repr(rotating.settings)
    assert OLD not in shown and NEW not in shown
