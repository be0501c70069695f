"""The account acceptance test in a real browser, in English and in Korean.

signup → sign out → sign in with remember-me → create an API token → use it → delete the
account → the copied cookies and the token are refused (checklist items on sessions,
cookies, tokens and withdrawal). Korean text is looked up in the compiled catalogue at test
time, so the test follows the translation instead of hard-coding it; elements are found by
form actions and field names, which are part of the public surface.
"""

from __future__ import annotations

import re
import secrets
import time
from typing import Any

import pytest
import requests

from tests.support.browser import (
    HANGUL,
    PASSWORD,
    LiveServer,
    open_context,
    sign_in,
    submit,
    translate,
    translated,
    user_rows,
)

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

SESSION_COOKIE = "modelport_session"
REMEMBER_COOKIE = "modelport_remember"


def expect_text(page: Any, locale: str, msgid: str, where: str = "body", **values: Any) -> None:
    """The page shows ``msgid`` in ``locale`` (skipped while the catalogue lacks it)."""
    from playwright.sync_api import expect

    if translated(locale, msgid):
        expect(page.locator(where).first).to_contain_text(translate(locale, msgid, **values))


def expect_language(page: Any, locale: str) -> None:
    """The page is in ``locale``: <html lang>, the switch, and Korean text in Korean."""
    from playwright.sync_api import expect

    expect(page.locator("html")).to_have_attribute("lang", locale)
    current = page.locator(f'form[action="/language"] button[value="{locale}"]')
    expect(current).to_have_attribute("aria-current", "true")
    if locale == "ko" and translated("ko", "Sign in"):
        assert HANGUL.search(page.locator("main").inner_text())


