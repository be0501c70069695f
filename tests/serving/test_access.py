"""Access to models and the registry (issue 3, item 7).

Public models: anyone predicts, rate-limited per address (anonymous) or per user. Private
models: signed-in users and tokens only; anonymous callers cannot tell they exist. The
registry's write endpoints are for administrators (a full-scope token or a session + CSRF).
"""

from __future__ import annotations

import hashlib
import io
import json
import pickle
import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from tests.support.databases import table_counts
from tests.support.html import csrf_token
from tests.support.http import assert_api_error, bearer
from tests.support.models import DIABETES_ROW, IRIS_ROW, register_demo
from tests.support.tokens import issue_token
from tests.support.users import login, make_user

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning")

PUBLIC = "iris"
PRIVATE = "diabetes"


def _predict(client: FlaskClient, name: str, row: dict, **kwargs: Any) -> Any:
    return client.post(f"/api/v1/models/{name}/predict", json={"inputs": row}, **kwargs)


@pytest.fixture
def make_app(app_factory: Any, demo_models: dict[str, Any]) -> Any:
    """An app with a public iris and a private diabetes model, under the given settings."""

    def make(**settings: str) -> Flask:
        app = app_factory(**settings)
        register_demo(app, demo_models, PUBLIC)
        register_demo(app, demo_models, PRIVATE, visibility="private")
        return app

    return make


def session_client(app: Flask, email: str) -> tuple[FlaskClient, str]:
    """A signed-in client and its CSRF token."""
    client = app.test_client()
    assert login(client, email).status_code == 302
    return client, csrf_token(client, "/account")


# --- public models: anyone, rate-limited ---------------------------------------------------


@pytest.mark.db
def test_anonymous_may_predict_a_public_model_and_is_rate_limited(make_app: Any) -> None:
    app = make_app(PREDICT_LIMIT_ANONYMOUS="3 per minute")
    client = app.test_client()
    for _ in range(3):
        response = _predict(client, PUBLIC, IRIS_ROW)  # no cookie, no CSRF token
        assert response.status_code == 200, response.get_data(as_text=True)
    assert client.get_cookie(app.config["SESSION_COOKIE_NAME"]) is None
    before = table_counts(app)
    error = assert_api_error(_predict(client, PUBLIC, IRIS_ROW), 429, "rate_limited")
    assert "3 per 1 minute" in error["message"]
    # The limit covers every predict route, versions and aliases included.
    assert _predict(client, f"{PUBLIC}@champion", IRIS_ROW).status_code == 429
    versioned = client.post(f"/api/v1/models/{PUBLIC}/versions/1/predict", json={})
    assert versioned.status_code == 429
    assert table_counts(app) == before
    # A signed-in caller does not spend the anonymous budget of its address.
    make_user(app)
    token = issue_token(app, make_user(app, "bob@example.com", name="Bob"), ["predict"])
    assert _predict(client, PUBLIC, IRIS_ROW, headers=bearer(token)).status_code == 200


def test_users_and_tokens_have_their_own_limit(make_app: Any) -> None:
    app = make_app(PREDICT_LIMIT_USER="3 per minute", PREDICT_LIMIT_ANONYMOUS="1 per minute")
    ann = make_user(app)
    bob = make_user(app, "bob@example.com", name="Bob")
    ann_token = issue_token(app, ann, ["predict"])
    cookie_client, csrf = session_client(app, "ann@example.com")
    # Ann's token and Ann's session share Ann's budget, larger than the anonymous one.
    for _ in range(2):
        assert (
            _predict(app.test_client(), PUBLIC, IRIS_ROW, headers=bearer(ann_token)).status_code
            == 200
        )
    ok = _predict(cookie_client, PRIVATE, DIABETES_ROW, headers={"X-CSRFToken": csrf})
    assert ok.status_code == 200
    refused = _predict(app.test_client(), PUBLIC, IRIS_ROW, headers=bearer(ann_token))
    assert_api_error(refused, 429, "rate_limited")
    refused = _predict(cookie_client, PRIVATE, DIABETES_ROW, headers={"X-CSRFToken": csrf})
    assert_api_error(refused, 429, "rate_limited")
    # Bob is not affected, with a session or a token.
    bob_client, bob_csrf = session_client(app, "bob@example.com")
    assert (
        _predict(bob_client, PUBLIC, IRIS_ROW, headers={"X-CSRFToken": bob_csrf}).status_code == 200
    )
    bob_token = issue_token(app, bob, ["predict"])
    assert (
        _predict(app.test_client(), PUBLIC, IRIS_ROW, headers=bearer(bob_token)).status_code == 200
    )


