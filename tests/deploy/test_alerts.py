"""deploy/prometheus/alerts.yaml: promtool accepts the rules and passes their unit tests
(alerts.test.yaml), every alert has a case that fires and one that stays quiet, a runbook
heading in docs/operations.md, and names only metrics, labels and routes the app really has.

promtool comes from Debian's ``prometheus`` package; without it these tests skip, unless
``MODELPORT_TEST_REQUIRE_SERVICES=1`` (CI), where its absence is a failure.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from modelport.ops import metrics
from tests.support.databases import REQUIRE_SERVICES
from tests.support.models import IRIS_ROW, register_demo
from tests.support.tokens import make_token
from tests.support.users import login, make_user

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "alerts.yaml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "alerts.test.yaml"
OPERATIONS = ROOT / "docs" / "operations.md"
PROMTOOL = shutil.which("promtool") or (
    "/usr/bin/promtool" if Path("/usr/bin/promtool").exists() else None
)
SEVERITIES = {"critical", "warning", "info"}
# The views whose 2xx answers each commit a prediction record.
PREDICT_ENDPOINTS = {
    "api_models.predict",
    "api_models.predict_version",
    "v2.infer",
    "v2.version_infer",
}
# Labels Prometheus adds to every series it scrapes (the target's), which /metrics lacks.
TARGET_LABELS = {"namespace", "job", "instance"}
_MATCHER = re.compile(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"')
_SELECTOR = re.compile(r"\b(modelport_\w+)\s*(?:\{([^}]*)\})?")
_REGEX_SYNTAX = set(".*+?[](){}^$\\")
# Samples by name: (labels, value) each.
Scrape = dict[str, list[tuple[dict[str, str], float]]]


def _promtool() -> str:
    if PROMTOOL is None:
        message = "promtool is not installed (Debian package prometheus; .ci/run installs it)"
        if REQUIRE_SERVICES:
            pytest.fail(message + ", and MODELPORT_TEST_REQUIRE_SERVICES=1 requires it")
        pytest.skip(message)
    return PROMTOOL


def _run_promtool(*args: str) -> str:
    done = subprocess.run(
        [_promtool(), *args], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    return output


def _alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def _selectors() -> list[tuple[str, str, list[tuple[str, str, str]]]]:
    """(alert, metric, [(label, operator, value)]) for every modelport_* selector."""
    found = []
    for alert in _alerts():
        for metric, matchers in _SELECTOR.findall(alert["expr"]):
            found.append((alert["alert"], metric, _MATCHER.findall(matchers)))
    return found


def _slug(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    return re.sub(r"\s", "-", re.sub(r"[^\w\- ]", "", heading.strip().lower()))


def test_promtool_checks_the_rules() -> None:
    output = _run_promtool("check", "rules", str(RULES))
    assert f"SUCCESS: {len(_alerts())} rules found" in output, output


def test_promtool_unit_tests_pass() -> None:
    output = _run_promtool("test", "rules", str(RULE_TESTS))
    assert "SUCCESS" in output and "FAILED" not in output, output


def test_every_alert_has_a_case_that_fires_and_one_that_does_not() -> None:
    names = {alert["alert"] for alert in _alerts()}
    cases = yaml.safe_load(RULE_TESTS.read_text())
    assert cases["rule_files"] == [RULES.name]
    fires: set[str] = set()
    quiet: set[str] = set()
    for case in cases["tests"]:
        for check in case["alert_rule_test"]:
            (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
    assert fires == names, f"no firing case: {sorted(names - fires)}"
    assert quiet == names, f"no quiet case: {sorted(names - quiet)}"


def test_every_alert_is_written_as_operators_expect() -> None:
    headings = {
        _slug(line.lstrip("#"))
        for line in OPERATIONS.read_text().splitlines()
        if line.startswith("#")
    }
    alerts = _alerts()
    assert len({alert["alert"] for alert in alerts}) == len(alerts)
    for alert in alerts:
        name = alert["alert"]
        assert re.fullmatch(r"Modelport[A-Z]\w+", name), name
        assert re.fullmatch(r"\d+m", alert["for"]), name
        assert alert["labels"]["severity"] in SEVERITIES, name
        annotations = alert["annotations"]
        assert set(annotations) == {"summary", "description", "runbook_url"}, name
        assert "$value" in annotations["description"], name
        assert annotations["runbook_url"] == f"docs/operations.md#{name.lower()}", name
        assert name.lower() in headings, f"docs/operations.md has no heading {name}"


def test_rule_routes_are_the_apps_routes(app: Flask) -> None:
    """Route literals in the rules are real route templates; route regexes match some; the
    predict routes' regex of the not-recorded alert is exactly the recording views'."""
    templates = {rule.rule: rule.endpoint for rule in app.url_map.iter_rules()}
    for alert, _metric, matchers in _selectors():
        for label, operator, value in matchers:
            if label != "route":
                continue
            for alternative in value.split("|") if "~" in operator else [value]:
                if _REGEX_SYNTAX.isdisjoint(alternative):
                    assert alternative in {*templates, "unmatched"}, (alert, alternative)
                else:
                    assert any(re.fullmatch(alternative, t) for t in templates), (
                        alert,
                        alternative,
                    )
    (predict_routes,) = {
        value
        for alert, metric, matchers in _selectors()
        if alert == "ModelportPredictionsNotRecorded"
        for label, operator, value in matchers
        if label == "route" and operator == "=~"
    }
    matched = {t for t in templates if re.fullmatch(predict_routes, t)}
    assert {templates[t] for t in matched} == PREDICT_ENDPOINTS


def _scrape(client: FlaskClient) -> Scrape:
    """/metrics as the test client gets it (from loopback): samples by name."""
    response = client.get("/metrics", buffered=True)
    assert response.status_code == 200
    samples: Scrape = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def _total(scraped: Scrape, name: str) -> float:
    return sum(value for _, value in scraped.get(name, []))


def _requests(scraped: Scrape) -> Counter[tuple[str, str, str]]:
    """modelport_http_requests_total by (method, route, status)."""
    return Counter(
        {
            (labels["method"], labels["route"], labels["status"]): int(value)
            for labels, value in scraped.get("modelport_http_requests_total", [])
        }
    )


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")
def test_rule_metrics_and_labels_are_exposed(
    app: Flask, client: FlaskClient, demo_models: dict[str, Any]
) -> None:
    """Every modelport_* name the rules use is on /metrics once the app has served a little,
    with the labels the rules select on; each 2xx prediction is one record more."""
    register_demo(app, demo_models, "iris")
    make_user(app, "ann@example.com", name="Ann")
    bearer = {"Authorization": f"Bearer {make_token(app)}"}
    # The rollup that sets the drift share is not built yet.
    metrics.set_drift_share("iris", 0.0)
    before = _scrape(client)

    # A request is counted once its answer has been read to the end or closed: buffered (or
    # ``with``), the test client does both, as a WSGI server does.
    assert client.get("/readyz", buffered=True).status_code == 200
    assert client.get("/no/such/page", buffered=True).status_code == 404
    with login(app.test_client(), password="wrong") as refused:
        assert refused.status_code == 400
    # A program: no cookies (a cookie sends a request past the hot path, and makes CSRF due).
    program = app.test_client(use_cookies=False)
    row = {"inputs": IRIS_ROW}
    v2 = {
        "inputs": [
            {"name": name, "shape": [1], "datatype": "FP64", "data": [value]}
            for name, value in IRIS_ROW.items()
        ]
    }
    answered = [
        # The first Bearer call falls back to Flask (token not remembered), the next two
        # are answered by the hot path.
        program.post("/api/v1/models/iris/predict", json=row, headers=bearer, buffered=True),
        program.post("/api/v1/models/iris/predict", json=row, headers=bearer, buffered=True),
        program.post(
            "/api/v1/models/iris/versions/1/predict", json=row, headers=bearer, buffered=True
        ),
        program.post("/v2/models/iris/infer", json=v2, buffered=True),
    ]
    assert [r.status_code for r in answered] == [200] * 4, [r.get_data() for r in answered]
    assert app.extensions["modelport_fast_path"].answered == 2

    scraped = _scrape(client)
    for alert, metric, matchers in _selectors():
        assert metric in scraped, f"{alert}: {metric} is not on /metrics"
        exposed = {name for labels, _ in scraped[metric] for name in labels}
        for label, _operator, _value in matchers:
            assert label in exposed | TARGET_LABELS, f"{alert}: {metric} has no label {label}"

    # What the rules count grew by exactly what was done above.
    requests = _requests(scraped) - _requests(before)
    route = {rule.endpoint: rule.rule for rule in app.url_map.iter_rules()}
    assert requests == Counter(
        {
            ("GET", "/readyz", "200"): 1,
            ("GET", "unmatched", "404"): 1,
            ("POST", route["api_models.predict"], "200"): 2,
            ("POST", route["api_models.predict_version"], "200"): 1,
            ("POST", route["v2.infer"], "200"): 1,
            # The login helper's GET of the form (for its CSRF token), and the sign-in.
            ("GET", "/auth/login", "200"): 1,
            ("POST", "/auth/login", "400"): 1,
            # The scrape that took ``before``.
            ("GET", "/metrics", "200"): 1,
        }
    )
    grew = {
        name: _total(scraped, name) - _total(before, name)
        for name in (
            "modelport_prediction_records_total",
            "modelport_login_failures_total",
            "modelport_login_throttled_total",
            "modelport_fast_path_fallbacks_total",
        )
    }
    assert grew == {
        "modelport_prediction_records_total": len(answered),
        "modelport_login_failures_total": 1,
        "modelport_login_throttled_total": 0,
        "modelport_fast_path_fallbacks_total": 1,
    }
    assert ({"model": "iris"}, 0.0) in scraped["modelport_model_drift_share"]
