"""Follow an MLflow registered model: its champion, challenger and shadow aliases, mirrored.

A Modelport model may follow one MLflow registered model (``follow``). ``sync`` reads that
model's aliases in MLflow and, for each alias of ``FOLLOWED``, imports the version it points
at (once: a version imported before is found by its source, ``models:/NAME/N``) and points
the Modelport alias there, or removes the Modelport alias when MLflow has none (a removed
``challenger`` or ``shadow`` ends its share). Moving an alias bumps the model's revision, so
every worker serves the new version within ``MODELPORT_REGISTRY_POLL_SECONDS``, and a request
already running finishes on the version it started with (``serving.predictor``).

Three things call ``sync``: MLflow's registry webhooks (``receive``, once the delivery's
signature, age and id are checked), each server process every
``MODELPORT_MLFLOW_POLL_SECONDS`` (``start``), and ``modelport sync``. One sync of a model
runs at a time, across workers and servers, under a lease on the model's row: a lease, not a
held database lock, because importing a version takes seconds and a held lock would stop
SQLite's writers (prediction records) for that long.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from flask import Flask
from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import IntegrityError

from modelport.config import current_settings
from modelport.extensions import db
from modelport.models.registry import (
    MlflowDelivery,
    ModelVersion,
    RegisteredModel,
    VersionStatus,
)
from modelport.models.types import utcnow
from modelport.ops import background
from modelport.serving import registry
from modelport.serving.registry import (
    CHALLENGER,
    CHAMPION,
    SHADOW,
    RegistryConflict,
    RegistryError,
    RegistryUnavailable,
)

log = logging.getLogger(__name__)
# The aliases a following model takes from MLflow: the ones that choose who gets which
# version (``serving.variants``). Other MLflow aliases are MLflow's own business.
FOLLOWED = (CHAMPION, CHALLENGER, SHADOW)
# A sync that has not finished in this long is taken to have died with its process.
LEASE = timedelta(minutes=5)
# How long a webhook or ``modelport sync`` waits for a sync already running to finish.
WAIT_SECONDS = 60.0
# MLflow's webhook headers and signature scheme (mlflow.webhooks.delivery, MLflow 3).
SIGNATURE_HEADER = "X-MLflow-Signature"
TIMESTAMP_HEADER = "X-MLflow-Timestamp"
DELIVERY_HEADER = "X-MLflow-Delivery-Id"
SIGNATURE_VERSION = "v1"
# A delivery older than this is refused; one from the future by more than the skew too.
MAX_AGE_SECONDS = 300
CLOCK_SKEW_SECONDS = 60
# Delivery ids are kept this long: an older delivery fails the age check anyway.
KEEP_DELIVERIES = timedelta(seconds=MAX_AGE_SECONDS + 2 * CLOCK_SKEW_SECONDS)
DELIVERY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
MLFLOW_NAME = re.compile(r"^\S(?:.{0,254}\S)?$")
ALIAS_EVENTS = {"created", "deleted"}


class WebhookRefused(Exception):
    """A webhook delivery that is not acted on; ``status`` says how it is answered."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass
class SyncResult:
    """What one sync of a following model did: the aliases it moved or removed, or why it
    could not (``error``; ``busy``: another sync held the model for too long)."""

    model: str
    mlflow_model: str
    changes: list[str] = field(default_factory=list)
    error: str | None = None
    busy: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "mlflow_model": self.mlflow_model,
            "changes": self.changes,
            "error": self.error,
            "busy": self.busy,
        }


def follow(model: RegisteredModel, mlflow_model: str) -> SyncResult:
    """Make ``model`` follow the MLflow registered model ``mlflow_model`` and sync it now.
    Refused (nothing changes) unless the MLflow server is trusted, answers and has that
    model."""
    name = (mlflow_model or "").strip()
    if not MLFLOW_NAME.match(name):
        raise RegistryError(
            "invalid_mlflow_model", "Name the MLflow registered model (1–256 characters)."
        )
    registry.require_mlflow_trust(f"models:/{name}")
    _registered_model(_client(), name)  # it must exist now: a typo is caught here
    model.mlflow_model = name
    model.mlflow_error = None
    db.session.commit()
    return sync(model, wait=WAIT_SECONDS)


def unfollow(model: RegisteredModel) -> None:
    """Stop following MLflow; the model keeps its versions and aliases as they are."""
    if model.mlflow_model is None:
        raise RegistryConflict("not_following", f"{model.name} follows no MLflow model.")
    model.mlflow_model = None
    model.mlflow_error = None
    db.session.commit()


