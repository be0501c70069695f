"""A model's report page in a real browser: plotly.js draws its charts from the page's JSON
blocks under the CSP (no inline script), for a classifier and a regression, in English and
Korean, on a desktop and a phone, with nothing on the console."""

from __future__ import annotations

import secrets
from typing import Any

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

# The demo models' charts: confusion matrix, ROC, precision-recall, calibration and
# importance for iris; predicted against actual, residuals and importance for diabetes.
CHARTS = {"iris": 5, "diabetes": 3}


@pytest.mark.parametrize(("width", "language"), [(1280, "en"), (390, "ko")])
def test_the_report_page_draws_its_charts(
    page: Any, console_errors: list[str], width: int, language: str
) -> None:
    from playwright.sync_api import expect

    from tests.support.browser import sign_in, sign_up

    page.set_viewport_size({"width": width, "height": 900})
    email = f"report-{secrets.token_hex(4)}@example.com"
    sign_up(page, email)
    page.goto("/")
    sign_in(page, email, remember=False)
    if language == "ko":
        page.goto("/")
        with page.expect_navigation():
            page.locator('form[action="/language"] button[value="ko"]').click()

    for model, count in CHARTS.items():
        # From the model's page, as a visitor finds it.
        page.goto(f"/models/{model}")
        with page.expect_navigation():
            page.locator(f'a[href="/models/{model}/report"]').click()
        expect(page.locator("html")).to_have_attribute("lang", language)
        charts = page.locator("[data-chart]")
        expect(charts).to_have_count(count)
        expect(page.locator("[data-chart] .main-svg").first).to_be_visible()
        traces = page.evaluate(
            "() => Array.from(document.querySelectorAll('[data-chart]'), e => (e.data || []).length)"
        )
        assert all(n >= 1 for n in traces), (model, traces)
        # Each chart's table is there for screen readers, folded until opened.
        expect(page.locator("details.data-table")).to_have_count(count)
        if width < 500:  # the page does not scroll sideways on a phone
            scroll = page.evaluate("() => document.documentElement.scrollWidth")
            assert scroll <= width + 1, (model, scroll)
    assert not console_errors, console_errors
