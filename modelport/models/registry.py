"""The model registry: registered models, their versions and the aliases that point at them."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from modelport.extensions import db
from modelport.models.types import JSONDocument, UTCDateTime, utcnow


class Task(enum.StrEnum):
    CLASSIFICATION = "classification"
    REGRESSION = "regression"


class Visibility(enum.StrEnum):
    PUBLIC = "public"  # anyone may predict, rate-limited
    PRIVATE = "private"  # signed-in users and tokens only


class VersionStatus(enum.StrEnum):
    READY = "ready"
    ARCHIVED = "archived"  # kept for history, never served


class RegisteredModel(db.Model):
    __tablename__ = "registered_models"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    task: Mapped[str] = mapped_column(String(20))
    visibility: Mapped[str] = mapped_column(String(10), default=Visibility.PUBLIC.value)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # Bumped by every change that affects serving; workers compare it to reload their cache.
    revision: Mapped[int] = mapped_column(default=1)
    # Canary: the share (0–1) of callers naming no version who get the ``challenger`` alias's
    # version; shadow: the share of those requests also run on the ``shadow`` alias's version
    # after the answer is sent. None: off (``serving.variants``).
    canary_share: Mapped[float | None]
    shadow_share: Mapped[float | None]
    # The champion's version number before the last promote: what a rollback restores once
    # no canary is left. Any other move of the champion forgets it (``serving.registry``).
    previous_champion: Mapped[int | None]
    # The MLflow registered model this one follows: its champion, challenger and shadow
    # aliases are mirrored here (``mlops.follow``). None: not following.
    mlflow_model: Mapped[str | None] = mapped_column(String(256))
    # One sync at a time per model, across workers and servers: a lease, not a held lock,
    # so that no database lock is held while a version is imported (seconds).
    mlflow_lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    mlflow_synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    mlflow_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    versions: Mapped[list[ModelVersion]] = relationship(
        back_populates="model",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="ModelVersion.number",
    )
    aliases: Mapped[list[ModelAlias]] = relationship(
        back_populates="model", cascade="all, delete-orphan", passive_deletes=True
    )

    def alias_map(self) -> dict[str, int]:
        """Alias name → version number."""
        return {a.alias: a.version.number for a in self.aliases}


class ModelVersion(db.Model):
    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("model_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("registered_models.id", ondelete="CASCADE"))
    number: Mapped[int]
    flavor: Mapped[str] = mapped_column(String(20))
    # Artifacts in the content-addressed store; an MLflow model may live at a URI instead.
    artifact_sha256: Mapped[str | None] = mapped_column(String(64))
    artifact_uri: Mapped[str | None] = mapped_column(String(500))
    compiled_sha256: Mapped[str | None] = mapped_column(String(64))
    sample_sha256: Mapped[str | None] = mapped_column(String(64))
    runtime: Mapped[str] = mapped_column(String(20))
    parity: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument())
    input_schema: Mapped[dict[str, Any]] = mapped_column(JSONDocument())
    output_schema: Mapped[dict[str, Any]] = mapped_column(JSONDocument())
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument())
    params: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument())
    status: Mapped[str] = mapped_column(String(20), default=VersionStatus.READY.value)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    model: Mapped[RegisteredModel] = relationship(back_populates="versions")


class ModelAlias(db.Model):
    __tablename__ = "model_aliases"
    __table_args__ = (UniqueConstraint("model_id", "alias"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("registered_models.id", ondelete="CASCADE"))
    alias: Mapped[str] = mapped_column(String(40))
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    model: Mapped[RegisteredModel] = relationship(back_populates="aliases")
    version: Mapped[ModelVersion] = relationship(lazy="joined")


Index("ix_model_versions_model_id", ModelVersion.model_id)
Index("ix_model_aliases_version_id", ModelAlias.version_id)


class ModelReport(db.Model):
    """A version's evaluation, computed once at registration: held-out rows when given, else
    the stored training sample (``source`` says which)."""

    __tablename__ = "model_reports"

    id: Mapped[int] = mapped_column(primary_key=True)
    version_id: Mapped[int] = mapped_column(
        ForeignKey("model_versions.id", ondelete="CASCADE"), unique=True
    )
    source: Mapped[str] = mapped_column(String(20))
    row_count: Mapped[int]
    report: Mapped[dict[str, Any]] = mapped_column(JSONDocument())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class MlflowDelivery(db.Model):
    """An MLflow webhook delivery already acted on, kept for a while so that a replay of it
    is refused (``mlops.follow``)."""

    __tablename__ = "mlflow_deliveries"

    delivery_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
