"""``/api/v1/models/<name>/follow`` (follow an MLflow registered model's aliases, stop, sync
now) and ``/api/v1/mlflow/webhook`` (MLflow's registry webhooks), over ``mlops.follow``."""

from __future__ import annotations

from typing import Any

from flask import request

from modelport.api.model_schemas import FollowResultSchema, FollowSchema, WebhookResultSchema
from modelport.api.registry import SECURITY, _model_or_404, admin_only, blp
from modelport.mlops import follow
from modelport.models.registry import RegisteredModel


def follow_state(model: RegisteredModel, result: follow.SyncResult | None) -> dict[str, Any]:
    """A model's following of MLflow, with what the sync just done did."""
    return {
        "model": model.name,
        "mlflow_model": model.mlflow_model,
        "aliases": model.alias_map(),
        "synced_at": model.mlflow_synced_at,
        "sync": result.as_dict() if result else None,
    }


@blp.put("/models/<name>/follow")
@admin_only
@blp.arguments(FollowSchema)
@blp.response(200, FollowResultSchema)
@blp.errors(404, 409, 413, 422, 503)
@blp.doc(security=SECURITY)
def put_follow(body: dict[str, Any], name: str) -> dict[str, Any]:
    """Follow an MLflow registered model: its champion, challenger and shadow aliases are
    mirrored here, now and whenever they move (admin; docs/mlops.md)."""
    model = _model_or_404(name)
    return follow_state(model, follow.follow(model, body["mlflow_model"]))


@blp.delete("/models/<name>/follow")
@admin_only
@blp.response(204)
@blp.errors(404, 409)
@blp.doc(security=SECURITY)
def delete_follow(name: str) -> None:
    """Stop following MLflow; versions and aliases stay as they are (admin)."""
    follow.unfollow(_model_or_404(name))


@blp.post("/models/<name>/follow/sync")
@admin_only
@blp.response(200, FollowResultSchema)
@blp.errors(404, 409)
@blp.doc(security=SECURITY)
def sync(name: str) -> dict[str, Any]:
    """Read the followed MLflow model's aliases now and move this model's (admin)."""
    model = _model_or_404(name)
    return follow_state(model, follow.sync(model, wait=follow.WAIT_SECONDS))


@blp.post("/mlflow/webhook")
@blp.response(200, WebhookResultSchema)
@blp.errors(400, 401, 404, 409, 413)
@blp.doc(security=[{}])
def webhook() -> dict[str, Any]:
    """MLflow's registry webhooks (``model_version_alias.created`` and ``.deleted``): the
    models following the MLflow model sync at once. Authenticated by ``X-MLflow-Signature``
    (HMAC-SHA256 under ``MODELPORT_MLFLOW_WEBHOOK_SECRET``); deliveries older than 5 minutes
    and replays are refused."""
    return follow.receive(request.headers, request.get_data()).as_dict()