# --- private models: signed-in users and tokens ---------------------------------------------


@pytest.mark.db
def test_private_model_is_invisible_to_anonymous_callers(make_app: Any) -> None:
    app = make_app()
    client = app.test_client()
    before = table_counts(app)
    for path in (PRIVATE, f"{PRIVATE}@champion"):
        error = assert_api_error(_predict(client, path, DIABETES_ROW), 404, "model_not_found")
        assert "private" not in error["message"] or PRIVATE in error["message"]
    versioned = client.post(
        f"/api/v1/models/{PRIVATE}/versions/1/predict", json={"inputs": DIABETES_ROW}
    )
    assert_api_error(versioned, 404, "model_not_found")
    assert_api_error(client.get(f"/api/v1/models/{PRIVATE}"), 404)
    assert_api_error(client.get(f"/api/v1/models/{PRIVATE}/versions/1"), 404)
    listed = client.get("/api/v1/models").get_json()
    assert [m["name"] for m in listed["items"]] == [PUBLIC]
    assert listed["total"] == 1
    # Whether a private model exists or not, an anonymous caller gets the same answer.
    absent = _predict(client, "nosuchmodel", DIABETES_ROW)
    assert (absent.status_code, absent.get_json()["error"]["code"]) == (404, "model_not_found")
    assert table_counts(app) == before


ABSENT = "nosuchmodel"
V2_ROW = {
    "inputs": [
        {"name": n, "shape": [1], "datatype": "FP64", "data": [v]} for n, v in DIABETES_ROW.items()
    ]
}
CSV_ROW = ",".join(DIABETES_ROW) + "\n" + ",".join(str(v) for v in DIABETES_ROW.values()) + "\n"


def _model_requests(name: str) -> list[tuple[str, str, dict[str, Any]]]:
    """Every way to name a model on the pages, the JSON API and /v2: (method, path, kwargs),
    with versions and aliases that exist for the private model and ones that do not."""
    api, v2 = f"/api/v1/models/{name}", f"/v2/models/{name}"
    predict = {"json": {"inputs": DIABETES_ROW}}
    return [
        ("POST", f"{api}/predict", predict),
        ("POST", f"{api}@champion/predict", predict),
        ("POST", f"{api}@nope/predict", predict),
        ("POST", f"{api}/versions/1/predict", predict),
        ("POST", f"{api}/versions/7/predict", predict),
        ("POST", f"{api}/predict", {"data": CSV_ROW, "content_type": "text/csv"}),
        ("GET", api, {}),
        ("GET", f"{api}/versions/1", {}),
        ("GET", f"{api}/versions/7", {}),
        ("GET", v2, {}),
        ("GET", f"{v2}/versions/1", {}),
        ("GET", f"{v2}/versions/7/ready", {}),
        ("GET", f"/v2/models/{name}@nope/ready", {}),
        ("POST", f"{v2}/infer", {"json": V2_ROW}),
        ("POST", f"{v2}/versions/1/infer", {"json": V2_ROW}),
        ("GET", f"/models/{name}", {}),
        ("GET", f"/models/{name}/batch", {}),
        ("GET", f"/models/{name}/example.csv", {}),
    ]


# A form's CSRF token is signed with the time in seconds: two pages a second apart differ there.
_CSRF_VALUE = re.compile(r'(name="csrf_token"[^>]*value=")[^"]*"')


def _unsigned(response: Any) -> str:
    return _CSRF_VALUE.sub(r'\1…"', response.get_data(as_text=True))


