"""CSRF on every cookie-authenticated change, and no GET that changes anything (21, 22)."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from modelport.extensions import db
from tests.support.cookies import remember_cookie, replay_remember
from tests.support.databases import rows
from tests.support.datasets import GOOD_CSV
from tests.support.html import csrf_token, text
from tests.support.mail import reset_link
from tests.support.models import IRIS_ROW, register_demo
from tests.support.tokens import issue_token, make_token
from tests.support.users import NEW_PASSWORD, PASSWORD, is_signed_in, login, make_user, user_row

CSRF_MESSAGE = "CSRF check failed"
# Columns a GET may update as bookkeeping (throttled to once a minute), not user state.
BOOKKEEPING = {"last_seen_at", "last_used_at"}


def snapshot(app: Flask) -> dict[str, list[tuple]]:
    """Every row of every table, minus bookkeeping columns."""
    with app.app_context(), db.engine.connect() as connection:
        return {
            table.name: [
                tuple(v for k, v in row._mapping.items() if k not in BOOKKEEPING)
                for row in connection.execute(sa.select(table).order_by(*table.primary_key.columns))
            ]
            for table in db.metadata.sorted_tables
        }


@dataclass
class Case:
    client: FlaskClient
    path: str
    data: dict[str, str]
    token_page: str = "/"
    files: dict[str, tuple[bytes, str]] = field(default_factory=dict)  # field: (bytes, name)

    def form(self) -> dict[str, Any]:
        """The fields with fresh file objects (a posted file is read to its end)."""
        uploads = {k: (io.BytesIO(body), name) for k, (body, name) in self.files.items()}
        return {**self.data, **uploads}


def _signed_in(app: Flask, email: str = "ann@example.com", **kwargs: Any) -> FlaskClient:
    client = app.test_client()
    assert login(client, email, **kwargs).status_code == 302
    return client


def _anonymous(app: Flask) -> FlaskClient:
    return app.test_client()


def case_signup(app: Flask, mailbox: Any) -> Case:
    data = {"email": "new@example.com", "name": "New", "password": PASSWORD, "password2": PASSWORD}
    return Case(_anonymous(app), "/auth/signup", data, "/auth/signup")


def case_login(app: Flask, mailbox: Any) -> Case:
    data = {"email": "ann@example.com", "password": PASSWORD}
    return Case(_anonymous(app), "/auth/login", data, "/auth/login")


def case_logout(app: Flask, mailbox: Any) -> Case:
    return Case(_signed_in(app), "/auth/logout", {})


def case_reset_request(app: Flask, mailbox: Any) -> Case:
    return Case(_anonymous(app), "/auth/reset", {"email": "ann@example.com"}, "/auth/reset")


def case_reset(app: Flask, mailbox: Any) -> Case:
    client = _anonymous(app)
    path = reset_link(client, mailbox, "ann@example.com")
    return Case(client, path, {"password": NEW_PASSWORD, "password2": NEW_PASSWORD}, path)


def case_reauth(app: Flask, mailbox: Any) -> Case:
    first = _signed_in(app, remember=True)
    restored = replay_remember(app, remember_cookie(app, first))
    return Case(restored, "/auth/reauth", {"password": PASSWORD}, "/auth/reauth")


def case_password(app: Flask, mailbox: Any) -> Case:
    data = {
        "current_password": PASSWORD,
        "new_password": NEW_PASSWORD,
        "new_password2": NEW_PASSWORD,
    }
    return Case(_signed_in(app), "/account/password", data, "/account")


def case_email(app: Flask, mailbox: Any) -> Case:
    data = {"email": "ann.new@example.com", "password": PASSWORD}
    return Case(_signed_in(app), "/account/email", data, "/account")


def case_delete(app: Flask, mailbox: Any) -> Case:
    return Case(_signed_in(app), "/account/delete", {"password": PASSWORD}, "/account")


def case_token(app: Flask, mailbox: Any) -> Case:
    data = {"name": "laptop", "scope": "predict"}
    return Case(_signed_in(app), "/account/tokens", data, "/account/tokens")


def case_revoke(app: Flask, mailbox: Any) -> Case:
    make_token(app)
    token_id = rows(app, "api_tokens")[0]["id"]
    return Case(_signed_in(app), f"/account/tokens/{token_id}/revoke", {}, "/account/tokens")


def _admin(app: Flask) -> FlaskClient:
    make_user(app, "root@example.com", name="Root", role="admin")
    return _signed_in(app, "root@example.com")


def case_admin_role(app: Flask, mailbox: Any) -> Case:
    admin = _admin(app)
    ann = user_row(app, "ann@example.com")["id"]
    return Case(admin, f"/admin/users/{ann}/role", {"role": "admin"}, "/admin/users")


def case_admin_disable(app: Flask, mailbox: Any) -> Case:
    admin = _admin(app)
    ann = user_row(app, "ann@example.com")["id"]
    return Case(admin, f"/admin/users/{ann}/disable", {}, "/admin/users")


def case_admin_enable(app: Flask, mailbox: Any) -> Case:
    admin = _admin(app)
    ann = user_row(app, "ann@example.com")["id"]
    response = admin.post(
        f"/admin/users/{ann}/disable", data={"csrf_token": csrf_token(admin, "/admin/users")}
    )
    assert response.status_code == 302
    return Case(admin, f"/admin/users/{ann}/enable", {}, "/admin/users")


def case_language(app: Flask, mailbox: Any) -> Case:
    return Case(_anonymous(app), "/language", {"lang": "ko", "next": "/"})


# The serving pages: the iris demo model is registered (version 1, alias champion).
IRIS_FIELDS = {f"feature:{name}": str(value) for name, value in IRIS_ROW.items()}
IRIS_CSV = b"sepal_length,sepal_width,petal_length,petal_width\n5.1,3.5,1.4,0.2\n"


def case_predict_form(app: Flask, mailbox: Any) -> Case:
    return Case(_anonymous(app), "/models/iris", IRIS_FIELDS, "/models/iris")


def case_predict_batch(app: Flask, mailbox: Any) -> Case:
    files = {"file": (IRIS_CSV, "rows.csv")}
    return Case(_anonymous(app), "/models/iris/batch", {}, "/models/iris/batch", files)


def case_model_new(app: Flask, mailbox: Any) -> Case:
    data = {"name": "flowers", "task": "classification", "visibility": "public"}
    return Case(_admin(app), "/admin/models/new", data, "/admin/models/new")


def case_model_upload(app: Flask, mailbox: Any) -> Case:
    # The files of the registered iris version, read back from the artifact store.
    from modelport.serving import registry

    with app.app_context():
        version = registry.get_model("iris").versions[0]
        store = registry.artifact_store()
        files = {
            "artifact": (store.path(version.artifact_sha256).read_bytes(), "iris.skops"),
            "sample": (store.path(version.sample_sha256).read_bytes(), "sample.csv"),
        }
    path = "/admin/models/iris/upload"
    return Case(_admin(app), path, {}, path, files)


def case_dataset_upload(app: Flask, mailbox: Any) -> Case:
    files = {"file": (GOOD_CSV, "people.csv")}
    return Case(_admin(app), "/datasets", {"name": "people"}, "/datasets", files)


def case_record_feedback(app: Flask, mailbox: Any) -> Case:
    # Ann's one-row prediction, through the API with a token of hers (no cookie).
    ann = user_row(app, "ann@example.com")["id"]
    token = issue_token(app, ann, scopes=["predict"])
    answer = app.test_client().post(
        "/api/v1/models/iris/predict",
        json={"inputs": IRIS_ROW},
        headers={"Authorization": f"Bearer {token}"},
    )
    page = f"/predictions/{answer.get_json()['record_id']}"
    return Case(_signed_in(app), f"{page}/feedback", {"actual": "setosa"}, page)


def case_model_alias(app: Flask, mailbox: Any) -> Case:
    data = {"alias": "challenger", "version": "1"}
    return Case(_admin(app), "/admin/models/iris/aliases", data, "/admin/models")


def case_model_canary(app: Flask, mailbox: Any) -> Case:
    # Version 1 is also the challenger, so a canary share can be set.
    from modelport.serving import registry

    with app.app_context():
        registry.set_alias(registry.get_model("iris"), "challenger", 1)
    data = {"action": "shares", "share": "10"}
    return Case(_admin(app), "/admin/models/iris/canary", data, "/admin/models")


def case_model_follow(app: Flask, mailbox: Any) -> Case:
    # iris follows an MLflow model; the form stops that (no MLflow needed).
    import sqlalchemy as sa

    from modelport.extensions import db
    from modelport.models import RegisteredModel

    with app.app_context():
        db.session.execute(sa.update(RegisteredModel).values(mlflow_model="iris"))
        db.session.commit()
    data = {"action": "unfollow", "mlflow_model": "iris"}
    return Case(_admin(app), "/admin/models/iris/follow", data, "/admin/models")


def case_model_archive(app: Flask, mailbox: Any) -> Case:
    return Case(_admin(app), "/admin/models/iris/versions/1/archive", {}, "/admin/models")


def case_model_schema(app: Flask, mailbox: Any) -> Case:
    # The editor's fields as the page fills them in, with one description changed.
    from modelport.serving import registry
    from modelport.serving.schema import InputSchema
    from modelport.serving.web.forms import schema_rows

    with app.app_context():
        stored = registry.get_model("iris").versions[0].input_schema
    data: dict[str, str] = {}
    for i, row in enumerate(schema_rows(InputSchema.from_dict(stored))):
        data |= {f"{key}-{i}": str(row[key]) for key in ("type", "minimum", "maximum")}
        data |= {f"categories-{i}": row["categories"], f"description-{i}": row["description"]}
        if row["required"]:
            data[f"required-{i}"] = "y"
    data["description-0"] = "Sepal length in cm"
    path = "/admin/models/iris/versions/1/schema"
    return Case(_admin(app), path, data, path)


CASES: dict[str, Callable[[Flask, Any], Case]] = {
    "signup": case_signup,
    "login": case_login,
    "logout": case_logout,
    "reset-request": case_reset_request,
    "reset": case_reset,
    "reauth": case_reauth,
    "password": case_password,
    "email": case_email,
    "delete": case_delete,
    "token-create": case_token,
    "token-revoke": case_revoke,
    "admin-role": case_admin_role,
    "admin-disable": case_admin_disable,
    "admin-enable": case_admin_enable,
    "language": case_language,
    "predict-form": case_predict_form,
    "predict-batch": case_predict_batch,
    "model-new": case_model_new,
    "model-upload": case_model_upload,
    "model-alias": case_model_alias,
    "model-archive": case_model_archive,
    "model-canary": case_model_canary,
    "model-follow": case_model_follow,
    "model-schema": case_model_schema,
    "dataset-upload": case_dataset_upload,
    "record-feedback": case_record_feedback,
}
# Cases that need the demo models: trained once per test process, registered per test.
WITH_MODELS = {
    "predict-form",
    "predict-batch",
    "model-upload",
    "model-alias",
    "model-archive",
    "model-canary",
    "model-follow",
    "model-schema",
    "record-feedback",
}


def _state(app: Flask, case: Case, mailbox: Any) -> tuple:
    with case.client.session_transaction() as data:
        language = data.get("lang")
    return snapshot(app), is_signed_in(case.client), language, len(mailbox.messages)


@pytest.mark.db
@pytest.mark.parametrize("name", list(CASES))
def test_form_posts_need_a_valid_csrf_token(app, mailbox, request, name):
    make_user(app)
    if name in WITH_MODELS:
        register_demo(app, request.getfixturevalue("demo_models"), "iris")
    case = CASES[name](app, mailbox)
    valid = csrf_token(case.client, case.token_page)
    wrong = csrf_token(app.test_client(), "/auth/login")  # well-formed, another session's
    assert wrong != valid
    before = _state(app, case, mailbox)

    for token in (None, wrong, "not-a-token"):
        data = case.form()
        if token is not None:
            data["csrf_token"] = token
        response = case.client.post(case.path, data=data)
        assert response.status_code == 400, (token, text(response))
        assert CSRF_MESSAGE in text(response)
        assert _state(app, case, mailbox) == before

    response = case.client.post(case.path, data={**case.form(), "csrf_token": valid})
    assert response.status_code in (200, 302), text(response)
    assert CSRF_MESSAGE not in text(response)
    assert _state(app, case, mailbox) != before


def test_every_form_endpoint_is_covered_by_the_csrf_test(app):
    """A new POST page must be added to CASES (the API is tested with its own CSRF rules)."""
    posting = {
        rule.endpoint
        for rule in app.url_map.iter_rules()
        if "POST" in rule.methods and not rule.rule.startswith(("/api", "/v2"))
    }
    assert posting == {
        "auth.signup",
        "auth.login",
        "auth.logout",
        "auth.reset_request",
        "auth.reset_password",
        "auth.reauthenticate",
        "account.change_password",
        "account.change_email",
        "account.delete",
        "account.tokens",
        "account.revoke",
        "admin.change_role",
        "admin.disable",
        "admin.enable",
        "pages.set_language",
        "serving.model_page",
        "serving.batch",
        "serving.admin_new_model",
        "serving.admin_upload",
        "serving.admin_alias",
        "serving.admin_archive",
        "serving.admin_canary",
        "serving.admin_follow",
        "serving.admin_schema",
        "analytics.upload",
        "serving.record_feedback",
    }
    assert len(CASES) == len(posting)


# --- 22: sensitive actions never use GET ---------------------------------------------------


ACTIONS = [
    "/auth/logout",
    "/account/delete",
    "/account/tokens/1/revoke",
    "/account/password",
    "/account/email",
    "/admin/users/1/role",
    "/admin/users/1/disable",
    "/admin/users/1/enable",
    "/language",
    "/admin/models/iris/aliases",
    "/admin/models/iris/versions/1/archive",
]


@pytest.mark.db
def test_get_on_an_action_is_405(app):
    make_user(app, role="admin")
    client = app.test_client()
    login(client)
    make_token(app)
    before = snapshot(app)
    for path in ACTIONS:
        response = client.get(path)
        assert response.status_code == 405, path
        assert "POST" in response.headers["Allow"]
        assert "Error 405" in text(response)
    assert snapshot(app) == before
    assert is_signed_in(client)


# Pages whose URL shows a form on GET and takes it on POST: GET only renders.
FORM_PAGES = {
    "auth.signup",
    "auth.login",
    "auth.reauthenticate",
    "auth.reset_request",
    "auth.reset_password",
    "account.tokens",
    "serving.model_page",
    "serving.batch",
    "serving.admin_new_model",
    "serving.admin_upload",
    "serving.admin_schema",
}
# GET links from e-mails that change state by design: only with a valid, signed,
# single-use token that was sent to the mailbox (an e-mail client follows links with GET).
LINK_CONFIRMATIONS = {"auth.confirm_email", "account.confirm_email_change"}


def test_only_form_pages_share_a_url_between_get_and_post(app):
    both = {
        rule.endpoint
        for rule in app.url_map.iter_rules()
        if "GET" in rule.methods
        and rule.methods & {"POST", "PUT", "PATCH", "DELETE"}
        and not rule.rule.startswith(("/api", "/v2"))
    }
    assert both == FORM_PAGES


@pytest.mark.db
def test_no_get_changes_state_except_the_email_link_confirmations(app, mailbox):
    """GET every route in url_map as a signed-in admin; record which ones changed the DB."""
    from modelport.auth import accounts
    from modelport.auth.links import make_link_token

    make_user(app, role="admin")
    with app.app_context():
        unconfirmed = accounts.create_user("new@example.com", "New", PASSWORD, confirmed=False)
        ann = accounts.find_user_by_email("ann@example.com")
        links = {
            "auth.confirm_email": make_link_token(unconfirmed, "confirm"),
            "account.confirm_email_change": make_link_token(ann, "email", e="ann2@example.com"),
            "auth.reset_password": make_link_token(ann, "reset"),
        }
    make_token(app)
    client = app.test_client()
    login(client)
    token_id = rows(app, "api_tokens")[0]["id"]

    changed = set()
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods:
            continue
        values: dict[str, Any] = {}
        for converter, argument in re.findall(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>", rule.rule):
            if argument == "token" and rule.endpoint in links:
                values[argument] = links[rule.endpoint]
            elif converter == "int":
                values[argument] = token_id
            else:
                values[argument] = "x"
        with app.test_request_context():
            from flask import url_for

            url = url_for(rule.endpoint, **values)
        before = snapshot(app)
        response = client.get(url)
        assert response.status_code < 500, (url, response.status_code)
        if snapshot(app) != before:
            changed.add(rule.endpoint)
    assert changed == LINK_CONFIRMATIONS
