"""``POST /api/v1/mlflow/webhook``: a delivery is acted on only when its signature matches
the shared secret, it is under 5 minutes old and was not received before; every other one
gets a 4xx and moves nothing (issue 13, item 3). The delivery MLflow itself sends is in
test_follow_e2e.py."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import update

from modelport.extensions import db
from modelport.mlops.follow import signature
from modelport.models.registry import RegisteredModel
from tests.support.databases import rows, table_counts
from tests.support.models import register_demo

SECRET = "a shared secret of the test, long enough"
PATH = "/api/v1/mlflow/webhook"

pytestmark = pytest.mark.db


def _event(name: str = "iris", alias: str = "champion", version: str = "2") -> bytes:
    """An alias move as MLflow 3 sends it (mlflow.webhooks.delivery)."""
    return json.dumps(
        {
            "entity": "model_version_alias",
            "action": "created",
            "timestamp": "2026-12-04T22:00:00+00:00",
            "data": {"name": name, "alias": alias, "version": version},
        }
    ).encode()


def _headers(body: bytes, *, secret: str = SECRET, age: float = 0, delivery: str = "") -> dict:
    delivery = delivery or str(uuid.uuid4())
    stamp = str(int(time.time() - age))
    return {
        "Content-Type": "application/json",
        "X-MLflow-Delivery-Id": delivery,
        "X-MLflow-Timestamp": stamp,
        "X-MLflow-Signature": signature(secret, delivery, stamp, body),
    }


@pytest.fixture
def hooked(app_factory: Any, demo_models: dict[str, Any]) -> Flask:
    """An app with webhooks on, and ``iris`` following the MLflow model ``iris`` (whose
    MLflow store has no such model: a sync would fail and say so, moving nothing)."""
    app = app_factory(MLFLOW_WEBHOOK_SECRET=SECRET, MLFLOW_TRUSTED="true")
    register_demo(app, demo_models, "iris")
    with app.app_context():
        db.session.execute(update(RegisteredModel).values(mlflow_model="iris"))
        db.session.commit()
    return app


def _state(app: Flask) -> tuple[dict[str, int], list[dict[str, Any]], list[dict[str, Any]]]:
    return table_counts(app), rows(app, "registered_models"), rows(app, "model_aliases")


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"secret": "another secret, just as long"}, 401, "invalid_signature"),
        ({"age": 301}, 401, "stale_delivery"),
        ({"age": -120}, 401, "stale_delivery"),  # from the future, beyond the clock skew
    ],
    ids=["wrong secret", "older than 5 minutes", "from the future"],
)
def test_a_refused_delivery_moves_nothing(
    hooked: Flask, change: dict[str, Any], status: int, code: str
) -> None:
    before = _state(hooked)
    body = _event()
    answer = hooked.test_client().post(PATH, data=body, headers=_headers(body, **change))
    assert answer.status_code == status, answer.get_data(as_text=True)
    assert answer.get_json()["error"]["code"] == code
    assert _state(hooked) == before  # no sync ran: not even its time was kept


def test_a_tampered_body_or_missing_headers_are_refused(hooked: Flask) -> None:
    before = _state(hooked)
    client = hooked.test_client()
    body = _event()
    headers = _headers(body)
    tampered = _event(version="3")
    answer = client.post(PATH, data=tampered, headers=headers)
    assert (answer.status_code, answer.get_json()["error"]["code"]) == (401, "invalid_signature")
    for missing in ("X-MLflow-Signature", "X-MLflow-Timestamp", "X-MLflow-Delivery-Id"):
        partial = {k: v for k, v in headers.items() if k != missing}
        answer = client.post(PATH, data=body, headers=partial)
        assert answer.status_code in (400, 401), missing
        assert answer.get_json()["error"]["code"] in ("invalid_delivery", "invalid_signature")
    # Signed, but not an MLflow event.
    for junk in (b"[1, 2]", b"not json", b'{"entity": 1, "action": "created"}'):
        answer = client.post(PATH, data=junk, headers=_headers(junk))
        assert (answer.status_code, answer.get_json()["error"]["code"]) == (400, "invalid_payload")
    assert _state(hooked) == before


def test_a_replayed_delivery_is_refused(hooked: Flask) -> None:
    client = hooked.test_client()
    # An alias of a model nobody follows: accepted, nothing to sync.
    body = _event(name="somebody-elses")
    headers = _headers(body)
    first = client.post(PATH, data=body, headers=headers)
    assert first.status_code == 200, first.get_data(as_text=True)
    assert first.get_json() == {"event": "model_version_alias.created", "synced": []}
    before = _state(hooked)
    again = client.post(PATH, data=body, headers=headers)
    assert (again.status_code, again.get_json()["error"]["code"]) == (409, "replayed_delivery")
    assert _state(hooked) == before
    # The same event in a new delivery (MLflow's retry sends a new id) is acted on.
    assert client.post(PATH, data=body, headers=_headers(body)).status_code == 200


def test_a_delivery_for_a_followed_model_syncs_it(hooked: Flask) -> None:
    """A valid delivery naming ``iris`` syncs it; its MLflow store has no ``iris``, so the
    sync fails, says why, and moves no alias."""
    aliases = rows(hooked, "model_aliases")
    body = _event()
    answer = hooked.test_client().post(PATH, data=body, headers=_headers(body))
    assert answer.status_code == 200, answer.get_data(as_text=True)
    (synced,) = answer.get_json()["synced"]
    assert synced["model"] == "iris" and synced["changes"] == []
    assert "MLflow has no registered model iris" in synced["error"]
    assert rows(hooked, "model_aliases") == aliases
    (model,) = rows(hooked, "registered_models")
    assert model["mlflow_synced_at"] is not None and model["mlflow_lease_until"] is None
    assert "no registered model" in model["mlflow_error"]


def test_webhooks_are_off_without_a_secret(app_factory: Any) -> None:
    app = app_factory()
    body = _event()
    answer = app.test_client().post(PATH, data=body, headers=_headers(body))
    assert (answer.status_code, answer.get_json()["error"]["code"]) == (404, "not_found")


def test_the_signature_is_mlflows() -> None:
    """The scheme of mlflow.webhooks.delivery._generate_hmac_signature (MLflow 3.17), on a
    value worked out by hand: base64(HMAC-SHA256(secret, "id.timestamp.payload"))."""
    import base64
    import hashlib
    import hmac

    payload = '{"entity": "model_version_alias"}'
    by_hand = base64.b64encode(
        hmac.new(b"s3cret", f"d-1.1700000000.{payload}".encode(), hashlib.sha256).digest()
    ).decode()
    assert signature("s3cret", "d-1", "1700000000", payload.encode()) == f"v1,{by_hand}"
