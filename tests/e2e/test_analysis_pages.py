"""Every analysis page in a real browser, in English and Korean, on a desktop and a phone:
the dataset explorer, the model report, the monitoring and the drift pages draw each chart
(plotly traces present) under the CSP, nothing reaches the console, and a phone does not
scroll sideways."""

from __future__ import annotations

import secrets
from typing import Any

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

PAGES = (
    ("/datasets/iris-train", 6),  # 4 histograms, the species' top values, correlations
    ("/models/iris/report", 5),  # confusion, ROC, PR, calibration, importance
    ("/models/iris/monitoring?range=6h", 4),  # volume, latency, predicted, accuracy
    ("/models/iris/drift?range=6h", 2),  # each feature, over time
)


@pytest.mark.parametrize("language", ["en", "ko"])
@pytest.mark.parametrize("width", [1280, 390])
def test_each_analysis_page_draws_its_charts(
    page: Any, console_errors: list[str], width: int, language: str
) -> None:
    from playwright.sync_api import expect

    from tests.support.browser import sign_in, sign_up

    page.set_viewport_size({"width": width, "height": 900})
    email = f"analysis-{secrets.token_hex(4)}@example.com"
    sign_up(page, email)
    page.goto("/")
    sign_in(page, email, remember=False)
    # Predictions from the model page's form, so that monitoring and drift have inputs.
    page.goto("/models/iris")
    for _ in range(3):
        page.locator('form[action="/models/iris#result"] button[type=submit]').click()
        expect(page.locator("#result")).to_be_visible()
    if language == "ko":
        page.goto("/")
        with page.expect_navigation():
            page.locator('form[action="/language"] button[value="ko"]').click()

    for path, charts in PAGES:
        page.goto(path)
        expect(page.locator("html")).to_have_attribute("lang", language)
        expect(page.locator("[data-chart]")).to_have_count(charts)
        expect(page.locator("[data-chart] .main-svg").first).to_be_visible()
        traces = page.evaluate(
            "() => Array.from(document.querySelectorAll('[data-chart]'),"
            " e => (e.data || []).length)"
        )
        assert all(count >= 1 for count in traces), (path, traces)
        if width < 500:
            scroll = page.evaluate("() => document.documentElement.scrollWidth")
            assert scroll <= width + 1, (path, scroll)
    assert not console_errors, console_errors
