"""Function-level authorisation fails closed (checklist 27).

Every rule of ``app.url_map`` is in MATRIX with the status each kind of caller gets for
each of its methods. A route added without a row here fails ``test_every_route_is_in_the_
matrix``: deciding who may call it is part of adding it. Browsers' POSTs carry a valid CSRF
token, programs' a Bearer token, and all an empty or harmless body, so a status shows the
authorisation decision (401/403/redirect to sign-in) or, past it, the validation of the
empty input (400/404/422) — never a change. Reading rows name a private model and another
member's record, so that a 200 or a 404 is the caller's right and not a missing object.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.routing import Rule

from tests.support.html import csrf_token
from tests.support.models import register_demo
from tests.support.tokens import issue_token
from tests.support.users import login, make_user

# Sessions (browsers) and Bearer tokens (programs). A token carries its scope and no more,
# whoever owns it: an admin's predict token is a member's token.
ROLES = (
    "anonymous",
    "user",
    "admin",
    "admin full token",
    "admin predict token",
    "user token",
)
LOGIN = "login"  # a redirect to the sign-in page
NO_ID = 999_999  # an id that exists nowhere
# Paths may name ``{record}``: a prediction record of a member none of the callers is.


@dataclass(frozen=True)
class Row:
    path: str
    expect: dict[str, tuple[int | str, ...]]  # method -> a status per caller of ROLES
    ends_session: bool = False


MATRIX: dict[str, Row] = {
    # public pages
    "pages.home": Row("/", {"GET": (200, 200, 200, 200, 403, 403)}),
    "pages.set_language": Row("/language", {"POST": (400, 400, 400, 400, 400, 400)}),
    "static": Row("/static/css/modelport.css", {"GET": (200, 200, 200, 200, 200, 200)}),
    "health.healthz": Row("/healthz", {"GET": (200, 200, 200, 200, 200, 200)}),
    "health.readyz": Row("/readyz", {"GET": (200, 200, 200, 200, 200, 200)}),
    # judged on the client's address (loopback here) or a scrape token, not on who signs in
    "metrics.scrape": Row("/metrics", {"GET": (200, 200, 200, 200, 200, 200)}),
    # signing in and out; signed-in callers are sent on from the forms for strangers
    "auth.signup": Row(
        "/auth/signup",
        {"GET": (200, 302, 302, 302, 403, 403), "POST": (400, 302, 302, 302, 403, 403)},
    ),
    "auth.login": Row(
        "/auth/login",
        {"GET": (200, 302, 302, 302, 403, 403), "POST": (400, 400, 400, 400, 403, 403)},
    ),
    "auth.logout": Row("/auth/logout", {"POST": (302, 302, 302, 302, 403, 403)}, ends_session=True),
    "auth.reauthenticate": Row(
        "/auth/reauth",
        {"GET": (LOGIN, 200, 200, 200, 403, 403), "POST": (LOGIN, 400, 400, 400, 403, 403)},
    ),
    "auth.reset_request": Row(
        "/auth/reset",
        {"GET": (200, 200, 200, 200, 403, 403), "POST": (400, 400, 400, 400, 403, 403)},
    ),
    "auth.reset_password": Row(
        "/auth/reset/not-a-token",
        {"GET": (400, 400, 400, 400, 403, 403), "POST": (400, 400, 400, 400, 403, 403)},
    ),
    "auth.confirm_email": Row("/auth/confirm/not-a-token", {"GET": (400, 400, 400, 400, 403, 403)}),
    # the member's own account
    "account.overview": Row("/account", {"GET": (LOGIN, 200, 200, 200, 403, 403)}),
    "account.change_password": Row("/account/password", {"POST": (LOGIN, 400, 400, 400, 403, 403)}),
    "account.change_email": Row("/account/email", {"POST": (LOGIN, 400, 400, 400, 403, 403)}),
    "account.confirm_email_change": Row(
        "/account/email/not-a-token", {"GET": (400, 400, 400, 400, 403, 403)}
    ),
    "account.delete": Row("/account/delete", {"POST": (LOGIN, 400, 400, 400, 403, 403)}),
    "account.tokens": Row(
        "/account/tokens",
        {"GET": (LOGIN, 200, 200, 302, 403, 403), "POST": (LOGIN, 400, 400, 302, 403, 403)},
    ),
    "account.revoke": Row(
        f"/account/tokens/{NO_ID}/revoke", {"POST": (LOGIN, 404, 404, 404, 403, 403)}
    ),
    # administration: admins only, the role read from the database on every request
    "admin.users": Row("/admin/users", {"GET": (LOGIN, 403, 200, 200, 403, 403)}),
    "admin.change_role": Row(
        f"/admin/users/{NO_ID}/role", {"POST": (LOGIN, 403, 404, 404, 403, 403)}
    ),
    "admin.disable": Row(
        f"/admin/users/{NO_ID}/disable", {"POST": (LOGIN, 403, 404, 404, 403, 403)}
    ),
    "admin.enable": Row(f"/admin/users/{NO_ID}/enable", {"POST": (LOGIN, 403, 404, 404, 403, 403)}),
    # serving pages: public models for anyone, history for members, the registry for admins
    "serving.catalog": Row("/models", {"GET": (200, 200, 200, 200, 200, 200)}),
    "serving.model_page": Row(
        "/models/iris",
        {"GET": (404, 200, 200, 200, 200, 200), "POST": (404, 422, 422, 400, 400, 400)},
    ),
    "serving.batch": Row(
        "/models/iris/batch",
        {"GET": (404, 200, 200, 200, 200, 200), "POST": (404, 400, 400, 400, 400, 400)},
    ),
    "serving.example_csv": Row("/models/iris/example.csv", {"GET": (404, 200, 200, 200, 200, 200)}),
    "serving.history": Row("/predictions", {"GET": (LOGIN, 200, 200, 200, 200, 200)}),
    # no chart named: past sign-in, the empty query is a 404
    "analytics.chart_csv": Row(
        "/models/iris/monitoring.csv", {"GET": (LOGIN, 404, 404, 404, 404, 404)}
    ),
    "analytics.model_drift": Row("/models/iris/drift", {"GET": (LOGIN, 200, 200, 200, 200, 200)}),
    "analytics.overview": Row("/monitoring", {"GET": (LOGIN, 200, 200, 200, 200, 200)}),
    "analytics.model_monitoring": Row(
        "/models/iris/monitoring", {"GET": (LOGIN, 200, 200, 200, 200, 200)}
    ),
    "analytics.model_report": Row("/models/iris/report", {"GET": (LOGIN, 200, 200, 200, 200, 200)}),
    # no chart named: past sign-in, the empty query is a 404
    "analytics.report_csv": Row(
        "/models/iris/report.csv", {"GET": (LOGIN, 404, 404, 404, 404, 404)}
    ),
    "serving.record": Row("/predictions/{record}", {"GET": (LOGIN, 404, 200, 200, 404, 404)}),
    # the empty form: refused (400) for whoever may see the record, else the record is 404
    "serving.record_feedback": Row(
        "/predictions/{record}/feedback", {"POST": (LOGIN, 404, 400, 400, 404, 404)}
    ),
    "serving.admin_models": Row("/admin/models", {"GET": (LOGIN, 403, 200, 200, 403, 403)}),
    "serving.admin_new_model": Row(
        "/admin/models/new",
        {"GET": (LOGIN, 403, 200, 200, 403, 403), "POST": (LOGIN, 403, 400, 400, 403, 403)},
    ),
    "serving.admin_upload": Row(
        "/admin/models/nothing/upload",
        {"GET": (LOGIN, 403, 404, 404, 403, 403), "POST": (LOGIN, 403, 404, 404, 403, 403)},
    ),
    "serving.admin_alias": Row(
        "/admin/models/nothing/aliases", {"POST": (LOGIN, 403, 404, 404, 403, 403)}
    ),
    "serving.admin_canary": Row(
        "/admin/models/nothing/canary", {"POST": (LOGIN, 403, 404, 404, 403, 403)}
    ),
    "serving.admin_follow": Row(
        "/admin/models/nothing/follow", {"POST": (LOGIN, 403, 404, 404, 403, 403)}
    ),
    "serving.admin_archive": Row(
        "/admin/models/nothing/versions/1/archive", {"POST": (LOGIN, 403, 404, 404, 403, 403)}
    ),
    "serving.admin_schema": Row(
        "/admin/models/nothing/versions/1/schema",
        {"GET": (LOGIN, 403, 404, 404, 403, 403), "POST": (LOGIN, 403, 404, 404, 403, 403)},
    ),
    # datasets: signed-in members read (a token needs the full scope), administrators add
    "analytics.datasets_page": Row("/datasets", {"GET": (LOGIN, 200, 200, 200, 403, 403)}),
    "analytics.upload": Row("/datasets", {"POST": (LOGIN, 403, 400, 400, 403, 403)}),
    "analytics.explorer": Row("/datasets/nothing", {"GET": (LOGIN, 404, 404, 404, 403, 403)}),
    "analytics.vendor": Row(
        "/static/vendor/plotly.min.js", {"GET": (200, 200, 200, 200, 200, 200)}
    ),
    # the JSON API: 401, never a redirect
    "api-docs.openapi_json": Row("/api/openapi.json", {"GET": (200, 200, 200, 200, 200, 200)}),
    "api_docs.docs": Row("/api/docs", {"GET": (200, 200, 200, 200, 403, 403)}),
    "api_docs.assets": Row(
        "/api/docs/assets/swagger-ui.css", {"GET": (200, 200, 200, 200, 200, 200)}
    ),
    "api_v1.me": Row("/api/v1/me", {"GET": (401, 200, 200, 200, 200, 200)}),
    "api_v1.list_tokens": Row("/api/v1/tokens", {"GET": (401, 200, 200, 200, 403, 403)}),
    "api_v1.create": Row("/api/v1/tokens", {"POST": (401, 422, 422, 422, 403, 403)}),
    "api_v1.delete": Row(f"/api/v1/tokens/{NO_ID}", {"DELETE": (401, 404, 404, 404, 403, 403)}),
    # the registry: reading is public (private models need a sign-in), changing is for admins
    "api_models.list_models": Row("/api/v1/models", {"GET": (200, 200, 200, 200, 200, 200)}),
    "api_models.get_model": Row("/api/v1/models/iris", {"GET": (404, 200, 200, 200, 200, 200)}),
    "api_models.create_model": Row("/api/v1/models", {"POST": (401, 403, 422, 422, 403, 403)}),
    "api_models.update_model": Row(
        "/api/v1/models/nothing", {"PATCH": (401, 403, 404, 404, 403, 403)}
    ),
    "api_models.upload_version": Row(
        "/api/v1/models/nothing/versions", {"POST": (401, 403, 404, 404, 403, 403)}
    ),
    # no records of iris in the matrix's database: a caller who may use it gets no_data
    "api_models.model_drift": Row(
        "/api/v1/models/iris/drift", {"GET": (401, 422, 422, 422, 422, 422)}
    ),
    "api_models.model_monitoring": Row(
        "/api/v1/models/iris/monitoring", {"GET": (401, 200, 200, 200, 200, 200)}
    ),
    "api_models.model_report": Row(
        "/api/v1/models/iris/report", {"GET": (401, 200, 200, 200, 200, 200)}
    ),
    "api_models.get_version": Row(
        "/api/v1/models/iris/versions/1", {"GET": (404, 200, 200, 200, 200, 200)}
    ),
    "api_models.edit_schema": Row(
        "/api/v1/models/nothing/versions/1/schema", {"PUT": (401, 403, 422, 422, 403, 403)}
    ),
    "api_models.archive": Row(
        "/api/v1/models/nothing/versions/1/archive", {"POST": (401, 403, 404, 404, 403, 403)}
    ),
    "api_models.put_alias": Row(
        "/api/v1/models/nothing/aliases/champion", {"PUT": (401, 403, 422, 422, 403, 403)}
    ),
    "api_models.delete_alias": Row(
        "/api/v1/models/nothing/aliases/champion", {"DELETE": (401, 403, 404, 404, 403, 403)}
    ),
    # canary and shadow: an empty body is refused (422) for an admin before the model is read
    "api_models.put_canary": Row(
        "/api/v1/models/nothing/canary", {"PUT": (401, 403, 422, 422, 403, 403)}
    ),
    "api_models.promote": Row(
        "/api/v1/models/nothing/canary/promote", {"POST": (401, 403, 404, 404, 403, 403)}
    ),
    "api_models.rollback": Row(
        "/api/v1/models/nothing/canary/rollback", {"POST": (401, 403, 404, 404, 403, 403)}
    ),
    # following MLflow: admins only; the webhook is off (404) without its shared secret
    "api_models.put_follow": Row(
        "/api/v1/models/nothing/follow", {"PUT": (401, 403, 422, 422, 403, 403)}
    ),
    "api_models.delete_follow": Row(
        "/api/v1/models/nothing/follow", {"DELETE": (401, 403, 404, 404, 403, 403)}
    ),
    "api_models.sync": Row(
        "/api/v1/models/nothing/follow/sync", {"POST": (401, 403, 404, 404, 403, 403)}
    ),
    "api_models.webhook": Row("/api/v1/mlflow/webhook", {"POST": (404,) * 6}),
    "api_datasets.list_datasets": Row("/api/v1/datasets", {"GET": (401, 200, 200, 200, 403, 403)}),
    "api_datasets.get_dataset": Row(
        "/api/v1/datasets/nothing", {"GET": (401, 404, 404, 404, 403, 403)}
    ),
    "api_datasets.upload_dataset": Row(
        "/api/v1/datasets", {"POST": (401, 403, 415, 415, 403, 403)}
    ),
    # predictions: public models for anyone, private ones for signed-in callers
    "api_models.predict": Row(
        "/api/v1/models/iris/predict", {"POST": (404, 422, 422, 422, 422, 422)}
    ),
    "api_models.predict_version": Row(
        "/api/v1/models/iris/versions/1/predict", {"POST": (404, 422, 422, 422, 422, 422)}
    ),
    "api_predictions.list_predictions": Row(
        "/api/v1/predictions", {"GET": (401, 200, 200, 200, 200, 200)}
    ),
    # the empty body is refused before the record is looked up
    "api_predictions.give_feedback": Row(
        "/api/v1/predictions/{record}/feedback", {"POST": (401, 422, 422, 422, 422, 422)}
    ),
    "api_predictions.get_prediction": Row(
        "/api/v1/predictions/{record}", {"GET": (401, 404, 200, 200, 404, 404)}
    ),
    # the inference protocol: public models for anyone, private ones for Bearer tokens only
    # (a session cookie does not count on /v2), so a model nobody has is 404 for every caller
    "v2.server_metadata": Row("/v2", {"GET": (200, 200, 200, 200, 200, 200)}),
    "v2.live": Row("/v2/health/live", {"GET": (200, 200, 200, 200, 200, 200)}),
    "v2.ready": Row("/v2/health/ready", {"GET": (200, 200, 200, 200, 200, 200)}),
    "v2.model_metadata": Row("/v2/models/iris", {"GET": (404, 404, 404, 200, 200, 200)}),
    "v2.version_metadata": Row(
        "/v2/models/iris/versions/1", {"GET": (404, 404, 404, 200, 200, 200)}
    ),
    "v2.model_ready": Row("/v2/models/iris/ready", {"GET": (404, 404, 404, 200, 200, 200)}),
    "v2.version_ready": Row(
        "/v2/models/iris/versions/1/ready", {"GET": (404, 404, 404, 200, 200, 200)}
    ),
    "v2.infer": Row("/v2/models/iris/infer", {"POST": (404, 404, 404, 400, 400, 400)}),
    "v2.version_infer": Row(
        "/v2/models/iris/versions/1/infer", {"POST": (404, 404, 404, 400, 400, 400)}
    ),
}


def _methods(rule: Rule) -> set[str]:
    return set(rule.methods) - {"HEAD", "OPTIONS"}


def test_every_route_is_in_the_matrix(app):
    rules = {rule.endpoint: rule for rule in app.url_map.iter_rules()}
    missing = sorted(set(rules) - set(MATRIX))
    assert not missing, f"routes without an authorisation row in MATRIX: {missing}"
    stale = sorted(set(MATRIX) - set(rules))
    assert not stale, f"MATRIX rows for routes that no longer exist: {stale}"
    for endpoint, rule in rules.items():
        assert _methods(rule) == set(MATRIX[endpoint].expect), endpoint
        # The sample path really reaches this endpoint.
        adapter = app.url_map.bind("localhost")
        for method in MATRIX[endpoint].expect:
            matched, _ = adapter.match(MATRIX[endpoint].path.format(record=NO_ID), method=method)
            assert matched == endpoint, (endpoint, MATRIX[endpoint].path)


def _signed_in(app: Flask, email: str) -> FlaskClient:
    client = app.test_client()
    assert login(client, email).status_code == 302
    return client


def _record_of(app: Flask, user_id: int) -> int:
    """A prediction record of ``user_id``, made directly: a member the callers are not."""
    from modelport.extensions import db
    from modelport.models.predictions import PredictionRecord

    with app.app_context():
        record = PredictionRecord(
            request_id="r",
            user_id=user_id,
            model_name="iris",
            source="api",
            status="ok",
            inputs=[{"secret": 1}],
        )
        db.session.add(record)
        db.session.commit()
        return record.id


def observed_statuses(app: Flask) -> dict[tuple[str, str], tuple[int | str, ...]]:
    """Every route and method of MATRIX, called by each of ROLES: the status each got (a
    redirect to the sign-in page as ``LOGIN``)."""
    make_user(app, "user@example.com", name="User")
    admin_id = make_user(app, "admin@example.com", name="Admin", role="admin")
    user_id = make_user(app, "member@example.com", name="Member")
    record = _record_of(app, make_user(app, "other@example.com", name="Other"))
    emails = {"user": "user@example.com", "admin": "admin@example.com"}
    clients = {
        "anonymous": app.test_client(),
        "user": _signed_in(app, emails["user"]),
        "admin": _signed_in(app, emails["admin"]),
    }
    # One CSRF token per signed-in (or anonymous) session, valid until the session changes.
    csrf = {
        role: csrf_token(client, "/auth/login" if role == "anonymous" else "/account")
        for role, client in clients.items()
    }
    bearers = {
        "admin full token": issue_token(app, admin_id, ["full"], name="full"),
        "admin predict token": issue_token(app, admin_id, ["predict"], name="predict"),
        "user token": issue_token(app, user_id, ["predict"]),
    }
    seen: dict[tuple[str, str], tuple[int | str, ...]] = {}
    for endpoint, row in MATRIX.items():
        path = row.path.format(record=record)
        for method in row.expect:
            statuses: list[int | str] = []
            for role in ROLES:
                if role in bearers:  # a program: no cookies, no CSRF token
                    client = app.test_client()
                    headers = {"Authorization": f"Bearer {bearers[role]}"}
                else:
                    client = clients[role]
                    headers = {} if method == "GET" else {"X-CSRFToken": csrf[role]}
                kwargs = {"json": {}} if path.startswith("/api/") and method == "POST" else {}
                response = client.open(path, method=method, headers=headers, **kwargs)
                login_page = (response.location or "").startswith("/auth/login")
                statuses.append(
                    LOGIN if response.status_code == 302 and login_page else response.status_code
                )
                if (
                    row.ends_session and role in clients
                ):  # the session, and its CSRF token, are gone
                    if role in emails:
                        clients[role] = _signed_in(app, emails[role])
                    page = "/account" if role in emails else "/auth/login"
                    csrf[role] = csrf_token(clients[role], page)
            seen[endpoint, method] = tuple(statuses)
    return seen


@pytest.mark.db
def test_each_caller_gets_the_expected_status(app_factory, demo_models):
    # Many empty sign-up and reset POSTs from one address: not what this test is about.
    app = app_factory(SIGNUP_LIMIT="1000 per hour")
    register_demo(app, demo_models, "iris", visibility="private")
    seen = observed_statuses(app)
    failures = [
        f"{method:6} {MATRIX[endpoint].path} ({endpoint}): {role}: {got}, want {want}"
        for (endpoint, method), statuses in seen.items()
        for role, got, want in zip(ROLES, statuses, MATRIX[endpoint].expect[method], strict=True)
        if got != want
    ]
    assert not failures, "\n".join(failures)
