"""The dataset explorer in a real browser: plotly.js, served from the installed package,
draws the histograms and the correlation heatmap from the page's JSON blocks, under the CSP
(no inline script): nothing is reported on the console. ``modelport demo`` registered the
demo models' training rows as datasets.
"""

from __future__ import annotations

import secrets
from typing import Any

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]


@pytest.mark.parametrize("width", [1280, 390])
def test_the_explorer_draws_its_charts(page: Any, console_errors: list[str], width: int) -> None:
    from playwright.sync_api import expect

    from tests.support.browser import sign_in, sign_up

    page.set_viewport_size({"width": width, "height": 900})
    email = f"datasets-{secrets.token_hex(4)}@example.com"
    sign_up(page, email)
    page.goto("/")
    sign_in(page, email, remember=False)

    page.goto("/datasets")
    page.locator('a[href="/datasets/iris-train"]').click()
    page.wait_for_url("**/datasets/iris-train")
    charts = page.locator("[data-chart]")
    expect(charts).to_have_count(6)  # 4 histograms, species' top values, the heatmap
    expect(page.locator("[data-chart] .main-svg").first).to_be_visible()
    traces = page.evaluate(
        "() => Array.from(document.querySelectorAll('[data-chart]'), e => (e.data || []).length)"
    )
    assert traces == [1] * 6
    heatmap = page.evaluate(
        "() => document.querySelector('[data-chart=\"chart-correlations-data\"]').data[0].type"
    )
    assert heatmap == "heatmap"
    page.locator('nav[aria-label="Pages of rows"] a').first.click()
    expect(page.locator(".rows-table tbody tr").first.locator("th")).to_have_text("26")
    assert not console_errors, console_errors