def _same_answers(client: FlaskClient, headers: dict[str, str] | None = None) -> list[str]:
    """Where the private model and a model that does not exist get different answers."""
    differences = []
    for (method, path, kwargs), (_, absent_path, absent_kwargs) in zip(
        _model_requests(PRIVATE), _model_requests(ABSENT), strict=True
    ):
        private = client.open(path, method=method, headers=headers, **kwargs)
        absent = client.open(absent_path, method=method, headers=headers, **absent_kwargs)
        seen = (private.status_code, _unsigned(private).replace(PRIVATE, ABSENT))
        other = (absent.status_code, _unsigned(absent))
        if private.status_code != 404 or seen != other:
            at = next(
                (i for i, (a, b) in enumerate(zip(seen[1], other[1], strict=False)) if a != b), 0
            )
            differences.append(
                f"{method} {path}: {seen[0]} against {other[0]}, from character {at}: "
                f"{seen[1][at : at + 200]!r} against {other[1][at : at + 200]!r}"
            )
    return differences


@pytest.mark.db
def test_a_private_model_answers_as_no_model_at_all_on_every_channel(make_app: Any) -> None:
    """Apart from the name, nothing tells a private model from a model that does not exist,
    whichever version or alias is asked for, on the pages, the JSON API and /v2."""
    app = make_app()
    make_user(app)
    client, _csrf = session_client(app, "ann@example.com")
    before = table_counts(app)
    assert _same_answers(app.test_client()) == []
    # /v2 takes no session (it has no CSRF check): a signed-in member is anonymous there.
    v2 = [path for path in _same_answers(client) if " /v2/" in path]
    assert v2 == []
    assert table_counts(app) == before


@pytest.mark.db
def test_a_private_model_that_cannot_be_loaded_still_answers_as_no_model(
    make_app: Any, tmp_path: Any
) -> None:
    import shutil

    app = make_app(ARTIFACTS_DIR=str(tmp_path / "store"))
    shutil.rmtree(tmp_path / "store")  # every version now fails to load: 503 to its users
    token = bearer(issue_token(app, make_user(app)))
    ready = app.test_client().get(f"/v2/models/{PRIVATE}/ready", headers=token)
    assert ready.status_code == 503
    assert _same_answers(app.test_client()) == []


@pytest.mark.db
def test_private_model_for_tokens_and_sessions(make_app: Any) -> None:
    app = make_app()
    user_id = make_user(app)
    token = issue_token(app, user_id, ["predict"])
    response = _predict(app.test_client(), PRIVATE, DIABETES_ROW, headers=bearer(token))
    assert response.status_code == 200, response.get_data(as_text=True)
    listed = app.test_client().get("/api/v1/models", headers=bearer(token)).get_json()
    assert [m["name"] for m in listed["items"]] == [PRIVATE, PUBLIC]
    assert (
        app.test_client().get(f"/api/v1/models/{PRIVATE}", headers=bearer(token)).status_code == 200
    )

    client, csrf = session_client(app, "ann@example.com")
    response = _predict(client, PRIVATE, DIABETES_ROW, headers={"X-CSRFToken": csrf})
    assert response.status_code == 200, response.get_data(as_text=True)
    before = table_counts(app)
    for headers in ({}, {"X-CSRFToken": "forged"}):
        refused = _predict(client, PRIVATE, DIABETES_ROW, headers=headers)
        assert_api_error(refused, 400, "csrf_failed")
        # Public models too: a cookie could carry someone's sign-in.
        assert_api_error(_predict(client, PUBLIC, IRIS_ROW, headers=headers), 400, "csrf_failed")
    assert table_counts(app) == before


# --- the registry's write endpoints: administrators only ------------------------------------


def _iris_files(demo_models: dict[str, Any]) -> tuple[bytes, str, bytes]:
    item = demo_models["iris"]
    return item.artifact.read_bytes(), item.artifact.name, item.sample.to_csv(index=False).encode()