def followers(mlflow_model: str | None = None) -> list[RegisteredModel]:
    """The models that follow an MLflow model (``mlflow_model``, or any)."""
    query = select(RegisteredModel).where(RegisteredModel.mlflow_model.is_not(None))
    if mlflow_model is not None:
        query = query.where(RegisteredModel.mlflow_model == mlflow_model)
    return list(db.session.scalars(query.order_by(RegisteredModel.name)))


def sync(model: RegisteredModel, *, wait: float = 0.0) -> SyncResult:
    """Mirror the followed MLflow model's aliases onto ``model`` (see the module's text).
    Waits up to ``wait`` seconds for a sync of the same model running elsewhere; a failure
    is kept on the model (``mlflow_error``) and returned, never raised."""
    if model.mlflow_model is None:
        raise RegistryConflict("not_following", f"{model.name} follows no MLflow model.")
    result = SyncResult(model.name, model.mlflow_model)
    deadline = time.monotonic() + wait
    while not _take_lease(model):
        if time.monotonic() >= deadline:
            result.busy = True
            return result
        time.sleep(0.2)
    try:
        _mirror(model, result)
    except RegistryError as exc:
        db.session.rollback()
        result.error = exc.message
    except Exception as exc:  # noqa: BLE001 - kept on the model and logged; the server goes on
        db.session.rollback()
        log.exception("mlflow_sync_failed", extra={"fields": {"model": model.name}})
        result.error = f"{type(exc).__name__}: {str(exc)[:300]}"
    finally:
        _release(model, result)
    return result


def sync_all(*, wait: float = 0.0) -> list[SyncResult]:
    """Sync every following model (the poll, ``modelport sync`` without a name)."""
    return [sync(model, wait=wait) for model in followers()]


def start(app: Flask) -> bool:
    """Poll MLflow in a thread of this process every ``MODELPORT_MLFLOW_POLL_SECONDS``."""
    return background.every(app, "mlflow_poll", app.settings.mlflow_poll_seconds, sync_all)


