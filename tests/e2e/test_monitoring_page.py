"""A model's monitoring page in a real browser: plotly.js draws its four charts from the
page's JSON blocks under the CSP (no inline script), in English and Korean, on a desktop and
a phone, with nothing on the console."""

from __future__ import annotations

import secrets
from typing import Any

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]


@pytest.mark.parametrize(("width", "language"), [(1280, "en"), (390, "ko")])
def test_the_monitoring_page_draws_its_charts(
    page: Any, console_errors: list[str], width: int, language: str
) -> None:
    from playwright.sync_api import expect

    from tests.support.browser import sign_in, sign_up

    page.set_viewport_size({"width": width, "height": 900})
    email = f"monitoring-{secrets.token_hex(4)}@example.com"
    sign_up(page, email)
    page.goto("/")
    sign_in(page, email, remember=False)
    # A prediction from the model page's form (its example values), so there is a record.
    page.goto("/models/iris")
    page.locator('form[action="/models/iris#result"] button[type=submit]').click()
    expect(page.locator("#result")).to_be_visible()
    if language == "ko":
        page.goto("/")
        with page.expect_navigation():
            page.locator('form[action="/language"] button[value="ko"]').click()

    page.goto("/models/iris/monitoring?range=6h")
    expect(page.locator("html")).to_have_attribute("lang", language)
    charts = page.locator("[data-chart]")
    expect(charts).to_have_count(4)  # volume, latency, predicted classes, accuracy
    expect(page.locator("[data-chart] .main-svg").first).to_be_visible()
    traces = page.evaluate(
        "() => Array.from(document.querySelectorAll('[data-chart]'), e => (e.data || []).length)"
    )
    assert all(count >= 1 for count in traces), traces
    assert not console_errors, console_errors