def _schema_edit(app: Flask, name: str) -> dict[str, Any]:
    from modelport.serving import registry

    with app.app_context():
        schema = registry.get_version(registry.get_model(name), 1).input_schema
    schema = json.loads(json.dumps(schema))
    schema["features"][0]["description"] = "Edited by an administrator."
    return schema


def admin_requests(
    app: Flask, demo_models: dict[str, Any], name: str
) -> list[tuple[str, str, dict[str, Any], int]]:
    """Every registry write, in an order that succeeds for an admin: (method, path, kwargs, status)."""
    artifact, filename, sample = _iris_files(demo_models)
    base = f"/api/v1/models/{name}"

    def upload() -> dict[str, Any]:
        return {
            "data": {
                "artifact": (io.BytesIO(artifact), filename),
                "sample": (io.BytesIO(sample), "sample.csv"),
                "alias": "challenger",
            },
            "content_type": "multipart/form-data",
        }

    return [
        ("POST", "/api/v1/models", {"json": {"name": name, "task": "classification"}}, 201),
        ("PATCH", base, {"json": {"title": "Irises, again"}}, 200),
        ("POST", f"{base}/versions", upload(), 201),
        ("PUT", f"{base}/aliases/champion", {"json": {"version": 1}}, 200),
        ("PUT", f"{base}/versions/1/schema", {"json": _schema_edit(app, PUBLIC)}, 200),
        ("DELETE", f"{base}/aliases/champion", {}, 204),
        ("POST", f"{base}/versions/1/archive", {}, 200),
    ]


def _denied_requests(app: Flask, demo_models: dict[str, Any]) -> list[tuple[str, str, dict]]:
    # Aimed at the existing public model, so that only the caller's rights can refuse them.
    requests = admin_requests(app, demo_models, PUBLIC)
    requests[0] = ("POST", "/api/v1/models", {"json": {"name": "other", "task": "regression"}}, 0)
    return [(method, path, kwargs) for method, path, kwargs, _ in requests]


def _send(client: FlaskClient, method: str, path: str, kwargs: dict, headers: dict) -> Any:
    return client.open(path, method=method, headers=headers, **kwargs)


@pytest.mark.db
def test_registry_writes_are_refused_to_everyone_but_admins(
    make_app: Any, demo_models: dict[str, Any]
) -> None:
    app = make_app()
    user_id = make_user(app)
    admin_id = make_user(app, "root@example.com", name="Root", role="admin")
    user_token = issue_token(app, user_id, ["full"])
    admin_predict_token = issue_token(app, admin_id, ["predict"])
    user_client, user_csrf = session_client(app, "ann@example.com")
    callers = [
        ("anonymous", app.test_client(), {}, 401),
        ("user session", user_client, {"X-CSRFToken": user_csrf}, 403),
        ("user token", app.test_client(), bearer(user_token), 403),
        ("admin predict token", app.test_client(), bearer(admin_predict_token), 403),
    ]
    before = table_counts(app)
    for label, client, headers, status in callers:
        for method, path, kwargs in _denied_requests(app, demo_models):
            response = _send(client, method, path, kwargs, headers)
            assert response.status_code == status, (label, method, path, response.get_json())
            assert_api_error(response, status)
    assert table_counts(app) == before


@pytest.mark.db
@pytest.mark.parametrize("how", ["token", "session"])
def test_admins_manage_the_registry(make_app: Any, demo_models: dict[str, Any], how: str) -> None:
    app = make_app()
    admin_id = make_user(app, "root@example.com", name="Root", role="admin")
    if how == "token":
        client, headers = app.test_client(), bearer(issue_token(app, admin_id, ["full"]))
    else:
        client, csrf = session_client(app, "root@example.com")
        headers = {"X-CSRFToken": csrf}
    name = f"iris-{how}"
    for method, path, kwargs, status in admin_requests(app, demo_models, name):
        response = _send(client, method, path, kwargs, headers)
        assert response.status_code == status, (method, path, response.get_json())
    detail = client.get(f"/api/v1/models/{name}", headers=headers).get_json()
    assert detail["title"] == "Irises, again"
    [version] = detail["versions"]
    assert version["status"] == "archived"
    assert version["runtime"] in {"onnxruntime", "sklearn"}
    assert version["input_schema"]["features"][0]["description"] == "Edited by an administrator."
    assert detail["aliases"] == {}
    if how == "session":
        # Without the CSRF header a cookie-authenticated write is refused, even for an admin.
        before = table_counts(app)
        response = client.post("/api/v1/models", json={"name": "x", "task": "regression"})
        assert_api_error(response, 400, "csrf_failed")
        assert table_counts(app) == before