def _take_lease(model: RegisteredModel) -> bool:
    now = utcnow()
    taken = db.session.execute(
        update(RegisteredModel)
        .where(
            RegisteredModel.id == model.id,
            or_(
                RegisteredModel.mlflow_lease_until.is_(None),
                RegisteredModel.mlflow_lease_until < now,
            ),
        )
        .values(mlflow_lease_until=now + LEASE)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return taken.rowcount == 1


def _release(model: RegisteredModel, result: SyncResult) -> None:
    db.session.execute(
        update(RegisteredModel)
        .where(RegisteredModel.id == model.id)
        .values(mlflow_lease_until=None, mlflow_synced_at=utcnow(), mlflow_error=result.error)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    db.session.refresh(model)


def _client() -> Any:
    """An MLflow client of the configured server, once it answers."""
    uri = registry.configure_mlflow()
    reason = registry.mlflow_unreachable(uri)
    if reason:
        raise RegistryUnavailable("mlflow_unreachable", f"{reason}.")
    from mlflow import MlflowClient  # the mlflow extra: configure_mlflow checked it is there

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _registered_model(client: Any, name: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_registered_model(name)
    except MlflowException as exc:
        if getattr(exc, "error_code", "") == "RESOURCE_DOES_NOT_EXIST":
            raise RegistryError(
                "mlflow_model_not_found", f"MLflow has no registered model {name}."
            ) from None
        raise RegistryError(
            "mlflow_failed", f"MLflow refused to say what {name} is: {str(exc)[:300]}"
        ) from None


def _mirror(model: RegisteredModel, result: SyncResult) -> None:
    client = _client()
    found = _registered_model(client, result.mlflow_model)
    wanted = {alias: str(number) for alias, number in (found.aliases or {}).items()}
    current = model.alias_map()
    for alias in FOLLOWED:
        number = wanted.get(alias)
        if number is None:
            if alias in current:
                registry.delete_alias(model, alias, from_mlflow=True)
                result.changes.append(f"{alias} removed (MLflow has none)")
            continue
        version = _imported(model, result.mlflow_model, number)
        if version is None:
            version = _import(client, model, result.mlflow_model, number)
            result.changes.append(f"imported MLflow version {number} as version {version.number}")
        if current.get(alias) != version.number:
            registry.set_alias(model, alias, version.number, from_mlflow=True)
            result.changes.append(f"{alias} → version {version.number} (MLflow {number})")


def _source(mlflow_model: str, number: str) -> str:
    return f"models:/{mlflow_model}/{number}"


def _imported(model: RegisteredModel, mlflow_model: str, number: str) -> ModelVersion | None:
    """The version taken from MLflow version ``number`` before (by import or by ``modelport
    train``), if it is still served."""
    return db.session.scalar(
        select(ModelVersion)
        .where(
            ModelVersion.model_id == model.id,
            ModelVersion.artifact_uri == _source(mlflow_model, number),
            ModelVersion.status == VersionStatus.READY.value,
        )
        .order_by(ModelVersion.number.desc())
        .limit(1)
    )


def _import(client: Any, model: RegisteredModel, mlflow_model: str, number: str) -> ModelVersion:
    """Register MLflow version ``number`` as the model's next version, with its run's
    metrics when MLflow has them."""
    metrics = None
    try:
        run_id = client.get_model_version(mlflow_model, number).run_id
        if run_id:
            metrics = dict(client.get_run(run_id).data.metrics) or None
    except Exception:  # noqa: BLE001 - the metrics are a courtesy; the import goes on
        metrics = None
    return registry.register_mlflow(model, _source(mlflow_model, number), metrics=metrics)


# --- webhooks -------------------------------------------------------------------------


def signature(secret: str, delivery_id: str, timestamp: str, body: bytes) -> str:
    """MLflow's ``X-MLflow-Signature`` of a delivery: ``v1,`` and the base64 HMAC-SHA256 of
    ``<delivery id>.<timestamp>.<body>`` under the shared secret."""
    signed = f"{delivery_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode()}"


@dataclass
class Delivery:
    """A delivery acted on: its event and what the syncs it started did."""

    event: str
    synced: list[SyncResult] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"event": self.event, "synced": [result.as_dict() for result in self.synced]}


def receive(headers: Mapping[str, str], body: bytes, *, now: float | None = None) -> Delivery:
    """Check an MLflow webhook delivery and act on it: an alias of a followed model created
    (moved) or deleted syncs the models that follow it. Refused, with nothing changed, when
    webhooks are off, the signature is wrong, the delivery is older than 5 minutes or was
    acted on before (``WebhookRefused``)."""
    secret = current_settings().mlflow_webhook_secret
    if not secret:
        raise WebhookRefused(404, "not_found", "Webhooks are off on this server.")
    delivery_id = headers.get(DELIVERY_HEADER, "")
    timestamp = headers.get(TIMESTAMP_HEADER, "")
    given = headers.get(SIGNATURE_HEADER, "")
    if not DELIVERY_ID.match(delivery_id) or not timestamp.isdigit() or len(timestamp) > 12:
        raise WebhookRefused(
            400,
            "invalid_delivery",
            f"A delivery carries {DELIVERY_HEADER}, {TIMESTAMP_HEADER} (Unix seconds) and "
            f"{SIGNATURE_HEADER}.",
        )
    if not hmac.compare_digest(
        given.encode(), signature(secret, delivery_id, timestamp, body).encode()
    ):
        raise WebhookRefused(
            401, "invalid_signature", f"{SIGNATURE_HEADER} does not match the shared secret."
        )
    age = (time.time() if now is None else now) - int(timestamp)
    if not -CLOCK_SKEW_SECONDS <= age <= MAX_AGE_SECONDS:
        raise WebhookRefused(
            401,
            "stale_delivery",
            f"The delivery is {int(age)} s old; deliveries older than {MAX_AGE_SECONDS} s "
            "are refused.",
        )
    event = _event(body)
    _remember(delivery_id)
    delivery = Delivery(f"{event['entity']}.{event['action']}")
    data = event.get("data") or {}
    moved = event["entity"] == "model_version_alias" and event["action"] in ALIAS_EVENTS
    if moved and data.get("alias") in FOLLOWED and isinstance(data.get("name"), str):
        delivery.synced = [sync(model, wait=WAIT_SECONDS) for model in followers(data["name"])]
    return delivery


def _event(body: bytes) -> dict[str, Any]:
    try:
        event = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        event = None
    if (
        not isinstance(event, dict)
        or not isinstance(event.get("entity"), str)
        or not isinstance(event.get("action"), str)
        or not isinstance(event.get("data", {}), dict)
    ):
        raise WebhookRefused(
            400, "invalid_payload", "The delivery's body is not an MLflow webhook event."
        )
    return event


def _remember(delivery_id: str) -> None:
    """Keep the delivery's id; a second delivery with it is a replay."""
    now = utcnow()
    db.session.execute(
        delete(MlflowDelivery).where(MlflowDelivery.received_at < now - KEEP_DELIVERIES)
    )
    db.session.add(MlflowDelivery(delivery_id=delivery_id, received_at=now))
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise WebhookRefused(
            409, "replayed_delivery", f"Delivery {delivery_id} was received before."
        ) from None
