"""What the browser itself enforces: CSP, SameSite cookies, accessible field errors."""

from __future__ import annotations

import re
import secrets
from typing import Any

import pytest

from tests.support.browser import (
    PASSWORD,
    LiveServer,
    sign_in,
    sign_up,
    submit,
    translate,
    user_rows,
)

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

# Injects an inline <script> and an inline event handler, as an XSS payload would, and
# resolves once the browser reported both CSP violations (or after 5 s without them).
INJECT = """() => new Promise((resolve) => {
  const violations = [];
  const done = () => resolve({
    pwned: window.pwned === undefined ? null : window.pwned,
    pwnedByHandler: window.pwnedByHandler === undefined ? null : window.pwnedByHandler,
    violations,
  });
  document.addEventListener("securitypolicyviolation", (event) => {
    violations.push({directive: event.effectiveDirective, disposition: event.disposition});
    if (violations.length === 2) done();
  });
  const script = document.createElement("script");
  script.textContent = "window.pwned = 1";
  document.body.appendChild(script);
  const button = document.createElement("button");
  button.setAttribute("onclick", "window.pwnedByHandler = 1");
  document.body.appendChild(button);
  button.click();
  setTimeout(done, 5000);
})"""


def test_csp_blocks_injected_inline_script(page: Any, console_errors: list[str]) -> None:
    response = page.goto("/auth/login")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "object-src 'none'" in policy

    result = page.evaluate(INJECT)

    assert result["pwned"] is None
    assert result["pwnedByHandler"] is None
    assert {v["directive"] for v in result["violations"]} == {"script-src-elem", "script-src-attr"}
    assert {v["disposition"] for v in result["violations"]} == {"enforce"}
    assert any("Content Security Policy" in error for error in console_errors)


def _auto_post(target: str, **fields: str) -> str:
    """An attacker's page that posts a form to ``target`` as soon as it loads."""
    inputs = "".join(f'<input name="{k}" value="{v}">' for k, v in fields.items())
    return (
        "<!doctype html><title>You won a prize</title>"
        f'<form id="f" method="post" action="{target}">{inputs}</form>'
        '<script>document.getElementById("f").submit()</script>'
    )


@pytest.mark.parametrize("action", ["/auth/logout", "/account/delete"])
def test_cross_site_form_post_changes_nothing(
    action: str, context: Any, page: Any, other_site: Any, live_server: LiveServer
) -> None:
    from playwright.sync_api import expect

    email = f"samesite-{secrets.token_hex(4)}@example.com"
    sign_up(page, email)
    sign_in(page, email, remember=False)
    # Even the right password in the forged form must not be enough.
    attack = other_site.serve(_auto_post(f"{live_server.url}{action}", password=PASSWORD))
    assert not attack.startswith(live_server.url)  # localhost and 127.0.0.1 are two sites

    with page.expect_response(f"{live_server.url}{action}") as answer:
        page.goto(attack)
    forged = answer.value
    # SameSite=Lax: the browser left our cookies off the cross-site POST ...
    assert "modelport_session" not in forged.request.all_headers().get("cookie", "")
    # ... and without a session there is no CSRF token to match, so it is refused.
    assert forged.status == 400

    assert user_rows(live_server, email) == 1
    # Still signed in: the refused answer must not have replaced the session cookie either.
    page.goto("/account")
    assert page.url == f"{live_server.url}/account"
    expect(page.locator("main")).to_contain_text(email)
    expect(page.locator('nav form[action="/auth/logout"]')).to_be_visible()


def test_short_password_error_is_next_to_the_field(page: Any, live_server: LiveServer) -> None:
    from playwright.sync_api import expect

    email = f"short-{secrets.token_hex(4)}@example.com"
    short = "kettle orbit z"
    assert len(short) == 14
    page.goto("/auth/signup")
    field = page.locator('form[action="/auth/signup"] [name="password"]')
    described_before = set((field.get_attribute("aria-describedby") or "").split())

    with page.expect_response(
        lambda r: r.request.method == "POST" and r.url == f"{live_server.url}/auth/signup"
    ) as answer:
        submit(page, "/auth/signup", email=email, name="Short", password=short, password2=short)
    assert answer.value.status == 400

    expect(field).to_have_attribute("aria-invalid", "true")
    described_by = (field.get_attribute("aria-describedby") or "").split()
    added = [i for i in described_by if i not in described_before]
    assert len(added) == 1, described_by  # the error, besides the hint it already had
    message = translate("en", "Use at least %(n)d characters.", n=15)
    error = page.locator(f"#{added[0]}")
    expect(error).to_be_visible()
    expect(error).to_contain_text(message)
    # Next to the field: inside the same field box as the input.
    box = field.locator("xpath=ancestor::div[contains(concat(' ', @class, ' '), ' field ')][1]")
    expect(box.locator(f"#{added[0]}")).to_have_count(1)
    expect(field).to_have_accessible_description(re.compile(re.escape(message)))
    # The other fields are not marked, the password is not sent back, the e-mail is kept.
    expect(page.locator('[name="email"]')).not_to_have_attribute("aria-invalid", "true")
    expect(field).to_have_value("")
    expect(page.locator('[name="email"]')).to_have_value(email)
    assert user_rows(live_server, email) == 0