# --- uploads that cannot be models ----------------------------------------------------------


def _upload(
    client: FlaskClient, headers: dict, artifact: bytes, filename: str, sample: bytes
) -> Any:
    return client.post(
        f"/api/v1/models/{PUBLIC}/versions",
        headers=headers,
        data={
            "artifact": (io.BytesIO(artifact), filename),
            "sample": (io.BytesIO(sample), "sample.csv"),
        },
        content_type="multipart/form-data",
    )


@pytest.mark.db
def test_uploads_that_are_not_models_are_refused(
    make_app: Any, demo_models: dict[str, Any]
) -> None:
    app = make_app(UPLOAD_MAX_BYTES="1048576")
    admin = bearer(issue_token(app, make_user(app, role="admin"), ["full"]))
    client = app.test_client()
    _, _, sample = _iris_files(demo_models)
    X, y = load_iris(return_X_y=True)
    pickled = pickle.dumps(LogisticRegression(max_iter=500).fit(X, y))
    before = table_counts(app)
    for filename in ("model.pkl", "model.skops", "model.bin"):
        error = assert_api_error(_upload(client, admin, pickled, filename, sample), 422)
        # The message says why: pickles run code when loaded.
        assert "pickle" in error["message"].lower(), error
    for garbage, filename in (
        (b"certainly not a model " * 20, "model.skops"),
        (b"\x00" * 900, "m"),
    ):
        error = assert_api_error(_upload(client, admin, garbage, filename, sample), 422)
        assert error["code"] == "invalid_artifact"
    artifact, filename, _ = _iris_files(demo_models)
    error = assert_api_error(_upload(client, admin, artifact, filename, b"\xff\xfe"), 422)
    assert error["code"] == "invalid_sample"
    too_big = _upload(client, admin, b"\x00" * 1_100_000, "model.onnx", sample)
    assert_api_error(too_big, 413, "payload_too_large")
    missing = client.post(
        f"/api/v1/models/{PUBLIC}/versions",
        headers=admin,
        data={"artifact": (io.BytesIO(artifact), filename)},
        content_type="multipart/form-data",
    )
    assert [d["field"] for d in assert_api_error(missing, 422)["details"]] == ["sample"]
    not_multipart = client.post(f"/api/v1/models/{PUBLIC}/versions", headers=admin, json={})
    assert_api_error(not_multipart, 415)
    assert table_counts(app) == before
    # A refused file does not stay in the artifact store either.
    from modelport.serving.registry import artifact_store

    with app.app_context():
        store = artifact_store()
        for content in (pickled, b"certainly not a model " * 20, b"\x00" * 900):
            assert not store.exists(hashlib.sha256(content).hexdigest())
        assert store.exists(hashlib.sha256(artifact).hexdigest())  # registered: kept


def test_a_large_upload_through_a_session_gets_the_upload_limit(
    make_app: Any, demo_models: dict[str, Any]
) -> None:
    # Larger than the general body limit (MAX_CONTENT_LENGTH, 2 MiB) but within the upload
    # limit: the CSRF check reads the form, and must not do so under the smaller limit.
    app = make_app()
    make_user(app, role="admin")
    client, csrf = session_client(app, "ann@example.com")
    _, _, sample = _iris_files(demo_models)
    response = _upload(
        client, {"X-CSRFToken": csrf}, b"not a model " * 300_000, "model.skops", sample
    )
    assert_api_error(response, 422, "invalid_artifact")