@pytest.mark.parametrize("locale", ["en", "ko"])
def test_account_journey(
    locale: str,
    browser: Any,
    context: Any,
    page: Any,
    live_server: LiveServer,
    console_errors: list[str],
) -> None:
    from playwright.sync_api import expect

    email = f"journey-{locale}-{secrets.token_hex(4)}@example.com"
    page.goto("/")
    # The browser asks for English: Korean comes from the page's own language switch.
    expect(page.locator("html")).to_have_attribute("lang", "en")

    if locale == "ko":
        with page.expect_navigation():
            page.locator('form[action="/language"] button[value="ko"]').click()
        assert page.url == f"{live_server.url}/"
        if translated("ko", "Sign in"):
            # The navigation now says it in Korean, not in English.
            expect(page.locator("nav")).not_to_contain_text("Sign in")
    expect_language(page, locale)
    expect_text(
        page, locale, "Put your machine-learning models in front of people and programs.", "h1"
    )
    for msgid in ("Sign in", "Create account"):
        expect_text(page, locale, msgid, "nav")

    # Sign up: the answer is the same whether or not the address was free (no enumeration).
    page.locator('nav a[href="/auth/signup"]').click()
    page.wait_for_url("**/auth/signup")
    expect_language(page, locale)
    expect_text(page, locale, "Create account", "h1")
    submit(page, "/auth/signup", email=email, name="Journey", password=PASSWORD, password2=PASSWORD)
    page.wait_for_url("**/auth/login")
    expect(page.locator(".flashes")).to_be_visible()
    expect_text(page, locale, "Your account is ready if the address was free. Sign in to continue.")
    expect_language(page, locale)
    expect_text(page, locale, "Sign in", "h1")

    submit(page, "/auth/login", email=email, password=PASSWORD)
    page.wait_for_url("**/account")
    expect_language(page, locale)
    expect_text(page, locale, "Your account", "h1")
    expect(page.locator("main")).to_contain_text(email)

    # Sign out with the navigation's button (a POST form).
    page.locator('nav form[action="/auth/logout"] button[type="submit"]').click()
    page.wait_for_url(f"{live_server.url}/")
    expect_text(page, locale, "You are signed out.", ".flashes")
    expect(page.locator('nav a[href="/auth/login"]')).to_be_visible()
    expect(page.locator('nav form[action="/auth/logout"]')).to_have_count(0)
    expect_language(page, locale)

    sign_in(page, email, remember=True)
    expect_language(page, locale)
    cookies = {c["name"]: c for c in context.cookies()}
    remember = cookies[REMEMBER_COOKIE]
    assert remember["httpOnly"] is True
    assert remember["sameSite"] == "Lax"
    assert remember["expires"] > time.time() + 13 * 24 * 3600  # kept across browser restarts
    session_cookie = cookies[SESSION_COOKIE]
    assert session_cookie["httpOnly"] is True
    assert session_cookie["sameSite"] == "Lax"
    assert session_cookie["expires"] == -1  # ends with the browser session

    # An API token, shown once, with the predict scope unless another is chosen.
    page.locator('nav a[href="/account/tokens"]').click()
    page.wait_for_url("**/account/tokens")
    expect_language(page, locale)
    expect_text(page, locale, "API tokens", "h1")
    expect(page.locator('form[action="/account/tokens"] [name="scope"]')).to_have_value("predict")
    submit(page, "/account/tokens", name="journey script")
    token = page.locator("#new-token").inner_text().strip()
    assert len(token) >= 32
    expect(page.locator("main table")).to_contain_text("journey script")

    me = requests.get(
        f"{live_server.url}/api/v1/me", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert me.status_code == 200
    assert me.json()["email"] == email

    saved = context.cookies()
    assert {SESSION_COOKIE, REMEMBER_COOKIE} <= {c["name"] for c in saved}
    copy = open_context(browser, live_server)
    try:
        copy.add_cookies(saved)
        # Before the deletion, a copy of the cookies is as good as the browser they came from.
        assert copy.request.get("/api/v1/me").json()["email"] == email
    finally:
        copy.close()

    # After a browser restart only the remember cookie is left: signed in again, but not
    # fresh, so the tokens page asks for the password first.
    restarted = open_context(browser, live_server)
    try:
        restarted.add_cookies([c for c in saved if c["name"] == REMEMBER_COOKIE])
        again = restarted.new_page()
        again.goto("/account")
        expect(again.locator("main")).to_contain_text(email)
        again.goto("/account/tokens")
        again.wait_for_url(re.compile(r"/auth/reauth\?next="))
    finally:
        restarted.close()

    # Withdrawal: re-enter the password on the account page.
    page.locator('nav a[href="/account"]').click()
    page.wait_for_url("**/account")
    expect_text(page, locale, "Delete account", "main")
    submit(page, "/account/delete", password=PASSWORD)
    page.wait_for_url(f"{live_server.url}/")
    expect_text(page, locale, "Your account and its personal data were deleted. Goodbye.")
    expect(page.locator('nav a[href="/auth/login"]')).to_be_visible()
    assert user_rows(live_server, email) == 0
    assert not any(c["name"] == REMEMBER_COOKIE for c in context.cookies())

    # The token and the copied cookies stop working on the very next request.
    with_token = requests.get(
        f"{live_server.url}/api/v1/me", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    assert with_token.status_code == 401
    assert with_token.json()["error"]["code"] == "invalid_token"

    thief = open_context(browser, live_server)
    try:
        thief.add_cookies(saved)
        replay = thief.request.get("/api/v1/me")  # sends the copied cookies
        assert replay.status == 401
        assert replay.json()["error"]["code"] == "unauthorized"
        stolen = thief.new_page()
        stolen.goto("/account")
        stolen.wait_for_url(re.compile(r"/auth/login\?next="))
        expect(stolen.locator('nav a[href="/auth/login"]')).to_be_visible()
        expect(stolen.locator('nav form[action="/auth/logout"]')).to_have_count(0)
    finally:
        thief.close()

    # Our own pages never trip the Content-Security-Policy or fail to load a resource.
    assert console_errors == []
