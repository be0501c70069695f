"""The OpenAPI document describes what the API really answers (schemathesis, in process).

Checklist 32 and reliability test 5: generated valid and invalid requests never get a 500,
and every response matches its documented status, schema and content type.

schemathesis' pytest integration (``schema.parametrize()`` on a fixture) breaks on pytest 9
(``Function._nodeid``), so each operation's Hypothesis strategy is driven directly.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from hypothesis.strategies import SearchStrategy
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.http import bearer
from tests.support.models import register_demo
from tests.support.tokens import issue_token
from tests.support.users import make_user

CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
    content_type_conformance,
    negative_data_rejection,
]
EXAMPLES = settings(
    max_examples=30,  # fewer do not reach every status the test asks for, even under --fast
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


class FullToken:
    """A Bearer header for a full-scope token, issued again if a generated DELETE revoked it."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.user_id = make_user(app)
        self.token = issue_token(app, self.user_id, ["full"])

    def header(self) -> dict[str, str]:
        from modelport.auth.tokens import authenticate_token

        with self.app.app_context():
            if authenticate_token(self.token) is None:
                self.token = issue_token(self.app, self.user_id, ["full"])
        return bearer(self.token)


# Predictions go to a real registered model: the path names it, the body is generated.
PREDICT_TARGETS = {
    "POST /api/v1/models/{ref}/predict": {"ref": "iris"},
    "POST /api/v1/models/{name}/versions/{number}/predict": {"name": "iris", "number": 1},
}
# The inference protocol on the same model: tensors in, tensors out.
V2_TARGETS = {
    "POST /v2/models/{model_name}/infer": {"model_name": "iris"},
    "POST /v2/models/{model_name}/versions/{model_version}/infer": {
        "model_name": "iris",
        "model_version": "1",
    },
    "GET /v2/models/{model_name}": {"model_name": "iris"},
    "GET /v2/models/{model_name}/ready": {"model_name": "iris"},
}


def _strategy(operation: Any, mode: GenerationMode) -> SearchStrategy:
    fixed = {**PREDICT_TARGETS, **V2_TARGETS}.get(operation.label)
    if fixed is None:
        return operation.as_strategy(generation_mode=mode)
    generated = operation.as_strategy(generation_mode=mode, path_parameters=fixed)
    if mode is GenerationMode.NEGATIVE:
        return generated
    # The documented examples (JSON and CSV) are valid iris rows: positive runs send them
    # besides the bodies generated from the schema, which rarely name the model's features.
    examples = operation.get_strategies_from_examples(path_parameters=fixed)
    return st.one_of(generated, *examples)


def _exercise(operation: Any, mode: GenerationMode, auth: FullToken, seen: Counter) -> None:
    """Send generated cases to one operation, validate every response, count the statuses."""

    @EXAMPLES
    @given(case=_strategy(operation, mode))
    def run(case: schemathesis.Case) -> None:
        response = case.call_and_validate(headers=auth.header(), checks=CHECKS)
        mimetype = response.headers.get("content-type", [""])[0].split(";")[0]
        seen[response.status_code, mimetype] += 1

    run()


@pytest.mark.db
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_api_matches_its_openapi_document(app_factory, demo_models, mode):
    # Tokens are remembered, as in production, so that predictions with valid bodies take the
    # predict hot path (modelport/api/fastpath.py) and the rest go through Flask.
    app = app_factory(TOKEN_CACHE_SECONDS="60")
    register_demo(app, demo_models, "iris")
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app)
    auth = FullToken(app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.label for op in operations} >= {
        "GET /api/v1/me",
        "GET /api/v1/tokens",
        "POST /api/v1/tokens",
        "DELETE /api/v1/tokens/{token_id}",
        *PREDICT_TARGETS,
        *V2_TARGETS,
    }
    statuses: dict[str, Counter] = {label: Counter() for label in {**PREDICT_TARGETS, **V2_TARGETS}}
    for operation in operations:
        try:
            _exercise(operation, mode, auth, statuses.get(operation.label, Counter()))
        except Unsatisfiable:
            # Nothing about this operation can be made invalid (say, a GET whose only input is
            # a free-form name in the path): there is no negative case to send.
            assert mode is GenerationMode.NEGATIVE, operation.label
    print("STATUSES", mode, statuses)
    if mode is GenerationMode.POSITIVE:
        assert app.extensions["modelport_fast_path"].answered > 0
    for label, seen in statuses.items():
        assert all(status < 500 for status, _ in seen), (label, seen)
        if label in V2_TARGETS:
            # The documented example request is a valid iris tensor: the model answers it.
            if mode is GenerationMode.POSITIVE:
                assert seen[200, "application/json"], (label, seen)
            elif label.startswith("POST"):
                assert seen[400, "application/json"], (label, seen)
            continue
        # The model really answered: predictions (JSON and CSV) for valid rows, 4xx for the rest.
        if mode is GenerationMode.POSITIVE:
            assert seen[200, "application/json"] and seen[200, "text/csv"], (label, seen)
        assert seen[422, "application/json"], (label, seen)
        assert all(status < 500 for status, _ in seen), (label, seen)


def _resolve(spec: dict, node: dict) -> dict:
    while "$ref" in node:
        section, kind, name = node["$ref"].lstrip("#/").split("/")
        node = spec[section][kind][name]
    return node


def test_every_operation_documents_its_errors_with_the_error_schema(client):
    spec = client.get("/api/openapi.json").get_json()
    schemas = spec["components"]["schemas"]
    error = schemas["Error"]
    assert error["required"] == ["error"]
    assert set(schemas["ErrorBody"]["required"]) == {"code", "message", "details"}
    assert set(schemas["ErrorDetail"]["required"]) == {"row", "field", "code", "message"}
    expected = {
        ("get", "/api/v1/me"): {"200", "400", "401", "403", "429"},
        ("get", "/api/v1/tokens"): {"200", "400", "401", "403", "422", "429"},
        ("post", "/api/v1/tokens"): {"201", "400", "401", "403", "413", "422", "429"},
        ("delete", "/api/v1/tokens/{token_id}"): {"204", "400", "401", "403", "404", "429"},
    }
    for (method, path), statuses in expected.items():
        responses = spec["paths"][path][method]["responses"]
        assert statuses <= set(responses), (method, path, sorted(responses))
        for status, response in responses.items():
            if status.startswith(("4", "5")) or status == "default":
                body = _resolve(spec, response)["content"]["application/json"]["schema"]
                assert _resolve(spec, body) == error, (method, path, status)
        assert {"bearer", "basic", "session"} == {
            name for requirement in spec["paths"][path][method]["security"] for name in requirement
        }
    # The secret appears in the creation response only, never in a list.
    assert "token" in schemas["TokenCreated"]["properties"]
    assert "token" not in schemas["Token"]["properties"]
    assert set(schemas["TokenCreated"]["required"]) >= {"id", "name", "token", "prefix", "scopes"}
    assert schemas["TokenCreate"]["additionalProperties"] is False


def test_api_docs_use_no_cdn(client):
    page = client.get("/api/docs")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "swagger-ui-bundle.js" in html
    urls = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert urls and all(url.startswith("/") and not url.startswith("//") for url in urls), urls
    for asset in ("swagger-ui.css", "swagger-ui-bundle.js"):
        assert client.get(f"/api/docs/assets/{asset}").status_code == 200
